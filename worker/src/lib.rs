//! Pipewright's worker role: the outbox relay, the orchestrator (advances
//! executions), the runners (run actions), and the lease sweeper (takes
//! back actions whose runner died). Each consumes RabbitMQ with manual acks
//! and a bounded prefetch; any number of workers may run at once.

use std::path::PathBuf;
use std::time::Duration;

use pipewright_core::messaging::Publisher;
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

mod consume;
mod orchestrator;
pub mod providers;
mod runner;

/// What the worker takes from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub lease_secs: u64,
    pub queue_expires_secs: u64,
    /// Actions one worker runs at once.
    pub concurrency: u16,
    pub git_poll_secs: u64,
}

impl Settings {
    pub fn from_config(config: &pipewright_core::config::Config) -> Self {
        Self {
            data_dir: config.data_dir.clone(),
            lease_secs: config.action_lease_secs.max(2),
            queue_expires_secs: config.amqp_queue_expires_secs,
            concurrency: 8,
            git_poll_secs: config.git_poll_secs.max(1),
        }
    }

    pub fn artifacts(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }

    pub fn logs(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// Runs the worker until `shutdown` is cancelled, then returns once in-flight
/// work has finished (or was handed back to the broker).
pub async fn run(services: Services, settings: Settings, shutdown: CancellationToken) {
    tracing::info!(prefix = %services.broker.name("*"), "worker started");
    let publisher = Publisher::new(services.broker.clone(), settings.queue_expires_secs);
    let tasks = vec![
        tokio::spawn(relay(services.clone(), publisher.clone(), shutdown.clone())),
        tokio::spawn(orchestrator::run(services.clone(), publisher.clone(), settings.clone(), shutdown.clone())),
        tokio::spawn(runner::run(services.clone(), publisher.clone(), settings.clone(), shutdown.clone())),
        tokio::spawn(runner::sweep(services.clone(), publisher.clone(), settings.clone(), shutdown.clone())),
        tokio::spawn(poll(services.clone(), publisher.clone(), settings.clone(), shutdown.clone())),
    ];
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("worker stopped");
}

/// Publishes what the outbox holds: rows a process committed but did not
/// publish (it died, or the broker was away).
async fn relay(services: Services, publisher: Publisher, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = match services.db.conn().await {
            Ok(mut conn) => {
                pipewright_core::messaging::relay(&mut conn, &publisher, 500).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "the outbox could not be relayed now; will retry");
        }
    }
}

/// Publishes the outbox rows a committed transaction wrote, at once; the
/// relay catches them later if this fails.
pub async fn publish_now(services: &Services, publisher: &Publisher, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    let result = match services.db.conn().await {
        Ok(mut conn) => {
            pipewright_core::messaging::publish_committed(&mut conn, publisher, ids).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "messages left to the relay");
    }
}

/// Polls Git sources for new commits; each new one starts an execution.
async fn poll(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
    use pipewright_core::executions::store;
    let mut tick = tokio::time::interval(Duration::from_secs(settings.git_poll_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let sources = match services.db.conn().await {
            Ok(mut conn) => store::polled_sources(&mut conn).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let Ok(sources) = sources else { continue };
        for source in sources {
            let Some(revision) =
                providers::head_of(&source.repository_url, &source.branch, source.token.as_deref()).await
            else {
                continue;
            };
            let started = match services.db.conn().await {
                Ok(mut conn) => store::poll_seen(&mut conn, &source, &revision).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match started {
                Ok(Some((execution, ids))) => {
                    tracing::info!(pipeline = %source.pipeline.name, %revision, %execution, "a new commit starts an execution");
                    publish_now(&services, &publisher, ids).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(pipeline = %source.pipeline.name, error = %e, "a poll could not be recorded"),
            }
        }
    }
}
