//! The audit log: events as CloudTrail has them, secrets redacted, appended
//! to a hash chain per account, and looked up with filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub mod digest;
pub mod retention;
pub mod store;

/// The account whose log holds calls that name no account (a sign-in to an
/// unknown account, an unknown route without credentials).
pub const ANONYMOUS: &str = "anonymous";

/// What CloudTrail writes in place of a secret.
pub const REDACTED: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// A resource an event concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditResource)]
pub struct Resource {
    /// e.g. `AWS::CodePipeline::Pipeline`, `AWS::IAM::User`.
    #[serde(rename = "type")]
    pub kind: String,
    pub arn: String,
}

/// One API call, as recorded in one account's log: CloudTrail's event
/// record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditEvent)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: Uuid,
    /// The account whose log holds it (CloudTrail's recipientAccountId);
    /// `anonymous` for a call that named no account.
    pub recipient_account_id: String,
    pub event_time: DateTime<Utc>,
    /// The service called, e.g. `codepipeline.pipewright`, `iam.pipewright`,
    /// `sts.pipewright`, `signin.pipewright`.
    #[schema(example = "codepipeline.pipewright")]
    pub event_source: String,
    /// The operation, e.g. `PutApprovalResult`.
    #[schema(example = "PutApprovalResult")]
    pub event_name: String,
    pub read_only: bool,
    #[schema(value_type = UserIdentity)]
    pub user_identity: Value,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    /// The call's path, query and body fields, secrets hidden
    /// (`HIDDEN_DUE_TO_SECURITY_REASONS`).
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub request_parameters: Option<Value>,
    /// A successful change's answer, secrets hidden.
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub response_elements: Option<Value>,
    /// A refused or failed call's error code, e.g. `AccessDeniedException`.
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub http_status: i32,
    pub request_id: String,
    pub resources: Vec<Resource>,
    /// The same event's id in the other account's log, for a call that
    /// crossed accounts (AssumeRole, and calls in an assumed role).
    pub shared_event_id: Option<Uuid>,
}

/// Who made a call (CloudTrail's `userIdentity`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema only: the event holds it as JSON")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    kind: IdentityType,
    principal_id: Option<String>,
    arn: Option<String>,
    account_id: Option<String>,
    /// An IAM user's name.
    user_name: Option<String>,
    /// The access key the session was made with, if one was.
    access_key_id: Option<String>,
    /// The service that acted for the principal.
    invoked_by: Option<String>,
    /// For a role session: the principal that assumed the role.
    source_identity: Option<String>,
    /// For a role session: that principal's account.
    source_account: Option<String>,
    session_context: Option<SessionContext>,
}

/// The kind of principal.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub enum IdentityType {
    Root,
    IAMUser,
    AssumedRole,
    /// A call without credentials.
    Anonymous,
    /// The service itself (e.g. expiring events past their retention).
    PipewrightService,
}

/// A role session's context.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema only")]
pub struct SessionContext {
    session_issuer: SessionIssuer,
    creation_date: Option<DateTime<Utc>>,
    mfa_authenticated: Option<bool>,
}

/// The role a session was issued for.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema only")]
pub struct SessionIssuer {
    /// `Role`.
    #[serde(rename = "type")]
    kind: String,
    principal_id: Option<String>,
    arn: Option<String>,
    account_id: Option<String>,
    /// The role's name.
    user_name: Option<String>,
}

impl Event {
    /// The principal's ARN, from `userIdentity`.
    pub fn principal_arn(&self) -> Option<String> {
        self.user_identity.get("arn").and_then(Value::as_str).map(str::to_owned)
    }

    /// The user's name, from `userIdentity`.
    pub fn user_name(&self) -> Option<String> {
        self.user_identity.get("userName").and_then(Value::as_str).map(str::to_owned)
    }

    /// Every resource ARN and its `/`-prefixes (a pipeline's ARN finds its
    /// stages' and actions' events).
    pub fn resource_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for resource in &self.resources {
            let arn = resource.arn.as_str();
            keys.push(arn.to_owned());
            // Prefixes only within the resource part (after the fifth colon).
            let start = arn.match_indices(':').nth(4).map_or(arn.len(), |(i, _)| i + 1);
            for (i, _) in arn[start..].match_indices('/') {
                keys.push(arn[..start + i].to_owned());
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The event's hash in the chain: SHA-256 of the previous hash and the
    /// event's canonical JSON (keys sorted), hex.
    pub fn chain_hash(&self, prev_hash: &str) -> String {
        self.linked_hash(prev_hash, None)
    }

    /// Writes each NUL character of the event's text as `\u0000` (six
    /// characters): PostgreSQL stores none in text or JSON, and one in any
    /// field a caller sent would otherwise fail the whole batch. A number
    /// too large or too small to read back (PostgreSQL writes a JSON number
    /// in full, 300 digits and more, which serde_json does not take back)
    /// is stored as its text.
    pub fn escape_nul(&mut self) {
        fn text(s: &mut String) {
            if s.contains('\0') {
                *s = s.replace('\0', "\\u0000");
            }
        }
        fn json(value: &mut Value) {
            match value {
                Value::String(s) => text(s),
                Value::Array(items) => items.iter_mut().for_each(json),
                Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
                    let old = std::mem::take(map);
                    for (mut key, mut field) in old {
                        text(&mut key);
                        json(&mut field);
                        map.insert(key, field);
                    }
                }
                Value::Object(map) => map.values_mut().for_each(json),
                Value::Number(n) => {
                    if let Some(f) = n.as_f64().filter(|_| !n.is_i64() && !n.is_u64())
                        && f != 0.0
                        && !(1e-100..=1e100).contains(&f.abs())
                    {
                        *value = Value::String(n.to_string());
                    }
                }
                _ => {}
            }
        }
        for field in [
            &mut self.event_source,
            &mut self.event_name,
            &mut self.source_ip_address,
            &mut self.user_agent,
            &mut self.request_id,
        ] {
            text(field);
        }
        for field in [&mut self.error_code, &mut self.error_message].into_iter().flatten() {
            text(field);
        }
        json(&mut self.user_identity);
        for field in [&mut self.request_parameters, &mut self.response_elements].into_iter().flatten() {
            json(field);
        }
        for resource in &mut self.resources {
            text(&mut resource.arn);
            text(&mut resource.kind);
        }
    }

    /// The hash of an event that also names its predecessor's id: SHA-256 of
    /// the previous hash, that id and the canonical JSON. (Events recorded
    /// before events named their predecessor hash without it.)
    pub fn linked_hash(&self, prev_hash: &str, prev_event_id: Option<Uuid>) -> String {
        chain_hash(prev_hash, prev_event_id, &self.canonical())
    }

    /// The event's canonical JSON, which its hash covers.
    pub fn canonical(&self) -> String {
        serde_json::to_value(self).map(|v| v.to_string()).unwrap_or_default()
    }
}

/// The hash of an event whose canonical JSON is `canonical`, linked to its
/// predecessor's hash and id ([`Event::linked_hash`]).
pub fn chain_hash(prev_hash: &str, prev_event_id: Option<Uuid>, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    if let Some(id) = prev_event_id {
        hasher.update(id.to_string().as_bytes());
    }
    hasher.update(canonical.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash before an account's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field names whose values never reach the log (compared ignoring case).
const SECRET_FIELDS: [&str; 17] = [
    "password",
    "nonce",
    "rootpassword",
    "secretaccesskey",
    "accesstoken",
    "refreshtoken",
    "sessiontoken",
    "token",
    "secret",
    "operatortoken",
    "secretstring",
    "devicetoken",
    "secrettoken",
    "webhookid",
    // A notification target's address: a Slack URL is a secret.
    "targetaddress",
    // Git hosts' tokens in an action's configuration (CodePipeline's names).
    "oauthtoken",
    "authorization",
];

/// Replaces the values of secret fields, at any depth, by [`REDACTED`].
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.to_ascii_lowercase().as_str()) {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        // A URL's user and password (`https://user:pass@host/…`), wherever it is.
        Value::String(text) => {
            if let Some(masked) = without_userinfo(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// A URL with its user information hidden, if it has any.
fn without_userinfo(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (_, host) = rest[..authority_end].rsplit_once('@')?;
    Some(format!("{scheme}://{REDACTED}@{host}{}", &rest[authority_end..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn urls_lose_their_user_and_password_in_the_log() {
        let mut value = json!({"configuration": {"repositoryUrl": "https://user:LEAK@example.com/r.git?x=1", "OAuthToken": "t",
            "plain": "https://example.com/a@b", "mail": "me@example.com"}});
        redact(&mut value);
        assert_eq!(value["configuration"]["repositoryUrl"], format!("https://{REDACTED}@example.com/r.git?x=1"));
        assert_eq!(value["configuration"]["OAuthToken"], REDACTED);
        assert_eq!(value["configuration"]["plain"], "https://example.com/a@b");
        assert_eq!(value["configuration"]["mail"], "me@example.com");
    }

    fn event() -> Event {
        Event {
            event_id: Uuid::nil(),
            recipient_account_id: "111122223333".into(),
            event_time: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            event_source: "iam.pipewright".into(),
            event_name: "CreateUser".into(),
            read_only: false,
            user_identity: json!({"type": "Root", "arn": "arn:pw:iam::111122223333:root"}),
            source_ip_address: "127.0.0.1".into(),
            user_agent: "test".into(),
            request_parameters: Some(json!({"userName": "alice"})),
            response_elements: None,
            error_code: None,
            error_message: None,
            http_status: 201,
            request_id: "r".into(),
            resources: vec![Resource {
                kind: "codepipeline".into(),
                arn: "arn:pw:codepipeline:local:111122223333:web/Prod/Approve".into(),
            }],
            shared_event_id: None,
        }
    }

    #[test]
    fn secrets_are_redacted_at_any_depth_and_nothing_else() {
        let mut value = json!({"userName": "alice", "Password": "p", "nested": [{"secretAccessKey": "s", "keep": 1}],
            "credentials": {"accessToken": "t", "expiration": "x"}});
        redact(&mut value);
        assert_eq!(
            value,
            json!({"userName": "alice", "Password": REDACTED, "nested": [{"secretAccessKey": REDACTED, "keep": 1}],
            "credentials": {"accessToken": REDACTED, "expiration": "x"}})
        );
    }

    #[test]
    fn a_pipelines_arn_finds_its_stages_and_actions() {
        assert_eq!(
            event().resource_keys(),
            vec![
                "arn:pw:codepipeline:local:111122223333:web",
                "arn:pw:codepipeline:local:111122223333:web/Prod",
                "arn:pw:codepipeline:local:111122223333:web/Prod/Approve",
            ]
        );
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let base = event();
        let hash = base.chain_hash(GENESIS);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, base.chain_hash(GENESIS));
        assert_ne!(hash, base.chain_hash(&hash));
        let mut changed = base.clone();
        changed.http_status = 200;
        assert_ne!(hash, changed.chain_hash(GENESIS));
        assert_ne!(base.linked_hash(GENESIS, Some(Uuid::nil())), base.linked_hash(GENESIS, Some(Uuid::max())));
    }
}
