//! Retention: artifacts no execution of the retention period (or still
//! running) refers to, action logs older than it, the S3 store's local
//! cache, and the workspace folders of workers that are gone.

use std::time::{Duration, SystemTime};

use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;

use crate::Settings;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub artifacts: usize,
    pub logs: usize,
    pub cached: usize,
    pub workspaces: usize,
}

/// After how long unused the workspace folders of a worker on another host
/// (sharing the data folder) are taken for gone.
const FOREIGN_WORKSPACE_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sweeps once an hour (the first a minute after start).
pub async fn run(services: Services, settings: Settings, shutdown: CancellationToken) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(3600);
        match sweep(&services, &settings, SystemTime::now()).await {
            Ok(removed) if removed != Removed::default() => tracing::info!(?removed, "retention sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the retention sweep failed; it runs again in an hour"),
        }
    }
}

/// Removes what the retention period no longer keeps, as of `now`.
pub async fn sweep(services: &Services, settings: &Settings, now: SystemTime) -> Result<Removed, String> {
    let period = Duration::from_secs(u64::from(settings.retention_days) * 24 * 3600);
    let cutoff = now.checked_sub(period).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = Removed::default();

    // Listed before the references are read: an artifact stored after the
    // listing is not a candidate, and one stored before it and referred to
    // since is among the references.
    let stored = settings.artifacts.list().await.map_err(|e| e.to_string())?;
    let in_use = {
        let mut conn = services.db.conn().await.map_err(|e| e.explain())?;
        let since = chrono::DateTime::<chrono::Utc>::from(cutoff);
        pipewright_core::executions::store::artifacts_in_use(&mut conn, since).await.map_err(|e| e.to_string())?
    };
    for (sha256, modified) in stored {
        if modified < cutoff && !in_use.contains(&sha256) {
            // Stored again since the listing (by an action whose execution
            // has not committed it yet): kept.
            match settings.artifacts.modified(&sha256).await {
                Ok(Some(again)) if again < cutoff => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(artifact = %sha256, error = %e, "an expired artifact could not be checked; kept for now");
                    continue;
                }
            }
            match settings.artifacts.delete(&sha256).await {
                Ok(()) => removed.artifacts += 1,
                Err(e) => tracing::warn!(artifact = %sha256, error = %e, "an expired artifact could not be removed"),
            }
        }
    }

    let (logs, data_dir, own) = (settings.logs(), settings.data_dir.clone(), settings.workspaces.root().to_path_buf());
    let (logs_removed, cached, workspaces) = tokio::task::spawn_blocking(move || {
        let logs_removed = pipewright_core::artifacts::remove_files_older(&logs, cutoff, false);
        let cached = pipewright_core::artifacts::sweep_cache(&data_dir, now);
        let workspaces = crate::workspaces::remove_gone(&data_dir, &own, FOREIGN_WORKSPACE_IDLE);
        (logs_removed, cached, workspaces)
    })
    .await
    .map_err(|e| e.to_string())?;
    let kept_logs = settings.artifacts.remove_logs_before(cutoff).await.map_err(|e| e.to_string())?;
    removed.logs = logs_removed + kept_logs;
    removed.cached = cached;
    removed.workspaces = workspaces;
    Ok(removed)
}
