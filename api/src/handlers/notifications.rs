//! Notification rules on pipelines, with CodeStar Notifications' operation
//! names: CreateNotificationRule, ListNotificationRules,
//! DescribeNotificationRule, DeleteNotificationRule, ListEventTypes; and
//! ListNotificationDeliveries, the delivery log of a rule (each event sent
//! to each target, with its attempts).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use pipewright_core::iam::paging::Page;
use pipewright_core::notifications::{self, Delivery, NotificationTarget, RuleDefinition};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::Paging;
use crate::auth::{Authorized, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

operation!(
    CreateNotificationRule,
    "codestar-notifications:CreateNotificationRule",
    "arn:pw:codestar-notifications:${Region}:${Account}:notificationrule/{name}",
    web::Json<RuleDefinition>,
    |r, b| {
        notifications::check(b).map_err(ApiError::validation)?;
        Ok(notifications::arn(r.region, r.account, &b.name))
    }
);
operation!(
    ListNotificationRules,
    "codestar-notifications:ListNotificationRules",
    "arn:pw:codestar-notifications:${Region}:${Account}:notificationrule/*",
    NoBody,
    |r, _b| Ok(notifications::arn(r.region, r.account, "*"))
);
operation!(
    DescribeNotificationRule,
    "codestar-notifications:DescribeNotificationRule",
    "arn:pw:codestar-notifications:${Region}:${Account}:notificationrule/{name}",
    NoBody,
    |r, _b| rule_arn(r)
);
operation!(
    DeleteNotificationRule,
    "codestar-notifications:DeleteNotificationRule",
    "arn:pw:codestar-notifications:${Region}:${Account}:notificationrule/{name}",
    NoBody,
    |r, _b| rule_arn(r)
);
operation!(
    ListNotificationDeliveries,
    "codestar-notifications:ListNotificationDeliveries",
    "arn:pw:codestar-notifications:${Region}:${Account}:notificationrule/{name}",
    NoBody,
    |r, _b| rule_arn(r)
);
operation!(ListEventTypes, "codestar-notifications:ListEventTypes", "*", NoBody, |_r, _b| Ok("*".to_owned()));

fn rule_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    let name = r.path("name")?;
    notifications::check_name(name).map_err(ApiError::validation)?;
    Ok(notifications::arn(r.region, r.account, name))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_notification_rule)
        .service(list_notification_rules)
        .service(list_event_types)
        .service(describe_notification_rule)
        .service(delete_notification_rule)
        .service(list_notification_deliveries);
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::ResourceNotFoundException, format!("no notification rule {name:?} in this account"))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateNotificationRuleResponse {
    #[schema(example = "arn:pw:codestar-notifications:local:111122223333:notificationrule/approvals")]
    pub arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeSummary {
    #[schema(example = "codepipeline-pipeline-manual-approval-needed")]
    pub event_type_id: String,
    #[schema(example = "Manual approval: Needed")]
    pub event_type_name: String,
    #[schema(example = "Pipeline")]
    pub resource_type: String,
    #[schema(example = "CodePipeline")]
    pub service_name: String,
}

fn event_type(id: &str) -> EventTypeSummary {
    let name = notifications::EVENT_TYPES.iter().find(|(known, _)| *known == id).map_or("", |(_, name)| *name);
    EventTypeSummary {
        event_type_id: id.to_owned(),
        event_type_name: name.to_owned(),
        resource_type: "Pipeline".to_owned(),
        service_name: "CodePipeline".to_owned(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListEventTypesResponse {
    pub event_types: Vec<EventTypeSummary>,
}

/// A target as answered: a Webhook's secret and a Slack URL's path masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSummary {
    #[schema(example = "Webhook")]
    pub target_type: String,
    /// A Slack URL's path reads `****`.
    pub target_address: String,
    /// `****` for a Webhook target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<String>,
    /// `ACTIVE`.
    pub target_status: String,
}

impl From<NotificationTarget> for TargetSummary {
    fn from(target: NotificationTarget) -> Self {
        Self {
            target_type: target.target_type,
            target_address: target.target_address,
            secret_token: target.secret_token,
            target_status: "ACTIVE".to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeNotificationRuleResponse {
    pub arn: String,
    pub name: String,
    /// The pipeline's ARN.
    pub resource: String,
    pub event_types: Vec<EventTypeSummary>,
    pub targets: Vec<TargetSummary>,
    /// `FULL` or `BASIC`.
    pub detail_type: String,
    /// `ENABLED` or `DISABLED`.
    pub status: String,
    pub created_timestamp: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRuleSummary {
    pub id: String,
    pub arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListNotificationRulesResponse {
    pub notification_rules: Vec<NotificationRuleSummary>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListNotificationDeliveriesResponse {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    pub next_token: Option<String>,
}

/// Makes a rule: the pipeline's changes of the event types named are sent
/// to its targets. Each target's URL must be one the service may reach (not
/// this host's or a private network's unless the operator allows it). The
/// caller also needs `codepipeline:GetPipelineState` on the pipeline (its
/// states leave through the rule).
#[utoipa::path(
    tag = "notifications", operation_id = "CreateNotificationRule", request_body = RuleDefinition,
    responses((status = 201, body = CreateNotificationRuleResponse, description = "created"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "no such pipeline (ResourceNotFoundException)"),
        (status = 409, body = ErrorBody, description = "a rule of that name exists (ResourceAlreadyExistsException), or the pipeline or account has as many rules as it may (LimitExceededException)")),
    security(("bearer" = []))
)]
#[post("/v1/notification-rules")]
pub async fn create_notification_rule(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<CreateNotificationRule>,
) -> Result<HttpResponse, ApiError> {
    let rule = &auth.body;
    // (What the log records: the targets masked, a Slack URL being a secret.)
    let mut recorded = serde_json::to_value(rule).unwrap_or_default();
    recorded["targets"] = serde_json::json!(rule.targets.iter().map(notifications::shown).collect::<Vec<_>>());
    req.extensions_mut().insert(crate::audit::AuditedRequest(recorded));
    let account = auth.caller.account();
    let prefix = format!("arn:pw:codepipeline:{}:{account}:", state.region);
    let Some(pipeline_name) = rule.resource.strip_prefix(&prefix).filter(|n| !n.is_empty() && !n.contains('/')) else {
        return Err(ApiError::validation(format!("resource: the ARN of a pipeline of this account ({prefix}NAME)")));
    };
    crate::auth::authorize(&state, &auth.caller, "codepipeline:GetPipelineState", &rule.resource).await?;
    for (i, target) in rule.targets.iter().enumerate() {
        state.sources.check_http_target(&target.target_address).await.map_err(|why| {
            let why = if target.target_type == "Slack" { "the address rules refuse its host".to_owned() } else { why };
            ApiError::validation(format!("targets[{i}].targetAddress: {why}"))
        })?;
    }
    let mut conn = auth.db().await?;
    let pipeline =
        pipewright_core::pipelines::store::find(&mut conn, account, pipeline_name).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::ResourceNotFoundException, format!("resource: no pipeline {pipeline_name:?}"))
        })?;
    notifications::create(&mut conn, &state.secrets, account, pipeline.pipeline_id, rule).await.map_err(
        |e| match e {
            pipewright_core::iam::IamError::EntityAlreadyExists(m) => {
                ApiError::new(ErrorCode::ResourceAlreadyExistsException, m)
            }
            other => other.into(),
        },
    )?;
    Ok(HttpResponse::Created().json(CreateNotificationRuleResponse { arn: auth.resource.clone() }))
}

/// The account's rules by name.
#[utoipa::path(
    tag = "notifications", operation_id = "ListNotificationRules", params(Paging),
    responses((status = 200, body = ListNotificationRulesResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)")),
    security(("bearer" = []))
)]
#[get("/v1/notification-rules")]
pub async fn list_notification_rules(
    state: web::Data<AppState>,
    auth: Authorized<ListNotificationRules>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListNotificationRulesResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let (found, next_token) = notifications::list(&mut conn, auth.caller.account(), &page).await?;
    let notification_rules = found
        .iter()
        .map(|r| {
            let arn = notifications::arn(&state.region, &r.account_id, &r.name);
            NotificationRuleSummary { id: r.name.clone(), arn }
        })
        .collect();
    Ok(web::Json(ListNotificationRulesResponse { notification_rules, next_token }))
}

/// The event types a rule may name (CodePipeline's).
#[utoipa::path(
    tag = "notifications", operation_id = "ListEventTypes",
    responses((status = 200, body = ListEventTypesResponse, description = "done"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)")),
    security(("bearer" = []))
)]
#[get("/v1/notification-event-types")]
pub async fn list_event_types(_auth: Authorized<ListEventTypes>) -> web::Json<ListEventTypesResponse> {
    web::Json(ListEventTypesResponse {
        event_types: notifications::EVENT_TYPES.iter().map(|(id, _)| event_type(id)).collect(),
    })
}

/// A rule: its pipeline, event types and targets (masked).
#[utoipa::path(
    tag = "notifications", operation_id = "DescribeNotificationRule", params(("name" = String, Path)),
    responses((status = 200, body = DescribeNotificationRuleResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[get("/v1/notification-rules/{name}")]
pub async fn describe_notification_rule(
    state: web::Data<AppState>,
    auth: Authorized<DescribeNotificationRule>,
    name: web::Path<String>,
) -> Result<web::Json<DescribeNotificationRuleResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let rule = notifications::find(&mut conn, auth.caller.account(), &name).await?.ok_or_else(|| not_found(&name))?;
    Ok(web::Json(DescribeNotificationRuleResponse {
        arn: notifications::arn(&state.region, &rule.account_id, &rule.name),
        event_types: rule.event_type_ids().iter().map(|id| event_type(id)).collect(),
        targets: rule.shown_targets().into_iter().map(TargetSummary::from).collect(),
        resource: rule.resource,
        detail_type: rule.detail_type,
        status: if rule.enabled { "ENABLED" } else { "DISABLED" }.to_owned(),
        created_timestamp: rule.created_at,
        name: rule.name,
    }))
}

/// Deletes a rule and its delivery log; what is pending is not sent.
#[utoipa::path(
    tag = "notifications", operation_id = "DeleteNotificationRule", params(("name" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[delete("/v1/notification-rules/{name}")]
pub async fn delete_notification_rule(
    auth: Authorized<DeleteNotificationRule>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    if !notifications::delete(&mut conn, auth.caller.account(), &name).await? {
        return Err(not_found(&name));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A rule's delivery log, newest first: each event sent to each target,
/// with its attempts, the last HTTP status and error (retried after a 5xx,
/// 408, 429 or no answer, after 1, 2, 4, 8 and 16 seconds).
#[utoipa::path(
    tag = "notifications", operation_id = "ListNotificationDeliveries", params(("name" = String, Path), Paging),
    responses((status = 200, body = ListNotificationDeliveriesResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"), (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[get("/v1/notification-rules/{name}/deliveries")]
pub async fn list_notification_deliveries(
    state: web::Data<AppState>,
    auth: Authorized<ListNotificationDeliveries>,
    name: web::Path<String>,
    paging: web::Query<Paging>,
) -> Result<web::Json<ListNotificationDeliveriesResponse>, ApiError> {
    let page = Page::new(paging.max_results, paging.next_token.as_deref())?;
    let mut conn = auth.db().await?;
    let rule = notifications::find(&mut conn, auth.caller.account(), &name).await?.ok_or_else(|| not_found(&name))?;
    // (What was sent holds the pipeline's states: readable to whom may read them.)
    crate::auth::authorize(&state, &auth.caller, "codepipeline:GetPipelineState", &rule.resource).await?;
    let (deliveries, next_token) = notifications::deliveries(&mut conn, rule.rule_id, &page).await?;
    Ok(web::Json(ListNotificationDeliveriesResponse { deliveries, next_token }))
}
