//! Pipewright's HTTP API: routing, the error type, request ids and metrics,
//! the ops endpoints and the OpenAPI document.

pub mod error;
pub mod fallback;
pub mod ops;
pub mod server;
pub mod telemetry;

pub use server::{RunningApi, openapi, start};

use utoipa::OpenApi;

/// The document's fixed parts; operations are collected from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pipewright",
        description = "A self-hosted continuous-delivery service modelled on AWS CodePipeline. \
            Every operation is under /v1; errors are `{code, message, requestId}`.",
    ),
    components(schemas(error::ErrorBody, error::ErrorCode)),
    tags(
        (name = "ops", description = "Liveness, readiness and metrics, for operators and orchestrators"),
    )
)]
pub struct ApiDoc;
