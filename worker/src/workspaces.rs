//! Workspaces: the folders actions run in. A worker keeps one per runner
//! slot and empties it between actions rather than making a new folder each
//! time: on ext4, making directories at a high rate (and deleting them)
//! costs more CPU than the rest of a no-op action (see decision 010).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The workspace folders of one worker process.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
    free: Arc<Mutex<Vec<usize>>>,
    next: Arc<Mutex<usize>>,
}

/// A workspace in use; it goes back to the pool, emptied, when dropped.
#[derive(Debug)]
pub struct Workspace {
    path: PathBuf,
    slot: usize,
    pool: Workspaces,
}

impl Workspace {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workspace {
    /// Empties the folder (so that a finished build's files do not stay on
    /// disk), then hands the slot back.
    fn drop(&mut self) {
        let (path, slot, free) = (self.path.clone(), self.slot, self.pool.free.clone());
        let release = move || {
            let _ = empty(&path);
            if let Ok(mut free) = free.lock() {
                free.push(slot);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

/// Removes everything inside `dir`, keeping `dir`.
fn empty(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl Workspaces {
    /// Workspaces under `data_dir/workspaces/<a name of this process's>`.
    pub fn new(data_dir: &Path) -> Self {
        let name = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Self { root: data_dir.join("workspaces").join(name), free: Arc::default(), next: Arc::default() }
    }

    /// An empty workspace (a reused folder, emptied, or a new one).
    pub async fn take(&self) -> std::io::Result<Workspace> {
        let reused = self.free.lock().ok().and_then(|mut free| free.pop());
        let slot = match reused {
            Some(slot) => slot,
            None => {
                let mut next = self.next.lock().map_err(|_| std::io::Error::other("workspace pool poisoned"))?;
                *next += 1;
                *next
            }
        };
        let path = self.root.join(slot.to_string());
        let workspace = Workspace { path: path.clone(), slot, pool: self.clone() };
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&path)?;
            empty(&path)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(workspace)
    }
}

/// Removes the workspace folders of worker processes that have not used
/// them for `idle` (a process that ended, or was killed, leaves its own).
/// A live worker makes a removed folder again when it needs it.
pub fn remove_idle(data_dir: &Path, idle: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("workspaces")) else { return 0 };
    let mut removed = 0;
    for process in entries.flatten() {
        let Ok(slots) = std::fs::read_dir(process.path()) else { continue };
        let mut left = 0;
        for slot in slots.flatten() {
            let modified = slot.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::now());
            let stale = modified.elapsed().is_ok_and(|age| age > idle);
            if stale && std::fs::remove_dir_all(slot.path()).is_ok() {
                removed += 1;
            } else {
                left += 1;
            }
        }
        if left == 0 {
            let _ = std::fs::remove_dir(process.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_workspace_comes_back_empty_and_is_reused() {
        let data = std::env::temp_dir().join(format!("pw-ws-{}", uuid::Uuid::new_v4().simple()));
        let pool = Workspaces::new(&data);
        let first = pool.take().await.expect("a workspace");
        let path = first.path().to_path_buf();
        std::fs::create_dir_all(path.join("sub")).expect("mkdir");
        std::fs::write(path.join("sub/file"), "x").expect("write");
        std::fs::write(path.join("top"), "y").expect("write");
        let second = pool.take().await.expect("another workspace");
        assert_ne!(second.path(), path, "a workspace in use is not handed out twice");
        drop(first);
        // It is emptied, then handed back.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.free.lock().expect("lock").is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(std::fs::read_dir(&path).expect("read").count(), 0, "it is emptied once done with");
        let again = pool.take().await.expect("the first again");
        assert_eq!(again.path(), path);
        assert_eq!(std::fs::read_dir(&path).expect("read").count(), 0, "it comes back empty");
        drop((again, second));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(remove_idle(&data, Duration::from_secs(3600)), 0, "recently used folders stay");
        assert_eq!(remove_idle(&data, Duration::ZERO), 2);
        assert!(!data.join("workspaces").read_dir().expect("read").any(|_| true), "the process folder goes too");
        let _ = std::fs::remove_dir_all(&data);
    }
}
