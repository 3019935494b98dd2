//! Artifacts: what actions hand each other, as tar archives in a store
//! behind one trait, addressed by the SHA-256 of their content: a local
//! folder under the data folder (the default), or an S3-compatible bucket
//! through the `object_store` crate (`PIPEWRIGHT_ARTIFACT_STORE=s3://…`),
//! which workers on several hosts share. Artifacts nothing recent refers to
//! are removed after the retention period (see [`retention`]).

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::executions::store::ArtifactLocation;

/// The largest artifact accepted (1 GiB).
pub const MAX_SIZE: u64 = 1 << 30;

/// A boxed future, so that the store can be a trait object.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = std::io::Result<T>> + Send + 'a>>;

/// Where artifacts are kept.
pub trait ArtifactStore: Send + Sync {
    /// Stores the archive at `archive` (consumed) under its hash.
    fn put<'a>(&'a self, name: &'a str, archive: &'a Path) -> Pending<'a, ArtifactLocation>;
    /// A local file holding the stored archive: the file itself, or a
    /// verified copy fetched into the cache. `NotFound` when not stored.
    fn local<'a>(&'a self, sha256: &'a str) -> Pending<'a, PathBuf>;
    /// Every stored artifact: its hash and when it was stored.
    fn list(&self) -> Pending<'_, Vec<(String, SystemTime)>>;
    /// When a stored artifact was stored (or stored again); `None` when it
    /// is not stored.
    fn modified<'a>(&'a self, sha256: &'a str) -> Pending<'a, Option<SystemTime>>;
    /// Removes a stored artifact (and any cached copy).
    fn delete<'a>(&'a self, sha256: &'a str) -> Pending<'a, ()>;
    /// Keeps an ended action's log where every host finds it (a bucket);
    /// the local store has nothing to do (logs are in the data folder).
    fn put_log<'a>(&'a self, action_execution_id: &'a str, log: &'a Path) -> Pending<'a, ()>;
    /// A local copy of a log kept by [`ArtifactStore::put_log`], if any.
    fn log<'a>(&'a self, action_execution_id: &'a str) -> Pending<'a, Option<PathBuf>>;
    /// Removes the logs kept before `cutoff`; how many.
    fn remove_logs_before(&self, cutoff: SystemTime) -> Pending<'_, usize>;
    /// What it is, for logs and `/readyz`-style messages (no secrets).
    fn describe(&self) -> String;
}

/// An action execution's id as a file or key name: a UUID, nothing else.
fn log_name(action_execution_id: &str) -> std::io::Result<String> {
    let id = uuid::Uuid::parse_str(action_execution_id)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an action execution id"))?;
    Ok(format!("{id}.log"))
}

/// The artifact store the configuration names.
pub type Store = Arc<dyn ArtifactStore>;

/// Opens the store of `config.artifact_store`: `local`, or `s3://bucket[/prefix]`.
pub fn open(config: &crate::config::Config) -> Result<Store, String> {
    let location = config.artifact_store.trim();
    if location.is_empty() || location == "local" {
        return Ok(Arc::new(LocalStore::new(config.data_dir.join("artifacts"))));
    }
    let Some(rest) = location.strip_prefix("s3://") else {
        return Err(format!("PIPEWRIGHT_ARTIFACT_STORE must be `local` or s3://bucket[/prefix], got {location:?}"));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("PIPEWRIGHT_ARTIFACT_STORE names no bucket: use s3://bucket[/prefix]".to_owned());
    }
    Ok(Arc::new(S3Store::new(config, bucket, prefix)?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_hash(sha256: &str) -> std::io::Result<()> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an artifact hash"));
    }
    Ok(())
}

/// `ab/abcdef….tar`: artifacts spread over 256 folders.
fn relative_path(sha256: &str) -> std::io::Result<String> {
    valid_hash(sha256)?;
    Ok(format!("{}/{sha256}.tar", &sha256[..2]))
}

/// The SHA-256 and size of a file, refused above [`MAX_SIZE`].
fn digest(name: &str, archive: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(archive)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > MAX_SIZE {
            return Err(std::io::Error::other(format!("artifact {name} is over {MAX_SIZE} bytes, the most kept")));
        }
        hasher.update(&buffer[..read]);
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Moves `from` to `to` (same filesystem: atomic), copying when it must.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if to.exists() {
        // Stored again: it counts as new for the retention period.
        let _ = std::fs::File::options().append(true).open(to).and_then(|f| f.set_modified(SystemTime::now()));
        let _ = std::fs::remove_file(from);
        return Ok(());
    }
    if std::fs::rename(from, to).is_err() {
        let partial = to.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
        std::fs::copy(from, &partial)?;
        std::fs::rename(&partial, to)?;
        let _ = std::fs::remove_file(from);
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Artifacts in a folder: `ROOT/ab/abcdef….tar`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, sha256: &str) -> std::io::Result<PathBuf> {
        Ok(self.root.join(relative_path(sha256)?))
    }
}

impl ArtifactStore for LocalStore {
    fn put<'a>(&'a self, name: &'a str, archive: &'a Path) -> Pending<'a, ArtifactLocation> {
        let (name, archive, root) = (name.to_owned(), archive.to_path_buf(), self.root.clone());
        Box::pin(blocking(move || {
            let (sha256, size) = digest(&name, &archive)?;
            move_file(&archive, &root.join(relative_path(&sha256)?))?;
            Ok(ArtifactLocation { name, sha256, size })
        }))
    }

    fn local<'a>(&'a self, sha256: &'a str) -> Pending<'a, PathBuf> {
        let path = self.path(sha256);
        Box::pin(async move {
            let path = path?;
            if tokio::fs::try_exists(&path).await? {
                Ok(path)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such artifact"))
            }
        })
    }

    fn list(&self) -> Pending<'_, Vec<(String, SystemTime)>> {
        let root = self.root.clone();
        Box::pin(blocking(move || {
            let mut found = Vec::new();
            let Ok(folders) = std::fs::read_dir(&root) else { return Ok(found) };
            for folder in folders.flatten() {
                let Ok(files) = std::fs::read_dir(folder.path()) else { continue };
                for file in files.flatten() {
                    let name = file.file_name().to_string_lossy().into_owned();
                    let Some(sha256) = name.strip_suffix(".tar") else { continue };
                    if valid_hash(sha256).is_ok() {
                        let modified = file.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::now());
                        found.push((sha256.to_owned(), modified));
                    }
                }
            }
            Ok(found)
        }))
    }

    fn modified<'a>(&'a self, sha256: &'a str) -> Pending<'a, Option<SystemTime>> {
        let path = self.path(sha256);
        Box::pin(async move {
            match tokio::fs::metadata(path?).await {
                Ok(meta) => Ok(Some(meta.modified()?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn delete<'a>(&'a self, sha256: &'a str) -> Pending<'a, ()> {
        let path = self.path(sha256);
        Box::pin(async move {
            match tokio::fs::remove_file(path?).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
    }

    fn put_log<'a>(&'a self, _: &'a str, _: &'a Path) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn log<'a>(&'a self, _: &'a str) -> Pending<'a, Option<PathBuf>> {
        Box::pin(async { Ok(None) })
    }

    fn remove_logs_before(&self, _: SystemTime) -> Pending<'_, usize> {
        Box::pin(async { Ok(0) })
    }

    fn describe(&self) -> String {
        format!("the folder {}", self.root.display())
    }
}

/// Artifacts in an S3-compatible bucket (`prefix/ab/abcdef….tar`), with a
/// local cache of what this process fetched or stored (content-addressed,
/// so a cached copy never goes stale).
pub struct S3Store {
    store: Arc<dyn object_store::ObjectStore>,
    bucket: String,
    prefix: String,
    cache: PathBuf,
}

impl S3Store {
    fn new(config: &crate::config::Config, bucket: &str, prefix: &str) -> Result<Self, String> {
        use object_store::aws::AmazonS3Builder;
        use secrecy::ExposeSecret;
        install_tls_provider();
        // Credentials the configuration does not give come from the usual
        // AWS_* variables (or the instance's role).
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_region(&config.s3_region);
        if let Some(endpoint) = config.s3_endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = config.s3_access_key_id.as_deref().filter(|k| !k.is_empty()) {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.s3_secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder.build().map_err(|e| format!("the S3 artifact store cannot be used: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            cache: config.data_dir.join("artifact-cache"),
        })
    }

    fn key(&self, sha256: &str) -> std::io::Result<object_store::path::Path> {
        let relative = relative_path(sha256)?;
        let full = if self.prefix.is_empty() { relative } else { format!("{}/{relative}", self.prefix) };
        object_store::path::Path::parse(full).map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn log_prefix(&self) -> std::io::Result<object_store::path::Path> {
        let full = if self.prefix.is_empty() { "logs".to_owned() } else { format!("{}/logs", self.prefix) };
        object_store::path::Path::parse(full).map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn log_key(&self, action_execution_id: &str) -> std::io::Result<object_store::path::Path> {
        Ok(self.log_prefix()?.join(log_name(action_execution_id)?))
    }

    fn cached(&self, sha256: &str) -> std::io::Result<PathBuf> {
        Ok(self.cache.join(relative_path(sha256)?))
    }
}

/// rustls needs one process-wide crypto provider; ring is already in the
/// build (through the broker's client), so it is the one.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn s3_error(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, "no such artifact"),
        other => std::io::Error::other(other.to_string()),
    }
}

impl ArtifactStore for S3Store {
    fn put<'a>(&'a self, name: &'a str, archive: &'a Path) -> Pending<'a, ArtifactLocation> {
        Box::pin(async move {
            use object_store::{ObjectStoreExt, WriteMultipart};
            let (owned_name, owned_archive) = (name.to_owned(), archive.to_path_buf());
            let (sha256, size) = blocking(move || digest(&owned_name, &owned_archive)).await?;
            let key = self.key(&sha256)?;
            // Stored already, and recently: nothing to send. An older copy
            // is sent again, so that it counts as new for the retention
            // period (its sweep deletes what was stored before the period
            // and is not referred to yet).
            let stored = match self.store.head(&key).await {
                Ok(meta) => SystemTime::from(meta.last_modified)
                    .elapsed()
                    .is_ok_and(|age| age < std::time::Duration::from_secs(24 * 3600)),
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => return Err(s3_error(e)),
            };
            if !stored {
                // In parts, so that a large artifact is never all in memory.
                let upload = self.store.put_multipart(&key).await.map_err(s3_error)?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
                let sent = async {
                    let mut file = tokio::fs::File::open(archive).await?;
                    let mut buffer = vec![0u8; 1024 * 1024];
                    loop {
                        use tokio::io::AsyncReadExt;
                        let read = file.read(&mut buffer).await?;
                        if read == 0 {
                            return Ok(());
                        }
                        writer.wait_for_capacity(4).await.map_err(s3_error)?;
                        writer.write(&buffer[..read]);
                    }
                }
                .await;
                match sent {
                    Ok(()) => {
                        writer.finish().await.map_err(s3_error)?;
                    }
                    Err(e) => {
                        // No orphaned parts left in the bucket.
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                }
            }
            let (from, to) = (archive.to_path_buf(), self.cached(&sha256)?);
            blocking(move || move_file(&from, &to)).await?;
            Ok(ArtifactLocation { name: name.to_owned(), sha256, size })
        })
    }

    fn local<'a>(&'a self, sha256: &'a str) -> Pending<'a, PathBuf> {
        Box::pin(async move {
            use futures_util::StreamExt;
            use object_store::ObjectStoreExt;
            let cached = self.cached(sha256)?;
            if tokio::fs::try_exists(&cached).await? {
                return Ok(cached);
            }
            let key = self.key(sha256)?;
            let found = self.store.get(&key).await.map_err(s3_error)?;
            if let Some(parent) = cached.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let partial = cached.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
            let fetched = async {
                use tokio::io::AsyncWriteExt;
                let mut out = tokio::fs::File::create(&partial).await?;
                let mut hasher = Sha256::new();
                let mut stream = found.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(s3_error)?;
                    hasher.update(&chunk);
                    out.write_all(&chunk).await?;
                }
                out.flush().await?;
                // Content-addressed: what came back must be what was stored.
                if hex(&hasher.finalize()) != sha256 {
                    return Err(std::io::Error::other("the stored artifact does not match its hash"));
                }
                tokio::fs::rename(&partial, &cached).await
            }
            .await;
            if fetched.is_err() {
                let _ = tokio::fs::remove_file(&partial).await;
            }
            fetched.map(|()| cached)
        })
    }

    fn list(&self) -> Pending<'_, Vec<(String, SystemTime)>> {
        Box::pin(async move {
            use futures_util::StreamExt;
            let prefix = (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
            let mut listing = self.store.list(prefix.as_ref());
            let mut found = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(s3_error)?;
                let Some(file) = meta.location.filename() else { continue };
                let Some(sha256) = file.strip_suffix(".tar") else { continue };
                if valid_hash(sha256).is_ok() {
                    found.push((sha256.to_owned(), SystemTime::from(meta.last_modified)));
                }
            }
            Ok(found)
        })
    }

    fn modified<'a>(&'a self, sha256: &'a str) -> Pending<'a, Option<SystemTime>> {
        Box::pin(async move {
            use object_store::ObjectStoreExt;
            match self.store.head(&self.key(sha256)?).await {
                Ok(meta) => Ok(Some(SystemTime::from(meta.last_modified))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(s3_error(e)),
            }
        })
    }

    fn delete<'a>(&'a self, sha256: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            use object_store::ObjectStoreExt;
            match self.store.delete(&self.key(sha256)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error(e)),
            }
            let _ = tokio::fs::remove_file(self.cached(sha256)?).await;
            Ok(())
        })
    }

    fn put_log<'a>(&'a self, action_execution_id: &'a str, log: &'a Path) -> Pending<'a, ()> {
        Box::pin(async move {
            use object_store::ObjectStoreExt;
            let key = self.log_key(action_execution_id)?;
            let text = match tokio::fs::read(log).await {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            self.store.put(&key, text.into()).await.map_err(s3_error)?;
            Ok(())
        })
    }

    fn log<'a>(&'a self, action_execution_id: &'a str) -> Pending<'a, Option<PathBuf>> {
        Box::pin(async move {
            use object_store::ObjectStoreExt;
            let key = self.log_key(action_execution_id)?;
            let cached = self.cache.join("logs").join(log_name(action_execution_id)?);
            if tokio::fs::try_exists(&cached).await? {
                return Ok(Some(cached));
            }
            let found = match self.store.get(&key).await {
                Ok(found) => found,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(s3_error(e)),
            };
            let text = found.bytes().await.map_err(s3_error)?;
            tokio::fs::create_dir_all(self.cache.join("logs")).await?;
            let partial = cached.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&partial, &text).await?;
            tokio::fs::rename(&partial, &cached).await?;
            Ok(Some(cached))
        })
    }

    fn remove_logs_before(&self, cutoff: SystemTime) -> Pending<'_, usize> {
        Box::pin(async move {
            use futures_util::StreamExt;
            use object_store::ObjectStoreExt;
            let prefix = self.log_prefix()?;
            let mut listing = self.store.list(Some(&prefix));
            let mut old = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(s3_error)?;
                if SystemTime::from(meta.last_modified) < cutoff {
                    old.push(meta.location);
                }
            }
            let mut removed = 0;
            for key in old {
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(s3_error(e)),
                }
            }
            Ok(removed)
        })
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Whether `path` (relative, `/`-separated) matches a glob of `*`, `?` and
/// `**` (any number of folders).
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    fn segments(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&pattern[1..], path) || (!path.is_empty() && segments(pattern, &path[1..])),
            (Some(p), Some(s)) => segment(p.as_bytes(), s.as_bytes()) && segments(&pattern[1..], &path[1..]),
            _ => false,
        }
    }
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => segment(&p[1..], s) || (!s.is_empty() && segment(p, &s[1..])),
            (Some(b'?'), Some(_)) => segment(&p[1..], &s[1..]),
            (Some(a), Some(b)) => a == b && segment(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.trim().trim_start_matches("./").split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments(&pattern, &path)
}

/// The most entries an archive may hold.
pub const MAX_ENTRIES: usize = 100_000;

/// Packs the files of `dir` that match any of `globs` (all files when none)
/// into a tar archive at `archive`. `.git` is left out. `dir` itself must
/// be a folder, not a link to one; a link inside is packed as a link when
/// it points inside `dir`, and refused when it points out: packing never
/// follows a link out of the workspace.
pub fn pack(dir: &Path, globs: &[String], archive: &Path) -> std::io::Result<usize> {
    let top = std::fs::symlink_metadata(dir)?;
    if !top.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is a link or a file, not a folder of the workspace; an output is never read through a link",
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        )));
    }
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let file = std::fs::File::create(archive)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut count = 0;
    for relative in files {
        let text = relative.to_string_lossy().replace('\\', "/");
        if !globs.is_empty() && !globs.iter().any(|g| glob_matches(g, &text)) {
            continue;
        }
        let path = dir.join(&relative);
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            if !link_stays_inside(&relative, &target) {
                return Err(std::io::Error::other(format!(
                    "{text} is a link to {}, outside the workspace; an artifact may hold links only to its own files (leave it out with outputFiles)",
                    target.display()
                )));
            }
        }
        builder.append_path_with_name(&path, &relative)?;
        count += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(count)
}

/// Whether a link at `link` (relative to the archive's folder) to `target`
/// points inside that folder, as written (never through another link:
/// the folders on the way are the archive's own).
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize =
        link.parent().map_or(0, |p| p.components().filter(|c| matches!(c, Component::Normal(_))).count());
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if (kind.is_file() || kind.is_symlink())
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// Checks every entry of a tar archive before anything is unpacked: none
/// may land outside the archive's folder (an absolute path, `..`), no link
/// may point out of it, only files, folders and links are taken, and the
/// entries and their sizes stay within [`MAX_ENTRIES`] and [`MAX_SIZE`].
/// Returns the number of entries.
pub fn check(archive: &Path) -> std::io::Result<usize> {
    use std::path::Component;
    let refused = |m: String| Err(std::io::Error::other(m));
    let mut archive = tar::Archive::new(std::fs::File::open(archive)?);
    let (mut count, mut total) = (0usize, 0u64);
    // Every entry's path, and each link's target as a path from the top:
    // checked together at the end, since a link may come after what goes
    // through it.
    let (mut paths, mut through) = (Vec::new(), Vec::new());
    let mut symlinks = std::collections::HashSet::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.into_owned();
        let shown = path.display();
        paths.push(plain(&path));
        if path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir | Component::RootDir)) {
            return refused(format!("entry {shown} leaves the archive's folder"));
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.map(std::borrow::Cow::into_owned).unwrap_or_default();
            // A hard link's target is named from the archive's top.
            let inside = if kind.is_hard_link() {
                link_stays_inside(Path::new("x"), &target)
            } else {
                link_stays_inside(&path, &target)
            };
            if !inside || target.as_os_str().is_empty() {
                return refused(format!(
                    "entry {shown} is a link to {}, outside the archive's folder; an archive may hold links only to its own files",
                    target.display()
                ));
            }
            let from = if kind.is_hard_link() { PathBuf::new() } else { plain(path.parent().unwrap_or(Path::new(""))) };
            through.push((plain(&path), from, target));
            if kind.is_symlink() {
                symlinks.insert(plain(&path));
            }
        } else if !(kind.is_file() || kind.is_dir() || kind.is_gnu_longname() || kind.is_pax_local_extensions()) {
            return refused(format!(
                "entry {shown} is a device, a pipe or another special file; only files, folders and links are taken"
            ));
        }
        count += 1;
        total = total.saturating_add(entry.size());
        if count > MAX_ENTRIES {
            return refused(format!("it holds over {MAX_ENTRIES} entries, the most taken"));
        }
        if total > MAX_SIZE {
            return refused(format!("its files come to over {MAX_SIZE} bytes, the most kept"));
        }
    }
    if count == 0 {
        return refused("the archive holds no files".to_owned());
    }
    // Nothing may be reached through a link of the archive: not an entry
    // under it (unpacking would write where the link points), nor a link's
    // target that goes through one (where `..` after it leads is not where
    // the text says).
    for path in &paths {
        if let Some(link) = path.ancestors().skip(1).find(|a| symlinks.contains(*a)) {
            return refused(format!(
                "entry {} is inside {}, a link of the archive; put files in folders, not behind links",
                path.display(),
                link.display()
            ));
        }
    }
    for (link, from, target) in &through {
        let mut at = from.clone();
        for component in target.components() {
            if symlinks.contains(&at) && !at.as_os_str().is_empty() {
                return refused(format!(
                    "entry {} is a link through {}, another link of the archive; name its target directly",
                    link.display(),
                    at.display()
                ));
            }
            match component {
                std::path::Component::Normal(part) => at.push(part),
                std::path::Component::ParentDir => {
                    at.pop();
                }
                _ => {}
            }
        }
    }
    Ok(count)
}

/// A path as its normal parts (no `.`, no trailing `/`).
fn plain(path: &Path) -> PathBuf {
    path.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect()
}

/// Writes the files of a zip archive into a tar archive at `archive` (the
/// one format artifacts are kept in); entries that would leave the
/// archive's folder are refused. Returns the number of files.
pub fn zip_to_tar(zip: &[u8], archive: &Path) -> std::io::Result<usize> {
    let mut reader = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(std::io::Error::other)?;
    let file = std::fs::File::create(archive)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let (mut count, mut total) = (0, 0u64);
    if reader.len() > MAX_ENTRIES {
        return Err(std::io::Error::other(format!("it holds over {MAX_ENTRIES} entries, the most taken")));
    }
    for index in 0..reader.len() {
        let mut entry = reader.by_index(index).map_err(std::io::Error::other)?;
        if entry.is_dir() {
            continue;
        }
        let Some(name) = entry.enclosed_name() else {
            let shown = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| "(unreadable name)".to_owned());
            return Err(std::io::Error::other(format!("entry {shown} leaves the archive's folder")));
        };
        if entry.is_symlink() {
            // A link's target is its content.
            let mut target = String::new();
            (&mut entry).take(4096).read_to_string(&mut target)?;
            if !link_stays_inside(&name, Path::new(&target)) {
                return Err(std::io::Error::other(format!(
                    "entry {} is a link to {target}, outside the archive's folder; an archive may hold links only to its own files",
                    name.display()
                )));
            }
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            header.set_mtime(0);
            builder.append_link(&mut header, &name, &target)?;
            count += 1;
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > MAX_SIZE {
            return Err(std::io::Error::other(format!("its files come to over {MAX_SIZE} bytes, the most kept")));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.size());
        header.set_mode(entry.unix_mode().map_or(0o644, |m| m & 0o777));
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        // The declared size is what is written (a longer entry is cut to it).
        let size = entry.size();
        builder.append_data(&mut header, &name, &mut (&mut entry).take(size))?;
        count += 1;
    }
    builder.into_inner()?.flush()?;
    if count == 0 {
        return Err(std::io::Error::other("the archive holds no files"));
    }
    Ok(count)
}

/// Writes the gzip-compressed `data` to `archive`, refusing more than
/// [`MAX_SIZE`] bytes once uncompressed (a small upload may unpack huge).
pub fn gunzip_to(data: &[u8], archive: &Path) -> std::io::Result<u64> {
    let mut out = std::fs::File::create(archive)?;
    let mut decoder = flate2::read::GzDecoder::new(data).take(MAX_SIZE + 1);
    let written = std::io::copy(&mut decoder, &mut out)?;
    if written > MAX_SIZE {
        return Err(std::io::Error::other(format!("it unpacks to over {MAX_SIZE} bytes, the most kept")));
    }
    Ok(written)
}

/// Removes the files in `dir` (and, with `nested`, its folders' files)
/// last modified before `cutoff`; how many.
pub fn remove_files_older(dir: &Path, cutoff: SystemTime, nested: bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if nested {
                removed += remove_files_older(&entry.path(), cutoff, false);
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

/// How long a copy fetched from an S3 store stays in a process's cache.
pub const CACHE_TIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the cached copies (of an S3 store) older than [`CACHE_TIME`].
pub fn sweep_cache(data_dir: &Path, now: SystemTime) -> usize {
    let cutoff = now.checked_sub(CACHE_TIME).unwrap_or(now);
    remove_files_older(&data_dir.join("artifact-cache"), cutoff, true)
}

/// Unpacks an archive into `dir`, once [`check`] found that no entry
/// leaves it and no link points out of it.
pub fn unpack(archive: &Path, dir: &Path) -> std::io::Result<()> {
    check(archive)?;
    std::fs::create_dir_all(dir)?;
    let mut archive = tar::Archive::new(std::fs::File::open(archive)?);
    archive.set_overwrite(true);
    // `unpack` refuses entries that would escape `dir`.
    archive.unpack(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_becomes_a_tar_of_the_same_files_and_one_that_escapes_is_refused() {
        use std::io::Write as _;
        let base = std::env::temp_dir().join(format!("pw-zip-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap_or_default();
        let zip_of = |entries: &[(&str, &str)]| {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (name, text) in entries {
                let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
                writer.start_file(*name, options).unwrap_or_else(|e| panic!("{e}"));
                writer.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            }
            writer.finish().unwrap_or_else(|e| panic!("{e}")).into_inner()
        };
        let archive = base.join("a.tar");
        let zip = zip_of(&[("src/main.sh", "echo hi"), ("README", "hello")]);
        assert_eq!(zip_to_tar(&zip, &archive).ok(), Some(2));
        assert_eq!(check(&archive).ok(), Some(2));
        unpack(&archive, &base.join("out")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(base.join("out/src/main.sh")).unwrap_or_default(), "echo hi");
        let escaping = zip_of(&[("../evil", "x")]);
        assert!(zip_to_tar(&escaping, &base.join("b.tar")).is_err());
        assert!(zip_to_tar(b"not a zip", &base.join("c.tar")).is_err());
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn globs_match_files_and_folders_at_any_depth() {
        assert!(glob_matches("dist/**", "dist/app.js"));
        assert!(glob_matches("dist/**", "dist/a/b/c.css"));
        assert!(glob_matches("**/*.txt", "notes.txt"));
        assert!(glob_matches("**/*.txt", "a/b/notes.txt"));
        assert!(glob_matches("*.tar", "out.tar"));
        assert!(!glob_matches("*.tar", "a/out.tar"));
        assert!(glob_matches("report-?.html", "report-1.html"));
        assert!(!glob_matches("dist/**", "src/main.rs"));
    }

    #[test]
    fn a_folder_packs_stores_and_unpacks_to_the_same_files() {
        let base = std::env::temp_dir().join(format!("pw-artifacts-{}", uuid::Uuid::new_v4()));
        let source = base.join("source");
        std::fs::create_dir_all(source.join("dist")).unwrap_or_default();
        std::fs::write(source.join("dist/app.js"), "console.log(1)").unwrap_or_default();
        std::fs::write(source.join("README"), "hello").unwrap_or_default();
        let archive = base.join("a.tar");
        assert_eq!(pack(&source, &["dist/**".to_owned()], &archive).ok(), Some(1));
        let store = LocalStore::new(base.join("store"));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
        let stored = runtime.block_on(store.put("BuildOut", &archive)).map_err(|e| e.to_string());
        let stored = stored.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.sha256.len(), 64);
        let listed = runtime.block_on(store.list()).unwrap_or_default();
        assert_eq!(listed.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), [stored.sha256.as_str()]);
        let target = base.join("out");
        let local = runtime.block_on(store.local(&stored.sha256)).unwrap_or_else(|e| panic!("{e}"));
        unpack(&local, &target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(target.join("dist/app.js")).unwrap_or_default(), "console.log(1)");
        assert!(!target.join("README").exists());
        runtime.block_on(store.delete(&stored.sha256)).unwrap_or_else(|e| panic!("{e}"));
        let gone = runtime.block_on(store.local(&stored.sha256)).map_err(|e| e.kind());
        assert_eq!(gone, Err(std::io::ErrorKind::NotFound));
        let _ = std::fs::remove_dir_all(base);
    }

    /// A tar archive of raw entries: (path, kind, link target), written
    /// byte by byte so that hostile names get through.
    fn raw_tar(path: &Path, entries: &[(&str, tar::EntryType, &str)]) {
        let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
        let mut builder = tar::Builder::new(file);
        for (name, kind, target) in entries {
            let mut header = tar::Header::new_gnu();
            let gnu = header.as_gnu_mut().unwrap_or_else(|| panic!("a gnu header"));
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
            header.set_entry_type(*kind);
            let body: &[u8] = if kind.is_file() { b"data" } else { b"" };
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, body).unwrap_or_else(|e| panic!("{e}"));
        }
        builder.finish().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn an_archive_with_an_entry_or_a_link_that_leaves_its_folder_is_refused_before_anything_is_unpacked() {
        use tar::EntryType::{Block, Directory, Link, Regular, Symlink};
        let base = std::env::temp_dir().join(format!("pw-links-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap_or_default();
        type Entries<'a> = &'a [(&'a str, tar::EntryType, &'a str)];
        let cases: &[(Entries, Option<&str>)] = &[
            (&[("a.txt", Regular, ""), ("lib", Directory, ""), ("lib/b", Symlink, "../a.txt")], None),
            (&[("a.txt", Regular, ""), ("copy", Link, "a.txt")], None),
            (&[("Extra", Symlink, "/var/lib/pipewright")], Some("entry Extra is a link to /var/lib/pipewright")),
            (&[("x/up", Symlink, "../../etc")], Some("entry x/up is a link to ../../etc")),
            (&[("key", Link, "../jwt.key")], Some("entry key is a link to ../jwt.key")),
            (&[("../escape.txt", Regular, "")], Some("entry ../escape.txt leaves the archive's folder")),
            (&[("/etc/cron.d/x", Regular, "")], Some("leaves the archive's folder")),
            (&[("disk", Block, "")], Some("entry disk is a device")),
            // A link through a link: each looks inside as written, but
            // lands outside when unpacked.
            (
                &[("a/b/l", Symlink, "../.."), ("a/b/l/Second", Symlink, "../../..")],
                Some("entry a/b/l/Second is inside a/b/l, a link of the archive"),
            ),
            (&[("up", Symlink, "."), ("up/x.txt", Regular, "")], Some("is inside up, a link of the archive")),
            (&[("d/l", Symlink, ".."), ("m", Symlink, "d/l/../x")], Some("entry m is a link through d/l")),
            (&[("d/l", Symlink, ".."), ("h", Link, "d/l/x")], Some("entry h is a link through d/l")),
            (&[("d/real.txt", Regular, ""), ("d/l", Symlink, "real.txt"), ("m", Symlink, "d/l")], None),
        ];
        for (i, (entries, refused)) in cases.iter().enumerate() {
            let archive = base.join(format!("{i}.tar"));
            raw_tar(&archive, entries);
            let target = base.join(format!("out-{i}"));
            let checked = check(&archive).map_err(|e| e.to_string());
            let unpacked = unpack(&archive, &target).map_err(|e| e.to_string());
            match refused {
                None => {
                    assert!(checked.is_ok() && unpacked.is_ok(), "case {i}: {checked:?} {unpacked:?}");
                }
                Some(says) => {
                    let err = checked.err().unwrap_or_default();
                    assert!(err.contains(says), "case {i}: {err}");
                    assert!(unpacked.is_err() && !target.exists(), "case {i}: something was unpacked");
                }
            }
        }
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn packing_never_follows_a_link_out_of_the_workspace() {
        let base = std::env::temp_dir().join(format!("pw-pack-links-{}", uuid::Uuid::new_v4()));
        let (workspace, secret) = (base.join("workspace"), base.join("data"));
        std::fs::create_dir_all(workspace.join("dist")).unwrap_or_default();
        std::fs::create_dir_all(&secret).unwrap_or_default();
        std::fs::write(secret.join("jwt.key"), "TOPSECRET").unwrap_or_default();
        std::fs::write(workspace.join("dist/app.js"), "1").unwrap_or_default();
        let archive = base.join("a.tar");
        // An output folder that is a link to the data folder.
        std::os::unix::fs::symlink(&secret, workspace.join("Extra")).unwrap_or_default();
        let err = pack(&workspace.join("Extra"), &[], &archive).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("never read through a link"), "{err}");
        // A link out inside the workspace.
        std::fs::remove_file(workspace.join("Extra")).unwrap_or_default();
        std::os::unix::fs::symlink(secret.join("jwt.key"), workspace.join("dist/key")).unwrap_or_default();
        let err = pack(&workspace, &[], &archive).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("dist/key is a link to"), "{err}");
        // A link inside is kept as a link.
        std::fs::remove_file(workspace.join("dist/key")).unwrap_or_default();
        std::os::unix::fs::symlink("app.js", workspace.join("dist/latest.js")).unwrap_or_default();
        assert_eq!(pack(&workspace, &[], &archive).ok(), Some(2));
        let out = base.join("out");
        unpack(&archive, &out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_link(out.join("dist/latest.js")).ok(), Some(PathBuf::from("app.js")));
        assert!(!std::fs::read_to_string(archive).unwrap_or_default().contains("TOPSECRET"));
        let _ = std::fs::remove_dir_all(base);
    }
}
