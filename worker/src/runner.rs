//! The runners: consume "run(action)" jobs, claim the action (a lease, and
//! one more job attempt), run its provider while renewing the lease, and
//! record the result — only if the claim still holds, so a job delivered
//! twice runs once to its end. The sweeper takes back actions whose runner
//! died (the lease ran out), and fails those that keep dying.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use pipewright_core::executions::store::{self, Finisher, Outcome};
use pipewright_core::messaging::{DEAD, JOBS, Message, Publisher};
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

use crate::{Settings, Tried};

/// Job attempts after which an action whose runner keeps dying fails.
pub const MAX_JOB_ATTEMPTS: i32 = 3;

pub async fn run(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
    pipewright_core::metrics::get().runner_slots.set(i64::from(settings.concurrency));
    let handler_services = services.clone();
    let handler_settings = settings.clone();
    let handler_shutdown = shutdown.clone();
    crate::consume::consume(
        services,
        JOBS,
        settings.concurrency,
        settings.queue_expires_secs,
        shutdown,
        move |delivery| {
            let (services, publisher, settings, shutdown) =
                (handler_services.clone(), publisher.clone(), handler_settings.clone(), handler_shutdown.clone());
            async move { handle(services, publisher, settings, shutdown, delivery).await }
        },
    )
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
    let Ok(Message::Run { action_execution_id: id }) = message else {
        tracing::error!(payload = %String::from_utf8_lossy(&delivery.data), "not a job; dropped");
        let _ = delivery.acker.reject(lapin::options::BasicRejectOptions { requeue: false }).await;
        return;
    };
    let claimed = crate::while_database_down(&services, &shutdown, "claiming a job", || async {
        let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
        store::claim(&mut conn, id, settings.lease_secs).await.map_err(|e| e.to_string())
    })
    .await;
    let claim = match claimed {
        Tried::Done(Some(claim)) => claim,
        Tried::Done(None) => {
            // Done already, or another runner holds it.
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            return;
        }
        Tried::ShutDown => {
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
            return;
        }
        Tried::Failed(e) => {
            tracing::warn!(action = %id, error = %e, "a job could not be claimed; it will be retried");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
            return;
        }
    };
    let attempt = claim.action.job_attempt;
    tracing::info!(action = %id, name = %claim.action.action_name, attempt, "running an action");
    let metrics = pipewright_core::metrics::get();
    metrics.runner_slots_busy.inc();
    let _slot = scopeguard(|| metrics.runner_slots_busy.dec());
    let provider = claim.declared().map_or_else(|| "unknown".to_owned(), |a| a.action_type_id.provider.clone());

    // Renew the lease while the provider runs; a lost claim stops it.
    let stop = shutdown.child_token();
    let heartbeat = {
        let (services, stop) = (services.clone(), stop.clone());
        let lease = settings.lease_secs;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs((lease / 3).max(1))) => {}
                }
                let renewed = match services.db.conn().await {
                    Ok(mut conn) => store::renew(&mut conn, id, attempt, lease).await.unwrap_or(true),
                    Err(_) => true,
                };
                if !renewed {
                    tracing::warn!(action = %id, "the action's claim was lost; stopping it");
                    stop.cancel();
                    return;
                }
            }
        })
    };
    // (Should the provider panic, the heartbeat ends with this task.)
    let beating = heartbeat.abort_handle();
    let _end_heartbeat = scopeguard(move || beating.abort());
    let outcome = crate::providers::run(&claim, &settings, &services.db, stop.clone()).await;
    let interrupted = stop.is_cancelled();
    stop.cancel();
    let _ = heartbeat.await;
    let Some(outcome) = outcome.filter(|_| !interrupted || shutdown.is_cancelled()) else {
        // Shut down or claim lost mid-run: leave it; the lease runs out and the sweeper decides.
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        return;
    };
    if shutdown.is_cancelled() && interrupted {
        // Stopped by shutdown: hand it back rather than record a failure.
        let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
        return;
    }
    // Where every host finds it (a bucket), before the result says it ended.
    let log = crate::providers::log_path(&settings.logs(), id);
    if let Err(e) = settings.artifacts.put_log(&id.to_string(), &log).await {
        tracing::warn!(action = %id, error = %e, "the action's log could not be kept in the artifact store");
    }
    if let Some(until) = outcome.waits_until {
        // Called: it now waits for its callback (or the sweeper, at `until`).
        tracing::info!(action = %id, %until, "an action waits for its callback");
        let waiting = crate::while_database_down(&services, &shutdown, "waiting for a callback", || async {
            let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
            store::wait_for_callback(&mut conn, id, attempt, &outcome.variables).await.map_err(|e| e.to_string())
        })
        .await;
        if let Tried::Failed(e) = waiting {
            tracing::warn!(action = %id, error = %e, "an action could not be set to wait for its callback");
        }
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        return;
    }
    let status = if outcome.succeeded { "Succeeded" } else { "Failed" };
    metrics.action_runs.with_label_values(&[provider.as_str(), status]).inc();
    finish_advancing(&services, &publisher, &shutdown, &claim, outcome).await;
    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
}

/// Runs `f` when dropped (however the function it guards returns).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// Records a runner's result and takes the step it leads to, in one
/// transaction; should that fail while the database answers, the result is
/// recorded on its own (its step then goes through the orchestrator).
async fn finish_advancing(
    services: &Services,
    publisher: &Publisher,
    shutdown: &CancellationToken,
    claim: &store::Claim,
    outcome: Outcome,
) {
    let (id, execution_id) = (claim.action.action_execution_id, claim.execution.execution_id);
    let by = Finisher::Runner(claim.action.job_attempt);
    // A source's result (a revision) is recorded by `finish`, which takes
    // its step right after, in a transaction of its own.
    if outcome.revision.is_none() {
        let recorded = crate::while_database_down(services, shutdown, "recording an action's result", || async {
            let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
            store::finish_and_advance(&mut conn, claim, by, &outcome).await.map_err(|e| e.to_string())
        })
        .await;
        match recorded {
            Tried::Done(Some(advanced)) => {
                crate::orchestrator::announce(services, publisher, advanced, execution_id).await;
                return;
            }
            // The claim was lost (the action was stopped, or its lease ran
            // out and another runner took it): the result is not ours to keep.
            Tried::Done(None) | Tried::ShutDown => return,
            Tried::Failed(e) => {
                tracing::warn!(action = %id, error = %e, "an action's next step failed; recording its result on its own");
            }
        }
    }
    let _ = finish(services, publisher, shutdown, id, by, outcome).await;
}

async fn finish(
    services: &Services,
    publisher: &Publisher,
    shutdown: &CancellationToken,
    id: uuid::Uuid,
    by: Finisher,
    outcome: Outcome,
) -> bool {
    for retry in 1..=5u64 {
        let recorded = crate::while_database_down(services, shutdown, "recording an action's result", || async {
            let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
            store::finish_action(&mut conn, id, by, outcome.clone()).await.map_err(|e| e.to_string())
        })
        .await;
        match recorded {
            Tried::Done(queued) => {
                next_step(services, publisher, queued.unwrap_or_default()).await;
                return true;
            }
            Tried::ShutDown => break,
            Tried::Failed(e) => {
                tracing::warn!(action = %id, error = %e, "an action's result could not be recorded yet; retrying");
                tokio::time::sleep(Duration::from_millis(250 * retry)).await;
            }
        }
    }
    tracing::error!(action = %id, "an action's result could not be recorded; its lease will run out");
    false
}

/// Takes the execution's next step here and now, rather than through the
/// orchestrator's queue: one message less, and the next stage starts
/// sooner. The outbox row the result wrote is then only deleted; if this
/// fails, it is published for the orchestrator.
async fn next_step(services: &Services, publisher: &Publisher, queued: Vec<pipewright_core::messaging::Queued>) {
    for row in queued {
        let done = match row.message {
            Message::Advance { execution_id } => {
                crate::orchestrator::advance_now(services, publisher, execution_id).await.is_ok()
            }
            Message::Run { .. } | Message::Change { .. } => false,
        };
        if done {
            publisher.published().note(std::slice::from_ref(&row));
        } else {
            crate::publish_now(publisher, vec![row]).await;
        }
    }
}

/// Takes back actions whose lease ran out: queued again, or failed after
/// [`MAX_JOB_ATTEMPTS`]. Also fails the actions of jobs that were
/// dead-lettered.
pub async fn sweep(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
    let dead = tokio::spawn(dead_letters(services.clone(), publisher.clone(), settings.clone(), shutdown.clone()));
    let mut tick = tokio::time::interval(Duration::from_secs((settings.lease_secs / 2).max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let expired = match services.db.conn().await {
            Ok(mut conn) => store::expired_leases(&mut conn, 100).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let Ok(expired) = expired else { continue };
        for (id, attempts, waited) in expired {
            if waited != store::Waited::Nothing {
                let (code, message) = match waited {
                    store::Waited::Callback => {
                        ("CallbackTimedOut", "no signed callback came before the action's timeout")
                    }
                    store::Waited::Job => {
                        ("JobTimedOut", "no job worker gave the custom action's result before its timeout")
                    }
                    _ => ("ApprovalExpired", "nobody approved or rejected it before it expired"),
                };
                let outcome = Outcome {
                    error_code: Some(code.to_owned()),
                    error_message: Some(message.to_owned()),
                    ..Outcome::default()
                };
                let _ = finish(&services, &publisher, &shutdown, id, Finisher::Expired(attempts), outcome).await;
                if waited == store::Waited::Job
                    && let Ok(mut conn) = services.db.conn().await
                {
                    let _ = pipewright_core::executions::jobs::time_out(&mut conn, id).await;
                }
            } else if attempts >= MAX_JOB_ATTEMPTS {
                let outcome = Outcome {
                    error_code: Some("RunnerLost".to_owned()),
                    error_message: Some(format!(
                        "the worker running this action stopped responding {attempts} times (killed or lost); retry the stage"
                    )),
                    ..Outcome::default()
                };
                let _ = finish(&services, &publisher, &shutdown, id, Finisher::Expired(attempts), outcome).await;
            } else {
                let requeued = match services.db.conn().await {
                    Ok(mut conn) => store::requeue_expired(&mut conn, id, attempts).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match requeued {
                    Ok(Some(outbox)) => {
                        tracing::warn!(action = %id, attempts, "an action's runner stopped responding; running it again");
                        crate::publish_now(&publisher, vec![outbox]).await;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(action = %id, error = %e, "an expired action could not be queued again"),
                }
            }
        }
    }
    let _ = dead.await;
}

/// Fails the action of every job that reached the dead-letter queue.
async fn dead_letters(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
    use futures_util::StreamExt;
    let name = services.broker.name(DEAD);
    while !shutdown.is_cancelled() {
        let setup = async {
            let channel = services.broker.channel().await.map_err(|e| e.explain())?;
            pipewright_core::messaging::declare(&channel, &services.broker, settings.queue_expires_secs)
                .await
                .map_err(|e| e.to_string())?;
            channel.basic_qos(8, BasicQosOptions::default()).await.map_err(|e| e.to_string())?;
            channel
                .basic_consume(
                    name.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    lapin::types::FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())
        };
        let consumer = tokio::select! {
            () = shutdown.cancelled() => return,
            found = tokio::time::timeout(crate::consume::SETUP_TIMEOUT, setup) => {
                found.unwrap_or_else(|_| Err("the broker did not answer in time".to_owned()))
            }
        };
        let Ok(mut consumer) = consumer else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => continue,
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = consumer.next() => next,
            };
            let Some(Ok(delivery)) = next else { break };
            if let Ok(Message::Run { action_execution_id }) = serde_json::from_slice(&delivery.data) {
                let outcome = Outcome {
                    error_code: Some("JobDeadLettered".to_owned()),
                    error_message: Some(format!(
                        "the action's job failed {} deliveries in a row and went to the dead-letter queue",
                        pipewright_core::messaging::DELIVERY_LIMIT
                    )),
                    ..Outcome::default()
                };
                let recorded =
                    finish(&services, &publisher, &shutdown, action_execution_id, Finisher::Unclaimed, outcome).await;
                if !recorded {
                    // Kept for this or another worker: its action would
                    // otherwise stay in progress with no lease to run out.
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    let _ =
                        delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
                    continue;
                }
            } else {
                tracing::error!(payload = %String::from_utf8_lossy(&delivery.data), "a message went to the dead-letter queue");
            }
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
    }
}
