//! Action types, with CodePipeline's operation names: ListActionTypes,
//! GetActionType, CreateCustomActionType and DeleteCustomActionType. The
//! built-in types (owner `Pipewright`) are the registry's; custom ones
//! (owner `Custom`) are an account's own.

use actix_web::{HttpResponse, delete, get, post, web};
use pipewright_core::pipelines::ActionTypeId;
use pipewright_core::pipelines::action_types;
use pipewright_core::pipelines::custom_types::{self, ActionTypeView, CustomActionTypeDefinition};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{Authorized, NoBody, ResourceRequest};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;

operation!(ListActionTypes, "codepipeline:ListActionTypes", "*", NoBody, |_r, _b| Ok("*".to_owned()));
operation!(
    GetActionType,
    "codepipeline:GetActionType",
    "arn:pw:codepipeline:${Region}:${Account}:actiontype:{owner}/{category}/{provider}/{version}",
    NoBody,
    |r, _b| Ok(custom_types::arn(r.region, r.account, &path_id(r)?))
);
operation!(
    CreateCustomActionType,
    "codepipeline:CreateCustomActionType",
    "arn:pw:codepipeline:${Region}:${Account}:actiontype:Custom/{category}/{provider}/{version}",
    web::Json<CustomActionTypeDefinition>,
    |r, b| {
        custom_types::check(b).map_err(ApiError::validation)?;
        Ok(custom_types::arn(r.region, r.account, &b.id()))
    }
);
operation!(
    DeleteCustomActionType,
    "codepipeline:DeleteCustomActionType",
    "arn:pw:codepipeline:${Region}:${Account}:actiontype:Custom/{category}/{provider}/{version}",
    NoBody,
    |r, _b| Ok(custom_types::arn(r.region, r.account, &path_id(r)?))
);

fn path_id(r: &ResourceRequest<'_>) -> Result<ActionTypeId, ApiError> {
    Ok(ActionTypeId {
        owner: r.path("owner")?.to_owned(),
        category: r.path("category")?.to_owned(),
        provider: r.path("provider")?.to_owned(),
        version: r.path("version")?.to_owned(),
    })
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_action_types)
        .service(create_custom_action_type)
        .service(get_action_type)
        .service(delete_custom_action_type);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ActionTypesQuery {
    /// `Pipewright` or `Custom`.
    pub action_owner_filter: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListActionTypesResponse {
    pub action_types: Vec<ActionTypeView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionTypeResponse {
    pub action_type: ActionTypeView,
}

/// The built-in action types and the account's custom ones, with their
/// configuration properties and artifact counts.
#[utoipa::path(
    tag = "pipelines", operation_id = "ListActionTypes", params(ActionTypesQuery),
    responses((status = 200, body = ListActionTypesResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)")),
    security(("bearer" = []))
)]
#[get("/v1/action-types")]
pub async fn list_action_types(
    auth: Authorized<ListActionTypes>,
    query: web::Query<ActionTypesQuery>,
) -> Result<web::Json<ListActionTypesResponse>, ApiError> {
    let owner = query.action_owner_filter.as_deref();
    if owner.is_some_and(|o| o != action_types::BUILTIN_OWNER && o != custom_types::OWNER) {
        return Err(ApiError::validation("actionOwnerFilter: Pipewright or Custom"));
    }
    let mut found: Vec<ActionTypeView> = Vec::new();
    if owner.is_none_or(|o| o == action_types::BUILTIN_OWNER) {
        found.extend(action_types::all().iter().map(ActionTypeView::from));
    }
    if owner.is_none_or(|o| o == custom_types::OWNER) {
        let mut conn = auth.db().await?;
        found.extend(custom_types::list(&mut conn, auth.caller.account()).await?.into_iter().map(ActionTypeView::from));
    }
    Ok(web::Json(ListActionTypesResponse { action_types: found }))
}

/// One action type: a built-in one (owner `Pipewright`) or one of the
/// account's custom ones (owner `Custom`).
#[utoipa::path(
    tag = "pipelines", operation_id = "GetActionType",
    params(("owner" = String, Path), ("category" = String, Path), ("provider" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ActionTypeResponse, description = "done"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "no such action type (ActionTypeNotFoundException)")),
    security(("bearer" = []))
)]
#[get("/v1/action-types/{owner}/{category}/{provider}/{version}")]
pub async fn get_action_type(
    auth: Authorized<GetActionType>,
    path: web::Path<(String, String, String, String)>,
) -> Result<web::Json<ActionTypeResponse>, ApiError> {
    let (owner, category, provider, version) = path.into_inner();
    let id = ActionTypeId { owner, category, provider, version };
    let not_found = || ApiError::new(ErrorCode::ActionTypeNotFoundException, format!("there is no action type {id}"));
    let action_type = if id.owner == custom_types::OWNER {
        let mut conn = auth.db().await?;
        custom_types::find(&mut conn, auth.caller.account(), &id).await?.map(ActionTypeView::from)
    } else {
        action_types::find(&id).map(ActionTypeView::from)
    };
    Ok(web::Json(ActionTypeResponse { action_type: action_type.ok_or_else(not_found)? }))
}

/// Makes a custom action type (owner `Custom`) in the account. Its actions
/// are run by job workers; until that API exists a pipeline cannot use it
/// (CreatePipeline says so).
#[utoipa::path(
    tag = "pipelines", operation_id = "CreateCustomActionType", request_body = CustomActionTypeDefinition,
    responses((status = 201, body = ActionTypeResponse, description = "created"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 409, body = ErrorBody, description = "it exists (EntityAlreadyExistsException), or the account has as many as it may (LimitExceededException)")),
    security(("bearer" = []))
)]
#[post("/v1/action-types")]
pub async fn create_custom_action_type(auth: Authorized<CreateCustomActionType>) -> Result<HttpResponse, ApiError> {
    let mut conn = auth.db().await?;
    custom_types::create(&mut conn, auth.caller.account(), &auth.body).await?;
    Ok(HttpResponse::Created().json(ActionTypeResponse { action_type: ActionTypeView::from(auth.body.clone()) }))
}

/// Deletes one of the account's custom action types.
#[utoipa::path(
    tag = "pipelines", operation_id = "DeleteCustomActionType",
    params(("owner" = String, Path, description = "Custom"), ("category" = String, Path), ("provider" = String, Path), ("version" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody, description = "the input is not valid (ValidationException)"),
        (status = 401, body = ErrorBody, description = "no valid credentials"), (status = 403, body = ErrorBody, description = "the caller's policies do not allow it (AccessDeniedException)"),
        (status = 404, body = ErrorBody, description = "no such custom action type (ActionTypeNotFoundException)")),
    security(("bearer" = []))
)]
#[delete("/v1/action-types/{owner}/{category}/{provider}/{version}")]
pub async fn delete_custom_action_type(
    auth: Authorized<DeleteCustomActionType>,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (owner, category, provider, version) = path.into_inner();
    if owner != custom_types::OWNER {
        return Err(ApiError::validation(format!("owner: only Custom action types are deleted, not {owner:?}")));
    }
    let id = ActionTypeId { owner, category, provider, version };
    let mut conn = auth.db().await?;
    if !custom_types::delete(&mut conn, auth.caller.account(), &id).await? {
        return Err(ApiError::new(ErrorCode::ActionTypeNotFoundException, format!("there is no action type {id}")));
    }
    Ok(HttpResponse::NoContent().finish())
}
