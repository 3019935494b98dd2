//! The callback an Invoke/HTTP action with `waitForCallback` waits for:
//! `POST /v1/callbacks/{actionExecutionId}`, its body signed with the
//! secret the action's request carried (`X-Pipewright-Signature-256:
//! sha256=HMAC-SHA256(secret, body)`), checked in constant time. It ends
//! the action, Succeeded or Failed, with the output variables it gives.

use std::collections::BTreeMap;

use actix_web::{HttpMessage, HttpRequest, post, web};
use pipewright_core::executions::store::{self as runs, Finisher, Outcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{OperationDoc, RequestTx};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::server::AppState;

inventory::submit! { OperationDoc::public(
    "PutCallbackResult",
    "signed with the secret the Invoke/HTTP action's request carried (X-Pipewright-Signature-256)",
) }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(put_callback_result);
}

/// How the called service says the action ended.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallbackResult {
    /// `Succeeded` or `Failed`.
    #[schema(example = "Succeeded")]
    pub status: String,
    /// Shown as the action's summary (at most 2048 characters).
    #[schema(example = "scanned: no findings")]
    pub summary: Option<String>,
    /// The action's output variables (`#{Namespace.NAME}` downstream):
    /// names of letters, digits and `_-`, values of at most 1000 characters.
    #[serde(default)]
    #[schema(example = json!({"REPORT_ID": "r-42"}))]
    pub output_variables: BTreeMap<String, String>,
    /// An http(s) link to the run in the called service.
    pub external_execution_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackResponse {
    pub accepted: bool,
}

/// Ends an Invoke/HTTP action that waits for its callback.
#[utoipa::path(
    tag = "executions", operation_id = "PutCallbackResult",
    params(("actionExecutionId" = String, Path, description = "the id in the action's X-Pipewright-Callback-Url")),
    request_body = CallbackResult,
    responses((status = 200, body = CallbackResponse, description = "the action ended"),
        (status = 400, body = ErrorBody, description = "the result is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "not signed with the action's callback secret (CallbackSignatureMismatchException)"),
        (status = 404, body = ErrorBody, description = "no action waits for a callback here (ActionExecutionNotFoundException)")),
    security(())
)]
#[post("/v1/callbacks/{actionExecutionId}")]
pub async fn put_callback_result(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<web::Json<CallbackResponse>, ApiError> {
    let not_waiting =
        || ApiError::new(ErrorCode::ActionExecutionNotFoundException, "no action waits for a callback at this URL");
    let id: uuid::Uuid = id.parse().map_err(|_| not_waiting())?;
    let body = crate::auth::read_limited(payload.into_inner(), 256 * 1024, "the callback").await?;
    let tx = RequestTx::begin(&req, &state).await?;
    let mut conn = tx.conn().await;
    let (action, secret, account, pipeline) =
        runs::waiting_for_callback(&mut conn, id).await?.ok_or_else(not_waiting)?;
    // Recorded in the pipeline's account, as the action's callback.
    req.extensions_mut().insert(crate::audit::AuditedAccount {
        account_id: account.clone(),
        user_arn: Some(format!(
            "arn:pw:codepipeline:{}:{account}:{pipeline}/{}/{}",
            state.region, action.stage_name, action.action_name
        )),
        user_name: "callback".to_owned(),
    });
    let signature = req.headers().get("x-pipewright-signature-256").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !signature.starts_with("sha256=")
        || !pipewright_core::signing::verify(secret.to_string().as_bytes(), &body, signature)
    {
        return Err(ApiError::new(
            ErrorCode::CallbackSignatureMismatchException,
            "the callback is not signed with the action's secret: send X-Pipewright-Signature-256: sha256=<HMAC-SHA256 \
             of the body with X-Pipewright-Callback-Secret>",
        ));
    }
    let result: CallbackResult =
        serde_json::from_slice(&body).map_err(|e| ApiError::validation(format!("the callback's body: {e}")))?;
    req.extensions_mut().insert(crate::audit::AuditedRequest(serde_json::json!({
        "status": result.status, "summary": result.summary,
        "outputVariables": result.output_variables.keys().collect::<Vec<_>>(),
    })));
    let succeeded = match result.status.as_str() {
        "Succeeded" => true,
        "Failed" => false,
        other => return Err(ApiError::validation(format!("status: {other:?} is not Succeeded or Failed"))),
    };
    if result.summary.as_ref().is_some_and(|s| s.chars().count() > 2048) {
        return Err(ApiError::validation("summary: at most 2048 characters"));
    }
    if let Some(problem) = pipewright_core::executions::output_variables_problem(&result.output_variables) {
        return Err(ApiError::validation(problem));
    }
    let external_url = result.external_execution_url.filter(|u| {
        let lower = u.to_ascii_lowercase();
        (lower.starts_with("https://") || lower.starts_with("http://")) && u.len() <= 2048
    });
    // The call's own variables (StatusCode), then the callback's.
    let mut variables: BTreeMap<String, String> =
        serde_json::from_value(action.output_variables.clone()).unwrap_or_default();
    variables.extend(result.output_variables);
    let outcome = Outcome {
        succeeded,
        summary: result.summary.clone(),
        error_code: (!succeeded).then(|| "CallbackFailed".to_owned()),
        error_message: (!succeeded)
            .then(|| result.summary.clone().unwrap_or_else(|| "the callback said Failed".to_owned())),
        external_url,
        variables,
        ..Outcome::default()
    };
    let queued = runs::finish_action(&mut conn, id, Finisher::Anyone, outcome).await?.ok_or_else(not_waiting)?;
    drop(conn);
    crate::auth::publish_after_commit(&req, queued);
    crate::auth::notify_after_commit(&req, action.pipeline_id);
    Ok(web::Json(CallbackResponse { accepted: true }))
}
