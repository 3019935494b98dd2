//! Pipewright's worker role. It connects to the three services like the api
//! (so a missing one is reported at start-up) and stays up until shutdown;
//! the orchestrator and the action runners that consume RabbitMQ join it with
//! the executions work.

use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

/// Runs the worker until `shutdown` is cancelled, then returns once in-flight
/// work has finished.
pub async fn run(services: Services, shutdown: CancellationToken) {
    tracing::info!(prefix = %services.broker.name("*"), "worker started");
    shutdown.cancelled().await;
    tracing::info!("worker stopped");
}
