//! IAM roles: CreateRole, ListRoles, GetRole, DeleteRole,
//! UpdateAssumeRolePolicy, revoking sessions, and the role's policies.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::paging::Page;
use pipewright_core::iam::policies::OwnerKind;
use pipewright_core::iam::roles;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::owned::{
    AttachedPoliciesResponse, InlinePolicyResponse, Owner, PolicyArnQuery, PolicyArnRequest, PolicyDocumentRequest,
    PolicyNamesResponse, document_text,
};
use super::{Paging, TagBody};
use crate::auth::{Authorized, NoBody};
use crate::error::{ApiError, ErrorBody};
use crate::operation;

operation!(
    CreateRole,
    "iam:CreateRole",
    "arn:pw:iam::${Account}:role/{roleName}",
    web::Json<CreateRoleRequest>,
    |r, b| {
        pipewright_core::iam::names::role_name(&b.role_name)?;
        Ok(r.iam(&format!("role/{}", b.role_name)))
    }
);
operation!(ListRoles, "iam:ListRoles", "arn:pw:iam::${Account}:role/*", NoBody, |r, _b| Ok(r.iam("role/*")));
operation!(GetRole, "iam:GetRole", "arn:pw:iam::${Account}:role/{roleName}", NoBody, |r, _b| role_arn(r));
operation!(DeleteRole, "iam:DeleteRole", "arn:pw:iam::${Account}:role/{roleName}", NoBody, |r, _b| role_arn(r));
operation!(
    UpdateAssumeRolePolicy,
    "iam:UpdateAssumeRolePolicy",
    "arn:pw:iam::${Account}:role/{roleName}",
    web::Json<PolicyDocumentRequest>,
    |r, _b| role_arn(r)
);
operation!(
    RevokeRoleSessions,
    "iam:PutRolePolicy",
    "arn:pw:iam::${Account}:role/{roleName}",
    NoBody,
    |r, _b| role_arn(r)
);
operation!(
    PutRolePolicy,
    "iam:PutRolePolicy",
    "arn:pw:iam::${Account}:role/{roleName}",
    web::Json<PolicyDocumentRequest>,
    |r, _b| role_arn(r)
);
operation!(GetRolePolicy, "iam:GetRolePolicy", "arn:pw:iam::${Account}:role/{roleName}", NoBody, |r, _b| role_arn(r));
operation!(DeleteRolePolicy, "iam:DeleteRolePolicy", "arn:pw:iam::${Account}:role/{roleName}", NoBody, |r, _b| {
    role_arn(r)
});
operation!(ListRolePolicies, "iam:ListRolePolicies", "arn:pw:iam::${Account}:role/{roleName}", NoBody, |r, _b| {
    role_arn(r)
});
operation!(
    AttachRolePolicy,
    "iam:AttachRolePolicy",
    "arn:pw:iam::${Account}:role/{roleName}",
    web::Json<PolicyArnRequest>,
    |r, _b| role_arn(r),
    context | _cr,
    cb | vec![("iam:PolicyARN", cb.policy_arn.clone())]
);
operation!(
    ListAttachedRolePolicies,
    "iam:ListAttachedRolePolicies",
    "arn:pw:iam::${Account}:role/{roleName}",
    NoBody,
    |r, _b| role_arn(r)
);
operation!(
    DetachRolePolicy,
    "iam:DetachRolePolicy",
    "arn:pw:iam::${Account}:role/{roleName}",
    NoBody,
    |r, _b| role_arn(r),
    context | cr,
    _cb | cr.query("policyArn").map(|arn| vec![("iam:PolicyARN", arn)]).unwrap_or_default()
);

fn role_arn(r: &crate::auth::ResourceRequest<'_>) -> Result<String, ApiError> {
    Ok(r.iam(&format!("role/{}", r.path("roleName")?)))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_role)
        .service(list_roles)
        .service(get_role)
        .service(delete_role)
        .service(update_assume_role_policy)
        .service(revoke_role_sessions)
        .service(put_role_policy)
        .service(get_role_policy)
        .service(delete_role_policy)
        .service(list_role_policies)
        .service(attach_role_policy)
        .service(list_attached_role_policies)
        .service(detach_role_policy);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoleRequest {
    pub role_name: String,
    /// The trust policy: who may assume the role (a JSON object or a string holding one).
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub assume_role_policy_document: serde_json::Value,
    pub description: Option<String>,
    /// 3600 to 43200 seconds (default 3600).
    pub max_session_duration: Option<i32>,
    #[serde(default)]
    pub tags: Vec<TagBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleBody {
    pub role_name: String,
    #[schema(example = "AROAEXAMPLEEXAMPLEEX")]
    pub role_id: String,
    #[schema(example = "arn:pw:iam::111122223333:role/deployer")]
    pub arn: String,
    pub path: String,
    pub create_date: DateTime<Utc>,
    #[schema(value_type = crate::handlers::policy_schema::PolicyDocumentOrText)]
    pub assume_role_policy_document: serde_json::Value,
    pub description: Option<String>,
    pub max_session_duration: i32,
    pub tags: Vec<TagBody>,
}

impl From<roles::Role> for RoleBody {
    fn from(r: roles::Role) -> Self {
        Self {
            arn: r.arn(),
            tags: r.tags().into_iter().map(Into::into).collect(),
            assume_role_policy_document: serde_json::from_str(&r.trust_policy).unwrap_or(serde_json::Value::Null),
            role_name: r.role_name,
            role_id: r.role_id,
            path: r.path,
            create_date: r.created_at,
            description: r.description,
            max_session_duration: r.max_session_duration,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    pub role: RoleBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListRolesResponse {
    pub roles: Vec<RoleBody>,
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

/// Creates a role with the trust policy that says who may assume it.
#[utoipa::path(
    tag = "iam", operation_id = "CreateRole", request_body = CreateRoleRequest,
    responses((status = 201, body = RoleResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/roles")]
pub async fn create_role(auth: Authorized<CreateRole>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let body = auth.body.into_inner();
    let trust = document_text(&body.assume_role_policy_document, "assumeRolePolicyDocument")?;
    let tags: Vec<_> = body.tags.into_iter().map(Into::into).collect();
    let role = roles::create(
        &mut conn,
        auth.caller.account(),
        roles::NewRole {
            name: &body.role_name,
            trust_policy: &trust,
            description: body.description.as_deref(),
            max_session_duration: body.max_session_duration,
            tags: &tags,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(RoleResponse { role: role.into() }))
}

/// Lists the account's roles by name.
#[utoipa::path(
    tag = "iam", operation_id = "ListRoles", params(Paging),
    responses((status = 200, body = ListRolesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/roles")]
pub async fn list_roles(
    auth: Authorized<ListRoles>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListRolesResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = roles::list(&mut conn, auth.caller.account(), &page).await?;
    Ok(web::Json(ListRolesResponse {
        roles: found.into_iter().map(Into::into).collect(),
        is_truncated: next_token.is_some(),
        next_token,
    }))
}

/// One role, with its trust policy.
#[utoipa::path(
    tag = "iam", operation_id = "GetRole", params(("roleName" = String, Path)),
    responses((status = 200, body = RoleResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/roles/{roleName}")]
pub async fn get_role(auth: Authorized<GetRole>, name: web::Path<String>) -> Result<web::Json<RoleResponse>, ApiError> {
    let mut conn = auth.db().await?;
    Ok(web::Json(RoleResponse { role: roles::get(&mut conn, auth.caller.account(), &name).await?.into() }))
}

/// Deletes a role with no policies left on it.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteRole", params(("roleName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "DeleteConflictException")),
    security(("bearer" = []))
)]
#[delete("/v1/iam/roles/{roleName}")]
pub async fn delete_role(auth: Authorized<DeleteRole>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    roles::delete(&mut conn, auth.caller.account(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces the role's trust policy.
#[utoipa::path(
    tag = "iam", operation_id = "UpdateAssumeRolePolicy", params(("roleName" = String, Path)), request_body = PolicyDocumentRequest,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/roles/{roleName}/trust-policy")]
pub async fn update_assume_role_policy(
    auth: Authorized<UpdateAssumeRolePolicy>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let document = document_text(&auth.body.policy_document, "policyDocument")?;
    let mut conn = auth.db().await?;
    roles::update_trust_policy(&mut conn, auth.caller.account(), &name, &document).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Every session of the role issued until now stops working at once (as the
/// IAM console's "Revoke active sessions", which needs iam:PutRolePolicy).
#[utoipa::path(
    tag = "iam", operation_id = "RevokeRoleSessions", params(("roleName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/roles/{roleName}/revoke-sessions")]
pub async fn revoke_role_sessions(
    auth: Authorized<RevokeRoleSessions>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    roles::revoke_sessions(&mut conn, auth.caller.account(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Creates or replaces an inline policy of the role.
#[utoipa::path(
    tag = "iam", operation_id = "PutRolePolicy", params(("roleName" = String, Path), ("policyName" = String, Path)), request_body = PolicyDocumentRequest,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/roles/{roleName}/policies/{policyName}")]
pub async fn put_role_policy(
    auth: Authorized<PutRolePolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.put(&mut conn, &policy_name, &auth.body).await
}

/// One inline policy of the role.
#[utoipa::path(
    tag = "iam", operation_id = "GetRolePolicy", params(("roleName" = String, Path), ("policyName" = String, Path)),
    responses((status = 200, body = InlinePolicyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/roles/{roleName}/policies/{policyName}")]
pub async fn get_role_policy(
    auth: Authorized<GetRolePolicy>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<InlinePolicyResponse>, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.get(&mut conn, policy_name).await
}

/// Deletes an inline policy of the role.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteRolePolicy", params(("roleName" = String, Path), ("policyName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/roles/{roleName}/policies/{policyName}")]
pub async fn delete_role_policy(
    auth: Authorized<DeleteRolePolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.delete(&mut conn, &policy_name).await
}

/// The names of the role's inline policies.
#[utoipa::path(
    tag = "iam", operation_id = "ListRolePolicies", params(("roleName" = String, Path), Paging),
    responses((status = 200, body = PolicyNamesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/roles/{roleName}/policies")]
pub async fn list_role_policies(
    auth: Authorized<ListRolePolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<PolicyNamesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.list(&mut conn, &paging).await
}

/// Attaches a managed policy to the role.
#[utoipa::path(
    tag = "iam", operation_id = "AttachRolePolicy", params(("roleName" = String, Path)), request_body = PolicyArnRequest,
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/roles/{roleName}/attached-policies")]
pub async fn attach_role_policy(
    auth: Authorized<AttachRolePolicy>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.attach(&mut conn, &auth.body.policy_arn).await
}

/// The managed policies attached to the role.
#[utoipa::path(
    tag = "iam", operation_id = "ListAttachedRolePolicies", params(("roleName" = String, Path), Paging),
    responses((status = 200, body = AttachedPoliciesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/roles/{roleName}/attached-policies")]
pub async fn list_attached_role_policies(
    auth: Authorized<ListAttachedRolePolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<AttachedPoliciesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.list_attached(&mut conn, &paging).await
}

/// Detaches a managed policy from the role.
#[utoipa::path(
    tag = "iam", operation_id = "DetachRolePolicy", params(("roleName" = String, Path), PolicyArnQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/roles/{roleName}/attached-policies")]
pub async fn detach_role_policy(
    auth: Authorized<DetachRolePolicy>,
    name: web::Path<String>,
    query: web::Query<PolicyArnQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.detach(&mut conn, &query.policy_arn).await
}

/// The role named `name`, as the owner of its policies.
async fn owner<'a>(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &'a str,
    name: &str,
) -> Result<Owner<'a>, ApiError> {
    let entity = roles::get(conn, account, name).await?;
    Ok(Owner { kind: OwnerKind::Role, account, id: entity.role_id, name: entity.role_name })
}
