//! The keys every api process shares: the access tokens' HMAC keys and the
//! audit digests' Ed25519 seeds. They are created once, in the database,
//! sealed under the installation's secrets key, each with an id; the newest
//! whose `signs_from` has come signs, the older ones still verify (decision
//! 016). Rotation adds a key that starts signing only after every process
//! has had time to load it ([`PROPAGATION`]).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest as _, Sha256};

use crate::schema::service_keys;
use crate::secrets::Cipher;

/// How often a process reloads the keys, so that it learns a rotation.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(20);

/// How long after its creation a rotated key starts signing: long enough
/// for every process to have loaded it ([`REFRESH`] twice, and some).
pub const PROPAGATION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// HS256 keys of access tokens.
    Jwt,
    /// Ed25519 seeds signing the audit digests.
    Audit,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Audit => "audit",
        }
    }

    /// The file an earlier version kept this key in, in the data folder.
    fn legacy_file(self) -> &'static str {
        match self {
            Self::Jwt => "jwt.key",
            Self::Audit => "audit-signing.key",
        }
    }
}

impl std::str::FromStr for Purpose {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "jwt" => Ok(Self::Jwt),
            "audit" => Ok(Self::Audit),
            other => Err(format!("{other:?} is not a key purpose: say jwt or audit")),
        }
    }
}

/// One key, opened.
pub struct ServiceKey {
    pub key_id: String,
    pub material: SecretSlice<u8>,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub verifies_until: Option<DateTime<Utc>>,
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("the database refused the keys: {0}")]
    Database(#[from] diesel::result::Error),
    #[error(
        "the {purpose} key {key_id} in the database does not open with this process's secrets key: give every \
         process of the installation the same PIPEWRIGHT_SECRETS_KEY"
    )]
    WrongSecretsKey { purpose: &'static str, key_id: String },
    #[error("{0}")]
    Other(String),
}

/// The id of a key: the start of a SHA-256 over its public part (the
/// Ed25519 public key) or, for an HMAC key, over the key under a label; it
/// tells nothing of the key.
pub fn key_id(purpose: Purpose, material: &[u8]) -> String {
    let hash = match purpose {
        Purpose::Audit => match crate::audit::digest::Signer::from_seed(material) {
            Ok(signer) => Sha256::digest(signer.public_key_bytes()),
            Err(_) => Sha256::digest(material),
        },
        Purpose::Jwt => {
            let mut hasher = Sha256::new();
            hasher.update(b"pipewright access-token key id\0");
            hasher.update(material);
            hasher.finalize()
        }
    };
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn place(purpose: Purpose, key_id: &str) -> String {
    format!("service-key\0{}\0{key_id}", purpose.as_str())
}

/// Key of the advisory lock under which the first key of a purpose is made.
fn lock_key(purpose: Purpose) -> i64 {
    match purpose {
        Purpose::Jwt => 0x7077_6b65_7973_0001,
        Purpose::Audit => 0x7077_6b65_7973_0002,
    }
}

diesel::define_sql_function!(fn pg_advisory_xact_lock(key: diesel::sql_types::BigInt));

/// Makes the purpose's first key when the database has none: the one an
/// earlier version kept in the data folder when there is one (so that
/// tokens and digests made before keep verifying), else a new one. Many
/// processes starting at once agree on one key.
pub async fn ensure(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    purpose: Purpose,
    data_dir: &Path,
) -> Result<(), KeyringError> {
    let legacy = data_dir.join(purpose.legacy_file());
    let material = match std::fs::read_to_string(&legacy) {
        Ok(text) => match STANDARD.decode(text.trim()) {
            Ok(bytes) if bytes.len() >= 32 => Some(SecretSlice::from(bytes)),
            _ => None,
        },
        Err(_) => None,
    };
    let cipher = cipher.clone();
    conn.transaction::<_, KeyringError, _>(async move |conn| {
        diesel::select(pg_advisory_xact_lock(lock_key(purpose))).execute(conn).await?;
        let count: i64 =
            service_keys::table.filter(service_keys::purpose.eq(purpose.as_str())).count().get_result(conn).await?;
        if count > 0 {
            return Ok(());
        }
        let imported = material.is_some();
        let material = match material {
            Some(material) => material,
            None => random_key()?,
        };
        let at = DateTime::<Utc>::UNIX_EPOCH;
        insert(conn, &cipher, purpose, &material, at).await?;
        tracing::info!(purpose = purpose.as_str(), imported, "made the installation's first key");
        Ok(())
    })
    .await
}

fn random_key() -> Result<SecretSlice<u8>, KeyringError> {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyringError::Other(format!("no randomness: {e}")))?;
    Ok(SecretSlice::from(bytes))
}

async fn insert(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    purpose: Purpose,
    material: &SecretSlice<u8>,
    signs_from: DateTime<Utc>,
) -> Result<String, KeyringError> {
    let id = key_id(purpose, material.expose_secret());
    let text = SecretString::from(STANDARD.encode(material.expose_secret()));
    let sealed = cipher
        .seal(&place(purpose, &id), text.expose_secret())
        .map_err(|e| KeyringError::Other(format!("the key could not be sealed: {e}")))?;
    diesel::insert_into(service_keys::table)
        .values((
            service_keys::purpose.eq(purpose.as_str()),
            service_keys::key_id.eq(&id),
            service_keys::sealed.eq(sealed),
            service_keys::signs_from.eq(signs_from),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// The purpose's keys that still verify at `now`, oldest first.
pub async fn load(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Vec<ServiceKey>, KeyringError> {
    type Row = (String, Vec<u8>, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = service_keys::table
        .filter(service_keys::purpose.eq(purpose.as_str()))
        .order((service_keys::signs_from.asc(), service_keys::created_at.asc()))
        .select((
            service_keys::key_id,
            service_keys::sealed,
            service_keys::created_at,
            service_keys::signs_from,
            service_keys::verifies_until,
        ))
        .load(conn)
        .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for (key_id, sealed, created_at, signs_from, verifies_until) in rows {
        if verifies_until.is_some_and(|until| until <= now) {
            continue;
        }
        let wrong = || KeyringError::WrongSecretsKey { purpose: purpose.as_str(), key_id: key_id.clone() };
        let text = cipher.open(&place(purpose, &key_id), &sealed).ok_or_else(wrong)?;
        let material = STANDARD.decode(text.expose_secret()).map_err(|_| wrong())?;
        keys.push(ServiceKey { key_id, material: SecretSlice::from(material), created_at, signs_from, verifies_until });
    }
    Ok(keys)
}

/// Adds a new key of the purpose that signs from `now + PROPAGATION`. The
/// keys before it stop verifying `verify_old_for` after that (never when
/// `None`: audit digests stay verifiable). Returns the new key's id and
/// when it signs from.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    purpose: Purpose,
    now: DateTime<Utc>,
    verify_old_for: Option<chrono::TimeDelta>,
) -> Result<(String, DateTime<Utc>), KeyringError> {
    let cipher = cipher.clone();
    conn.transaction::<_, KeyringError, _>(async move |conn| {
        diesel::select(pg_advisory_xact_lock(lock_key(purpose))).execute(conn).await?;
        let signs_from = now + PROPAGATION;
        if let Some(grace) = verify_old_for {
            diesel::update(service_keys::table)
                .filter(service_keys::purpose.eq(purpose.as_str()))
                .filter(service_keys::verifies_until.is_null())
                .set(service_keys::verifies_until.eq(signs_from + grace))
                .execute(conn)
                .await?;
            // Keys that verify nothing any more are of no use to keep.
            diesel::delete(service_keys::table)
                .filter(service_keys::purpose.eq(purpose.as_str()))
                .filter(service_keys::verifies_until.lt(now))
                .execute(conn)
                .await?;
        }
        let id = insert(conn, &cipher, purpose, &random_key()?, signs_from).await?;
        Ok((id, signs_from))
    })
    .await
}

/// The key that signs at `now`: the newest whose `signs_from` has come.
pub fn signing_at(keys: &[ServiceKey], now: DateTime<Utc>) -> Option<&ServiceKey> {
    keys.iter().rev().find(|key| key.signs_from <= now)
}

/// The keys an api process holds: the access tokens' ring and the audit
/// ring, reloaded from the database every [`REFRESH`] (the tokens' ring
/// stays as configured when `PIPEWRIGHT_JWT_SECRET` is given).
#[derive(Clone)]
pub struct SharedKeys {
    pub tokens: crate::auth::tokens::TokenKeys,
    pub audit: crate::audit::digest::AuditKeys,
    cipher: Cipher,
    configured_tokens: bool,
    /// When the rings were last loaded because a token named an unknown key.
    asked: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl SharedKeys {
    /// Makes the first keys when the database has none, then loads them.
    pub async fn open(
        conn: &mut AsyncPgConnection,
        config: &crate::config::Config,
        cipher: &Cipher,
    ) -> Result<Self, KeyringError> {
        let configured = configured_token_keys(config)?;
        if configured.is_none() {
            ensure(conn, cipher, Purpose::Jwt, &config.data_dir).await?;
        }
        ensure(conn, cipher, Purpose::Audit, &config.data_dir).await?;
        let keys = Self {
            configured_tokens: configured.is_some(),
            tokens: crate::auth::tokens::TokenKeys::from_keys(configured.unwrap_or_default()),
            audit: crate::audit::digest::AuditKeys::new(Vec::new()),
            cipher: cipher.clone(),
            asked: std::sync::Arc::default(),
        };
        keys.reload(conn).await?;
        Ok(keys)
    }

    /// Loads the rings again because a token named a key this process does
    /// not know (made since its last load), at most once a second however
    /// many such tokens come. Whether it loaded.
    pub async fn reload_for_unknown_key(&self, db: &crate::db::Db) -> bool {
        {
            let mut asked = self.asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
                return false;
            }
            *asked = Some(std::time::Instant::now());
        }
        let reloaded = match db.conn().await {
            Ok(mut conn) => self.reload(&mut conn).await,
            Err(e) => Err(KeyringError::Other(e.explain())),
        };
        match reloaded {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the shared keys could not be reloaded");
                false
            }
        }
    }

    /// Loads the rings again (a rotation made since is learnt).
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> Result<(), KeyringError> {
        let now = Utc::now();
        if !self.configured_tokens {
            let tokens = load(conn, &self.cipher, Purpose::Jwt, now).await?;
            self.tokens.replace(
                tokens
                    .into_iter()
                    .map(|k| (k.key_id, k.material.expose_secret().to_vec(), k.signs_from, k.verifies_until))
                    .collect(),
            );
        }
        let mut audit = Vec::new();
        for key in load(conn, &self.cipher, Purpose::Audit, now).await? {
            let signer = crate::audit::digest::Signer::from_seed(key.material.expose_secret())
                .map_err(|e| KeyringError::Other(format!("audit key {}: {e}", key.key_id)))?;
            audit.push((key.key_id, signer, key.signs_from.max(key.created_at)));
        }
        self.audit.replace(audit);
        Ok(())
    }
}

/// `PIPEWRIGHT_JWT_SECRET` (signs) and `PIPEWRIGHT_JWT_PREVIOUS_SECRETS`
/// (verify only, comma separated), when given.
fn configured_token_keys(
    config: &crate::config::Config,
) -> Result<Option<Vec<crate::auth::tokens::KeySpec>>, KeyringError> {
    let Some(current) = &config.jwt_secret else {
        return Ok(None);
    };
    let decode = |text: &str, name: &str| -> Result<Vec<u8>, KeyringError> {
        match STANDARD.decode(text.trim()) {
            Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
            _ => Err(KeyringError::Other(format!("{name} must hold keys of at least 32 bytes, base64-encoded"))),
        }
    };
    let mut keys = Vec::new();
    if let Some(previous) = &config.jwt_previous_secrets {
        for text in previous.expose_secret().split(',').filter(|t| !t.trim().is_empty()) {
            let bytes = decode(text, "PIPEWRIGHT_JWT_PREVIOUS_SECRETS")?;
            keys.push((key_id(Purpose::Jwt, &bytes), bytes, DateTime::<Utc>::UNIX_EPOCH, None));
        }
    }
    let bytes = decode(current.expose_secret(), "PIPEWRIGHT_JWT_SECRET")?;
    // Listed last, it signs; it signs from the epoch as the others do, so
    // the newest (the last) wins.
    keys.push((key_id(Purpose::Jwt, &bytes), bytes, DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::seconds(1), None));
    Ok(Some(keys))
}
