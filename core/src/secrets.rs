//! An account's secrets, as Secrets Manager keeps them: a name, a
//! description, tags and a value, the value sealed at rest with AES-256-GCM
//! (ring's) under the installation's secrets key. No API answers a value:
//! an action gets one through a `SECRETS_MANAGER` environment variable,
//! read when it starts under its pipeline's role ([`for_action`]).

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::Config;
use crate::iam::names::Tag;
use crate::iam::paging::Page;
use crate::iam::{IamError, is_unique_violation};
use crate::schema::secrets;

/// The service principal that assumes a pipeline's role, as
/// `codepipeline.amazonaws.com` does in AWS.
pub const SERVICE_PRINCIPAL: &str = "codepipeline.pw";

/// Largest value, as in Secrets Manager.
pub const MAX_VALUE_BYTES: usize = 65_536;

/// The key values are sealed with.
#[derive(Clone)]
pub struct Cipher {
    key: std::sync::Arc<LessSafeKey>,
    /// Derives per-purpose values (a role session's SigV4 secret): HMAC
    /// under a key of its own, itself derived from the secrets key.
    derive: std::sync::Arc<ring::hmac::Key>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// `PIPEWRIGHT_SECRETS_KEY` (32 bytes, base64), else `secrets.key` in
    /// the data folder, generated on first start.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let bytes = match &config.secrets_key {
            Some(given) => crate::keys::decode(given)
                .map_err(|_| "PIPEWRIGHT_SECRETS_KEY must be 32 bytes, base64-encoded".to_owned())?,
            None => crate::keys::load_or_create(&config.data_dir, "secrets.key", 32)
                .map_err(|e| format!("{e} (set PIPEWRIGHT_DATA_DIR to a writable folder)"))?,
        };
        let key = UnboundKey::new(&AES_256_GCM, bytes.expose_secret())
            .map_err(|_| "PIPEWRIGHT_SECRETS_KEY must be 32 bytes, base64-encoded".to_owned())?;
        let separate = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes.expose_secret()),
            b"pipewright derivation key",
        );
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, separate.as_ref());
        Ok(Self { key: std::sync::Arc::new(LessSafeKey::new(key)), derive: std::sync::Arc::new(derive) })
    }

    /// A value only this installation can compute, for `purpose` (which
    /// names what it is for and what it is bound to).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let tag = ring::hmac::sign(&self.derive, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The value sealed, bound to where it is kept (so that a sealed value
    /// copied to another row or account does not open): nonce ‖ ciphertext.
    pub(crate) fn seal(&self, place: &str, value: &str) -> Result<Vec<u8>, IamError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| IamError::InvalidInput(format!("no randomness: {e}")))?;
        let mut sealed = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(place.as_bytes()), &mut sealed)
            .map_err(|_| IamError::InvalidInput("the value could not be sealed".to_owned()))?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(out)
    }

    pub(crate) fn open(&self, place: &str, sealed: &[u8]) -> Option<SecretString> {
        let (nonce, ciphertext) = sealed.split_at_checked(12)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(place.as_bytes()), &mut buffer).ok()?;
        let value = String::from_utf8(plain.to_vec()).ok().map(SecretString::from);
        buffer.fill(0);
        value
    }
}

fn place(account: &str, name: &str, version: Uuid) -> String {
    format!("{account}\0{name}\0{version}")
}

/// Secrets Manager's names: 1–512 of letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 512
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if valid { Ok(()) } else { Err(format!("{name:?} is not a secret name: 1 to 512 letters, digits and /_+=.@-")) }
}

/// `arn:pw:secretsmanager:REGION:ACCOUNT:secret:NAME`
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:pw:secretsmanager:{region}:{account}:secret:{name}")
}

/// A secret's description; never its value.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = secrets)]
pub struct Secret {
    pub account_id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: serde_json::Value,
    pub version_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    pub accessed_at: Option<DateTime<Utc>>,
}

impl Secret {
    pub fn tags(&self) -> Vec<Tag> {
        serde_json::from_value(self.tags.clone()).unwrap_or_default()
    }
}

fn not_found(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("Secrets Manager can't find the specified secret: {name}"))
}

fn check_value(value: &str) -> Result<(), IamError> {
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(IamError::InvalidInput(format!("secretString must be 1 to {MAX_VALUE_BYTES} bytes")));
    }
    Ok(())
}

/// What a new secret is made of.
pub struct NewSecret<'a> {
    pub name: &'a str,
    pub value: &'a SecretString,
    pub description: Option<&'a str>,
    pub tags: &'a [Tag],
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    account: &str,
    new: NewSecret<'_>,
) -> Result<Secret, IamError> {
    check_name(new.name).map_err(IamError::InvalidInput)?;
    check_value(new.value.expose_secret())?;
    crate::iam::names::check_tags(new.tags)?;
    if new.description.is_some_and(|d| d.chars().count() > 2048) {
        return Err(IamError::InvalidInput("description may be at most 2048 characters".to_owned()));
    }
    let version = Uuid::new_v4();
    let sealed = cipher.seal(&place(account, new.name, version), new.value.expose_secret())?;
    let tags = serde_json::to_value(new.tags).map_err(|e| IamError::InvalidInput(e.to_string()))?;
    diesel::insert_into(secrets::table)
        .values((
            secrets::account_id.eq(account),
            secrets::name.eq(new.name),
            secrets::description.eq(new.description),
            secrets::tags.eq(tags),
            secrets::version_id.eq(version),
            secrets::sealed.eq(sealed),
        ))
        .returning(Secret::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("the secret {} already exists", new.name))
            } else {
                e.into()
            }
        })
}

pub async fn find(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Option<Secret>, IamError> {
    if check_name(name).is_err() {
        return Ok(None);
    }
    Ok(secrets::table
        .select(Secret::as_select())
        .filter(secrets::account_id.eq(account))
        .filter(secrets::name.eq(name))
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Secret, IamError> {
    find(conn, account, name).await?.ok_or_else(|| not_found(name))
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<Secret>, Option<String>), IamError> {
    let mut query = secrets::table
        .select(Secret::as_select())
        .filter(secrets::account_id.eq(account))
        .order(secrets::name)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(secrets::name.gt(after.clone()));
    }
    let found = query.load(conn).await?;
    Ok(page.finish(found, |s| s.name.clone()))
}

/// A new value, under a new version id.
pub async fn put_value(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    account: &str,
    name: &str,
    value: &SecretString,
) -> Result<Secret, IamError> {
    check_value(value.expose_secret())?;
    get(conn, account, name).await?;
    let version = Uuid::new_v4();
    let sealed = cipher.seal(&place(account, name, version), value.expose_secret())?;
    Ok(diesel::update(secrets::table.filter(secrets::account_id.eq(account)).filter(secrets::name.eq(name)))
        .set((secrets::version_id.eq(version), secrets::sealed.eq(sealed), secrets::changed_at.eq(Utc::now())))
        .returning(Secret::as_returning())
        .get_result(conn)
        .await?)
}

/// Deletes at once (Secrets Manager's `ForceDeleteWithoutRecovery`): an
/// action that names it afterwards fails.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    get(conn, account, name).await?;
    diesel::delete(secrets::table.filter(secrets::account_id.eq(account)).filter(secrets::name.eq(name)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Why an action could not have a secret: a reason for its result.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] IamError),
}

/// A secret an action names, and under what.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub region: &'a str,
    /// The pipeline's account.
    pub account: &'a str,
    /// The action's (or else the pipeline's) role.
    pub role_arn: &'a str,
    /// The secret's name or ARN, as the variable gives it.
    pub named: &'a str,
}

/// The value of secret `name` for an action of `account` whose pipeline
/// acts as `role_arn`: the role must trust [`SERVICE_PRINCIPAL`] and its
/// policies allow `secretsmanager:GetSecretValue` on the secret's ARN.
pub async fn for_action(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    wanted: &Wanted<'_>,
) -> Result<SecretString, Refused> {
    let read = read_for_action(conn, cipher, wanted).await;
    let Wanted { region, account, role_arn, named } = *wanted;
    // As CloudTrail records a service's GetSecretValue under the role's
    // session: in the account's log before the value is used; without its
    // record the action does not get the value.
    let (code, message) = match &read {
        Ok(_) => (None, None),
        Err(Refused::Denied(m)) => (Some("AccessDeniedException"), Some(m.clone())),
        Err(Refused::NotFound(m)) => (Some("ResourceNotFoundException"), Some(m.clone())),
        Err(Refused::Database(_)) => return read,
    };
    let role_name = role_arn.rsplit('/').next().unwrap_or_default();
    let session = format!("arn:pw:sts::{account}:assumed-role/{role_name}/{SERVICE_PRINCIPAL}");
    let secret_arn = arn(region, account, crate::pipelines::environment::secret_name(named).map_or(named, |(_, n)| n));
    let event = crate::audit::Event {
        event_id: Uuid::new_v4(),
        recipient_account_id: account.to_owned(),
        event_time: Utc::now(),
        event_source: "secretsmanager.pipewright".to_owned(),
        event_name: "GetSecretValue".to_owned(),
        read_only: true,
        user_identity: serde_json::json!({
            "type": "AssumedRole", "arn": session, "accountId": account, "invokedBy": SERVICE_PRINCIPAL,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account, "userName": role_name}},
        }),
        source_ip_address: SERVICE_PRINCIPAL.to_owned(),
        user_agent: SERVICE_PRINCIPAL.to_owned(),
        request_parameters: Some(serde_json::json!({"secretId": named})),
        response_elements: None,
        error_code: code.map(str::to_owned),
        error_message: message,
        http_status: if code.is_some() { 400 } else { 200 },
        request_id: Uuid::new_v4().to_string(),
        resources: vec![crate::audit::Resource { kind: "secretsmanager".to_owned(), arn: secret_arn }],
        shared_event_id: None,
    };
    crate::audit::store::append(conn, vec![event]).await?;
    read
}

async fn read_for_action(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    wanted: &Wanted<'_>,
) -> Result<SecretString, Refused> {
    let Wanted { region, account, role_arn, named } = *wanted;
    use pipewright_authz::{Context, NamedPolicy, Policy, PolicyKind, Principal, PrincipalType, Request};
    let (given, name) = crate::pipelines::environment::secret_name(named).map_err(Refused::NotFound)?;
    let secret_arn = arn(region, account, name);
    // Only the pipeline's own account's secrets, in this region: an ARN
    // naming another is refused, never read as if it were this account's.
    if let Some((given_region, given_account)) = given
        && (given_region != region || given_account != account)
    {
        return Err(Refused::Denied(format!(
            "{named} is not a secret of this pipeline's account and region ({secret_arn} would be)"
        )));
    }
    let denied = |why: &str| {
        Refused::Denied(format!(
            "the pipeline's role {role_arn} may not read {secret_arn} ({why}): its trust policy must allow \
             sts:AssumeRole to {{\"Service\": \"{SERVICE_PRINCIPAL}\"}} and its policies \
             secretsmanager:GetSecretValue on the secret"
        ))
    };
    let role_name = role_arn
        .strip_prefix(&format!("arn:pw:iam::{account}:role/"))
        .ok_or_else(|| denied("it is not a role of the pipeline's account"))?;
    let Some(role) = crate::iam::roles::find(conn, account, role_name).await? else {
        return Err(denied("the role does not exist"));
    };
    let mut context = Context::new();
    context.insert("pw:PrincipalAccount", account).insert("pw:PrincipalArn", role_arn);
    let trusts = Policy::parse_with_limit(&role.trust_policy, PolicyKind::Trust, usize::MAX)
        .map(|p| NamedPolicy::new("trust policy", p))
        .is_ok_and(|trust| pipewright_authz::service_may_assume(&trust, SERVICE_PRINCIPAL, account, &context));
    if !trusts {
        return Err(denied("the role does not trust the service"));
    }
    let documents = crate::iam::policies::effective(conn, account, std::slice::from_ref(&role.role_id)).await?;
    let count = documents.len();
    let policies: Vec<NamedPolicy> = documents
        .into_iter()
        .filter_map(|(n, text)| {
            Policy::parse_with_limit(&text, PolicyKind::Identity, usize::MAX).ok().map(|p| NamedPolicy::new(n, p))
        })
        .collect();
    if policies.len() != count {
        return Err(denied("a policy of the role could not be read"));
    }
    let session = format!("arn:pw:sts::{account}:assumed-role/{}/{SERVICE_PRINCIPAL}", role.role_name);
    context.insert("pw:PrincipalArn", session.as_str());
    let principal = Principal { arn: session.clone(), account: account.to_owned(), kind: PrincipalType::AssumedRole };
    let request = Request { action: "secretsmanager:GetSecretValue", resource: &secret_arn, context: &context };
    if !pipewright_authz::evaluate_principal(&principal, &policies, None, &request).is_allowed() {
        return Err(denied("no policy of the role allows it"));
    }
    let sealed: Option<(Uuid, Vec<u8>)> = secrets::table
        .select((secrets::version_id, secrets::sealed))
        .filter(secrets::account_id.eq(account))
        .filter(secrets::name.eq(name))
        .first(conn)
        .await
        .optional()
        .map_err(IamError::from)?;
    let Some((version, sealed)) = sealed else {
        return Err(Refused::NotFound(format!("the account has no secret {name}")));
    };
    let value = cipher.open(&place(account, name, version), &sealed).ok_or_else(|| {
        tracing::error!(%account, secret = %name, "a secret does not open with this installation's secrets key");
        Refused::NotFound(format!(
            "the secret {name} cannot be read with this installation's secrets key (PIPEWRIGHT_SECRETS_KEY)"
        ))
    })?;
    let _ = diesel::update(secrets::table.filter(secrets::account_id.eq(account)).filter(secrets::name.eq(name)))
        .set(secrets::accessed_at.eq(Utc::now()))
        .execute(conn)
        .await;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let dir = std::env::temp_dir().join(format!("pw-secrets-{}", Uuid::new_v4()));
        let config = Config { data_dir: dir.clone(), ..Config::default() };
        let cipher = Cipher::from_config(&config).unwrap();
        let version = Uuid::new_v4();
        let sealed = cipher.seal(&place("111122223333", "prod/token", version), "hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "sealed in clear");
        let opened = cipher.open(&place("111122223333", "prod/token", version), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "hunter2");
        assert!(cipher.open(&place("444455556666", "prod/token", version), &sealed).is_none());
        assert!(cipher.open(&place("111122223333", "prod/other", version), &sealed).is_none());
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert!(cipher.open(&place("111122223333", "prod/token", version), &tampered).is_none());
        // Another installation's key does not open it.
        let other = Config { data_dir: dir.join("other"), ..Config::default() };
        assert!(
            Cipher::from_config(&other).unwrap().open(&place("111122223333", "prod/token", version), &sealed).is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
