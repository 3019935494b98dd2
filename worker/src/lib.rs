//! Pipewright's worker role: the outbox relay, the orchestrator (advances
//! executions), the runners (run actions), and the lease sweeper (takes
//! back actions whose runner died). Each consumes RabbitMQ with manual acks
//! and a bounded prefetch; any number of workers may run at once.

use std::path::PathBuf;
use std::time::Duration;

use pipewright_core::messaging::Publisher;
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

mod changes;
mod consume;
mod notify;
mod orchestrator;
pub mod providers;
pub mod retention;
mod runner;
pub mod sandbox;
pub mod workspaces;

/// What the worker takes from the configuration.
#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub lease_secs: u64,
    pub queue_expires_secs: u64,
    /// Actions one worker runs at once.
    pub concurrency: u16,
    pub git_poll_secs: u64,
    /// The folders actions run in.
    pub workspaces: workspaces::Workspaces,
    /// Where artifacts are kept.
    pub artifacts: pipewright_core::artifacts::Store,
    /// Days artifacts and logs are kept after their last use.
    pub retention_days: u32,
    /// Where actions' commands run.
    pub sandbox: sandbox::Sandbox,
    /// What Git sources may name (checked again before each fetch).
    pub sources: pipewright_core::pipelines::sources::SourcePolicy,
    /// Opens the secrets actions read.
    pub secrets: pipewright_core::secrets::Cipher,
    /// The region in ARNs.
    pub region: String,
    /// Where the service is reached from outside (notifications' links).
    pub public_url: String,
}

impl Settings {
    /// The settings, or why the artifact store cannot be used.
    pub fn from_config(config: &pipewright_core::config::Config) -> Result<Self, String> {
        Ok(Self {
            data_dir: config.data_dir.clone(),
            lease_secs: config.action_lease_secs.max(2),
            queue_expires_secs: config.amqp_queue_expires_secs,
            concurrency: config.runner_concurrency,
            git_poll_secs: config.git_poll_secs.max(1),
            workspaces: workspaces::Workspaces::new(&config.data_dir),
            artifacts: pipewright_core::artifacts::open(config)?,
            retention_days: config.artifact_retention_days,
            sandbox: sandbox::Sandbox::new(config),
            sources: pipewright_core::pipelines::sources::SourcePolicy::from_config(config),
            secrets: pipewright_core::secrets::Cipher::from_config(config)?,
            region: config.region.clone(),
            public_url: config.public_url(),
        })
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
        tokio::spawn(changes::poll(services.clone(), publisher.clone(), settings.clone(), shutdown.clone())),
        tokio::spawn(retention::run(services.clone(), settings.clone(), shutdown.clone())),
        tokio::spawn(notify::run(services.clone(), settings.clone(), shutdown.clone())),
    ];
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("worker stopped");
}

/// Deletes the outbox rows this process published (in batches), and
/// publishes what else the outbox holds: rows a process committed but did
/// not publish (it died, or the broker was away).
async fn relay(services: Services, publisher: Publisher, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        ticks += 1;
        let published = publisher.published().take();
        if !published.is_empty() {
            let deleted = match services.db.conn().await {
                Ok(mut conn) => {
                    pipewright_core::messaging::delete_published(&mut conn, &published).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!(error = %e, "published outbox rows could not be deleted now; will retry");
                publisher.published().restore(published);
            }
        }
        if stopping {
            return;
        }
        if !ticks.is_multiple_of(2) {
            continue;
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

/// Publishes the outbox rows a committed transaction wrote, at once (the
/// relay deletes them soon after); the relay catches them later if this
/// fails.
pub async fn publish_now(publisher: &Publisher, queued: Vec<pipewright_core::messaging::Queued>) {
    if queued.is_empty() {
        return;
    }
    match pipewright_core::messaging::publish_queued(publisher, &queued).await {
        Ok(()) => publisher.published().note(&queued),
        Err(e) => tracing::warn!(error = %e.explain(), "messages left to the relay"),
    }
}

/// What became of a step tried [`while_database_down`].
pub(crate) enum Tried<T> {
    Done(T),
    /// It failed while the database answered: a fault of this message.
    Failed(String),
    /// Shutdown came while the database was away.
    ShutDown,
}

/// Tries `step` until it succeeds or fails with the database answering;
/// while the database is away (an outage, a restart), it waits and tries
/// again, so that an outage never counts against a message's deliveries
/// and never sends a good message to the dead-letter queue.
pub(crate) async fn while_database_down<T, F, Fut>(
    services: &Services,
    shutdown: &CancellationToken,
    what: &str,
    mut step: F,
) -> Tried<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let error = match step().await {
            Ok(done) => return Tried::Done(done),
            Err(e) => e,
        };
        if matches!(services.db.health().await, pipewright_core::deps::Health::Ok) {
            return Tried::Failed(error);
        }
        tracing::warn!(error = %error, "{what}: the database is away; waiting for it");
        tokio::select! {
            () = shutdown.cancelled() => return Tried::ShutDown,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
