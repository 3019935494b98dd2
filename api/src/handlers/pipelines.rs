//! Pipelines: CreatePipeline, GetPipeline, UpdatePipeline, DeletePipeline,
//! ListPipelines, and tags (TagResource, UntagResource,
//! ListTagsForResource). Declarations are JSON or YAML, by `Content-Type`
//! in and `Accept` out.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};

use pipewright_core::executions::way_in;
use pipewright_core::iam::names::{self, Tag};
use pipewright_core::pipelines::action_types::Registry;
use pipewright_core::pipelines::store::{self, Updated};
use pipewright_core::pipelines::{ExecutionMode, PipelineDeclaration, PipelineType, custom_types, validate};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::TagBody;
use crate::audit::{AuditedRequest, AuditedResponse};
use crate::auth::{Authorized, Body, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
use crate::operation;
use crate::server::AppState;

fn pipeline_arn(r: &ResourceRequest<'_>, name: &str) -> String {
    store::arn(r.region, r.account, name)
}

/// Tag keys as conditions see them must be unambiguous: no surrounding
/// spaces, no two keys equal but for case. Checked before authorising.
fn tag_keys_clear(tags: &[TagBody]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for tag in tags {
        if tag.key.trim() != tag.key || tag.key.chars().any(char::is_control) {
            return Err(ApiError::new(
                ErrorCode::InvalidTagsException,
                format!("tag key {:?}: no spaces around a key, no control characters", tag.key),
            ));
        }
        if !seen.insert(tag.key.to_lowercase()) {
            return Err(ApiError::new(
                ErrorCode::InvalidTagsException,
                format!("tag key {:?} is given twice (keys are compared without case)", tag.key),
            ));
        }
    }
    Ok(())
}

fn request_tags(tags: &[TagBody]) -> Vec<(String, pipewright_authz::context::ContextValue)> {
    let mut context: Vec<(String, pipewright_authz::context::ContextValue)> =
        tags.iter().map(|t| (format!("pw:RequestTag/{}", t.key), t.value.clone().into())).collect();
    context.push(("pw:TagKeys".to_owned(), tags.iter().map(|t| t.key.clone()).collect::<Vec<_>>().into()));
    context
}

operation!(
    CreatePipeline,
    "codepipeline:CreatePipeline",
    "arn:pw:codepipeline:${Region}:${Account}:{pipeline.name}",
    Document<CreatePipelineRequest>,
    |r, b| {
        tag_keys_clear(&b.value.tags)?;
        Ok(pipeline_arn(r, &b.value.pipeline.name))
    },
    context | _cr,
    cb | request_tags(&cb.value.tags)
);
operation!(
    GetPipeline,
    "codepipeline:GetPipeline",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| Ok(pipeline_arn(r, r.path("name")?))
);
operation!(
    UpdatePipeline,
    "codepipeline:UpdatePipeline",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    Document<UpdatePipelineRequest>,
    |r, _b| Ok(pipeline_arn(r, r.path("name")?))
);
operation!(
    DeletePipeline,
    "codepipeline:DeletePipeline",
    "arn:pw:codepipeline:${Region}:${Account}:{name}",
    NoBody,
    |r, _b| Ok(pipeline_arn(r, r.path("name")?))
);
operation!(ListPipelines, "codepipeline:ListPipelines", "*", NoBody, |_r, _b| Ok("*".to_owned()));
operation!(
    TagResource,
    "codepipeline:TagResource",
    "{resourceArn}",
    web::Json<TagResourceRequest>,
    |_r, b| {
        tag_keys_clear(&b.tags)?;
        Ok(b.resource_arn.clone())
    },
    context | _cr,
    cb | request_tags(&cb.tags)
);
operation!(
    UntagResource,
    "codepipeline:UntagResource",
    "{resourceArn}",
    NoBody,
    |r, _b| r.query("resourceArn").ok_or_else(|| ApiError::validation("give resourceArn in the query")),
    context | cr,
    _cb | vec![("pw:TagKeys".to_owned(), pipewright_authz::context::ContextValue::from(tag_keys(cr.http)))]
);
operation!(ListTagsForResource, "codepipeline:ListTagsForResource", "{resourceArn}", NoBody, |r, _b| r
    .query("resourceArn")
    .ok_or_else(|| ApiError::validation("give resourceArn in the query")));

operation!(
    DisableStageTransition,
    "codepipeline:DisableStageTransition",
    "arn:pw:codepipeline:${Region}:${Account}:{name}/{stage}",
    web::Json<DisableTransitionRequest>,
    |r, _b| Ok(format!("{}/{}", pipeline_arn(r, r.path("name")?), r.path("stage")?))
);
operation!(
    EnableStageTransition,
    "codepipeline:EnableStageTransition",
    "arn:pw:codepipeline:${Region}:${Account}:{name}/{stage}",
    NoBody,
    |r, _b| Ok(format!("{}/{}", pipeline_arn(r, r.path("name")?), r.path("stage")?))
);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_pipeline)
        .service(list_pipelines)
        .service(get_pipeline)
        .service(update_pipeline)
        .service(delete_pipeline)
        .service(list_tags)
        .service(tag_resource)
        .service(untag_resource)
        .service(disable_transition)
        .service(enable_transition);
}

/// The largest declaration accepted.
const DOCUMENT_LIMIT: usize = 1024 * 1024;

/// A request body in JSON or YAML (by `Content-Type`), read with the path
/// of the field any error is at.
pub struct Document<T> {
    pub value: T,
}

fn is_yaml(value: Option<&str>) -> bool {
    value.is_some_and(|t| {
        let t = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        matches!(t.as_str(), "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml")
    })
}

impl<T: DeserializeOwned + 'static> Body for Document<T> {
    fn extract(
        req: &HttpRequest,
        payload: &mut Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>> {
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let payload = payload.take();
        Box::pin(async move {
            let yaml = is_yaml(content_type.as_deref());
            let json = content_type.as_deref().is_none_or(|t| {
                let t = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                t == "application/json" || t.ends_with("+json")
            });
            if !yaml && !json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaTypeException,
                    "send the pipeline as application/json or application/yaml",
                )
                .into());
            }
            let bytes = crate::auth::read_limited(payload, DOCUMENT_LIMIT, "the body").await?;
            let value = if yaml { parse_yaml(&bytes) } else { parse_json(&bytes) }?;
            Ok(Document { value })
        })
    }
}

fn shape_error(path: &str, inner: &dyn std::fmt::Display) -> ApiError {
    // Paths are the declaration's, as validation's are.
    let full = path;
    let path = path.strip_prefix("pipeline.").unwrap_or(path);
    // YAML's messages begin with the path already.
    let text = inner.to_string();
    let message = text.strip_prefix(&format!("{full}: ")).unwrap_or(&text).to_owned();
    ApiError {
        errors: vec![ErrorDetail { path: path.to_owned(), rule: "Shape".to_owned(), message: message.clone() }],
        ..ApiError::validation(format!("{path}: {message}"))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        if e.inner().is_data() {
            shape_error(&e.path().to_string(), e.inner())
        } else {
            ApiError::new(ErrorCode::SerializationException, format!("the body is not valid JSON: {}", e.inner()))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::new(ErrorCode::SerializationException, format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn parse_yaml<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = serde_yaml_ng::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::new(ErrorCode::SerializationException, format!("the body is not valid YAML: {}", e.inner()))
        } else {
            shape_error(&path, e.inner())
        }
    })
}

/// Answers in YAML when the caller accepts it (and not JSON first), else JSON.
fn answer<T: Serialize>(req: &HttpRequest, status: StatusCode, value: &T) -> Result<HttpResponse, ApiError> {
    let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let yaml =
        accept.split(',').map(str::trim).take_while(|t| !t.starts_with("application/json")).any(|t| is_yaml(Some(t)));
    if yaml {
        let text = serde_yaml_ng::to_string(value).map_err(|e| {
            tracing::error!(error = %e, "a document could not be written as YAML");
            ApiError::internal()
        })?;
        if req.method() != actix_web::http::Method::GET {
            // The audit log reads JSON answers only: give it this one as JSON.
            let mut response = HttpResponse::build(status).content_type("application/yaml").body(text);
            response.extensions_mut().insert(AuditedResponse(serde_json::to_value(value).unwrap_or_default()));
            return Ok(response);
        }
        return Ok(HttpResponse::build(status).content_type("application/yaml").body(text));
    }
    Ok(HttpResponse::build(status).json(value))
}

fn invalid(problems: Vec<pipewright_core::pipelines::Problem>) -> ApiError {
    let structural = problems.iter().any(|p| p.structural);
    let code = if structural { ErrorCode::InvalidStructureException } else { ErrorCode::ValidationException };
    let first = problems.first().map(ToString::to_string).unwrap_or_default();
    let message = match problems.len() {
        1 => first,
        n => format!("{first}; and {} more problem{} (see errors)", n - 1, if n == 2 { "" } else { "s" }),
    };
    ApiError {
        errors: problems
            .into_iter()
            .map(|p| ErrorDetail { path: p.path, rule: p.rule.to_owned(), message: p.message })
            .collect(),
        ..ApiError::new(code, message)
    }
}

/// Keeps the first `limit` of a page read with one more; whether there are more.
pub(crate) fn take_page<T>(found: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = found.len() > limit;
    found.truncate(limit);
    more
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::PipelineNotFoundException, format!("there is no pipeline {name:?} in this account"))
}

fn check_tags(tags: &[Tag]) -> Result<(), ApiError> {
    if tags.len() > 50 {
        return Err(ApiError::new(
            ErrorCode::TooManyTagsException,
            format!("{} tags; a resource has at most 50", tags.len()),
        ));
    }
    if let Some(tag) = tags
        .iter()
        .find(|t| t.key.to_ascii_lowercase().starts_with("pw:") || t.key.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidTagsException,
            format!("tag key {:?}: keys beginning with pw: or aws: are reserved", tag.key),
        ));
    }
    names::check_tags(tags).map_err(|e| ApiError::new(ErrorCode::InvalidTagsException, e.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePipelineRequest {
    pub pipeline: PipelineDeclaration,
    #[serde(default)]
    pub tags: Vec<TagBody>,
    /// GetPipeline's metadata, accepted and ignored, so that its whole answer
    /// can be sent back under a new name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePipelineResponse {
    pub pipeline: PipelineDeclaration,
    pub tags: Vec<TagBody>,
}

/// Whether a declaration may be saved by `caller`: valid, its Git sources
/// allowed, and every role it names passed by the caller. Naming a role
/// passes it to the service, so as in AWS that needs `iam:PassRole` on it
/// (else creating a pipeline would borrow a stronger role than the
/// caller's own); and only a role of the pipeline's own account.
async fn acceptable(
    state: &AppState,
    caller: &crate::auth::Caller,
    pipeline: &PipelineDeclaration,
    types: &Registry,
) -> Result<(), ApiError> {
    let mut problems = validate::check(pipeline, types);
    problems.extend(state.sources.problems(pipeline).await);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let actions = pipeline.stages.iter().flat_map(|s| &s.actions);
    let roles: std::collections::BTreeSet<&String> =
        pipeline.role_arn.iter().chain(actions.filter_map(|a| a.role_arn.as_ref())).collect();
    let own = format!("arn:pw:iam::{}:role/", caller.account());
    for role in roles {
        if !role.starts_with(&own) {
            return Err(ApiError::validation(format!(
                "roleArn {role}: a pipeline acts only as a role of its own account ({own}NAME)"
            )));
        }
        let passed_to = [(
            "iam:PassedToService".to_owned(),
            pipewright_authz::ContextValue::from(pipewright_core::secrets::SERVICE_PRINCIPAL),
        )];
        crate::auth::authorize_with(state, caller, "iam:PassRole", role, &passed_to).await?;
    }
    Ok(())
}

/// Creates a pipeline from its declaration (version 1).
#[utoipa::path(
    tag = "pipelines", operation_id = "CreatePipeline",
    request_body(description = "The declaration in JSON; the same fields may be sent as YAML instead, labelled `application/yaml`.", content((CreatePipelineRequest = "application/json"))),
    responses(
        (status = 201, body = CreatePipelineResponse),
        (status = 400, body = ErrorBody, description = "InvalidStructureException or ValidationException; `errors` names each path and rule"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "PipelineNameInUseException"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/pipelines")]
pub async fn create_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<CreatePipeline>,
) -> Result<HttpResponse, ApiError> {
    let CreatePipelineRequest { pipeline, tags, .. } = &auth.body.value;
    let audited =
        |types: &Registry| AuditedRequest(serde_json::json!({"pipeline": pipeline.masked(types), "tags": tags}));
    // Every custom action's values hidden until the account's types are read.
    req.extensions_mut().insert(audited(&Registry::builtin()));
    let mut conn = auth.db().await?;
    let types = custom_types::registry(&mut conn, auth.caller.account()).await?;
    req.extensions_mut().insert(audited(&types));
    acceptable(&state, &auth.caller, pipeline, &types).await?;
    let tags: Vec<Tag> = tags.iter().cloned().map(Into::into).collect();
    check_tags(&tags)?;
    let created = store::create(&mut conn, auth.caller.account(), pipeline, &tags).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PipelineNameInUseException,
            format!("a pipeline named {:?} exists already in this account", pipeline.name),
        )
    })?;
    // As in CodePipeline, a new pipeline runs at once on its sources' latest revisions.
    let declaration = created.declaration()?;
    let cause = way_in::Cause::Created { by: auth.caller.arn() };
    if let Some((_, outbox)) = way_in::start(&mut conn, &created, way_in::Start::new(cause)).await? {
        crate::auth::publish_after_commit(&req, outbox);
    }
    let body = CreatePipelineResponse {
        pipeline: declaration.masked(&types),
        tags: created.tags().into_iter().map(Into::into).collect(),
    };
    answer(&req, StatusCode::CREATED, &body)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// An earlier version (default: the current one).
    pub version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineMetadata {
    pub pipeline_arn: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetPipelineResponse {
    pub pipeline: PipelineDeclaration,
    pub metadata: PipelineMetadata,
}

/// A pipeline's declaration (secret configuration masked) and metadata.
#[utoipa::path(
    tag = "pipelines", operation_id = "GetPipeline", params(("name" = String, Path), VersionQuery),
    responses(
        (status = 200, content((GetPipelineResponse = "application/json"), (GetPipelineResponse = "application/yaml"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "PipelineNotFoundException or PipelineVersionNotFoundException"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/pipelines/{name}")]
pub async fn get_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<GetPipeline>,
    name: web::Path<String>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let mut conn = auth.db().await?;
    let pipeline = store::find(&mut conn, auth.caller.account(), &name).await?.ok_or_else(|| not_found(&name))?;
    let declaration = match query.version.as_deref() {
        None | Some("") => pipeline.declaration()?,
        Some(text) => {
            let version: i32 =
                text.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
                    ApiError::validation(format!("version must be a whole number from 1, not {text:?}"))
                })?;
            let (value, _) = store::find_version(&mut conn, pipeline.pipeline_id, version).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::PipelineVersionNotFoundException,
                    format!("pipeline {name:?} has versions 1 to {}, not {version}", pipeline.version),
                )
            })?;
            serde_json::from_value(value).map_err(|e| {
                tracing::error!(error = %e, "a stored pipeline version does not read");
                ApiError::internal()
            })?
        }
    };
    let types = custom_types::registry(&mut conn, auth.caller.account()).await?;
    let body = GetPipelineResponse {
        pipeline: declaration.masked(&types),
        metadata: PipelineMetadata {
            pipeline_arn: pipeline.arn(&state.region),
            created: pipeline.created_at,
            updated: pipeline.updated_at,
        },
    };
    answer(&req, StatusCode::OK, &body)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePipelineRequest {
    /// The whole new declaration; its `version` is the one the change was based on.
    pub pipeline: PipelineDeclaration,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePipelineResponse {
    pub pipeline: PipelineDeclaration,
}

/// Replaces a pipeline's declaration; its version goes up by one. A change
/// based on an older version than the current one gets 409: read the
/// pipeline again and reapply the change. Secret values sent back masked
/// (`****`) keep their stored value.
#[utoipa::path(
    tag = "pipelines", operation_id = "UpdatePipeline", params(("name" = String, Path)),
    request_body(description = "The declaration in JSON; the same fields may be sent as YAML instead, labelled `application/yaml`.", content((UpdatePipelineRequest = "application/json"))),
    responses(
        (status = 200, body = UpdatePipelineResponse),
        (status = 400, body = ErrorBody, description = "InvalidStructureException or ValidationException"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "PipelineNotFoundException"),
        (status = 409, body = ErrorBody, description = "ConcurrentModificationException: based on an older version"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/pipelines/{name}")]
pub async fn update_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<UpdatePipeline>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let mut pipeline = auth.body.value.pipeline.clone();
    let audited = |types: &Registry| AuditedRequest(serde_json::json!({"pipeline": pipeline.masked(types)}));
    // Every custom action's values hidden until the account's types are read.
    req.extensions_mut().insert(audited(&Registry::builtin()));
    let mut conn = auth.db().await?;
    let types = custom_types::registry(&mut conn, auth.caller.account()).await?;
    req.extensions_mut().insert(audited(&types));
    if pipeline.name != *name {
        return Err(ApiError {
            errors: vec![ErrorDetail {
                path: "pipeline.name".to_owned(),
                rule: "Rename".to_owned(),
                message: "a pipeline cannot be renamed".to_owned(),
            }],
            ..ApiError::validation(format!(
                "pipeline.name is {:?} but the path names {name:?}: a pipeline cannot be renamed; create a copy under the new name",
                pipeline.name
            ))
        });
    }
    let Some(based_on) = pipeline.version else {
        return Err(ApiError::validation(
            "pipeline.version: give the version your change is based on (GetPipeline shows it)",
        ));
    };
    // Locked: the secrets kept are those of the version this update replaces.
    let stored =
        store::find_for_update(&mut conn, auth.caller.account(), &name).await?.ok_or_else(|| not_found(&name))?;
    if stored.version != based_on {
        return Err(stale(&name, stored.version, based_on));
    }
    pipeline.keep_secrets_from(&stored.declaration()?, &types);
    acceptable(&state, &auth.caller, &pipeline, &types).await?;
    match store::update(&mut conn, auth.caller.account(), based_on, &pipeline).await? {
        Updated::Done(updated) => {
            answer(&req, StatusCode::OK, &UpdatePipelineResponse { pipeline: updated.declaration()?.masked(&types) })
        }
        Updated::NotFound => Err(not_found(&name)),
        Updated::Stale(current) => Err(stale(&name, current, based_on)),
    }
}

fn stale(name: &str, current: i32, based_on: i32) -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentModificationException,
        format!(
            "pipeline {name:?} is at version {current}, but the change was based on version {based_on}: get it again, reapply the change, and update"
        ),
    )
}

/// Deletes a pipeline and its versions.
#[utoipa::path(
    tag = "pipelines", operation_id = "DeletePipeline", params(("name" = String, Path)),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "PipelineNotFoundException"),
    ),
    security(("bearer" = []))
)]
#[delete("/v1/pipelines/{name}")]
pub async fn delete_pipeline(
    auth: Authorized<DeletePipeline>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    if !store::delete(&mut conn, auth.caller.account(), &name).await? {
        return Err(not_found(&name));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListPipelinesQuery {
    /// Only pipelines whose name begins with this.
    pub name_prefix: Option<String>,
    /// `NAME` (default: A to Z, as CodePipeline lists them) or
    /// `LAST_ACTIVITY` (the latest execution's last change first).
    #[param(value_type = Option<PipelineSort>, inline)]
    pub sort_by: Option<String>,
    /// 1 to 1000 (default 100).
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

/// How ListPipelines orders its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PipelineSort {
    Name,
    LastActivity,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSummary {
    pub name: String,
    pub version: i32,
    pub execution_mode: ExecutionMode,
    pub pipeline_type: PipelineType,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The latest execution's last change, or the pipeline's own when later
    /// or it never ran.
    pub last_activity: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPipelinesResponse {
    pub pipelines: Vec<PipelineSummary>,
    pub next_token: Option<String>,
}

/// The account's pipelines, a page at a time: by name, or latest activity
/// first (`sortBy=LAST_ACTIVITY`).
#[utoipa::path(
    tag = "pipelines", operation_id = "ListPipelines", params(ListPipelinesQuery),
    responses((status = 200, body = ListPipelinesResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/pipelines")]
pub async fn list_pipelines(
    auth: Authorized<ListPipelines>,
    query: web::Query<ListPipelinesQuery>,
) -> Result<web::Json<ListPipelinesResponse>, ApiError> {
    let limit = query.max_results.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(format!("maxResults must be between 1 and 1000, not {limit}")));
    }
    let order = match query.sort_by.as_deref() {
        None | Some("NAME") => store::Order::Name,
        Some("LAST_ACTIVITY") => store::Order::LastActivity,
        Some(_) => return Err(ApiError::validation("sortBy must be NAME or LAST_ACTIVITY")),
    };
    let not_ours = || ApiError::validation("nextToken is not one this service gave (for this sortBy)");
    let after = match query.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => {
            let key = pipewright_core::iam::paging::key_of(token).ok_or_else(not_ours)?;
            Some(match order {
                store::Order::Name => store::After::Name(key),
                // `activity|name`: a name never holds `|`.
                store::Order::LastActivity => {
                    let (at, name) = key.split_once('|').ok_or_else(not_ours)?;
                    let at = DateTime::parse_from_rfc3339(at).map_err(|_| not_ours())?.with_timezone(&Utc);
                    store::After::Activity(at, name.to_owned())
                }
            })
        }
    };
    let mut conn = auth.db().await?;
    let mut found = store::list_ordered(
        &mut conn,
        auth.caller.account(),
        query.name_prefix.as_deref(),
        order,
        after.as_ref(),
        limit + 1,
    )
    .await?;
    let more = take_page(&mut found, limit);
    let next_token = if more {
        found.last().map(|(p, at)| match order {
            store::Order::Name => pipewright_core::iam::paging::token(&p.name),
            store::Order::LastActivity => pipewright_core::iam::paging::token(&format!(
                "{}|{}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                p.name
            )),
        })
    } else {
        None
    };
    let mut pipelines = Vec::new();
    for (p, last_activity) in found {
        let declaration = p.declaration()?;
        pipelines.push(PipelineSummary {
            name: p.name,
            version: p.version,
            execution_mode: declaration.execution_mode,
            pipeline_type: declaration.pipeline_type,
            created: p.created_at,
            updated: p.updated_at,
            last_activity,
        });
    }
    Ok(web::Json(ListPipelinesResponse { pipelines, next_token }))
}

/// The pipeline an ARN of this account names (tags are on pipelines).
async fn tagged_pipeline(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    account: &str,
    arn: &str,
) -> Result<store::Pipeline, ApiError> {
    let prefix = format!("arn:pw:codepipeline:{}:{account}:", state.region);
    let name = arn.strip_prefix(&prefix).filter(|n| !n.is_empty() && !n.contains('/')).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidArnException,
            format!("{arn:?} is not a pipeline ARN of this account ({prefix}NAME)"),
        )
    })?;
    store::find(conn, account, name).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::ResourceNotFoundException, format!("there is no pipeline {name:?} in this account"))
    })
}

fn tag_keys(req: &HttpRequest) -> Vec<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner().into_iter().filter(|(k, _)| k == "tagKeys").map(|(_, v)| v).collect())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ResourceQuery {
    #[param(example = "arn:pw:codepipeline:local:111122223333:web")]
    pub resource_arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagsResponse {
    pub tags: Vec<TagBody>,
}

/// A resource's tags.
#[utoipa::path(
    tag = "pipelines", operation_id = "ListTagsForResource", params(ResourceQuery),
    responses((status = 200, body = TagsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[get("/v1/tags")]
pub async fn list_tags(
    state: web::Data<AppState>,
    auth: Authorized<ListTagsForResource>,
) -> Result<web::Json<TagsResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let pipeline = tagged_pipeline(&mut conn, &state, auth.caller.account(), &auth.resource).await?;
    Ok(web::Json(TagsResponse { tags: pipeline.tags().into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagResourceRequest {
    pub resource_arn: String,
    pub tags: Vec<TagBody>,
}

/// Adds tags to a resource, or changes the values of keys it has.
#[utoipa::path(
    tag = "pipelines", operation_id = "TagResource", request_body = TagResourceRequest,
    responses((status = 200, body = TagsResponse), (status = 400, body = ErrorBody, description = "InvalidTagsException, TooManyTagsException, InvalidArnException"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[post("/v1/tags")]
pub async fn tag_resource(
    state: web::Data<AppState>,
    auth: Authorized<TagResource>,
) -> Result<web::Json<TagsResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let pipeline = tagged_pipeline(&mut conn, &state, auth.caller.account(), &auth.resource).await?;
    let mut tags = pipeline.tags();
    for tag in &auth.body.tags {
        match tags.iter_mut().find(|t| t.key.eq_ignore_ascii_case(&tag.key)) {
            Some(existing) => existing.value.clone_from(&tag.value),
            None => tags.push(tag.clone().into()),
        }
    }
    check_tags(&tags)?;
    store::set_tags(&mut conn, pipeline.pipeline_id, &tags).await?;
    Ok(web::Json(TagsResponse { tags: tags.into_iter().map(Into::into).collect() }))
}

/// Removes tags from a resource, by key (`tagKeys`, repeated).
#[utoipa::path(
    tag = "pipelines", operation_id = "UntagResource",
    params(ResourceQuery, ("tagKeys" = Vec<String>, Query, description = "a key to remove; repeat for more")),
    responses((status = 200, body = TagsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "ResourceNotFoundException")),
    security(("bearer" = []))
)]
#[delete("/v1/tags")]
pub async fn untag_resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<UntagResource>,
) -> Result<web::Json<TagsResponse>, ApiError> {
    let keys = tag_keys(&req);
    if keys.is_empty() {
        return Err(ApiError::validation("give at least one tagKeys in the query"));
    }
    let mut conn = auth.db().await?;
    let pipeline = tagged_pipeline(&mut conn, &state, auth.caller.account(), &auth.resource).await?;
    let tags: Vec<Tag> = pipeline.tags().into_iter().filter(|t| !keys.contains(&t.key)).collect();
    store::set_tags(&mut conn, pipeline.pipeline_id, &tags).await?;
    Ok(web::Json(TagsResponse { tags: tags.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisableTransitionRequest {
    /// Why (1–300 characters: letters, digits, spaces and !@().*?-), shown
    /// in the pipeline's state.
    #[schema(example = "Holding releases during the freeze")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionResponse {
    pub stage_name: String,
    pub inbound_transition_state: store::Transition,
}

/// The stage named in the path, of a pipeline of the caller's account, if
/// it has an inbound transition (every stage but the first).
async fn transition_stage(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &str,
    name: &str,
    stage: &str,
) -> Result<store::Pipeline, ApiError> {
    let pipeline = store::find(conn, account, name).await?.ok_or_else(|| not_found(name))?;
    let declaration = pipeline.declaration()?;
    match declaration.stages.iter().position(|s| s.name == stage) {
        None => {
            Err(ApiError::new(ErrorCode::StageNotFoundException, format!("pipeline {name:?} has no stage {stage:?}")))
        }
        Some(0) => Err(ApiError::validation(format!("{stage:?} is the first stage: nothing transitions into it"))),
        Some(_) => Ok(pipeline),
    }
}

fn check_reason(reason: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " !@().*?-".contains(c);
    if reason.is_empty() || reason.chars().count() > 300 || !reason.chars().all(allowed) {
        return Err(ApiError::validation("reason must be 1 to 300 letters, digits, spaces or !@().*?- characters"));
    }
    Ok(())
}

/// Stops revisions from entering a stage: they wait at its inbound
/// transition until it is enabled again.
#[utoipa::path(
    tag = "pipelines", operation_id = "DisableStageTransition",
    params(("name" = String, Path), ("stage" = String, Path)), request_body = DisableTransitionRequest,
    responses((status = 200, body = TransitionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "PipelineNotFoundException or StageNotFoundException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/stages/{stage}/transitions/inbound/disable")]
pub async fn disable_transition(
    req: HttpRequest,
    auth: Authorized<DisableStageTransition>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<TransitionResponse>, ApiError> {
    let (name, stage) = path.into_inner();
    check_reason(&auth.body.reason)?;
    let mut conn = auth.db().await?;
    let pipeline = transition_stage(&mut conn, auth.caller.account(), &name, &stage).await?;
    let state = store::set_transition(
        &mut conn,
        pipeline.pipeline_id,
        &stage,
        false,
        Some(&auth.body.reason),
        auth.caller.arn(),
    )
    .await?;
    crate::auth::notify_after_commit(&req, pipeline.pipeline_id);
    Ok(web::Json(TransitionResponse { stage_name: stage, inbound_transition_state: state }))
}

/// Lets revisions enter the stage again (the newest waiting one goes on).
#[utoipa::path(
    tag = "pipelines", operation_id = "EnableStageTransition",
    params(("name" = String, Path), ("stage" = String, Path)),
    responses((status = 200, body = TransitionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "PipelineNotFoundException or StageNotFoundException")),
    security(("bearer" = []))
)]
#[post("/v1/pipelines/{name}/stages/{stage}/transitions/inbound/enable")]
pub async fn enable_transition(
    req: HttpRequest,
    auth: Authorized<EnableStageTransition>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<TransitionResponse>, ApiError> {
    let (name, stage) = path.into_inner();
    let mut conn = auth.db().await?;
    let pipeline = transition_stage(&mut conn, auth.caller.account(), &name, &stage).await?;
    let state = store::set_transition(&mut conn, pipeline.pipeline_id, &stage, true, None, auth.caller.arn()).await?;
    // Revisions waiting at the transition go on (the newest, in SUPERSEDED mode).
    let mut outbox = Vec::new();
    for execution_id in pipewright_core::executions::store::running(&mut conn, pipeline.pipeline_id).await? {
        let message = pipewright_core::messaging::Message::Advance { execution_id };
        outbox.push(pipewright_core::messaging::enqueue(&mut conn, &message).await?);
    }
    crate::auth::publish_after_commit(&req, outbox);
    crate::auth::notify_after_commit(&req, pipeline.pipeline_id);
    Ok(web::Json(TransitionResponse { stage_name: stage, inbound_transition_state: state }))
}
