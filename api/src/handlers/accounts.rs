//! CreateAccount: a new tenant and its root user.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, post, web};
use pipewright_core::auth::passwords::{self, PasswordPolicy};
use pipewright_core::config::Signup;
use pipewright_core::iam::accounts;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::password_work;
use crate::auth::OperationDoc;
use crate::auth::RequestTx;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::server::AppState;

inventory::submit! { OperationDoc::public(
    "CreateAccount",
    "open to anyone, or only to the operator token's holder (PIPEWRIGHT_SIGNUP)",
) }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_account);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// Unique across the service: 3–63 lower-case letters, digits and hyphens.
    pub alias: Option<String>,
    /// The root user's password (the default password policy applies).
    pub root_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccountResponse {
    #[schema(example = "111122223333")]
    pub account_id: String,
    pub alias: Option<String>,
    #[schema(example = "arn:pw:iam::111122223333:root")]
    pub root_user_arn: String,
}

/// Creates an account (a 12-digit id) and its root user, who signs in with
/// user name `root`.
#[utoipa::path(
    tag = "accounts",
    operation_id = "CreateAccount",
    request_body = CreateAccountRequest,
    responses(
        (status = 201, body = CreateAccountResponse),
        (status = 400, body = ErrorBody, description = "invalid alias or password"),
        (status = 401, body = ErrorBody, description = "sign-up is for the operator only and the operator token is missing or wrong"),
        (status = 409, body = ErrorBody, description = "the alias is taken"),
    ),
    security((), ("operator" = []))
)]
#[post("/v1/accounts")]
pub async fn create_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<CreateAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let tx = RequestTx::begin(&req, &state).await?;
    if state.signup == Signup::Operator {
        let given =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let expected = state.operator_token.as_ref().map(|t| t.expose_secret().to_owned());
        let matches = match (given, expected) {
            (Some(given), Some(expected)) => pipewright_core::auth::ids::hashes_equal(given, &expected),
            _ => false,
        };
        if !matches {
            return Err(ApiError::new(
                ErrorCode::UnrecognizedClientException,
                "accounts are created by the operator here: send Authorization: Bearer <operator token>",
            ));
        }
    }
    let body = body.into_inner();
    PasswordPolicy::default()
        .check(&body.root_password)
        .map_err(|m| ApiError::new(ErrorCode::PasswordPolicyViolationException, m))?;
    let password = body.root_password;
    let hash = password_work(&state, move || passwords::hash(&password)).await?.map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })?;
    let mut conn = tx.conn().await;
    let account = accounts::create(&mut conn, body.alias.as_deref(), &hash).await?;
    tracing::info!(account = %account.account_id, "account created");
    // Recorded in the new account's own log.
    req.extensions_mut().insert(crate::audit::AuditedAccount {
        account_id: account.account_id.clone(),
        user_arn: Some(format!("arn:pw:iam::{}:root", account.account_id)),
        user_name: "root".to_owned(),
    });
    Ok(HttpResponse::Created().json(CreateAccountResponse {
        root_user_arn: format!("arn:pw:iam::{}:root", account.account_id),
        account_id: account.account_id,
        alias: account.alias,
    }))
}
