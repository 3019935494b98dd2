//! The account's audit log: LookupEvents (newest first, with filters),
//! VerifyEvents, ExportEvents, the public key, and the retention period.

use actix_web::{get, put, web};
use chrono::{DateTime, Utc};
use pipewright_core::audit::Event;
use pipewright_core::audit::retention;
use pipewright_core::audit::store::{self, Filter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::{Authorized, NoBody, OperationDoc};
use crate::error::{ApiError, ErrorBody};
use crate::operation;
use crate::server::AppState;

operation!(LookupEvents, "audit:LookupEvents", "arn:pw:audit:${Region}:${Account}:events", NoBody, |r, _b| Ok(
    format!("arn:pw:audit:{}:{}:events", r.region, r.account)
));

operation!(VerifyEvents, "audit:VerifyEvents", "arn:pw:audit:${Region}:${Account}:events", NoBody, |r, _b| Ok(
    format!("arn:pw:audit:{}:{}:events", r.region, r.account)
));

operation!(ExportEvents, "audit:ExportEvents", "arn:pw:audit:${Region}:${Account}:events", NoBody, |r, _b| Ok(
    format!("arn:pw:audit:{}:{}:events", r.region, r.account)
));

operation!(
    GetEventDataStore,
    "audit:GetEventDataStore",
    "arn:pw:audit:${Region}:${Account}:events",
    NoBody,
    |r, _b| Ok(format!("arn:pw:audit:{}:{}:events", r.region, r.account))
);

operation!(
    UpdateEventDataStore,
    "audit:UpdateEventDataStore",
    "arn:pw:audit:${Region}:${Account}:events",
    web::Json<UpdateEventDataStoreRequest>,
    |r, _b| Ok(format!("arn:pw:audit:{}:{}:events", r.region, r.account))
);

inventory::submit! { OperationDoc::public("ListPublicKeys", "none: the keys that sign the audit digests are public") }

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(lookup_events)
        .service(verify_events)
        .service(export_events)
        .service(public_key)
        .service(get_event_data_store)
        .service(update_event_data_store);
}

/// The account's audit log settings, as CloudTrail Lake's event data store
/// has them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDataStore {
    /// Days events are kept; older ones are purged, a sealed range at a time.
    #[schema(example = 2557)]
    pub retention_period: i32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEventDataStoreRequest {
    /// Days to keep events: 7 to 3653.
    #[schema(example = 365)]
    pub retention_period: i32,
}

/// The account's retention period.
#[utoipa::path(
    tag = "audit", operation_id = "GetEventDataStore",
    responses((status = 200, body = EventDataStore), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/event-data-store")]
pub async fn get_event_data_store(auth: Authorized<GetEventDataStore>) -> Result<web::Json<EventDataStore>, ApiError> {
    let mut conn = auth.db().await?;
    let days = retention::retention_days(&mut conn, auth.caller.account()).await?;
    Ok(web::Json(EventDataStore { retention_period: days }))
}

/// Sets how long the account's events are kept. Events older than that are
/// purged once they are sealed in a digest; the purge is itself recorded,
/// and the log still verifies from where it was cut.
#[utoipa::path(
    tag = "audit", operation_id = "UpdateEventDataStore", request_body = UpdateEventDataStoreRequest,
    responses((status = 200, body = EventDataStore), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/audit/event-data-store")]
pub async fn update_event_data_store(
    auth: Authorized<UpdateEventDataStore>,
) -> Result<web::Json<EventDataStore>, ApiError> {
    let days = auth.body.retention_period;
    if !(retention::MIN_DAYS..=retention::MAX_DAYS).contains(&days) {
        return Err(ApiError::validation(format!(
            "retentionPeriod must be between {} and {} days, not {days}",
            retention::MIN_DAYS,
            retention::MAX_DAYS
        )));
    }
    let mut conn = auth.db().await?;
    retention::set_retention_days(&mut conn, auth.caller.account(), days).await?;
    Ok(web::Json(EventDataStore { retention_period: days }))
}

/// The account's events in a time range as JSON Lines, oldest first,
/// streamed a thousand at a time (labelled `text/plain` when the caller's
/// `Accept` asks for that).
#[utoipa::path(
    tag = "audit", operation_id = "ExportEvents", params(VerifyQuery),
    responses((status = 200, description = "one event (as LookupEvents gives it) a line",
            content((String = "application/x-ndjson"), (String = "text/plain"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/export")]
pub async fn export_events(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    auth: Authorized<ExportEvents>,
    query: web::Query<VerifyQuery>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let (start, end) = (query.start_time, query.end_time);
    let account = auth.caller.account().to_owned();
    let db = state.services.db.clone();
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let (db, account) = (db.clone(), account.clone());
        async move {
            let after = after?;
            let page = async {
                let mut conn = db.conn().await.map_err(|e| e.to_string())?;
                store::export_page(&mut conn, &account, start, end, after, 1000).await.map_err(|e| e.to_string())
            }
            .await;
            match page {
                Ok(events) if events.is_empty() => None,
                Ok(events) => {
                    let last = events.last().map(|(seq, _)| *seq);
                    let mut lines = String::new();
                    for (_, event) in events {
                        lines.push_str(&serde_json::to_string(&event).unwrap_or_default());
                        lines.push('\n');
                    }
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(lines)), last))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export stopped");
                    None
                }
            }
        }
    });
    let text = super::accepts_first(&req, "text/plain", "application/x-ndjson");
    let media = if text { "text/plain; charset=utf-8" } else { "application/x-ndjson" };
    Ok(actix_web::HttpResponse::Ok().content_type(media).streaming(pages))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// What verifying found: `valid`, how many events (and digests) were
/// checked, and the first event that was altered, or follows a deletion or
/// an insertion.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub valid: bool,
    pub events_checked: i64,
    pub digests_checked: i64,
    /// The first event or digest that does not verify, when one does not.
    pub first_invalid: Option<store::Invalid>,
}

/// Checks the account's hash chain over a time range.
#[utoipa::path(
    tag = "audit", operation_id = "VerifyEvents", params(VerifyQuery),
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/verify")]
pub async fn verify_events(
    state: web::Data<AppState>,
    auth: Authorized<VerifyEvents>,
    query: web::Query<VerifyQuery>,
) -> Result<web::Json<VerifyResponse>, ApiError> {
    let mut conn = auth.db().await?;
    // Every key another process may have signed with, however new.
    if let Err(e) = state.shared_keys.reload(&mut conn).await {
        tracing::warn!(error = %e, "the audit keys could not be reloaded; verifying with those known");
    }
    let found =
        store::verify(&mut conn, auth.caller.account(), query.start_time, query.end_time, Some(&state.audit_keys))
            .await?;
    Ok(web::Json(VerifyResponse {
        valid: found.valid,
        events_checked: found.events_checked,
        digests_checked: found.digests_checked,
        first_invalid: found.first_invalid,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    #[param(example = "CreateUser")]
    pub event_name: Option<String>,
    pub user_name: Option<String>,
    pub principal_arn: Option<String>,
    /// A resource's ARN; a pipeline's also finds its stages' and actions' events.
    pub resource_arn: Option<String>,
    pub read_only: Option<bool>,
    #[param(example = "AccessDeniedException")]
    pub error_code: Option<String>,
    pub source_ip_address: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// 1 to 1000 (default 50).
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupResponse {
    /// CloudTrail's event records, newest first.
    pub events: Vec<Event>,
    pub next_token: Option<String>,
}

fn bad_token() -> ApiError {
    ApiError::validation("nextToken is not one this service gave")
}

/// The account's audit events, newest first.
#[utoipa::path(
    tag = "audit", operation_id = "LookupEvents", params(LookupQuery),
    responses((status = 200, body = LookupResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/events")]
pub async fn lookup_events(
    auth: Authorized<LookupEvents>,
    query: web::Query<LookupQuery>,
) -> Result<web::Json<LookupResponse>, ApiError> {
    let query = query.into_inner();
    let limit = query.max_results.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(format!("maxResults must be between 1 and 1000, not {limit}")));
    }
    let after = match query.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => {
            let text = pipewright_core::iam::paging::key_of(token).ok_or_else(bad_token)?;
            let (time, id) = text.split_once('|').ok_or_else(bad_token)?;
            Some((
                DateTime::parse_from_rfc3339(time).map_err(|_| bad_token())?.with_timezone(&Utc),
                id.parse::<Uuid>().map_err(|_| bad_token())?,
            ))
        }
    };
    let filter = Filter {
        event_name: query.event_name,
        user_name: query.user_name,
        principal_arn: query.principal_arn,
        resource_arn: query.resource_arn,
        read_only: query.read_only,
        error_code: query.error_code,
        source_ip: query.source_ip_address,
        start_time: query.start_time,
        end_time: query.end_time,
    };
    let mut conn = auth.db().await?;
    let (events, next) = store::lookup(&mut conn, auth.caller.account(), &filter, limit, after).await?;
    let next_token = next.map(|(time, id)| {
        pipewright_core::iam::paging::token(&format!(
            "{}|{id}",
            time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        ))
    });
    Ok(web::Json(LookupResponse { events, next_token }))
}

/// One public key of the audit digests, as CloudTrail's ListPublicKeys
/// gives it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// The key's id, which each digest names (`keyId`).
    pub key_id: String,
    /// SHA-256 of the 32-byte Ed25519 public key, hex.
    pub fingerprint: String,
    /// The Ed25519 public key, PEM (SubjectPublicKeyInfo).
    pub value: String,
    /// From when the key signs digests.
    pub validity_start_time: DateTime<Utc>,
    /// When the next key took over; absent for the key that signs now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validity_end_time: Option<DateTime<Utc>>,
}

/// The keys that sign (and signed) the audit digests, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPublicKeysResponse {
    pub public_key_list: Vec<PublicKey>,
}

/// The Ed25519 public keys that verify the audit digests, each with its id
/// and validity period, for checking an export offline (every key that ever
/// signed stays listed).
#[utoipa::path(
    tag = "audit", operation_id = "ListPublicKeys",
    responses((status = 200, description = "The keys, oldest first", body = ListPublicKeysResponse)),
    security(())
)]
#[get("/v1/audit/public-key")]
pub async fn public_key(state: web::Data<AppState>) -> web::Json<ListPublicKeysResponse> {
    let public_key_list = state
        .audit_keys
        .keys()
        .iter()
        .map(|key| PublicKey {
            key_id: key.key_id.clone(),
            fingerprint: key.signer.fingerprint(),
            value: key.signer.public_key_pem(),
            validity_start_time: key.valid_from,
            validity_end_time: key.valid_until,
        })
        .collect();
    web::Json(ListPublicKeysResponse { public_key_list })
}
