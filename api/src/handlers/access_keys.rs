//! Access keys for programs: CreateAccessKey, ListAccessKeys,
//! UpdateAccessKey, DeleteAccessKey, and exchanging a key for a token.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use pipewright_core::auth::tokens::{Claims, PrincipalKind};
use pipewright_core::iam::{access_keys, sessions, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::session::{client_prefix, throttle_attempt, throttle_clear};
use crate::auth::RequestTx;
use crate::auth::{Authorized, NoBody, OperationDoc, ResourceRequest, source_ip};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

fn user_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    Ok(r.iam(&format!("user/{}", r.path("userName")?)))
}

operation!(CreateAccessKey, "iam:CreateAccessKey", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| user_arn(
    r
));
operation!(ListAccessKeys, "iam:ListAccessKeys", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| user_arn(r));
operation!(
    UpdateAccessKey,
    "iam:UpdateAccessKey",
    "arn:pw:iam::${Account}:user/{userName}",
    web::Json<UpdateAccessKeyRequest>,
    |r, _b| user_arn(r)
);
operation!(DeleteAccessKey, "iam:DeleteAccessKey", "arn:pw:iam::${Account}:user/{userName}", NoBody, |r, _b| user_arn(
    r
));

inventory::submit! { OperationDoc::public("GetTokenForAccessKey", "none: the access key's secret is the credential") }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_access_key)
        .service(list_access_keys)
        .service(update_access_key)
        .service(delete_access_key)
        .service(token);
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewAccessKey {
    pub user_name: String,
    #[schema(example = "AKIAEXAMPLEEXAMPLEEX")]
    pub access_key_id: String,
    /// Shown this once; only a hash is kept.
    pub secret_access_key: String,
    pub status: String,
    pub create_date: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessKeyResponse {
    pub access_key: NewAccessKey,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub create_date: DateTime<Utc>,
    pub last_used_date: Option<DateTime<Utc>>,
    /// Made before Pipewright took SigV4: it still exchanges tokens
    /// (`/v1/auth/token`), but cannot sign the AWS CLI's and SDKs' requests.
    /// Make a new key, then delete this one.
    pub needs_rotation: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListAccessKeysResponse {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
    pub is_truncated: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccessKeyRequest {
    /// `Active` or `Inactive`.
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub expiration: DateTime<Utc>,
}

/// Creates an access key (at most two a user); the secret is in this answer only.
#[utoipa::path(
    tag = "iam", operation_id = "CreateAccessKey", params(("userName" = String, Path)),
    responses((status = 201, body = CreateAccessKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "LimitExceededException: two keys already")),
    security(("bearer" = []))
)]
#[post("/v1/iam/users/{userName}/access-keys")]
pub async fn create_access_key(
    state: web::Data<AppState>,
    auth: Authorized<CreateAccessKey>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    let (key, secret) = access_keys::create(&mut conn, &state.secrets, auth.caller.account(), &user.user_id).await?;
    Ok(HttpResponse::Created().json(CreateAccessKeyResponse {
        access_key: NewAccessKey {
            user_name: user.user_name,
            access_key_id: key.access_key_id,
            secret_access_key: secret,
            status: key.status,
            create_date: key.created_at,
        },
    }))
}

/// The user's access keys (never their secrets), with when each was last used.
#[utoipa::path(
    tag = "iam", operation_id = "ListAccessKeys", params(("userName" = String, Path)),
    responses((status = 200, body = ListAccessKeysResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/iam/users/{userName}/access-keys")]
pub async fn list_access_keys(
    auth: Authorized<ListAccessKeys>,
    name: web::Path<String>,
) -> Result<web::Json<ListAccessKeysResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    let keys = access_keys::list(&mut conn, &user.user_id).await?;
    Ok(web::Json(ListAccessKeysResponse {
        access_key_metadata: keys
            .into_iter()
            .map(|(k, signs)| AccessKeyMetadata {
                user_name: user.user_name.clone(),
                access_key_id: k.access_key_id,
                status: k.status,
                create_date: k.created_at,
                last_used_date: k.last_used_at,
                needs_rotation: !signs,
            })
            .collect(),
        is_truncated: false,
    }))
}

/// Makes a key Active or Inactive (an inactive key gets no tokens).
#[utoipa::path(
    tag = "iam", operation_id = "UpdateAccessKey", params(("userName" = String, Path), ("accessKeyId" = String, Path)),
    request_body = UpdateAccessKeyRequest,
    responses((status = 200), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[patch("/v1/iam/users/{userName}/access-keys/{accessKeyId}")]
pub async fn update_access_key(
    auth: Authorized<UpdateAccessKey>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, key_id) = path.into_inner();
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    access_keys::set_status(&mut conn, &user.user_id, &key_id, &auth.body.status).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Deletes an access key.
#[utoipa::path(
    tag = "iam", operation_id = "DeleteAccessKey", params(("userName" = String, Path), ("accessKeyId" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/iam/users/{userName}/access-keys/{accessKeyId}")]
pub async fn delete_access_key(
    auth: Authorized<DeleteAccessKey>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, key_id) = path.into_inner();
    let mut conn = auth.db().await?;
    let user = users::get(&mut conn, auth.caller.account(), &name).await?;
    access_keys::delete(&mut conn, &user.user_id, &key_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Exchanges an access key for a short-lived access token.
#[utoipa::path(
    tag = "auth", operation_id = "GetTokenForAccessKey", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse),
        (status = 401, body = ErrorBody, description = "unknown or inactive key, or wrong secret"),
        (status = 429, body = ErrorBody)),
    security(())
)]
#[post("/v1/auth/token")]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<web::Json<TokenResponse>, ApiError> {
    let tx = RequestTx::begin(&req, &state).await?;
    let ip = client_prefix(&source_ip(&req));
    let counters = [(format!("token:key-ip:{}:{ip}", body.access_key_id), 5), (format!("token:ip:{ip}"), 30)];
    throttle_attempt(&state, &counters).await?;
    let mut conn = tx.conn().await;
    let key = access_keys::authenticate(&mut conn, &body.access_key_id, &body.secret_access_key).await?;
    let user = match &key {
        Some(key) => users::find_by_id(&mut conn, &key.user_id).await?,
        None => None,
    };
    let (Some(key), Some(user)) = (key, user) else {
        return Err(ApiError::new(
            ErrorCode::UnrecognizedClientException,
            "the access key is unknown or inactive, or the secret is wrong",
        ));
    };
    throttle_clear(&state, &counters).await;
    let session = sessions::create(
        &mut conn,
        sessions::NewSession {
            account_id: &user.account_id,
            principal_arn: &user.arn(),
            user_id: Some(&user.user_id),
            role_id: None,
            session_policy: None,
            refresh_hash: None,
            expires_at: Utc::now() + chrono::Duration::seconds(state.access_token_secs),
        },
    )
    .await?;
    let mut claims = Claims::new(
        user.arn(),
        user.account_id.clone(),
        PrincipalKind::User,
        user.user_id.clone(),
        session.session_id,
        state.access_token_secs,
    );
    claims.name = Some(user.user_name.clone());
    claims.key = Some(key.access_key_id);
    let access_token = state.keys.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        ApiError::internal()
    })?;
    Ok(web::Json(TokenResponse {
        access_token,
        expiration: DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
    }))
}
