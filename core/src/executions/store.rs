//! Executions in PostgreSQL: starting one, the orchestrator's transaction
//! (read, decide with the state machine, write, queue the next messages),
//! the runners' claims and results, approvals, and the read side.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, IntoSql, JoinOnDsl, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper, TextExpressionMethods,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Status;
use super::machine::{self, Hold, Snapshot, StageRun, Step};
use crate::db::Prepared;
use crate::iam::IamError;
use crate::messaging::{self, Message, Queued};
use crate::pipelines::store::Pipeline;
use crate::pipelines::{ExecutionMode, PipelineDeclaration};
use crate::schema::{action_executions, pipeline_executions, pipeline_versions, pipelines, stage_executions};

/// An execution's row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pipeline_executions)]
pub struct Execution {
    pub execution_id: Uuid,
    pub pipeline_id: Uuid,
    pub account_id: String,
    pub pipeline_name: String,
    pub pipeline_version: i32,
    pub seq: i64,
    pub status: String,
    pub status_summary: Option<String>,
    pub trigger: Value,
    pub variables: Value,
    pub source_revisions: Value,
    pub client_request_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Execution {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }
}

/// A stage's run in an execution.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stage_executions)]
pub struct StageExecution {
    pub execution_id: Uuid,
    pub stage_index: i32,
    pub stage_name: String,
    pub attempt: i32,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An action's run.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = action_executions)]
pub struct ActionExecution {
    pub action_execution_id: Uuid,
    pub execution_id: Uuid,
    pub pipeline_id: Uuid,
    pub stage_index: i32,
    pub stage_name: String,
    pub action_index: i32,
    pub action_name: String,
    pub attempt: i32,
    pub status: String,
    pub summary: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub external_url: Option<String>,
    pub token: Option<Uuid>,
    pub job_attempt: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub input_artifacts: Value,
    pub output_artifacts: Value,
    pub output_variables: Value,
    pub resolved_configuration: Value,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    /// The run's id in a job worker's system.
    pub external_execution_id: Option<String>,
}

impl ActionExecution {
    /// The action as the pipeline version it ran with declares it.
    pub fn declared<'a>(
        &self,
        declaration: &'a PipelineDeclaration,
    ) -> Option<&'a crate::pipelines::ActionDeclaration> {
        declaration
            .stages
            .get(usize::try_from(self.stage_index).ok()?)
            .and_then(|s| s.actions.get(usize::try_from(self.action_index).ok()?))
    }

    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }
}

/// An artifact an action produced: its name, and where the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    pub name: String,
    /// The SHA-256 of its content (the store's key).
    pub sha256: String,
    pub size: u64,
}

/// How an execution began (CodePipeline's `trigger`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ExecutionTrigger)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `CreatePipeline`, `StartPipelineExecution`, `PollForSourceChanges`, `Webhook`, `PutSourceRevision`.
    #[schema(example = "PutSourceRevision")]
    pub trigger_type: String,
    /// Who or what: a principal ARN, or the source action.
    pub trigger_detail: String,
    /// For a change of a Git source: the trigger filter that matched
    /// (`triggers[0].gitConfiguration.push[1]`), or `branch` for the
    /// source's own branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A source revision an execution was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRevision {
    pub action_name: String,
    pub revision_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_summary: Option<String>,
    /// For an uploaded archive: the artifact it became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactLocation>,
    /// For a Git source run by a change: the ref its commit is fetched from
    /// (`refs/heads/release/1`, `refs/tags/v1`, `refs/pull/7/head`); else
    /// the action's `branch`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The branch it ran (`BranchName`): a push's, a pull request's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A custom source's change id (PutJobSuccessResult's
    /// `currentRevision.changeIdentifier`).
    #[serde(default, rename = "revisionChangeIdentifier", skip_serializing_if = "Option::is_none")]
    pub change_identifier: Option<String>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

diesel::define_sql_function! {
    /// SQL's `greatest` of a lease and a time (a lease set further, for a
    /// callback, is not shortened by a heartbeat).
    fn greatest(
        first: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        second: diesel::sql_types::Timestamptz,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>;
}

diesel::define_sql_function! {
    /// SQL's `coalesce` of two timestamps (typed, so that the statement is
    /// prepared once per connection, unlike one with SQL text in it).
    fn coalesce(
        first: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        second: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>;
}

/// The declaration of one version of a pipeline.
pub async fn declaration_at(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    version: i32,
) -> Result<PipelineDeclaration, IamError> {
    let value: Value = pipeline_versions::table
        .find((pipeline_id, version))
        .select(pipeline_versions::declaration)
        .first(conn)
        .await?;
    parse_declaration(value)
}

fn parse_declaration(value: Value) -> Result<PipelineDeclaration, IamError> {
    serde_json::from_value(value).map_err(|e| IamError::InvalidInput(format!("a stored pipeline does not read: {e}")))
}

/// Starts an execution of the pipeline's current version (in the caller's
/// transaction), and queues its first step. With a `client_request_token`
/// already used for this pipeline, returns that execution instead. Only
/// through [`super::way_in::start`], the one way in.
pub(super) async fn start(
    conn: &mut AsyncPgConnection,
    pipeline: &Pipeline,
    trigger: &Trigger,
    variables: &[(String, String)],
    client_request_token: Option<&str>,
    revisions: &[SourceRevision],
) -> Result<(Execution, Vec<Queued>), IamError> {
    if let Some(token) = client_request_token {
        let existing: Option<Execution> = pipeline_executions::table
            .filter(pipeline_executions::pipeline_id.eq(pipeline.pipeline_id))
            .filter(pipeline_executions::client_request_token.eq(token))
            .select(Execution::as_select())
            .first(conn)
            .await
            .optional()?;
        if let Some(existing) = existing {
            return Ok((existing, Vec::new()));
        }
    }
    let resolved: Vec<Value> =
        variables.iter().map(|(name, value)| json!({"name": name, "resolvedValue": value})).collect();
    let revisions = with_latest_uploads(conn, pipeline, revisions).await?;
    let execution: Execution = diesel::insert_into(pipeline_executions::table)
        .values((
            pipeline_executions::execution_id.eq(Uuid::new_v4()),
            pipeline_executions::pipeline_id.eq(pipeline.pipeline_id),
            pipeline_executions::account_id.eq(&pipeline.account_id),
            pipeline_executions::pipeline_name.eq(&pipeline.name),
            pipeline_executions::pipeline_version.eq(pipeline.version),
            pipeline_executions::status.eq(Status::InProgress.as_str()),
            pipeline_executions::trigger.eq(serde_json::to_value(trigger).unwrap_or_default()),
            pipeline_executions::variables.eq(Value::Array(resolved)),
            pipeline_executions::source_revisions.eq(serde_json::to_value(&revisions).unwrap_or_default()),
            pipeline_executions::client_request_token.eq(client_request_token),
        ))
        .returning(Execution::as_returning())
        .get_result(conn)
        .await?;
    let id = messaging::enqueue(conn, &Message::Advance { execution_id: execution.execution_id }).await?;
    Ok((execution, vec![id]))
}

/// `revisions` and, for each Upload source they do not name, the archive
/// last uploaded to it: an execution started without one (a user's
/// StartPipelineExecution) runs the latest, as CodePipeline's S3 source
/// takes the object's latest version. Never uploaded: none (the action
/// then fails with `NoRevision`).
async fn with_latest_uploads(
    conn: &mut AsyncPgConnection,
    pipeline: &Pipeline,
    revisions: &[SourceRevision],
) -> Result<Vec<SourceRevision>, IamError> {
    // Read from the stored declaration as it is (this runs for every
    // execution; a whole parse is not needed).
    let stages = pipeline.declaration["stages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let missing: Vec<&str> = stages
        .iter()
        .flat_map(|stage| stage["actions"].as_array().map(Vec::as_slice).unwrap_or_default())
        .filter(|a| a["actionTypeId"]["category"] == "Source" && a["actionTypeId"]["provider"] == "Upload")
        .filter_map(|a| a["name"].as_str())
        .filter(|name| !revisions.iter().any(|r| r.action_name == *name))
        .collect();
    let mut out = revisions.to_vec();
    if missing.is_empty() {
        return Ok(out);
    }
    // Uploads start executions of their own, so the latest of each source
    // is among the latest executions an upload started (not one that ran an
    // earlier upload again, by Release change's `sourceRevisions`).
    let recent: Vec<Value> = pipeline_executions::table
        .filter(pipeline_executions::pipeline_id.eq(pipeline.pipeline_id))
        .filter(diesel::PgJsonbExpressionMethods::contains(
            pipeline_executions::trigger,
            json!({"triggerType": "PutSourceRevision"}),
        ))
        .order(pipeline_executions::seq.desc())
        .limit(50)
        .select(pipeline_executions::source_revisions)
        .load(conn)
        .await?;
    for name in missing {
        let latest = recent.iter().find_map(|carried| {
            serde_json::from_value::<Vec<SourceRevision>>(carried.clone())
                .unwrap_or_default()
                .into_iter()
                .find(|r| r.action_name == name && r.artifact.is_some())
        });
        out.extend(latest);
    }
    Ok(out)
}

/// An archive uploaded earlier to the pipeline's Upload source `action`,
/// by its revision id (the archive's SHA-256), to run again.
pub async fn uploaded_revision(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action: &str,
    revision_id: &str,
) -> Result<Option<SourceRevision>, IamError> {
    let carried: Vec<Value> = pipeline_executions::table
        .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
        .filter(diesel::PgJsonbExpressionMethods::contains(
            pipeline_executions::source_revisions,
            json!([{"actionName": action, "revisionId": revision_id}]),
        ))
        .order(pipeline_executions::seq.desc())
        .limit(1)
        .select(pipeline_executions::source_revisions)
        .load(conn)
        .await?;
    Ok(carried.into_iter().find_map(|revisions| {
        serde_json::from_value::<Vec<SourceRevision>>(revisions)
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.action_name == action && r.revision_id == revision_id && r.artifact.is_some())
    }))
}

/// The stage and action runs of executions, latest attempt first.
async fn runs_of(
    conn: &mut AsyncPgConnection,
    executions: &[Uuid],
) -> Result<(Vec<StageExecution>, Vec<ActionExecution>), IamError> {
    // One execution (always, in PARALLEL mode) by `=`, whose plan PostgreSQL
    // keeps, where one for `= ANY(array)` is made anew each time.
    let mut stages = stage_executions::table.select(StageExecution::as_select()).into_boxed();
    let mut actions = action_executions::table
        .order(action_executions::attempt.desc())
        .select(ActionExecution::as_select())
        .into_boxed();
    if let [execution] = executions {
        stages = stages.filter(stage_executions::execution_id.eq(*execution));
        actions = actions.filter(action_executions::execution_id.eq(*execution));
    } else {
        stages = stages.filter(stage_executions::execution_id.eq_any(executions));
        actions = actions.filter(action_executions::execution_id.eq_any(executions));
    }
    let stages = stages.load(conn).await?;
    let actions = actions.load(conn).await?;
    Ok((stages, actions))
}

/// Where an execution stands: per stage, its status and its actions' latest.
fn stage_runs(
    declaration: &PipelineDeclaration,
    execution: Uuid,
    stages: &[StageExecution],
    actions: &[ActionExecution],
) -> Vec<StageRun> {
    declaration
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let run = stages.iter().find(|s| s.execution_id == execution && s.stage_index as usize == i);
            let attempt = run.map_or(0, |r| r.attempt);
            StageRun {
                status: run.and_then(|r| Status::parse(&r.status)),
                actions: (0..stage.actions.len())
                    .map(|a| {
                        actions
                            .iter()
                            .find(|x| {
                                x.execution_id == execution
                                    && x.stage_index as usize == i
                                    && x.action_index as usize == a
                                    && x.attempt == attempt
                            })
                            .and_then(|x| Status::parse(&x.status))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The stage an execution waits to enter: every stage before it succeeded
/// and it was not entered.
fn waiting_at(runs: &[StageRun]) -> Option<usize> {
    let index = runs.iter().position(|r| r.status != Some(Status::Succeeded))?;
    runs[index].status.is_none().then_some(index)
}

/// The orchestrator's step for one execution, in one transaction: lock the
/// pipeline (its executions are decided one at a time), read, decide, write.
/// Returns the outbox rows to publish after the commit.
pub async fn advance(conn: &mut AsyncPgConnection, execution_id: Uuid) -> Result<Advanced, IamError> {
    let advanced = conn.transaction::<_, IamError, _>(async move |conn| advance_in(conn, execution_id, None).await);
    Ok(advanced.await?.unwrap_or(Advanced::of(None, Vec::new())))
}

/// A runner's result and the step it leads to, in one transaction: the
/// action's end, then the execution's next step — no `advance` message
/// between them, one commit instead of two. `None` when the result was not
/// recorded (the runner's claim was lost). A result that carries a source
/// revision is recorded by [`finish_action`] (the revision goes on the
/// execution), its step left to the outbox row.
pub async fn finish_and_advance(
    conn: &mut AsyncPgConnection,
    claim: &Claim,
    by: Finisher,
    outcome: &Outcome,
) -> Result<Option<Advanced>, IamError> {
    if outcome.revision.is_some() {
        let queued = finish_action(conn, claim.action.action_execution_id, by, outcome.clone()).await?;
        return Ok(queued.map(|outbox| Advanced::of(Some(claim.execution.pipeline_id), outbox)));
    }
    let finish = Finish {
        action_execution_id: claim.action.action_execution_id,
        by,
        outcome,
        pipeline_id: claim.execution.pipeline_id,
        declaration: &claim.declaration,
    };
    let execution_id = claim.execution.execution_id;
    conn.transaction::<_, IamError, _>(async move |conn| advance_in(conn, execution_id, Some(finish)).await).await
}

/// An action's end, to record in the transaction of the step it leads to.
#[derive(Clone, Copy)]
struct Finish<'a> {
    action_execution_id: Uuid,
    by: Finisher,
    outcome: &'a Outcome,
    /// The execution's, as the claim read them.
    pipeline_id: Uuid,
    declaration: &'a PipelineDeclaration,
}

/// An action's end recorded on its own, its `advance` left to the outbox
/// (the execution has ended, or is gone: nothing to decide here).
async fn finish_alone(
    conn: &mut AsyncPgConnection,
    finish: Option<Finish<'_>>,
    pipeline_id: Option<Uuid>,
) -> Result<Option<Advanced>, IamError> {
    let Some(f) = finish else { return Ok(Some(Advanced::of(pipeline_id, Vec::new()))) };
    let queued = record_finish(conn, f.action_execution_id, f.by, f.outcome).await?;
    Ok(queued.map(|outbox| Advanced::of(pipeline_id, outbox)))
}

/// What the orchestrator's step did: the pipeline (for live updates) and
/// the outbox rows to publish.
#[derive(Debug, Clone)]
pub struct Advanced {
    pub pipeline_id: Option<Uuid>,
    pub outbox: Vec<Queued>,
    /// What the step did that the metrics count, once it is committed.
    pub observed: Observed,
    /// Jobs queued for job workers: the channels their pollers listen on
    /// (see `jobs::channel`), to publish once committed.
    pub jobs: Vec<String>,
}

/// What a step did that the metrics count.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Executions that entered their first stage.
    pub started: u64,
    /// Executions that ended, by status.
    pub finished: Vec<Status>,
    /// Seconds from a stage's end to the next stage's start.
    pub stage_delays: Vec<f64>,
}

impl Advanced {
    fn of(pipeline_id: Option<Uuid>, outbox: Vec<Queued>) -> Self {
        Self { pipeline_id, outbox, observed: Observed::default(), jobs: Vec::new() }
    }
}

impl Observed {
    /// Counts it in this process's metrics (call once committed).
    pub fn record(&self) {
        let metrics = crate::metrics::get();
        metrics.executions_started.inc_by(self.started);
        for status in &self.finished {
            metrics.executions_finished.with_label_values(&[status.as_str()]).inc();
        }
        for delay in &self.stage_delays {
            metrics.stage_transition_seconds.observe(*delay);
        }
    }
}

/// An execution with the declaration of the version it runs.
pub(crate) async fn execution_with_declaration(
    conn: &mut AsyncPgConnection,
    execution_id: Uuid,
) -> Result<Option<(Execution, PipelineDeclaration)>, IamError> {
    let found: Option<(Execution, Value)> = pipeline_executions::table
        .inner_join(
            pipeline_versions::table.on(pipeline_versions::pipeline_id
                .eq(pipeline_executions::pipeline_id)
                .and(pipeline_versions::version.eq(pipeline_executions::pipeline_version))),
        )
        .filter(pipeline_executions::execution_id.eq(execution_id))
        .select((Execution::as_select(), pipeline_versions::declaration))
        .first(conn)
        .await
        .optional()?;
    let Some((execution, declaration)) = found else { return Ok(None) };
    Ok(Some((execution, parse_declaration(declaration)?)))
}

/// The execution as committed now, locked, with its last update time
/// moved to now (CodePipeline's `lastUpdateTime`: the orchestrator looks at
/// an execution when something about it changed), and the stages of its
/// pipeline whose inbound transition is disabled.
/// `None` once it has ended.
async fn execution_now(
    conn: &mut AsyncPgConnection,
    execution_id: Uuid,
) -> Result<Option<(Execution, Vec<String>)>, IamError> {
    use diesel::sql_types::{Array, Text};
    // "Not ended" rather than "in progress or stopping": the same rows, but
    // the planner cannot read it as the predicate of the partial index
    // `pipeline_executions_running`, which it otherwise scanned whole (every
    // running execution of every pipeline) instead of the primary key.
    let ended: Vec<&str> = Status::ALL.into_iter().filter(|s| s.is_terminal()).map(Status::as_str).collect();
    let running = pipeline_executions::table
        .filter(pipeline_executions::execution_id.eq(execution_id))
        .filter(pipeline_executions::status.ne_all(ended));
    Ok(Prepared(diesel::update(running).set(pipeline_executions::updated_at.eq(now())).returning((
        Execution::as_returning(),
        diesel::dsl::sql::<Array<Text>>(
            "ARRAY(SELECT t.stage_name FROM stage_transitions t \
             WHERE t.pipeline_id = pipeline_executions.pipeline_id AND NOT t.enabled)",
        ),
    )))
    .get_result(conn)
    .await
    .optional()?)
}

/// The step; with `finish`, an action's end recorded first (after the
/// locks, taken in the order stop takes them: pipeline, execution, action).
/// `None` when `finish` was not recorded.
async fn advance_in(
    conn: &mut AsyncPgConnection,
    execution_id: Uuid,
    finish: Option<Finish<'_>>,
) -> Result<Option<Advanced>, IamError> {
    let read;
    let (pipeline_id, declaration) = match finish {
        // What the runner's claim read: an execution's pipeline, and the
        // declaration of the version it runs, never change.
        Some(f) => (f.pipeline_id, f.declaration),
        None => {
            let Some((first, declaration)) = execution_with_declaration(conn, execution_id).await? else {
                return finish_alone(conn, None, None).await;
            };
            if first.status().is_terminal() {
                return finish_alone(conn, None, Some(first.pipeline_id)).await;
            }
            read = declaration;
            (first.pipeline_id, &read)
        }
    };
    // Decisions are taken one at a time, under a lock; what is read after
    // it is what the last holder committed. A PARALLEL execution never
    // waits for another: its own row is lock enough. Otherwise the
    // pipeline's executions are decided one at a time.
    let parallel = declaration.execution_mode == ExecutionMode::Parallel;
    if !parallel {
        lock_pipeline(conn, pipeline_id).await?;
    }
    let Some((execution, disabled)) = execution_now(conn, execution_id).await? else {
        return finish_alone(conn, finish, Some(pipeline_id)).await;
    };
    if let Some(f) = finish
        && finish_row(conn, f.action_execution_id, f.by, f.outcome).await?.is_none()
    {
        return Ok(None);
    }
    let mut outbox = Vec::new();
    let mut jobs = Vec::new();
    let mut observed = Observed::default();
    let mut frees_others = false;
    let mut ended = false;
    // An action the orchestrator completes itself (an uploaded source) lets
    // it decide again at once, in this transaction: no runner, no message.
    let mut rounds = 0;
    let (running, stages, actions) = loop {
        rounds += 1;
        // Every running execution of the pipeline: who is where (PARALLEL
        // executions never wait for each other: only this one matters).
        let running: Vec<Execution> = if parallel {
            vec![execution.clone()]
        } else {
            pipeline_executions::table
                .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
                .filter(pipeline_executions::status.eq_any([Status::InProgress.as_str(), Status::Stopping.as_str()]))
                .select(Execution::as_select())
                .load(conn)
                .await?
        };
        let ids: Vec<Uuid> = running.iter().map(|e| e.execution_id).collect();
        let (stages, actions) = runs_of(conn, &ids).await?;
        let mine = stage_runs(declaration, execution_id, &stages, &actions);
        let mode = declaration.execution_mode;
        let holds: Vec<Option<Hold>> = declaration
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                if mode == ExecutionMode::Queued && running.iter().any(|o| o.seq < execution.seq) {
                    return Some(Hold::Queued);
                }
                if i > 0 && disabled.contains(&stage.name) {
                    return Some(Hold::TransitionDisabled);
                }
                let busy = stages.iter().any(|s| {
                    s.execution_id != execution_id
                        && s.stage_index as usize == i
                        && Status::parse(&s.status).is_some_and(|st| !st.is_terminal())
                });
                (mode == ExecutionMode::Superseded && busy).then_some(Hold::StageBusy)
            })
            .collect();
        let snapshot = Snapshot { pipeline: declaration, status: execution.status(), stages: mine.clone(), holds };
        let steps = machine::next(&snapshot);
        let mut entered: HashMap<usize, i32> = HashMap::new();
        let mut again = false;
        for step in steps {
            match step {
                Step::EnterStage { stage } => {
                    let attempt = stages
                        .iter()
                        .find(|s| s.execution_id == execution_id && s.stage_index as usize == stage)
                        .map_or(1, |s| s.attempt + 1);
                    if stage == 0 && attempt == 1 {
                        observed.started += 1;
                    } else if let Some(before) = stage.checked_sub(1).and_then(|b| {
                        stages.iter().find(|s| s.execution_id == execution_id && s.stage_index as usize == b)
                    }) {
                        let delay = (Utc::now() - before.updated_at).num_microseconds().unwrap_or(0);
                        observed.stage_delays.push(delay.max(0) as f64 / 1e6);
                    }
                    Prepared(
                        diesel::insert_into(stage_executions::table)
                            .values((
                                stage_executions::execution_id.eq(execution_id),
                                stage_executions::stage_index.eq(i32::try_from(stage).unwrap_or(i32::MAX)),
                                stage_executions::stage_name.eq(&declaration.stages[stage].name),
                                stage_executions::attempt.eq(attempt),
                                stage_executions::status.eq(Status::InProgress.as_str()),
                            ))
                            .on_conflict((stage_executions::execution_id, stage_executions::stage_index))
                            .do_update()
                            .set((
                                stage_executions::attempt.eq(attempt),
                                stage_executions::status.eq(Status::InProgress.as_str()),
                                stage_executions::started_at.eq(now()),
                                stage_executions::updated_at.eq(now()),
                            )),
                    )
                    .execute(conn)
                    .await?;
                    entered.insert(stage, attempt);
                }
                Step::StartActions { stage, actions: indexes } => {
                    let attempt = entered.get(&stage).copied().unwrap_or_else(|| {
                        stages
                            .iter()
                            .find(|s| s.execution_id == execution_id && s.stage_index as usize == stage)
                            .map_or(1, |s| s.attempt)
                    });
                    let context = ResolveContext::of(&execution, declaration, &actions);
                    for index in indexes {
                        match start_action(conn, &execution, declaration, stage, index, attempt, &context).await? {
                            Started::Job(id) => {
                                outbox.push(messaging::enqueue(conn, &Message::Run { action_execution_id: id }).await?);
                            }
                            Started::Waiting => {}
                            Started::Queued(channel) => jobs.push(channel),
                            Started::Done => again = true,
                        }
                    }
                }
                Step::FinishStage { stage, status } => {
                    Prepared(
                        diesel::update(
                            stage_executions::table.find((execution_id, i32::try_from(stage).unwrap_or(i32::MAX))),
                        )
                        .set((stage_executions::status.eq(status.as_str()), stage_executions::updated_at.eq(now()))),
                    )
                    .execute(conn)
                    .await?;
                    frees_others = true;
                }
                Step::FinishExecution { status } => {
                    finish_execution(conn, execution_id, status, None).await?;
                    observed.finished.push(status);
                    frees_others = true;
                    ended = true;
                }
                Step::Wait { stage, hold } => {
                    if mode == ExecutionMode::Superseded && hold != Hold::Queued {
                        // Of the executions waiting at one boundary, only the newest goes on.
                        for other in &running {
                            if other.execution_id == execution_id {
                                continue;
                            }
                            let theirs = stage_runs(declaration, other.execution_id, &stages, &actions);
                            if waiting_at(&theirs) == Some(stage) {
                                let (older, newer) = if other.seq < execution.seq {
                                    (other.execution_id, execution_id)
                                } else {
                                    (execution_id, other.execution_id)
                                };
                                let summary = format!("Superseded by execution {newer}");
                                finish_execution(conn, older, Status::Superseded, Some(&summary)).await?;
                                observed.finished.push(Status::Superseded);
                                if older == execution_id {
                                    ended = true;
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        if !again || ended {
            break (running, stages, actions);
        }
        if rounds > declaration.stages.len() {
            // Never expected; a later step rather than none.
            outbox.push(messaging::enqueue(conn, &Message::Advance { execution_id }).await?);
            break (running, stages, actions);
        }
    };
    if frees_others && !parallel {
        // Those waiting at a boundary may go on now (PARALLEL has no waiting).
        for other in running.iter().filter(|o| o.execution_id != execution_id) {
            let theirs = stage_runs(declaration, other.execution_id, &stages, &actions);
            if waiting_at(&theirs).is_some() {
                outbox.push(messaging::enqueue(conn, &Message::Advance { execution_id: other.execution_id }).await?);
            }
        }
    }
    Ok(Some(Advanced { pipeline_id: Some(pipeline_id), outbox, observed, jobs }))
}

async fn finish_execution(
    conn: &mut AsyncPgConnection,
    execution_id: Uuid,
    status: Status,
    summary: Option<&str>,
) -> Result<(), IamError> {
    Prepared(diesel::update(pipeline_executions::table.find(execution_id)).set((
        pipeline_executions::status.eq(status.as_str()),
        pipeline_executions::status_summary.eq(summary),
        pipeline_executions::updated_at.eq(now()),
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// What configuration values may reference: the execution's variables and
/// its actions' output variables by namespace, and its artifacts.
pub struct ResolveContext {
    pub variables: HashMap<String, String>,
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    pub artifacts: HashMap<String, ArtifactLocation>,
}

impl ResolveContext {
    pub(crate) async fn load_with(
        conn: &mut AsyncPgConnection,
        execution: &Execution,
        declaration: &PipelineDeclaration,
    ) -> Result<Self, IamError> {
        let done: Vec<ActionExecution> = action_executions::table
            .filter(action_executions::execution_id.eq(execution.execution_id))
            .filter(action_executions::status.eq(Status::Succeeded.as_str()))
            .select(ActionExecution::as_select())
            .load(conn)
            .await?;
        Ok(Self::of(execution, declaration, &done))
    }

    /// The context from the execution's action runs (any others among
    /// `actions` are left out).
    fn of(execution: &Execution, declaration: &PipelineDeclaration, actions: &[ActionExecution]) -> Self {
        let mut variables = HashMap::new();
        for item in execution.variables.as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) =
                (item.get("name").and_then(Value::as_str), item.get("resolvedValue").and_then(Value::as_str))
            {
                variables.insert(name.to_owned(), value.to_owned());
            }
        }
        // In the order they finished: a later output of one name wins.
        let mut done: Vec<&ActionExecution> = actions
            .iter()
            .filter(|a| a.execution_id == execution.execution_id && a.status() == Status::Succeeded)
            .collect();
        done.sort_by_key(|a| a.finished_at);
        let mut namespaces = HashMap::new();
        let mut artifacts = HashMap::new();
        for action in done {
            let declared = action.declared(declaration);
            if let Some(namespace) = declared.and_then(|d| d.namespace.clone()) {
                let values: BTreeMap<String, String> =
                    serde_json::from_value(action.output_variables.clone()).unwrap_or_default();
                namespaces.insert(namespace, values);
            }
            let outputs: Vec<ArtifactLocation> =
                serde_json::from_value(action.output_artifacts.clone()).unwrap_or_default();
            for output in outputs {
                artifacts.insert(output.name.clone(), output);
            }
        }
        namespaces.insert(
            "codepipeline".to_owned(),
            BTreeMap::from([("PipelineExecutionId".to_owned(), execution.execution_id.to_string())]),
        );
        Self { variables, namespaces, artifacts }
    }

    /// `#{variables.NAME}` and `#{Namespace.NAME}` replaced by their values
    /// (an unknown one is left as written).
    pub fn resolve(&self, value: &str) -> String {
        super::references::substitute(value, |reference| self.lookup(reference))
    }

    fn lookup(&self, reference: &str) -> Option<String> {
        reference.split_once('.').and_then(|(namespace, name)| match namespace {
            "variables" => self.variables.get(name).cloned(),
            _ => self.namespaces.get(namespace).and_then(|v| v.get(name).cloned()),
        })
    }

    /// A configuration value resolved for the runner: in a property a shell
    /// runs, each reference becomes a shell variable whose value goes into
    /// `references` (a value never becomes shell syntax); in a JSON object
    /// each value is resolved on its own (a value never becomes JSON).
    pub fn resolve_as(
        &self,
        value: &str,
        property: Option<&crate::pipelines::action_types::Property>,
        references: &mut BTreeMap<String, String>,
    ) -> String {
        use crate::pipelines::action_types::PropertyType;
        match property {
            Some(p) if p.shell => super::references::for_shell(value, |r| self.lookup(r), references),
            Some(p) if matches!(p.kind, PropertyType::EnvironmentVariables | PropertyType::Headers) => {
                let parsed = match p.kind {
                    PropertyType::Headers => crate::pipelines::environment::parse_headers(value),
                    _ => crate::pipelines::environment::parse(value),
                };
                match parsed {
                    Ok(mut variables) => {
                        // A secret's name is taken as written.
                        for variable in &mut variables {
                            if variable.kind == crate::pipelines::environment::VariableType::Plaintext {
                                variable.value = self.resolve(&variable.value);
                            }
                        }
                        crate::pipelines::environment::to_text(&variables)
                    }
                    Err(_) => value.to_owned(),
                }
            }
            Some(p) if p.kind == PropertyType::JsonObject => {
                match serde_json::from_str::<BTreeMap<String, String>>(value) {
                    Ok(object) => {
                        let resolved: BTreeMap<String, String> =
                            object.into_iter().map(|(k, v)| (k, self.resolve(&v))).collect();
                        serde_json::to_string(&resolved).unwrap_or_default()
                    }
                    Err(_) => value.to_owned(),
                }
            }
            _ => self.resolve(value),
        }
    }
}

/// Makes an action's run; returns its id when a runner must take it (an
/// approval waits for PutApprovalResult instead, a custom action for a job
/// worker).
async fn start_action(
    conn: &mut AsyncPgConnection,
    execution: &Execution,
    declaration: &PipelineDeclaration,
    stage: usize,
    index: usize,
    attempt: i32,
    context: &ResolveContext,
) -> Result<Started, IamError> {
    use crate::pipelines::{action_types, custom_types};
    let declared_stage = &declaration.stages[stage];
    let action = &declared_stage.actions[index];
    let resolved: BTreeMap<&String, String> =
        action.configuration.iter().map(|(k, v)| (k, context.resolve(v))).collect();
    let inputs: Vec<ArtifactLocation> =
        action.input_artifacts.iter().filter_map(|a| context.artifacts.get(&a.name).cloned()).collect();
    let type_id = &action.action_type_id;
    // A custom action's type, as the account has it now (`None`: deleted since).
    let custom = if type_id.owner == custom_types::OWNER {
        Some(custom_types::find(conn, &execution.account_id, type_id).await?.map(|d| d.action_type()))
    } else {
        None
    };
    let types = action_types::Registry::with(custom.iter().flatten().cloned().collect());
    let approval = type_id.category == "Approval" && custom.is_none();
    let id = Uuid::new_v4();
    let (token, summary) =
        if approval { (Some(Uuid::new_v4()), resolved.get(&"customData".to_owned()).cloned()) } else { (None, None) };
    // An approval expires after its timeout (CodePipeline's default: 7 days);
    // the sweeper fails it then. A custom action's jobs end by the action's
    // timeout (CodePipeline's for other actions: 1 hour).
    let expires = if approval {
        Some(now() + Duration::minutes(i64::from(action.timeout_in_minutes.unwrap_or(APPROVAL_TIMEOUT_MINUTES))))
    } else if custom.is_some() {
        Some(now() + Duration::minutes(i64::from(action.timeout_in_minutes.unwrap_or(JOB_TIMEOUT_MINUTES))))
    } else {
        None
    };
    // Secrets stay out of what the read side shows; runners read the declaration.
    let shown: BTreeMap<&String, String> = resolved
        .iter()
        .map(|(k, v)| (*k, if types.is_secret(type_id, k) { crate::pipelines::MASK.to_owned() } else { v.clone() }))
        .collect();
    diesel::insert_into(action_executions::table)
        .values((
            action_executions::action_execution_id.eq(id),
            action_executions::execution_id.eq(execution.execution_id),
            action_executions::pipeline_id.eq(execution.pipeline_id),
            action_executions::stage_index.eq(i32::try_from(stage).unwrap_or(i32::MAX)),
            action_executions::stage_name.eq(&declared_stage.name),
            action_executions::action_index.eq(i32::try_from(index).unwrap_or(i32::MAX)),
            action_executions::action_name.eq(&action.name),
            action_executions::attempt.eq(attempt),
            action_executions::status.eq(Status::InProgress.as_str()),
            action_executions::summary.eq(summary),
            action_executions::token.eq(token),
            action_executions::lease_until.eq(expires),
            action_executions::job_worker.eq(custom.is_some()),
            action_executions::input_artifacts.eq(serde_json::to_value(&inputs).unwrap_or_default()),
            action_executions::resolved_configuration.eq(serde_json::to_value(&shown).unwrap_or_default()),
        ))
        .execute(conn)
        .await?;
    match custom {
        Some(Some(kind)) => {
            // Handed to the account's job workers: a job they poll for.
            let query_value = kind
                .properties
                .iter()
                .find(|p| p.queryable)
                .and_then(|p| resolved.iter().find(|(k, _)| k.as_str() == p.name).map(|(_, v)| v.clone()));
            let queued = super::jobs::queue(conn, id, &execution.account_id, type_id, query_value, None, &[]).await?;
            return Ok(Started::Queued(queued));
        }
        Some(None) => {
            let outcome = Outcome {
                error_code: Some("ActionTypeNotFound".to_owned()),
                error_message: Some(format!("the custom action type {type_id} was deleted; no job worker runs it")),
                ..Outcome::default()
            };
            ended_at_start(conn, id, &outcome).await?;
            return Ok(Started::Done);
        }
        None => {}
    }
    if type_id.category == "Source" && type_id.provider == "Upload" {
        // Nothing to run: the archive was stored when the execution started.
        ended_at_start(conn, id, &upload_outcome(execution, action)).await?;
        return Ok(Started::Done);
    }
    Ok(if approval { Started::Waiting } else { Started::Job(id) })
}

/// An action the orchestrator ends as it starts it (an uploaded source, a
/// custom action whose type is gone).
async fn ended_at_start(conn: &mut AsyncPgConnection, id: Uuid, outcome: &Outcome) -> Result<(), IamError> {
    Prepared(diesel::update(action_executions::table.find(id)).set((
        action_executions::status.eq(if outcome.succeeded { Status::Succeeded } else { Status::Failed }.as_str()),
        action_executions::summary.eq(&outcome.summary),
        action_executions::error_code.eq(&outcome.error_code),
        action_executions::error_message.eq(&outcome.error_message),
        action_executions::output_artifacts.eq(serde_json::to_value(&outcome.outputs).unwrap_or_default()),
        action_executions::output_variables.eq(serde_json::to_value(&outcome.variables).unwrap_or_default()),
        action_executions::lease_until.eq(None::<DateTime<Utc>>),
        action_executions::claimed_at.eq(now()),
        action_executions::finished_at.eq(now()),
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// CodePipeline's timeout of actions other than approvals: 1 hour.
pub const JOB_TIMEOUT_MINUTES: i32 = 60;

/// What starting an action did.
enum Started {
    /// A runner must run it.
    Job(Uuid),
    /// It waits for someone (an approval).
    Waiting,
    /// It waits for a job worker: the channel its pollers listen on.
    Queued(String),
    /// The orchestrator completed it.
    Done,
}

/// Source/Upload's result: the archive the execution was started with.
pub fn upload_outcome(execution: &Execution, action: &crate::pipelines::ActionDeclaration) -> Outcome {
    let failed = |message: &str| Outcome {
        error_code: Some("NoRevision".to_owned()),
        error_message: Some(message.to_owned()),
        ..Outcome::default()
    };
    let revision = serde_json::from_value::<Vec<SourceRevision>>(execution.source_revisions.clone())
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.action_name == action.name);
    let (Some(revision), Some(output)) = (revision, action.output_artifacts.as_slice().first()) else {
        return failed("this execution has no uploaded archive: start it with PutSourceRevision");
    };
    let Some(artifact) = revision.artifact.clone() else {
        return failed("the revision has no archive");
    };
    Outcome {
        succeeded: true,
        summary: revision.revision_summary.clone(),
        outputs: vec![ArtifactLocation { name: output.name.clone(), ..artifact }],
        variables: BTreeMap::from([("RevisionId".to_owned(), revision.revision_id.clone())]),
        revision: Some(revision),
        ..Outcome::default()
    }
}

/// What a runner needs to run an action it claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    pub action: ActionExecution,
    pub execution: Execution,
    pub declaration: PipelineDeclaration,
    /// The configuration with variables resolved (secrets included); in a
    /// property run by a shell, each reference became a shell variable.
    pub configuration: BTreeMap<String, String>,
    /// The values of those shell variables (`PW_VAR_…`), for the commands'
    /// environment.
    pub references: BTreeMap<String, String>,
}

impl Claim {
    /// The claimed action's declaration.
    pub fn declared(&self) -> Option<&crate::pipelines::ActionDeclaration> {
        self.action.declared(&self.declaration)
    }
}

/// Claims an action for a runner: only when it is in progress and no other
/// runner holds a live lease. The job attempt goes up by one. One
/// transaction: a claim whose reads fail leaves no lease behind.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    lease_secs: u64,
) -> Result<Option<Claim>, IamError> {
    conn.transaction::<_, IamError, _>(async move |conn| {
        let until = now() + Duration::seconds(i64::try_from(lease_secs).unwrap_or(30));
        let claimed: Option<ActionExecution> = Prepared(
            diesel::update(
                action_executions::table
                    .filter(action_executions::action_execution_id.eq(action_execution_id))
                    .filter(action_executions::status.eq(Status::InProgress.as_str()))
                    .filter(action_executions::token.is_null())
                    // (A custom action's job workers run it, never a runner.)
                    .filter(action_executions::job_worker.eq(false))
                    // (A call that went out is never made again: it waits.)
                    .filter(action_executions::callback_secret.is_null())
                    .filter(action_executions::lease_until.is_null().or(action_executions::lease_until.lt(now()))),
            )
            .set((
                action_executions::job_attempt.eq(action_executions::job_attempt + 1),
                action_executions::claimed_at.eq(coalesce(action_executions::claimed_at, Some(now()))),
                action_executions::lease_until.eq(until),
                action_executions::updated_at.eq(now()),
            ))
            .returning(ActionExecution::as_returning()),
        )
        .get_result(conn)
        .await
        .optional()?;
        let Some(action) = claimed else { return Ok(None) };
        let Some((execution, declaration)) = execution_with_declaration(conn, action.execution_id).await? else {
            return Ok(None);
        };
        let declared = action.declared(&declaration);
        let mut references = BTreeMap::new();
        let configuration = match declared {
            Some(declared) if declared.configuration.values().any(|v| v.contains("#{")) => {
                let context = ResolveContext::load_with(conn, &execution, &declaration).await?;
                let kind = crate::pipelines::action_types::find(&declared.action_type_id);
                declared
                    .configuration
                    .iter()
                    .map(|(k, v)| {
                        let property = kind.and_then(|t| t.properties.iter().find(|p| p.name == k.as_str()));
                        (k.clone(), context.resolve_as(v, property, &mut references))
                    })
                    .collect()
            }
            Some(declared) => declared.configuration.clone(),
            None => BTreeMap::new(),
        };
        Ok(Some(Claim { action, execution, declaration, configuration, references }))
    })
    .await
}

/// Extends a claimed action's lease; false when the claim was lost.
pub async fn renew(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    job_attempt: i32,
    lease_secs: u64,
) -> Result<bool, IamError> {
    let until = now() + Duration::seconds(i64::try_from(lease_secs).unwrap_or(30));
    let renewed = Prepared(
        diesel::update(
            action_executions::table
                .filter(action_executions::action_execution_id.eq(action_execution_id))
                .filter(action_executions::job_attempt.eq(job_attempt))
                .filter(action_executions::status.eq(Status::InProgress.as_str())),
        )
        .set(action_executions::lease_until.eq(greatest(action_executions::lease_until, until))),
    )
    .execute(conn)
    .await?;
    Ok(renewed == 1)
}

/// How an action ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub succeeded: bool,
    pub summary: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub external_url: Option<String>,
    pub outputs: Vec<ArtifactLocation>,
    pub variables: BTreeMap<String, String>,
    /// For a source: the revision it took.
    pub revision: Option<SourceRevision>,
    /// Not ended: it waits for a signed callback until then (Invoke/HTTP
    /// with `waitForCallback`).
    pub waits_until: Option<DateTime<Utc>>,
}

/// Who records an action's end, and so when it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finisher {
    /// The runner of this job attempt: only while the attempt is the latest.
    Runner(i32),
    /// The sweeper, for a runner that stopped responding: only while that
    /// attempt is the latest and its lease has run out (a late heartbeat
    /// keeps it).
    Expired(i32),
    /// An approval's answer: any time while it waits.
    Anyone,
    /// A dead-lettered job: only while no runner holds a live lease, since
    /// the message may be a duplicate of a job that is running.
    Unclaimed,
}

/// Records an action's end, if `by` may (see [`Finisher`]), and queues the
/// execution's next step. Returns the outbox rows.
pub async fn finish_action(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    by: Finisher,
    outcome: Outcome,
) -> Result<Option<Vec<Queued>>, IamError> {
    let Some(revision) = outcome.revision.clone() else {
        return record_finish(conn, action_execution_id, by, &outcome).await;
    };
    conn.transaction::<_, IamError, _>(async move |conn| {
        // The execution first, then the action (in record_finish, a
        // savepoint): the order stop takes them in; and two sources of one
        // execution record their revisions one after the other.
        pipeline_executions::table
            .filter(
                pipeline_executions::execution_id.eq_any(
                    action_executions::table
                        .filter(action_executions::action_execution_id.eq(action_execution_id))
                        .select(action_executions::execution_id),
                ),
            )
            .select(pipeline_executions::execution_id)
            .for_no_key_update()
            .load::<Uuid>(conn)
            .await?;
        let Some(queued) = record_finish(conn, action_execution_id, by, &outcome).await? else {
            return Ok(None);
        };
        let Some(Message::Advance { execution_id }) = queued.as_slice().first().map(|q| q.message.clone()) else {
            return Ok(Some(queued));
        };
        let execution: Execution =
            pipeline_executions::table.find(execution_id).select(Execution::as_select()).first(conn).await?;
        if let Some(reference) = &revision.reference {
            note_revision(conn, execution.pipeline_id, &revision.action_name, reference, &revision.revision_id).await?;
        }
        let mut revisions: Vec<SourceRevision> = serde_json::from_value(execution.source_revisions).unwrap_or_default();
        revisions.retain(|r| r.action_name != revision.action_name);
        revisions.push(revision);
        diesel::update(pipeline_executions::table.find(execution.execution_id))
            .set(pipeline_executions::source_revisions.eq(serde_json::to_value(&revisions).unwrap_or_default()))
            .execute(conn)
            .await?;
        Ok(Some(queued))
    })
    .await
}

/// The action's end and the execution's next step (its outbox row), in one
/// transaction of typed statements (prepared once per connection).
async fn record_finish(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    by: Finisher,
    outcome: &Outcome,
) -> Result<Option<Vec<Queued>>, IamError> {
    conn.transaction::<_, IamError, _>(async move |conn| {
        let Some(execution_id) = finish_row(conn, action_execution_id, by, outcome).await? else { return Ok(None) };
        Ok(Some(vec![messaging::enqueue(conn, &Message::Advance { execution_id }).await?]))
    })
    .await
}

/// Marks the action ended, if `by` may (see [`Finisher`]); its execution's id.
async fn finish_row(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    by: Finisher,
    outcome: &Outcome,
) -> Result<Option<Uuid>, IamError> {
    use diesel::sql_types::Bool;
    let attempt = match by {
        Finisher::Runner(attempt) | Finisher::Expired(attempt) => Some(attempt),
        Finisher::Anyone | Finisher::Unclaimed => None,
    };
    let unclaimed_only = by == Finisher::Unclaimed;
    let expired_only = matches!(by, Finisher::Expired(_));
    let status = if outcome.succeeded { Status::Succeeded } else { Status::Failed };
    let target = action_executions::table
        .filter(action_executions::action_execution_id.eq(action_execution_id))
        .filter(action_executions::status.eq(Status::InProgress.as_str()))
        .filter(action_executions::job_attempt.eq(attempt.unwrap_or(0)).or(attempt.is_none().into_sql::<Bool>()))
        .filter(
            action_executions::lease_until
                .is_null()
                .or(action_executions::lease_until.lt(now()))
                .or((!unclaimed_only).into_sql::<Bool>()),
        )
        .filter(action_executions::lease_until.lt(now()).or((!expired_only).into_sql::<Bool>()));
    Ok(Prepared(
        diesel::update(target)
            .set((
                action_executions::status.eq(status.as_str()),
                action_executions::summary.eq(&outcome.summary),
                action_executions::error_code.eq(&outcome.error_code),
                action_executions::error_message.eq(&outcome.error_message),
                action_executions::external_url.eq(&outcome.external_url),
                action_executions::output_artifacts.eq(serde_json::to_value(&outcome.outputs).unwrap_or_default()),
                action_executions::output_variables.eq(serde_json::to_value(&outcome.variables).unwrap_or_default()),
                action_executions::lease_until.eq(None::<DateTime<Utc>>),
                action_executions::updated_at.eq(now()),
                action_executions::finished_at.eq(now()),
            ))
            .returning(action_executions::execution_id),
    )
    .get_result(conn)
    .await
    .optional()?)
}

/// CodePipeline's approval timeout: 7 days.
pub const APPROVAL_TIMEOUT_MINUTES: i32 = 7 * 24 * 60;

/// Actions whose lease ran out: a runner that died, or an approval nobody
/// answered in time: (id, job attempts so far, whether it is an approval).
pub async fn expired_leases(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<(Uuid, i32, Waited)>, IamError> {
    // (id, job attempts, approval token, callback secret, job worker)
    type Row = (Uuid, i32, Option<Uuid>, Option<Uuid>, bool);
    let found: Vec<Row> = action_executions::table
        .filter(action_executions::status.eq(Status::InProgress.as_str()))
        .filter(action_executions::lease_until.lt(now()))
        .select((
            action_executions::action_execution_id,
            action_executions::job_attempt,
            action_executions::token,
            action_executions::callback_secret,
            action_executions::job_worker,
        ))
        .limit(limit)
        .load(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|(id, attempts, token, callback, job_worker)| {
            let waited = match (token, callback) {
                _ if job_worker => Waited::Job,
                (_, Some(_)) => Waited::Callback,
                (Some(_), None) => Waited::Approval,
                (None, None) => Waited::Nothing,
            };
            (id, attempts, waited)
        })
        .collect())
}

/// What an action whose lease ran out was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Nothing: its runner stopped responding.
    Nothing,
    Approval,
    /// An Invoke/HTTP action's callback.
    Callback,
    /// A custom action's job worker.
    Job,
}

/// The secret an Invoke/HTTP action's callback is signed with, made now
/// (before the call that carries it), while this runner's attempt holds
/// the action; from now the action's lease is the callback's deadline (a
/// runner lost after the call leaves it waiting, never run twice).
pub async fn callback_secret(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    job_attempt: i32,
    deadline: DateTime<Utc>,
) -> Result<Option<Uuid>, IamError> {
    let secret = Uuid::new_v4();
    let set = diesel::update(
        action_executions::table
            .filter(action_executions::action_execution_id.eq(action_execution_id))
            .filter(action_executions::job_attempt.eq(job_attempt))
            .filter(action_executions::status.eq(Status::InProgress.as_str())),
    )
    .set((action_executions::callback_secret.eq(Some(secret)), action_executions::lease_until.eq(Some(deadline))))
    .execute(conn)
    .await?;
    Ok((set == 1).then_some(secret))
}

/// The call went out and was answered: the action waits for its callback
/// (until the deadline set with its secret). Whether it still waits (a
/// quick callback may have ended it already).
pub async fn wait_for_callback(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    job_attempt: i32,
    variables: &BTreeMap<String, String>,
) -> Result<bool, IamError> {
    let set = diesel::update(
        action_executions::table
            .filter(action_executions::action_execution_id.eq(action_execution_id))
            .filter(action_executions::job_attempt.eq(job_attempt))
            .filter(action_executions::status.eq(Status::InProgress.as_str()))
            .filter(action_executions::callback_secret.is_not_null()),
    )
    .set((
        action_executions::summary.eq("Waiting for its callback"),
        // (The call's variables, StatusCode: the callback's are added to them.)
        action_executions::output_variables.eq(serde_json::to_value(variables).unwrap_or_default()),
    ))
    .execute(conn)
    .await?;
    Ok(set == 1)
}

/// An action that waits for a callback: its run, its secret, and the
/// account and pipeline it belongs to (for the audit log).
pub async fn waiting_for_callback(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
) -> Result<Option<(ActionExecution, Uuid, String, String)>, IamError> {
    let found: Option<(ActionExecution, Option<Uuid>, String, String)> = action_executions::table
        .inner_join(
            pipeline_executions::table.on(pipeline_executions::execution_id.eq(action_executions::execution_id)),
        )
        .filter(action_executions::action_execution_id.eq(action_execution_id))
        .filter(action_executions::status.eq(Status::InProgress.as_str()))
        .filter(action_executions::callback_secret.is_not_null())
        .select((
            ActionExecution::as_select(),
            action_executions::callback_secret,
            pipeline_executions::account_id,
            pipeline_executions::pipeline_name,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(found.and_then(|(action, secret, account, pipeline)| Some((action, secret?, account, pipeline))))
}

/// Queues the job of an action whose lease ran out, once: its lease is
/// cleared so that a runner may claim it and no other sweep queues it again.
pub async fn requeue_expired(
    conn: &mut AsyncPgConnection,
    action_execution_id: Uuid,
    job_attempt: i32,
) -> Result<Option<Queued>, IamError> {
    conn.transaction::<_, IamError, _>(async move |conn| {
        let cleared = diesel::update(
            action_executions::table
                .filter(action_executions::action_execution_id.eq(action_execution_id))
                .filter(action_executions::job_attempt.eq(job_attempt))
                .filter(action_executions::status.eq(Status::InProgress.as_str()))
                .filter(action_executions::lease_until.lt(now())),
        )
        .set(action_executions::lease_until.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await?;
        if cleared == 0 {
            return Ok(None);
        }
        Ok(Some(messaging::enqueue(conn, &Message::Run { action_execution_id }).await?))
    })
    .await
}

/// What an approval answer found.
pub enum Approval {
    Done(Vec<Queued>),
    NoSuchAction,
    NotWaiting,
    WrongToken,
}

/// Approves or rejects a waiting approval action by its token.
#[allow(clippy::too_many_arguments)]
pub async fn put_approval(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    stage: &str,
    action: &str,
    token: Uuid,
    approved: bool,
    summary: &str,
    by: &str,
) -> Result<Approval, IamError> {
    let waiting: Option<ActionExecution> = action_executions::table
        .filter(action_executions::pipeline_id.eq(pipeline_id))
        .filter(action_executions::stage_name.eq(stage))
        .filter(action_executions::action_name.eq(action))
        .order(action_executions::started_at.desc())
        .select(ActionExecution::as_select())
        .first(conn)
        .await
        .optional()?;
    let Some(waiting) = waiting else { return Ok(Approval::NoSuchAction) };
    if waiting.status() != Status::InProgress || waiting.token.is_none() {
        return Ok(Approval::NotWaiting);
    }
    if waiting.token != Some(token) {
        return Ok(Approval::WrongToken);
    }
    let outcome = Outcome {
        succeeded: approved,
        summary: Some(format!("{} by {by}: {summary}", if approved { "Approved" } else { "Rejected" })),
        error_code: (!approved).then(|| "ApprovalRejected".to_owned()),
        error_message: (!approved).then(|| format!("rejected by {by}: {summary}")),
        ..Outcome::default()
    };
    Ok(match finish_action(conn, waiting.action_execution_id, Finisher::Anyone, outcome).await? {
        Some(ids) => Approval::Done(ids),
        None => Approval::NotWaiting,
    })
}

/// One execution of a pipeline.
pub async fn find(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    execution_id: Uuid,
) -> Result<Option<Execution>, IamError> {
    Ok(pipeline_executions::table
        .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
        .filter(pipeline_executions::execution_id.eq(execution_id))
        .select(Execution::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A page of a pipeline's executions, newest first, after `before_seq`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    status: Option<Status>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Execution>, IamError> {
    let mut query = pipeline_executions::table.filter(pipeline_executions::pipeline_id.eq(pipeline_id)).into_boxed();
    if let Some(status) = status {
        query = query.filter(pipeline_executions::status.eq(status.as_str()));
    }
    if let Some(seq) = before_seq {
        query = query.filter(pipeline_executions::seq.lt(seq));
    }
    Ok(query.order(pipeline_executions::seq.desc()).limit(limit).select(Execution::as_select()).load(conn).await?)
}

/// A page of a pipeline's action runs, newest first.
pub async fn list_actions(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    execution_id: Option<Uuid>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ActionExecution>, IamError> {
    let mut query = action_executions::table.filter(action_executions::pipeline_id.eq(pipeline_id)).into_boxed();
    if let Some(execution_id) = execution_id {
        query = query.filter(action_executions::execution_id.eq(execution_id));
    }
    if let Some((time, id)) = before {
        query = query.filter(
            action_executions::started_at
                .lt(time)
                .or(action_executions::started_at.eq(time).and(action_executions::action_execution_id.lt(id))),
        );
    }
    Ok(query
        .order((action_executions::started_at.desc(), action_executions::action_execution_id.desc()))
        .limit(limit)
        .select(ActionExecution::as_select())
        .load(conn)
        .await?)
}

/// One action run of a pipeline.
pub async fn find_action(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action_execution_id: Uuid,
) -> Result<Option<ActionExecution>, IamError> {
    Ok(action_executions::table
        .filter(action_executions::pipeline_id.eq(pipeline_id))
        .filter(action_executions::action_execution_id.eq(action_execution_id))
        .select(ActionExecution::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The pipeline's state: per stage, the latest execution that entered it,
/// and per action its latest run.
pub async fn state(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
) -> Result<(Vec<(StageExecution, String)>, Vec<ActionExecution>), IamError> {
    let stages: Vec<(StageExecution, String)> = stage_executions::table
        .inner_join(pipeline_executions::table)
        .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
        .select((StageExecution::as_select(), pipeline_executions::status))
        .distinct_on(stage_executions::stage_name)
        .order((stage_executions::stage_name, stage_executions::started_at.desc()))
        .load(conn)
        .await?;
    let actions: Vec<ActionExecution> = action_executions::table
        .filter(action_executions::pipeline_id.eq(pipeline_id))
        .distinct_on((action_executions::stage_name, action_executions::action_name))
        .order((action_executions::stage_name, action_executions::action_name, action_executions::started_at.desc()))
        .select(ActionExecution::as_select())
        .load(conn)
        .await?;
    Ok((stages, actions))
}

/// The running executions of a pipeline that wait to enter a stage (a
/// disabled transition, or a stage another execution holds), as
/// `(stage name, execution id)`, oldest first: every stage before that one
/// succeeded and it was not entered (CodePipeline's `inboundExecutions`).
/// The stage is named from the version the execution runs, which may not
/// be the pipeline's current one.
pub async fn inbound(conn: &mut AsyncPgConnection, pipeline_id: Uuid) -> Result<Vec<(String, Uuid)>, IamError> {
    let running: Vec<(Uuid, i32)> = pipeline_executions::table
        .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
        .filter(pipeline_executions::status.eq(Status::InProgress.as_str()))
        .order(pipeline_executions::seq.asc())
        .select((pipeline_executions::execution_id, pipeline_executions::pipeline_version))
        .load(conn)
        .await?;
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = running.iter().map(|(id, _)| *id).collect();
    let entered: Vec<(Uuid, i32, String)> = stage_executions::table
        .filter(stage_executions::execution_id.eq_any(&ids))
        .select((stage_executions::execution_id, stage_executions::stage_index, stage_executions::status))
        .load(conn)
        .await?;
    let mut versions: Vec<i32> = running.iter().map(|(_, v)| *v).collect();
    versions.sort_unstable();
    versions.dedup();
    let declarations: Vec<(i32, Value)> = pipeline_versions::table
        .filter(pipeline_versions::pipeline_id.eq(pipeline_id))
        .filter(pipeline_versions::version.eq_any(&versions))
        .select((pipeline_versions::version, pipeline_versions::declaration))
        .load(conn)
        .await?;
    let stage_name = |version: i32, index: usize| {
        declarations
            .iter()
            .find(|(v, _)| *v == version)
            .and_then(|(_, d)| d["stages"].get(index))
            .and_then(|stage| stage["name"].as_str())
            .map(str::to_owned)
    };
    Ok(running
        .into_iter()
        .filter_map(|(execution, version)| {
            let mut stages: Vec<(i32, &str)> =
                entered.iter().filter(|(e, _, _)| *e == execution).map(|(_, i, s)| (*i, s.as_str())).collect();
            stages.sort_unstable();
            // Stages are entered in order: the first index missing or not
            // succeeded is where it stands.
            let done = stages
                .iter()
                .enumerate()
                .take_while(|(n, (i, status))| {
                    usize::try_from(*i).ok() == Some(*n) && *status == Status::Succeeded.as_str()
                })
                .count();
            let entered_next = stages.iter().any(|(i, _)| usize::try_from(*i).ok() == Some(done));
            if done == 0 || entered_next {
                return None;
            }
            stage_name(version, done).map(|name| (name, execution))
        })
        .collect())
}

/// The source revisions some executions started with, by execution.
pub async fn source_revisions_of(
    conn: &mut AsyncPgConnection,
    executions: &[Uuid],
) -> Result<Vec<(Uuid, Vec<SourceRevision>)>, IamError> {
    if executions.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<(Uuid, Value)> = pipeline_executions::table
        .filter(pipeline_executions::execution_id.eq_any(executions))
        .select((pipeline_executions::execution_id, pipeline_executions::source_revisions))
        .load(conn)
        .await?;
    Ok(found.into_iter().map(|(id, revisions)| (id, serde_json::from_value(revisions).unwrap_or_default())).collect())
}

/// The executions of the pipeline that are running, for the ones to poke.
pub async fn running(conn: &mut AsyncPgConnection, pipeline_id: Uuid) -> Result<Vec<Uuid>, IamError> {
    Ok(pipeline_executions::table
        .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
        .filter(pipeline_executions::status.eq_any([Status::InProgress.as_str(), Status::Stopping.as_str()]))
        .select(pipeline_executions::execution_id)
        .load(conn)
        .await?)
}

/// A Git source action to poll: its pipeline and configuration.
#[derive(Debug, Clone)]
pub struct PolledSource {
    pub pipeline: Pipeline,
    pub action_name: String,
    pub repository_url: String,
    pub branch: String,
    pub token: Option<String>,
    /// What its trigger (or its branch) makes polling look at.
    pub watch: crate::pipelines::triggers::Watch,
    /// Its trigger's (or branch's) fingerprint.
    pub fingerprint: String,
}

impl PolledSource {
    /// The refs `git ls-remote` is asked for, and what decides which of
    /// them run, as one text: when it changes, the refs found are taken as
    /// seen (a widened filter does not run every branch it now names).
    pub fn looks_at(&self) -> String {
        format!("{} {}", self.watch.patterns(&self.branch).join(" "), self.fingerprint)
    }
}

/// Every Git source action that polls for changes.
pub async fn polled_sources(conn: &mut AsyncPgConnection) -> Result<Vec<PolledSource>, IamError> {
    use crate::pipelines::store::Pipeline as P;
    use crate::pipelines::triggers;
    let found: Vec<P> = pipelines::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "jsonb_path_exists(declaration, '$.stages[0].actions[*] ? (@.actionTypeId.provider == \"Git\")')",
        ))
        .select(P::as_select())
        .load(conn)
        .await?;
    let mut sources = Vec::new();
    for pipeline in found {
        let Ok(declaration) = pipeline.declaration() else { continue };
        for action in declaration.stages.iter().take(1).flat_map(|s| s.actions.iter()) {
            let config = &action.configuration;
            if action.action_type_id.provider != "Git"
                || config.get("pollForSourceChanges").is_some_and(|v| v == "false")
            {
                continue;
            }
            let Some(url) = config.get("repositoryUrl") else { continue };
            sources.push(PolledSource {
                pipeline: pipeline.clone(),
                action_name: action.name.clone(),
                repository_url: url.clone(),
                branch: triggers::configured_branch(action).to_owned(),
                token: config.get("token").cloned(),
                watch: triggers::watch(&declaration, action),
                fingerprint: triggers::fingerprint(&declaration, action),
            });
        }
    }
    Ok(sources)
}

/// Records the commit a source's ref was first seen at (by the execution
/// that ran it): polling starts nothing for it.
pub async fn note_revision(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action_name: &str,
    reference: &str,
    revision_id: &str,
) -> Result<(), IamError> {
    use crate::schema::source_refs as r;
    diesel::insert_into(r::table)
        .values((
            r::pipeline_id.eq(pipeline_id),
            r::action_name.eq(action_name),
            r::ref_name.eq(reference),
            r::revision_id.eq(revision_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// The commits a polled source's refs were last seen at. The first look at
/// a source (or at what a changed trigger makes it look at) takes the refs
/// it finds as seen: they start nothing; what changes after does.
pub async fn seen_refs(
    conn: &mut AsyncPgConnection,
    source: &PolledSource,
    found: &[(String, String)],
    looked: DateTime<Utc>,
) -> Result<BTreeMap<String, String>, IamError> {
    use crate::schema::{source_refs as r, source_watches as w};
    let pipeline_id = source.pipeline.pipeline_id;
    let looks_at = source.looks_at();
    conn.transaction::<_, IamError, _>(async move |conn| {
        let watched: Option<String> = w::table
            .find((pipeline_id, &source.action_name))
            .select(w::looks_at)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if watched.as_deref() != Some(looks_at.as_str()) {
            diesel::insert_into(w::table)
                .values((
                    w::pipeline_id.eq(pipeline_id),
                    w::action_name.eq(&source.action_name),
                    w::looks_at.eq(&looks_at),
                ))
                .on_conflict((w::pipeline_id, w::action_name))
                .do_update()
                .set((w::looks_at.eq(&looks_at), w::since.eq(now())))
                .execute(conn)
                .await?;
            for (reference, commit) in found {
                note_revision(conn, pipeline_id, &source.action_name, reference, commit).await?;
            }
        }
        // Branches and tags gone from the repository (or no longer looked
        // at) are forgotten: a branch made again is new. (Not one recorded
        // since the look began — a webhook's — nor pull requests'.)
        let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        diesel::delete(
            r::table
                .filter(r::pipeline_id.eq(pipeline_id))
                .filter(r::action_name.eq(&source.action_name))
                .filter(r::ref_name.ne_all(&names))
                .filter(r::ref_name.like("refs/heads/%").or(r::ref_name.like("refs/tags/%")))
                .filter(r::seen_at.lt(looked)),
        )
        .execute(conn)
        .await?;
        Ok(r::table
            .filter(r::pipeline_id.eq(pipeline_id))
            .filter(r::action_name.eq(&source.action_name))
            .select((r::ref_name, r::revision_id))
            .load::<(String, String)>(conn)
            .await?
            .into_iter()
            .collect())
    })
    .await
}

/// How a change was seen.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// By polling, its ref having been at this commit (`None`: a new ref).
    Polled(Option<&'a str>),
    /// Delivered by a webhook (its ARN): a push whose ref a poll may not
    /// have seen yet, or a pull request.
    Delivered(&'a str),
}

/// A change of a source was seen. Whichever process records it first (a
/// poller, or a webhook's delivery of the same push) decides it: when the
/// source's trigger (or its branch) matches, an execution starts on it.
/// Returns the new execution and its outbox rows.
pub async fn change_seen(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action_name: &str,
    seen: Seen<'_>,
    change: &crate::pipelines::triggers::Change,
) -> Result<Option<(Uuid, Vec<Queued>)>, IamError> {
    use crate::pipelines::triggers::Event;
    use crate::schema::source_refs as r;
    let reference = change.event.reference().to_owned();
    conn.transaction::<_, IamError, _>(async move |conn| {
        let key = r::table
            .filter(r::pipeline_id.eq(pipeline_id))
            .filter(r::action_name.eq(action_name))
            .filter(r::ref_name.eq(&reference));
        let new = (
            r::pipeline_id.eq(pipeline_id),
            r::action_name.eq(action_name),
            r::ref_name.eq(&reference),
            r::revision_id.eq(&change.commit),
        );
        let (recorded, webhook) = match (seen, &change.event) {
            (Seen::Polled(Some(before)), _) => (
                diesel::update(key.filter(r::revision_id.eq(before)))
                    .set((r::revision_id.eq(&change.commit), r::seen_at.eq(now())))
                    .execute(conn)
                    .await?,
                None,
            ),
            (Seen::Polled(None), _) => {
                (diesel::insert_into(r::table).values(new).on_conflict_do_nothing().execute(conn).await?, None)
            }
            // A pushed ref at a commit not yet recorded for it.
            (Seen::Delivered(webhook), Event::Push { .. }) => {
                (moved_to(conn, pipeline_id, action_name, &reference, &change.commit).await?, Some(webhook))
            }
            // A pull request's event at its commit, once (a redelivery
            // runs nothing).
            (Seen::Delivered(webhook), Event::PullRequest { action, .. }) => {
                let key = format!("{reference}#{action}");
                (moved_to(conn, pipeline_id, action_name, &key, &change.commit).await?, Some(webhook))
            }
        };
        if recorded == 0 {
            return Ok(None);
        }
        start_on_change(conn, pipeline_id, action_name, change, webhook).await
    })
    .await
}

/// Records that a ref is at `commit`; whether that is news (a new ref, or
/// one that was elsewhere).
async fn moved_to(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action_name: &str,
    reference: &str,
    commit: &str,
) -> Result<usize, IamError> {
    use crate::schema::source_refs as r;
    let moved = diesel::update(
        r::table
            .filter(r::pipeline_id.eq(pipeline_id))
            .filter(r::action_name.eq(action_name))
            .filter(r::ref_name.eq(reference))
            .filter(r::revision_id.ne(commit)),
    )
    .set((r::revision_id.eq(commit), r::seen_at.eq(now())))
    .execute(conn)
    .await?;
    if moved > 0 {
        return Ok(moved);
    }
    Ok(diesel::insert_into(r::table)
        .values((
            r::pipeline_id.eq(pipeline_id),
            r::action_name.eq(action_name),
            r::ref_name.eq(reference),
            r::revision_id.eq(commit),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?)
}

/// Starts an execution on a change when the source's trigger (as the
/// pipeline is now) matches it, in the caller's transaction.
pub async fn start_on_change(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    action_name: &str,
    change: &crate::pipelines::triggers::Change,
    webhook: Option<&str>,
) -> Result<Option<(Uuid, Vec<Queued>)>, IamError> {
    use super::way_in::{Cause, NotStarted, Start, start};
    let Some(pipeline) =
        pipelines::table.find(pipeline_id).select(Pipeline::as_select()).first(conn).await.optional()?
    else {
        return Ok(None);
    };
    let declaration = pipeline.declaration()?;
    let Some(action) = declaration.stages.iter().take(1).flat_map(|s| &s.actions).find(|a| a.name == action_name)
    else {
        return Ok(None);
    };
    let Some(matched) = crate::pipelines::triggers::matching(&declaration, action, change) else {
        return Ok(None);
    };
    let revision = SourceRevision {
        action_name: action_name.to_owned(),
        revision_id: change.commit.clone(),
        reference: Some(change.event.reference().to_owned()),
        branch: change.event.branch().map(str::to_owned),
        ..SourceRevision::default()
    };
    let cause = Cause::Changed { revision, filter: matched.filter, webhook: webhook.map(str::to_owned) };
    match start(conn, &pipeline, Start::new(cause)).await {
        Ok(started) => Ok(started.map(|(execution, ids)| (execution.execution_id, ids))),
        Err(NotStarted::Failed(e)) => Err(e),
        // (No variable is given: the defaults cannot be refused.)
        Err(NotStarted::Refused(why)) => Err(IamError::InvalidInput(why)),
    }
}

/// What a retry or a stop found.
pub enum Control {
    Done(Vec<Queued>),
    NoExecution,
    NoStage,
    /// Not allowed now, and why.
    Refused(String),
}

/// Locks a pipeline's row: its executions are decided one at a time.
async fn lock_pipeline(conn: &mut AsyncPgConnection, pipeline_id: Uuid) -> Result<(), IamError> {
    pipelines::table.find(pipeline_id).select(pipelines::pipeline_id).for_no_key_update().first::<Uuid>(conn).await?;
    Ok(())
}

/// Locks what changes an execution from outside (stop, retry): its
/// pipeline, then the execution — the order [`advance`] takes them in.
/// `NO KEY UPDATE` locks leave inserts that refer to the rows (a new
/// execution's foreign key) unblocked.
async fn lock(conn: &mut AsyncPgConnection, pipeline_id: Uuid, execution_id: Uuid) -> Result<(), IamError> {
    lock_pipeline(conn, pipeline_id).await?;
    pipeline_executions::table
        .find(execution_id)
        .select(pipeline_executions::execution_id)
        .for_no_key_update()
        .load::<Uuid>(conn)
        .await?;
    Ok(())
}

/// RetryStageExecution: runs a failed (or stopped) stage of the latest
/// execution to reach it again — its failed actions only, or all of them.
pub async fn retry_stage(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    execution_id: Uuid,
    stage_name: &str,
    failed_only: bool,
) -> Result<Control, IamError> {
    let stage_name = stage_name.to_owned();
    conn.transaction::<_, IamError, _>(async move |conn| {
        lock(conn, pipeline_id, execution_id).await?;
        let Some(execution) = find(conn, pipeline_id, execution_id).await? else { return Ok(Control::NoExecution) };
        let declaration = declaration_at(conn, pipeline_id, execution.pipeline_version).await?;
        let Some(index) = declaration.stages.iter().position(|s| s.name == stage_name) else {
            return Ok(Control::NoStage);
        };
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        let stage: Option<StageExecution> = stage_executions::table
            .find((execution_id, index))
            .select(StageExecution::as_select())
            .first(conn)
            .await
            .optional()?;
        let Some(stage) = stage.filter(|s| matches!(Status::parse(&s.status), Some(Status::Failed | Status::Stopped)))
        else {
            return Ok(Control::Refused(format!("stage {stage_name:?} of this execution has not failed or stopped")));
        };
        if !matches!(execution.status(), Status::Failed | Status::Stopped) {
            return Ok(Control::Refused(format!("the execution is {}, not Failed or Stopped", execution.status())));
        }
        let newer: i64 = stage_executions::table
            .inner_join(pipeline_executions::table)
            .filter(pipeline_executions::pipeline_id.eq(pipeline_id))
            .filter(pipeline_executions::seq.gt(execution.seq))
            .filter(stage_executions::stage_index.eq(index))
            .count()
            .get_result(conn)
            .await?;
        if newer > 0 {
            return Ok(Control::Refused(format!(
                "a newer execution has run stage {stage_name:?}: only the latest to reach a stage can retry it"
            )));
        }
        let attempt = stage.attempt + 1;
        if failed_only {
            let succeeded: Vec<ActionExecution> = action_executions::table
                .filter(action_executions::execution_id.eq(execution_id))
                .filter(action_executions::stage_index.eq(index))
                .filter(action_executions::attempt.eq(stage.attempt))
                .filter(action_executions::status.eq(Status::Succeeded.as_str()))
                .select(ActionExecution::as_select())
                .load(conn)
                .await?;
            for done in succeeded {
                // Carried into the new attempt as they were.
                diesel::insert_into(action_executions::table)
                    .values((
                        action_executions::action_execution_id.eq(Uuid::new_v4()),
                        action_executions::execution_id.eq(execution_id),
                        action_executions::pipeline_id.eq(pipeline_id),
                        action_executions::stage_index.eq(index),
                        action_executions::stage_name.eq(&done.stage_name),
                        action_executions::action_index.eq(done.action_index),
                        action_executions::action_name.eq(&done.action_name),
                        action_executions::attempt.eq(attempt),
                        action_executions::status.eq(Status::Succeeded.as_str()),
                        action_executions::summary.eq(&done.summary),
                        action_executions::input_artifacts.eq(&done.input_artifacts),
                        action_executions::output_artifacts.eq(&done.output_artifacts),
                        action_executions::output_variables.eq(&done.output_variables),
                        action_executions::resolved_configuration.eq(&done.resolved_configuration),
                        action_executions::started_at.eq(done.started_at),
                        action_executions::finished_at.eq(done.finished_at),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        diesel::update(stage_executions::table.find((execution_id, index)))
            .set((
                stage_executions::attempt.eq(attempt),
                stage_executions::status.eq(Status::InProgress.as_str()),
                stage_executions::updated_at.eq(now()),
            ))
            .execute(conn)
            .await?;
        diesel::update(pipeline_executions::table.find(execution_id))
            .set((
                pipeline_executions::status.eq(Status::InProgress.as_str()),
                pipeline_executions::status_summary.eq(None::<String>),
                pipeline_executions::updated_at.eq(now()),
            ))
            .execute(conn)
            .await?;
        Ok(Control::Done(vec![messaging::enqueue(conn, &Message::Advance { execution_id }).await?]))
    })
    .await
}

/// StopPipelineExecution: stop and wait (running actions finish, nothing new
/// starts), or abandon (running actions are abandoned at once).
pub async fn stop(
    conn: &mut AsyncPgConnection,
    pipeline_id: Uuid,
    execution_id: Uuid,
    abandon: bool,
    reason: &str,
) -> Result<Control, IamError> {
    let reason = reason.to_owned();
    conn.transaction::<_, IamError, _>(async move |conn| {
        lock(conn, pipeline_id, execution_id).await?;
        let Some(execution) = find(conn, pipeline_id, execution_id).await? else { return Ok(Control::NoExecution) };
        match execution.status() {
            Status::InProgress => {}
            Status::Stopping if abandon => {}
            Status::Stopping => return Ok(Control::Refused("the execution is stopping already".to_owned())),
            other => return Ok(Control::Refused(format!("the execution is {other}: only one in progress can stop"))),
        }
        let summary = if reason.is_empty() { None } else { Some(reason.clone()) };
        let running = action_executions::table
            .filter(action_executions::execution_id.eq(execution_id))
            .filter(action_executions::status.eq(Status::InProgress.as_str()));
        let abandoned = (
            action_executions::status.eq(Status::Abandoned.as_str()),
            action_executions::error_code.eq("Abandoned"),
            action_executions::error_message.eq(format!("abandoned when the execution was stopped: {reason}")),
            action_executions::lease_until.eq(None::<DateTime<Utc>>),
            action_executions::updated_at.eq(now()),
            action_executions::finished_at.eq(now()),
        );
        let mut outbox = Vec::new();
        if abandon {
            diesel::update(running).set(abandoned).execute(conn).await?;
            diesel::update(
                stage_executions::table
                    .filter(stage_executions::execution_id.eq(execution_id))
                    .filter(stage_executions::status.eq(Status::InProgress.as_str())),
            )
            .set((stage_executions::status.eq(Status::Stopped.as_str()), stage_executions::updated_at.eq(now())))
            .execute(conn)
            .await?;
            finish_execution(conn, execution_id, Status::Stopped, summary.as_deref()).await?;
            for other in running_ids(conn, pipeline_id).await? {
                outbox.push(messaging::enqueue(conn, &Message::Advance { execution_id: other }).await?);
            }
        } else {
            // Approvals would wait for ever: they are abandoned either way.
            diesel::update(running.filter(action_executions::token.is_not_null())).set(abandoned).execute(conn).await?;
            diesel::update(pipeline_executions::table.find(execution_id))
                .set((
                    pipeline_executions::status.eq(Status::Stopping.as_str()),
                    pipeline_executions::status_summary.eq(&summary),
                    pipeline_executions::updated_at.eq(now()),
                ))
                .execute(conn)
                .await?;
            outbox.push(messaging::enqueue(conn, &Message::Advance { execution_id }).await?);
        }
        Ok(Control::Done(outbox))
    })
    .await
}

async fn running_ids(conn: &mut AsyncPgConnection, pipeline_id: Uuid) -> Result<Vec<Uuid>, IamError> {
    running(conn, pipeline_id).await
}

/// The artifacts (SHA-256) that executions updated since `since`, or still
/// running, refer to: their sources, inputs and outputs. The retention
/// sweep keeps these.
pub async fn artifacts_in_use(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<std::collections::HashSet<String>, IamError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sha256: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "WITH recent AS (
            SELECT execution_id, source_revisions FROM pipeline_executions
             WHERE updated_at > $1 OR status IN ('InProgress', 'Stopping'))
         SELECT a->>'sha256' AS sha256
           FROM action_executions x JOIN recent USING (execution_id),
                jsonb_array_elements(x.input_artifacts || x.output_artifacts) a
          WHERE a ? 'sha256'
         UNION
         SELECT r->'artifact'->>'sha256'
           FROM recent, jsonb_array_elements(recent.source_revisions) r
          WHERE r->'artifact' ? 'sha256'",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.sha256).collect())
}
