//! Changes of Git sources found by polling: every ref a source's trigger
//! may run (its branch, or every branch and tag its filters name) is read
//! with `git ls-remote`; a ref at a new commit, or a new ref, is a change,
//! with the files it touched when a filter asks for them; the shared
//! crate's trigger matching decides whether it starts an execution (and
//! records which filter did).

use std::path::PathBuf;
use std::time::Duration;

use pipewright_core::executions::store::{self, PolledSource};
use pipewright_core::messaging::Publisher;
use pipewright_core::pipelines::triggers::{Change, Event};
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Settings, providers, publish_now};

/// The changes of one source decided in one poll, at most.
const MAX_CHANGES_A_POLL: usize = 50;

/// Polls every polled Git source each `git_poll_secs`.
pub async fn poll(services: Services, publisher: Publisher, settings: Settings, shutdown: CancellationToken) {
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
            if let Err(e) = poll_source(&services, &publisher, &settings, &source).await {
                tracing::warn!(pipeline = %source.pipeline.name, action = %source.action_name, error = %e, "a poll could not be recorded");
            }
        }
    }
}

/// Where the worker keeps its copy of a source's repository (for the files
/// a change touched).
pub fn mirror_of(settings: &Settings, pipeline_id: Uuid, action_name: &str) -> PathBuf {
    use sha2::Digest;
    let action = sha2::Sha256::digest(action_name.as_bytes());
    let action: String = action.iter().take(8).map(|b| format!("{b:02x}")).collect();
    settings.data_dir.join("mirrors").join(format!("{pipeline_id}-{action}.git"))
}

async fn poll_source(
    services: &Services,
    publisher: &Publisher,
    settings: &Settings,
    source: &PolledSource,
) -> Result<(), String> {
    let patterns = source.watch.patterns(&source.branch);
    let token = source.token.as_deref();
    let looked = chrono::Utc::now();
    let Some(found) =
        providers::refs_of(&settings.sources, &source.repository_url, &source.branch, token, &patterns).await
    else {
        return Ok(());
    };
    let declaration = source.pipeline.declaration().map_err(|e| e.to_string())?;
    let Some(action) = declaration.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == source.action_name))
    else {
        return Ok(());
    };
    let found: Vec<(String, String)> = found
        .into_iter()
        .filter(|(reference, _)| pipewright_core::pipelines::triggers::watches_ref(&declaration, action, reference))
        .collect();
    let seen = {
        let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
        store::seen_refs(&mut conn, source, &found, looked).await.map_err(|e| e.to_string())?
    };
    // (At most this many changes a poll: the rest are the next poll's.)
    let changed: Vec<(String, String)> =
        found.into_iter().filter(|(r, c)| seen.get(r) != Some(c)).take(MAX_CHANGES_A_POLL).collect();
    for (reference, commit) in changed {
        let before = seen.get(&reference).cloned();
        let files = if source.watch.files {
            let mirror = mirror_of(settings, source.pipeline.pipeline_id, &source.action_name);
            match providers::touched_files(
                settings,
                &mirror,
                &source.repository_url,
                &source.branch,
                token,
                &reference,
                before.as_deref(),
                &commit,
            )
            .await
            {
                Ok(files) => Some(files),
                Err(e) => {
                    // Tried again at the next poll (the ref is not recorded).
                    tracing::warn!(pipeline = %source.pipeline.name, %reference, error = %e, "the files of a change could not be read");
                    continue;
                }
            }
        } else {
            None
        };
        let change = Change { event: Event::Push { reference: reference.clone() }, commit: commit.clone(), files };
        let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
        let started = store::change_seen(
            &mut conn,
            source.pipeline.pipeline_id,
            &source.action_name,
            store::Seen::Polled(before.as_deref()),
            &change,
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some((execution, queued)) = started {
            tracing::info!(pipeline = %source.pipeline.name, %reference, %commit, %execution, "a change starts an execution");
            publish_now(publisher, queued).await;
        }
    }
    Ok(())
}

/// A change a webhook delivered to a source (as the api queued it).
pub struct Delivered<'a> {
    pub pipeline_id: Uuid,
    pub action_name: &'a str,
    pub change: Change,
    /// The commit the ref was at before (a push's `before`).
    pub before: Option<&'a str>,
    /// The webhook's ARN.
    pub webhook: &'a str,
}

/// Decides a change a webhook delivered: reads the files it touched when
/// the source's trigger asks for them (since `before`, or where it left
/// the source's branch, or a pull request's destination), then records and
/// matches it as a polled one. An error is worth retrying.
pub async fn delivered(
    services: &Services,
    publisher: &Publisher,
    settings: &Settings,
    delivery: Delivered<'_>,
) -> Result<(), String> {
    let Delivered { pipeline_id, action_name, mut change, before, webhook } = delivery;
    let pipeline = {
        let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
        pipewright_core::pipelines::store::by_id(&mut conn, pipeline_id).await.map_err(|e| e.to_string())?
    };
    // (Deleted since: nothing to run.)
    let Some(pipeline) = pipeline else { return Ok(()) };
    let declaration = pipeline.declaration().map_err(|e| e.to_string())?;
    let Some(action) = declaration.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == action_name)) else {
        return Ok(());
    };
    let watch = pipewright_core::pipelines::triggers::watch(&declaration, action);
    let Some(url) = action.configuration.get("repositoryUrl") else { return Ok(()) };
    let token = action.configuration.get("token").map(String::as_str);
    let configured = pipewright_core::pipelines::triggers::configured_branch(action);
    if let Event::Push { reference } = &change.event {
        // Only the ref's head runs: a stale, replayed or out-of-order
        // delivery never takes a branch back to an older commit; a tag runs
        // its commit (a delivery may name the tag object).
        let heads =
            providers::refs_of(&settings.sources, url, configured, token, std::slice::from_ref(reference)).await;
        let Some(heads) = heads else { return Err(format!("{reference} could not be read")) };
        match heads.into_iter().find(|(r, _)| r == reference) {
            Some((_, head)) if head == change.commit || reference.starts_with("refs/tags/") => change.commit = head,
            _ => {
                tracing::info!(pipeline = %pipeline.name, %reference, "a delivered push is not the ref's head (any more); nothing runs");
                return Ok(());
            }
        }
    }
    if watch.files {
        let base = match &change.event {
            Event::PullRequest { destination_branch, .. } => destination_branch.clone(),
            Event::Push { .. } => configured.to_owned(),
        };
        let mirror = mirror_of(settings, pipeline_id, action_name);
        let files = providers::touched_files(
            settings,
            &mirror,
            url,
            &base,
            token,
            change.event.reference(),
            before,
            &change.commit,
        )
        .await;
        match files {
            Ok(files) => change.files = Some(files),
            // (What cannot be fetched now is not there to run: no retry.)
            Err(e) => {
                tracing::warn!(pipeline = %pipeline.name, error = %e, "a delivered change's files could not be read");
                return Ok(());
            }
        }
    }
    let mut conn = services.db.conn().await.map_err(|e| e.to_string())?;
    let started = store::change_seen(&mut conn, pipeline_id, action_name, store::Seen::Delivered(webhook), &change)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    if let Some((execution, queued)) = started {
        tracing::info!(pipeline = %pipeline.name, reference = %change.event.reference(), %execution, "a delivered change starts an execution");
        publish_now(publisher, queued).await;
    }
    Ok(())
}
