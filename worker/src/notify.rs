//! Delivers notifications: turns the state changes the database noted into
//! deliveries for the rules that ask for them, and posts each to its
//! target — checked like any address a tenant names, pinned to the address
//! checked, no redirects — retrying a 5xx, 408, 429 or no answer with
//! backoff; every attempt is in the delivery log.

use std::time::Duration;

use pipewright_core::notifications::{self, Attempt, Context, Due};
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

use crate::Settings;

/// How long a target has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(services: Services, settings: Settings, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = round(&services, &settings).await {
            tracing::warn!(error = %e, "notifications could not be delivered now; tried again shortly");
        }
    }
}

async fn round(services: &Services, settings: &Settings) -> Result<(), String> {
    let context = Context { region: &settings.region, public_url: &settings.public_url };
    let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
    while notifications::expand(&mut conn, &context, 100).await.map_err(|e| e.to_string())? == 100 {}
    let due = notifications::claim_due(&mut conn, 20).await.map_err(|e| e.to_string())?;
    drop(conn);
    let attempts = futures_util::future::join_all(due.iter().map(|d| attempt(settings, d))).await;
    let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
    for (due, attempt) in due.iter().zip(attempts) {
        if !attempt.succeeded() {
            tracing::info!(rule = %due.rule.name, delivery = %due.delivery.delivery_id, error = ?attempt.error, "a notification was not delivered");
        }
        // (One that cannot be recorded is tried again once its claim runs out.)
        if let Err(e) = notifications::record(&mut conn, &due.delivery, &attempt).await {
            tracing::warn!(delivery = %due.delivery.delivery_id, error = %e, "a notification's attempt could not be recorded");
        }
    }
    if rand_percent() == 0 {
        let _ = notifications::prune(&mut conn).await;
    }
    Ok(())
}

/// One attempt at a delivery. What is recorded of a failure never holds
/// the target's URL (a Slack URL is a secret).
async fn attempt(settings: &Settings, due: &Due) -> Attempt {
    let failed = |error: String, retry: bool| Attempt { status_code: None, error: Some(error), retry };
    let Some(targets) = due.rule.targets(&settings.secrets) else {
        return failed("the rule's targets could not be opened with this installation's secrets key".to_owned(), false);
    };
    let Some(target) = usize::try_from(due.delivery.target_index).ok().and_then(|i| targets.get(i)) else {
        return failed("the rule no longer has this target".to_owned(), false);
    };
    let reach = match settings.sources.check_http(&target.target_address).await {
        Ok(reach) => reach,
        // (The reason may quote the URL, which for Slack is a secret.)
        Err(_) if target.target_type == "Slack" => {
            return failed("the Slack URL may not be reached (the address rules refuse it)".to_owned(), true);
        }
        // (A refusal by the rules stands; a name that does not resolve now
        // may later.)
        Err(why) => {
            let retry = why.contains("could not be resolved") || why.contains("resolves to no address");
            return failed(why, retry);
        }
    };
    let body = serde_json::to_vec(&notifications::body_for(target, &due.delivery.payload)).unwrap_or_default();
    let client = match reach.client(TIMEOUT) {
        Ok(client) => client,
        Err(e) => return failed(e, true),
    };
    let mut request = client
        .post(reach.url.clone())
        .header("content-type", "application/json")
        .header("user-agent", "Pipewright-Notifications/1")
        .header("x-pipewright-event", &due.delivery.event_type_id)
        .header("x-pipewright-delivery", due.delivery.delivery_id.to_string());
    if let Some(secret) = &target.secret_token {
        request =
            request.header("x-pipewright-signature-256", pipewright_core::signing::sign(secret.as_bytes(), &body));
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let code = answer.status().as_u16();
            let ok = answer.status().is_success();
            Attempt {
                status_code: Some(code),
                error: (!ok).then(|| format!("the target answered {code}")),
                retry: !ok && (code >= 500 || code == 408 || code == 429),
            }
        }
        Err(e) => {
            let e = e.without_url();
            let what =
                if e.is_timeout() { format!("no answer within {TIMEOUT:?}") } else { format!("not reached: {e}") };
            failed(what, true)
        }
    }
}

/// A number from 0 to 99, different each round (the delivery log is pruned
/// about once in a hundred rounds).
fn rand_percent() -> u8 {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    byte[0] % 100
}
