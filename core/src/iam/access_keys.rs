//! Access keys: an id and a secret a program exchanges for a token, or signs
//! its requests with (SigV4). The secret is shown once, at creation, and
//! kept as a hash (for the token exchange) and sealed under the
//! installation's secrets key (SigV4 needs the secret itself; decision 026).

use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::IamError;
use crate::auth::ids;
use crate::schema::iam_access_keys;

/// IAM's quota of access keys per user.
pub const KEYS_PER_USER: i64 = 2;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_access_keys)]
pub struct AccessKey {
    pub access_key_id: String,
    pub user_id: String,
    pub account_id: String,
    pub secret_hash: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Where a key's sealed secret is bound to: a sealed secret copied to
/// another key does not open.
fn place(key_id: &str) -> String {
    format!("access-key\0{key_id}")
}

/// Creates a key for the user; returns it with its secret, which is shown
/// only now.
pub async fn create(
    conn: &mut AsyncPgConnection,
    cipher: &crate::secrets::Cipher,
    account: &str,
    user_id: &str,
) -> Result<(AccessKey, String), IamError> {
    let count: i64 =
        iam_access_keys::table.filter(iam_access_keys::user_id.eq(user_id)).count().get_result(conn).await?;
    if count >= KEYS_PER_USER {
        return Err(IamError::LimitExceeded(format!(
            "a user may have at most {KEYS_PER_USER} access keys; delete one first"
        )));
    }
    let secret = ids::secret();
    let key_id = ids::entity_id("AKIA");
    let sealed = cipher.seal(&place(&key_id), &secret)?;
    let key = diesel::insert_into(iam_access_keys::table)
        .values((
            iam_access_keys::access_key_id.eq(&key_id),
            iam_access_keys::sealed_secret.eq(Some(sealed)),
            iam_access_keys::user_id.eq(user_id),
            iam_access_keys::account_id.eq(account),
            iam_access_keys::secret_hash.eq(ids::secret_hash(&secret)),
            iam_access_keys::status.eq("Active"),
        ))
        .returning(AccessKey::as_returning())
        .get_result(conn)
        .await?;
    Ok((key, secret))
}

/// A user's keys, each with whether it can sign (SigV4): a key made before
/// secrets were kept sealed cannot, and needs rotating for the AWS tools.
pub async fn list(conn: &mut AsyncPgConnection, user_id: &str) -> Result<Vec<(AccessKey, bool)>, IamError> {
    Ok(iam_access_keys::table
        .select((AccessKey::as_select(), iam_access_keys::sealed_secret.is_not_null()))
        .filter(iam_access_keys::user_id.eq(user_id))
        .order(iam_access_keys::created_at)
        .load(conn)
        .await?)
}

fn no_such_key(id: &str) -> IamError {
    IamError::NoSuchEntity(format!("the access key {id} cannot be found for this user"))
}

pub async fn set_status(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    key_id: &str,
    status: &str,
) -> Result<(), IamError> {
    if !matches!(status, "Active" | "Inactive") {
        return Err(IamError::InvalidInput(format!("status must be Active or Inactive, not {status:?}")));
    }
    let updated = diesel::update(
        iam_access_keys::table
            .filter(iam_access_keys::access_key_id.eq(key_id))
            .filter(iam_access_keys::user_id.eq(user_id)),
    )
    .set(iam_access_keys::status.eq(status))
    .execute(conn)
    .await?;
    if updated == 0 { Err(no_such_key(key_id)) } else { Ok(()) }
}

pub async fn delete(conn: &mut AsyncPgConnection, user_id: &str, key_id: &str) -> Result<(), IamError> {
    let deleted = diesel::delete(
        iam_access_keys::table
            .filter(iam_access_keys::access_key_id.eq(key_id))
            .filter(iam_access_keys::user_id.eq(user_id)),
    )
    .execute(conn)
    .await?;
    if deleted == 0 { Err(no_such_key(key_id)) } else { Ok(()) }
}

/// Whether `key_id` is an Active key of `user_id`: a token exchanged from a
/// key ends when the key is made Inactive or deleted.
/// (`user_id` None: whoever's key it is, for a role session the key's
/// token assumed.)
pub async fn is_active(conn: &mut AsyncPgConnection, key_id: &str, user_id: Option<&str>) -> Result<bool, IamError> {
    let mut query = iam_access_keys::table
        .select(iam_access_keys::status)
        .filter(iam_access_keys::access_key_id.eq(key_id))
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(iam_access_keys::user_id.eq(user_id));
    }
    let status: Option<String> = query.first(conn).await.optional()?;
    Ok(status.as_deref() == Some("Active"))
}

/// The active key with this id and secret, its last use recorded.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    key_id: &str,
    secret: &str,
) -> Result<Option<AccessKey>, IamError> {
    let key = iam_access_keys::table.select(AccessKey::as_select()).find(key_id).first(conn).await.optional()?;
    let hash = ids::secret_hash(secret);
    let Some(key) = key.filter(|k| k.status == "Active" && ids::hashes_equal(&k.secret_hash, &hash)) else {
        return Ok(None);
    };
    diesel::update(iam_access_keys::table.find(key_id))
        .set(iam_access_keys::last_used_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(Some(key))
}

/// What SigV4 finds for an access key id.
pub enum SigningKey {
    /// An active key of a user, and its secret.
    Active(AccessKey, secrecy::SecretString),
    /// Made before secrets were kept sealed: it can exchange tokens but not
    /// sign (make a new key).
    NeedsRotation,
    /// Unknown, or inactive.
    Unknown,
}

/// The secret SigV4 checks a request signed with `key_id` against.
pub async fn signing_key(
    conn: &mut AsyncPgConnection,
    cipher: &crate::secrets::Cipher,
    key_id: &str,
) -> Result<SigningKey, IamError> {
    let found: Option<(AccessKey, Option<Vec<u8>>)> = iam_access_keys::table
        .find(key_id)
        .select((AccessKey::as_select(), iam_access_keys::sealed_secret))
        .first(conn)
        .await
        .optional()?;
    let Some((key, sealed)) = found.filter(|(k, _)| k.status == "Active") else { return Ok(SigningKey::Unknown) };
    let Some(sealed) = sealed else { return Ok(SigningKey::NeedsRotation) };
    Ok(match cipher.open(&place(key_id), &sealed) {
        Some(secret) => SigningKey::Active(key, secret),
        // (Sealed under another secrets key: as good as unknown here.)
        None => SigningKey::Unknown,
    })
}

/// The session id of calls signed with an access key (SigV4): one per key,
/// the same on every server, so that a key's calls read as one session.
/// Signing out does not end it; deactivating or deleting the key does.
pub fn signing_session(key_id: &str) -> uuid::Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("pipewright:access-key:{key_id}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Records that a key signed a call (its `lastUsedDate`), at most once a
/// minute: a busy key does not write on every call.
pub async fn record_use(conn: &mut AsyncPgConnection, key_id: &str) -> Result<(), IamError> {
    let now = Utc::now();
    diesel::update(
        iam_access_keys::table.find(key_id).filter(
            iam_access_keys::last_used_at
                .is_null()
                .or(iam_access_keys::last_used_at.lt(now - chrono::TimeDelta::minutes(1))),
        ),
    )
    .set(iam_access_keys::last_used_at.eq(Some(now)))
    .execute(conn)
    .await?;
    Ok(())
}

/// A role session's temporary credentials for SigV4: an access key id
/// (`ASIA…`) and a secret, both derived from the session's id under the
/// installation's secrets key, so that nothing more is stored; the session
/// token that goes with them is the session's access token.
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: secrecy::SecretString,
}

pub fn session_credentials(cipher: &crate::secrets::Cipher, session: uuid::Uuid) -> SessionCredentials {
    use base64::Engine;
    let id = cipher.derive(&format!("session-access-key-id\0{session}"));
    let secret = cipher.derive(&format!("session-secret-access-key\0{session}"));
    let access_key_id = format!("ASIA{}", id[..8].iter().map(|b| format!("{b:02X}")).collect::<String>());
    let secret_access_key = base64::engine::general_purpose::STANDARD.encode(&secret[..30]).into();
    SessionCredentials { access_key_id, secret_access_key }
}
