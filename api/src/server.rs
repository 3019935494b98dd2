//! Building the actix application and running the HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpResponse, HttpServer, middleware, web};
use pipewright_core::auth::tokens::TokenKeys;
use pipewright_core::config::{Config, Signup};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::ApiError;
use pipewright_core::services::Services;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::rejections;
use crate::fallback::{self, RouteTable};
use crate::telemetry::{self, Metrics};
use crate::{ApiDoc, ops};

/// What handlers share.
pub struct AppState {
    pub services: Services,
    pub keys: TokenKeys,
    pub region: String,
    pub signup: Signup,
    pub operator_token: Option<SecretString>,
    pub access_token_secs: i64,
    pub session_secs: i64,
    pub signin_window_secs: i64,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Password hashes computed at once (each takes 19 MiB).
    pub password_slots: tokio::sync::Semaphore,
    /// Signs the audit log's digests.
    pub audit_keys: pipewright_core::audit::digest::AuditKeys,
    /// Signed-out sessions, followed from Redis's announcements.
    pub revocations: crate::revocations::Revocations,
    /// Both rings, to reload them (VerifyEvents does, to know every key).
    pub shared_keys: pipewright_core::keyring::SharedKeys,
    /// The data folder: artifacts and action logs.
    pub data_dir: std::path::PathBuf,
    /// Where artifacts are kept.
    pub artifacts: pipewright_core::artifacts::Store,
    /// Days artifacts and logs are kept after their last use.
    pub retention_days: u32,
    /// What Git sources may name.
    pub sources: pipewright_core::pipelines::sources::SourcePolicy,
    /// Seals the accounts' secrets.
    pub secrets: pipewright_core::secrets::Cipher,
    /// Publishes the messages of committed changes.
    pub publisher: pipewright_core::messaging::Publisher,
    /// Where the service is reached from outside (webhooks' URLs).
    pub public_url: String,
    /// How long a dispatched job waits for its AcknowledgeJob.
    pub job_ack_secs: u64,
    /// Cancelled when the server starts to stop: live streams end then, so
    /// that a graceful stop does not wait for their clients to leave.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl AppState {
    fn revoked_key(&self, session: Uuid) -> String {
        self.services.cache.key(&format!("revoked:{session}"))
    }

    /// Whether the session was signed out (every api process sees it: Redis,
    /// through the announcements this process follows, else asked).
    pub async fn is_revoked(&self, session: Uuid) -> Result<bool, ApiError> {
        // Known here (signed out by this process, or announced): refused
        // whatever Redis says now (it may have restarted and lost the key).
        if self.revocations.contains(session) {
            return Ok(true);
        }
        if self.revocations.live() {
            return Ok(false);
        }
        let found: bool = self
            .services
            .cache
            .query(redis::cmd("EXISTS").arg(self.revoked_key(session)))
            .await
            .map_err(|e| ApiError::from(self.services.cache.unavailable(e)))?;
        Ok(found)
    }

    /// Refuses the session's tokens from now on: for as long as any token of
    /// it could live (its end, plus one access token's lifetime).
    pub async fn revoke_session(
        &self,
        session: Uuid,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        let seconds = (expires_at - chrono::Utc::now()).num_seconds() + self.access_token_secs + 60;
        self.revoke(session, seconds).await
    }

    /// Marks the session signed out for `seconds`.
    pub async fn revoke(&self, session: Uuid, seconds: i64) -> Result<(), ApiError> {
        let seconds = seconds.max(1);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.revoked_key(session))
            .arg(1)
            .arg("EX")
            .arg(seconds)
            .ignore()
            .cmd("PUBLISH")
            .arg(crate::revocations::Revocations::channel(&self.services.cache))
            .arg(format!("{session} {seconds}"))
            .ignore();
        self.services
            .cache
            .query_pipe::<()>(&pipe)
            .await
            .map_err(|e| ApiError::from(self.services.cache.unavailable(e)))?;
        self.revocations.insert(session, u64::try_from(seconds).unwrap_or(1));
        Ok(())
    }
}

/// Registers every operation; the OpenAPI document is collected from here.
fn routes(cfg: &mut ServiceConfig) {
    cfg.service(ops::healthz).service(ops::readyz).service(ops::metrics);
    crate::handlers::routes(cfg);
}

/// The OpenAPI document, as generated from the code.
pub fn openapi() -> OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(routes).split_for_parts().1;
        document_authorization(&mut doc);
        document_common_errors(&mut doc);
        describe_responses(&mut doc);
        document_retry_after(&mut doc);
        document_examples(&mut doc);
        doc
    })
    .clone()
}

/// Adds what every `/v1` operation may answer, whatever it does: 400 (a
/// NUL character is refused at the edge) and 503 (no answer without its
/// audit record; a service behind the API down).
fn document_common_errors(doc: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build()
    };
    for (path, item) in &mut doc.paths.paths {
        if !path.starts_with("/v1/") {
            continue;
        }
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            // Anonymous operations say so with an empty requirement. One
            // that takes no credentials at all gets none (`security: []`):
            // generators then give it a client without a token.
            let empty = |r: &utoipa::openapi::security::SecurityRequirement| {
                serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({}))
            };
            let anonymous = operation.security.as_ref().is_some_and(|all| all.iter().any(empty));
            if operation.security.as_ref().is_some_and(|all| all.iter().all(empty)) {
                operation.security = Some(Vec::new());
            }
            let responses = &mut operation.responses.responses;
            if !anonymous {
                responses.entry("401".to_owned()).or_insert_with(|| {
                    error(
                        "UnrecognizedClientException, MissingAuthenticationTokenException or ExpiredTokenException: \
                         no valid credentials",
                    )
                    .into()
                });
                responses.entry("403".to_owned()).or_insert_with(|| {
                    error("AccessDeniedException: the caller's policies do not allow the action on the resource").into()
                });
            }
            responses
                .entry("500".to_owned())
                .or_insert_with(|| error("InternalFailure: the request id finds it in the service's logs").into());
            responses.entry("400".to_owned()).or_insert_with(|| {
                error("ValidationException: the request does not fit the operation (or holds a NUL character)").into()
            });
            responses.entry("503".to_owned()).or_insert_with(|| {
                error(
                    "ServiceUnavailableException: a service behind the API is down, or the audit log could not \
                     record the call in time; retry after the Retry-After header's seconds",
                )
                .into()
            });
        }
    }
}

/// A request body's example for each of the main operations, by operation
/// id: what the README's Quick start and the user story send. CreatePipeline's
/// is the Quick start's own pipeline file.
const EXAMPLES: &[(&str, &str)] = &[
    ("CreateAccount", r#"{"alias": "team-blue", "rootPassword": "correct horse battery"}"#),
    ("SignIn", r#"{"account": "team-blue", "userName": "root", "password": "correct horse battery"}"#),
    ("CreateUser", r#"{"userName": "reader"}"#),
    ("CreateLoginProfile", r#"{"password": "correct horse battery"}"#),
    ("AttachUserPolicy", r#"{"policyArn": "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"}"#),
    (
        "PutUserPolicy",
        r#"{"policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "sts:AssumeRole", "Resource": "arn:pw:iam::111122223333:role/deployer"}]}}"#,
    ),
    (
        "CreateRole",
        r#"{"roleName": "deployer", "description": "releases from account 444455556666",
            "assumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"PW": "arn:pw:iam::444455556666:root"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-42"}}}]}}"#,
    ),
    (
        "AssumeRole",
        r#"{"roleArn": "arn:pw:iam::111122223333:role/deployer", "roleSessionName": "release", "externalId": "ext-42"}"#,
    ),
    ("CreatePipeline", include_str!("../../examples/upload-build-approve-deploy.json")),
    ("StartPipelineExecution", r#"{"variables": [{"name": "environment", "value": "production"}]}"#),
    (
        "PutApprovalResult",
        r#"{"token": "3f2b8c1e-6d4a-4f0b-9a8e-2c7d5e1f0a9b", "result": {"status": "Approved", "summary": "looks good"}}"#,
    ),
];

/// Puts [`EXAMPLES`] on their operations' JSON request bodies.
fn document_examples(doc: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    let examples: std::collections::HashMap<&str, &str> = EXAMPLES.iter().copied().collect();
    for item in doc.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            let Some(text) = operation.operation_id.as_deref().and_then(|id| examples.get(id)) else { continue };
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else { continue };
            // (Each example is JSON: a unit test checks that each lands on its body.)
            if let Some(RefOr::T(content)) = body.content.get_mut("application/json")
                && let Ok(example) = serde_json::from_str(text)
            {
                content.example = Some(example);
            }
        }
    }
}

/// Declares `Retry-After` on every 429 and 503 response: the seconds to
/// wait before trying again.
fn document_retry_after(doc: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    for item in doc.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && (status == "429" || status == "503")
                {
                    response.headers.entry("Retry-After".to_owned()).or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
                            .description(Some("Seconds to wait before trying again"))
                            .build()
                            .into()
                    });
                }
            }
        }
    }
}

/// Gives every response that has none a description (OpenAPI 3.1 requires
/// one; client generators refuse a document without): what its status
/// means for these operations, with the error codes it carries.
fn describe_responses(doc: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    let meaning = |status: &str| match status {
        "200" => "The operation's answer",
        "201" => "Created: the new resource",
        "202" => "Accepted: the work goes on after the answer",
        "204" => "Done; no body",
        "302" | "303" | "307" | "308" => "Redirect: the Location header names where",
        "400" => {
            "ValidationException (or the operation's own 4xx code): the request does not fit the operation; the message says what to fix"
        }
        "401" => {
            "UnrecognizedClientException, MissingAuthenticationTokenException or ExpiredTokenException: no valid credentials"
        }
        "403" => "AccessDeniedException: the caller's policies do not allow the action on the resource",
        "404" => "The resource (or an entity it names) does not exist, or the route is unknown",
        "405" => "The route exists but not for this method; the Allow header names those it takes",
        "409" => "A conflict with the resource's state (it exists, it changed, or it is in use)",
        "413" => "The request body is too large",
        "415" => "The body is not of a media type the operation takes",
        "429" => "ThrottlingException: too many attempts; retry after the Retry-After header's seconds",
        "500" => "InternalFailure: the request id finds it in the service's logs",
        "503" => "ServiceUnavailableException: a service behind the API is down; retry after Retry-After",
        _ => "See the operation's description",
    };
    for item in doc.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.trim().is_empty()
                {
                    response.description = meaning(status).to_owned();
                }
            }
        }
    }
}

/// Adds each operation's IAM action and resource to the document, as the
/// extension `x-pw-authorization` and in its description.
fn document_authorization(doc: &mut OpenApi) {
    let operations = crate::handlers::operations();
    for item in doc.paths.paths.values_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            let Some(id) = operation.operation_id.as_deref() else { continue };
            let Some(info) = operations.iter().find(|o| o.id == id) else { continue };
            let value = serde_json::json!({"action": info.action, "resource": info.resource});
            operation.extensions.get_or_insert_with(Default::default).insert("x-pw-authorization".to_owned(), value);
            let line = match info.action {
                Some(action) => format!("IAM action `{action}` on `{}`.", info.resource),
                None => format!("No credentials: {}.", info.resource),
            };
            operation.description = Some(match operation.description.take() {
                Some(description) if !description.is_empty() => format!("{description}\n\n{line}"),
                _ => line,
            });
        }
    }
}

/// The application, with its state, middleware and fallbacks.
pub fn app(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    table: web::Data<RouteTable>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let (app, _) = App::new().into_utoipa_app().configure(routes).split_for_parts();
    let services = web::Data::new(state.services.clone());
    app.app_data(state)
        .app_data(services)
        .app_data(metrics)
        .app_data(table)
        .app_data(rejections::json_config())
        .app_data(rejections::path_config())
        .app_data(rejections::query_config())
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi()))
        .route(
            "/docs",
            web::get()
                .to(|| async { HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish() }),
        )
        .configure(crate::console::routes)
        .default_service(web::to(fallback::unmatched))
        // Inside the audit: only the answer the caller gets is recorded.
        .wrap(RetryLostConnection)
        // Inside the audit: a call to the AWS endpoint is recorded as the
        // operation it became, with the answer its caller gets.
        .wrap(middleware::from_fn(crate::aws::gateway))
        // The audit middleware reads response bodies before they are compressed.
        .wrap(middleware::from_fn(telemetry::observe))
        .wrap(middleware::Compress::default())
}

/// Serves a read (GET, HEAD: no body, no effect) once more when it failed
/// on a pooled PostgreSQL connection that turned out to be lost — the
/// server restarted since the connection was last used, faster than the
/// pool noticed — so that the first call after a restart succeeds.
pub struct RetryLostConnection;

impl<S, B> actix_web::dev::Transform<S, ServiceRequest> for RetryLostConnection
where
    S: actix_web::dev::Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RetryLostConnectionService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(RetryLostConnectionService { service: std::rc::Rc::new(service) }))
    }
}

/// [`RetryLostConnection`]'s service.
pub struct RetryLostConnectionService<S> {
    service: std::rc::Rc<S>,
}

impl<S, B> actix_web::dev::Service<ServiceRequest> for RetryLostConnectionService<S>
where
    S: actix_web::dev::Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<ServiceResponse<B>, Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let read = matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD);
        Box::pin(async move {
            let response = service.call(req).await?;
            if !read || response.response().extensions().get::<crate::error::LostConnection>().is_none() {
                return Ok(response);
            }
            tracing::info!("a PostgreSQL connection was lost (a restart?); the read is served once more");
            let (request, _) = response.into_parts();
            // The pool's other idle connections are as old: dropped, so that
            // the retry opens a new one rather than meeting another lost one.
            if let Some(state) = request.app_data::<web::Data<AppState>>() {
                state.services.db.forget_idle();
            }
            let mut again = ServiceRequest::from_parts(request, actix_web::dev::Payload::None);
            // The router consumed the path when it matched it: matched again
            // from where it had begun, the path finds its operation, not the
            // 405 of the default service.
            again.match_info_mut().reset();
            service.call(again).await
        })
    }
}

/// A running API server.
pub struct RunningApi {
    /// Where it listens (the port is the real one when 0 was asked).
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: Server,
    /// The audit writer: wait for it after the server stopped, so that no
    /// event is lost.
    pub audit: crate::audit::AuditTask,
    /// Cancel before stopping the server: it ends the live event streams
    /// (their clients reconnect, to another api process).
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Reloads the shared keys every few seconds, so that a rotation made by
/// any process (or `pipewright rotate-key`) is learnt before its key signs.
fn start_key_refresh(db: pipewright_core::db::Db, keys: pipewright_core::keyring::SharedKeys) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(pipewright_core::keyring::REFRESH).await;
            let reloaded = match db.conn().await {
                Ok(mut conn) => keys.reload(&mut conn).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = reloaded {
                tracing::warn!(error = %e, "the shared keys could not be reloaded now; will retry");
            }
        }
    });
}

/// Binds `config.listen` and starts serving. The server does not handle
/// signals itself: the caller stops it through `handle`.
pub fn start(
    config: &Config,
    services: Services,
    keys: pipewright_core::keyring::SharedKeys,
) -> std::io::Result<RunningApi> {
    let broker = services.broker.clone();
    let listener = TcpListener::bind(&config.listen).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {} (PIPEWRIGHT_LISTEN): {e}", config.listen))
    })?;
    let addr = listener.local_addr()?;
    let metrics = web::Data::new(Metrics::new().map_err(std::io::Error::other)?);
    let state = web::Data::new(AppState {
        services,
        keys: keys.tokens.clone(),
        region: config.region.clone(),
        signup: config.signup,
        operator_token: config.operator_token.clone(),
        access_token_secs: config.access_token_secs,
        session_secs: config.session_secs,
        signin_window_secs: config.signin_window_secs.max(1),
        trusted_proxies: config.proxies().unwrap_or_default(),
        audit_keys: keys.audit.clone(),
        shared_keys: keys.clone(),
        revocations: crate::revocations::Revocations::default(),
        data_dir: config.data_dir.clone(),
        artifacts: pipewright_core::artifacts::open(config).map_err(std::io::Error::other)?,
        retention_days: config.artifact_retention_days,
        sources: pipewright_core::pipelines::sources::SourcePolicy::from_config(config),
        secrets: pipewright_core::secrets::Cipher::from_config(config).map_err(std::io::Error::other)?,
        publisher: pipewright_core::messaging::Publisher::new(broker, config.amqp_queue_expires_secs),
        // (The port bound, when 0 was asked and no public URL was set.)
        public_url: if config.public_url.trim().is_empty() {
            pipewright_core::config::Config { listen: addr.to_string(), ..config.clone() }.public_url()
        } else {
            config.public_url()
        },
        job_ack_secs: config.job_ack_secs.max(1),
        password_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get() * 2)),
        stopping: tokio_util::sync::CancellationToken::new(),
    });
    let stopping = state.stopping.clone();
    let table = {
        let mut table = RouteTable::from_openapi(&openapi());
        table.add("/openapi.json", vec!["GET"]);
        table.add("/docs", vec!["GET"]);
        for path in crate::console::paths() {
            table.add(path, vec!["GET"]);
        }
        web::Data::from(Arc::new(table))
    };
    let (writer, audit) = crate::audit::AuditWriter::start(state.services.db.clone());
    crate::audit::start_sealer(state.services.db.clone(), keys.audit.clone(), config.audit_digest_secs);
    start_key_refresh(state.services.db.clone(), keys);
    state.revocations.follow(state.services.cache.clone());
    // What this process fetched from an S3 store for downloads, kept a day.
    let data_dir = config.data_dir.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let data_dir = data_dir.clone();
            let _ = tokio::task::spawn_blocking(move || {
                pipewright_core::artifacts::sweep_cache(&data_dir, std::time::SystemTime::now())
            })
            .await;
        }
    });
    let writer = web::Data::new(writer);
    let names = web::Data::new(crate::catalogue::Catalogue::from_openapi(&openapi()));
    let mut server = HttpServer::new(move || {
        app(state.clone(), metrics.clone(), table.clone()).app_data(writer.clone()).app_data(names.clone())
    });
    if config.http_workers > 0 {
        server = server.workers(config.http_workers);
    }
    let server = server
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_secs(30))
        .run();
    Ok(RunningApi { addr, handle: server.handle(), server, audit, stopping })
}

/// A worker's HTTP port: `/healthz`, `/readyz` and `/metrics` only, for
/// its probes and for Prometheus.
pub fn start_health(config: &Config, services: Services) -> std::io::Result<RunningHealth> {
    let listener = TcpListener::bind(&config.listen).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {} (PIPEWRIGHT_LISTEN): {e}", config.listen))
    })?;
    let addr = listener.local_addr()?;
    let services = web::Data::new(services);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(services.clone())
            .service(ops::healthz)
            .service(ops::readyz)
            .service(ops::metrics)
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(serde_json::json!({
                    "code": "UnknownOperationException",
                    "message": "a worker serves /healthz, /readyz and /metrics only; the API is on an api process",
                }))
            }))
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    Ok(RunningHealth { addr, handle: server.handle(), server })
}

/// A worker's running health port.
pub struct RunningHealth {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A read that failed on a lost connection is routed again to its own
    /// operation (the pattern its audit event is named by), with its path
    /// parameters, and answered once.
    #[actix_web::test]
    async fn a_read_on_a_lost_connection_is_served_once_more_by_its_operation() {
        let calls = web::Data::new(AtomicUsize::new(0));
        let app = actix_web::test::init_service(
            App::new()
                .app_data(calls.clone())
                .route(
                    "/v1/pipelines/{name}",
                    web::get().to(|req: actix_web::HttpRequest, calls: web::Data<AtomicUsize>| async move {
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            return Err(ApiError {
                                lost_connection: true,
                                ..ApiError::new(ErrorCode::ServiceUnavailableException, "lost")
                            });
                        }
                        // What the audit names the event by, and records.
                        let pattern = req.match_pattern().unwrap_or_default();
                        Ok(HttpResponse::Ok().body(format!("{pattern} {}", &req.match_info()["name"])))
                    }),
                )
                .default_service(web::to(|| async { HttpResponse::MethodNotAllowed().finish() }))
                .wrap(RetryLostConnection),
        )
        .await;
        let request = actix_web::test::TestRequest::get().uri("/v1/pipelines/web").to_request();
        let response = actix_web::test::call_service(&app, request).await;
        assert_eq!(response.status(), 200);
        assert_eq!(actix_web::test::read_body(response).await, "/v1/pipelines/{name} web");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Each example is on its operation: an id misspelt in [`EXAMPLES`], or
    /// an operation whose body is no longer JSON, would drop it unseen.
    #[test]
    fn every_example_is_on_its_operations_request_body() {
        use utoipa::openapi::RefOr;
        let doc = openapi();
        let mut found = Vec::new();
        for item in doc.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch].into_iter().flatten() {
                if let Some(RefOr::T(body)) = &operation.request_body
                    && let Some(RefOr::T(content)) = body.content.get("application/json")
                    && content.example.is_some()
                {
                    found.extend(operation.operation_id.clone());
                }
            }
        }
        found.sort();
        let mut expected: Vec<String> = EXAMPLES.iter().map(|(id, _)| (*id).to_owned()).collect();
        expected.sort();
        assert_eq!(found, expected);
    }
}
