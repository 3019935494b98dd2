//! Webhooks, with CodePipeline's operation names: PutWebhook, ListWebhooks,
//! DeleteWebhook; and the receiving URL a Git host posts its push and
//! pull-request events to (`POST /v1/hooks/{id}`). A delivery is checked
//! here — its signature in constant time, its filters, its format — and
//! handed to the worker in the request's transaction, with its audit event.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::paging::Page;
use pipewright_core::webhooks::{self, Delivery, Webhook, WebhookDefinition};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::Paging;
use crate::auth::{Authorized, NoBody, OperationDoc, RequestTx};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

operation!(
    PutWebhook,
    "codepipeline:PutWebhook",
    "arn:pw:codepipeline:${Region}:${Account}:webhook:{name}",
    web::Json<PutWebhookRequest>,
    |r, b| {
        webhooks::check(&b.webhook).map_err(invalid_definition)?;
        Ok(webhooks::arn(r.region, r.account, &b.webhook.name))
    }
);
operation!(
    ListWebhooks,
    "codepipeline:ListWebhooks",
    "arn:pw:codepipeline:${Region}:${Account}:webhook:*",
    NoBody,
    |r, _b| Ok(webhooks::arn(r.region, r.account, "*"))
);
operation!(
    DeleteWebhook,
    "codepipeline:DeleteWebhook",
    "arn:pw:codepipeline:${Region}:${Account}:webhook:{name}",
    NoBody,
    |r, _b| Ok(webhooks::arn(r.region, r.account, r.path("name")?))
);

inventory::submit! { OperationDoc::public(
    "DeliverWebhook",
    "a Git host's delivery, authenticated as the webhook says (its secret's signature, an address range, or none)",
) }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(put_webhook).service(list_webhooks).service(delete_webhook).service(deliver_webhook);
}

/// A definition's problem, with CodePipeline's error name for it.
fn invalid_definition(message: String) -> ApiError {
    if message.contains("authentication") {
        ApiError::new(ErrorCode::InvalidWebhookAuthenticationParametersException, message)
    } else if message.contains("filters") {
        ApiError::new(ErrorCode::InvalidWebhookFilterPatternException, message)
    } else {
        ApiError::validation(message)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutWebhookRequest {
    pub webhook: WebhookDefinition,
}

/// A webhook as ListWebhooks and PutWebhook answer it (CodePipeline's
/// `ListWebhookItem`); its secret reads `****`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListWebhookItem {
    pub definition: WebhookDefinition,
    /// Where the Git host posts its events (`POST`, JSON).
    #[schema(example = "https://ci.example.com/v1/hooks/5f0c…")]
    pub url: String,
    #[schema(example = "arn:pw:codepipeline:local:111122223333:webhook:github-push")]
    pub arn: String,
    /// The last delivery that was taken.
    pub last_triggered: Option<DateTime<Utc>>,
}

impl ListWebhookItem {
    fn of(webhook: &Webhook, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            definition: webhook.definition()?,
            url: format!("{}/v1/hooks/{}", state.public_url, webhook.webhook_id),
            arn: webhook.arn(&state.region),
            last_triggered: webhook.last_triggered,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutWebhookResponse {
    pub webhook: ListWebhookItem,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListWebhooksResponse {
    pub webhooks: Vec<ListWebhookItem>,
    pub next_token: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResponse {
    /// Whether it was handed on to be matched with the source's trigger
    /// (which then decides whether an execution starts).
    pub accepted: bool,
    /// Why not, when it was not (a ping, a filter that did not match, an
    /// event that is not a push or a pull request).
    pub reason: Option<String>,
}

/// Creates a webhook, or replaces the definition of the one of that name
/// (its URL stays). Its target must be a Git source action of the
/// pipeline's first stage; the caller also needs
/// `codepipeline:StartPipelineExecution` on that pipeline.
#[utoipa::path(
    tag = "webhooks", operation_id = "PutWebhook", request_body = PutWebhookRequest,
    responses((status = 200, body = PutWebhookResponse, description = "created or replaced"), (status = 400, body = ErrorBody, description = "the definition is not valid (ValidationException, InvalidWebhookAuthenticationParametersException, InvalidWebhookFilterPatternException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the target pipeline does not exist (PipelineNotFoundException)")),
    security(("bearer" = []))
)]
#[post("/v1/webhooks")]
pub async fn put_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PutWebhook>,
) -> Result<HttpResponse, ApiError> {
    let definition = &auth.body.webhook;
    let mut shown = definition.clone();
    if shown.authentication_configuration.secret_token.is_some() {
        shown.authentication_configuration.secret_token = Some(pipewright_core::pipelines::MASK.to_owned());
    }
    req.extensions_mut().insert(crate::audit::AuditedRequest(serde_json::json!({"webhook": shown})));
    let account = auth.caller.account();
    let mut conn = auth.db().await?;
    let pipeline = pipewright_core::pipelines::store::find(&mut conn, account, &definition.target_pipeline)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PipelineNotFoundException,
                format!("webhook.targetPipeline: no pipeline {:?} in this account", definition.target_pipeline),
            )
        })?;
    webhooks::check_target(definition, &pipeline.declaration()?).map_err(invalid_definition)?;
    // A webhook starts its pipeline: whoever makes one may start it.
    let pipeline_arn = format!("arn:pw:codepipeline:{}:{account}:{}", state.region, definition.target_pipeline);
    crate::auth::authorize(&state, &auth.caller, "codepipeline:StartPipelineExecution", &pipeline_arn).await?;
    let webhook = webhooks::put(&mut conn, &state.secrets, account, definition).await?;
    let item = ListWebhookItem::of(&webhook, &state)?;
    // (The URL is a credential of an IP or UNAUTHENTICATED webhook: the
    // audit log records the rest.)
    let mut recorded = serde_json::to_value(&item).unwrap_or_default();
    recorded["url"] = serde_json::json!(format!("{}/v1/hooks/{}", state.public_url, pipewright_core::pipelines::MASK));
    let mut response = HttpResponse::Ok().json(PutWebhookResponse { webhook: item });
    response.extensions_mut().insert(crate::audit::AuditedResponse(serde_json::json!({"webhook": recorded})));
    Ok(response)
}

/// The account's webhooks by name, with their URLs.
#[utoipa::path(
    tag = "webhooks", operation_id = "ListWebhooks", params(Paging),
    responses((status = 200, body = ListWebhooksResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)")),
    security(("bearer" = []))
)]
#[get("/v1/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    auth: Authorized<ListWebhooks>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListWebhooksResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = webhooks::list(&mut conn, auth.caller.account(), &page).await?;
    let webhooks = found.iter().map(|w| ListWebhookItem::of(w, &state)).collect::<Result<_, _>>()?;
    Ok(web::Json(ListWebhooksResponse { webhooks, next_token }))
}

/// Deletes a webhook: its URL takes no more deliveries.
#[utoipa::path(
    tag = "webhooks", operation_id = "DeleteWebhook", params(("name" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "WebhookNotFoundException")),
    security(("bearer" = []))
)]
#[delete("/v1/webhooks/{name}")]
pub async fn delete_webhook(
    auth: Authorized<DeleteWebhook>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    if !webhooks::delete(&mut conn, auth.caller.account(), &name).await? {
        return Err(ApiError::new(ErrorCode::WebhookNotFoundException, format!("no webhook {name:?} in this account")));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Takes a Git host's delivery: a push or pull-request event in GitHub's
/// (`X-GitHub-Event`, `X-Hub-Signature-256`), Gitea's (`X-Gitea-Event`,
/// `X-Gitea-Signature`) or GitLab's (`X-Gitlab-Event`, `X-Gitlab-Token`)
/// format, as JSON. Refused with 401 when it is not authentic (recorded in
/// the webhook's account); 202 when handed on.
#[utoipa::path(
    tag = "webhooks", operation_id = "DeliverWebhook", params(("webhookId" = String, Path, description = "the id in the webhook's URL (a credential: never recorded)")),
    request_body(content = serde_json::Value, description = "the Git host's event", content_type = "application/json"),
    responses((status = 202, body = DeliveryResponse, description = "handed on to be matched with the source's trigger"),
        (status = 200, body = DeliveryResponse, description = "taken, with nothing to run (a ping, a filter that did not match)"),
        (status = 400, body = ErrorBody, description = "not a delivery this reads (ValidationException)"),
        (status = 401, body = ErrorBody, description = "not signed with the webhook's secret, or from outside its range (WebhookAuthenticationFailedException)"),
        (status = 404, body = ErrorBody, description = "no webhook at this URL (WebhookNotFoundException)")),
    security(())
)]
#[post("/v1/hooks/{webhookId}")]
pub async fn deliver_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(ErrorCode::WebhookNotFoundException, "no webhook at this URL");
    if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let body =
        crate::auth::read_limited(payload.into_inner(), crate::error::rejections::JSON_LIMIT, "the delivery").await?;
    let tx = RequestTx::begin(&req, &state).await?;
    let mut conn = tx.conn().await;
    let webhook = webhooks::by_id(&mut conn, &id).await?.ok_or_else(not_found)?;
    let arn = webhook.arn(&state.region);
    // Recorded in the webhook's account, as the webhook.
    req.extensions_mut().insert(crate::audit::AuditedAccount {
        account_id: webhook.account_id.clone(),
        user_arn: Some(arn.clone()),
        user_name: webhook.name.clone(),
    });
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let event = header("x-github-event").or_else(|| header("x-gitea-event")).or_else(|| header("x-gitlab-event"));
    let mut recorded = serde_json::json!({"webhook": webhook.name, "event": event});
    req.extensions_mut().insert(crate::audit::AuditedRequest(recorded.clone()));
    let definition = webhook.definition()?;
    let refused = |why: &str| {
        ApiError::new(ErrorCode::WebhookAuthenticationFailedException, format!("the delivery is refused: {why}"))
    };
    match definition.authentication.as_str() {
        "GITHUB_HMAC" => {
            let secret = webhook.secret(&state.secrets).ok_or_else(ApiError::internal)?;
            if !webhooks::signed(&secret, header, &body) {
                return Err(refused("its signature is not one made with the webhook's secret"));
            }
        }
        "IP" => {
            let range = definition.authentication_configuration.allowed_ip_range.as_deref().unwrap_or_default();
            let from = crate::auth::source_ip(&req).parse::<std::net::IpAddr>().ok();
            let allowed = range.parse::<ipnet::IpNet>().ok().zip(from).is_some_and(|(r, ip)| r.contains(&ip));
            if !allowed {
                return Err(refused("it comes from outside the webhook's AllowedIPRange"));
            }
        }
        _ => {}
    }
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation(format!("the delivery is not a JSON document: {e}")))?;
    let pipeline =
        pipewright_core::pipelines::store::find(&mut conn, &webhook.account_id, &definition.target_pipeline).await?;
    let declaration = pipeline.as_ref().map(|p| p.declaration()).transpose()?;
    let action = declaration
        .as_ref()
        .and_then(|d| d.stages.iter().take(1).flat_map(|s| &s.actions).find(|a| a.name == definition.target_action));
    let (Some(pipeline), Some(action)) = (pipeline.as_ref(), action) else {
        return Ok(taken(format!(
            "the target {}/{} no longer exists",
            definition.target_pipeline, definition.target_action
        )));
    };
    // (A JSONPath over a large body takes time: not on the server's threads.)
    let (filters, configuration, document) = (definition.filters.clone(), action.configuration.clone(), payload);
    let (passed, payload) = web::block(move || {
        let passed = webhooks::passes(&filters, &configuration, &document);
        (passed, document)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    if let Err(why) = passed {
        return Ok(taken(why));
    }
    let (change, before) =
        match webhooks::read(header, &payload).map_err(|why| ApiError::validation(format!("the delivery: {why}")))? {
            Delivery::Ignored(why) => return Ok(taken(why)),
            Delivery::Change { change, before } => (change, before),
        };
    recorded["ref"] = serde_json::json!(change.event.reference());
    recorded["commit"] = serde_json::json!(change.commit);
    req.extensions_mut().insert(crate::audit::AuditedRequest(recorded));
    let message = pipewright_core::messaging::Message::Change {
        pipeline_id: pipeline.pipeline_id,
        action_name: action.name.clone(),
        change: Box::new(change),
        before,
        webhook: arn,
    };
    let queued = pipewright_core::messaging::enqueue(&mut conn, &message).await?;
    webhooks::triggered(&mut conn, &webhook).await?;
    drop(conn);
    crate::auth::publish_after_commit(&req, vec![queued]);
    Ok(HttpResponse::Accepted().json(DeliveryResponse { accepted: true, reason: None }))
}

/// A delivery taken with nothing to run.
fn taken(reason: String) -> HttpResponse {
    HttpResponse::Ok().json(DeliveryResponse { accepted: false, reason: Some(reason) })
}
