//! Retention: artifacts no execution of the retention period (or still
//! running) refers to, action logs older than it, the S3 store's local
//! cache, and the workspace folders of workers that are gone.

use std::path::Path;
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

/// How long a copy fetched from an S3 store stays in the local cache.
const CACHE_DAYS: u64 = 1;

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
            match settings.artifacts.delete(&sha256).await {
                Ok(()) => removed.artifacts += 1,
                Err(e) => tracing::warn!(artifact = %sha256, error = %e, "an expired artifact could not be removed"),
            }
        }
    }

    let (logs, data_dir) = (settings.logs(), settings.data_dir.clone());
    let (logs_removed, cached, workspaces) = tokio::task::spawn_blocking(move || {
        let logs_removed = remove_older(&logs, cutoff, false);
        let cache_cutoff = now.checked_sub(Duration::from_secs(CACHE_DAYS * 24 * 3600)).unwrap_or(now);
        let cached = remove_older(&data_dir.join("artifact-cache"), cache_cutoff, true);
        let workspaces = crate::workspaces::remove_idle(&data_dir, Duration::from_secs(3600));
        (logs_removed, cached, workspaces)
    })
    .await
    .map_err(|e| e.to_string())?;
    removed.logs = logs_removed;
    removed.cached = cached;
    removed.workspaces = workspaces;
    Ok(removed)
}

/// Removes the files in `dir` (and, with `nested`, its folders' files)
/// last modified before `cutoff`.
fn remove_older(dir: &Path, cutoff: SystemTime, nested: bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if nested {
                removed += remove_older(&entry.path(), cutoff, false);
            }
            continue;
        }
        let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::now());
        if modified < cutoff && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
