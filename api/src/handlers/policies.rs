//! Managed policies: CreatePolicy, ListPolicies, GetPolicy, DeletePolicy,
//! and their versions.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::builtin::BUILTIN_POLICIES;
use pipewright_core::iam::managed::{self, ManagedPolicy, PolicyVersion};
use pipewright_core::iam::paging::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::owned::{document_text, document_value};
use crate::auth::{Authorized, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody};
use crate::operation;

fn policy_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    Ok(r.iam(&format!("policy/{}", r.path("policyName")?)))
}

operation!(
    CreatePolicy,
    "iam:CreatePolicy",
    "arn:pw:iam::${Account}:policy/{policyName}",
    web::Json<CreatePolicyRequest>,
    |r, b| {
        pipewright_core::iam::names::policy_name(&b.policy_name)?;
        Ok(r.iam(&format!("policy/{}", b.policy_name)))
    }
);
operation!(ListPolicies, "iam:ListPolicies", "arn:pw:iam::${Account}:policy/*", NoBody, |r, _b| Ok(r.iam("policy/*")));
operation!(GetPolicy, "iam:GetPolicy", "arn:pw:iam::${Account}:policy/{policyName}", NoBody, |r, _b| policy_arn(r));
operation!(DeletePolicy, "iam:DeletePolicy", "arn:pw:iam::${Account}:policy/{policyName}", NoBody, |r, _b| policy_arn(
    r
));
operation!(
    CreatePolicyVersion,
    "iam:CreatePolicyVersion",
    "arn:pw:iam::${Account}:policy/{policyName}",
    web::Json<CreatePolicyVersionRequest>,
    |r, _b| policy_arn(r)
);
operation!(
    ListPolicyVersions,
    "iam:ListPolicyVersions",
    "arn:pw:iam::${Account}:policy/{policyName}",
    NoBody,
    |r, _b| policy_arn(r)
);
operation!(
    SetDefaultPolicyVersion,
    "iam:SetDefaultPolicyVersion",
    "arn:pw:iam::${Account}:policy/{policyName}",
    web::Json<SetDefaultRequest>,
    |r, _b| policy_arn(r)
);
operation!(
    DeletePolicyVersion,
    "iam:DeletePolicyVersion",
    "arn:pw:iam::${Account}:policy/{policyName}",
    NoBody,
    |r, _b| policy_arn(r)
);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_policy)
        .service(list_policies)
        .service(get_policy)
        .service(delete_policy)
        .service(create_policy_version)
        .service(list_policy_versions)
        .service(set_default_policy_version)
        .service(delete_policy_version);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicyRequest {
    pub policy_name: String,
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub policy_document: serde_json::Value,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicyVersionRequest {
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub policy_document: serde_json::Value,
    #[serde(default)]
    pub set_as_default: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDefaultRequest {
    #[schema(example = "v2")]
    pub version_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyBody {
    pub policy_name: String,
    #[schema(example = "ANPAEXAMPLEEXAMPLEEX")]
    pub policy_id: String,
    pub arn: String,
    pub path: String,
    pub default_version_id: String,
    pub description: Option<String>,
    pub attachment_count: i64,
    pub is_attachable: bool,
    pub create_date: Option<DateTime<Utc>>,
    pub update_date: Option<DateTime<Utc>>,
}

impl PolicyBody {
    fn local(p: ManagedPolicy, attachment_count: i64) -> Self {
        Self {
            arn: p.arn(),
            policy_name: p.policy_name,
            policy_id: p.policy_id,
            path: p.path,
            default_version_id: p.default_version_id,
            description: p.description,
            attachment_count,
            is_attachable: true,
            create_date: Some(p.created_at),
            update_date: Some(p.updated_at),
        }
    }

    fn builtin(name: &str, description: &str) -> Self {
        Self {
            policy_name: name.to_owned(),
            policy_id: format!(
                "ANPAPW{}",
                name.to_uppercase().chars().filter(char::is_ascii_alphanumeric).take(14).collect::<String>()
            ),
            arn: format!("arn:pw:iam::pw:policy/{name}"),
            path: "/".to_owned(),
            default_version_id: "v1".to_owned(),
            description: Some(description.to_owned()),
            attachment_count: 0,
            is_attachable: true,
            create_date: None,
            update_date: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResponse {
    pub policy: PolicyBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPoliciesResponse {
    pub policies: Vec<PolicyBody>,
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

/// `All` (default), `Local` (the account's own) or `PW` (built-in).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListPoliciesQuery {
    pub scope: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionBody {
    pub version_id: String,
    pub is_default_version: bool,
    pub create_date: DateTime<Utc>,
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub document: serde_json::Value,
}

impl VersionBody {
    fn of(v: PolicyVersion, default: &str) -> Self {
        Self {
            is_default_version: v.version_id == default,
            document: document_value(&v.document),
            version_id: v.version_id,
            create_date: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersionResponse {
    pub policy_version: VersionBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListVersionsResponse {
    pub versions: Vec<VersionBody>,
}

/// Creates a managed policy in the account (its first version, v1, is the default).
#[utoipa::path(
    tag = "iam", operation_id = "CreatePolicy", request_body = CreatePolicyRequest,
    responses((status = 201, body = PolicyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/policies")]
pub async fn create_policy(auth: Authorized<CreatePolicy>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let body = auth.body.into_inner();
    let document = document_text(&body.policy_document, "policyDocument")?;
    let policy =
        managed::create(&mut conn, auth.caller.account(), &body.policy_name, &document, body.description.as_deref())
            .await?;
    Ok(HttpResponse::Created().json(PolicyResponse { policy: PolicyBody::local(policy, 0) }))
}

/// Lists managed policies: the built-in ones (`PW`), the account's own (`Local`), or both.
#[utoipa::path(
    tag = "iam", operation_id = "ListPolicies", params(ListPoliciesQuery),
    responses((status = 200, body = ListPoliciesResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/policies")]
pub async fn list_policies(
    auth: Authorized<ListPolicies>,
    query: web::Query<ListPoliciesQuery>,
) -> Result<web::Json<ListPoliciesResponse>, ApiError> {
    let scope = query.scope.as_deref().unwrap_or("All");
    let (builtins, locals) = match scope {
        "All" => (true, true),
        "Local" => (false, true),
        "PW" | "AWS" => (true, false),
        other => return Err(ApiError::validation(format!("scope must be All, Local or PW, not {other:?}"))),
    };
    let page = Page::new(query.max_results, query.next_token.as_deref())?;
    let mut policies = Vec::new();
    // The built-in policies come first, on the first page.
    if builtins && page.after.is_none() {
        policies.extend(BUILTIN_POLICIES.iter().map(|(name, description, _)| PolicyBody::builtin(name, description)));
    }
    let mut next_token = None;
    if locals {
        let mut conn = auth.db().await?;
        let (found, next) = managed::list(&mut conn, auth.caller.account(), &page).await?;
        for policy in found {
            let count = managed::attachment_count(&mut conn, &policy.arn()).await?;
            policies.push(PolicyBody::local(policy, count));
        }
        next_token = next;
    }
    Ok(web::Json(ListPoliciesResponse { policies, is_truncated: next_token.is_some(), next_token }))
}

/// One managed policy of the account, or a built-in one of that name.
#[utoipa::path(
    tag = "iam", operation_id = "GetPolicy", params(("policyName" = String, Path)),
    responses((status = 200, body = PolicyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/policies/{policyName}")]
pub async fn get_policy(
    auth: Authorized<GetPolicy>,
    name: web::Path<String>,
) -> Result<web::Json<PolicyResponse>, ApiError> {
    let mut conn = auth.db().await?;
    match managed::get(&mut conn, auth.caller.account(), &name).await {
        Ok(policy) => {
            let count = managed::attachment_count(&mut conn, &policy.arn()).await?;
            Ok(web::Json(PolicyResponse { policy: PolicyBody::local(policy, count) }))
        }
        Err(e) => match BUILTIN_POLICIES.iter().find(|(n, ..)| n.eq_ignore_ascii_case(&name)) {
            Some((n, description, _)) => Ok(web::Json(PolicyResponse { policy: PolicyBody::builtin(n, description) })),
            None => Err(e.into()),
        },
    }
}

/// Deletes a managed policy attached nowhere, with no version but its default.
#[utoipa::path(
    tag = "iam", operation_id = "DeletePolicy", params(("policyName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/policies/{policyName}")]
pub async fn delete_policy(auth: Authorized<DeletePolicy>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    managed::delete(&mut conn, auth.caller.account(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a version to a managed policy (at most five), perhaps as the default.
#[utoipa::path(
    tag = "iam", operation_id = "CreatePolicyVersion", params(("policyName" = String, Path)), request_body = CreatePolicyVersionRequest,
    responses((status = 201, body = PolicyVersionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "LimitExceededException: five versions")),
    security(("bearer" = []))
)]
#[post("/v1/iam/policies/{policyName}/versions")]
pub async fn create_policy_version(
    auth: Authorized<CreatePolicyVersion>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let document = document_text(&auth.body.policy_document, "policyDocument")?;
    let mut conn = auth.db().await?;
    let version =
        managed::create_version(&mut conn, auth.caller.account(), &name, &document, auth.body.set_as_default).await?;
    let policy = managed::get(&mut conn, auth.caller.account(), &name).await?;
    Ok(HttpResponse::Created()
        .json(PolicyVersionResponse { policy_version: VersionBody::of(version, &policy.default_version_id) }))
}

/// The versions of a managed policy, newest first.
#[utoipa::path(
    tag = "iam", operation_id = "ListPolicyVersions", params(("policyName" = String, Path)),
    responses((status = 200, body = ListVersionsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/policies/{policyName}/versions")]
pub async fn list_policy_versions(
    auth: Authorized<ListPolicyVersions>,
    name: web::Path<String>,
) -> Result<web::Json<ListVersionsResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let policy = managed::get(&mut conn, auth.caller.account(), &name).await?;
    let versions = managed::versions(&mut conn, &policy).await?;
    Ok(web::Json(ListVersionsResponse {
        versions: versions.into_iter().map(|v| VersionBody::of(v, &policy.default_version_id)).collect(),
    }))
}

/// Makes a version the one that applies.
#[utoipa::path(
    tag = "iam", operation_id = "SetDefaultPolicyVersion", params(("policyName" = String, Path)), request_body = SetDefaultRequest,
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/policies/{policyName}/default-version")]
pub async fn set_default_policy_version(
    auth: Authorized<SetDefaultPolicyVersion>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    managed::set_default(&mut conn, auth.caller.account(), &name, &auth.body.version_id).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Deletes a version that is not the default.
#[utoipa::path(
    tag = "iam", operation_id = "DeletePolicyVersion", params(("policyName" = String, Path), ("versionId" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/policies/{policyName}/versions/{versionId}")]
pub async fn delete_policy_version(
    auth: Authorized<DeletePolicyVersion>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, version_id) = path.into_inner();
    let mut conn = auth.db().await?;
    managed::delete_version(&mut conn, auth.caller.account(), &name, &version_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
