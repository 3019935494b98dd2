//! What every request goes through first: a request id (in the response's
//! `x-request-id`, in every log line of the request, in error bodies), a
//! tracing span, an access log line, and the Prometheus counters.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing::Instrument;
use uuid::Uuid;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, when called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request's id, readable by handlers and extractors.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The middleware.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let mut req = req;
    // `/v1`, and the AWS endpoint (whose calls become `/v1` calls) are audited.
    let aws = crate::aws::is_aws_path(&path);
    let audited = path.starts_with("/v1/") || aws;
    let request_body = if audited { crate::audit::capture_request_body(&mut req).await } else { None };

    // A NUL character is refused at the edge: no field takes one, and
    // PostgreSQL stores none (its event is recorded escaped).
    let holds_nul = audited
        && (req.uri().path_and_query().is_some_and(|pq| pq.as_str().to_ascii_lowercase().contains("%00"))
            || request_body.as_ref().is_some_and(holds_nul));
    let refused = if holds_nul {
        Some(crate::error::ApiError::validation(
            "the request holds a NUL character (\\u0000 in JSON, %00 in a URL), which no field takes: remove it",
        ))
    } else if path.starts_with("/v1/") {
        unknown_query_parameter(&req)
    } else {
        None
    };
    // Handlers' and extractors' errors are already responses here, made inside
    // this scope; an error that still reaches us is rendered by actix itself.
    let mut response = if let Some(refused) = refused {
        REQUEST_ID
            .scope(id.clone(), async move {
                let answer = if aws {
                    crate::aws::error_response(crate::aws::Protocol::of(req.headers()), &refused)
                } else {
                    actix_web::ResponseError::error_response(&refused)
                };
                req.into_response(answer)
            })
            .await
            .map_into_boxed_body()
    } else {
        REQUEST_ID
            .scope(id.clone(), next.call(req))
            .instrument(span.clone())
            .await
            .inspect_err(|e| span.in_scope(|| tracing::error!(error = %e, "request failed outside a handler")))?
            .map_into_boxed_body()
    };

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Some(metrics) = metrics {
        metrics.observe(method.as_str(), &route, status, elapsed.as_secs_f64());
    }
    if audited
        && let (Some(writer), Some(names)) = (
            response.request().app_data::<web::Data<crate::audit::AuditWriter>>().cloned(),
            response.request().app_data::<web::Data<crate::catalogue::Catalogue>>().cloned(),
        )
    {
        let response_body;
        (response, response_body) = crate::audit::capture_response_body(response).await;
        let bodies = crate::audit::Bodies { request: request_body, response: response_body };
        let mut events = crate::audit::events_of(&response, &id, &names, status, &bodies);
        // A mutation's change and its event commit together, or neither does.
        let tx = response.request().extensions_mut().remove::<crate::auth::RequestTx>();
        if let Some(tx) = tx {
            let success = response.status().is_success();
            match crate::audit::finish_transaction(tx, success, &events).await {
                Ok(true) => {
                    events.clear();
                    let live = response.request().extensions_mut().remove::<crate::auth::PendingLiveUpdates>();
                    if let (Some(live), Some(state)) =
                        (live, response.request().app_data::<web::Data<crate::server::AppState>>().cloned())
                    {
                        tokio::spawn(async move {
                            for channel in live.0 {
                                state.services.cache.publish(&channel, "transition").await;
                            }
                        });
                    }
                    let pending = response.request().extensions_mut().remove::<crate::auth::PendingMessages>();
                    if let (Some(pending), Some(state)) =
                        (pending, response.request().app_data::<web::Data<crate::server::AppState>>().cloned())
                    {
                        tokio::spawn(async move {
                            if let Ok(mut conn) = state.services.db.conn().await
                                && let Err(e) = pipewright_core::messaging::publish_committed(
                                    &mut conn,
                                    &state.publisher,
                                    pending.0,
                                )
                                .await
                            {
                                tracing::warn!(error = %e, "messages left to the relay");
                            }
                        });
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    span.in_scope(
                        || tracing::error!(error = %e, "the audit log could not be written; the change is undone"),
                    );
                    response = unavailable(
                        response,
                        aws,
                        &id,
                        "the audit log could not be written, so the change was not made; retry shortly",
                    )
                    .await;
                    let bodies = crate::audit::Bodies { response: None, ..bodies };
                    events = crate::audit::events_of(&response, &id, &names, 503, &bodies);
                }
            }
        }
        // No answer without its record: it leaves once its events are
        // durable, or as a 503 (whose event the writer keeps).
        if writer.record(events).await.is_err() {
            span.in_scope(|| tracing::error!("the audit log could not take the call in time; it is answered 503"));
            response =
                unavailable(response, aws, &id, "the audit log could not record the call in time; retry shortly").await;
        }
    }
    span.in_scope(|| {
        tracing::info!(status, route = %route, latency_ms = elapsed.as_secs_f64() * 1000.0, "request served");
    });
    Ok(response)
}

/// A query parameter the operation does not take (a misspelt or miscased
/// filter would otherwise be ignored, and a search answer everything):
/// refused at the edge, naming it and what the operation takes.
fn unknown_query_parameter(req: &ServiceRequest) -> Option<crate::error::ApiError> {
    if req.query_string().is_empty() {
        return None;
    }
    let catalogue = req.app_data::<web::Data<crate::catalogue::Catalogue>>()?;
    let pattern = req.match_pattern()?;
    let entry = catalogue.get(catalogue.name_of(req.method().as_str(), &pattern)?)?;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string()).ok()?;
    let unknown = pairs.iter().map(|(name, _)| name).find(|name| !entry.query.contains(name))?;
    let takes = if entry.query.is_empty() { "no query parameter".to_owned() } else { entry.query.join(", ") };
    Some(crate::error::ApiError::validation(format!(
        "{} takes no query parameter {unknown:?} (it takes: {takes})",
        entry.name
    )))
}

/// Whether a JSON value holds a NUL character, in a string or a key.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// `response` replaced by a 503 `ServiceUnavailableException` saying `why`.
async fn unavailable(response: ServiceResponse, aws: bool, id: &str, why: &'static str) -> ServiceResponse {
    let failed = crate::error::ApiError {
        retry_after: Some(5),
        ..crate::error::ApiError::new(crate::error::ErrorCode::ServiceUnavailableException, why)
    };
    let request = response.request().clone();
    let body = REQUEST_ID
        .scope(id.to_owned(), async {
            match request.extensions().get::<crate::aws::Protocol>().copied() {
                Some(protocol) if aws => crate::aws::error_response(protocol, &failed),
                _ => actix_web::ResponseError::error_response(&failed),
            }
        })
        .await;
    let mut response = ServiceResponse::new(request, body).map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Request counts and latencies by route and status, in a registry of our own.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = ["method", "route", "status"];
        let requests =
            IntCounterVec::new(Opts::new("pipewright_http_requests_total", "HTTP requests served"), &labels)?;
        let latency = HistogramVec::new(
            HistogramOpts::new("pipewright_http_request_duration_seconds", "Time to serve an HTTP request")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &labels,
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { registry, requests, latency })
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// The registry of the HTTP metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
