//! Workspaces: the folders actions run in. A worker keeps one per runner
//! slot and empties it between actions rather than making a new folder each
//! time: on ext4, making directories at a high rate (and deleting them)
//! costs more CPU than the rest of a no-op action (see decision 010).
//!
//! A folder that cannot be emptied (files an action left that the worker
//! may not delete) is moved aside and never handed out again. The folders
//! of a worker process that is gone are removed by the retention sweep.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The workspace folders of one worker process:
/// `data/workspaces/<host>-<pid>-<id>/<slot>`.
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
    /// disk), then hands the slot back — unless it could not be emptied.
    fn drop(&mut self) {
        let (path, slot, pool) = (self.path.clone(), self.slot, self.pool.clone());
        let release = move || {
            if empty(&path).is_ok() {
                if let Ok(mut free) = pool.free.lock() {
                    free.push(slot);
                }
            } else {
                pool.set_aside(&path);
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

/// This machine's name, as the kernel has it.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
    if name.is_empty() { "localhost".to_owned() } else { name }
}

impl Workspaces {
    /// Workspaces under `data_dir/workspaces/<host>-<pid>-<id>`.
    pub fn new(data_dir: &Path) -> Self {
        let name = format!("{}-{}-{}", host_name(), std::process::id(), uuid::Uuid::new_v4().simple());
        Self { root: data_dir.join("workspaces").join(name), free: Arc::default(), next: Arc::default() }
    }

    fn new_slot(&self) -> std::io::Result<usize> {
        let mut next = self.next.lock().map_err(|_| std::io::Error::other("workspace pool poisoned"))?;
        *next += 1;
        Ok(*next)
    }

    /// Moves a folder that could not be emptied out of the way (and tries
    /// to delete what it can of it), loudly.
    fn set_aside(&self, path: &Path) {
        let aside = self.root.with_extension(format!("unremovable-{}", uuid::Uuid::new_v4().simple()));
        tracing::error!(
            workspace = %path.display(), moved_to = %aside.display(),
            "a workspace could not be emptied (files its action left that the worker may not delete); it is set aside"
        );
        let _ = std::fs::rename(path, &aside);
        let _ = std::fs::remove_dir_all(&aside);
    }

    /// An empty workspace (a reused folder, emptied, or a new one).
    pub async fn take(&self) -> std::io::Result<Workspace> {
        let reused = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut slot = match reused {
            Some(slot) => slot,
            None => self.new_slot()?,
        };
        // A folder that does not empty is set aside and a new one made.
        for _ in 0..3 {
            let path = self.root.join(slot.to_string());
            let prepared = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&path)?;
                    empty(&path)
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
            };
            match prepared {
                Ok(()) => return Ok(Workspace { path, slot, pool: self.clone() }),
                Err(_) => {
                    let pool = self.clone();
                    let _ = tokio::task::spawn_blocking(move || pool.set_aside(&path)).await;
                    slot = self.new_slot()?;
                }
            }
        }
        Err(std::io::Error::other("no workspace folder could be made empty"))
    }

    /// This process's folder (the retention sweep leaves it alone).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Whether the folder belongs to a worker process that is gone: one of
/// this host whose process no longer runs, or, from another host sharing
/// the data folder, one unused for `foreign_idle`.
fn is_gone(folder: &Path, host: &str, foreign_idle: Duration) -> bool {
    let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut parts = name.rsplitn(3, '-');
    let (_, pid, owner) = (parts.next(), parts.next(), parts.next());
    match (owner, pid.and_then(|p| p.parse::<u32>().ok())) {
        (Some(owner), Some(pid)) if owner == host => !Path::new(&format!("/proc/{pid}")).exists(),
        _ => {
            let modified = folder.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::now());
            modified.elapsed().is_ok_and(|age| age > foreign_idle)
        }
    }
}

/// Removes the workspace folders of worker processes that are gone (a
/// process that ended, or was killed, leaves its own), and folders set
/// aside. `own` (this process's) is left alone.
pub fn remove_gone(data_dir: &Path, own: &Path, foreign_idle: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("workspaces")) else { return 0 };
    let host = host_name();
    let mut removed = 0;
    for process in entries.flatten() {
        let path = process.path();
        if path == own {
            continue;
        }
        let aside = path.extension().is_some_and(|e| e.to_string_lossy().starts_with("unremovable-"));
        if (aside || is_gone(&path, &host, foreign_idle)) && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until_free(pool: &Workspaces) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.free.lock().expect("lock").is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A pool in a data folder of its own.
    fn new_pool() -> (PathBuf, Workspaces) {
        let data = std::env::temp_dir().join(format!("pw-ws-{}", uuid::Uuid::new_v4().simple()));
        let pool = Workspaces::new(&data);
        (data, pool)
    }

    #[tokio::test]
    async fn a_workspace_comes_back_empty_and_is_reused() {
        let (data, pool) = new_pool();
        let first = pool.take().await.expect("a workspace");
        let path = first.path().to_path_buf();
        std::fs::create_dir_all(path.join("sub")).expect("mkdir");
        std::fs::write(path.join("sub/file"), "x").expect("write");
        std::fs::write(path.join("top"), "y").expect("write");
        let second = pool.take().await.expect("another workspace");
        assert_ne!(second.path(), path, "a workspace in use is not handed out twice");
        drop(first);
        until_free(&pool).await;
        assert_eq!(std::fs::read_dir(&path).expect("read").count(), 0, "it is emptied once done with");
        let again = pool.take().await.expect("the first again");
        assert_eq!(again.path(), path);
        drop((again, second));

        // A live process's folders stay; a gone one's go.
        let gone = data.join("workspaces").join(format!("{}-4000000-abc", host_name()));
        std::fs::create_dir_all(gone.join("1")).expect("mkdir");
        let other = Workspaces::new(&data);
        let _held = other.take().await.expect("a workspace of another live process");
        assert_eq!(remove_gone(&data, pool.root(), Duration::from_secs(3600)), 1);
        assert!(!gone.exists());
        assert!(pool.root().exists() && other.root().exists());
        let _ = std::fs::remove_dir_all(&data);
    }

    #[tokio::test]
    async fn a_workspace_that_cannot_be_emptied_is_set_aside_and_not_handed_out_again() {
        use std::os::unix::fs::PermissionsExt;
        let (data, pool) = new_pool();
        let first = pool.take().await.expect("a workspace");
        let path = first.path().to_path_buf();
        // What an action may leave: a folder whose files cannot be deleted.
        std::fs::create_dir_all(path.join("cache")).expect("mkdir");
        std::fs::write(path.join("cache/module"), "x").expect("write");
        std::fs::set_permissions(path.join("cache"), std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let stuck = std::fs::remove_file(path.join("cache/module")).is_err();
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = pool.take().await.expect("a workspace all the same");
        assert_eq!(std::fs::read_dir(next.path()).expect("read").count(), 0);
        if stuck {
            // (Root may delete anything: then the folder simply emptied.)
            assert_ne!(next.path(), path, "the folder that would not empty is not handed out again");
        }
        let _ = std::fs::set_permissions(path.join("cache"), std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::remove_dir_all(&data);
    }
}
