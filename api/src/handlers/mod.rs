//! The `/v1` operations.

pub mod access_keys;
pub mod accounts;
pub mod action_types;
pub mod audit;
pub mod callbacks;
pub mod executions;
pub mod groups;
pub mod jobs;
pub mod notifications;
pub mod owned;
pub mod pipelines;
pub mod policies;
pub mod policy_schema;
pub mod roles;
pub mod secrets;
pub mod session;
pub mod simulate;
pub mod sts;
pub mod users;
pub mod webhooks;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::OperationDoc;

pub fn routes(cfg: &mut ServiceConfig) {
    accounts::routes(cfg);
    access_keys::routes(cfg);
    session::routes(cfg);
    users::routes(cfg);
    groups::routes(cfg);
    policies::routes(cfg);
    roles::routes(cfg);
    sts::routes(cfg);
    simulate::routes(cfg);
    audit::routes(cfg);
    pipelines::routes(cfg);
    action_types::routes(cfg);
    executions::routes(cfg);
    secrets::routes(cfg);
    webhooks::routes(cfg);
    notifications::routes(cfg);
    callbacks::routes(cfg);
    jobs::routes(cfg);
}

/// Every operation with its IAM action and resource, for the OpenAPI
/// document (`x-pw-authorization`): each is declared once, beside its
/// handler — by `operation!`, or by `inventory::submit!` for the few that
/// authorise themselves or take no credentials.
pub fn operations() -> Vec<OperationDoc> {
    let mut all: Vec<OperationDoc> = inventory::iter::<OperationDoc>.into_iter().copied().collect();
    all.sort_by_key(|o| o.id);
    all
}

/// `maxResults` and `nextToken` of a list operation.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1 to 1000 (default 100).
    pub max_results: Option<i64>,
    /// From the previous page's answer.
    pub next_token: Option<String>,
}

/// A tag.
#[derive(Debug, Clone, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagBody {
    pub key: String,
    pub value: String,
}

impl From<TagBody> for pipewright_core::iam::names::Tag {
    fn from(t: TagBody) -> Self {
        Self { key: t.key, value: t.value }
    }
}

impl From<pipewright_core::iam::names::Tag> for TagBody {
    fn from(t: pipewright_core::iam::names::Tag) -> Self {
        Self { key: t.key, value: t.value }
    }
}

/// Runs CPU-heavy work (password hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, crate::error::ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| crate::error::ApiError::internal())
}

/// Runs password hashing off the async workers, a bounded number at a time:
/// each argon2 hash takes 19 MiB, so a flood of sign-ins must queue rather
/// than exhaust memory.
pub async fn password_work<T: Send + 'static>(
    state: &crate::server::AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::error::ApiError> {
    let _permit = state.password_slots.acquire().await.map_err(|_| crate::error::ApiError::internal())?;
    blocking(f).await
}

/// Whether the caller's `Accept` names `alternative` ahead of `primary` (and
/// of `*/*`): a download answered in its own media type by default is
/// labelled with the generic one a client asked for, e.g. an artifact as
/// `application/octet-stream` instead of `application/x-tar`. The bytes are
/// the same either way.
pub fn accepts_first(req: &actix_web::HttpRequest, alternative: &str, primary: &str) -> bool {
    let accept = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case(alternative) {
            return true;
        }
        if media.eq_ignore_ascii_case(primary) || media == "*/*" {
            return false;
        }
    }
    false
}

/// Text as a URL path segment or query value: every byte but letters,
/// digits and `-._~` percent-encoded.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
