//! Webhooks in (CodePipeline's PutWebhook, ListWebhooks, DeleteWebhook): a
//! URL a Git host posts push and pull-request events to. A delivery is
//! authenticated (an HMAC of its body, GitLab's token, or the sender's
//! address), passed through the webhook's JSONPath filters, read as a
//! [`Change`] in GitHub's, GitLab's or Gitea's format, and handed to the
//! worker, which matches it with the source's trigger like a polled one.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::iam::paging::Page;
use crate::iam::{IamError, is_unique_violation};
use crate::pipelines::sources::{check_branch, check_reference};
use crate::pipelines::triggers::{Change, Event};
use crate::pipelines::{MASK, PipelineDeclaration};
use crate::schema::webhooks;
use crate::secrets::Cipher;

/// At most this many filters, as CodePipeline.
pub const MAX_FILTERS: usize = 5;

/// A webhook's definition (CodePipeline's `WebhookDefinition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDefinition {
    /// 1–100 of `A-Za-z0-9.@-_`, unique in the account.
    #[schema(example = "github-push")]
    pub name: String,
    /// The pipeline it starts.
    #[schema(example = "web")]
    pub target_pipeline: String,
    /// A Git source action of the pipeline's first stage.
    #[schema(example = "Checkout")]
    pub target_action: String,
    /// 1–5 rules, all of which a delivery must pass.
    pub filters: Vec<WebhookFilterRule>,
    /// `GITHUB_HMAC` (a signature of the body with `SecretToken`: GitHub's
    /// `X-Hub-Signature-256`, Gitea's `X-Gitea-Signature`, or GitLab's
    /// `X-Gitlab-Token` equal to it), `IP` (the sender is in
    /// `AllowedIPRange`) or `UNAUTHENTICATED`.
    #[schema(example = "GITHUB_HMAC")]
    pub authentication: String,
    #[serde(default)]
    pub authentication_configuration: WebhookAuthConfiguration,
}

/// A delivery passes when the JSONPath finds a value (equal to
/// `matchEquals`, when given, where `{Property}` is the target action's
/// configuration value, e.g. `refs/heads/{branch}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookFilterRule {
    #[schema(example = "$.ref")]
    pub json_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "refs/heads/{branch}")]
    pub match_equals: Option<String>,
}

/// CodePipeline's field names. `SecretToken` is never answered (`****`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuthConfiguration {
    /// For `IP`: a CIDR range, e.g. `192.0.2.0/24`.
    #[serde(rename = "AllowedIPRange", default, skip_serializing_if = "Option::is_none")]
    pub allowed_ip_range: Option<String>,
    /// For `GITHUB_HMAC`: 1–100 characters.
    #[serde(rename = "SecretToken", default, skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<String>,
}

/// Why a definition cannot be stored, naming the field.
pub fn check(definition: &WebhookDefinition) -> Result<(), String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().count() <= 100
            && n.chars().all(|c| c.is_ascii_alphanumeric() || ".@-_".contains(c))
            && n != "."
            && n != ".."
    };
    for (field, value) in [
        ("webhook.name", &definition.name),
        ("webhook.targetPipeline", &definition.target_pipeline),
        ("webhook.targetAction", &definition.target_action),
    ] {
        if !name_ok(value) {
            return Err(format!("{field}: 1–100 of letters, digits and .@-_"));
        }
    }
    if definition.filters.is_empty() || definition.filters.len() > MAX_FILTERS {
        return Err(format!("webhook.filters: 1 to {MAX_FILTERS} rules"));
    }
    for (i, rule) in definition.filters.iter().enumerate() {
        if rule.json_path.is_empty() || rule.json_path.chars().count() > 150 {
            return Err(format!("webhook.filters[{i}].jsonPath: 1–150 characters"));
        }
        serde_json_path::JsonPath::parse(&rule.json_path)
            .map_err(|e| format!("webhook.filters[{i}].jsonPath: not a JSONPath ({e})"))?;
        if rule.match_equals.as_ref().is_some_and(|m| m.is_empty() || m.chars().count() > 150) {
            return Err(format!("webhook.filters[{i}].matchEquals: 1–150 characters"));
        }
    }
    let config = &definition.authentication_configuration;
    match definition.authentication.as_str() {
        "GITHUB_HMAC" => {
            let secret = config.secret_token.as_deref().unwrap_or_default();
            if secret.is_empty() || secret.chars().count() > 100 || secret == MASK {
                return Err("webhook.authenticationConfiguration.SecretToken: GITHUB_HMAC needs a secret of 1–100 \
                            characters"
                    .to_owned());
            }
            if config.allowed_ip_range.is_some() {
                return Err("webhook.authenticationConfiguration.AllowedIPRange: only for IP".to_owned());
            }
        }
        "IP" => {
            let range = config.allowed_ip_range.as_deref().unwrap_or_default();
            if range.parse::<ipnet::IpNet>().is_err() {
                return Err(format!(
                    "webhook.authenticationConfiguration.AllowedIPRange: IP needs a CIDR range, not {range:?}"
                ));
            }
            if config.secret_token.is_some() {
                return Err("webhook.authenticationConfiguration.SecretToken: only for GITHUB_HMAC".to_owned());
            }
        }
        "UNAUTHENTICATED" => {
            if config.secret_token.is_some() || config.allowed_ip_range.is_some() {
                return Err(
                    "webhook.authenticationConfiguration: UNAUTHENTICATED takes no SecretToken or AllowedIPRange"
                        .to_owned(),
                );
            }
        }
        other => {
            return Err(format!("webhook.authentication: {other:?} is not GITHUB_HMAC, IP or UNAUTHENTICATED"));
        }
    }
    Ok(())
}

/// Why the target cannot take deliveries: it must be a Git source action of
/// the pipeline's first stage, and `{Property}` in a filter must name one of
/// its configuration properties.
pub fn check_target(definition: &WebhookDefinition, pipeline: &PipelineDeclaration) -> Result<(), String> {
    let action = pipeline.stages.iter().take(1).flat_map(|s| &s.actions).find(|a| a.name == definition.target_action);
    let Some(action) = action.filter(|a| a.action_type_id.provider == "Git") else {
        return Err(format!(
            "webhook.targetAction: {:?} is not a Git source action of the first stage of {:?}",
            definition.target_action, definition.target_pipeline
        ));
    };
    for (i, rule) in definition.filters.iter().enumerate() {
        if let Some(wanted) = &rule.match_equals {
            substituted(wanted, &action.configuration).map_err(|p| {
                format!("webhook.filters[{i}].matchEquals: {{{p}}} is not a configuration property of the action")
            })?;
        }
    }
    Ok(())
}

/// `matchEquals` with each `{Property}` replaced by the action's value
/// (property names compared ignoring case); the unknown property, if any.
fn substituted(wanted: &str, configuration: &std::collections::BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = wanted;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        let property = &rest[open + 1..open + close];
        let value = configuration
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(property))
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| property.to_owned())?;
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a delivery's payload passes every filter.
pub fn passes(
    filters: &[WebhookFilterRule],
    configuration: &std::collections::BTreeMap<String, String>,
    payload: &Value,
) -> Result<(), String> {
    for (i, rule) in filters.iter().enumerate() {
        let Ok(path) = serde_json_path::JsonPath::parse(&rule.json_path) else {
            return Err(format!("filters[{i}]: its jsonPath does not parse"));
        };
        let found = path.query(payload).all();
        let pass = match &rule.match_equals {
            None => !found.is_empty(),
            Some(wanted) => {
                let wanted = substituted(wanted, configuration).unwrap_or_else(|_| wanted.clone());
                found.iter().any(|v| match v {
                    Value::String(s) => *s == wanted,
                    Value::Null => false,
                    other => other.to_string() == wanted,
                })
            }
        };
        if !pass {
            return Err(format!("filters[{i}] ({}) did not match", rule.json_path));
        }
    }
    Ok(())
}

/// A stored webhook.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    pub account_id: String,
    pub name: String,
    pub webhook_id: String,
    pub definition: Value,
    pub sealed_secret: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub last_triggered: Option<DateTime<Utc>>,
}

impl Webhook {
    /// Its definition, the secret masked.
    pub fn definition(&self) -> Result<WebhookDefinition, IamError> {
        serde_json::from_value(self.definition.clone())
            .map_err(|e| IamError::InvalidInput(format!("a stored webhook does not read: {e}")))
    }

    /// Its secret, opened.
    pub fn secret(&self, cipher: &Cipher) -> Option<SecretString> {
        cipher.open(&place(&self.account_id, &self.webhook_id), self.sealed_secret.as_deref()?)
    }

    /// Its ARN.
    pub fn arn(&self, region: &str) -> String {
        arn(region, &self.account_id, &self.name)
    }
}

/// `arn:pw:codepipeline:REGION:ACCOUNT:webhook:NAME`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:pw:codepipeline:{region}:{account}:webhook:{name}")
}

/// A sealed secret opens only in its own row.
fn place(account: &str, webhook_id: &str) -> String {
    format!("webhook:{account}:{webhook_id}")
}

/// Creates the webhook or replaces its definition (its URL stays). The
/// definition is checked already.
pub async fn put(
    conn: &mut AsyncPgConnection,
    cipher: &Cipher,
    account: &str,
    definition: &WebhookDefinition,
) -> Result<Webhook, IamError> {
    let existing: Option<String> =
        webhooks::table.find((account, &definition.name)).select(webhooks::webhook_id).first(conn).await.optional()?;
    let webhook_id = match existing {
        Some(id) => id,
        None => {
            let mut bytes = [0u8; 20];
            getrandom::fill(&mut bytes).map_err(|e| IamError::InvalidInput(format!("no randomness: {e}")))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let sealed = match &definition.authentication_configuration.secret_token {
        Some(secret) => Some(cipher.seal(&place(account, &webhook_id), secret)?),
        None => None,
    };
    let mut stored = definition.clone();
    if stored.authentication_configuration.secret_token.is_some() {
        stored.authentication_configuration.secret_token = Some(MASK.to_owned());
    }
    let stored = serde_json::to_value(&stored).unwrap_or_default();
    let row = diesel::insert_into(webhooks::table)
        .values((
            webhooks::account_id.eq(account),
            webhooks::name.eq(&definition.name),
            webhooks::webhook_id.eq(&webhook_id),
            webhooks::definition.eq(&stored),
            webhooks::sealed_secret.eq(&sealed),
        ))
        .on_conflict((webhooks::account_id, webhooks::name))
        .do_update()
        .set((webhooks::definition.eq(&stored), webhooks::sealed_secret.eq(&sealed)))
        .returning(Webhook::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("webhook {} exists", definition.name))
            } else {
                e.into()
            }
        })?;
    Ok(row)
}

/// The account's webhooks by name, a page at a time.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<Webhook>, Option<String>), IamError> {
    let mut query = webhooks::table
        .select(Webhook::as_select())
        .filter(webhooks::account_id.eq(account))
        .order(webhooks::name)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(webhooks::name.gt(after.clone()));
    }
    let found = query.load(conn).await?;
    Ok(page.finish(found, |w| w.name.clone()))
}

/// Deletes a webhook; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<bool, IamError> {
    Ok(diesel::delete(webhooks::table.find((account, name))).execute(conn).await? == 1)
}

/// The webhook a receiving URL names.
pub async fn by_id(conn: &mut AsyncPgConnection, webhook_id: &str) -> Result<Option<Webhook>, IamError> {
    Ok(webhooks::table
        .filter(webhooks::webhook_id.eq(webhook_id))
        .select(Webhook::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Notes a delivery that was taken.
pub async fn triggered(conn: &mut AsyncPgConnection, webhook: &Webhook) -> Result<(), IamError> {
    diesel::update(webhooks::table.find((&webhook.account_id, &webhook.name)))
        .set(webhooks::last_triggered.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a delivery is authentic: GitHub's `X-Hub-Signature-256`
/// (`sha256=HEX`) or Gitea's `X-Gitea-Signature` (`HEX`), an HMAC-SHA256
/// of the body, or GitLab's `X-Gitlab-Token`, the secret itself; compared
/// in constant time.
pub fn signed(secret: &SecretString, header: impl Fn(&str) -> Option<String>, body: &[u8]) -> bool {
    let secret = secret.expose_secret().as_bytes();
    if let Some(given) =
        header("x-hub-signature-256").filter(|s| s.starts_with("sha256=")).or_else(|| header("x-gitea-signature"))
    {
        return crate::signing::verify(secret, body, &given);
    }
    header("x-gitlab-token").is_some_and(|token| crate::signing::same_secret(secret, token.as_bytes()))
}

/// A delivery read: the change it brings and the commit its ref was at
/// before (a push's `before`), or why it brings none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Change {
        change: Change,
        before: Option<String>,
    },
    /// Nothing to run (a ping, a deleted branch, an event not handled).
    Ignored(String),
}

/// Reads a delivery in GitHub's, Gitea's or GitLab's format (by its event
/// header); an error names what is wrong with it.
pub fn read(header: impl Fn(&str) -> Option<String>, payload: &Value) -> Result<Delivery, String> {
    let (provider, event) = if let Some(e) = header("x-gitea-event") {
        ("gitea", e)
    } else if let Some(e) = header("x-github-event") {
        ("github", e)
    } else if let Some(e) = header("x-gitlab-event") {
        ("gitlab", e)
    } else {
        return Err("no X-GitHub-Event, X-Gitea-Event or X-Gitlab-Event header: not a delivery this reads".to_owned());
    };
    let text = |v: &Value, path: &str| -> Result<String, String> {
        v.pointer(path).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("the payload has no {path}"))
    };
    match (provider, event.as_str()) {
        (_, "push") | ("gitlab", "Push Hook" | "Tag Push Hook") => {
            let reference = text(payload, "/ref")?;
            let after = text(payload, "/after")?;
            if payload.pointer("/deleted").and_then(Value::as_bool) == Some(true) || zeros(&after) {
                return Ok(Delivery::Ignored(format!("{reference} was deleted")));
            }
            check_reference(&reference)?;
            let commit = commit_id(&after)?;
            let before = payload.pointer("/before").and_then(Value::as_str).filter(|b| !zeros(b));
            let before = before.map(commit_id).transpose()?;
            Ok(Delivery::Change { change: Change { event: Event::Push { reference }, commit, files: None }, before })
        }
        ("github" | "gitea", "pull_request") => {
            let action = match text(payload, "/action")?.as_str() {
                "opened" | "reopened" => "OPEN",
                "synchronize" | "synchronized" => "UPDATED",
                "closed" => "CLOSED",
                other => return Ok(Delivery::Ignored(format!("pull request action {other:?}"))),
            };
            let number = payload.pointer("/number").and_then(Value::as_u64).ok_or("the payload has no /number")?;
            if let Some(fork) = fork(payload, "/pull_request/head/repo/full_name", "/pull_request/base/repo/full_name")
            {
                return Ok(Delivery::Ignored(fork));
            }
            pull_request(
                action,
                number,
                text(payload, "/pull_request/head/ref")?,
                text(payload, "/pull_request/base/ref")?,
                &text(payload, "/pull_request/head/sha")?,
                format!("refs/pull/{number}/head"),
                payload.pointer("/pull_request/title").and_then(Value::as_str),
            )
        }
        ("gitlab", "Merge Request Hook") => {
            let attributes = "/object_attributes";
            let action = match text(payload, &format!("{attributes}/action"))?.as_str() {
                "open" | "reopen" => "OPEN",
                "update" if payload.pointer(&format!("{attributes}/oldrev")).is_some() => "UPDATED",
                "close" | "merge" => "CLOSED",
                other => return Ok(Delivery::Ignored(format!("merge request action {other:?}"))),
            };
            if let Some(fork) =
                fork(payload, &format!("{attributes}/source_project_id"), &format!("{attributes}/target_project_id"))
            {
                return Ok(Delivery::Ignored(fork));
            }
            let number = payload
                .pointer(&format!("{attributes}/iid"))
                .and_then(Value::as_u64)
                .ok_or("the payload has no /object_attributes/iid")?;
            pull_request(
                action,
                number,
                text(payload, &format!("{attributes}/source_branch"))?,
                text(payload, &format!("{attributes}/target_branch"))?,
                &text(payload, &format!("{attributes}/last_commit/id"))?,
                format!("refs/merge-requests/{number}/head"),
                payload.pointer(&format!("{attributes}/title")).and_then(Value::as_str),
            )
        }
        (_, "ping") => Ok(Delivery::Ignored("ping".to_owned())),
        (_, other) => Ok(Delivery::Ignored(format!("event {other:?} is not a push or a pull request"))),
    }
}

fn pull_request(
    action: &str,
    number: u64,
    source_branch: String,
    destination_branch: String,
    head: &str,
    reference: String,
    title: Option<&str>,
) -> Result<Delivery, String> {
    check_branch(&source_branch)?;
    check_branch(&destination_branch)?;
    check_reference(&reference)?;
    let event = Event::PullRequest {
        action: action.to_owned(),
        number,
        source_branch,
        destination_branch,
        reference,
        title: title.map(|t| t.chars().filter(|c| !c.is_control()).take(200).collect()),
    };
    Ok(Delivery::Change { change: Change { event, commit: commit_id(head)?, files: None }, before: None })
}

/// A pull request whose head is in another repository (a fork) than its
/// base: its code is not the repository's, and is not run with the
/// pipeline's role and secrets. Why, if it is one.
fn fork(payload: &Value, head: &str, base: &str) -> Option<String> {
    let (head, base) = (payload.pointer(head)?, payload.pointer(base)?);
    (head != base).then(|| format!("a pull request from another repository ({head}) is not run"))
}

fn zeros(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|b| b == b'0')
}

/// A full commit id (SHA-1 or SHA-256), lower case.
fn commit_id(text: &str) -> Result<String, String> {
    if (text.len() == 40 || text.len() == 64) && text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{:?} is not a commit id", text.chars().take(80).collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_github_push_and_a_gitlab_merge_request_are_read() {
        let push = json!({"ref": "refs/heads/main", "before": "0".repeat(40), "after": "A".repeat(40)});
        let read_push = read(headers(&[("X-GitHub-Event", "push")]), &push).unwrap();
        assert_eq!(
            read_push,
            Delivery::Change {
                change: Change {
                    event: Event::Push { reference: "refs/heads/main".into() },
                    commit: "a".repeat(40),
                    files: None
                },
                before: None
            }
        );
        let mr = json!({"object_attributes": {"iid": 3, "action": "open", "source_branch": "feature",
            "target_branch": "main", "last_commit": {"id": "b".repeat(40)}, "title": "x"}});
        let Delivery::Change { change, .. } = read(headers(&[("X-Gitlab-Event", "Merge Request Hook")]), &mr).unwrap()
        else {
            panic!("a change")
        };
        assert_eq!(change.event.reference(), "refs/merge-requests/3/head");
        let forked = json!({"action": "opened", "number": 1, "pull_request": {
            "head": {"ref": "x", "sha": "c".repeat(40), "repo": {"full_name": "evil/mono"}},
            "base": {"ref": "main", "repo": {"full_name": "team/mono"}}}});
        assert!(matches!(read(headers(&[("X-GitHub-Event", "pull_request")]), &forked), Ok(Delivery::Ignored(_))));
        let hostile = json!({"ref": "-x", "after": "a".repeat(40)});
        assert!(read(headers(&[("X-GitHub-Event", "push")]), &hostile).is_err());
        let hostile = json!({"ref": "refs/heads/main", "after": "HEAD~1"});
        assert!(read(headers(&[("X-GitHub-Event", "push")]), &hostile).is_err());
    }

    #[test]
    fn signatures_are_checked() {
        let secret = SecretString::from("s3cret");
        let body = br#"{"ref":"refs/heads/main"}"#;
        let made = crate::signing::sign(b"s3cret", body);
        let tag = made.trim_start_matches("sha256=");
        assert!(signed(&secret, headers(&[("X-Hub-Signature-256", &format!("sha256={tag}"))]), body));
        assert!(signed(&secret, headers(&[("X-Gitea-Signature", tag)]), body));
        assert!(!signed(&secret, headers(&[("X-Hub-Signature-256", &format!("sha256={tag}"))]), b"{}"));
        assert!(!signed(&secret, headers(&[("X-Hub-Signature-256", "sha256=00")]), body));
        assert!(signed(&secret, headers(&[("X-Gitlab-Token", "s3cret")]), body));
        assert!(!signed(&secret, headers(&[("X-Gitlab-Token", "s3cre")]), body));
        assert!(!signed(&secret, headers(&[]), body));
    }

    #[test]
    fn filters_match_with_the_actions_properties() {
        let filters =
            vec![WebhookFilterRule { json_path: "$.ref".into(), match_equals: Some("refs/heads/{Branch}".into()) }];
        let config = std::collections::BTreeMap::from([("branch".to_owned(), "main".to_owned())]);
        assert!(passes(&filters, &config, &json!({"ref": "refs/heads/main"})).is_ok());
        assert!(passes(&filters, &config, &json!({"ref": "refs/heads/dev"})).is_err());
        assert!(passes(&filters, &config, &json!({})).is_err());
    }
}
