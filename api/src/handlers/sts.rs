//! STS AssumeRole: a session in a role's account, with the role's policies
//! narrowed by a session policy, for a caller of the same or another account.

use actix_web::HttpMessage;
use actix_web::{HttpRequest, post, web};
use chrono::{DateTime, Utc};
use pipewright_authz::{Arn, NamedPolicy, Policy, PolicyKind, Principal, PrincipalType, Request};
use pipewright_core::auth::tokens::{Claims, PrincipalKind, SourceIdentity};
use pipewright_core::iam::{self, roles, sessions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::RequestTx;
use crate::auth::{Caller, OperationDoc, request_context};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::server::AppState;

inventory::submit! { OperationDoc {
    id: "AssumeRole",
    action: Some("sts:AssumeRole"),
    resource: "{roleArn} (decided by the caller's policies and the role's trust policy)",
} }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(assume_role);
}

/// A role session's lifetime when assumed by another role session (AWS's
/// limit on role chaining).
const CHAINED_MAX_SECS: i64 = 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssumeRoleRequest {
    #[schema(example = "arn:pw:iam::111122223333:role/deployer")]
    pub role_arn: String,
    /// 2–64 letters, digits and +=,.@_-; it names the session in ARNs and the audit log.
    pub role_session_name: String,
    /// 900 up to the role's maximum (1 hour at most when a role session assumes a role).
    pub duration_seconds: Option<i64>,
    /// The value the trust policy may require in `sts:ExternalId`.
    pub external_id: Option<String>,
    /// A session policy: the session may do only what both it and the role allow.
    #[schema(value_type = Option<crate::handlers::policy_schema::PolicyDocumentOrText>)]
    pub policy: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub access_token: String,
    pub expiration: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumedRoleUser {
    #[schema(example = "arn:pw:sts::111122223333:assumed-role/deployer/ci")]
    pub arn: String,
    #[schema(example = "AROAEXAMPLEEXAMPLEEX:ci")]
    pub assumed_role_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleResponse {
    pub credentials: Credentials,
    pub assumed_role_user: AssumedRoleUser,
}

fn denied(caller: &Caller, role_arn: &str, why: &str) -> ApiError {
    let kind = match caller.claims.typ {
        PrincipalKind::Root => "Root",
        PrincipalKind::User => "User",
        PrincipalKind::AssumedRole => "Assumed role",
    };
    ApiError::new(
        ErrorCode::AccessDeniedException,
        format!("{kind}: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}{why}", caller.arn()),
    )
}

/// Assumes a role, in this account or another one whose trust policy allows it.
#[utoipa::path(
    tag = "sts", operation_id = "AssumeRole", request_body = AssumeRoleRequest,
    responses(
        (status = 200, body = AssumeRoleResponse),
        (status = 400, body = ErrorBody, description = "a bad ARN, session name, duration or session policy"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the caller's policies or the role's trust policy do not allow it (also when there is no such role)"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/sts/assume-role")]
pub async fn assume_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<AssumeRoleRequest>,
) -> Result<web::Json<AssumeRoleResponse>, ApiError> {
    let tx = RequestTx::begin(&req, &state).await?;
    let body = body.into_inner();
    let arn: Arn = body
        .role_arn
        .parse()
        .map_err(|e: pipewright_authz::arn::ArnError| ApiError::validation(format!("roleArn: {e}")))?;
    let role_name = match (arn.partition.as_str(), arn.service.as_str(), arn.resource.strip_prefix("role/")) {
        ("pw", "iam", Some(name)) if !name.is_empty() && !name.contains('/') => name.to_owned(),
        _ => {
            return Err(ApiError::validation(format!(
                "roleArn {:?} is not a role ARN (arn:pw:iam::ACCOUNT:role/NAME)",
                body.role_arn
            )));
        }
    };
    req.extensions_mut()
        .insert(crate::audit::AuditedOperation { action: "sts:AssumeRole", resource: body.role_arn.clone() });
    let session_name = body.role_session_name.as_str();
    let valid_name = (2..=64).contains(&session_name.len())
        && session_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !valid_name {
        return Err(ApiError::validation("roleSessionName must be 2 to 64 letters, digits or +=,.@_-"));
    }
    if caller.claims.typ == PrincipalKind::Root {
        return Err(denied(&caller, &body.role_arn, ": the root user cannot assume roles; use an IAM user"));
    }
    let session_policy = match &body.policy {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        Some(value @ serde_json::Value::Object(_)) => Some(value.to_string()),
        Some(_) => return Err(ApiError::validation("policy must be a JSON object or a string holding one")),
    };
    if let Some(text) = &session_policy {
        Policy::parse_with_limit(text, PolicyKind::Identity, 2048)
            .map_err(|e| ApiError::new(ErrorCode::MalformedPolicyDocumentException, format!("policy: {e}")))?;
    }

    // Bounds that do not depend on the role first: what is said before the
    // decision must not tell whether a role of another account exists.
    let chained = caller.claims.typ == PrincipalKind::AssumedRole;
    let ceiling = if chained { CHAINED_MAX_SECS } else { 43_200 };
    let duration = body.duration_seconds.unwrap_or(3600);
    if !(900..=ceiling).contains(&duration) {
        let why =
            if chained { " (a role session assuming a role: at most 3600, AWS's role-chaining limit)" } else { "" };
        return Err(ApiError::validation(format!(
            "durationSeconds must be between 900 and {ceiling}{why}, not {duration}"
        )));
    }
    let refused = || {
        denied(
            &caller,
            &body.role_arn,
            " because the caller's policies and the role's trust policy do not both allow it",
        )
    };

    let mut conn = tx.conn().await;
    // A role that does not exist is denied like one that does not trust the caller.
    let Some(role) = roles::find(&mut conn, &arn.account, &role_name).await? else {
        return Err(refused());
    };
    // As in CloudTrail, the role's account sees who assumed (or tried to
    // assume) its role.
    req.extensions_mut().insert(crate::audit::AuditedAlsoIn(arn.account.clone()));

    // The caller's own policies, in its own account.
    let (owners, caller_session_policy) = match caller.claims.typ {
        PrincipalKind::User => {
            let mut owners = iam::policies::groups_of(&mut conn, &caller.claims.uid).await?;
            owners.push(caller.claims.uid.clone());
            (owners, None)
        }
        PrincipalKind::AssumedRole => {
            let session = sessions::find(&mut conn, caller.claims.sid).await?;
            (caller.claims.role.clone().into_iter().collect(), session.and_then(|s| s.session_policy))
        }
        PrincipalKind::Root => (Vec::new(), None),
    };
    let documents = iam::policies::effective(&mut conn, caller.account(), &owners).await?;
    let compile = |name: String, text: &str, kind| {
        Policy::parse_with_limit(text, kind, usize::MAX).ok().map(|p| NamedPolicy::new(name, p))
    };
    let identity: Vec<NamedPolicy> =
        documents.iter().filter_map(|(name, text)| compile(name.clone(), text, PolicyKind::Identity)).collect();
    let had_session_policy = caller_session_policy.is_some();
    let caller_session =
        caller_session_policy.and_then(|text| compile("session policy".to_owned(), &text, PolicyKind::Identity));
    if had_session_policy && caller_session.is_none() {
        tracing::error!(caller = %caller.arn(), "the caller's session policy does not parse; refusing");
        return Err(refused());
    }
    let Some(trust) = compile(format!("trust policy of {}", role.arn()), &role.trust_policy, PolicyKind::Trust) else {
        tracing::error!(role = %role.arn(), "a stored trust policy does not parse; the role cannot be assumed");
        return Err(refused());
    };
    if identity.len() != documents.len() {
        tracing::error!(caller = %caller.arn(), "a stored policy of the caller does not parse; refusing");
        return Err(refused());
    }
    let mut context = request_context(&caller, &state.region);
    context.insert("sts:RoleSessionName", session_name);
    if let Some(external_id) = &body.external_id {
        context.insert("sts:ExternalId", external_id.as_str());
    }
    let principal = Principal {
        arn: caller.arn().to_owned(),
        account: caller.account().to_owned(),
        kind: if chained { PrincipalType::AssumedRole } else { PrincipalType::User },
    };
    let role_arn = role.arn();
    let request = Request { action: "sts:AssumeRole", resource: &role_arn, context: &context };
    let evaluation =
        pipewright_authz::evaluate_assume_role(&identity, caller_session.as_ref(), &trust, &principal, &request);
    if !evaluation.is_allowed() {
        return Err(refused());
    }
    if duration > i64::from(role.max_session_duration) {
        return Err(ApiError::validation(format!(
            "durationSeconds {duration} exceeds the role's maximum session duration ({} seconds)",
            role.max_session_duration
        )));
    }

    let session_arn = format!("arn:pw:sts::{}:assumed-role/{}/{session_name}", role.account_id, role.role_name);
    let expires_at = Utc::now() + chrono::Duration::seconds(duration);
    let session = sessions::create(
        &mut conn,
        sessions::NewSession {
            account_id: &role.account_id,
            principal_arn: &session_arn,
            user_id: None,
            role_id: Some(&role.role_id),
            session_policy: session_policy.as_deref(),
            refresh_hash: None,
            expires_at,
        },
    )
    .await?;
    let assumed_role_id = format!("{}:{session_name}", role.role_id);
    let mut claims = Claims::new(
        session_arn.clone(),
        role.account_id.clone(),
        PrincipalKind::AssumedRole,
        assumed_role_id.clone(),
        session.session_id,
        duration,
    );
    claims.name = Some(role.role_name.clone());
    claims.role = Some(role.role_id.clone());
    claims.src = Some(SourceIdentity { arn: caller.arn().to_owned(), account: caller.account().to_owned() });
    claims.chained = chained;
    // Assumed with a token from an access key (or a session that was): it
    // ends with that key.
    claims.key = caller.claims.key.clone();
    let access_token = state.keys.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        ApiError::internal()
    })?;
    Ok(web::Json(AssumeRoleResponse {
        credentials: Credentials {
            access_token,
            expiration: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at),
        },
        assumed_role_user: AssumedRoleUser { arn: session_arn, assumed_role_id },
    }))
}
