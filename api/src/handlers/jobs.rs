//! The job API of custom actions, with CodePipeline's operation names and
//! shapes: PollForJobs (which may wait for a job, `waitTimeSeconds`),
//! AcknowledgeJob, GetJobDetails, PutJobSuccessResult and
//! PutJobFailureResult; and each job's artifacts, reached through the URLs
//! its data gives (`?token=`: the job's artifact credential, made at each
//! dispatch and good while the job is open). PollForJobs is authorised on
//! the action type, the others on `*`, as in CodePipeline.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, put, web};
use pipewright_core::executions::jobs::{self, Ended, Failure, Job, Refused, Success};
use pipewright_core::executions::store::{ActionExecution, SourceRevision};
use pipewright_core::pipelines::ActionTypeId;
use pipewright_core::pipelines::custom_types::{self, CustomActionTypeDefinition};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::{Authorized, NoBody, Operation, OperationDoc, RequestTx, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

/// PollForJobs: on the action type (as CodePipeline). Its transaction is
/// begun only once a job waits (see [`poll_for_jobs`]): a poll that waits
/// holds no database connection.
pub struct PollForJobs;

impl Operation for PollForJobs {
    const NAME: &'static str = "PollForJobs";
    const ACTION: &'static str = "codepipeline:PollForJobs";
    const RESOURCE: &'static str =
        "arn:pw:codepipeline:${Region}:${Account}:actiontype:Custom/{category}/{provider}/{version}";
    type Body = web::Json<PollForJobsRequest>;
    const READ_ONLY: bool = true;

    fn resource(r: &ResourceRequest<'_>, b: &Self::Body) -> Result<String, ApiError> {
        Ok(custom_types::arn(r.region, r.account, &b.action_type_id))
    }
}

operation!(AcknowledgeJob, "codepipeline:AcknowledgeJob", "*", web::Json<AcknowledgeJobRequest>, |_r, _b| Ok(
    "*".to_owned()
));
operation!(GetJobDetails, "codepipeline:GetJobDetails", "*", NoBody, |_r, _b| Ok("*".to_owned()));
operation!(
    PutJobSuccessResult,
    "codepipeline:PutJobSuccessResult",
    "*",
    web::Json<PutJobSuccessResultRequest>,
    |_r, _b| Ok("*".to_owned())
);
operation!(
    PutJobFailureResult,
    "codepipeline:PutJobFailureResult",
    "*",
    web::Json<PutJobFailureResultRequest>,
    |_r, _b| Ok("*".to_owned())
);

inventory::submit! { OperationDoc::of::<PollForJobs>() }
inventory::submit! { OperationDoc::public("GetJobArtifact", "the job's artifact token (the token in the URL its data gives)") }
inventory::submit! { OperationDoc::public("PutJobArtifact", "the job's artifact token (the token in the URL its data gives)") }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(poll_for_jobs)
        .service(acknowledge_job)
        .service(get_job_details)
        .service(put_job_success_result)
        .service(put_job_failure_result)
        .service(get_job_artifact)
        .service(put_job_artifact);
}

/// The longest a PollForJobs waits for a job.
pub const MAX_WAIT_SECONDS: u32 = 20;
/// The most jobs one PollForJobs hands out.
pub const MAX_BATCH_SIZE: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollForJobsRequest {
    /// A custom action type of the account (owner `Custom`).
    pub action_type_id: ActionTypeId,
    /// At most this many jobs, 1 to 100 (default 1).
    #[schema(example = 1, minimum = 1, maximum = 100)]
    pub max_batch_size: Option<u32>,
    /// Only jobs whose queryable property has this value: `{PROPERTY: value}`.
    /// Required (with that one key) when the type has a queryable property;
    /// empty otherwise.
    #[serde(default)]
    pub query_param: BTreeMap<String, String>,
    /// Waits up to this many seconds (0 to 20, default 0) for a job when
    /// none waits: the call answers as soon as one is queued.
    #[schema(example = 20, minimum = 0, maximum = 20)]
    pub wait_time_seconds: Option<u32>,
}

/// Where a job's artifact is: a URL that takes the job's artifact token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobArtifactLocation {
    /// `URL`.
    #[serde(rename = "type")]
    #[schema(example = "URL")]
    pub kind: String,
    /// An input artifact: GET it (a tar archive). An output artifact: PUT
    /// it (a tar, tar.gz or zip archive) before PutJobSuccessResult. Good
    /// while the job is open.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobArtifact {
    pub name: String,
    /// An input artifact's content id (its SHA-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Absent until the job is dispatched (it has no artifact token before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<JobArtifactLocation>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionConfiguration {
    /// The action's configuration, variables resolved, secret properties
    /// included (the job worker needs them).
    pub configuration: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageContext {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionContext {
    pub name: String,
    pub action_execution_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineContext {
    pub pipeline_name: String,
    pub stage: StageContext,
    pub action: ActionContext,
    pub pipeline_arn: String,
    pub pipeline_execution_id: Uuid,
}

/// What a job worker needs to run the job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobData {
    pub action_type_id: ActionTypeId,
    pub action_configuration: ActionConfiguration,
    pub pipeline_context: PipelineContext,
    pub input_artifacts: Vec<JobArtifact>,
    pub output_artifacts: Vec<JobArtifact>,
    /// What the job before gave as its continuationToken (a job that goes on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    pub data: JobData,
    /// Give it to AcknowledgeJob.
    pub nonce: String,
    pub account_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollForJobsResponse {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcknowledgeJobRequest {
    /// The nonce PollForJobs gave with the job.
    pub nonce: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgeJobResponse {
    /// `InProgress`.
    #[schema(example = "InProgress")]
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDetails {
    pub id: Uuid,
    pub data: JobData,
    pub account_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetJobDetailsResponse {
    pub job_details: JobDetails,
}

/// How far the job got, shown on the action.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionDetails {
    /// Shown as the action's summary (at most 2048 characters).
    pub summary: Option<String>,
    /// The run's id in the job worker's system (at most 1500 characters):
    /// the action's `externalExecutionId`; its link is the type's
    /// `executionUrlTemplate` with `{ExternalExecutionId}` replaced by it.
    pub external_execution_id: Option<String>,
    /// 0 to 100: shown after the summary, `(50%)`.
    #[schema(minimum = 0, maximum = 100)]
    pub percent_complete: Option<u8>,
}

/// A custom source action's revision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurrentRevision {
    /// The revision's id (1 to 1500 characters).
    pub revision: String,
    /// The change's id (1 to 100 characters): the revision's
    /// `revisionChangeIdentifier`.
    pub change_identifier: String,
    /// At most 2048 characters.
    pub revision_summary: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutJobSuccessResultRequest {
    /// Only for a custom Source action: the revision it took.
    pub current_revision: Option<CurrentRevision>,
    /// The job goes on: the action stays in progress and a next job, which
    /// carries this token, is queued (at most 2048 characters).
    pub continuation_token: Option<String>,
    pub execution_details: Option<ExecutionDetails>,
    /// The action's output variables (`#{Namespace.NAME}` downstream):
    /// names of letters, digits and `_-`, values of at most 1000
    /// characters; not with a continuationToken.
    #[serde(default)]
    #[schema(example = json!({"FINDINGS": "0"}))]
    pub output_variables: BTreeMap<String, String>,
}

/// CodePipeline's failure types.
pub const FAILURE_TYPES: [&str; 6] = [
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureDetails {
    /// `JobFailed`, `ConfigurationError`, `PermissionError`,
    /// `RevisionOutOfSync`, `RevisionUnavailable` or `SystemUnavailable`:
    /// the action's error code.
    #[serde(rename = "type")]
    #[schema(example = "JobFailed")]
    pub kind: String,
    /// Why (1 to 5000 characters): the action's error message.
    pub message: String,
    pub external_execution_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutJobFailureResultRequest {
    pub failure_details: FailureDetails,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResultResponse {
    /// The job's status now: `Succeeded` or `Failed`.
    #[schema(example = "Succeeded")]
    pub status: String,
}

fn job_not_found() -> ApiError {
    ApiError::new(ErrorCode::JobNotFoundException, "the account has no job of that id")
}

fn job_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| job_not_found())
}

fn refused(refused: Refused) -> ApiError {
    match refused {
        Refused::NotFound => job_not_found(),
        Refused::InvalidNonce => ApiError::new(
            ErrorCode::InvalidNonceException,
            "the nonce is not the one of the job's latest dispatch: another job worker took the job, or it was \
             handed out again after it was not acknowledged in time",
        ),
        Refused::InvalidState(why) => ApiError::new(ErrorCode::InvalidJobStateException, why),
    }
}

/// The account's custom action type of that id.
async fn custom_type(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &str,
    id: &ActionTypeId,
) -> Result<CustomActionTypeDefinition, ApiError> {
    if id.owner != custom_types::OWNER {
        return Err(ApiError::validation(format!(
            "actionTypeId.owner: only custom action types (owner {:?}) have jobs",
            custom_types::OWNER
        )));
    }
    custom_types::find(conn, account, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ActionTypeNotFoundException, format!("no custom action type {id}")))
}

/// A job's data, as PollForJobs and GetJobDetails give it.
async fn job_data(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    job: &Job,
    action: &ActionExecution,
) -> Result<JobData, ApiError> {
    let context = jobs::context(conn, action).await?.ok_or_else(job_not_found)?;
    let url = |name: &str| {
        job.artifact_token.as_ref().filter(|_| job.status != jobs::QUEUED).map(|token| JobArtifactLocation {
            kind: "URL".to_owned(),
            url: format!(
                "{}/v1/jobs/{}/artifacts/{}?token={token}",
                state.public_url,
                job.job_id,
                crate::handlers::percent_encode(name)
            ),
        })
    };
    Ok(JobData {
        action_type_id: job.action_type_id(),
        action_configuration: ActionConfiguration { configuration: context.configuration },
        pipeline_context: PipelineContext {
            pipeline_arn: pipewright_core::pipelines::store::arn(
                &state.region,
                &context.execution.account_id,
                &context.execution.pipeline_name,
            ),
            pipeline_name: context.execution.pipeline_name.clone(),
            stage: StageContext { name: action.stage_name.clone() },
            action: ActionContext { name: action.action_name.clone(), action_execution_id: action.action_execution_id },
            pipeline_execution_id: context.execution.execution_id,
        },
        input_artifacts: context
            .inputs
            .iter()
            .map(|i| JobArtifact { name: i.name.clone(), revision: Some(i.sha256.clone()), location: url(&i.name) })
            .collect(),
        output_artifacts: context
            .output_names
            .iter()
            .map(|name| JobArtifact { name: name.clone(), revision: None, location: url(name) })
            .collect(),
        continuation_token: job.continuation_token.clone(),
    })
}

/// Hands the caller jobs of a custom action type: each with a nonce to
/// acknowledge it with, and its data (configuration, pipeline context,
/// artifact URLs). With `waitTimeSeconds`, waits for a job when none waits,
/// and answers as soon as one is queued.
#[utoipa::path(
    tag = "jobs", operation_id = "PollForJobs", request_body = PollForJobsRequest,
    responses((status = 200, body = PollForJobsResponse, description = "the jobs handed out (perhaps none)"),
        (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the account has no such custom action type (ActionTypeNotFoundException)")),
    security(("bearer" = []))
)]
#[post("/v1/jobs/poll")]
pub async fn poll_for_jobs(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PollForJobs>,
) -> Result<HttpResponse, ApiError> {
    let body = &auth.body;
    let account = auth.caller.account().to_owned();
    let max = body.max_batch_size.unwrap_or(1);
    if !(1..=MAX_BATCH_SIZE).contains(&max) {
        return Err(ApiError::validation(format!("maxBatchSize: 1 to {MAX_BATCH_SIZE}, not {max}")));
    }
    let wait = body.wait_time_seconds.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::validation(format!("waitTimeSeconds: 0 to {MAX_WAIT_SECONDS}, not {wait}")));
    }
    let id = &body.action_type_id;
    let definition = {
        let mut conn = state.services.db.conn().await?;
        custom_type(&mut conn, &account, id).await?
    };
    let queryable = definition.configuration_properties.iter().find(|p| p.queryable);
    let query_value = match (queryable, body.query_param.len()) {
        (None, 0) => None,
        (None, _) => {
            return Err(ApiError::validation(format!("queryParam: {id} has no queryable property; send none")));
        }
        (Some(p), 1) if body.query_param.contains_key(&p.name) => body.query_param.get(&p.name).cloned(),
        (Some(p), _) => {
            return Err(ApiError::validation(format!(
                "queryParam: {id} is polled by its queryable property: send {{{:?}: VALUE}} and nothing else",
                p.name
            )));
        }
    };
    let channel = state.services.cache.key(&jobs::channel(&account, id));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    // Listening before looking: a job queued between the two is heard.
    let mut listener = if wait > 0 { state.services.cache.subscribe(&channel).await.ok() } else { None };
    loop {
        let waiting = {
            let mut conn = state.services.db.conn().await?;
            jobs::any_waiting(&mut conn, &account, id, query_value.as_deref(), state.job_ack_secs).await?
        };
        let now = tokio::time::Instant::now();
        if waiting || now >= deadline || state.stopping.is_cancelled() {
            if !waiting {
                return Ok(HttpResponse::Ok().json(PollForJobsResponse { jobs: Vec::new() }));
            }
            break;
        }
        // Woken by the queue's message; looked at again each second anyway
        // (a message lost with Redis, a job handed back after its worker
        // did not acknowledge it).
        let nap = (deadline - now).min(Duration::from_secs(1));
        match listener.as_mut() {
            Some(pubsub) => {
                let mut messages = pubsub.on_message();
                tokio::select! {
                    _ = futures_util::StreamExt::next(&mut messages) => {}
                    () = tokio::time::sleep(nap) => {}
                    () = state.stopping.cancelled() => {}
                }
            }
            None => tokio::time::sleep(nap.min(Duration::from_millis(250))).await,
        }
    }
    drop(listener);
    // Handed out in the request's transaction, committed with its audit event.
    let tx = RequestTx::begin(&req, &state).await?;
    let mut conn = tx.conn().await;
    let dispatched =
        jobs::dispatch(&mut conn, &account, id, query_value.as_deref(), i64::from(max), state.job_ack_secs).await?;
    let mut answer = Vec::with_capacity(dispatched.len());
    for job in dispatched {
        let Some((job, action)) = jobs::find(&mut conn, &account, job.job_id).await? else { continue };
        let data = job_data(&state, &mut conn, &job, &action).await?;
        answer.push(JobView {
            id: job.job_id,
            data,
            nonce: job.nonce.clone().unwrap_or_default(),
            account_id: account.clone(),
        });
    }
    // The audit log records which jobs went out, never their data (a
    // job's secrets, its artifact URLs' tokens) nor their nonces.
    let recorded: Vec<serde_json::Value> =
        answer.iter().map(|j| serde_json::json!({"id": j.id, "accountId": j.account_id})).collect();
    let mut response = HttpResponse::Ok().json(PollForJobsResponse { jobs: answer });
    response.extensions_mut().insert(crate::audit::AuditedResponse(serde_json::json!({"jobs": recorded})));
    Ok(response)
}

/// Takes a job PollForJobs gave: with the nonce of its latest dispatch it
/// becomes `InProgress`; another nonce gets InvalidNonceException.
#[utoipa::path(
    tag = "jobs", operation_id = "AcknowledgeJob", params(("jobId" = String, Path)), request_body = AcknowledgeJobRequest,
    responses((status = 200, body = AcknowledgeJobResponse, description = "the job is the caller's"),
        (status = 400, body = ErrorBody, description = "InvalidNonceException, InvalidJobStateException or ValidationException"),
        (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the account has no such job (JobNotFoundException)")),
    security(("bearer" = []))
)]
#[post("/v1/jobs/{jobId}/acknowledge")]
pub async fn acknowledge_job(
    auth: Authorized<AcknowledgeJob>,
    path: web::Path<String>,
) -> Result<web::Json<AcknowledgeJobResponse>, ApiError> {
    let id = job_id(&path)?;
    let mut conn = auth.db().await?;
    let status = jobs::acknowledge(&mut conn, auth.caller.account(), id, &auth.body.nonce).await?.map_err(refused)?;
    Ok(web::Json(AcknowledgeJobResponse { status }))
}

/// A job's data: its configuration, pipeline context and artifact URLs.
#[utoipa::path(
    tag = "jobs", operation_id = "GetJobDetails", params(("jobId" = String, Path)),
    responses((status = 200, body = GetJobDetailsResponse, description = "done"),
        (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the account has no such job (JobNotFoundException)")),
    security(("bearer" = []))
)]
#[get("/v1/jobs/{jobId}")]
pub async fn get_job_details(
    state: web::Data<AppState>,
    auth: Authorized<GetJobDetails>,
    path: web::Path<String>,
) -> Result<web::Json<GetJobDetailsResponse>, ApiError> {
    let id = job_id(&path)?;
    let mut conn = auth.db().await?;
    let (job, action) = jobs::find(&mut conn, auth.caller.account(), id).await?.ok_or_else(job_not_found)?;
    let data = job_data(&state, &mut conn, &job, &action).await?;
    Ok(web::Json(GetJobDetailsResponse {
        job_details: JobDetails { id: job.job_id, data, account_id: job.account_id },
    }))
}

fn check_text(field: &str, value: Option<&String>, max: usize) -> Result<(), ApiError> {
    if value.is_some_and(|v| v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control)) {
        return Err(ApiError::validation(format!("{field}: 1 to {max} printable characters")));
    }
    Ok(())
}

/// The action's link: the type's executionUrlTemplate with
/// `{ExternalExecutionId}` and each `{Config:NAME}` of a property that is
/// not secret replaced (an http(s) URL, or none).
fn external_url(
    definition: &CustomActionTypeDefinition,
    configuration: &BTreeMap<String, String>,
    external_id: Option<&String>,
) -> Option<String> {
    let template = definition.settings.execution_url_template.as_ref()?;
    let mut url = template.replace("{ExternalExecutionId}", &crate::handlers::percent_encode(external_id?));
    for property in definition.configuration_properties.iter().filter(|p| !p.secret) {
        let value = configuration.get(&property.name).map_or_else(String::new, |v| crate::handlers::percent_encode(v));
        url = url.replace(&format!("{{Config:{}}}", property.name), &value);
    }
    let lower = url.to_ascii_lowercase();
    ((lower.starts_with("https://") || lower.starts_with("http://")) && url.len() <= 2048).then_some(url)
}

/// Ends a job with a success: its action succeeds with the output
/// artifacts uploaded to the job's URLs and the output variables given —
/// or, with a continuationToken, stays in progress and a next job that
/// carries the token is queued.
#[utoipa::path(
    tag = "jobs", operation_id = "PutJobSuccessResult", params(("jobId" = String, Path)), request_body = PutJobSuccessResultRequest,
    responses((status = 200, body = JobResultResponse, description = "recorded"),
        (status = 400, body = ErrorBody, description = "InvalidJobStateException (not acknowledged, or ended), OutputVariablesSizeExceededException or ValidationException"),
        (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the account has no such job (JobNotFoundException)")),
    security(("bearer" = []))
)]
#[post("/v1/jobs/{jobId}/success")]
pub async fn put_job_success_result(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PutJobSuccessResult>,
    path: web::Path<String>,
) -> Result<web::Json<JobResultResponse>, ApiError> {
    let id = job_id(&path)?;
    let body = &auth.body;
    let details = body.execution_details.as_ref();
    check_text("executionDetails.summary", details.and_then(|d| d.summary.as_ref()), 2048)?;
    check_text("executionDetails.externalExecutionId", details.and_then(|d| d.external_execution_id.as_ref()), 1500)?;
    if details.and_then(|d| d.percent_complete).is_some_and(|p| p > 100) {
        return Err(ApiError::validation("executionDetails.percentComplete: 0 to 100"));
    }
    check_text("continuationToken", body.continuation_token.as_ref(), 2048)?;
    if body.continuation_token.is_some() && !body.output_variables.is_empty() {
        return Err(ApiError::validation(
            "outputVariables: give them with the last result, the one without a continuationToken",
        ));
    }
    if let Some(problem) = pipewright_core::executions::output_variables_problem(&body.output_variables) {
        return Err(ApiError::new(ErrorCode::OutputVariablesSizeExceededException, problem));
    }
    if let Some(revision) = &body.current_revision {
        if body.continuation_token.is_some() {
            return Err(ApiError::validation(
                "currentRevision: give it with the last result, the one without a continuationToken",
            ));
        }
        check_text("currentRevision.revision", Some(&revision.revision), 1500)?;
        check_text("currentRevision.changeIdentifier", Some(&revision.change_identifier), 100)?;
        check_text("currentRevision.revisionSummary", revision.revision_summary.as_ref(), 2048)?;
    }
    let account = auth.caller.account().to_owned();
    let mut conn = auth.db().await?;
    let (job, action) = jobs::find(&mut conn, &account, id).await?.ok_or_else(job_not_found)?;
    jobs::takes_result(&job, &action).map_err(refused)?;
    // (A type deleted while its job ran leaves no link template.)
    let definition = custom_types::find(&mut conn, &account, &job.action_type_id()).await?;
    let context = jobs::context(&mut conn, &action).await?.ok_or_else(job_not_found)?;
    let revision = match &body.current_revision {
        Some(_) if job.category != "Source" => {
            return Err(ApiError::validation("currentRevision: only a custom Source action has a revision"));
        }
        Some(r) => Some(SourceRevision {
            action_name: action.action_name.clone(),
            revision_id: r.revision.clone(),
            revision_summary: r.revision_summary.clone(),
            change_identifier: Some(r.change_identifier.clone()),
            ..SourceRevision::default()
        }),
        None => None,
    };
    if body.continuation_token.is_none() {
        // The outputs the pipeline expects: uploaded to the job's URLs first.
        let uploaded = job.outputs();
        let missing: Vec<&String> =
            context.output_names.iter().filter(|name| !uploaded.iter().any(|o| o.name == **name)).collect();
        if !missing.is_empty() {
            return Err(ApiError::validation(format!(
                "outputArtifacts: upload {} first (PUT an archive to each one's URL in the job's data)",
                missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let external_id = details.and_then(|d| d.external_execution_id.clone());
    let success = Success {
        summary: details.and_then(|d| d.summary.clone()),
        external_url: definition.and_then(|d| external_url(&d, &context.configuration, external_id.as_ref())),
        external_id,
        percent_complete: details.and_then(|d| d.percent_complete),
        continuation_token: body.continuation_token.clone(),
        variables: body.output_variables.clone(),
        revision,
    };
    let ended = jobs::finish(&mut conn, &account, id, Ok(success)).await?.map_err(refused)?;
    drop(conn);
    after(&req, &state, ended, action.pipeline_id);
    Ok(web::Json(JobResultResponse { status: jobs::SUCCEEDED.to_owned() }))
}

/// What ending a job leads to, once committed: the execution's next step,
/// the next job's pollers, the pipeline's live listeners.
fn after(req: &HttpRequest, state: &AppState, ended: Ended, pipeline_id: Uuid) {
    match ended {
        Ended::Action(queued) => crate::auth::publish_after_commit(req, queued),
        Ended::Continued(channel) => {
            crate::auth::publish_after_commit_to(req, state.services.cache.key(&channel));
        }
    }
    crate::auth::notify_after_commit(req, pipeline_id);
}

/// Ends a job with a failure: its action fails, the failure's type its
/// error code and its message its error message.
#[utoipa::path(
    tag = "jobs", operation_id = "PutJobFailureResult", params(("jobId" = String, Path)), request_body = PutJobFailureResultRequest,
    responses((status = 200, body = JobResultResponse, description = "recorded"),
        (status = 400, body = ErrorBody, description = "InvalidJobStateException (not acknowledged, or ended) or ValidationException"),
        (status = 401, body = ErrorBody, description = "no valid credentials"),
        (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "the account has no such job (JobNotFoundException)")),
    security(("bearer" = []))
)]
#[post("/v1/jobs/{jobId}/failure")]
pub async fn put_job_failure_result(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PutJobFailureResult>,
    path: web::Path<String>,
) -> Result<web::Json<JobResultResponse>, ApiError> {
    let id = job_id(&path)?;
    let failure = &auth.body.failure_details;
    if !FAILURE_TYPES.contains(&failure.kind.as_str()) {
        return Err(ApiError::validation(format!(
            "failureDetails.type: {:?} is not one of {}",
            failure.kind,
            FAILURE_TYPES.join(", ")
        )));
    }
    check_text("failureDetails.message", Some(&failure.message), 5000)?;
    check_text("failureDetails.externalExecutionId", failure.external_execution_id.as_ref(), 1500)?;
    let account = auth.caller.account().to_owned();
    let mut conn = auth.db().await?;
    let (job, action) = jobs::find(&mut conn, &account, id).await?.ok_or_else(job_not_found)?;
    jobs::takes_result(&job, &action).map_err(refused)?;
    let definition = custom_types::find(&mut conn, &account, &job.action_type_id()).await?;
    let configuration = jobs::context(&mut conn, &action).await?.map(|c| c.configuration).unwrap_or_default();
    let url = definition.and_then(|d| external_url(&d, &configuration, failure.external_execution_id.as_ref()));
    let result = Err(Failure {
        kind: failure.kind.clone(),
        message: failure.message.clone(),
        external_id: failure.external_execution_id.clone(),
        external_url: url,
    });
    let ended = jobs::finish(&mut conn, &account, id, result).await?.map_err(refused)?;
    drop(conn);
    after(&req, &state, ended, action.pipeline_id);
    Ok(web::Json(JobResultResponse { status: jobs::FAILED.to_owned() }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactTokenQuery {
    /// The job's artifact token, as its URL gives it.
    pub token: String,
}

/// A job's artifact, reached with its artifact token: the job and its
/// action. Recorded in the job's account, as the job's.
async fn artifact_job(
    req: &HttpRequest,
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    id: &str,
    token: &str,
) -> Result<(Job, ActionExecution), ApiError> {
    let denied = || {
        ApiError::new(
            ErrorCode::JobNotFoundException,
            "no open job has this artifact URL: the job ended, or was handed out again (its URLs changed)",
        )
    };
    let id: Uuid = id.parse().map_err(|_| denied())?;
    let (job, action) = jobs::by_artifact_token(conn, id, token).await?.ok_or_else(denied)?;
    req.extensions_mut().insert(crate::audit::AuditedAccount {
        account_id: job.account_id.clone(),
        user_arn: Some(format!(
            "arn:pw:codepipeline:{}:{}:actiontype:{}/{}/{}/{}",
            state.region,
            job.account_id,
            custom_types::OWNER,
            job.category,
            job.provider,
            job.version
        )),
        user_name: "job".to_owned(),
    });
    Ok((job, action))
}

/// Downloads one of a job's input artifacts (a tar archive).
#[utoipa::path(
    tag = "jobs", operation_id = "GetJobArtifact", params(("jobId" = String, Path), ("name" = String, Path), ArtifactTokenQuery),
    responses((status = 200, description = "the artifact, a tar archive",
            content((crate::handlers::executions::ArchiveBytes = "application/x-tar"), (crate::handlers::executions::ArchiveBytes = "application/octet-stream"))),
        (status = 404, body = ErrorBody, description = "no open job has this URL (JobNotFoundException), or it has no such input (ArtifactNotFoundException)")),
    security(())
)]
#[get("/v1/jobs/{jobId}/artifacts/{name}")]
pub async fn get_job_artifact(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ArtifactTokenQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let (_, action) = {
        let mut conn = state.services.db.conn().await?;
        artifact_job(&req, &state, &mut conn, &id, &query.token).await?
    };
    let inputs: Vec<pipewright_core::executions::store::ArtifactLocation> =
        serde_json::from_value(action.input_artifacts.clone()).unwrap_or_default();
    let location = inputs.into_iter().find(|i| i.name == name).ok_or_else(|| {
        ApiError::new(ErrorCode::ArtifactNotFoundException, format!("the job has no input artifact {name:?}"))
    })?;
    crate::handlers::executions::artifact_response(&req, &state, &location).await
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobArtifactResponse {
    pub name: String,
    /// The SHA-256 of the archive as kept (a tar archive).
    pub sha256: String,
    pub size: u64,
}

/// Uploads one of a job's output artifacts: a tar, tar.gz or zip archive,
/// kept as a tar archive (uploading it again replaces it).
#[utoipa::path(
    tag = "jobs", operation_id = "PutJobArtifact", params(("jobId" = String, Path), ("name" = String, Path), ArtifactTokenQuery),
    request_body(description = "The archive: tar, tar.gz or zip, told by its first bytes (or labelled application/x-tar, application/gzip or application/zip).",
        content((crate::handlers::executions::ArchiveBytes = "application/octet-stream"))),
    responses((status = 200, body = JobArtifactResponse, description = "kept"),
        (status = 400, body = ErrorBody, description = "not an archive, or not an output artifact of the job's action (ValidationException)"),
        (status = 404, body = ErrorBody, description = "no open job has this URL (JobNotFoundException)"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(())
)]
#[put("/v1/jobs/{jobId}/artifacts/{name}")]
pub async fn put_job_artifact(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ArtifactTokenQuery>,
    payload: web::Payload,
) -> Result<web::Json<JobArtifactResponse>, ApiError> {
    let (id, name) = path.into_inner();
    let (job, action) = {
        let mut conn = state.services.db.conn().await?;
        artifact_job(&req, &state, &mut conn, &id, &query.token).await?
    };
    let outputs = {
        let mut conn = state.services.db.conn().await?;
        jobs::context(&mut conn, &action).await?.map(|c| c.output_names).unwrap_or_default()
    };
    if !outputs.contains(&name) {
        return Err(ApiError::validation(format!(
            "{name:?} is not an output artifact of the job's action; it has: {}",
            if outputs.is_empty() { "none".to_owned() } else { outputs.join(", ") }
        )));
    }
    let archive = <crate::handlers::executions::Archive as crate::auth::Body>::extract(&req, &mut payload.into_inner())
        .await
        .map_err(|e| match e.as_error::<ApiError>() {
            Some(e) => e.clone(),
            None => ApiError::validation(format!("the body: {e}")),
        })?;
    let stored = crate::handlers::executions::store_archive(&state, &archive, &name).await?;
    // Recorded in the request's transaction, committed with its audit event.
    let tx = RequestTx::begin(&req, &state).await?;
    let mut conn = tx.conn().await;
    if !jobs::add_output(&mut conn, job.job_id, &query.token, &stored).await? {
        return Err(ApiError::new(ErrorCode::JobNotFoundException, "the job ended while its artifact was uploaded"));
    }
    Ok(web::Json(JobArtifactResponse { name: stored.name, sha256: stored.sha256, size: stored.size }))
}
