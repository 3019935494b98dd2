//! The orchestrator: consumes "advance(execution)" messages, takes the
//! execution's next steps in one transaction, and publishes what they
//! queued. A message redelivered after a crash does no harm: the state
//! machine decides from what is committed.

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use pipewright_core::messaging::{Message, ORCHESTRATE, Publisher};
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

use crate::{Settings, Tried};

pub async fn run(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
    let handler_services = services.clone();
    let handler_shutdown = shutdown.clone();
    let expires = settings.queue_expires_secs;
    crate::consume::consume(services, ORCHESTRATE, 32, expires, shutdown, move |delivery| {
        let services = handler_services.clone();
        let publisher = publisher.clone();
        let shutdown = handler_shutdown.clone();
        let settings = settings.clone();
        async move { handle(services, publisher, settings, shutdown, delivery).await }
    })
    .await;
}

async fn handle(
    services: Services,
    publisher: Publisher,
    settings: Settings,
    shutdown: CancellationToken,
    delivery: Delivery,
) {
    let message: Result<Message, _> = serde_json::from_slice(&delivery.data);
    let (advanced, what) = match message {
        Ok(Message::Advance { execution_id }) => (
            crate::while_database_down(&services, &shutdown, "advancing an execution", || {
                advance_now(&services, &publisher, execution_id)
            })
            .await,
            execution_id.to_string(),
        ),
        Ok(Message::Change { pipeline_id, action_name, change, before, webhook }) => (
            crate::while_database_down(&services, &shutdown, "deciding a delivered change", || {
                let delivery = crate::changes::Delivered {
                    pipeline_id,
                    action_name: &action_name,
                    change: (*change).clone(),
                    before: before.as_deref(),
                    webhook: &webhook,
                };
                crate::changes::delivered(&services, &publisher, &settings, delivery)
            })
            .await,
            format!("a change of {pipeline_id}"),
        ),
        _ => {
            tracing::error!(payload = %String::from_utf8_lossy(&delivery.data), "not an orchestration message; dropped");
            let _ = delivery.acker.reject(lapin::options::BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    match advanced {
        Tried::Done(()) => {
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
        Tried::ShutDown => {
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
        }
        Tried::Failed(e) => {
            tracing::warn!(%what, error = %e, "an orchestration message could not be handled; it will be retried");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
        }
    }
}

/// Takes the execution's next steps, publishes what they queued, and tells
/// the pipeline's live listeners.
pub async fn advance_now(services: &Services, publisher: &Publisher, execution_id: uuid::Uuid) -> Result<(), String> {
    let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
    let advanced =
        pipewright_core::executions::store::advance(&mut conn, execution_id).await.map_err(|e| e.to_string())?;
    drop(conn);
    announce(services, publisher, advanced, execution_id).await;
    Ok(())
}

/// After a step's commit: publishes what it queued, and tells the
/// pipeline's live listeners.
pub async fn announce(
    services: &Services,
    publisher: &Publisher,
    advanced: pipewright_core::executions::store::Advanced,
    execution_id: uuid::Uuid,
) {
    advanced.observed.record();
    crate::publish_now(publisher, advanced.outbox).await;
    // Job workers waiting in PollForJobs for these types hear at once.
    for channel in &advanced.jobs {
        services.cache.publish(&services.cache.key(channel), "queued").await;
    }
    if let Some(pipeline) = advanced.pipeline_id {
        let channel = services.cache.pipeline_channel(&pipeline);
        services.cache.publish(&channel, &execution_id.to_string()).await;
    }
}
