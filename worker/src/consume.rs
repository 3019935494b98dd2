//! A RabbitMQ consumer that survives the broker going away: it consumes
//! again once the broker is back, and hands each delivery to a task.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long opening a channel and starting to consume may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Consumes `queue` with `prefetch` unacknowledged deliveries at most, until
/// shutdown; then waits for the tasks in flight.
pub async fn consume<F, Fut>(
    services: Services,
    queue: &'static str,
    prefetch: u16,
    expires_secs: u64,
    shutdown: CancellationToken,
    handle: F,
) where
    F: Fn(Delivery) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let name = services.broker.name(queue);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let setup = async {
            let channel = services.broker.channel().await.map_err(|e| e.explain())?;
            pipewright_core::messaging::declare(&channel, &services.broker, expires_secs)
                .await
                .map_err(|e| e.to_string())?;
            channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
            let consumer = channel
                .basic_consume(name.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((channel, consumer))
        };
        // Shutdown does not wait on a broker that is coming back, and a
        // broker that never answers is asked again.
        let consumer = tokio::select! {
            () = shutdown.cancelled() => break,
            found = tokio::time::timeout(SETUP_TIMEOUT, setup) => {
                found.unwrap_or_else(|_| Err("the broker did not answer in time".to_owned()))
            }
        };
        let (channel, mut consumer) = match consumer {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "cannot consume now; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => None,
                next = consumer.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    let handle = handle.clone();
                    tracker.spawn(handle(delivery));
                }
                Some(Err(e)) => {
                    tracing::warn!(queue = %name, error = %e, "the consumer failed; consuming again");
                    break;
                }
                None => break,
            }
        }
        if shutdown.is_cancelled() {
            tracker.close();
            tracker.wait().await;
            // A channel of a connection the broker dropped may never be
            // answered; shutdown does not wait on it for long.
            let _ = tokio::time::timeout(Duration::from_secs(2), channel.close(200, "shutdown".into())).await;
            return;
        }
    }
    tracker.close();
    tracker.wait().await;
}
