//! Signing in and out: SignIn, Refresh, SignOut, and GetCallerIdentity.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use pipewright_core::auth::tokens::{Claims, PrincipalKind};
use pipewright_core::auth::{ids, passwords};
use pipewright_core::iam::{accounts, sessions, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::password_work;
use crate::auth::RequestTx;
use crate::auth::{Caller, OperationDoc, source_ip};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::server::AppState;

inventory::submit! { OperationDoc::public("SignIn", "none: the password is the credential") }
inventory::submit! { OperationDoc::public("RefreshSession", "none: the refresh token is the credential") }
inventory::submit! { OperationDoc {
    id: "SignOut",
    action: Some("sts:SignOut (always allowed to the session itself)"),
    resource: "the caller's session",
} }
inventory::submit! { OperationDoc { id: "GetCallerIdentity", action: Some("sts:GetCallerIdentity (always allowed)"), resource: "*" } }
inventory::submit! { OperationDoc {
    id: "SimulateCallerPolicy",
    action: Some("iam:SimulateCallerPolicy (always allowed: a caller may ask what it may do itself)"),
    resource: "the resources it names",
} }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(sign_in).service(refresh).service(sign_out).service(whoami).service(simulate_caller_policy);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInRequest {
    /// The account's id or alias.
    pub account: String,
    /// `root` for the account's root user.
    pub user_name: String,
    pub password: String,
    /// What an earlier sign-in of this user from this client answered: a
    /// known device signs in even while the user's or the address's
    /// failures are throttled (it has counters of its own).
    #[serde(default)]
    pub device_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTokens {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// When the access token stops working (RFC 3339).
    pub expiration: DateTime<Utc>,
    /// Exchange at /v1/auth/refresh for a new access token; works once.
    pub refresh_token: String,
    /// After a sign-in: keep it, and send it with this user's next sign-ins
    /// from this client (`deviceToken`), so that throttling others cause
    /// does not keep you out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerIdentity {
    #[schema(example = "111122223333")]
    pub account: String,
    #[schema(example = "arn:pw:iam::111122223333:user/alice")]
    pub arn: String,
    /// The account id (root), the user id, or `ROLEID:session` for a role session.
    pub user_id: String,
}

/// Failed sign-ins allowed per window: one user from one address, one
/// user from anywhere (by id: its account's id and alias count together),
/// one address for any users, and one known device of a user.
const PER_USER_AND_IP: i64 = 5;
const PER_USER: i64 = 20;
const PER_IP: i64 = 30;
const PER_DEVICE: i64 = 5;
/// How long a device stays known after its last sign-in.
const DEVICE_SECS: i64 = 90 * 24 * 3600;

fn wrong() -> ApiError {
    ApiError::new(ErrorCode::NotAuthorizedException, "the account, user name or password is wrong")
}

/// Signs in with a password; answers the same, in about the same time, for
/// an unknown account or user as for a wrong password.
#[utoipa::path(
    tag = "auth",
    operation_id = "SignIn",
    request_body = SignInRequest,
    responses(
        (status = 200, body = SessionTokens),
        (status = 401, body = ErrorBody, description = "the account, user name or password is wrong"),
        (status = 429, body = ErrorBody, description = "too many failed sign-ins; retry after the Retry-After seconds"),
    ),
    security(())
)]
#[post("/v1/auth/sign-in")]
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignInRequest>,
) -> Result<web::Json<SessionTokens>, ApiError> {
    let tx = RequestTx::begin(&req, &state).await?;
    let body = body.into_inner();
    let ip = client_prefix(&source_ip(&req));

    let mut conn = tx.conn().await;
    let account = accounts::find(&mut conn, &body.account).await?;
    let (principal, hash) = match &account {
        None => (None, None),
        Some(account) if body.user_name == "root" => (Some(None), Some(account.root_password_hash.clone())),
        Some(account) => match users::find(&mut conn, &account.account_id, &body.user_name).await? {
            Some(user) => {
                let hash = user.password_hash.clone();
                (Some(Some(user)), hash)
            }
            None => (None, None),
        },
    };
    drop(conn);
    if let Some(account) = &account {
        let user_arn = match &principal {
            Some(Some(user)) => Some(user.arn()),
            Some(None) => Some(format!("arn:pw:iam::{}:root", account.account_id)),
            None => None,
        };
        req.extensions_mut().insert(crate::audit::AuditedAccount {
            account_id: account.account_id.clone(),
            user_arn,
            user_name: body.user_name.clone(),
        });
    }
    // Who is being signed in, by id (an alias and the account id, or two
    // spellings of a name, count as one); a made-up one by what was typed.
    let who = match (&account, &principal) {
        (Some(account), Some(Some(user))) => format!("{}:{}", account.account_id, user.user_id),
        (Some(account), Some(None)) => format!("{}:root", account.account_id),
        _ => format!("unknown:{}:{}", body.account.to_lowercase(), body.user_name.to_lowercase()),
    };
    // Known devices are the password's: a new password forgets them all.
    let password_version = hash.as_deref().map(ids::secret_hash).unwrap_or_default();
    let devices = format!("{who}:{}", password_version.get(..16).unwrap_or_default());
    let device = match body.device_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) if principal.is_some() && known_device(&state, &devices, token).await? => {
            Some(ids::secret_hash(token))
        }
        _ => None,
    };
    // A known device counts against itself only: failures others cause (for
    // this user, or from this address) never keep it out. Anyone else counts
    // per user and address, per user, and per address.
    let counters = match &device {
        Some(device) => vec![(format!("signin:device:{who}:{device}"), PER_DEVICE)],
        None => vec![
            (format!("signin:who-ip:{who}:{ip}"), PER_USER_AND_IP),
            (format!("signin:user:{who}"), PER_USER),
            (format!("signin:ip:{ip}"), PER_IP),
        ],
    };
    throttle_attempt(&state, &counters).await?;

    let password = body.password;
    let verified = password_work(&state, move || match hash {
        Some(hash) => passwords::verify(&password, &hash),
        None => passwords::verify_nobody(&password),
    })
    .await?;
    let (Some(account), Some(user), true) = (account, principal, verified) else {
        tracing::info!(account = %body.account, user = %body.user_name, %ip, "sign-in failed");
        return Err(wrong());
    };
    throttle_clear(&state, &counters).await;
    let device_token = match &body.device_token {
        Some(token) if device.is_some() => token.clone(),
        _ => ids::secret(),
    };
    remember_device(&state, &devices, &device_token).await;

    let (arn, kind, uid, name, user_id) = match &user {
        None => (
            format!("arn:pw:iam::{}:root", account.account_id),
            PrincipalKind::Root,
            account.account_id.clone(),
            None,
            None,
        ),
        Some(user) => (
            user.arn(),
            PrincipalKind::User,
            user.user_id.clone(),
            Some(user.user_name.clone()),
            Some(user.user_id.clone()),
        ),
    };
    let refresh_secret = ids::secret();
    let mut conn = tx.conn().await;
    let session = sessions::create(
        &mut conn,
        sessions::NewSession {
            account_id: &account.account_id,
            principal_arn: &arn,
            user_id: user_id.as_deref(),
            role_id: None,
            session_policy: None,
            refresh_hash: Some(&ids::secret_hash(&refresh_secret)),
            expires_at: Utc::now() + chrono::Duration::seconds(state.session_secs),
        },
    )
    .await?;
    let mut claims =
        Claims::new(arn, account.account_id.clone(), kind, uid, session.session_id, state.access_token_secs);
    claims.name = name;
    let mut tokens = issue(&state, &claims, Some(format!("{}.{refresh_secret}", session.session_id)))?;
    tokens.device_token = Some(device_token);
    Ok(web::Json(tokens))
}

fn issue(state: &AppState, claims: &Claims, refresh_token: Option<String>) -> Result<SessionTokens, ApiError> {
    let access_token = state.keys.sign(claims).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        ApiError::internal()
    })?;
    Ok(SessionTokens {
        access_token,
        expiration: DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
        refresh_token: refresh_token.unwrap_or_default(),
        device_token: None,
    })
}

fn device_key(state: &AppState, who: &str, token: &str) -> String {
    state.services.cache.key(&format!("signin:known:{who}:{}", ids::secret_hash(token)))
}

/// Whether `token` is a device this principal signed in from.
async fn known_device(state: &AppState, who: &str, token: &str) -> Result<bool, ApiError> {
    let found: i64 = state
        .services
        .cache
        .query(redis::cmd("EXISTS").arg(device_key(state, who, token)))
        .await
        .map_err(|e| ApiError::from(state.services.cache.unavailable(e)))?;
    Ok(found == 1)
}

/// Keeps `token` known for this principal (for [`DEVICE_SECS`] from now).
async fn remember_device(state: &AppState, who: &str, token: &str) {
    let set: Result<(), _> = state
        .services
        .cache
        .query(redis::cmd("SET").arg(device_key(state, who, token)).arg(1).arg("EX").arg(DEVICE_SECS))
        .await;
    if let Err(e) = set {
        tracing::warn!(error = %e, "a known device could not be kept; its next sign-in counts as a new one");
    }
}

/// Counts an attempt against each counter (atomically: INCR first, then
/// compare) and refuses it when one is over its limit. Windows start at the
/// first attempt and are never extended.
pub(super) async fn throttle_attempt(state: &AppState, counters: &[(String, i64)]) -> Result<(), ApiError> {
    let mut pipe = redis::pipe();
    for (key, _) in counters {
        let key = state.services.cache.key(key);
        pipe.cmd("INCR").arg(&key).cmd("EXPIRE").arg(&key).arg(state.signin_window_secs).arg("NX").ignore();
        pipe.cmd("TTL").arg(&key);
    }
    let answers: Vec<i64> = state
        .services
        .cache
        .query_pipe(&pipe)
        .await
        .map_err(|e| ApiError::from(state.services.cache.unavailable(e)))?;
    for ((_, limit), pair) in counters.iter().zip(answers.chunks(2)) {
        let (count, ttl) = (pair.first().copied().unwrap_or(0), pair.get(1).copied().unwrap_or(1));
        if count > *limit {
            let wait = u32::try_from(ttl.max(1)).unwrap_or(1);
            return Err(ApiError {
                retry_after: Some(wait),
                ..ApiError::new(ErrorCode::ThrottlingException, format!("too many attempts; retry in {wait} seconds"))
            });
        }
    }
    Ok(())
}

/// The part of an address that throttling counts by: the address for IPv4,
/// its /64 for IPv6 (one client commonly holds a whole /64).
pub(super) fn client_prefix(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

/// After a success: the first counter (this client and account+user) starts
/// again, and the attempt is taken back from the others.
pub(super) async fn throttle_clear(state: &AppState, counters: &[(String, i64)]) {
    let mut pipe = redis::pipe();
    for (i, (key, _)) in counters.iter().enumerate() {
        let key = state.services.cache.key(key);
        if i == 0 {
            pipe.cmd("DEL").arg(key).ignore();
        } else {
            pipe.cmd("DECR").arg(key).ignore();
        }
    }
    let _ = state.services.cache.query_pipe::<()>(&pipe).await;
}

/// Exchanges a refresh token for a new access token (and a new refresh token:
/// each works once).
#[utoipa::path(
    tag = "auth",
    operation_id = "RefreshSession",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = SessionTokens),
        (status = 401, body = ErrorBody, description = "the refresh token is unknown, used, expired or signed out"),
    ),
    security(())
)]
#[post("/v1/auth/refresh")]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<web::Json<SessionTokens>, ApiError> {
    let invalid =
        || ApiError::new(ErrorCode::UnrecognizedClientException, "the refresh token is not valid; sign in again");
    let (id, secret) = body.refresh_token.split_once('.').ok_or_else(invalid)?;
    let id: Uuid = id.parse().map_err(|_| invalid())?;
    let mut conn = state.services.db.conn().await?;
    let session = sessions::find(&mut conn, id).await?.filter(sessions::Session::is_live).ok_or_else(invalid)?;
    let old_hash = ids::secret_hash(secret);
    if !session.refresh_hash.as_deref().is_some_and(|h| ids::hashes_equal(h, &old_hash)) {
        // A used refresh token presented again: someone holds a copy. End the session.
        tracing::warn!(session = %id, "a used refresh token was presented again; the session is revoked");
        sessions::revoke(&mut conn, id).await?;
        state.revoke_session(id, session.expires_at).await?;
        return Err(invalid());
    }
    let (kind, uid, name) = match &session.user_id {
        Some(user_id) => {
            let user = users::find_by_id(&mut conn, user_id).await?.ok_or_else(invalid)?;
            (PrincipalKind::User, user.user_id, Some(user.user_name))
        }
        None => (PrincipalKind::Root, session.account_id.clone(), None),
    };
    drop(conn);
    req.extensions_mut().insert(crate::audit::AuditedAccount {
        account_id: session.account_id.clone(),
        user_arn: Some(session.principal_arn.clone()),
        user_name: name.clone().unwrap_or_else(|| "root".to_owned()),
    });
    // The rotation commits with the call's audit event (the revocation of a
    // reused token above must stand even though the call fails, so it is not
    // in this transaction).
    let tx = RequestTx::begin(&req, &state).await?;
    let mut conn = tx.conn().await;
    let new_secret = ids::secret();
    if !sessions::rotate_refresh(&mut conn, id, &old_hash, &ids::secret_hash(&new_secret)).await? {
        return Err(invalid());
    }
    let lifetime = state.access_token_secs.min((session.expires_at - Utc::now()).num_seconds().max(1));
    let mut claims = Claims::new(session.principal_arn.clone(), session.account_id.clone(), kind, uid, id, lifetime);
    claims.name = name;
    Ok(web::Json(issue(&state, &claims, Some(format!("{id}.{new_secret}")))?))
}

/// Ends the caller's session: its access and refresh tokens stop working at
/// once, in every api process.
#[utoipa::path(
    tag = "auth",
    operation_id = "SignOut",
    responses((status = 204, description = "signed out"), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/auth/sign-out")]
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tx = RequestTx::begin(&req, &state).await?;
    // Refused for the session's whole life: a refresh may have made tokens
    // that outlive the one presented here.
    let mut conn = tx.conn().await;
    let expires_at = sessions::find(&mut conn, caller.claims.sid)
        .await?
        .map_or_else(|| Utc::now() + chrono::Duration::seconds(state.access_token_secs), |s| s.expires_at);
    state.revoke_session(caller.claims.sid, expires_at).await?;
    sessions::revoke(&mut conn, caller.claims.sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who the credentials belong to, as sts:GetCallerIdentity answers.
#[utoipa::path(
    tag = "auth",
    operation_id = "GetCallerIdentity",
    responses((status = 200, body = CallerIdentity), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/auth/whoami")]
pub async fn whoami(caller: Caller) -> web::Json<CallerIdentity> {
    web::Json(CallerIdentity {
        account: caller.claims.acct.clone(),
        arn: caller.claims.sub.clone(),
        user_id: caller.claims.uid.clone(),
    })
}

/// The most checks one SimulateCallerPolicy call decides.
const MAX_CHECKS: usize = 50;

/// One action on one resource, to decide for the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallerCheck {
    #[schema(example = "codepipeline:StartPipelineExecution")]
    pub action: String,
    #[schema(example = "arn:pw:codepipeline:local:111122223333:web")]
    pub resource: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateCallerRequest {
    /// 1 to 50 checks.
    pub checks: Vec<CallerCheck>,
}

/// What the caller's own call of `action` on `resource` would be decided.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerDecision {
    pub action: String,
    pub resource: String,
    pub allowed: bool,
    /// IAM's refusal (who, what action, which resource, why) when not allowed.
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulateCallerResponse {
    /// One per check, in their order.
    pub results: Vec<CallerDecision>,
}

/// What the caller may do: each check decided exactly as the caller's own
/// call would be (its policies, its session policy, the request's condition
/// keys, the resource's tags), without doing it. A console greys out what
/// it would be refused. Needs no permission, as GetCallerIdentity: it tells
/// the caller only about itself, and no more than trying the call would.
#[utoipa::path(
    tag = "auth",
    operation_id = "SimulateCallerPolicy",
    request_body = SimulateCallerRequest,
    responses((status = 200, body = SimulateCallerResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/auth/simulate")]
pub async fn simulate_caller_policy(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<SimulateCallerRequest>,
) -> Result<web::Json<SimulateCallerResponse>, ApiError> {
    let checks = body.into_inner().checks;
    if checks.is_empty() || checks.len() > MAX_CHECKS {
        return Err(ApiError::validation(format!(
            "checks must hold 1 to {MAX_CHECKS} actions and resources, not {}",
            checks.len()
        )));
    }
    for (i, check) in checks.iter().enumerate() {
        let action_ok = check.action.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && !name.is_empty()
                && check.action.len() <= 128
                && check.action.chars().all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
        });
        if !action_ok {
            return Err(ApiError::validation(format!(
                "checks[{i}].action must be service:Action (letters, digits and hyphens, up to 128), e.g. codepipeline:GetPipeline"
            )));
        }
        if check.resource.is_empty() || check.resource.len() > 2048 || check.resource.chars().any(char::is_control) {
            return Err(ApiError::validation(format!(
                "checks[{i}].resource must be an ARN or *, 1 to 2048 characters with no control characters"
            )));
        }
    }
    // The caller's policies are read once for all the checks.
    let decider = crate::auth::Decider::load(&state, &caller).await?;
    let mut results = Vec::with_capacity(checks.len());
    for CallerCheck { action, resource } in checks {
        let decided = decider.decide(&action, &resource, &[], true).await;
        let (allowed, message) = match decided {
            Ok(()) => (true, None),
            Err(e) if e.code == ErrorCode::AccessDeniedException => (false, Some(e.message)),
            Err(e) => return Err(e),
        };
        results.push(CallerDecision { action, resource, allowed, message });
    }
    Ok(web::Json(SimulateCallerResponse { results }))
}
