//! The policy simulator over HTTP: SimulateCustomPolicy and
//! SimulatePrincipalPolicy, as IAM's, deciding with the same authz code as
//! every request.

use actix_web::{post, web};
use pipewright_authz::{Context, Decision, NamedPolicy, Policy, PolicyKind, Request};
use pipewright_core::iam::{self, groups, roles, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Authorized;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::operation;

operation!(SimulateCustomPolicy, "iam:SimulateCustomPolicy", "*", web::Json<SimulateCustomRequest>, |_r, _b| Ok(
    "*".to_owned()
));
operation!(
    SimulatePrincipalPolicy,
    "iam:SimulatePrincipalPolicy",
    "{policySourceArn}",
    web::Json<SimulatePrincipalRequest>,
    |_r, b| Ok(b.policy_source_arn.clone())
);

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(simulate_custom_policy).service(simulate_principal_policy);
}

/// The most actions times resources one simulation decides.
const MAX_EVALUATIONS: usize = 1000;
/// The most policies one SimulateCustomPolicy takes (each at most IAM's 6,144 characters).
const MAX_POLICIES: usize = 10;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextEntry {
    #[schema(example = "pw:SourceIp")]
    pub context_key_name: String,
    pub context_key_values: Vec<String>,
    /// `string`, `stringList`, `numeric`, `numericList`, `boolean`, `booleanList`,
    /// `date`, `dateList`, `ip`, `ipList`, `binary`, `binaryList`.
    #[schema(example = "ip")]
    pub context_key_type: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateCustomRequest {
    /// Identity policies (JSON objects or strings holding them).
    #[schema(value_type = Vec<crate::handlers::policy_schema::PolicyDocumentOrText>)]
    pub policy_input_list: Vec<serde_json::Value>,
    #[schema(example = json!(["codepipeline:GetPipeline"]))]
    pub action_names: Vec<String>,
    /// Default `["*"]`.
    #[serde(default)]
    pub resource_arns: Vec<String>,
    #[serde(default)]
    pub context_entries: Vec<ContextEntry>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatePrincipalRequest {
    /// A user, group or role of the caller's account.
    #[schema(example = "arn:pw:iam::111122223333:user/alice")]
    pub policy_source_arn: String,
    pub action_names: Vec<String>,
    #[serde(default)]
    pub resource_arns: Vec<String>,
    #[serde(default)]
    pub context_entries: Vec<ContextEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchedStatement {
    /// The policy's name (`PolicyInputList.1` for the first custom policy).
    pub source_policy_id: String,
    pub statement_index: usize,
    pub sid: Option<String>,
    pub effect: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResult {
    pub eval_action_name: String,
    pub eval_resource_name: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub eval_decision: String,
    pub matched_statements: Vec<MatchedStatement>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulationResponse {
    pub evaluation_results: Vec<EvaluationResult>,
    pub is_truncated: bool,
}

fn context(entries: &[ContextEntry]) -> Result<Context, ApiError> {
    let mut context = Context::new();
    for entry in entries {
        if entry.context_key_name.trim().is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidInputException, "contextKeyName must not be empty"));
        }
        if entry.context_key_type.ends_with("List") {
            context.insert(&entry.context_key_name, entry.context_key_values.clone());
        } else if let [value] = entry.context_key_values.as_slice() {
            context.insert(&entry.context_key_name, value.as_str());
        } else {
            return Err(ApiError::new(
                ErrorCode::InvalidInputException,
                format!(
                    "context key {} of type {} takes one value; use a ...List type for several",
                    entry.context_key_name, entry.context_key_type
                ),
            ));
        }
    }
    Ok(context)
}

fn simulate(
    policies: &[NamedPolicy],
    actions: &[String],
    resources: &[String],
    context: &Context,
) -> Result<SimulationResponse, ApiError> {
    if actions.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidInputException, "actionNames must name at least one action"));
    }
    let star = ["*".to_owned()];
    let resources = if resources.is_empty() { &star[..] } else { resources };
    if actions.len() * resources.len() > MAX_EVALUATIONS {
        return Err(ApiError::new(
            ErrorCode::InvalidInputException,
            format!("at most {MAX_EVALUATIONS} action and resource pairs are simulated at once"),
        ));
    }
    let mut evaluation_results = Vec::new();
    for action in actions {
        for resource in resources {
            let evaluation = pipewright_authz::evaluate(policies, None, &Request { action, resource, context });
            evaluation_results.push(EvaluationResult {
                eval_action_name: action.clone(),
                eval_resource_name: resource.clone(),
                eval_decision: match evaluation.decision {
                    Decision::Allow => "allowed",
                    Decision::ExplicitDeny => "explicitDeny",
                    Decision::ImplicitDeny => "implicitDeny",
                }
                .to_owned(),
                matched_statements: evaluation
                    .matched_statements
                    .into_iter()
                    .map(|m| MatchedStatement {
                        source_policy_id: m.policy.to_string(),
                        statement_index: m.statement_index,
                        sid: m.sid.map(|s| s.to_string()),
                        effect: format!("{:?}", m.effect),
                    })
                    .collect(),
            });
        }
    }
    Ok(SimulationResponse { evaluation_results, is_truncated: false })
}

/// Decides actions on resources under policies given in the request.
#[utoipa::path(
    tag = "iam", operation_id = "SimulateCustomPolicy", request_body = SimulateCustomRequest,
    responses((status = 200, body = SimulationResponse), (status = 400, body = ErrorBody, description = "a malformed policy or input"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/simulate-custom-policy")]
pub async fn simulate_custom_policy(
    auth: Authorized<SimulateCustomPolicy>,
) -> Result<web::Json<SimulationResponse>, ApiError> {
    let body = auth.body.into_inner();
    if body.policy_input_list.len() > MAX_POLICIES {
        return Err(ApiError::new(
            ErrorCode::InvalidInputException,
            format!("policyInputList may hold at most {MAX_POLICIES} policies"),
        ));
    }
    let policies = body
        .policy_input_list
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let text = super::owned::document_text(value, &format!("policyInputList[{i}]"))?;
            Policy::parse(&text, PolicyKind::Identity)
                .map(|p| NamedPolicy::new(format!("PolicyInputList.{}", i + 1), p))
                .map_err(|e| {
                    ApiError::new(ErrorCode::MalformedPolicyDocumentException, format!("policyInputList[{i}]: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let context = context(&body.context_entries)?;
    // Evaluation is CPU work: off the async workers.
    let answer =
        super::blocking(move || simulate(&policies, &body.action_names, &body.resource_arns, &context)).await??;
    Ok(web::Json(answer))
}

/// Decides actions on resources under the current policies of a user (with
/// its groups'), a group or a role of the account.
#[utoipa::path(
    tag = "iam", operation_id = "SimulatePrincipalPolicy", request_body = SimulatePrincipalRequest,
    responses((status = 200, body = SimulationResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/iam/simulate-principal-policy")]
pub async fn simulate_principal_policy(
    auth: Authorized<SimulatePrincipalPolicy>,
) -> Result<web::Json<SimulationResponse>, ApiError> {
    let mut conn = auth.db().await?;
    let body = auth.body.into_inner();
    let account = auth.caller.account();
    let prefix = format!("arn:pw:iam::{account}:");
    let not_found = || {
        ApiError::new(
            ErrorCode::NoSuchEntityException,
            format!("policySourceArn {} is not a user, group or role of this account", body.policy_source_arn),
        )
    };
    let resource = body.policy_source_arn.strip_prefix(&prefix).ok_or_else(not_found)?;
    let owners = match resource.split_once('/') {
        Some(("user", name)) => {
            let user = users::get(&mut conn, account, name).await?;
            let mut owners = iam::policies::groups_of(&mut conn, &user.user_id).await?;
            owners.push(user.user_id);
            owners
        }
        Some(("group", name)) => vec![groups::get(&mut conn, account, name).await?.group_id],
        Some(("role", name)) => vec![roles::get(&mut conn, account, name).await?.role_id],
        _ => return Err(not_found()),
    };
    let documents = iam::policies::effective(&mut conn, account, &owners).await?;
    drop(conn);
    let policies: Vec<NamedPolicy> = documents
        .into_iter()
        .filter_map(|(name, text)| {
            Policy::parse_with_limit(&text, PolicyKind::Identity, usize::MAX).ok().map(|p| NamedPolicy::new(name, p))
        })
        .collect();
    let context = context(&body.context_entries)?;
    // Evaluation is CPU work: off the async workers.
    let answer =
        super::blocking(move || simulate(&policies, &body.action_names, &body.resource_arns, &context)).await??;
    Ok(web::Json(answer))
}
