//! Recording every `/v1` call in the audit log. The `observe` middleware
//! builds the event from what the request left behind (the caller, the
//! operation and resource it was authorised for, the error it got) and hands
//! it to the [`AuditWriter`], which appends in batches.
//!
//! Not yet: mutations are appended by the same batch path, after the fact,
//! rather than in the mutation's own transaction (see
//! docs/decisions/008-audit-design.md); request bodies and response elements
//! are not recorded yet.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::ServiceResponse;
use chrono::Utc;
use pipewright_core::audit::{self, ANONYMOUS, Event, Resource};
use pipewright_core::auth::tokens::PrincipalKind;
use pipewright_core::db::Db;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::Caller;

/// What an authorised operation leaves for the audit log.
#[derive(Debug, Clone)]
pub struct AuditedOperation {
    pub action: &'static str,
    pub resource: String,
}

/// The account a public operation concerned (e.g. the one signed in to).
#[derive(Debug, Clone)]
pub struct AuditedAccount {
    pub account_id: String,
    pub user_arn: Option<String>,
    pub user_name: String,
}

/// The error a response carries, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditedError {
    pub code: &'static str,
    pub message: String,
}

/// Operation names by method and route template, from the OpenAPI document.
#[derive(Debug, Default)]
pub struct OperationNames(pub HashMap<(String, String), String>);

/// Hands events to a task that appends them in batches.
#[derive(Clone)]
pub struct AuditWriter {
    sender: mpsc::Sender<Event>,
}

/// The writer's task, to wait for on shutdown.
pub struct AuditTask(tokio::task::JoinHandle<()>);

impl AuditTask {
    /// Waits until every event handed over has been written (the senders must
    /// be gone: the HTTP server stopped).
    pub async fn drained(self) {
        let _ = self.0.await;
    }
}

const BATCH: usize = 500;
const PAUSE: Duration = Duration::from_millis(50);

impl AuditWriter {
    pub fn start(db: Db) -> (Self, AuditTask) {
        let (sender, mut receiver) = mpsc::channel::<Event>(10_000);
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                let closed = match tokio::time::timeout(PAUSE, receiver.recv()).await {
                    Ok(Some(event)) => {
                        batch.push(event);
                        while batch.len() < BATCH {
                            match receiver.try_recv() {
                                Ok(event) => batch.push(event),
                                Err(_) => break,
                            }
                        }
                        false
                    }
                    Ok(None) => true,
                    Err(_) => false,
                };
                if !batch.is_empty() {
                    write(&db, &mut batch).await;
                }
                if closed {
                    break;
                }
            }
        });
        (Self { sender }, AuditTask(task))
    }

    pub fn record(&self, event: Event) {
        if let Err(e) = self.sender.try_send(event) {
            tracing::error!(error = %e, "the audit queue is full; an event was not recorded");
        }
    }
}

/// Writes the batch, retrying while the database is away (the batch waits).
async fn write(db: &Db, batch: &mut Vec<Event>) {
    for attempt in 0..20u32 {
        let result = match db.conn().await {
            Ok(mut conn) => audit::store::append(&mut conn, batch.clone()).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, events = batch.len(), "audit events not written yet; retrying");
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt + 1))).await;
            }
        }
    }
    tracing::error!(events = batch.len(), "audit events could not be written and are dropped");
    batch.clear();
}

/// Builds the events of a finished `/v1` call: one in the account acted in,
/// and for a role session of another account a second one there, with one
/// `sharedEventId`.
pub fn events_of(
    response: &ServiceResponse,
    request_id: &str,
    names: &OperationNames,
    latency_status: u16,
) -> Vec<Event> {
    let request = response.request();
    let extensions = request.extensions();
    let caller = extensions.get::<Caller>().cloned();
    let operation = extensions.get::<AuditedOperation>().cloned();
    let account = extensions.get::<AuditedAccount>().cloned();
    drop(extensions);
    let error = response.response().extensions().get::<AuditedError>().cloned();
    let pattern = request.match_pattern().unwrap_or_default();
    let event_name = names
        .0
        .get(&(request.method().as_str().to_owned(), pattern.clone()))
        .cloned()
        .unwrap_or_else(|| "UnknownOperation".to_owned());
    let read_only = request.method() == actix_web::http::Method::GET
        || ["Get", "List", "Simulate", "Lookup"].iter().any(|p| event_name.starts_with(p));
    let event_source = match operation.as_ref().and_then(|o| o.action.split_once(':')) {
        Some((service, _)) => format!("{service}.pipewright"),
        None if request.path().starts_with("/v1/auth") => "signin.pipewright".to_owned(),
        None => "pipewright".to_owned(),
    };
    let mut parameters = Map::new();
    for (name, value) in request.match_info().iter() {
        parameters.insert(name.to_owned(), json!(value));
    }
    if let Ok(query) = actix_web::web::Query::<HashMap<String, String>>::from_query(request.query_string()) {
        for (name, value) in query.into_inner() {
            parameters.insert(name, json!(value));
        }
    }
    let mut request_parameters = Value::Object(parameters);
    audit::redact(&mut request_parameters);
    let (user_identity, recipient, source_account) = identity(caller.as_ref(), account.as_ref());
    let resources = operation
        .as_ref()
        .filter(|o| o.resource != "*")
        .map(|o| {
            vec![Resource { kind: o.action.split(':').next().unwrap_or_default().to_owned(), arn: o.resource.clone() }]
        })
        .unwrap_or_default();
    let event = Event {
        event_id: Uuid::new_v4(),
        recipient_account_id: recipient.clone(),
        event_time: Utc::now(),
        event_source,
        event_name,
        read_only,
        user_identity,
        source_ip_address: request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
        user_agent: request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        request_parameters: Some(request_parameters),
        response_elements: None,
        error_code: error.as_ref().map(|e| e.code.to_owned()),
        error_message: error.map(|e| e.message),
        http_status: i32::from(latency_status),
        request_id: request_id.to_owned(),
        resources,
        shared_event_id: None,
    };
    match source_account.filter(|source| *source != recipient) {
        Some(source) => {
            let shared = Some(Uuid::new_v4());
            let mut there = event.clone();
            there.event_id = Uuid::new_v4();
            there.recipient_account_id = source;
            there.shared_event_id = shared;
            vec![Event { shared_event_id: shared, ..event }, there]
        }
        None => vec![event],
    }
}

/// CloudTrail's `userIdentity`, the account whose log holds the event, and
/// for a role session the account it came from.
fn identity(caller: Option<&Caller>, account: Option<&AuditedAccount>) -> (Value, String, Option<String>) {
    let Some(caller) = caller else {
        return match account {
            Some(a) => (
                json!({"type": if a.user_name == "root" { "Root" } else { "IAMUser" }, "accountId": a.account_id,
                       "arn": a.user_arn, "userName": a.user_name}),
                a.account_id.clone(),
                None,
            ),
            None => (json!({"type": "Anonymous"}), ANONYMOUS.to_owned(), None),
        };
    };
    let claims = &caller.claims;
    let mut identity = json!({
        "principalId": claims.uid,
        "arn": claims.sub,
        "accountId": claims.acct,
    });
    match claims.typ {
        PrincipalKind::Root => identity["type"] = json!("Root"),
        PrincipalKind::User => {
            identity["type"] = json!("IAMUser");
            identity["userName"] = json!(claims.name);
        }
        PrincipalKind::AssumedRole => {
            identity["type"] = json!("AssumedRole");
            let role_name = claims.name.clone().unwrap_or_default();
            identity["sessionContext"] = json!({
                "sessionIssuer": {"type": "Role", "principalId": claims.role, "userName": role_name,
                                  "arn": format!("arn:pw:iam::{}:role/{role_name}", claims.acct), "accountId": claims.acct},
                "creationDate": chrono::DateTime::from_timestamp(claims.iat, 0),
                "mfaAuthenticated": false,
            });
            if let Some(source) = &claims.src {
                identity["sourceIdentity"] = json!(source.arn);
                identity["sourceAccount"] = json!(source.account);
            }
        }
    }
    if let Some(key) = &claims.key {
        identity["accessKeyId"] = json!(key);
    }
    let source = claims.src.as_ref().map(|s| s.account.clone());
    (identity, claims.acct.clone(), source)
}

/// Ends a mutation's request transaction: with a success, its events are
/// appended in it and it commits — together or not at all; otherwise it
/// rolls back. Returns whether the events were recorded here.
pub async fn finish_transaction(tx: crate::auth::RequestTx, success: bool, events: &[Event]) -> Result<bool, String> {
    use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
    let mut guard = tx.0.lock_owned().await;
    let conn: &mut AsyncPgConnection = &mut guard;
    if !success {
        let _ = <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::rollback_transaction(conn).await;
        return Ok(false);
    }
    let mut by_account: std::collections::BTreeMap<String, Vec<Event>> = std::collections::BTreeMap::new();
    for event in events {
        by_account.entry(event.recipient_account_id.clone()).or_default().push(event.clone());
    }
    let mut appended = Ok(());
    for (account, events) in by_account {
        if let Err(e) = audit::store::append_in(conn, &account, events).await {
            appended = Err(e.to_string());
            break;
        }
    }
    let result = match appended {
        Ok(()) => <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::commit_transaction(conn)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::rollback_transaction(conn).await;
    }
    result.map(|()| true)
}

/// Seals the audit log into signed digests every `seconds`, for as long as
/// the process runs.
pub fn start_sealer(db: Db, signer: audit::digest::Signer, seconds: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sealed = match db.conn().await {
                Ok(mut conn) => audit::digest::seal_all(&mut conn, &signer).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sealed {
                tracing::warn!(error = %e, "the audit log could not be sealed now; will retry");
            }
        }
    });
}
