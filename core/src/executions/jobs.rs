//! Custom actions' jobs (CodePipeline's job API) in PostgreSQL: a custom
//! action's run queues a job; an external job worker polls for it
//! (dispatched with a fresh nonce and artifact token), acknowledges it with
//! that nonce, and ends it with a success (perhaps with a continuation
//! token: then the next job of the same action is queued, carrying it) or
//! a failure, which ends the action through [`store::finish_action`]. The
//! action's lease is the jobs' deadline: the sweeper times them out.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::sql_types::{Bool, Nullable};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, IntoSql, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::Status;
use super::store::{self, ActionExecution, ArtifactLocation, Execution, Finisher, Outcome, SourceRevision};
use crate::iam::IamError;
use crate::messaging::Queued;
use crate::pipelines::{ActionTypeId, PipelineDeclaration, custom_types};
use crate::schema::{action_executions, jobs};

/// A job's statuses, CodePipeline's words.
pub const QUEUED: &str = "Queued";
pub const DISPATCHED: &str = "Dispatched";
pub const IN_PROGRESS: &str = "InProgress";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const TIMED_OUT: &str = "TimedOut";

/// The Redis channel (under the cache's prefix) a PollForJobs that waits
/// listens on: one per account and action type.
pub fn channel(account: &str, id: &ActionTypeId) -> String {
    format!("jobs:{account}:{}/{}/{}", id.category, id.provider, id.version)
}

/// A job's row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub job_id: Uuid,
    pub action_execution_id: Uuid,
    pub account_id: String,
    pub category: String,
    pub provider: String,
    pub version: String,
    pub query_value: Option<String>,
    pub status: String,
    pub nonce: Option<String>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub continuation_token: Option<String>,
    pub artifact_token: Option<String>,
    pub outputs: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    pub fn action_type_id(&self) -> ActionTypeId {
        ActionTypeId {
            category: self.category.clone(),
            owner: custom_types::OWNER.to_owned(),
            provider: self.provider.clone(),
            version: self.version.clone(),
        }
    }

    /// The output artifacts the job worker uploaded.
    pub fn outputs(&self) -> Vec<ArtifactLocation> {
        serde_json::from_value(self.outputs.clone()).unwrap_or_default()
    }

    /// Whether a job worker may still act on it (its action runs on).
    fn open(&self) -> bool {
        [QUEUED, DISPATCHED, IN_PROGRESS].contains(&self.status.as_str())
    }
}

/// 244 random bits (two v4 UUIDs), in hex.
fn random_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Queues a job for the action's run; returns the channel to tell once
/// committed.
pub async fn queue(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    account: &str,
    id: &ActionTypeId,
    query_value: Option<String>,
    continuation_token: Option<&str>,
    outputs: &[ArtifactLocation],
) -> Result<String, IamError> {
    diesel::insert_into(jobs::table)
        .values((
            jobs::job_id.eq(Uuid::new_v4()),
            jobs::action_execution_id.eq(action_execution_id),
            jobs::account_id.eq(account),
            jobs::category.eq(&id.category),
            jobs::provider.eq(&id.provider),
            jobs::version.eq(&id.version),
            jobs::query_value.eq(query_value),
            jobs::continuation_token.eq(continuation_token),
            jobs::outputs.eq(serde_json::to_value(outputs).unwrap_or_default()),
        ))
        .execute(conn)
        .await?;
    Ok(channel(account, id))
}

/// The jobs of the type (whose queryable property has `query_value`, when
/// given) that wait for a job worker: queued, or dispatched `ack_secs` ago
/// and not acknowledged — of actions that still run.
fn waiting<'a>(
    account: &'a str,
    id: &'a ActionTypeId,
    query_value: Option<&'a str>,
    ack_secs: u64,
) -> Box<dyn BoxableExpression<jobs::table, Pg, SqlType = Nullable<Bool>> + 'a> {
    let stale = Utc::now() - Duration::seconds(i64::try_from(ack_secs).unwrap_or(60));
    let running = action_executions::table
        .filter(action_executions::status.eq(Status::InProgress.as_str()))
        .filter(action_executions::job_worker.eq(true))
        .select(action_executions::action_execution_id);
    Box::new(
        jobs::account_id
            .eq(account)
            .and(jobs::category.eq(&id.category))
            .and(jobs::provider.eq(&id.provider))
            .and(jobs::version.eq(&id.version))
            .and(jobs::query_value.eq(query_value).or(query_value.is_none().into_sql::<Bool>()))
            .and(jobs::status.eq(QUEUED).or(jobs::status.eq(DISPATCHED).and(jobs::dispatched_at.lt(stale))))
            .and(jobs::action_execution_id.eq_any(running)),
    )
}

/// Hands up to `max` waiting jobs of the type (whose queryable property has
/// `query_value`, when given) to the caller: each dispatched with a new
/// nonce and artifact token. A job dispatched `ack_secs` ago and not
/// acknowledged is handed out again (its first worker's nonce no longer
/// works). Jobs others are dispatching are skipped, not waited for.
pub async fn dispatch(
    conn: &mut AsyncPgConnection,
    account: &str,
    id: &ActionTypeId,
    query_value: Option<&str>,
    max: i64,
    ack_secs: u64,
) -> Result<Vec<Job>, IamError> {
    let ids: Vec<Uuid> = jobs::table
        .filter(waiting(account, id, query_value, ack_secs))
        .order(jobs::created_at)
        .limit(max)
        .select(jobs::job_id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let mut dispatched = Vec::with_capacity(ids.len());
    for job_id in ids {
        let job: Job = diesel::update(jobs::table.find(job_id))
            .set((
                jobs::status.eq(DISPATCHED),
                jobs::nonce.eq(Some(Uuid::new_v4().to_string())),
                jobs::artifact_token.eq(Some(random_token())),
                jobs::dispatched_at.eq(Some(Utc::now())),
                jobs::updated_at.eq(Utc::now()),
            ))
            .returning(Job::as_returning())
            .get_result(conn)
            .await?;
        dispatched.push(job);
    }
    Ok(dispatched)
}

/// Whether a job of the type waits to be dispatched (a look without locks,
/// for a PollForJobs that waits).
pub async fn any_waiting(
    conn: &mut AsyncPgConnection,
    account: &str,
    id: &ActionTypeId,
    query_value: Option<&str>,
    ack_secs: u64,
) -> Result<bool, IamError> {
    let found: Option<Uuid> = jobs::table
        .filter(waiting(account, id, query_value, ack_secs))
        .select(jobs::job_id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// A job of the account, with its action's run.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account: &str,
    job_id: Uuid,
) -> Result<Option<(Job, ActionExecution)>, IamError> {
    Ok(jobs::table
        .inner_join(action_executions::table)
        .filter(jobs::job_id.eq(job_id))
        .filter(jobs::account_id.eq(account))
        .select((Job::as_select(), ActionExecution::as_select()))
        .first(conn)
        .await
        .optional()?)
}

/// Why a job worker's call about a job cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such job in the account.
    NotFound,
    /// Not the nonce of the job's latest dispatch.
    InvalidNonce,
    /// The job is not in a state that allows it (the message says which).
    InvalidState(String),
}

fn state_of(job: &Job, action: &ActionExecution) -> Result<(), Refused> {
    if !job.open() {
        return Err(Refused::InvalidState(format!("the job is {}", job.status)));
    }
    if action.status() != Status::InProgress {
        return Err(Refused::InvalidState(format!(
            "the job's action is {} (stopped, timed out or retried): the job has ended",
            action.status
        )));
    }
    Ok(())
}

/// AcknowledgeJob: the worker holding the latest dispatch's nonce takes the
/// job (InProgress). Asking again with that nonce answers the same.
pub async fn acknowledge(
    conn: &mut AsyncPgConnection,
    account: &str,
    job_id: Uuid,
    nonce: &str,
) -> Result<Result<String, Refused>, IamError> {
    let Some((job, action)) = find(conn, account, job_id).await? else { return Ok(Err(Refused::NotFound)) };
    if let Err(refused) = state_of(&job, &action) {
        return Ok(Err(refused));
    }
    let matches = job.nonce.as_deref().is_some_and(|n| crate::signing::same_secret(n.as_bytes(), nonce.as_bytes()));
    if !matches {
        return Ok(Err(Refused::InvalidNonce));
    }
    if job.status == IN_PROGRESS {
        return Ok(Ok(IN_PROGRESS.to_owned()));
    }
    let taken = diesel::update(
        jobs::table.filter(jobs::job_id.eq(job_id)).filter(jobs::status.eq(DISPATCHED)).filter(jobs::nonce.eq(nonce)),
    )
    .set((jobs::status.eq(IN_PROGRESS), jobs::updated_at.eq(Utc::now())))
    .execute(conn)
    .await?;
    Ok(if taken == 1 { Ok(IN_PROGRESS.to_owned()) } else { Err(Refused::InvalidNonce) })
}

/// What a job worker may be told of a job: its action's configuration
/// (variables resolved, secrets included: the worker needs them), where it
/// runs, its input artifacts and the names of its outputs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub configuration: BTreeMap<String, String>,
    pub execution: Execution,
    pub declaration: PipelineDeclaration,
    pub inputs: Vec<ArtifactLocation>,
    pub output_names: Vec<String>,
}

/// The context of a job's action.
pub async fn context(conn: &mut AsyncPgConnection, action: &ActionExecution) -> Result<Option<JobContext>, IamError> {
    let Some((execution, declaration)) = store::execution_with_declaration(conn, action.execution_id).await? else {
        return Ok(None);
    };
    let Some(declared) = action.declared(&declaration).cloned() else { return Ok(None) };
    let resolver = store::ResolveContext::load_with(conn, &execution, &declaration).await?;
    let configuration = declared.configuration.iter().map(|(k, v)| (k.clone(), resolver.resolve(v))).collect();
    let inputs: Vec<ArtifactLocation> = serde_json::from_value(action.input_artifacts.clone()).unwrap_or_default();
    let output_names = declared.output_artifacts.iter().map(|o| o.name.clone()).collect();
    Ok(Some(JobContext { configuration, execution, declaration, inputs, output_names }))
}

/// A job's artifacts, reached with its artifact token: the job and its
/// action, while the job is open and the token is its latest dispatch's.
pub async fn by_artifact_token(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
    token: &str,
) -> Result<Option<(Job, ActionExecution)>, IamError> {
    let found: Option<(Job, ActionExecution)> = jobs::table
        .inner_join(action_executions::table)
        .filter(jobs::job_id.eq(job_id))
        .select((Job::as_select(), ActionExecution::as_select()))
        .first(conn)
        .await
        .optional()?;
    Ok(found.filter(|(job, action)| {
        let same =
            job.artifact_token.as_deref().is_some_and(|t| crate::signing::same_secret(t.as_bytes(), token.as_bytes()));
        same && job.status != QUEUED && state_of(job, action).is_ok()
    }))
}

/// Records an output artifact the job worker uploaded (replacing one of
/// that name) — only if the token is still the job's and the job still
/// open (the upload may have taken a while).
pub async fn add_output(
    conn: &mut AsyncPgConnection,
    job_id: Uuid,
    token: &str,
    output: &ArtifactLocation,
) -> Result<bool, IamError> {
    let job: Option<Job> =
        jobs::table.find(job_id).select(Job::as_select()).for_update().first(conn).await.optional()?;
    let Some(job) = job else { return Ok(false) };
    let action: ActionExecution =
        action_executions::table.find(job.action_execution_id).select(ActionExecution::as_select()).first(conn).await?;
    let same =
        job.artifact_token.as_deref().is_some_and(|t| crate::signing::same_secret(t.as_bytes(), token.as_bytes()));
    if !same || state_of(&job, &action).is_err() {
        return Ok(false);
    }
    let mut outputs = job.outputs();
    outputs.retain(|o| o.name != output.name);
    outputs.push(output.clone());
    diesel::update(jobs::table.find(job_id))
        .set((jobs::outputs.eq(serde_json::to_value(&outputs).unwrap_or_default()), jobs::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    Ok(true)
}

/// PutJobSuccessResult's fields, checked.
#[derive(Debug, Clone, Default)]
pub struct Success {
    pub summary: Option<String>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub percent_complete: Option<u8>,
    pub continuation_token: Option<String>,
    pub variables: BTreeMap<String, String>,
    /// A custom source's revision.
    pub revision: Option<SourceRevision>,
}

/// What ending a job did.
#[derive(Debug)]
pub enum Ended {
    /// The action ended: the outbox rows of its execution's next step.
    Action(Vec<Queued>),
    /// The action goes on: the next job was queued (tell this channel).
    Continued(String),
}

/// Whether the job may be given its result: acknowledged, and its action
/// still runs.
pub fn takes_result(job: &Job, action: &ActionExecution) -> Result<(), Refused> {
    state_of(job, action)?;
    if job.status != IN_PROGRESS {
        return Err(Refused::InvalidState(format!(
            "the job is {}: acknowledge it (AcknowledgeJob with its nonce) before giving its result",
            job.status
        )));
    }
    Ok(())
}

/// Ends a job: with a success, its action succeeds (with its uploaded
/// outputs and variables) — or, with a continuation token, goes on with a
/// next job; with a failure, its action fails.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    account: &str,
    job_id: Uuid,
    result: Result<Success, Failure>,
) -> Result<Result<Ended, Refused>, IamError> {
    conn.transaction::<_, IamError, _>(async move |conn| {
        let job: Option<Job> = jobs::table
            .filter(jobs::job_id.eq(job_id))
            .filter(jobs::account_id.eq(account))
            .select(Job::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(job) = job else { return Ok(Err(Refused::NotFound)) };
        let action: ActionExecution = action_executions::table
            .find(job.action_execution_id)
            .select(ActionExecution::as_select())
            .first(conn)
            .await?;
        if let Err(refused) = takes_result(&job, &action) {
            return Ok(Err(refused));
        }
        let status = if result.is_ok() { SUCCEEDED } else { FAILED };
        let mark = async |conn: &mut AsyncPgConnection| -> Result<(), IamError> {
            diesel::update(jobs::table.find(job_id))
                .set((jobs::status.eq(status), jobs::updated_at.eq(Utc::now())))
                .execute(conn)
                .await?;
            Ok(())
        };
        let ended_refused = || Refused::InvalidState("the job's action has ended".to_owned());
        let (outcome, external_id) = match result {
            Ok(success) if success.continuation_token.is_some() => {
                // Still running: what the worker said so far is shown on the
                // action (only while it runs: a stop may have come first).
                let shown = diesel::update(
                    action_executions::table
                        .find(job.action_execution_id)
                        .filter(action_executions::status.eq(Status::InProgress.as_str())),
                )
                .set((
                    action_executions::summary.eq(summary_of(success.summary.as_deref(), success.percent_complete)),
                    action_executions::external_url.eq(success.external_url),
                    action_executions::external_execution_id.eq(success.external_id),
                    action_executions::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
                if shown == 0 {
                    return Ok(Err(ended_refused()));
                }
                mark(conn).await?;
                let next = queue(
                    conn,
                    job.action_execution_id,
                    &job.account_id,
                    &job.action_type_id(),
                    job.query_value.clone(),
                    success.continuation_token.as_deref(),
                    &job.outputs(),
                )
                .await?;
                return Ok(Ok(Ended::Continued(next)));
            }
            Ok(success) => (
                Outcome {
                    succeeded: true,
                    summary: summary_of(success.summary.as_deref(), success.percent_complete),
                    external_url: success.external_url,
                    outputs: job.outputs(),
                    variables: success.variables,
                    revision: success.revision,
                    ..Outcome::default()
                },
                success.external_id,
            ),
            Err(failure) => (
                Outcome {
                    error_code: Some(failure.kind),
                    error_message: Some(failure.message.clone()),
                    summary: Some(failure.message),
                    external_url: failure.external_url,
                    ..Outcome::default()
                },
                failure.external_id,
            ),
        };
        let Some(queued) = store::finish_action(conn, job.action_execution_id, Finisher::Anyone, outcome).await? else {
            return Ok(Err(ended_refused()));
        };
        if external_id.is_some() {
            diesel::update(action_executions::table.find(job.action_execution_id))
                .set(action_executions::external_execution_id.eq(external_id))
                .execute(conn)
                .await?;
        }
        mark(conn).await?;
        Ok(Ok(Ended::Action(queued)))
    })
    .await
}

/// What the job worker said of its progress, as the action's summary.
fn summary_of(summary: Option<&str>, percent: Option<u8>) -> Option<String> {
    match (summary, percent) {
        (Some(s), Some(p)) => Some(format!("{s} ({p}%)")),
        (Some(s), None) => Some(s.to_owned()),
        (None, Some(p)) => Some(format!("{p}% complete")),
        (None, None) => None,
    }
}

/// PutJobFailureResult's fields, checked.
#[derive(Debug, Clone)]
pub struct Failure {
    /// CodePipeline's failure type: the action's error code.
    pub kind: String,
    pub message: String,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
}

/// Marks the open jobs of an action that timed out.
pub async fn time_out(conn: &mut AsyncPgConnection, action_execution_id: Uuid) -> Result<(), IamError> {
    diesel::update(
        jobs::table.filter(jobs::action_execution_id.eq(action_execution_id)).filter(jobs::status.eq_any([
            QUEUED,
            DISPATCHED,
            IN_PROGRESS,
        ])),
    )
    .set((jobs::status.eq(TIMED_OUT), jobs::updated_at.eq(Utc::now())))
    .execute(conn)
    .await?;
    Ok(())
}
