//! IAM users: CreateUser, ListUsers, GetUser, DeleteUser, login profiles, and
//! the user's inline and attached policies.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::auth::passwords;
use pipewright_core::iam::paging::Page;
use pipewright_core::iam::policies::OwnerKind;
use pipewright_core::iam::{accounts, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::owned::{
    AttachedPoliciesResponse, InlinePolicyResponse, Owner, PolicyArnQuery, PolicyArnRequest, PolicyDocumentRequest,
    PolicyNamesResponse,
};
use super::{Paging, TagBody, password_work};
use crate::auth::{Authorized, NoBody};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

operation!(
    CreateUser,
    "iam:CreateUser",
    "arn:pw:iam::${Account}:user/{userName}",
    web::Json<CreateUserRequest>,
    |r, b| {
        pipewright_core::iam::names::user_name(&b.user_name)?;
        Ok(r.iam(&format!("user/{}", b.user_name)))
    }
);
operation!(ListUsers, "iam:ListUsers", "arn:pw:iam::${Account}:user/*", NoBody, |r, _b| Ok(r.iam("user/*")));
operation!(GetUser, "iam:GetUser", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(DeleteUser, "iam:DeleteUser", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(
    CreateLoginProfile,
    "iam:CreateLoginProfile",
    "arn:pw:iam::${Account}:user/{userName}",
    web::Json<LoginProfileRequest>,
    |r, _b| Ok(r.iam(&format!("user/{}", r.path("userName")?)))
);
operation!(DeleteLoginProfile, "iam:DeleteLoginProfile", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(
    PutUserPolicy,
    "iam:PutUserPolicy",
    "arn:pw:iam::${Account}:user/{userName}",
    web::Json<PolicyDocumentRequest>,
    |r, _b| Ok(r.iam(&format!("user/{}", r.path("userName")?)))
);
operation!(GetUserPolicy, "iam:GetUserPolicy", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(DeleteUserPolicy, "iam:DeleteUserPolicy", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(ListUserPolicies, "iam:ListUserPolicies", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| Ok(
    r.iam(&format!("user/{}", r.path("userName")?))
));
operation!(
    AttachUserPolicy,
    "iam:AttachUserPolicy",
    "arn:pw:iam::${Account}:user/{userName}",
    web::Json<PolicyArnRequest>,
    |r, _b| Ok(r.iam(&format!("user/{}", r.path("userName")?))),
    context | _cr,
    cb | vec![("iam:PolicyARN", cb.policy_arn.clone())]
);
operation!(
    ListAttachedUserPolicies,
    "iam:ListAttachedUserPolicies",
    "arn:pw:iam::${Account}:user/{userName}",
    NoBody,
    |r, _b| Ok(r.iam(&format!("user/{}", r.path("userName")?)))
);
operation!(
    DetachUserPolicy,
    "iam:DetachUserPolicy",
    "arn:pw:iam::${Account}:user/{userName}",
    NoBody,
    |r, _b| Ok(r.iam(&format!("user/{}", r.path("userName")?))),
    context | cr,
    _cb | cr.query("policyArn").map(|arn| vec![("iam:PolicyARN", arn)]).unwrap_or_default()
);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_user)
        .service(list_users)
        .service(get_user)
        .service(delete_user)
        .service(create_login_profile)
        .service(delete_login_profile)
        .service(put_user_policy)
        .service(get_user_policy)
        .service(delete_user_policy)
        .service(list_user_policies)
        .service(attach_user_policy)
        .service(list_attached_user_policies)
        .service(detach_user_policy);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1–64 letters, digits and +=,.@_- (unique in the account, whatever the case).
    pub user_name: String,
    #[serde(default)]
    pub tags: Vec<TagBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub user_name: String,
    #[schema(example = "AIDAEXAMPLEEXAMPLEEX")]
    pub user_id: String,
    #[schema(example = "arn:pw:iam::111122223333:user/alice")]
    pub arn: String,
    pub path: String,
    pub create_date: DateTime<Utc>,
    pub tags: Vec<TagBody>,
}

impl From<users::User> for UserBody {
    fn from(u: users::User) -> Self {
        Self {
            arn: u.arn(),
            tags: u.tags().into_iter().map(Into::into).collect(),
            user_name: u.user_name,
            user_id: u.user_id,
            path: u.path,
            create_date: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub user: UserBody,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersResponse {
    pub users: Vec<UserBody>,
    /// Present when there are more: pass it as `nextToken`.
    pub next_token: Option<String>,
    pub is_truncated: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginProfileRequest {
    /// The account's password policy applies.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginProfile {
    pub user_name: String,
    pub create_date: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginProfileResponse {
    pub login_profile: LoginProfile,
}

/// Creates a user (no password and no keys until given).
#[utoipa::path(
    tag = "iam", operation_id = "CreateUser", request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a user of that name exists"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/iam/users")]
pub async fn create_user(auth: Authorized<CreateUser>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let body = auth.body.into_inner();
    let tags: Vec<_> = body.tags.into_iter().map(Into::into).collect();
    let user = users::create(&mut conn, auth.caller.account(), &body.user_name, &tags).await?;
    Ok(HttpResponse::Created().json(UserResponse { user: user.into() }))
}

/// Lists the account's users by name.
#[utoipa::path(
    tag = "iam", operation_id = "ListUsers", params(Paging),
    responses((status = 200, body = ListUsersResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users")]
pub async fn list_users(
    auth: Authorized<ListUsers>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListUsersResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = users::list(&mut conn, auth.caller.account(), &page).await?;
    Ok(web::Json(ListUsersResponse {
        users: found.into_iter().map(Into::into).collect(),
        is_truncated: next_token.is_some(),
        next_token,
    }))
}

/// One user.
#[utoipa::path(
    tag = "iam", operation_id = "GetUser", params(("userName" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users/{userName}")]
pub async fn get_user(auth: Authorized<GetUser>, name: web::Path<String>) -> Result<web::Json<UserResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    Ok(web::Json(UserResponse { user: user.into() }))
}

/// Deletes a user that has no password, keys, groups or policies left.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteUser", params(("userName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "DeleteConflictException: remove what is still attached first")),
    security(("bearer" = []))
)]
#[delete("/v1/iam/users/{userName}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    auth: Authorized<DeleteUser>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    users::delete(&mut conn, auth.caller.account(), &name).await?;
    end_sessions(&state, &mut conn, &user.user_id, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives the user a password (or replaces it), so that it can sign in.
#[utoipa::path(
    tag = "iam", operation_id = "CreateLoginProfile", params(("userName" = String, Path)), request_body = LoginProfileRequest,
    responses((status = 200, body = LoginProfileResponse),
        (status = 400, body = ErrorBody, description = "PasswordPolicyViolationException"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/iam/users/{userName}/login-profile")]
pub async fn create_login_profile(
    state: web::Data<AppState>,
    auth: Authorized<CreateLoginProfile>,
    name: web::Path<String>,
) -> Result<web::Json<LoginProfileResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let account = accounts::find(&mut conn, auth.caller.account()).await?.ok_or_else(ApiError::internal)?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    if user.password_hash.is_some() {
        // Replacing a password is IAM's UpdateLoginProfile: it needs its own permission.
        crate::auth::authorize(&state, &auth.caller, "iam:UpdateLoginProfile", &auth.resource).await?;
    }
    let password = auth.body.password.clone();
    account
        .password_policy()
        .check(&password)
        .map_err(|m| ApiError::new(ErrorCode::PasswordPolicyViolationException, m))?;
    let hash = password_work(&state, move || passwords::hash(&password)).await?.map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })?;
    users::set_password(&mut conn, &user.user_id, Some(&hash)).await?;
    end_sessions(&state, &mut conn, &user.user_id, Some(auth.caller.claims.sid)).await?;
    Ok(web::Json(LoginProfileResponse {
        login_profile: LoginProfile { user_name: user.user_name, create_date: Utc::now() },
    }))
}

/// Removes the user's password: it can no longer sign in.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteLoginProfile", params(("userName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/users/{userName}/login-profile")]
pub async fn delete_login_profile(
    state: web::Data<AppState>,
    auth: Authorized<DeleteLoginProfile>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    if user.password_hash.is_none() {
        return Err(ApiError::new(
            ErrorCode::NoSuchEntityException,
            format!("the user {} has no login profile", user.user_name),
        ));
    }
    users::set_password(&mut conn, &user.user_id, None).await?;
    end_sessions(&state, &mut conn, &user.user_id, Some(auth.caller.claims.sid)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Creates or replaces an inline policy of the user.
#[utoipa::path(
    tag = "iam", operation_id = "PutUserPolicy", params(("userName" = String, Path), ("policyName" = String, Path)),
    request_body = PolicyDocumentRequest,
    responses((status = 200), (status = 400, body = ErrorBody, description = "MalformedPolicyDocumentException"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "LimitExceededException")),
    security(("bearer" = []))
)]
#[put("/v1/iam/users/{userName}/policies/{policyName}")]
pub async fn put_user_policy(
    auth: Authorized<PutUserPolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.put(&mut conn, &policy_name, &auth.body).await
}

/// One inline policy of the user.
#[utoipa::path(
    tag = "iam", operation_id = "GetUserPolicy", params(("userName" = String, Path), ("policyName" = String, Path)),
    responses((status = 200, body = InlinePolicyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users/{userName}/policies/{policyName}")]
pub async fn get_user_policy(
    auth: Authorized<GetUserPolicy>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<InlinePolicyResponse>, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.get(&mut conn, policy_name).await
}

/// Deletes an inline policy of the user.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteUserPolicy", params(("userName" = String, Path), ("policyName" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/users/{userName}/policies/{policyName}")]
pub async fn delete_user_policy(
    auth: Authorized<DeleteUserPolicy>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, policy_name) = path.into_inner();
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.delete(&mut conn, &policy_name).await
}

/// The names of the user's inline policies.
#[utoipa::path(
    tag = "iam", operation_id = "ListUserPolicies", params(("userName" = String, Path), Paging),
    responses((status = 200, body = PolicyNamesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users/{userName}/policies")]
pub async fn list_user_policies(
    auth: Authorized<ListUserPolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<PolicyNamesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.list(&mut conn, &paging).await
}

/// Attaches a managed policy (built-in or the account's own) to the user.
#[utoipa::path(
    tag = "iam", operation_id = "AttachUserPolicy", params(("userName" = String, Path)), request_body = PolicyArnRequest,
    responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such user or policy"), (status = 409, body = ErrorBody, description = "LimitExceededException")),
    security(("bearer" = []))
)]
#[post("/v1/iam/users/{userName}/attached-policies")]
pub async fn attach_user_policy(
    auth: Authorized<AttachUserPolicy>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.attach(&mut conn, &auth.body.policy_arn).await
}

/// The managed policies attached to the user.
#[utoipa::path(
    tag = "iam", operation_id = "ListAttachedUserPolicies", params(("userName" = String, Path), Paging),
    responses((status = 200, body = AttachedPoliciesResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users/{userName}/attached-policies")]
pub async fn list_attached_user_policies(
    auth: Authorized<ListAttachedUserPolicies>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<AttachedPoliciesResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.list_attached(&mut conn, &paging).await
}

/// Detaches a managed policy from the user.
#[utoipa::path(
    tag = "iam", operation_id = "DetachUserPolicy", params(("userName" = String, Path), PolicyArnQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/users/{userName}/attached-policies")]
pub async fn detach_user_policy(
    auth: Authorized<DetachUserPolicy>,
    name: web::Path<String>,
    query: web::Query<PolicyArnQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let owner = owner(&mut conn, auth.caller.account(), &name).await?;
    owner.detach(&mut conn, &query.policy_arn).await
}

/// The user named `name`, as the owner of its policies.
async fn owner<'a>(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &'a str,
    name: &str,
) -> Result<Owner<'a>, ApiError> {
    let entity = users::get(conn, account, name).await?;
    Ok(Owner { kind: OwnerKind::User, account, id: entity.user_id, name: entity.user_name })
}

/// Ends the user's sessions (but `keep`): after its password changes or it is
/// deleted, nothing signed in before may go on.
async fn end_sessions(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    user_id: &str,
    keep: Option<uuid::Uuid>,
) -> Result<(), ApiError> {
    for (session, expires_at) in pipewright_core::iam::sessions::revoke_for_user(conn, user_id, keep).await? {
        state.revoke_session(session, expires_at).await?;
    }
    Ok(())
}
