//! Digests: ranges of an account's chain sealed with an Ed25519 signature,
//! each naming the one before, so that deleting the newest events (or a whole
//! range) is caught and an export can be checked offline with the public key.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::GENESIS;
use crate::iam::IamError;
use crate::schema::{audit_chain_heads, audit_digests};

/// The service's audit signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// From a 32-byte seed (kept in the data folder).
    pub fn from_seed(seed: &[u8]) -> Result<Self, String> {
        let seed: [u8; 32] = seed.get(..32).and_then(|s| s.try_into().ok()).ok_or("the audit key needs 32 bytes")?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }

    fn verifying(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// SHA-256 of the public key, hex.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.public_key_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The 32 bytes of the Ed25519 public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.verifying().to_bytes()
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for offline checks.
    pub fn public_key_pem(&self) -> String {
        // SPKI for Ed25519: a fixed 12-byte header, then the 32-byte key.
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(self.verifying().as_bytes());
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    fn sign(&self, message: &str) -> String {
        STANDARD.encode(self.key.sign(message.as_bytes()).to_bytes())
    }

    /// Whether `signature` (base64) is ours over `message`.
    pub fn verify(&self, message: &str, signature: &str) -> bool {
        STANDARD
            .decode(signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .is_some_and(|sig| self.verifying().verify(message.as_bytes(), &sig).is_ok())
    }
}

/// One audit key of the ring, by its id, with when it signed.
#[derive(Clone)]
pub struct AuditKey {
    pub key_id: String,
    pub signer: Signer,
    pub valid_from: DateTime<Utc>,
    /// When the next key took over (`None`: it signs now).
    pub valid_until: Option<DateTime<Utc>>,
}

/// The audit keys, shared by every clone: the newest whose time has come
/// signs; every one verifies the digests it signed, for ever.
#[derive(Clone)]
pub struct AuditKeys {
    ring: Arc<RwLock<Arc<Vec<AuditKey>>>>,
}

impl AuditKeys {
    /// A ring of `(id, signer, signs from)`, oldest first.
    pub fn new(keys: Vec<(String, Signer, DateTime<Utc>)>) -> Self {
        let ring = Self { ring: Arc::new(RwLock::new(Arc::new(Vec::new()))) };
        ring.replace(keys);
        ring
    }

    /// A ring of one key (tests, tools).
    pub fn single(signer: Signer) -> Self {
        let id = crate::keyring::key_id(crate::keyring::Purpose::Audit, &signer.key.to_bytes());
        Self::new(vec![(id, signer, DateTime::<Utc>::UNIX_EPOCH)])
    }

    /// Swaps in a reloaded ring.
    pub fn replace(&self, keys: Vec<(String, Signer, DateTime<Utc>)>) {
        let mut ring: Vec<AuditKey> = keys
            .into_iter()
            .map(|(key_id, signer, valid_from)| AuditKey { key_id, signer, valid_from, valid_until: None })
            .collect();
        for i in 1..ring.len() {
            ring[i - 1].valid_until = Some(ring[i].valid_from);
        }
        *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Arc<Vec<AuditKey>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The key that signs now.
    pub fn signing(&self) -> Option<AuditKey> {
        let now = Utc::now();
        let ring = self.keys();
        ring.iter().rev().find(|k| k.valid_from <= now).or_else(|| <[AuditKey]>::first(&ring)).cloned()
    }

    /// Whether the key `key_id` names (any key, for a digest signed before
    /// keys had ids) signed `message`.
    pub fn verify(&self, key_id: Option<&str>, message: &str, signature: &str) -> bool {
        self.keys()
            .iter()
            .filter(|k| key_id.is_none_or(|id| id == k.key_id))
            .any(|k| k.signer.verify(message, signature))
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_digests)]
pub struct DigestRow {
    pub account_id: String,
    pub digest_seq: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub last_hash: String,
    pub prev_digest_hash: String,
    pub digest_hash: String,
    pub signature: String,
    pub created_at: DateTime<Utc>,
    pub key_id: Option<String>,
}

/// What a digest signs.
pub fn digest_hash(account: &str, digest_seq: i64, first: i64, last: i64, last_hash: &str, prev: &str) -> String {
    let text = format!("{account}|{digest_seq}|{first}|{last}|{last_hash}|{prev}");
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals the account's events recorded since its last digest, if any.
pub async fn seal(conn: &mut AsyncPgConnection, keys: &AuditKeys, account: &str) -> Result<bool, IamError> {
    let Some(key) = keys.signing() else {
        return Ok(false);
    };
    let account = account.to_owned();
    conn.transaction::<_, IamError, _>(async move |conn| {
        // The head's lock keeps appends out while the range is read.
        let Some((seq, hash)): Option<(i64, String)> = audit_chain_heads::table
            .find(&account)
            .select((audit_chain_heads::seq, audit_chain_heads::hash))
            .for_update()
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(false);
        };
        let last: Option<DigestRow> = audit_digests::table
            .select(DigestRow::as_select())
            .filter(audit_digests::account_id.eq(&account))
            .order(audit_digests::digest_seq.desc())
            .first(conn)
            .await
            .optional()?;
        let (digest_seq, first, prev) = match &last {
            Some(d) if d.last_seq >= seq => return Ok(false),
            Some(d) => (d.digest_seq + 1, d.last_seq + 1, d.digest_hash.clone()),
            None => (1, 1, GENESIS.to_owned()),
        };
        let digest = digest_hash(&account, digest_seq, first, seq, &hash, &prev);
        diesel::insert_into(audit_digests::table)
            .values((
                audit_digests::account_id.eq(&account),
                audit_digests::digest_seq.eq(digest_seq),
                audit_digests::first_seq.eq(first),
                audit_digests::last_seq.eq(seq),
                audit_digests::last_hash.eq(&hash),
                audit_digests::prev_digest_hash.eq(&prev),
                audit_digests::signature.eq(key.signer.sign(&digest)),
                audit_digests::key_id.eq(&key.key_id),
                audit_digests::digest_hash.eq(&digest),
            ))
            .execute(conn)
            .await?;
        Ok(true)
    })
    .await
}

/// Seals every account with events not yet in a digest.
pub async fn seal_all(conn: &mut AsyncPgConnection, keys: &AuditKeys) -> Result<usize, IamError> {
    let accounts: Vec<String> = audit_chain_heads::table.select(audit_chain_heads::account_id).load(conn).await?;
    let mut sealed = 0;
    for account in accounts {
        if seal(conn, keys, &account).await? {
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// The account's digests, oldest first.
pub async fn digests(conn: &mut AsyncPgConnection, account: &str) -> Result<Vec<DigestRow>, IamError> {
    Ok(audit_digests::table
        .select(DigestRow::as_select())
        .filter(audit_digests::account_id.eq(account))
        .order(audit_digests::digest_seq.asc())
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let signer = Signer::from_seed(&[7u8; 32]).expect("a seed");
        let signature = signer.sign("abc");
        assert!(signer.verify("abc", &signature));
        assert!(!signer.verify("abd", &signature));
        assert!(!Signer::from_seed(&[8u8; 32]).expect("a seed").verify("abc", &signature));
        assert!(signer.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    }
}
