//! Notifications out (CodeStar Notifications' rules on a pipeline): the
//! database notes each state change of an execution, a stage or an action
//! of a pipeline that has an enabled rule (triggers in the migration, in
//! the change's own transaction); the worker turns each into the events
//! rules ask for, and delivers them to the rules' targets — HTTPS webhooks
//! with an HMAC-signed body, or Slack-compatible incoming webhooks — with
//! retries and backoff, keeping a delivery log the API reads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::iam::paging::Page;
use crate::iam::{IamError, is_unique_violation};
use crate::schema::{notification_deliveries as d, notification_events as e, notification_rules as r};
use crate::secrets::Cipher;

/// CodeStar Notifications' event types for pipelines: id and name.
pub const EVENT_TYPES: [(&str, &str); 17] = [
    ("codepipeline-pipeline-pipeline-execution-started", "Pipeline execution: Started"),
    ("codepipeline-pipeline-pipeline-execution-succeeded", "Pipeline execution: Succeeded"),
    ("codepipeline-pipeline-pipeline-execution-failed", "Pipeline execution: Failed"),
    ("codepipeline-pipeline-pipeline-execution-canceled", "Pipeline execution: Canceled"),
    ("codepipeline-pipeline-pipeline-execution-superseded", "Pipeline execution: Superseded"),
    ("codepipeline-pipeline-pipeline-execution-resumed", "Pipeline execution: Resumed"),
    ("codepipeline-pipeline-stage-execution-started", "Stage execution: Started"),
    ("codepipeline-pipeline-stage-execution-succeeded", "Stage execution: Succeeded"),
    ("codepipeline-pipeline-stage-execution-failed", "Stage execution: Failed"),
    ("codepipeline-pipeline-stage-execution-canceled", "Stage execution: Canceled"),
    ("codepipeline-pipeline-stage-execution-resumed", "Stage execution: Resumed"),
    ("codepipeline-pipeline-action-execution-started", "Action execution: Started"),
    ("codepipeline-pipeline-action-execution-succeeded", "Action execution: Succeeded"),
    ("codepipeline-pipeline-action-execution-failed", "Action execution: Failed"),
    ("codepipeline-pipeline-manual-approval-needed", "Manual approval: Needed"),
    ("codepipeline-pipeline-manual-approval-succeeded", "Manual approval: Succeeded"),
    ("codepipeline-pipeline-manual-approval-failed", "Manual approval: Failed"),
];

/// At most this many rules on a pipeline, and in an account.
pub const MAX_RULES_PER_PIPELINE: i64 = 10;
pub const MAX_RULES_PER_ACCOUNT: i64 = 100;
/// Days the delivery log keeps a delivery that ended.
pub const LOG_DAYS: i64 = 30;

/// At most this many targets per rule.
pub const MAX_TARGETS: usize = 10;
/// Attempts of a delivery before it fails for good.
pub const MAX_ATTEMPTS: i32 = 6;

/// A rule's target: `Webhook` (an http(s) URL; the body is signed with
/// `secretToken`, `X-Pipewright-Signature-256: sha256=HEX`) or `Slack` (a
/// Slack-compatible incoming webhook's https URL, kept secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationTarget {
    #[schema(example = "Webhook")]
    pub target_type: String,
    #[schema(example = "https://hooks.example.com/pipewright")]
    pub target_address: String,
    /// For `Webhook`: the key the body's HMAC-SHA256 is made with (1–100
    /// characters). Answered as `****`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<String>,
}

/// What a rule is made of (CreateNotificationRule's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleDefinition {
    /// 1–64 of letters, digits, spaces and `-_`, unique in the account.
    #[schema(example = "approvals")]
    pub name: String,
    /// The pipeline's ARN.
    #[schema(example = "arn:pw:codepipeline:local:111122223333:web")]
    pub resource: String,
    /// Event type ids (ListEventTypes).
    #[schema(example = json!(["codepipeline-pipeline-manual-approval-needed"]))]
    pub event_type_ids: Vec<String>,
    pub targets: Vec<NotificationTarget>,
    /// `FULL` (with additional attributes: revisions, the approval's
    /// custom data and review link) or `BASIC`.
    #[serde(default = "full")]
    #[schema(example = "FULL")]
    pub detail_type: String,
    /// `ENABLED` (default) or `DISABLED`.
    #[serde(default = "enabled")]
    #[schema(example = "ENABLED")]
    pub status: String,
}

fn full() -> String {
    "FULL".to_owned()
}

fn enabled() -> String {
    "ENABLED".to_owned()
}

/// `arn:pw:codestar-notifications:REGION:ACCOUNT:notificationrule/NAME`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:pw:codestar-notifications:{region}:{account}:notificationrule/{name}")
}

/// Why a rule's name cannot be used.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || " -_".contains(c));
    if ok { Ok(()) } else { Err(format!("name: {name:?} is not 1–64 of letters, digits, spaces and -_")) }
}

/// Why a definition cannot be stored (the fields without the database or
/// the network), naming the field.
pub fn check(rule: &RuleDefinition) -> Result<(), String> {
    check_name(&rule.name)?;
    if rule.event_type_ids.is_empty() {
        return Err("eventTypeIds: name at least one event type (ListEventTypes)".to_owned());
    }
    for (i, id) in rule.event_type_ids.iter().enumerate() {
        if !EVENT_TYPES.iter().any(|(known, _)| known == id) {
            return Err(format!("eventTypeIds[{i}]: {id:?} is not an event type (ListEventTypes)"));
        }
        if rule.event_type_ids[..i].contains(id) {
            return Err(format!("eventTypeIds[{i}]: {id} is named twice"));
        }
    }
    if rule.targets.is_empty() || rule.targets.len() > MAX_TARGETS {
        return Err(format!("targets: 1 to {MAX_TARGETS} targets"));
    }
    for (i, target) in rule.targets.iter().enumerate() {
        match target.target_type.as_str() {
            "Webhook" => {
                let secret = target.secret_token.as_deref().unwrap_or_default();
                if secret.is_empty() || secret.chars().count() > 100 || secret == crate::pipelines::MASK {
                    return Err(format!(
                        "targets[{i}].secretToken: a Webhook target needs a secret of 1–100 characters to sign with"
                    ));
                }
            }
            "Slack" => {
                if target.secret_token.is_some() {
                    return Err(format!("targets[{i}].secretToken: only for a Webhook target"));
                }
                if !target.target_address.to_ascii_lowercase().starts_with("https://") {
                    return Err(format!("targets[{i}].targetAddress: a Slack target's URL is https://"));
                }
            }
            other => return Err(format!("targets[{i}].targetType: {other:?} is not Webhook or Slack")),
        }
        if target.target_address.len() > 2048 {
            return Err(format!("targets[{i}].targetAddress: at most 2048 characters"));
        }
    }
    if !["FULL", "BASIC"].contains(&rule.detail_type.as_str()) {
        return Err(format!("detailType: {:?} is not FULL or BASIC", rule.detail_type));
    }
    if !["ENABLED", "DISABLED"].contains(&rule.status.as_str()) {
        return Err(format!("status: {:?} is not ENABLED or DISABLED", rule.status));
    }
    Ok(())
}

/// A target as it is answered: a Webhook's secret and a Slack URL's path
/// masked.
pub fn shown(target: &NotificationTarget) -> NotificationTarget {
    let mut shown = target.clone();
    if shown.secret_token.is_some() {
        shown.secret_token = Some(crate::pipelines::MASK.to_owned());
    }
    if target.target_type == "Slack" {
        shown.target_address = match url::Url::parse(&target.target_address) {
            Ok(url) => format!("{}://{}/{}", url.scheme(), url.host_str().unwrap_or_default(), crate::pipelines::MASK),
            Err(_) => crate::pipelines::MASK.to_owned(),
        };
    }
    shown
}

/// A stored rule.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = r)]
pub struct Rule {
    pub account_id: String,
    pub name: String,
    pub rule_id: Uuid,
    pub pipeline_id: Uuid,
    pub resource: String,
    pub event_type_ids: Value,
    /// The targets as answered (masked).
    pub targets: Value,
    pub sealed_targets: Vec<u8>,
    pub detail_type: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl Rule {
    pub fn event_type_ids(&self) -> Vec<String> {
        serde_json::from_value(self.event_type_ids.clone()).unwrap_or_default()
    }

    pub fn shown_targets(&self) -> Vec<NotificationTarget> {
        serde_json::from_value(self.targets.clone()).unwrap_or_default()
    }

    /// The targets with their addresses and secrets, opened.
    pub fn targets(&self, cipher: &Cipher) -> Option<Vec<NotificationTarget>> {
        let opened = cipher.open(&place(&self.account_id, self.rule_id), &self.sealed_targets)?;
        serde_json::from_str(opened.expose_secret()).ok()
    }
}

fn place(account: &str, rule_id: Uuid) -> String {
    format!("notificationrule:{account}:{rule_id}")
}

/// Stores a checked rule on a pipeline of the account.
pub async fn create(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    account: &str,
    pipeline_id: Uuid,
    rule: &RuleDefinition,
) -> Result<Rule, IamError> {
    let on_pipeline: i64 = r::table.filter(r::pipeline_id.eq(pipeline_id)).count().get_result(conn).await?;
    let in_account: i64 = r::table.filter(r::account_id.eq(account)).count().get_result(conn).await?;
    if on_pipeline >= MAX_RULES_PER_PIPELINE || in_account >= MAX_RULES_PER_ACCOUNT {
        return Err(IamError::LimitExceeded(format!(
            "at most {MAX_RULES_PER_PIPELINE} notification rules on a pipeline and {MAX_RULES_PER_ACCOUNT} in an account"
        )));
    }
    let rule_id = Uuid::new_v4();
    let sealed = cipher.seal(&place(account, rule_id), &serde_json::to_string(&rule.targets).unwrap_or_default())?;
    let shown: Vec<NotificationTarget> = rule.targets.iter().map(shown).collect();
    diesel::insert_into(r::table)
        .values((
            r::account_id.eq(account),
            r::name.eq(&rule.name),
            r::rule_id.eq(rule_id),
            r::pipeline_id.eq(pipeline_id),
            r::resource.eq(&rule.resource),
            r::event_type_ids.eq(json!(rule.event_type_ids)),
            r::targets.eq(json!(shown)),
            r::sealed_targets.eq(sealed),
            r::detail_type.eq(&rule.detail_type),
            r::enabled.eq(rule.status == "ENABLED"),
        ))
        .returning(Rule::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("a notification rule {:?} exists", rule.name))
            } else {
                e.into()
            }
        })
}

pub async fn find(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Option<Rule>, IamError> {
    Ok(r::table.find((account, name)).select(Rule::as_select()).first(conn).await.optional()?)
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<Rule>, Option<String>), IamError> {
    let mut query = r::table
        .select(Rule::as_select())
        .filter(r::account_id.eq(account))
        .order(r::name)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(r::name.gt(after.clone()));
    }
    Ok(page.finish(query.load(conn).await?, |rule| rule.name.clone()))
}

/// Deletes a rule and its delivery log; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<bool, IamError> {
    Ok(diesel::delete(r::table.find((account, name))).execute(conn).await? == 1)
}

/// A delivery of an event to a target, as the log keeps it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = d)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: Uuid,
    #[serde(skip)]
    pub rule_id: Uuid,
    pub target_index: i32,
    #[schema(example = "codepipeline-pipeline-manual-approval-needed")]
    pub event_type_id: String,
    /// What was (or is to be) sent, before a Slack target's formatting.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `Pending`, `Succeeded` or `Failed`.
    #[schema(example = "Succeeded")]
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status the target last answered.
    pub last_status_code: Option<i32>,
    /// What went wrong last, if anything did.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule's deliveries, newest first, a page at a time.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    rule_id: Uuid,
    page: &Page,
) -> Result<(Vec<Delivery>, Option<String>), IamError> {
    let mut query = d::table
        .select(Delivery::as_select())
        .filter(d::rule_id.eq(rule_id))
        .order((d::created_at.desc(), d::delivery_id.desc()))
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        let (time, id) = after.split_once('|').ok_or_else(|| IamError::InvalidInput("bad nextToken".to_owned()))?;
        let time = DateTime::parse_from_rfc3339(time)
            .map_err(|_| IamError::InvalidInput("bad nextToken".to_owned()))?
            .with_timezone(&Utc);
        let id: Uuid = id.parse().map_err(|_| IamError::InvalidInput("bad nextToken".to_owned()))?;
        query = query.filter(d::created_at.lt(time).or(d::created_at.eq(time).and(d::delivery_id.lt(id))));
    }
    Ok(page.finish(query.load(conn).await?, |x| format!("{}|{}", x.created_at.to_rfc3339(), x.delivery_id)))
}

/// A state change the database noted.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = e)]
pub struct Noted {
    pub id: i64,
    pub pipeline_id: Uuid,
    pub execution_id: Uuid,
    pub kind: String,
    pub stage_name: Option<String>,
    pub action_name: Option<String>,
    pub status: String,
    pub previous: Option<String>,
    pub noted_at: DateTime<Utc>,
}

/// The event types a noted change is: an execution's, a stage's, an
/// action's, and for an approval action also the approval's.
pub fn event_types(noted: &Noted, approval: bool) -> Vec<&'static str> {
    let resumed = noted.status == "InProgress"
        && noted.previous.as_deref().is_some_and(|p| ["Failed", "Stopped", "Cancelled"].contains(&p));
    let state = match noted.status.as_str() {
        "InProgress" if resumed => "resumed",
        "InProgress" => "started",
        "Succeeded" => "succeeded",
        "Failed" => "failed",
        "Stopped" | "Cancelled" | "Abandoned" => "canceled",
        "Superseded" => "superseded",
        _ => return Vec::new(),
    };
    let kind = match noted.kind.as_str() {
        "pipeline" => "pipeline-execution",
        "stage" => "stage-execution",
        _ => "action-execution",
    };
    let mut types = Vec::new();
    let mut add = |id: String| {
        if let Some((known, _)) = EVENT_TYPES.iter().find(|(k, _)| *k == id) {
            types.push(*known);
        }
    };
    add(format!("codepipeline-pipeline-{kind}-{state}"));
    if approval && noted.kind == "action" {
        let approval_state = match state {
            "started" | "resumed" => "needed",
            other => other,
        };
        add(format!("codepipeline-pipeline-manual-approval-{approval_state}"));
    }
    types
}

/// What the worker needs to build the events of a noted change.
pub struct Context<'a> {
    pub region: &'a str,
    /// The console's address (`PIPEWRIGHT_PUBLIC_URL`).
    pub public_url: &'a str,
}

/// Turns noted changes into deliveries for the rules that ask for them, in
/// one transaction, at most `limit` at a time (any number of workers may
/// do this at once). Returns how many changes were taken.
pub async fn expand(conn: &mut AsyncPgConnection, context: &Context<'_>, limit: i64) -> Result<usize, IamError> {
    use crate::schema::{pipeline_executions as x, pipeline_versions as v};
    conn.transaction::<_, IamError, _>(async move |conn| {
        let noted: Vec<Noted> =
            e::table.select(Noted::as_select()).order(e::id).limit(limit).for_update().skip_locked().load(conn).await?;
        for change in &noted {
            let rules: Vec<Rule> = r::table
                .filter(r::pipeline_id.eq(change.pipeline_id))
                .filter(r::enabled.eq(true))
                .select(Rule::as_select())
                .load(conn)
                .await?;
            if rules.is_empty() {
                continue;
            }
            let Some((account, name, version, revisions, trigger)) = x::table
                .find(change.execution_id)
                .select((x::account_id, x::pipeline_name, x::pipeline_version, x::source_revisions, x::trigger))
                .first::<(String, String, i32, Value, Value)>(conn)
                .await
                .optional()?
            else {
                continue;
            };
            // The action's declaration, as the execution ran it.
            let declaration: Option<Value> = v::table
                .filter(v::pipeline_id.eq(change.pipeline_id))
                .filter(v::version.eq(version))
                .select(v::declaration)
                .first(conn)
                .await
                .optional()?;
            let action = declaration.as_ref().and_then(|d| {
                let stage =
                    d["stages"].as_array()?.iter().find(|s| s["name"].as_str() == change.stage_name.as_deref())?;
                stage["actions"]
                    .as_array()?
                    .iter()
                    .find(|a| a["name"].as_str() == change.action_name.as_deref())
                    .cloned()
            });
            let approval = action.as_ref().is_some_and(|a| {
                a["actionTypeId"]["category"] == "Approval"
                    && a["actionTypeId"]["owner"] == crate::pipelines::action_types::BUILTIN_OWNER
            });
            // An approval's custom data as its run resolved it (variables
            // replaced): the run's summary while it waits.
            let custom_data: Option<String> = if approval {
                use crate::schema::action_executions as a;
                a::table
                    .filter(a::execution_id.eq(change.execution_id))
                    .filter(a::stage_name.eq(change.stage_name.clone().unwrap_or_default()))
                    .filter(a::action_name.eq(change.action_name.clone().unwrap_or_default()))
                    .order(a::started_at.desc())
                    .select(a::summary)
                    .first::<Option<String>>(conn)
                    .await
                    .optional()?
                    .flatten()
            } else {
                None
            };
            let pipeline_arn = format!("arn:pw:codepipeline:{}:{account}:{name}", context.region);
            let link = format!("{}/#/pipelines/{}", context.public_url, urlencode(&name));
            for event_type in event_types(change, approval) {
                for rule in rules.iter().filter(|rule| rule.event_type_ids().iter().any(|t| t == event_type)) {
                    let mut detail = json!({"pipeline": name, "execution-id": change.execution_id, "version": version,
                        "state": state_word(event_type)});
                    if let Some(stage) = &change.stage_name {
                        detail["stage"] = json!(stage);
                    }
                    if let Some(action_name) = &change.action_name {
                        detail["action"] = json!(action_name);
                        if let Some(action) = &action {
                            detail["type"] = action["actionTypeId"].clone();
                        }
                    }
                    let mut payload = json!({
                        "version": "0",
                        "account": account,
                        "region": context.region,
                        "time": change.noted_at,
                        "source": "pw.codepipeline",
                        "detailType": detail_type(&change.kind),
                        "eventTypeId": event_type,
                        "notificationRuleArn": arn(context.region, &rule.account_id, &rule.name),
                        "resources": [pipeline_arn],
                        "detail": detail,
                    });
                    if rule.detail_type == "FULL" {
                        let mut additional =
                            json!({"consoleLink": link, "sourceRevisions": revisions, "trigger": trigger});
                        if approval && event_type == "codepipeline-pipeline-manual-approval-needed" {
                            additional["approval"] = json!({
                                "customData": custom_data,
                                "approvalReviewLink": link,
                            });
                        }
                        payload["additionalAttributes"] = additional;
                    }
                    for index in 0..rule.shown_targets().len() {
                        diesel::insert_into(d::table)
                            .values((
                                d::delivery_id.eq(Uuid::new_v4()),
                                d::rule_id.eq(rule.rule_id),
                                d::target_index.eq(i32::try_from(index).unwrap_or_default()),
                                d::event_type_id.eq(event_type),
                                d::payload.eq(&payload),
                                d::status.eq("Pending"),
                            ))
                            .execute(conn)
                            .await?;
                    }
                }
            }
        }
        let ids: Vec<i64> = noted.iter().map(|n| n.id).collect();
        diesel::delete(e::table.filter(e::id.eq_any(&ids))).execute(conn).await?;
        Ok(noted.len())
    })
    .await
}

fn urlencode(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

fn detail_type(kind: &str) -> &'static str {
    match kind {
        "pipeline" => "CodePipeline Pipeline Execution State Change",
        "stage" => "CodePipeline Stage Execution State Change",
        _ => "CodePipeline Action Execution State Change",
    }
}

fn state_word(event_type: &str) -> &'static str {
    match event_type.rsplit('-').next().unwrap_or_default() {
        "started" => "STARTED",
        "succeeded" => "SUCCEEDED",
        "failed" => "FAILED",
        "canceled" => "CANCELED",
        "superseded" => "SUPERSEDED",
        "resumed" => "RESUMED",
        "needed" => "NEEDED",
        _ => "UNKNOWN",
    }
}

/// A delivery due now, claimed: it is not due again for a minute (another
/// worker leaves it), unless its attempt is recorded first.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery: Delivery,
    pub rule: Rule,
}

/// Claims up to `limit` due deliveries.
pub async fn claim_due(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Due>, IamError> {
    conn.transaction::<_, IamError, _>(async move |conn| {
        let found: Vec<Delivery> = d::table
            .filter(d::status.eq("Pending"))
            .filter(d::next_attempt_at.le(Utc::now()))
            .order(d::next_attempt_at)
            .limit(limit)
            .select(Delivery::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        let ids: Vec<Uuid> = found.iter().map(|x| x.delivery_id).collect();
        diesel::update(d::table.filter(d::delivery_id.eq_any(&ids)))
            .set(d::next_attempt_at.eq(Utc::now() + chrono::Duration::seconds(60)))
            .execute(conn)
            .await?;
        let mut due = Vec::new();
        for delivery in found {
            if let Some(rule) = r::table
                .filter(r::rule_id.eq(delivery.rule_id))
                .select(Rule::as_select())
                .first(conn)
                .await
                .optional()?
            {
                due.push(Due { delivery, rule });
            }
        }
        Ok(due)
    })
    .await
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// Whether it is worth trying again (a 5xx, 408, 429, no answer).
    pub retry: bool,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Records an attempt: done, failed for good, or due again after a backoff
/// of 1, 2, 4, 8, 16 seconds.
pub async fn record(conn: &mut AsyncPgConnection, delivery: &Delivery, attempt: &Attempt) -> Result<(), IamError> {
    let attempts = delivery.attempts + 1;
    let (status, next) = if attempt.succeeded() {
        ("Succeeded", Utc::now())
    } else if attempt.retry && attempts < MAX_ATTEMPTS {
        ("Pending", Utc::now() + chrono::Duration::seconds(1 << (attempts - 1).clamp(0, 10)))
    } else {
        ("Failed", Utc::now())
    };
    // (Only the attempt this worker claimed: a delivery another worker
    // took over after the lease is that worker's to record.)
    diesel::update(
        d::table
            .filter(d::delivery_id.eq(delivery.delivery_id))
            .filter(d::status.eq("Pending"))
            .filter(d::attempts.eq(delivery.attempts)),
    )
    .set((
        d::status.eq(status),
        d::attempts.eq(attempts),
        d::next_attempt_at.eq(next),
        d::last_status_code.eq(attempt.status_code.map(i32::from)),
        d::last_error.eq(attempt.error.as_deref()),
        d::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets deliveries that ended more than [`LOG_DAYS`] ago.
pub async fn prune(conn: &mut AsyncPgConnection) -> Result<usize, IamError> {
    Ok(diesel::delete(
        d::table
            .filter(d::status.ne("Pending"))
            .filter(d::updated_at.lt(Utc::now() - chrono::Duration::days(LOG_DAYS))),
    )
    .execute(conn)
    .await?)
}

/// The body a target gets: the event as JSON for a webhook; for Slack, a
/// message (`text`) naming the event, with the console's link.
pub fn body_for(target: &NotificationTarget, payload: &Value) -> Value {
    if target.target_type != "Slack" {
        return payload.clone();
    }
    let detail = &payload["detail"];
    let name = EVENT_TYPES
        .iter()
        .find(|(id, _)| payload["eventTypeId"].as_str() == Some(id))
        .map_or("State change", |(_, name)| *name);
    let place: Vec<&str> = ["stage", "action"].iter().filter_map(|k| detail[*k].as_str()).collect();
    let mut text = format!("*{}* {name}", detail["pipeline"].as_str().unwrap_or_default());
    if !place.is_empty() {
        text.push_str(&format!(" at {}", place.join("/")));
    }
    if let Some(data) = payload["additionalAttributes"]["approval"]["customData"].as_str() {
        text.push_str(&format!(": {data}"));
    }
    if let Some(link) = payload["additionalAttributes"]["consoleLink"].as_str() {
        text.push_str(&format!(" <{link}|Open in Pipewright>"));
    }
    let mut fields = BTreeMap::new();
    fields.insert("text", Value::String(text));
    json!(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(kind: &str, status: &str, previous: Option<&str>) -> Noted {
        Noted {
            id: 1,
            pipeline_id: Uuid::nil(),
            execution_id: Uuid::nil(),
            kind: kind.to_owned(),
            stage_name: Some("Approve".to_owned()),
            action_name: Some("Review".to_owned()),
            status: status.to_owned(),
            previous: previous.map(str::to_owned),
            noted_at: Utc::now(),
        }
    }

    #[test]
    fn changes_are_codestar_event_types() {
        assert_eq!(
            event_types(&noted("action", "InProgress", None), true),
            ["codepipeline-pipeline-action-execution-started", "codepipeline-pipeline-manual-approval-needed"]
        );
        assert_eq!(
            event_types(&noted("action", "Failed", Some("InProgress")), true),
            ["codepipeline-pipeline-action-execution-failed", "codepipeline-pipeline-manual-approval-failed"]
        );
        assert_eq!(
            event_types(&noted("pipeline", "InProgress", Some("Failed")), false),
            ["codepipeline-pipeline-pipeline-execution-resumed"]
        );
        assert_eq!(
            event_types(&noted("pipeline", "Superseded", None), false),
            ["codepipeline-pipeline-pipeline-execution-superseded"]
        );
        assert!(event_types(&noted("pipeline", "Stopping", None), false).is_empty());
    }

    #[test]
    fn secrets_and_slack_urls_are_masked() {
        let slack = NotificationTarget {
            target_type: "Slack".into(),
            target_address: "https://hooks.slack.com/services/T0/B0/secret".into(),
            secret_token: None,
        };
        assert_eq!(shown(&slack).target_address, "https://hooks.slack.com/****");
        let hook = NotificationTarget {
            target_type: "Webhook".into(),
            target_address: "https://example.com/x".into(),
            secret_token: Some("k".into()),
        };
        assert_eq!(shown(&hook).secret_token.as_deref(), Some("****"));
    }
}
