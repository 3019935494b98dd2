//! Operations endpoints, outside `/v1` and without authentication: liveness,
//! readiness of each dependency, and metrics.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use pipewright_core::deps::Health;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::telemetry::Metrics;
use pipewright_core::services::Services;

/// The process is up.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Each dependency, `ok` or `down`; when any is down, `errors` says why.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ok")]
    pub postgres: &'static str,
    #[schema(example = "ok")]
    pub rabbitmq: &'static str,
    #[schema(example = "ok")]
    pub redis: &'static str,
    /// Why each dependency that is down is down.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<&'static str, String>,
}

/// Liveness: answers while the process runs, whatever its dependencies.
#[utoipa::path(tag = "ops", responses((status = 200, body = Liveness)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Liveness> {
    web::Json(Liveness { status: "ok" })
}

/// Readiness: PostgreSQL, RabbitMQ and Redis each answered within 2 s.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "all three dependencies answer", body = Readiness),
        (status = 503, description = "at least one dependency is down", body = Readiness),
    )
)]
#[get("/readyz")]
pub async fn readyz(services: web::Data<Services>) -> HttpResponse {
    let mut status = StatusCode::OK;
    let mut errors = BTreeMap::new();
    let mut word = |health: &Health, key| match health {
        Health::Ok => "ok",
        Health::Down(reason) => {
            status = StatusCode::SERVICE_UNAVAILABLE;
            errors.insert(key, reason.clone());
            "down"
        }
    };
    let [(_, postgres), (_, rabbitmq), (_, redis)] = services.readiness().await;
    let body = Readiness {
        postgres: word(&postgres, "postgres"),
        rabbitmq: word(&rabbitmq, "rabbitmq"),
        redis: word(&redis, "redis"),
        errors,
    };
    if status != StatusCode::OK {
        tracing::warn!(errors = ?body.errors, "not ready");
    }
    HttpResponse::build(status).json(body)
}

/// Prometheus metrics: HTTP requests by route and status (on an api), the
/// audit log's writes and waits, executions, action runs, stage
/// transitions, queue and outbox backlogs, runner slots, the process and
/// the build.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 500, body = ErrorBody),
    )
)]
#[get("/metrics")]
pub async fn metrics(
    http: Option<web::Data<Metrics>>,
    services: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let own = pipewright_core::metrics::get();
    own.sample(&services).await;
    let text = own.render(http.as_ref().map(|m| m.registry())).map_err(|e| {
        tracing::error!(error = %e, "metrics could not be rendered");
        ApiError::internal()
    })?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
