//! Secrets the service makes for itself: generated into the data folder on
//! first start, read back on later starts, never logged.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// A key file could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct KeyError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

/// Returns the secret named `name` (base64 text in `data_dir/name`), creating
/// it with `len` random bytes, readable by the owner only, when absent. Two
/// processes starting at once agree on one key.
pub fn load_or_create(data_dir: &Path, name: &str, len: usize) -> Result<SecretSlice<u8>, KeyError> {
    let path = data_dir.join(name);
    let err = |action, source| KeyError { action, path: path.clone(), source };
    fs::create_dir_all(data_dir).map_err(|e| err("cannot create the data folder for", e))?;
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| err("no randomness for", io::Error::other(e)))?;
    let encoded = SecretString::from(STANDARD.encode(&bytes));
    bytes.fill(0);
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
        Ok(mut file) => {
            file.write_all(encoded.expose_secret().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| err("cannot write", e))?;
            tracing::info!(path = %path.display(), "generated a new key");
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("cannot create", e)),
    }
    read(&path).map_err(|e| err("cannot read", e))
}

/// Decodes a base64 secret given in the configuration.
pub fn decode(secret: &SecretString) -> Result<SecretSlice<u8>, base64::DecodeError> {
    STANDARD.decode(secret.expose_secret().trim()).map(SecretSlice::from)
}

fn read(path: &Path) -> io::Result<SecretSlice<u8>> {
    // A writer racing us may not have finished: retry briefly on short reads.
    for _ in 0..50 {
        let mut text = String::new();
        OpenOptions::new().read(true).open(path)?.read_to_string(&mut text)?;
        if let Ok(bytes) = STANDARD.decode(text.trim())
            && !bytes.is_empty()
        {
            return Ok(SecretSlice::from(bytes));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "not a base64 key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("pw-keys-{}", std::process::id()));
        let first = load_or_create(&dir, "jwt.key", 32).expect("made");
        let again = load_or_create(&dir, "jwt.key", 32).expect("read");
        assert_eq!(first.expose_secret().len(), 32);
        assert_eq!(first.expose_secret(), again.expose_secret());
        let mode = fs::metadata(dir.join("jwt.key")).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).expect("cleaned");
    }
}
