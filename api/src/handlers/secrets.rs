//! An account's secrets, with Secrets Manager's operation names:
//! CreateSecret, ListSecrets, DescribeSecret, PutSecretValue, DeleteSecret.
//! No operation answers a value (there is no GetSecretValue here): an
//! action reads one through a `SECRETS_MANAGER` environment variable, under
//! its pipeline's role, when it starts.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::IamError;
use pipewright_core::iam::paging::Page;
use pipewright_core::secrets;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{Paging, TagBody};
use crate::auth::{Authorized, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

operation!(
    CreateSecret,
    "secretsmanager:CreateSecret",
    "arn:pw:secretsmanager:${Region}:${Account}:secret:{name}",
    web::Json<CreateSecretRequest>,
    |r, b| {
        secrets::check_name(&b.name).map_err(ApiError::validation)?;
        Ok(secrets::arn(r.region, r.account, &b.name))
    }
);
operation!(
    ListSecrets,
    "secretsmanager:ListSecrets",
    "arn:pw:secretsmanager:${Region}:${Account}:secret:*",
    NoBody,
    |r, _b| Ok(secrets::arn(r.region, r.account, "*"))
);
operation!(
    DescribeSecret,
    "secretsmanager:DescribeSecret",
    "arn:pw:secretsmanager:${Region}:${Account}:secret:{name}",
    NoBody,
    |r, _b| secret_arn(r)
);
operation!(
    PutSecretValue,
    "secretsmanager:PutSecretValue",
    "arn:pw:secretsmanager:${Region}:${Account}:secret:{name}",
    web::Json<PutSecretValueRequest>,
    |r, _b| secret_arn(r)
);
operation!(
    DeleteSecret,
    "secretsmanager:DeleteSecret",
    "arn:pw:secretsmanager:${Region}:${Account}:secret:{name}",
    NoBody,
    |r, _b| secret_arn(r)
);

fn secret_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    let name = decoded(r.path("name")?);
    secrets::check_name(&name).map_err(ApiError::validation)?;
    Ok(secrets::arn(r.region, r.account, &name))
}

/// A secret's name as its path segment holds it: the router leaves `/`,
/// `+` and `%` encoded (`prod%2Fdeploy-token`).
fn decoded(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%2f", "/").replace("%2B", "+").replace("%2b", "+").replace("%25", "%")
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_secret)
        .service(list_secrets)
        .service(describe_secret)
        .service(put_secret_value)
        .service(delete_secret);
}

/// Secrets Manager's error names for the store's errors.
fn answer(e: IamError) -> ApiError {
    match e {
        IamError::NoSuchEntity(m) => ApiError::new(ErrorCode::ResourceNotFoundException, m),
        IamError::EntityAlreadyExists(m) => ApiError::new(ErrorCode::ResourceExistsException, m),
        other => other.into(),
    }
}

/// What the audit log records of a request that carries a value.
fn audited_without_value(req: &HttpRequest, fields: serde_json::Value) {
    req.extensions_mut().insert(crate::audit::AuditedRequest(fields));
}

/// A value as text; anything else is refused without being echoed (an
/// error's message reaches the caller and the audit log).
fn secret_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => Ok(SecretString::from(text)),
        _ => Err(serde::de::Error::custom("secretString must be a string")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSecretRequest {
    /// 1–512 of letters, digits and `/_+=.@-`, unique in the account.
    #[schema(example = "prod/deploy-token")]
    pub name: String,
    /// The value (1–65536 bytes). Never answered by any operation.
    #[schema(value_type = String, example = "s3cr3t")]
    #[serde(deserialize_with = "secret_text")]
    pub secret_string: SecretString,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutSecretValueRequest {
    /// The new value (1–65536 bytes); it becomes the current version.
    #[schema(value_type = String)]
    #[serde(deserialize_with = "secret_text")]
    pub secret_string: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersionResponse {
    #[schema(example = "arn:pw:secretsmanager:local:111122223333:secret:prod/deploy-token")]
    pub arn: String,
    pub name: String,
    /// The id of the value now current.
    pub version_id: uuid::Uuid,
}

/// A secret's description: never its value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    pub created_date: DateTime<Utc>,
    /// When the value was last put.
    pub last_changed_date: DateTime<Utc>,
    /// When an action last read the value.
    pub last_accessed_date: Option<DateTime<Utc>>,
    pub version_id: uuid::Uuid,
    pub tags: Vec<TagBody>,
}

impl SecretDescription {
    fn of(secret: secrets::Secret, region: &str) -> Self {
        Self {
            arn: secrets::arn(region, &secret.account_id, &secret.name),
            tags: secret.tags().into_iter().map(Into::into).collect(),
            name: secret.name,
            description: secret.description,
            created_date: secret.created_at,
            last_changed_date: secret.changed_at,
            last_accessed_date: secret.accessed_at,
            version_id: secret.version_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSecretsResponse {
    pub secret_list: Vec<SecretDescription>,
    pub next_token: Option<String>,
}

/// Creates a secret with its first value, sealed at rest.
#[utoipa::path(
    tag = "secrets", operation_id = "CreateSecret", request_body = CreateSecretRequest,
    responses((status = 201, body = SecretVersionResponse, description = "created"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 409, body = ErrorBody, description = "ResourceExistsException")),
    security(("bearer" = []))
)]
#[post("/v1/secrets")]
pub async fn create_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<CreateSecret>,
) -> Result<HttpResponse, ApiError> {
    let body = &auth.body;
    audited_without_value(
        &req,
        serde_json::json!({"name": body.name, "description": body.description, "tags": body.tags}),
    );
    let tags: Vec<_> = body.tags.iter().cloned().map(Into::into).collect();
    let mut conn = auth.db().await?;
    let secret = secrets::create(
        &mut conn,
        &state.secrets,
        auth.caller.account(),
        secrets::NewSecret {
            name: &body.name,
            value: &body.secret_string,
            description: body.description.as_deref(),
            tags: &tags,
        },
    )
    .await
    .map_err(answer)?;
    Ok(HttpResponse::Created().json(SecretVersionResponse {
        arn: auth.resource.clone(),
        name: secret.name,
        version_id: secret.version_id,
    }))
}

/// Lists the account's secrets by name: descriptions only.
#[utoipa::path(
    tag = "secrets", operation_id = "ListSecrets", params(Paging),
    responses((status = 200, body = ListSecretsResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)")),
    security(("bearer" = []))
)]
#[get("/v1/secrets")]
pub async fn list_secrets(
    state: web::Data<AppState>,
    auth: Authorized<ListSecrets>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListSecretsResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = secrets::list(&mut conn, auth.caller.account(), &page).await?;
    Ok(web::Json(ListSecretsResponse {
        secret_list: found.into_iter().map(|s| SecretDescription::of(s, &state.region)).collect(),
        next_token,
    }))
}

/// One secret's description (never its value). A name holding `/` is sent
/// with it encoded (`prod%2Fdeploy-token`).
#[utoipa::path(
    tag = "secrets", operation_id = "DescribeSecret", params(("name" = String, Path)),
    responses((status = 200, body = SecretDescription, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[get("/v1/secrets/{name}")]
pub async fn describe_secret(
    state: web::Data<AppState>,
    auth: Authorized<DescribeSecret>,
    name: web::Path<String>,
) -> Result<web::Json<SecretDescription>, ApiError> {
    let mut conn = auth.db().await?;
    let secret = secrets::get(&mut conn, auth.caller.account(), &decoded(&name)).await.map_err(answer)?;
    Ok(web::Json(SecretDescription::of(secret, &state.region)))
}

/// Puts a new value: actions started from now on read it.
#[utoipa::path(
    tag = "secrets", operation_id = "PutSecretValue", params(("name" = String, Path)), request_body = PutSecretValueRequest,
    responses((status = 200, body = SecretVersionResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[put("/v1/secrets/{name}/value")]
pub async fn put_secret_value(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PutSecretValue>,
    name: web::Path<String>,
) -> Result<web::Json<SecretVersionResponse>, ApiError> {
    audited_without_value(&req, serde_json::json!({}));
    let mut conn = auth.db().await?;
    let name = decoded(&name);
    let secret = secrets::put_value(&mut conn, &state.secrets, auth.caller.account(), &name, &auth.body.secret_string)
        .await
        .map_err(answer)?;
    Ok(web::Json(SecretVersionResponse {
        arn: auth.resource.clone(),
        name: secret.name,
        version_id: secret.version_id,
    }))
}

/// Deletes a secret at once, with its value: actions naming it fail from
/// then on (Secrets Manager's ForceDeleteWithoutRecovery).
#[utoipa::path(
    tag = "secrets", operation_id = "DeleteSecret", params(("name" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[delete("/v1/secrets/{name}")]
pub async fn delete_secret(auth: Authorized<DeleteSecret>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    secrets::delete(&mut conn, auth.caller.account(), &decoded(&name)).await.map_err(answer)?;
    Ok(HttpResponse::NoContent().finish())
}
