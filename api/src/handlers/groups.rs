//! IAM groups: CreateGroup, ListGroups, GetGroup, DeleteGroup, membership,
//! and the group's policies (which apply to every member).

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::paging::Page;
use pipewright_core::iam::policies::OwnerKind;
use pipewright_core::iam::{groups, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::Paging;
use super::owned::{
    AttachedPoliciesResponse, InlinePolicyResponse, Owner, PolicyArnQuery, PolicyArnRequest, PolicyDocumentRequest,
    PolicyNamesResponse,
};
use super::users::UserBody;
use crate::auth::{Authorized, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody};
use crate::operation;

fn group_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    Ok(r.iam(&format!("group/{}", r.path("groupName")?)))
}

operation!(
    CreateGroup,
    "iam:CreateGroup",
    "arn:pw:iam::${Account}:group/{groupName}",
    web::Json<CreateGroupRequest>,
    |r, b| {
        pipewright_core::iam::names::group_name(&b.group_name)?;
        Ok(r.iam(&format!("group/{}", b.group_name)))
    }
);
operation!(ListGroups, "iam:ListGroups", "arn:pw:iam::${Account}:group/*", NoBody, |r, _b| Ok(r.iam("group/*")));
operation!(GetGroup, "iam:GetGroup", "arn:pw:iam::${Account}:group/{groupName}", NoBody, |r, _b| group_arn(r));
operation!(DeleteGroup, "iam:DeleteGroup", "arn:pw:iam::${Account}:group/{groupName}", NoBody, |r, _b| group_arn(r));
operation!(
    AddUserToGroup,
    "iam:AddUserToGroup",
    "arn:pw:iam::${Account}:group/{groupName}",
    NoBody,
    |r, _b| group_arn(r)
);
operation!(
    RemoveUserFromGroup,
    "iam:RemoveUserFromGroup",
    "arn:pw:iam::${Account}:group/{groupName}",
    NoBody,
    |r, _b| group_arn(r)
);
operation!(
    PutGroupPolicy,
    "iam:PutGroupPolicy",
    "arn:pw:iam::${Account}:group/{groupName}",
    web::Json<PolicyDocumentRequest>,
    |r, _b| group_arn(r)
);
operation!(
    GetGroupPolicy,
    "iam:GetGroupPolicy",
    "arn:pw:iam::${Account}:group/{groupName}",
    NoBody,
    |r, _b| group_arn(r)
);
operation!(DeleteGroupPolicy, "iam:DeleteGroupPolicy", "arn:pw:iam::${Account}:group/{groupName}", NoBody, |r, _b| {
    group_arn(r)
});
operation!(ListGroupPolicies, "iam:ListGroupPolicies", "arn:pw:iam::${Account}:group/{groupName}", NoBody, |r, _b| {
    group_arn(r)
});
operation!(
    AttachGroupPolicy,
    "iam:AttachGroupPolicy",
    "arn:pw:iam::${Account}:group/{groupName}",
    web::Json<PolicyArnRequest>,
    |r, _b| group_arn(r),
    context | _cr,
    cb | vec![("iam:PolicyARN", cb.policy_arn.clone())]
);
operation!(
    ListAttachedGroupPolicies,
    "iam:ListAttachedGroupPolicies",
    "arn:pw:iam::${Account}:group/{groupName}",
    NoBody,
    |r, _b| group_arn(r)
);
operation!(
    DetachGroupPolicy,
    "iam:DetachGroupPolicy",
    "arn:pw:iam::${Account}:group/{groupName}",
    NoBody,
    |r, _b| group_arn(r),
    context | cr,
    _cb | cr.query("policyArn").map(|arn| vec![("iam:PolicyARN", arn)]).unwrap_or_default()
);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_group)
        .service(list_groups)
        .service(get_group)
        .service(delete_group)
        .service(add_user_to_group)
        .service(remove_user_from_group)
        .service(put_group_policy)
        .service(get_group_policy)
        .service(delete_group_policy)
        .service(list_group_policies)
        .service(attach_group_policy)
        .service(list_attached_group_policies)
        .service(detach_group_policy);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1–128 letters, digits and +=,.@_-.
    pub group_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupBody {
    pub group_name: String,
    #[schema(example = "AGPAEXAMPLEEXAMPLEEX")]
    pub group_id: String,
    pub arn: String,
    pub path: String,
    pub create_date: DateTime<Utc>,
}

impl From<groups::Group> for GroupBody {
    fn from(g: groups::Group) -> Self {
        Self { arn: g.arn(), group_name: g.group_name, group_id: g.group_id, path: g.path, create_date: g.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreateGroupResponse {
    pub group: GroupBody,
}

/// The group and its users, as IAM's GetGroup answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetGroupResponse {
    pub group: GroupBody,
    pub users: Vec<UserBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListGroupsResponse {
    pub groups: Vec<GroupBody>,
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

/// Creates a group.
#[utoipa::path(
    tag = "iam", operation_id = "CreateGroup", request_body = CreateGroupRequest,
    responses((status = 201, body = CreateGroupResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/groups")]
pub async fn create_group(auth: Authorized<CreateGroup>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let group = groups::create(&mut conn, auth.caller.account(), &auth.body.group_name).await?;
    Ok(HttpResponse::Created().json(CreateGroupResponse { group: group.into() }))
}

/// Lists the account's groups by name.
#[utoipa::path(
    tag = "iam", operation_id = "ListGroups", params(Paging),
    responses((status = 200, body = ListGroupsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/groups")]
pub async fn list_groups(
    auth: Authorized<ListGroups>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListGroupsResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = groups::list(&mut conn, auth.caller.account(), &page).await?;
    Ok(web::Json(ListGroupsResponse {
        groups: found.into_iter().map(Into::into).collect(),
        is_truncated: next_token.is_some(),
        next_token,
    }))
}

/// The group and its users.
#[utoipa::path(
    tag = "iam", operation_id = "GetGroup", params(("groupName" = String, Path)),
    responses((status = 200, body = GetGroupResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/groups/{groupName}")]
pub async fn get_group(
    auth: Authorized<GetGroup>,
    name: web::Path<String>,
) -> Result<web::Json<GetGroupResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let group = groups::get(&mut conn, auth.caller.account(), &name).await?;
    let members = groups::members(&mut conn, &group.group_id).await?;
    Ok(web::Json(GetGroupResponse { group: group.into(), users: members.into_iter().map(Into::into).collect() }))
}

/// Deletes a group with no members or policies left.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteGroup", params(("groupName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/groups/{groupName}")]
pub async fn delete_group(auth: Authorized<DeleteGroup>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    groups::delete(&mut conn, auth.caller.account(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds a user to the group (at most 10 groups a user).
#[utoipa::path(
    tag = "iam", operation_id = "AddUserToGroup", params(("groupName" = String, Path), ("userName" = String, Path)),
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/groups/{groupName}/users/{userName}")]
pub async fn add_user_to_group(
    auth: Authorized<AddUserToGroup>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group_name, user_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let group = groups::get(&mut conn, auth.caller.account(), &group_name).await?;
    let user = users::get(&mut conn, auth.caller.account(), &user_name).await?;
    groups::add_user(&mut conn, &group.group_id, &user.user_id).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Removes a user from the group.
#[utoipa::path(
    tag = "iam", operation_id = "RemoveUserFromGroup", params(("groupName" = String, Path), ("userName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/groups/{groupName}/users/{userName}")]
pub async fn remove_user_from_group(
    auth: Authorized<RemoveUserFromGroup>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group_name, user_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let group = groups::get(&mut conn, auth.caller.account(), &group_name).await?;
    let user = users::get(&mut conn, auth.caller.account(), &user_name).await?;
    groups::remove_user(&mut conn, &group.group_id, &user.user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Creates or replaces an inline policy of the group.
#[utoipa::path(
    tag = "iam", operation_id = "PutGroupPolicy", params(("groupName" = String, Path), ("policyName" = String, Path)), request_body = PolicyDocumentRequest,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/groups/{groupName}/policies/{policyName}")]
pub async fn put_group_policy(
    auth: Authorized<PutGroupPolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let (name, policy_name) = path.into_inner();
    owner(&mut conn, auth.caller.account(), &name).await?.put(&mut conn, &policy_name, &auth.body).await
}

/// One inline policy of the group.
#[utoipa::path(
    tag = "iam", operation_id = "GetGroupPolicy", params(("groupName" = String, Path), ("policyName" = String, Path)),
    responses((status = 200, body = InlinePolicyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/groups/{groupName}/policies/{policyName}")]
pub async fn get_group_policy(
    auth: Authorized<GetGroupPolicy>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<InlinePolicyResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let (name, policy_name) = path.into_inner();
    owner(&mut conn, auth.caller.account(), &name).await?.get(&mut conn, policy_name).await
}

/// Deletes an inline policy of the group.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteGroupPolicy", params(("groupName" = String, Path), ("policyName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/groups/{groupName}/policies/{policyName}")]
pub async fn delete_group_policy(
    auth: Authorized<DeleteGroupPolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let (name, policy_name) = path.into_inner();
    owner(&mut conn, auth.caller.account(), &name).await?.delete(&mut conn, &policy_name).await
}

/// The names of the group's inline policies.
#[utoipa::path(
    tag = "iam", operation_id = "ListGroupPolicies", params(("groupName" = String, Path), Paging),
    responses((status = 200, body = PolicyNamesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/groups/{groupName}/policies")]
pub async fn list_group_policies(
    auth: Authorized<ListGroupPolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<PolicyNamesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    owner(&mut conn, auth.caller.account(), &name).await?.list(&mut conn, &paging).await
}

/// Attaches a managed policy to the group.
#[utoipa::path(
    tag = "iam", operation_id = "AttachGroupPolicy", params(("groupName" = String, Path)), request_body = PolicyArnRequest,
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/groups/{groupName}/attached-policies")]
pub async fn attach_group_policy(
    auth: Authorized<AttachGroupPolicy>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    owner(&mut conn, auth.caller.account(), &name).await?.attach(&mut conn, &auth.body.policy_arn).await
}

/// The managed policies attached to the group.
#[utoipa::path(
    tag = "iam", operation_id = "ListAttachedGroupPolicies", params(("groupName" = String, Path), Paging),
    responses((status = 200, body = AttachedPoliciesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/groups/{groupName}/attached-policies")]
pub async fn list_attached_group_policies(
    auth: Authorized<ListAttachedGroupPolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<AttachedPoliciesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    owner(&mut conn, auth.caller.account(), &name).await?.list_attached(&mut conn, &paging).await
}

/// Detaches a managed policy from the group.
#[utoipa::path(
    tag = "iam", operation_id = "DetachGroupPolicy", params(("groupName" = String, Path), PolicyArnQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/groups/{groupName}/attached-policies")]
pub async fn detach_group_policy(
    auth: Authorized<DetachGroupPolicy>,
    name: web::Path<String>,
    query: web::Query<PolicyArnQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    owner(&mut conn, auth.caller.account(), &name).await?.detach(&mut conn, &query.policy_arn).await
}

/// The group named `name`, as the owner of its policies.
async fn owner<'a>(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &'a str,
    name: &str,
) -> Result<Owner<'a>, ApiError> {
    let group = groups::get(conn, account, name).await?;
    Ok(Owner { kind: OwnerKind::Group, account, id: group.group_id, name: group.group_name })
}
