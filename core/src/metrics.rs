//! The process's own metrics, beside the HTTP ones each api keeps: the audit
//! log's writes and waits, executions, action runs, stage transitions, the
//! queues' and the outbox's backlog, runner slots, the process itself and
//! the build. One registry per process; `/metrics` renders it (the api's
//! and the worker's health port alike).

use std::sync::OnceLock;
use std::time::Duration;

use diesel::QueryDsl;
use diesel_async::RunQueryDsl;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::services::Services;

/// Every metric of this module.
pub struct Metrics {
    registry: Registry,
    /// Audit events made durable.
    pub audit_events_written: IntCounter,
    /// Time to write one batch of audit events (INSERT and commit).
    pub audit_batch_seconds: Histogram,
    /// Time a request waited for its audit event to be durable.
    pub audit_wait_seconds: Histogram,
    /// Calls answered 503 because the audit log could not take their event in time.
    pub audit_unavailable: IntCounter,
    /// Executions that began running (entered their first stage).
    pub executions_started: IntCounter,
    /// Executions that ended, by status.
    pub executions_finished: IntCounterVec,
    /// Actions a runner of this process ran, by provider and status.
    pub action_runs: IntCounterVec,
    /// From a stage's end to the next stage's start.
    pub stage_transition_seconds: Histogram,
    /// Actions this process runs now, and how many it may.
    pub runner_slots_busy: IntGauge,
    pub runner_slots: IntGauge,
    /// Messages waiting in each queue, read when scraped.
    pub queue_depth: IntGaugeVec,
    /// Outbox rows not yet published, read when scraped.
    pub outbox_backlog: IntGauge,
    /// 1 while the api follows Redis's announcements of signed-out sessions
    /// (0: it asks Redis for each token).
    pub revocations_followed: IntGauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let fast = vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
    };
    let metrics = Metrics {
        audit_events_written: IntCounter::new("pipewright_audit_events_written_total", "Audit events made durable")?,
        audit_batch_seconds: histogram(
            "pipewright_audit_batch_duration_seconds",
            "Time to write one batch of audit events",
            fast.clone(),
        )?,
        audit_wait_seconds: histogram(
            "pipewright_audit_wait_seconds",
            "Time a request waited for its audit event to be durable",
            fast.clone(),
        )?,
        audit_unavailable: IntCounter::new(
            "pipewright_audit_unavailable_total",
            "Calls answered 503 because the audit log could not take their event in time",
        )?,
        executions_started: IntCounter::new(
            "pipewright_executions_started_total",
            "Executions that began running (entered their first stage)",
        )?,
        executions_finished: IntCounterVec::new(
            Opts::new("pipewright_executions_finished_total", "Executions that ended, by status"),
            &["status"],
        )?,
        action_runs: IntCounterVec::new(
            Opts::new("pipewright_action_runs_total", "Actions run by this process's runners, by provider and status"),
            &["provider", "status"],
        )?,
        stage_transition_seconds: histogram(
            "pipewright_stage_transition_delay_seconds",
            "From a stage's end to the next stage's start",
            fast,
        )?,
        runner_slots_busy: IntGauge::new("pipewright_runner_slots_busy", "Actions this process runs now")?,
        runner_slots: IntGauge::new("pipewright_runner_slots", "Actions this process may run at once")?,
        queue_depth: IntGaugeVec::new(
            Opts::new("pipewright_queue_depth", "Messages ready in each RabbitMQ queue"),
            &["queue"],
        )?,
        outbox_backlog: IntGauge::new("pipewright_outbox_backlog", "Outbox rows not yet published")?,
        revocations_followed: IntGauge::new(
            "pipewright_revocations_followed",
            "1 while signed-out sessions are known from Redis's announcements (0: Redis is asked per token)",
        )?,
        registry,
    };
    let r = &metrics.registry;
    r.register(Box::new(metrics.audit_events_written.clone()))?;
    r.register(Box::new(metrics.audit_batch_seconds.clone()))?;
    r.register(Box::new(metrics.audit_wait_seconds.clone()))?;
    r.register(Box::new(metrics.audit_unavailable.clone()))?;
    r.register(Box::new(metrics.executions_started.clone()))?;
    r.register(Box::new(metrics.executions_finished.clone()))?;
    r.register(Box::new(metrics.action_runs.clone()))?;
    r.register(Box::new(metrics.stage_transition_seconds.clone()))?;
    r.register(Box::new(metrics.runner_slots_busy.clone()))?;
    r.register(Box::new(metrics.runner_slots.clone()))?;
    r.register(Box::new(metrics.queue_depth.clone()))?;
    r.register(Box::new(metrics.outbox_backlog.clone()))?;
    r.register(Box::new(metrics.revocations_followed.clone()))?;
    let info = IntGaugeVec::new(Opts::new("pipewright_build_info", "The running build (always 1)"), &["version"])?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    r.register(Box::new(info))?;
    r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    Ok(metrics)
}

/// This process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| build().unwrap_or_else(|e| panic!("the metrics' names are fixed and valid: {e}")))
}

impl Metrics {
    /// Reads the backlogs (queue depths, outbox rows), each given a second
    /// at most: a scrape never hangs on a dependency that is down.
    pub async fn sample(&self, services: &Services) {
        // At most every 5 s, however often /metrics is asked (it needs no
        // credentials): the backlogs cost a query and a channel.
        {
            static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
            let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(5)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let outbox = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = services.db.conn().await.ok()?;
            crate::schema::outbox::table.count().get_result::<i64>(&mut conn).await.ok()
        });
        if let Ok(Some(rows)) = outbox.await {
            self.outbox_backlog.set(rows);
        }
        let queues = tokio::time::timeout(Duration::from_secs(1), async {
            let channel = services.broker.channel().await.ok()?;
            let mut depths = Vec::new();
            for queue in [crate::messaging::ORCHESTRATE, crate::messaging::JOBS, crate::messaging::DEAD] {
                let name = services.broker.name(queue);
                let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
                if let Ok(declared) =
                    channel.queue_declare(name.as_str().into(), options, lapin::types::FieldTable::default()).await
                {
                    depths.push((queue, declared.message_count()));
                }
            }
            let _ = channel.close(200, "metrics read".into()).await;
            Some(depths)
        });
        if let Ok(Some(depths)) = queues.await {
            for (queue, depth) in depths {
                self.queue_depth.with_label_values(&[queue]).set(i64::from(depth));
            }
        }
    }

    /// The Prometheus text of these metrics and `also`'s (the HTTP ones).
    pub fn render(&self, also: Option<&Registry>) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        if let Some(also) = also {
            families.extend(also.gather());
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
