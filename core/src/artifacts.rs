//! Artifacts: what actions hand each other, as tar archives in a store
//! behind one trait, addressed by the SHA-256 of their content. The local
//! store keeps them under the data folder.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::executions::store::ArtifactLocation;

/// The largest artifact accepted (1 GiB).
pub const MAX_SIZE: u64 = 1 << 30;

/// Where artifacts are kept.
pub trait ArtifactStore: Send + Sync {
    /// Stores the archive at `archive` (consumed) under its hash.
    fn put(&self, name: &str, archive: &Path) -> std::io::Result<ArtifactLocation>;
    /// The path of a stored archive, to read.
    fn path(&self, sha256: &str) -> std::io::Result<PathBuf>;
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
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactStore for LocalStore {
    fn put(&self, name: &str, archive: &Path) -> std::io::Result<ArtifactLocation> {
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
            hasher.update(&buffer[..read]);
        }
        if size > MAX_SIZE {
            return Err(std::io::Error::other(format!("artifact {name} is {size} bytes; at most {MAX_SIZE} are kept")));
        }
        let sha256 = hex(&hasher.finalize());
        let target = self.path(&sha256)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !target.exists() {
            // Same filesystem: a rename is atomic, and a copy is the fallback.
            if std::fs::rename(archive, &target).is_err() {
                let partial = target.with_extension("partial");
                std::fs::copy(archive, &partial)?;
                std::fs::rename(&partial, &target)?;
            }
        }
        Ok(ArtifactLocation { name: name.to_owned(), sha256, size })
    }

    fn path(&self, sha256: &str) -> std::io::Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::other("not an artifact hash"));
        }
        Ok(self.root.join(&sha256[..2]).join(format!("{sha256}.tar")))
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

/// Packs the files of `dir` that match any of `globs` (all files when none)
/// into a tar archive at `archive`. `.git` is left out.
pub fn pack(dir: &Path, globs: &[String], archive: &Path) -> std::io::Result<usize> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let file = std::fs::File::create(archive)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    let mut count = 0;
    for relative in files {
        let text = relative.to_string_lossy().replace('\\', "/");
        if !globs.is_empty() && !globs.iter().any(|g| glob_matches(g, &text)) {
            continue;
        }
        builder.append_path_with_name(dir.join(&relative), &relative)?;
        count += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(count)
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
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// Whether a file is a readable tar archive; its number of entries.
pub fn check(archive: &Path) -> std::io::Result<usize> {
    let mut archive = tar::Archive::new(std::fs::File::open(archive)?);
    let mut count = 0;
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?;
        if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(std::io::Error::other(format!("entry {} leaves the archive's folder", path.display())));
        }
        count += 1;
    }
    if count == 0 {
        return Err(std::io::Error::other("the archive holds no files"));
    }
    Ok(count)
}

/// Unpacks an archive into `dir` (entries may not leave it).
pub fn unpack(archive: &Path, dir: &Path) -> std::io::Result<()> {
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
        let stored = store.put("BuildOut", &archive).map_err(|e| e.to_string());
        let stored = stored.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.sha256.len(), 64);
        let target = base.join("out");
        unpack(&store.path(&stored.sha256).unwrap_or_default(), &target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(target.join("dist/app.js")).unwrap_or_default(), "console.log(1)");
        assert!(!target.join("README").exists());
        let _ = std::fs::remove_dir_all(base);
    }
}
