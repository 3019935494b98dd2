//! Executions: StartPipelineExecution, GetPipelineExecution,
//! ListPipelineExecutions, GetPipelineState, ListActionExecutions, an
//! action's log and artifacts, and PutApprovalResult.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use pipewright_core::executions::store::{
    self as runs, ActionExecution, Approval, ArtifactLocation, Execution, SourceRevision,
};
use pipewright_core::executions::{Status, way_in};
use pipewright_core::pipelines::store::{self, Pipeline};
use pipewright_core::pipelines::{ActionTypeId, PipelineDeclaration};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::{Authorized, NoBody, OperationDoc, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;
use crate::server::AppState;

fn pipeline_arn(r: &ResourceRequest<'_>) -> Result<String, ApiError> {
    Ok(store::arn(r.region, r.account, r.path("name")?))
}

operation!(
    StartPipelineExecution,
    "codepipeline:StartPipelineExecution",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    web::Json<StartExecutionRequest>,
    |r, _b| pipeline_arn(r)
);
operation!(
    GetPipelineExecution,
    "codepipeline:GetPipelineExecution",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    ListPipelineExecutions,
    "codepipeline:ListPipelineExecutions",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    GetPipelineState,
    "codepipeline:GetPipelineState",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    ListActionExecutions,
    "codepipeline:ListActionExecutions",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    GetActionExecutionLog,
    "codepipeline:GetActionExecutionLog",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    GetActionExecutionArtifact,
    "codepipeline:GetActionExecutionArtifact",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);
operation!(
    PutApprovalResult,
    "codepipeline:PutApprovalResult",
    "arn:pw:codepipeline:${Region}:${Account}:{name}/{stage}/{action}",
    web::Json<ApprovalRequest>,
    |r, _b| Ok(format!("{}/{}/{}", pipeline_arn(r)?, r.path("stage")?, r.path("action")?))
);

operation!(
    StopPipelineExecution,
    "codepipeline:StopPipelineExecution",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    web::Json<StopRequest>,
    |r, _b| pipeline_arn(r)
);
operation!(
    RetryStageExecution,
    "codepipeline:RetryStageExecution",
    "arn:pw:codepipeline:${Region}:${Account}:{name}/{stage}",
    web::Json<RetryRequest>,
    |r, _b| Ok(format!("{}/{}", pipeline_arn(r)?, r.path("stage")?))
);

operation!(
    GetPipelineStateEvents,
    "codepipeline:GetPipelineState",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| pipeline_arn(r)
);

/// PutSourceRevision: its ARN is the source action's, whose stage (the
/// first) the path does not name: completed from the pipeline.
pub struct PutSourceRevision;

impl crate::auth::Operation for PutSourceRevision {
    const NAME: &'static str = "PutSourceRevision";
    const ACTION: &'static str = "codepipeline:PutSourceRevision";
    const RESOURCE: &'static str = "arn:pw:codepipeline:${Region}:${Account}:{name}/{first stage}/{action}";
    type Body = Archive;

    fn resource(request: &ResourceRequest<'_>, _body: &Archive) -> Result<String, ApiError> {
        Ok(format!("{}/{}", pipeline_arn(request)?, request.path("action")?))
    }

    async fn refine<'a>(state: &'a AppState, account: &'a str, resource: String) -> Result<String, ApiError> {
        let Some((pipeline_arn, action)) = resource.rsplit_once('/') else { return Ok(resource) };
        let name = pipeline_arn.rsplit(':').next().unwrap_or_default();
        let mut conn = state.services.db.conn().await?;
        // No such pipeline: left as it is, and decided as it is (nobody learns whether it exists).
        let stage = match store::find(&mut conn, account, name).await? {
            Some(pipeline) => pipeline.declaration()?.stages.first().map(|s| s.name.clone()),
            None => None,
        };
        Ok(match stage {
            Some(stage) => format!("{pipeline_arn}/{stage}/{action}"),
            None => resource,
        })
    }
}

/// The largest archive PutSourceRevision takes.
const ARCHIVE_LIMIT: usize = 256 * 1024 * 1024;

/// How an uploaded archive is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Zip,
}

/// An uploaded archive: a tar, a gzipped tar, or a zip.
pub struct Archive {
    pub bytes: web::Bytes,
    pub kind: ArchiveKind,
}

impl crate::auth::Body for Archive {
    fn extract(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>> {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let payload = payload.take();
        Box::pin(async move {
            let kind = match content_type.as_str() {
                "application/x-tar" | "application/tar" => ArchiveKind::Tar,
                "application/gzip" | "application/x-gzip" | "application/x-compressed-tar" => ArchiveKind::Gzip,
                "application/zip" | "application/x-zip-compressed" => ArchiveKind::Zip,
                // Told by its first bytes (what generated clients send).
                "application/octet-stream" => {
                    let bytes = crate::auth::read_limited(payload, ARCHIVE_LIMIT, "the archive").await?;
                    let kind = sniff(&bytes).ok_or_else(|| {
                        ApiError::validation(
                            "the body is not a tar, tar.gz or zip archive (sent as application/octet-stream, it is \
                             told by its first bytes)",
                        )
                    })?;
                    return Ok(Archive { bytes, kind });
                }
                other => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaTypeException,
                        format!(
                            "send the revision as a tar archive (application/x-tar), a gzipped one (application/gzip) or a zip (application/zip), not {other:?}"
                        ),
                    )
                    .into());
                }
            };
            let bytes = crate::auth::read_limited(payload, ARCHIVE_LIMIT, "the archive").await?;
            Ok(Archive { bytes, kind })
        })
    }
}

/// An archive's kind, from its first bytes: zip's local header, gzip's
/// magic, or tar's `ustar` at offset 257.
fn sniff(bytes: &[u8]) -> Option<ArchiveKind> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if bytes.get(257..262) == Some(b"ustar") {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// An archive's bytes, as the OpenAPI document declares them (binary).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ArchiveBytes(#[allow(dead_code, reason = "a schema only")] Vec<u8>);

inventory::submit! { OperationDoc::of::<PutSourceRevision>() }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(start_execution)
        .service(list_executions)
        .service(get_execution)
        .service(get_state)
        .service(list_action_executions)
        .service(action_log)
        .service(action_artifact)
        .service(put_approval)
        .service(state_events)
        .service(put_source_revision)
        .service(stop_execution)
        .service(retry_stage);
}

use super::pipelines::{not_found, take_page};

async fn pipeline(conn: &mut diesel_async::AsyncPgConnection, account: &str, name: &str) -> Result<Pipeline, ApiError> {
    store::find(conn, account, name).await?.ok_or_else(|| not_found(name))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartExecutionRequest {
    /// Values for the pipeline's variables (the others take their defaults).
    #[serde(default)]
    pub variables: Vec<VariableValue>,
    /// Makes the call idempotent: the same token starts one execution.
    pub client_request_token: Option<String>,
    /// Revisions to run instead of the sources' latest (CodePipeline's
    /// `sourceRevisions`): a commit of a Git source, an earlier upload of an
    /// Upload source. The other sources run their latest.
    #[serde(default)]
    pub source_revisions: Vec<SourceRevisionOverride>,
}

/// A source action's revision to run (CodePipeline's
/// `SourceRevisionOverride`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRevisionOverride {
    /// A source action of the pipeline.
    pub action_name: String,
    /// `COMMIT_ID` (a Git source) or `S3_OBJECT_VERSION_ID` (an Upload
    /// source: an earlier upload's revision id). `IMAGE_DIGEST` and
    /// `S3_OBJECT_KEY` are CodePipeline's for sources Pipewright does not
    /// have, and are refused.
    pub revision_type: SourceRevisionType,
    /// The commit id (7 to 64 hexadecimal digits), or the upload's revision
    /// id (its SHA-256, as ListPipelineExecutions shows it).
    pub revision_value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceRevisionType {
    CommitId,
    ImageDigest,
    S3ObjectVersionId,
    S3ObjectKey,
}

/// The revisions `overrides` name, checked against the pipeline's sources.
async fn chosen_revisions(
    conn: &mut diesel_async::AsyncPgConnection,
    pipeline: &Pipeline,
    declaration: &PipelineDeclaration,
    overrides: &[SourceRevisionOverride],
) -> Result<Vec<SourceRevision>, ApiError> {
    let mut chosen: Vec<SourceRevision> = Vec::new();
    for (i, o) in overrides.iter().enumerate() {
        let at = format!("sourceRevisions[{i}]");
        let source = declaration
            .stages
            .iter()
            .flat_map(|s| &s.actions)
            .find(|a| a.name == o.action_name && a.action_type_id.category == "Source")
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "{at}.actionName: {:?} is not a source action of the pipeline",
                    o.action_name
                ))
            })?;
        if chosen.iter().any(|c| c.action_name == o.action_name) {
            return Err(ApiError::validation(format!("{at}: {:?} is named twice", o.action_name)));
        }
        let value = o.revision_value.trim().to_ascii_lowercase();
        let value = value.as_str();
        let revision = match (source.action_type_id.provider.as_str(), o.revision_type) {
            ("Git", SourceRevisionType::CommitId) => {
                // Only hexadecimal digits: the value reaches `git checkout`.
                if !(7..=64).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(ApiError::validation(format!(
                        "{at}.revisionValue: a commit id is 7 to 64 hexadecimal digits"
                    )));
                }
                SourceRevision {
                    action_name: o.action_name.clone(),
                    revision_id: value.to_ascii_lowercase(),
                    revision_summary: None,
                    ..SourceRevision::default()
                }
            }
            ("Upload", SourceRevisionType::S3ObjectVersionId) => {
                runs::uploaded_revision(conn, pipeline.pipeline_id, &o.action_name, value).await?.ok_or_else(|| {
                    ApiError::validation(format!(
                        "{at}.revisionValue: no archive with revision id {value:?} was uploaded to {:?}",
                        o.action_name
                    ))
                })?
            }
            (_, SourceRevisionType::ImageDigest | SourceRevisionType::S3ObjectKey) => {
                return Err(ApiError::validation(format!(
                    "{at}.revisionType: IMAGE_DIGEST and S3_OBJECT_KEY are for sources Pipewright does not have; \
                     use COMMIT_ID for a Git source, S3_OBJECT_VERSION_ID for an Upload source"
                )));
            }
            (provider, _) => {
                let wanted = if provider == "Git" { "COMMIT_ID" } else { "S3_OBJECT_VERSION_ID" };
                return Err(ApiError::validation(format!(
                    "{at}.revisionType: {:?} is a {provider} source, whose revisions are {wanted}",
                    o.action_name
                )));
            }
        };
        chosen.push(revision);
    }
    Ok(chosen)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartExecutionResponse {
    pub pipeline_execution_id: Uuid,
}

/// Starts an execution on the sources' latest revisions ("Release change").
#[utoipa::path(
    tag = "executions", operation_id = "StartPipelineExecution", params(("name" = String, Path)),
    request_body = StartExecutionRequest,
    responses((status = 200, body = StartExecutionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "PipelineNotFoundException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/executions")]
pub async fn start_execution(
    req: actix_web::HttpRequest,
    auth: Authorized<StartPipelineExecution>,
    name: web::Path<String>,
) -> Result<web::Json<StartExecutionResponse>, ApiError> {
    let name = name.into_inner();
    let token = auth.body.client_request_token.as_deref();
    if token.is_some_and(|t| t.is_empty() || t.len() > 128 || t.chars().any(char::is_control)) {
        return Err(ApiError::validation("clientRequestToken is 1 to 128 printable characters"));
    }
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let declaration = pipeline.declaration()?;
    let revisions = chosen_revisions(&mut conn, &pipeline, &declaration, &auth.body.source_revisions).await?;
    let variables: Vec<(String, String)> =
        auth.body.variables.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    let start = way_in::Start {
        cause: way_in::Cause::Released { by: auth.caller.arn() },
        variables: &variables,
        client_request_token: token,
        revisions,
    };
    let (execution, outbox) = way_in::start(&mut conn, &pipeline, start).await?.ok_or_else(ApiError::internal)?;
    crate::auth::publish_after_commit(&req, outbox);
    Ok(web::Json(StartExecutionResponse { pipeline_execution_id: execution.execution_id }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionBody {
    pub pipeline_name: String,
    pub pipeline_version: i32,
    pub pipeline_execution_id: Uuid,
    pub status: Status,
    pub status_summary: Option<String>,
    pub artifact_revisions: Vec<SourceRevision>,
    /// The same revisions as CodePipeline's ListPipelineExecutions names
    /// them (`sourceRevisions`), for scripts written against it.
    pub source_revisions: Vec<SourceRevisionSummary>,
    /// The pipeline's variables as this execution resolved them.
    #[schema(value_type = Vec<ResolvedVariable>)]
    pub variables: Value,
    #[schema(value_type = pipewright_core::executions::store::Trigger)]
    pub trigger: Value,
    pub start_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
}

/// A pipeline variable's value in one execution (CodePipeline's
/// `ResolvedPipelineVariable`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema only: the execution holds its variables as JSON")]
pub struct ResolvedVariable {
    pub name: String,
    pub resolved_value: String,
}

/// A source action's revision in an execution.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRevisionSummary {
    pub action_name: String,
    /// The commit id (Git), or the archive's SHA-256 (Upload).
    pub revision_id: String,
    pub revision_summary: Option<String>,
}

impl From<Execution> for ExecutionBody {
    fn from(e: Execution) -> Self {
        let revisions: Vec<SourceRevision> = serde_json::from_value(e.source_revisions.clone()).unwrap_or_default();
        Self {
            status: e.status(),
            source_revisions: revisions
                .iter()
                .map(|r| SourceRevisionSummary {
                    action_name: r.action_name.clone(),
                    revision_id: r.revision_id.clone(),
                    revision_summary: r.revision_summary.clone(),
                })
                .collect(),
            artifact_revisions: revisions,
            pipeline_name: e.pipeline_name,
            pipeline_version: e.pipeline_version,
            pipeline_execution_id: e.execution_id,
            status_summary: e.status_summary,
            variables: e.variables,
            trigger: e.trigger,
            start_time: e.created_at,
            last_update_time: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetExecutionResponse {
    pub pipeline_execution: ExecutionBody,
}

fn execution_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::validation(format!("{text:?} is not an execution id")))
}

fn execution_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::PipelineExecutionNotFoundException, format!("the pipeline has no execution {id}"))
}

/// One execution: its status, revisions, variables and trigger.
#[utoipa::path(
    tag = "executions", operation_id = "GetPipelineExecution", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = GetExecutionResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "PipelineNotFoundException or PipelineExecutionNotFoundException")),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/executions/{id}")]
pub async fn get_execution(
    auth: Authorized<GetPipelineExecution>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<GetExecutionResponse>, ApiError> {
    let (name, id) = path.into_inner();
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let execution = runs::find(&mut conn, pipeline.pipeline_id, execution_id(&id)?)
        .await?
        .ok_or_else(|| execution_not_found(&id))?;
    Ok(web::Json(GetExecutionResponse { pipeline_execution: execution.into() }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListExecutionsQuery {
    /// 1 to 100 (default 100).
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    /// Only executions with this status.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListExecutionsResponse {
    pub pipeline_execution_summaries: Vec<ExecutionBody>,
    pub next_token: Option<String>,
}

fn limit_of(max: Option<i64>, ceiling: i64) -> Result<i64, ApiError> {
    let limit = max.unwrap_or(ceiling);
    if !(1..=ceiling).contains(&limit) {
        return Err(ApiError::validation(format!("maxResults must be between 1 and {ceiling}, not {limit}")));
    }
    Ok(limit)
}

fn bad_token() -> ApiError {
    ApiError::validation("nextToken is not one this service gave")
}

/// The pipeline's executions, newest first.
#[utoipa::path(
    tag = "executions", operation_id = "ListPipelineExecutions", params(("name" = String, Path), ListExecutionsQuery),
    responses((status = 200, body = ListExecutionsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/executions")]
pub async fn list_executions(
    auth: Authorized<ListPipelineExecutions>,
    name: web::Path<String>,
    query: web::Query<ListExecutionsQuery>,
) -> Result<web::Json<ListExecutionsResponse>, ApiError> {
    let limit = limit_of(query.max_results, 100)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::validation(format!(
                "status {text:?} is not one of {}",
                Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?),
    };
    let before = match query.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => Some(
            pipewright_core::iam::paging::key_of(token).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad_token)?,
        ),
    };
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let mut found = runs::list(&mut conn, pipeline.pipeline_id, status, before, limit + 1).await?;
    let more = take_page(&mut found, limit);
    let next_token =
        if more { found.last().map(|e| pipewright_core::iam::paging::token(&e.seq.to_string())) } else { None };
    Ok(web::Json(ListExecutionsResponse {
        pipeline_execution_summaries: found.into_iter().map(Into::into).collect(),
        next_token,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecutionState {
    pub action_execution_id: Uuid,
    pub pipeline_execution_id: Uuid,
    pub status: Status,
    pub summary: Option<String>,
    pub last_status_change: DateTime<Utc>,
    /// When this run of the action started.
    pub start_time: DateTime<Utc>,
    /// When it ended; none while it runs.
    pub end_time: Option<DateTime<Utc>>,
    /// The approval token, while an approval waits.
    pub token: Option<Uuid>,
    pub error_details: Option<ErrorDetails>,
    /// A custom action's run in its job worker's system.
    pub external_execution_id: Option<String>,
    pub external_execution_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionState {
    pub action_name: String,
    /// A source action's revision in its latest run (CodePipeline's
    /// `currentRevision`): the commit, or the uploaded archive's SHA-256.
    pub current_revision: Option<ActionRevision>,
    pub latest_execution: Option<ActionExecutionState>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRevision {
    pub revision_id: String,
    /// The commit message's first line, or what the upload was called.
    pub revision_summary: Option<String>,
    /// When the run that took it started.
    pub created: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionState {
    pub enabled: bool,
    pub last_changed_by: Option<String>,
    pub last_changed_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageExecutionState {
    pub pipeline_execution_id: Uuid,
    pub status: Status,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageState {
    pub stage_name: String,
    pub inbound_transition_state: Option<TransitionState>,
    pub action_states: Vec<ActionState>,
    pub latest_execution: Option<StageExecutionState>,
    /// The executions waiting to enter this stage, oldest first: behind a
    /// disabled transition, or while another execution holds the stage.
    pub inbound_executions: Vec<StageExecutionState>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStateResponse {
    pub pipeline_name: String,
    pub pipeline_version: i32,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub stage_states: Vec<StageState>,
}

fn action_state(run: &ActionExecution) -> ActionExecutionState {
    let status = run.status();
    ActionExecutionState {
        action_execution_id: run.action_execution_id,
        pipeline_execution_id: run.execution_id,
        status,
        summary: run.summary.clone(),
        last_status_change: run.updated_at,
        start_time: run.started_at,
        end_time: run.finished_at,
        token: run.token.filter(|_| status == Status::InProgress),
        error_details: run
            .error_code
            .clone()
            .map(|code| ErrorDetails { code, message: run.error_message.clone().unwrap_or_default() }),
        external_execution_id: run.external_execution_id.clone(),
        external_execution_url: run.external_url.clone(),
    }
}

/// Where every stage and action of the pipeline stands: each stage's latest
/// execution, each action's latest run (with an approval's token while it
/// waits), and each stage's inbound transition.
pub async fn pipeline_state(
    conn: &mut diesel_async::AsyncPgConnection,
    pipeline: &Pipeline,
) -> Result<PipelineStateResponse, ApiError> {
    let declaration = pipeline.declaration()?;
    let (stages, actions) = runs::state(conn, pipeline.pipeline_id).await?;
    let transitions = store::transitions(conn, pipeline.pipeline_id).await?;
    let inbound = runs::inbound(conn, pipeline.pipeline_id).await?;
    let sources: Vec<Uuid> = actions
        .iter()
        .filter(|r| {
            declaration.stages.iter().any(|s| {
                s.name == r.stage_name
                    && s.actions.iter().any(|a| a.name == r.action_name && a.action_type_id.category == "Source")
            })
        })
        .map(|r| r.execution_id)
        .collect();
    let revisions = runs::source_revisions_of(conn, &sources).await?;
    let revision_of = |run: &ActionExecution| {
        revisions
            .iter()
            .filter(|(id, _)| *id == run.execution_id)
            .flat_map(|(_, r)| r)
            .find(|r| r.action_name == run.action_name)
            .map(|r| ActionRevision {
                revision_id: r.revision_id.clone(),
                revision_summary: r.revision_summary.clone(),
                created: run.started_at,
            })
    };
    let stage_states = declaration
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| StageState {
            stage_name: stage.name.clone(),
            inbound_transition_state: (i > 0).then(|| match transitions.iter().find(|t| t.stage_name == stage.name) {
                Some(t) => TransitionState {
                    enabled: t.enabled,
                    last_changed_by: Some(t.last_changed_by.clone()),
                    last_changed_at: Some(t.last_changed_at),
                    disabled_reason: t.disabled_reason.clone(),
                },
                None => TransitionState {
                    enabled: true,
                    last_changed_by: None,
                    last_changed_at: None,
                    disabled_reason: None,
                },
            }),
            action_states: stage
                .actions
                .iter()
                .map(|a| {
                    let latest = actions.iter().find(|r| r.stage_name == stage.name && r.action_name == a.name);
                    ActionState {
                        action_name: a.name.clone(),
                        current_revision: latest.and_then(revision_of),
                        latest_execution: latest.map(action_state),
                    }
                })
                .collect(),
            inbound_executions: inbound
                .iter()
                .filter(|(at, _)| *at == stage.name)
                .map(|(_, id)| StageExecutionState { pipeline_execution_id: *id, status: Status::InProgress })
                .collect(),
            latest_execution: stages.iter().find(|(s, _)| s.stage_name == stage.name).map(|(s, _)| {
                StageExecutionState {
                    pipeline_execution_id: s.execution_id,
                    status: pipewright_core::executions::Status::parse(&s.status).unwrap_or(Status::Failed),
                }
            }),
        })
        .collect();
    Ok(PipelineStateResponse {
        pipeline_name: pipeline.name.clone(),
        pipeline_version: pipeline.version,
        created: pipeline.created_at,
        updated: pipeline.updated_at,
        stage_states,
    })
}

/// Where every stage and action of the pipeline stands.
#[utoipa::path(
    tag = "executions", operation_id = "GetPipelineState", params(("name" = String, Path)),
    responses((status = 200, body = PipelineStateResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/state")]
pub async fn get_state(
    auth: Authorized<GetPipelineState>,
    name: web::Path<String>,
) -> Result<web::Json<PipelineStateResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    Ok(web::Json(pipeline_state(&mut conn, &pipeline).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListActionsQuery {
    pub pipeline_execution_id: Option<String>,
    /// 1 to 100 (default 100).
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecutionInput {
    pub action_type_id: Option<ActionTypeId>,
    /// The configuration as it ran (variables resolved, secrets masked).
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub configuration: Value,
    pub input_artifacts: Vec<ArtifactLocation>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecutionOutput {
    pub output_artifacts: Vec<ArtifactLocation>,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub output_variables: Value,
    pub error_details: Option<ErrorDetails>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionExecutionDetail {
    pub pipeline_execution_id: Uuid,
    pub action_execution_id: Uuid,
    pub stage_name: String,
    pub action_name: String,
    pub attempt: i32,
    pub status: Status,
    pub summary: Option<String>,
    pub start_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub input: ActionExecutionInput,
    pub output: ActionExecutionOutput,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListActionExecutionsResponse {
    pub action_execution_details: Vec<ActionExecutionDetail>,
    pub next_token: Option<String>,
}

/// The pipeline's action runs, newest first: inputs, resolved
/// configuration, outputs, timing.
#[utoipa::path(
    tag = "executions", operation_id = "ListActionExecutions", params(("name" = String, Path), ListActionsQuery),
    responses((status = 200, body = ListActionExecutionsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/action-executions")]
pub async fn list_action_executions(
    auth: Authorized<ListActionExecutions>,
    name: web::Path<String>,
    query: web::Query<ListActionsQuery>,
) -> Result<web::Json<ListActionExecutionsResponse>, ApiError> {
    let limit = limit_of(query.max_results, 100)?;
    let execution = query.pipeline_execution_id.as_deref().filter(|s| !s.is_empty()).map(execution_id).transpose()?;
    let before = match query.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => {
            let text = pipewright_core::iam::paging::key_of(token).ok_or_else(bad_token)?;
            let (time, id) = text.split_once('|').ok_or_else(bad_token)?;
            Some((
                DateTime::parse_from_rfc3339(time).map_err(|_| bad_token())?.with_timezone(&Utc),
                id.parse::<Uuid>().map_err(|_| bad_token())?,
            ))
        }
    };
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let mut found = runs::list_actions(&mut conn, pipeline.pipeline_id, execution, before, limit + 1).await?;
    let more = take_page(&mut found, limit);
    let next_token = if more {
        found.last().map(|a| {
            pipewright_core::iam::paging::token(&format!(
                "{}|{}",
                a.started_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                a.action_execution_id
            ))
        })
    } else {
        None
    };
    let mut details = Vec::new();
    for run in found {
        let version = version_of(&mut conn, &run).await?;
        let declaration = runs::declaration_at(&mut conn, pipeline.pipeline_id, version).await.ok();
        let action_type_id = declaration.as_ref().and_then(|d| run.declared(d)).map(|a| a.action_type_id.clone());
        let status = run.status();
        details.push(ActionExecutionDetail {
            pipeline_execution_id: run.execution_id,
            action_execution_id: run.action_execution_id,
            stage_name: run.stage_name.clone(),
            action_name: run.action_name.clone(),
            attempt: run.attempt,
            status,
            summary: run.summary.clone(),
            start_time: run.started_at,
            last_update_time: run.updated_at,
            end_time: run.finished_at,
            input: ActionExecutionInput {
                action_type_id,
                configuration: run.resolved_configuration.clone(),
                input_artifacts: serde_json::from_value(run.input_artifacts.clone()).unwrap_or_default(),
            },
            output: ActionExecutionOutput {
                output_artifacts: serde_json::from_value(run.output_artifacts.clone()).unwrap_or_default(),
                output_variables: run.output_variables.clone(),
                error_details: run
                    .error_code
                    .clone()
                    .map(|code| ErrorDetails { code, message: run.error_message.clone().unwrap_or_default() }),
            },
        });
    }
    Ok(web::Json(ListActionExecutionsResponse { action_execution_details: details, next_token }))
}

async fn version_of(conn: &mut diesel_async::AsyncPgConnection, run: &ActionExecution) -> Result<i32, ApiError> {
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::RunQueryDsl;
    use pipewright_core::schema::pipeline_executions as e;
    e::table
        .filter(e::execution_id.eq(run.execution_id))
        .select(e::pipeline_version)
        .first(conn)
        .await
        .map_err(|e| ApiError::from(pipewright_core::iam::IamError::from(e)))
}

async fn action_of(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &str,
    name: &str,
    id: &str,
) -> Result<ActionExecution, ApiError> {
    let pipeline = pipeline(conn, account, name).await?;
    let id: Uuid = id.parse().map_err(|_| ApiError::validation(format!("{id:?} is not an action execution id")))?;
    runs::find_action(conn, pipeline.pipeline_id, id).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::ActionExecutionNotFoundException, format!("the pipeline has no action execution {id}"))
    })
}

/// An action's log (its commands' output). While the action runs, the
/// answer streams: what is written is sent as it comes, and the answer ends
/// when the action does.
#[utoipa::path(
    tag = "executions", operation_id = "GetActionExecutionLog", params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "the log", content_type = "text/plain", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such action execution, or its log is past the retention period")),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/action-executions/{id}/log")]
pub async fn action_log(
    state: web::Data<AppState>,
    auth: Authorized<GetActionExecutionLog>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let mut conn = auth.db().await?;
    let run = action_of(&mut conn, auth.caller.account(), &name, &id).await?;
    let path = state.data_dir.join("logs").join(format!("{}.log", run.action_execution_id));
    // An approval has no log and may wait for days: never held open for it.
    if run.status().is_terminal() || run.token.is_some() {
        // Here, or kept in the artifact store by the host that ran it.
        let kept = match tokio::fs::read(&path).await {
            Ok(text) => Ok(text),
            Err(e) => match state.artifacts.log(&run.action_execution_id.to_string()).await {
                Ok(Some(copy)) => tokio::fs::read(copy).await,
                _ => Err(e),
            },
        };
        let text = match kept {
            Ok(text) => text,
            Err(_) => {
                let expired = chrono::Duration::days(i64::from(state.retention_days));
                if run.finished_at.is_some_and(|at| at < chrono::Utc::now() - expired) {
                    return Err(ApiError::new(
                        ErrorCode::ResourceNotFoundException,
                        format!("the log is no longer kept: logs are kept {} days", state.retention_days),
                    ));
                }
                // Nothing was written (an approval, an uploaded source).
                Vec::new()
            }
        };
        return Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(text));
    }
    drop(conn);
    // Follow the file until the action has ended and all of it was sent.
    let (db, pipeline_id, action_id) = (state.services.db.clone(), run.pipeline_id, run.action_execution_id);
    let stopping = state.stopping.clone();
    let chunks = futures_util::stream::unfold((0u64, false), move |(offset, ended)| {
        let (db, path, stopping) = (db.clone(), path.clone(), stopping.clone());
        async move {
            loop {
                // The server stops: the stream ends (the client asks again).
                if stopping.is_cancelled() {
                    return None;
                }
                let read = async {
                    use tokio::io::{AsyncReadExt, AsyncSeekExt};
                    let mut file = tokio::fs::File::open(&path).await.ok()?;
                    file.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
                    let mut buffer = Vec::new();
                    file.take(64 * 1024).read_to_end(&mut buffer).await.ok()?;
                    Some(buffer)
                }
                .await
                .unwrap_or_default();
                if !read.is_empty() {
                    let next = offset + read.len() as u64;
                    return Some((Ok::<_, actix_web::Error>(web::Bytes::from(read)), (next, ended)));
                }
                if ended {
                    return None;
                }
                tokio::select! {
                    () = stopping.cancelled() => return None,
                    () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                }
                let done = match db.conn().await {
                    Ok(mut conn) => runs::find_action(&mut conn, pipeline_id, action_id)
                        .await
                        .ok()
                        .flatten()
                        .is_none_or(|a| a.status().is_terminal()),
                    Err(_) => false,
                };
                if done {
                    // One more read for what was written last, then the end.
                    return Some((Ok(web::Bytes::new()), (offset, true)));
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("content-encoding", "identity"))
        .streaming(chunks))
}

/// An output artifact of an action, as a tar archive (labelled
/// `application/octet-stream` when the caller's `Accept` asks for that).
#[utoipa::path(
    tag = "executions", operation_id = "GetActionExecutionArtifact",
    params(("name" = String, Path), ("id" = String, Path), ("artifact" = String, Path)),
    responses((status = 200, description = "the artifact: a tar archive",
            content((ArchiveBytes = "application/x-tar"), (ArchiveBytes = "application/octet-stream"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such artifact, or it is past the retention period"),
        (status = 503, body = ErrorBody, description = "the artifact store could not be read; retry")),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/action-executions/{id}/artifacts/{artifact}")]
pub async fn action_artifact(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<GetActionExecutionArtifact>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id, artifact) = path.into_inner();
    let mut conn = auth.db().await?;
    let run = action_of(&mut conn, auth.caller.account(), &name, &id).await?;
    let outputs: Vec<ArtifactLocation> = serde_json::from_value(run.output_artifacts.clone()).unwrap_or_default();
    let missing =
        || ApiError::new(ErrorCode::ArtifactNotFoundException, format!("the action produced no artifact {artifact:?}"));
    let location = outputs.into_iter().find(|o| o.name == artifact).ok_or_else(missing)?;
    artifact_response(&req, &state, &location).await
}

/// A stored artifact, streamed as a tar archive named after it.
pub async fn artifact_response(
    req: &actix_web::HttpRequest,
    state: &AppState,
    location: &ArtifactLocation,
) -> Result<HttpResponse, ApiError> {
    let artifact = &location.name;
    let missing = || ApiError::new(ErrorCode::ArtifactNotFoundException, format!("there is no artifact {artifact:?}"));
    let file = match state.artifacts.local(&location.sha256).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                ErrorCode::ArtifactNotFoundException,
                format!(
                    "artifact {artifact:?} is no longer kept (artifacts are kept for a retention period after their last use)"
                ),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, store = %state.artifacts.describe(), "an artifact could not be read");
            return Err(ApiError::unavailable("the artifact store could not be read; retry shortly"));
        }
    };
    let opened = tokio::fs::File::open(&file).await.map_err(|_| missing())?;
    let size = opened.metadata().await.map(|m| m.len()).ok();
    // Streamed: an artifact may be large.
    let mut response = HttpResponse::Ok();
    let generic = super::accepts_first(req, "application/octet-stream", "application/x-tar");
    response
        .content_type(if generic { "application/octet-stream" } else { "application/x-tar" })
        .insert_header(("content-disposition", format!("attachment; filename=\"{artifact}.tar\"")));
    if let Some(size) = size {
        response.no_chunking(size);
    }
    Ok(response.streaming(tokio_util::io::ReaderStream::new(opened)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalResult {
    /// `Approved` or `Rejected` (another value is refused with 400).
    #[schema(value_type = ApprovalStatus)]
    pub status: String,
    /// Why, 0 to 512 characters.
    #[serde(default)]
    pub summary: String,
}

/// An approval's answer.
#[derive(Debug, ToSchema)]
pub enum ApprovalStatus {
    Approved,
    Rejected,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The token GetPipelineState shows for the waiting approval (a UUID;
    /// another is answered 400 `InvalidApprovalTokenException`).
    #[schema(format = Uuid)]
    pub token: String,
    pub result: ApprovalResult,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResponse {
    pub approved_at: DateTime<Utc>,
}

/// Approves or rejects a waiting approval action.
#[utoipa::path(
    tag = "executions", operation_id = "PutApprovalResult",
    params(("name" = String, Path), ("stage" = String, Path), ("action" = String, Path)),
    request_body = ApprovalRequest,
    responses((status = 200, body = ApprovalResponse), (status = 400, body = ErrorBody, description = "InvalidApprovalTokenException, ValidationException"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "PipelineNotFoundException, ActionNotFoundException"),
        (status = 409, body = ErrorBody, description = "ApprovalAlreadyCompletedException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/stages/{stage}/actions/{action}/approval")]
pub async fn put_approval(
    req: actix_web::HttpRequest,
    auth: Authorized<PutApprovalResult>,
    path: web::Path<(String, String, String)>,
) -> Result<web::Json<ApprovalResponse>, ApiError> {
    let (name, stage, action) = path.into_inner();
    let approved = match auth.body.result.status.as_str() {
        "Approved" => true,
        "Rejected" => false,
        other => return Err(ApiError::validation(format!("result.status is Approved or Rejected, not {other:?}"))),
    };
    if auth.body.result.summary.chars().count() > 512 {
        return Err(ApiError::validation("result.summary is at most 512 characters"));
    }
    let token: Uuid = auth.body.token.parse().map_err(|_| {
        ApiError::new(ErrorCode::InvalidApprovalTokenException, "the token is not one of this approval's")
    })?;
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let declared = pipeline
        .declaration()?
        .stages
        .iter()
        .find(|s| s.name == stage)
        .and_then(|s| s.actions.iter().find(|a| a.name == action))
        .map(|a| a.action_type_id.category == "Approval");
    match declared {
        None => {
            return Err(ApiError::new(
                ErrorCode::ActionNotFoundException,
                format!("pipeline {name:?} has no action {action:?} in stage {stage:?}"),
            ));
        }
        Some(false) => return Err(ApiError::validation(format!("{stage}/{action} is not an approval action"))),
        Some(true) => {}
    }
    let by = auth.caller.arn().to_owned();
    let summary = auth.body.result.summary.clone();
    match runs::put_approval(&mut conn, pipeline.pipeline_id, &stage, &action, token, approved, &summary, &by).await? {
        Approval::Done(outbox) => {
            crate::auth::publish_after_commit(&req, outbox);
            Ok(web::Json(ApprovalResponse { approved_at: Utc::now() }))
        }
        Approval::NoSuchAction | Approval::NotWaiting => Err(ApiError::new(
            ErrorCode::ApprovalAlreadyCompletedException,
            format!("{stage}/{action} is not waiting for an approval"),
        )),
        Approval::WrongToken => Err(ApiError::new(
            ErrorCode::InvalidApprovalTokenException,
            "the token is not the waiting approval's; read it from GetPipelineState",
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// `true`: abandon the running actions at once; `false` (default): let
    /// them finish, then stop.
    #[serde(default)]
    pub abandon: bool,
    /// Why, up to 200 characters.
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionIdResponse {
    pub pipeline_execution_id: Uuid,
}

fn control_error(found: runs::Control, name: &str, id: Uuid, refused: ErrorCode) -> ApiError {
    match found {
        runs::Control::NoExecution => execution_not_found(&id.to_string()),
        runs::Control::NoStage => {
            ApiError::new(ErrorCode::StageNotFoundException, format!("pipeline {name:?} has no such stage"))
        }
        runs::Control::Refused(why) => ApiError::new(refused, why),
        runs::Control::Done(_) => ApiError::internal(),
    }
}

/// Stops an execution: stop and wait, or abandon.
#[utoipa::path(
    tag = "executions", operation_id = "StopPipelineExecution", params(("name" = String, Path), ("id" = String, Path)),
    request_body = StopRequest,
    responses((status = 200, body = ExecutionIdResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "PipelineExecutionNotStoppableException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/executions/{id}/stop")]
pub async fn stop_execution(
    req: actix_web::HttpRequest,
    auth: Authorized<StopPipelineExecution>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ExecutionIdResponse>, ApiError> {
    let (name, id) = path.into_inner();
    let id = execution_id(&id)?;
    if auth.body.reason.chars().count() > 200 {
        return Err(ApiError::validation("reason is at most 200 characters"));
    }
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    match runs::stop(&mut conn, pipeline.pipeline_id, id, auth.body.abandon, &auth.body.reason).await? {
        runs::Control::Done(outbox) => {
            crate::auth::publish_after_commit(&req, outbox);
            // Abandoning ends the execution here, with no step after it to
            // tell the pipeline's live listeners.
            crate::auth::notify_after_commit(&req, pipeline.pipeline_id);
            Ok(web::Json(ExecutionIdResponse { pipeline_execution_id: id }))
        }
        other => Err(control_error(other, &name, id, ErrorCode::PipelineExecutionNotStoppableException)),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryRequest {
    pub pipeline_execution_id: String,
    /// `FAILED_ACTIONS` or `ALL_ACTIONS`.
    pub retry_mode: String,
}

/// Runs a failed stage of the latest execution to reach it again.
#[utoipa::path(
    tag = "executions", operation_id = "RetryStageExecution", params(("name" = String, Path), ("stage" = String, Path)),
    request_body = RetryRequest,
    responses((status = 200, body = ExecutionIdResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "StageNotRetryableException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/stages/{stage}/retry")]
pub async fn retry_stage(
    req: actix_web::HttpRequest,
    auth: Authorized<RetryStageExecution>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ExecutionIdResponse>, ApiError> {
    let (name, stage) = path.into_inner();
    let id = execution_id(&auth.body.pipeline_execution_id)?;
    let failed_only = match auth.body.retry_mode.as_str() {
        "FAILED_ACTIONS" => true,
        "ALL_ACTIONS" => false,
        other => {
            return Err(ApiError::validation(format!("retryMode is FAILED_ACTIONS or ALL_ACTIONS, not {other:?}")));
        }
    };
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    match runs::retry_stage(&mut conn, pipeline.pipeline_id, id, &stage, failed_only).await? {
        runs::Control::Done(outbox) => {
            crate::auth::publish_after_commit(&req, outbox);
            Ok(web::Json(ExecutionIdResponse { pipeline_execution_id: id }))
        }
        other => Err(control_error(other, &name, id, ErrorCode::StageNotRetryableException)),
    }
}

/// One event of GetPipelineStateEvents' stream (OpenAPI 3.1 describes an
/// event stream by its events). Comments (`: keepalive`) carry no event.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the events are written as text
pub struct PipelineStateEvent {
    event: PipelineStateEventName,
    #[schema(schema_with = pipeline_state_event_data)]
    data: String,
}

/// The stream's only event name.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum PipelineStateEventName {
    #[schema(rename = "state")]
    State,
}

/// A JSON text that is a [`PipelineStateResponse`].
fn pipeline_state_event_data() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some("GetPipelineState's answer, as JSON"))
        .content_media_type("application/json")
        .extensions(Some(utoipa::openapi::extensions::Extensions::from_iter([(
            "contentSchema",
            serde_json::json!({"$ref": "#/components/schemas/PipelineStateResponse"}),
        )])))
        .build()
}

/// Live updates of the pipeline's state, as Server-Sent Events: an event
/// `state` with the whole of GetPipelineState at once and after each change
/// (changes close together are sent as one), and a comment every 15 seconds
/// to keep the connection open. The stream ends when the api process stops;
/// a client connects again (to another api process).
#[utoipa::path(
    tag = "executions", operation_id = "GetPipelineStateEvents", params(("name" = String, Path)),
    responses((status = 200, description = "`event: state` with GetPipelineState's answer as data", content_type = "text/event-stream", body = PipelineStateEvent),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "Redis is unavailable")),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}/events")]
pub async fn state_events(
    state: web::Data<AppState>,
    auth: Authorized<GetPipelineStateEvents>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    use futures_util::StreamExt;
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let first = pipeline_state(&mut conn, &pipeline).await?;
    drop(conn);
    let cache = state.services.cache.clone();
    let pubsub = cache.subscribe(&cache.pipeline_channel(&pipeline.pipeline_id)).await?;
    let db = state.services.db.clone();
    let event = |body: &PipelineStateResponse| {
        web::Bytes::from(format!("event: state\ndata: {}\n\n", serde_json::to_string(body).unwrap_or_default()))
    };
    let opening = futures_util::stream::once({
        let bytes = event(&first);
        async move { Ok::<_, actix_web::Error>(bytes) }
    });
    let messages = pubsub.into_on_message();
    let stopping = state.stopping.clone();
    let updates = futures_util::stream::unfold((messages, db, pipeline), move |(mut messages, db, pipeline)| {
        let stopping = stopping.clone();
        async move {
            let keepalive = tokio::time::sleep(std::time::Duration::from_secs(15));
            tokio::select! {
                // The server stops: the stream ends (the client reconnects).
                () = stopping.cancelled() => None,
                message = messages.next() => {
                    message?;
                    // Coalesce a burst of changes into one event.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    while let Some(Some(_)) = futures_util::FutureExt::now_or_never(messages.next()) {}
                    let body = match db.conn().await {
                        Ok(mut conn) => pipeline_state(&mut conn, &pipeline).await.ok(),
                        Err(_) => None,
                    };
                    let bytes = body.map_or_else(|| web::Bytes::from_static(b": unavailable\n\n"), |b| {
                        web::Bytes::from(format!("event: state\ndata: {}\n\n", serde_json::to_string(&b).unwrap_or_default()))
                    });
                    Some((Ok::<_, actix_web::Error>(bytes), (messages, db, pipeline)))
                }
                () = keepalive => Some((Ok(web::Bytes::from_static(b": keepalive\n\n")), (messages, db, pipeline))),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        // Not compressed: a compressor would hold events back.
        .insert_header(("content-encoding", "identity"))
        .streaming(opening.chain(updates)))
}

/// An uploaded archive kept in the artifact store as the artifact `name`:
/// as a tar archive (the one format artifacts are kept in), checked.
pub async fn store_archive(state: &AppState, archive: &Archive, name: &str) -> Result<ArtifactLocation, ApiError> {
    let uploads = state.data_dir.join("uploads");
    let file = uploads.join(format!("{}.tar", Uuid::new_v4()));
    let (bytes, kind, unpacked) = (archive.bytes.clone(), archive.kind, file.clone());
    let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::create_dir_all(&uploads).map_err(|e| e.to_string())?;
        let written = match kind {
            ArchiveKind::Zip => pipewright_core::artifacts::zip_to_tar(&bytes, &unpacked)
                .map(|_| ())
                .map_err(|e| format!("not a usable zip archive: {e}")),
            ArchiveKind::Gzip => pipewright_core::artifacts::gunzip_to(&bytes, &unpacked)
                .map(|_| ())
                .map_err(|e| format!("not a usable gzipped archive: {e}")),
            ArchiveKind::Tar => std::fs::write(&unpacked, &bytes).map_err(|e| e.to_string()),
        }
        .and_then(|()| {
            pipewright_core::artifacts::check(&unpacked).map(|_| ()).map_err(|e| format!("the archive is refused: {e}"))
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&unpacked);
        }
        written
    })
    .await
    .map_err(|_| ApiError::internal())?;
    if let Err(e) = written {
        return Err(ApiError::validation(format!("the body: {e}")));
    }
    let stored = state.artifacts.put(name, &file).await;
    let _ = tokio::fs::remove_file(&file).await;
    stored.map_err(|e| {
        tracing::error!(error = %e, store = %state.artifacts.describe(), "an uploaded archive could not be stored");
        ApiError::unavailable("the artifact store could not take the archive; retry shortly")
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRevisionResponse {
    pub pipeline_execution_id: Uuid,
    /// The archive's SHA-256: the revision's id.
    pub revision_id: String,
}

/// Uploads an archive (tar, tar.gz or zip) as a new revision of an Upload
/// source action; an execution starts on it. An `x-pw-revision-summary`
/// header gives the revision a summary.
#[utoipa::path(
    tag = "executions", operation_id = "PutSourceRevision", params(("name" = String, Path), ("action" = String, Path),
        ("x-pw-revision-summary" = Option<String>, Header, description = "The revision's summary (printable text, at most 2048 characters), shown with the execution")),
    request_body(description = "The archive: tar, tar.gz or zip, told by its first bytes. The same bytes may be sent \
        labelled `application/x-tar`, `application/gzip` or `application/zip` instead (then they must be that kind).",
        content((ArchiveBytes = "application/octet-stream"))),
    responses((status = 200, body = SourceRevisionResponse),
        (status = 400, body = ErrorBody, description = "not an Upload source, or not an archive of its content type"),
        (status = 503, body = ErrorBody, description = "the artifact store could not take it; retry"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/sources/{action}/revisions")]
pub async fn put_source_revision(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<PutSourceRevision>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<SourceRevisionResponse>, ApiError> {
    let (name, action) = path.into_inner();
    let summary = req
        .headers()
        .get("x-pw-revision-summary")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::validation("x-pw-revision-summary must be printable text"))?;
    if summary.as_ref().is_some_and(|s| s.chars().count() > 2048) {
        return Err(ApiError::validation("x-pw-revision-summary is at most 2048 characters"));
    }
    let mut conn = auth.db().await?;
    let pipeline = pipeline(&mut conn, auth.caller.account(), &name).await?;
    let declaration = pipeline.declaration()?;
    let source = declaration.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == action));
    let Some(source) = source else {
        return Err(ApiError::new(
            ErrorCode::ActionNotFoundException,
            format!("pipeline {name:?} has no source action {action:?}"),
        ));
    };
    if source.action_type_id.provider != "Upload" {
        return Err(ApiError::validation(format!(
            "{action:?} is a {} source: only Upload sources take uploaded revisions",
            source.action_type_id.provider
        )));
    }
    let output = source.output_artifacts.first().map_or_else(|| "SourceArtifact".to_owned(), |o| o.name.clone());
    let stored = store_archive(&state, &auth.body, &output).await?;
    let revision = SourceRevision {
        action_name: action.clone(),
        revision_id: stored.sha256.clone(),
        revision_summary: summary,
        artifact: Some(stored.clone()),
        ..SourceRevision::default()
    };
    let cause = way_in::Cause::Uploaded { by: auth.caller.arn(), revision };
    let (execution, outbox) =
        way_in::start(&mut conn, &pipeline, way_in::Start::new(cause)).await?.ok_or_else(ApiError::internal)?;
    crate::auth::publish_after_commit(&req, outbox);
    Ok(web::Json(SourceRevisionResponse { pipeline_execution_id: execution.execution_id, revision_id: stored.sha256 }))
}
