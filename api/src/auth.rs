//! Who calls, and whether they may: the `Caller` extractor authenticates a
//! bearer token; `Authorized<O>` also decides the operation `O` with authz,
//! so that a handler cannot be written without naming its IAM action and the
//! way its resource ARN is built (see [`Operation`]).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use pipewright_authz::context::ContextValue;
use pipewright_authz::{Context, Decision, NamedPolicy, Policy, PolicyKind, Principal, PrincipalType, Request};
use pipewright_core::auth::tokens::{Claims, PrincipalKind, TokenError};
use pipewright_core::iam::{self, users};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::server::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: Claims,
    pub source_ip: String,
    pub user_agent: String,
}

impl Caller {
    /// The account the caller acts in.
    pub fn account(&self) -> &str {
        &self.claims.acct
    }

    pub fn arn(&self) -> &str {
        &self.claims.sub
    }

    fn principal(&self) -> Principal {
        Principal {
            arn: self.claims.sub.clone(),
            account: self.claims.acct.clone(),
            kind: match self.claims.typ {
                PrincipalKind::Root => PrincipalType::Root,
                PrincipalKind::User => PrincipalType::User,
                PrincipalKind::AssumedRole => PrincipalType::AssumedRole,
            },
        }
    }
}

/// The client's address, as IAM's `aws:SourceIp` is: the peer, unless the
/// peer is a trusted proxy (`PIPEWRIGHT_TRUSTED_PROXIES`); then the last
/// address of `X-Forwarded-For` that is not one, read from the right (what
/// a client writes there itself, to the left, is never believed).
pub fn source_ip(req: &HttpRequest) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return String::new() };
    let proxies = req.app_data::<web::Data<AppState>>().map(|s| s.trusted_proxies.as_slice()).unwrap_or_default();
    client_address(peer, req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()), proxies).to_string()
}

fn client_address<'a>(
    peer: std::net::IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    proxies: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let trusted = |ip: &std::net::IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // Not an address: what is left of it cannot be believed.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::client_address;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // Not from a proxy: the header is the client's own words.
        assert_eq!(client_address(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &proxies), ip("203.0.113.9"));
        // From a proxy: the first untrusted hop from the right.
        assert_eq!(client_address(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.7"].into_iter(), &proxies), ip("198.51.100.7"));
        assert_eq!(
            client_address(ip("10.0.0.2"), ["6.6.6.6", "198.51.100.7, 10.0.0.3"].into_iter(), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(client_address(ip("10.0.0.2"), std::iter::empty(), &proxies), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), ["junk, 10.0.0.3"].into_iter(), &proxies), ip("10.0.0.3"));
        assert_eq!(client_address(ip("10.0.0.2"), ["1.2.3.4"].into_iter(), &[]), ip("10.0.0.2"));
    }
}

fn user_agent(req: &HttpRequest) -> String {
    req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn unauthenticated(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

/// Authenticates the request: its bearer token (signature, expiry, and that
/// its session was not signed out), or the access key whose SigV4 signature
/// the AWS endpoint verified; then that its principal still stands.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let signed = req.extensions().get::<crate::aws::SignedClaims>().map(|s| s.0.clone());
    if signed.is_some()
        && let Some(caller) = req.extensions().get::<Caller>().cloned()
    {
        // The AWS endpoint checked this principal for this request already.
        return Ok(caller);
    }
    let claims = match signed {
        Some(claims) => claims,
        None => bearer_claims(req, state).await?,
    };
    principal_stands(req, state, claims).await
}

/// The claims of the request's bearer token.
async fn bearer_claims(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return Err(unauthenticated(
            ErrorCode::MissingAuthenticationTokenException,
            "this operation needs credentials: send Authorization: Bearer <accessToken> (from /v1/auth/sign-in or /v1/auth/token)",
        ));
    };
    let Some(token) = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) else {
        return Err(unauthenticated(
            ErrorCode::UnrecognizedClientException,
            "the Authorization header must be: Bearer <accessToken>",
        ));
    };
    let mut verified = state.keys.verify(token.trim());
    if matches!(verified, Err(TokenError::UnknownKey)) {
        // A key another process may have started signing with since this
        // one last loaded the ring (decision 016).
        if state.shared_keys.reload_for_unknown_key(&state.services.db).await {
            verified = state.keys.verify(token.trim());
        }
    }
    let claims = verified.map_err(|e| match e {
        TokenError::Expired => unauthenticated(ErrorCode::ExpiredTokenException, &e.to_string()),
        TokenError::Invalid | TokenError::UnknownKey => {
            unauthenticated(ErrorCode::UnrecognizedClientException, &e.to_string())
        }
    })?;
    if claims.sigv4 {
        return Err(unauthenticated(
            ErrorCode::UnrecognizedClientException,
            "a session token of temporary credentials signs AWS requests with its key; it is not a bearer token",
        ));
    }
    Ok(claims)
}

/// Checks that the claims' session was not signed out and that their
/// principal (and the access key they came from) still stands.
pub(crate) async fn principal_stands(req: &HttpRequest, state: &AppState, claims: Claims) -> Result<Caller, ApiError> {
    if state.is_revoked(claims.sid).await? {
        return Err(unauthenticated(
            ErrorCode::UnrecognizedClientException,
            "this session was signed out; sign in again",
        ));
    }
    if claims.typ == PrincipalKind::User {
        let mut conn = state.services.db.conn().await?;
        if users::find_by_id(&mut conn, &claims.uid).await?.is_none() {
            return Err(unauthenticated(ErrorCode::UnrecognizedClientException, "the user no longer exists"));
        }
        if let Some(key) = &claims.key
            && !iam::access_keys::is_active(&mut conn, key, Some(&claims.uid)).await?
        {
            return Err(unauthenticated(
                ErrorCode::UnrecognizedClientException,
                "the access key this token was exchanged from is inactive or deleted",
            ));
        }
    }
    if claims.typ == PrincipalKind::AssumedRole {
        // The role must still exist, and its sessions not have been revoked since.
        let mut conn = state.services.db.conn().await?;
        let role = match &claims.role {
            Some(id) => iam::roles::find_by_id(&mut conn, id).await?,
            None => None,
        };
        let Some(role) = role else {
            return Err(unauthenticated(ErrorCode::UnrecognizedClientException, "the session's role no longer exists"));
        };
        if role.sessions_revoked_before.is_some_and(|before| claims.iat <= before.timestamp()) {
            return Err(unauthenticated(
                ErrorCode::UnrecognizedClientException,
                "the sessions of this role were revoked; assume the role again",
            ));
        }
        // A session assumed with a token from an access key ends with the key.
        if let Some(key) = &claims.key
            && !iam::access_keys::is_active(&mut conn, key, None).await?
        {
            return Err(unauthenticated(
                ErrorCode::UnrecognizedClientException,
                "the access key this session was assumed with is inactive or deleted",
            ));
        }
    }
    Ok(caller_of(req, claims))
}

/// The request's caller, from claims whose principal was checked.
pub(crate) fn caller_of(req: &HttpRequest, claims: Claims) -> Caller {
    let caller = Caller { claims, source_ip: source_ip(req), user_agent: user_agent(req) };
    req.extensions_mut().insert(caller.clone());
    caller
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            Ok(authenticate(&req, &state).await?)
        })
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)
}

/// What an operation needs to be authorised: its IAM action, whether it only
/// reads, and how its resource ARN is built from the request.
pub trait Operation: 'static {
    /// The operation's name (its OpenAPI operationId, the AWS operation).
    const NAME: &'static str;
    /// `service:Operation`, e.g. `iam:CreateUser`.
    const ACTION: &'static str;
    /// The resource ARN's shape, for the OpenAPI document.
    const RESOURCE: &'static str;
    /// The JSON body the operation takes, or [`NoBody`].
    type Body: Body;
    /// Reads only: no request transaction, and `readOnly` in the audit log.
    const READ_ONLY: bool = read_only_action(Self::ACTION);

    /// The resource ARN of this request.
    fn resource(request: &ResourceRequest<'_>, body: &Self::Body) -> Result<String, ApiError>;

    /// Condition keys the operation adds to the request context (e.g.
    /// `iam:PolicyARN` for attaching a policy).
    fn context(_request: &ResourceRequest<'_>, _body: &Self::Body) -> Vec<(String, ContextValue)> {
        Vec::new()
    }

    /// Completes a resource ARN that needs the database (a source action's
    /// ARN names its stage, which the path does not).
    fn refine<'a>(
        _state: &'a AppState,
        _account: &'a str,
        resource: String,
    ) -> impl Future<Output = Result<String, ApiError>> + 'a {
        async move { Ok(resource) }
    }
}

/// Whether an action only reads, by IAM's naming (`Get…`, `Describe…`,
/// `List…`, …): the one rule, for the request's transaction and for the
/// audit log's `readOnly`.
pub const fn read_only_action(action: &str) -> bool {
    let bytes = action.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b':' {
        i += 1;
    }
    let start = if i < bytes.len() { i + 1 } else { bytes.len() };
    starts_with_at(bytes, start, b"Get")
        || starts_with_at(bytes, start, b"Describe")
        || starts_with_at(bytes, start, b"List")
        || starts_with_at(bytes, start, b"Lookup")
        || starts_with_at(bytes, start, b"Simulate")
        || starts_with_at(bytes, start, b"Verify")
        || starts_with_at(bytes, start, b"Export")
}

const fn starts_with_at(bytes: &[u8], start: usize, prefix: &[u8]) -> bool {
    if bytes.len() - start < prefix.len() {
        return false;
    }
    let mut j = 0;
    while j < prefix.len() {
        if bytes[start + j] != prefix[j] {
            return false;
        }
        j += 1;
    }
    true
}

/// What a resource ARN is built from.
pub struct ResourceRequest<'a> {
    pub http: &'a HttpRequest,
    pub account: &'a str,
    pub region: &'a str,
}

impl ResourceRequest<'_> {
    /// A path parameter.
    pub fn path(&self, name: &str) -> Result<&str, ApiError> {
        let value = self
            .http
            .match_info()
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::validation(format!("the path needs {name}")))?;
        if value.chars().any(char::is_control) {
            return Err(ApiError::validation(format!("{name} must not contain control characters")));
        }
        Ok(value)
    }

    /// `arn:pw:iam::ACCOUNT:{resource}`
    pub fn iam(&self, resource: &str) -> String {
        format!("arn:pw:iam::{}:{resource}", self.account)
    }

    /// A query-string parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        web::Query::<std::collections::HashMap<String, String>>::from_query(self.http.query_string())
            .ok()
            .and_then(|q| q.get(name).cloned())
    }
}

/// An operation's request body.
pub trait Body: Sized + 'static {
    fn extract(
        req: &HttpRequest,
        payload: &mut Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;
}

/// Reads a whole body of at most `limit` bytes (`what` names it in the error).
pub async fn read_limited(mut payload: Payload, limit: usize, what: &str) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(ErrorCode::SerializationException, format!("the body could not be read: {e}"))
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return Err(ApiError::new(
                ErrorCode::RequestEntityTooLargeException,
                format!("{what} is larger than the {limit} bytes accepted"),
            ));
        }
    }
    Ok(bytes.freeze())
}

/// The operation has no body.
pub struct NoBody;

impl Body for NoBody {
    fn extract(_: &HttpRequest, _: &mut Payload) -> Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>> {
        Box::pin(async { Ok(NoBody) })
    }
}

impl<T: DeserializeOwned + 'static> Body for web::Json<T> {
    fn extract(
        req: &HttpRequest,
        payload: &mut Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>> {
        Box::pin(web::Json::<T>::from_request(req, payload))
    }
}

/// A caller allowed to perform `O` on its resource, with the request body.
pub struct Authorized<O: Operation> {
    pub caller: Caller,
    pub resource: String,
    pub body: O::Body,
    tx: Option<RequestTx>,
    state: web::Data<AppState>,
    operation: PhantomData<O>,
}

impl<O: Operation> Authorized<O> {
    /// The database for this request: inside the request's transaction for a
    /// mutation (committed with its audit event), else from the pool.
    pub async fn db(&self) -> Result<DbConn, ApiError> {
        match &self.tx {
            Some(tx) => Ok(DbConn::Tx(tx.0.clone().lock_owned().await)),
            None => Ok(DbConn::Pool(Box::new(self.state.services.db.conn().await?))),
        }
    }
}

/// The transaction of a mutating request: begun when it was authorised, and
/// committed by the audit middleware together with the request's event.
#[derive(Clone)]
pub struct RequestTx(pub std::sync::Arc<tokio::sync::Mutex<pipewright_core::db::Conn>>);

impl RequestTx {
    /// Begins the request's transaction (for the operations that change
    /// something without `Authorized`: sign-up, sign-in, AssumeRole, …); the
    /// audit middleware commits it with the request's event.
    pub async fn begin(req: &HttpRequest, state: &AppState) -> Result<Self, ApiError> {
        use diesel_async::TransactionManager;
        let mut conn = state.services.db.conn().await.map_err(ApiError::from)?;
        diesel_async::AnsiTransactionManager::begin_transaction(&mut *conn)
            .await
            .map_err(|e| ApiError::from(pipewright_core::iam::IamError::from(e)))?;
        let tx = Self(std::sync::Arc::new(tokio::sync::Mutex::new(conn)));
        req.extensions_mut().insert(tx.clone());
        Ok(tx)
    }

    /// Its connection.
    pub async fn conn(&self) -> DbConn {
        DbConn::Tx(self.0.clone().lock_owned().await)
    }
}

/// Outbox rows the request's transaction wrote, published by the
/// middleware once it committed (the worker's relay catches any it misses).
#[derive(Debug, Clone, Default)]
pub struct PendingMessages(pub Vec<pipewright_core::messaging::Queued>);

/// Publishes these outbox rows after the request's transaction commits.
pub fn publish_after_commit(req: &HttpRequest, ids: Vec<pipewright_core::messaging::Queued>) {
    if ids.is_empty() {
        return;
    }
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<PendingMessages>() {
        Some(pending) => pending.0.extend(ids),
        None => {
            extensions.insert(PendingMessages(ids));
        }
    }
}

/// Redis channels told of the request's change once its transaction
/// commits: pipelines' live listeners (a change no execution step follows,
/// such as a disabled transition), job workers waiting for a job.
#[derive(Debug, Clone, Default)]
pub struct PendingLiveUpdates(pub Vec<String>);

/// Tells the pipeline's live listeners after the request's transaction commits.
pub fn notify_after_commit(req: &HttpRequest, pipeline_id: uuid::Uuid) {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        publish_after_commit_to(req, state.services.cache.pipeline_channel(&pipeline_id));
    }
}

/// Publishes on a Redis channel (its whole name) after the request's
/// transaction commits.
pub fn publish_after_commit_to(req: &HttpRequest, channel: String) {
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<PendingLiveUpdates>() {
        Some(pending) => pending.0.push(channel),
        None => {
            extensions.insert(PendingLiveUpdates(vec![channel]));
        }
    }
}

/// A connection, in the request's transaction or from the pool.
pub enum DbConn {
    Tx(tokio::sync::OwnedMutexGuard<pipewright_core::db::Conn>),
    Pool(Box<pipewright_core::db::Conn>),
}

impl std::ops::Deref for DbConn {
    type Target = diesel_async::AsyncPgConnection;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Tx(guard) => guard,
            Self::Pool(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            Self::Tx(guard) => &mut *guard,
            Self::Pool(conn) => conn,
        }
    }
}

impl<O: Operation> FromRequest for Authorized<O> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = O::Body::extract(&req, payload);
        Box::pin(async move {
            let state = app_state(&req)?;
            // Credentials first: an anonymous caller learns nothing from the body's errors.
            let caller = authenticate(&req, &state).await?;
            let body = body.await?;
            // The handler's route must be documented as this operation: the
            // name in its `#[utoipa::path]` is checked against the one it is
            // authorised as (a test run catches a handler that names another).
            if cfg!(debug_assertions)
                && let (Some(catalogue), Some(pattern)) =
                    (req.app_data::<web::Data<crate::catalogue::Catalogue>>(), req.match_pattern())
                && let Some(documented) = catalogue.name_of(req.method().as_str(), &pattern)
                && documented != O::NAME
            {
                tracing::error!(documented, authorised = O::NAME, "a handler is documented as another operation");
                return Err(ApiError::internal().into());
            }
            let request = ResourceRequest { http: &req, account: caller.account(), region: &state.region };
            let resource = O::refine(&state, caller.account(), O::resource(&request, &body)?).await?;
            let extra = O::context(&request, &body);
            req.extensions_mut()
                .insert(crate::audit::AuditedOperation { action: O::ACTION, resource: resource.clone() });
            authorize_tagged(&state, &caller, O::ACTION, &resource, &extra).await?;
            let tx = if O::READ_ONLY {
                None
            } else {
                use diesel_async::TransactionManager;
                let mut conn = state.services.db.conn().await.map_err(ApiError::from)?;
                if let Err(e) = diesel_async::AnsiTransactionManager::begin_transaction(&mut *conn).await {
                    if !pipewright_core::iam::is_unavailable(&e) {
                        return Err(ApiError::from(pipewright_core::iam::IamError::from(e)).into());
                    }
                    // A pooled connection lost to a restart the pool had not
                    // noticed yet: once more, on another (nothing was done).
                    drop(conn);
                    conn = state.services.db.conn().await.map_err(ApiError::from)?;
                    diesel_async::AnsiTransactionManager::begin_transaction(&mut *conn)
                        .await
                        .map_err(|e| ApiError::from(pipewright_core::iam::IamError::from(e)))?;
                }
                let tx = RequestTx(std::sync::Arc::new(tokio::sync::Mutex::new(conn)));
                req.extensions_mut().insert(tx.clone());
                Some(tx)
            };
            Ok(Authorized { caller, resource, body, tx, state, operation: PhantomData })
        })
    }
}

/// `pw:ResourceTag/KEY` for a resource that has tags (a pipeline, and its
/// stages and actions, carry the pipeline's tags).
pub async fn resource_tags(
    state: &AppState,
    account: &str,
    resource: &str,
) -> Result<Vec<(String, ContextValue)>, ApiError> {
    let Some(rest) = resource.strip_prefix("arn:pw:codepipeline:") else { return Ok(Vec::new()) };
    let Some((arn_account, path)) = rest.split_once(':').and_then(|(_, r)| r.split_once(':')) else {
        return Ok(Vec::new());
    };
    let name = path.split('/').next().unwrap_or_default();
    if arn_account != account || name.is_empty() || name.contains('*') {
        return Ok(Vec::new());
    }
    let mut conn = state.services.db.conn().await?;
    let tags = pipewright_core::pipelines::store::tags_of(&mut conn, account, name).await?;
    Ok(tags.into_iter().map(|t| (format!("pw:ResourceTag/{}", t.key), ContextValue::from(t.value))).collect())
}

/// Decides `action` on `resource` for the caller, from its current policies.
pub async fn authorize(state: &AppState, caller: &Caller, action: &str, resource: &str) -> Result<(), ApiError> {
    authorize_with(state, caller, action, resource, &[]).await
}

/// As [`authorize`], with condition keys of the operation's own.
pub async fn authorize_with(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    extra: &[(String, ContextValue)],
) -> Result<(), ApiError> {
    decide(state, caller, action, resource, extra, false).await
}

/// As [`authorize_with`], with the resource's tags (`pw:ResourceTag/KEY`)
/// in the context: read only when a policy that applies has a condition on
/// them (a root user's call, and most others, need no query for them).
pub async fn authorize_tagged(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    extra: &[(String, ContextValue)],
) -> Result<(), ApiError> {
    decide(state, caller, action, resource, extra, true).await
}

/// Whether a policy's text names a resource tag anywhere (a condition key,
/// or a policy variable in a value or a resource): on the text as stored,
/// and again with its JSON escapes decoded, so that no way of writing one
/// is missed.
fn names_resource_tags(text: &str) -> bool {
    let decoded = serde_json::from_str::<serde_json::Value>(text).map(|v| v.to_string()).unwrap_or_default();
    [text, decoded.as_str()].iter().any(|t| t.to_ascii_lowercase().contains("resourcetag"))
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    extra: &[(String, ContextValue)],
    tagged: bool,
) -> Result<(), ApiError> {
    Decider::load(state, caller).await?.decide(action, resource, extra, tagged).await
}

/// A caller's policies, read and compiled once, to decide one request or
/// many (SimulateCallerPolicy) as its calls are decided.
pub struct Decider<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    identity: Vec<NamedPolicy>,
    session: Option<NamedPolicy>,
    /// Whether any of them names a resource tag (only then are tags read).
    names_tags: bool,
}

impl<'a> Decider<'a> {
    pub async fn load(state: &'a AppState, caller: &'a Caller) -> Result<Self, ApiError> {
        let mut documents = Vec::new();
        let mut session_policy = None;
        match caller.claims.typ {
            PrincipalKind::Root => {}
            PrincipalKind::User => {
                // `authenticate` found the user (by this id) for this request.
                let mut conn = state.services.db.conn().await?;
                documents = iam::policies::effective_for_user(&mut conn, caller.account(), &caller.claims.uid).await?;
            }
            PrincipalKind::AssumedRole => {
                let mut conn = state.services.db.conn().await?;
                let Some(role_id) = caller.claims.role.clone() else {
                    return Err(ApiError::new(ErrorCode::UnrecognizedClientException, "the session names no role"));
                };
                documents = iam::policies::effective(&mut conn, caller.account(), &[role_id]).await?;
                session_policy =
                    iam::sessions::find(&mut conn, caller.claims.sid).await?.and_then(|s| s.session_policy);
            }
        }
        let compile =
            |(name, text): (String, String)| match Policy::parse_with_limit(&text, PolicyKind::Identity, usize::MAX) {
                Ok(policy) => Some(NamedPolicy::new(name, policy)),
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "a stored policy does not parse; it is ignored");
                    None
                }
            };
        let names_tags = documents.iter().any(|(_, text)| names_resource_tags(text))
            || session_policy.as_deref().is_some_and(names_resource_tags);
        let count = documents.len();
        let identity: Vec<NamedPolicy> = documents.into_iter().filter_map(compile).collect();
        let had_session_policy = session_policy.is_some();
        let session = session_policy.and_then(|text| compile(("session policy".to_owned(), text)));
        // Fail closed: a policy that cannot be read might have been a Deny.
        if identity.len() != count || (had_session_policy && session.is_none()) {
            return Err(ApiError::new(
                ErrorCode::AccessDeniedException,
                "a policy that applies to this principal could not be read; an administrator must fix it",
            ));
        }
        Ok(Self { state, caller, identity, session, names_tags })
    }

    /// Decides `action` on `resource`; with `tagged`, the resource's tags
    /// are in the context when a policy names one.
    pub async fn decide(
        &self,
        action: &str,
        resource: &str,
        extra: &[(String, ContextValue)],
        tagged: bool,
    ) -> Result<(), ApiError> {
        let (state, caller, session) = (self.state, self.caller, self.session.as_ref());
        let mut context = request_context(caller, &state.region);
        for (key, value) in extra {
            context.insert(key, value.clone());
        }
        if tagged && self.names_tags {
            for (key, value) in resource_tags(state, caller.account(), resource).await? {
                context.insert(&key, value);
            }
        }
        let request = Request { action, resource, context: &context };
        let evaluation = pipewright_authz::evaluate_principal(&caller.principal(), &self.identity, session, &request);
        if evaluation.is_allowed() {
            return Ok(());
        }
        let why = match evaluation.decision {
            Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_owned(),
            _ if session.is_some() => {
                format!("because no session policy and identity-based policy both allow the {action} action")
            }
            _ => format!("because no identity-based policy allows the {action} action"),
        };
        let kind = match caller.claims.typ {
            PrincipalKind::Root => "Root",
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole => "Assumed role",
        };
        Err(ApiError::new(
            ErrorCode::AccessDeniedException,
            format!("{kind}: {} is not authorized to perform: {action} on resource: {resource} {why}", caller.arn()),
        ))
    }
}

/// The condition keys of a request, as IAM fills them.
pub fn request_context(caller: &Caller, region: &str) -> Context {
    let now = chrono::Utc::now();
    let mut context = Context::new();
    context
        .insert("pw:PrincipalArn", caller.arn())
        .insert("pw:PrincipalAccount", caller.account())
        .insert("pw:userid", caller.claims.uid.as_str())
        .insert("pw:SourceIp", caller.source_ip.as_str())
        .insert("pw:UserAgent", caller.user_agent.as_str())
        .insert("pw:CurrentTime", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .insert("pw:EpochTime", now.timestamp().to_string())
        .insert("pw:SecureTransport", "false")
        .insert("pw:RequestedRegion", region)
        .insert("pw:MultiFactorAuthPresent", "false");
    let principal_type = match caller.claims.typ {
        PrincipalKind::Root => "Account",
        PrincipalKind::User => "User",
        PrincipalKind::AssumedRole => "AssumedRole",
    };
    context.insert("pw:PrincipalType", principal_type);
    if caller.claims.typ == PrincipalKind::User
        && let Some(name) = &caller.claims.name
    {
        context.insert("pw:username", name.as_str());
    }
    if let Some(source) = &caller.claims.src {
        context.insert("pw:SourceAccount", source.account.as_str());
    }
    context
}

/// Declares an operation: its IAM action, its resource ARN's shape (for the
/// OpenAPI document), its body, and how the ARN is built.
#[macro_export]
macro_rules! operation {
    ($name:ident, $action:literal, $resource:literal, $body:ty, |$req:ident, $b:ident| $build:expr,
     context |$creq:ident, $cb:ident| $context:expr) => {
        pub struct $name;

        inventory::submit! { $crate::auth::OperationDoc::of::<$name>() }

        impl $crate::auth::Operation for $name {
            const NAME: &'static str = stringify!($name);
            const ACTION: &'static str = $action;
            const RESOURCE: &'static str = $resource;
            type Body = $body;

            fn resource(
                $req: &$crate::auth::ResourceRequest<'_>,
                $b: &Self::Body,
            ) -> Result<String, $crate::error::ApiError> {
                $build
            }

            fn context(
                $creq: &$crate::auth::ResourceRequest<'_>,
                $cb: &Self::Body,
            ) -> Vec<(String, pipewright_authz::context::ContextValue)> {
                #[allow(clippy::useless_conversion)]
                $context
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), pipewright_authz::context::ContextValue::from(v)))
                    .collect()
            }
        }
    };
    ($name:ident, $action:literal, $resource:literal, $body:ty, |$req:ident, $b:ident| $build:expr) => {
        $crate::operation!(
            $name,
            $action,
            $resource,
            $body,
            |$req, $b| $build,
            context | _r,
            _b | Vec::<(&'static str, String)>::new()
        );
    };
}

/// An operation as the OpenAPI document shows it.
#[derive(Debug, Clone, Copy)]
pub struct OperationDoc {
    /// The OpenAPI operationId (the AWS operation name).
    pub id: &'static str,
    /// The IAM action, or `None` for the few operations that take no
    /// credentials (sign-up, sign-in, token exchange).
    pub action: Option<&'static str>,
    pub resource: &'static str,
}

impl OperationDoc {
    pub const fn of<O: Operation>() -> Self {
        Self { id: O::NAME, action: Some(O::ACTION), resource: O::RESOURCE }
    }

    pub const fn public(id: &'static str, how: &'static str) -> Self {
        Self { id, action: None, resource: how }
    }
}

inventory::collect!(OperationDoc);
