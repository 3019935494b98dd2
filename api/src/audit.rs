//! Recording every `/v1` call in the audit log. The `observe` middleware
//! builds the event from what the request left behind (the caller, the
//! operation and resource it was authorised for, the error it got) and hands
//! it to the [`AuditWriter`], which appends by group commit; the answer
//! leaves once its events are durable, or is a 503.
//!
//! A mutation's events are appended in its own request transaction (see
//! [`finish_transaction`] and docs/decisions/008-audit-design.md); reads and
//! rejected calls go through the batch writer.
//!
//! `requestParameters` are the path and query parameters and the fields of a
//! JSON body; `responseElements` the JSON answer of a successful mutation
//! (reads have none, as in CloudTrail). Both pass through the redactor; a
//! handler whose body holds secrets the redactor cannot know by name (an
//! action's secret configuration) leaves an [`AuditedRequest`] to record
//! instead.

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

/// Another account whose log also gets the event (a role's account, when
/// someone of another account assumes it).
#[derive(Debug, Clone)]
pub struct AuditedAlsoIn(pub String);

/// The error a response carries, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditedError {
    pub code: &'static str,
    pub message: String,
}

/// What to record as a request's body instead of the body itself.
#[derive(Debug, Clone)]
pub struct AuditedRequest(pub Value);

/// What to record as a response's elements instead of its body.
#[derive(Debug, Clone)]
pub struct AuditedResponse(pub Value);

/// The request and response bodies of a call, as read by the middleware.
#[derive(Debug, Default)]
pub struct Bodies {
    pub request: Option<Value>,
    pub response: Option<Value>,
}

/// Bodies larger than this are not recorded (the call still is).
const BODY_LIMIT: usize = 256 * 1024;

fn is_structured(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        t == "application/json" || t.ends_with("+json") || t.starts_with("application/x-amz-json-")
    })
}

/// Reads a JSON request body (up to the JSON limit) for the audit log and
/// puts it back for the handler. Other bodies (uploads) are left alone.
pub async fn capture_request_body(req: &mut actix_web::dev::ServiceRequest) -> Option<Value> {
    use futures_util::StreamExt;
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok());
    if !is_structured(content_type) {
        return None;
    }
    let mut payload = req.take_payload();
    let mut bytes = actix_web::web::BytesMut::new();
    let mut failed = None;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                // Beyond the limit the handler rejects the body anyway.
                if bytes.len() > crate::error::rejections::JSON_LIMIT {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let bytes = bytes.freeze();
    let parsed = if failed.is_none() && bytes.len() <= BODY_LIMIT { serde_json::from_slice(&bytes).ok() } else { None };
    let mut stream: Vec<Result<actix_web::web::Bytes, actix_web::error::PayloadError>> = vec![Ok(bytes)];
    if let Some(e) = failed {
        stream.push(Err(e));
    }
    req.set_payload(actix_web::dev::Payload::Stream { payload: Box::pin(futures_util::stream::iter(stream)) });
    parsed
}

/// Appends the events of calls that are not mutations (reads, refused and
/// unauthenticated calls) by group commit: the events of concurrent
/// requests are written together, one transaction a batch, and each
/// request's answer waits until its events are durable
/// (docs/decisions/015-audit-group-commit.md).
#[derive(Clone)]
pub struct AuditWriter {
    sender: mpsc::Sender<Entry>,
    wait: Duration,
}

/// The writers' tasks, to wait for on shutdown.
pub struct AuditTask(Vec<tokio::task::JoinHandle<()>>);

impl AuditTask {
    /// Waits until every event handed over has been written (the senders must
    /// be gone: the HTTP server stopped).
    pub async fn drained(self) {
        for task in self.0 {
            let _ = task.await;
        }
    }
}

/// The events of one call, waiting to be written.
struct Entry {
    events: Vec<Event>,
    /// When the call stops waiting and answers 503 instead.
    deadline: tokio::time::Instant,
    /// Told once: written (`true`), or not in time (`false`).
    done: Option<tokio::sync::oneshot::Sender<bool>>,
    /// Whether the writer took it ([`TAKEN`]) or the call gave up first
    /// ([`ABANDONED`]): one of the two, never both.
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Entry {
    fn new(
        events: Vec<Event>,
        deadline: tokio::time::Instant,
        done: Option<tokio::sync::oneshot::Sender<bool>>,
    ) -> Self {
        Self { events, deadline, done, state: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(QUEUED)) }
    }

    /// Takes the entry for a batch; an entry its call gave up on is taken
    /// as the 503 its call answered.
    fn take(mut self) -> Self {
        use std::sync::atomic::Ordering;
        if self.state.compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_err() {
            self.done = None;
            self.events.iter_mut().for_each(as_unrecorded);
        }
        self
    }
}

impl Entry {
    fn answer(&mut self, written: bool) {
        if let Some(done) = self.done.take() {
            let _ = done.send(written);
        }
    }
}

/// Why a call's events were not recorded in time: the call answers 503.
#[derive(Debug)]
pub struct Unrecorded;

/// How many batches are written at once.
const WRITERS: usize = 1;
/// Most events one batch writes.
const BATCH_EVENTS: usize = 1000;
/// How long a call waits for its events by default.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long one attempt at writing a batch may take.
const ATTEMPT: Duration = Duration::from_secs(10);

impl AuditWriter {
    pub fn start(db: Db) -> (Self, AuditTask) {
        Self::start_with(db, WAIT)
    }

    /// A writer whose callers wait at most `wait` for their events.
    pub fn start_with(db: Db, wait: Duration) -> (Self, AuditTask) {
        let (sender, receiver) = mpsc::channel::<Entry>(10_000);
        let receiver = std::sync::Arc::new(tokio::sync::Mutex::new(receiver));
        // While one batch is written the next gathers: the more calls at
        // once, the larger the batches, the same one commit each. Two
        // writers, so that one prepares its batch (outside any lock) while
        // the other holds an account's chain head.
        let heads = audit::store::Heads::default();
        let tasks = (0..WRITERS)
            .map(|_| {
                let (receiver, db, heads) = (receiver.clone(), db.clone(), heads.clone());
                tokio::spawn(async move {
                    loop {
                        let batch = {
                            let mut receiver = receiver.lock().await;
                            let Some(first) = receiver.recv().await else { break };
                            let first = first.take();
                            let mut count = first.events.len();
                            let mut batch = vec![first];
                            while count < BATCH_EVENTS {
                                match receiver.try_recv() {
                                    Ok(entry) => {
                                        let entry = entry.take();
                                        count += entry.events.len();
                                        batch.push(entry);
                                    }
                                    Err(_) => break,
                                }
                            }
                            batch
                        };
                        write_batch(&db, &heads, batch).await;
                    }
                })
            })
            .collect();
        (Self { sender, wait }, AuditTask(tasks))
    }

    /// Records a call's events, and resolves once they are durable; or
    /// fails when they could not be written within the writer's wait (the
    /// call then answers 503, and its events are kept and written later as
    /// a 503, what the caller saw).
    pub async fn record(&self, events: Vec<Event>) -> Result<(), Unrecorded> {
        if events.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let recorded = self.record_by_deadline(events).await;
        let metrics = pipewright_core::metrics::get();
        metrics.audit_wait_seconds.observe(started.elapsed().as_secs_f64());
        if recorded.is_err() {
            metrics.audit_unavailable.inc();
        }
        recorded
    }

    async fn record_by_deadline(&self, events: Vec<Event>) -> Result<(), Unrecorded> {
        use std::sync::atomic::Ordering;
        let deadline = tokio::time::Instant::now() + self.wait;
        let permit = match tokio::time::timeout_at(deadline, self.sender.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                tracing::error!(events = events.len(), "the audit writer has stopped; the call is refused");
                return Err(Unrecorded);
            }
            Err(_) => {
                // The queue stayed full: the call answers 503, and its
                // events, as that 503, are queued whenever there is room.
                tracing::error!("the audit queue stayed full; the call is answered 503");
                let mut events = events;
                events.iter_mut().for_each(as_unrecorded);
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    let _ = sender.send(Entry::new(events, tokio::time::Instant::now(), None)).await;
                });
                return Err(Unrecorded);
            }
        };
        let (done, mut written) = tokio::sync::oneshot::channel();
        let entry = Entry::new(events, deadline, Some(done));
        let state = entry.state.clone();
        permit.send(entry);
        match tokio::time::timeout_at(deadline, &mut written).await {
            Ok(answer) => return if answer == Ok(true) { Ok(()) } else { Err(Unrecorded) },
            // Still queued: given up on (the writer then writes it as the
            // 503 the call answers).
            Err(_) if state.compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok() => {
                return Err(Unrecorded);
            }
            Err(_) => {}
        }
        // Taken: the writer answers by the deadline, or at the end of the
        // attempt under way then.
        if written.await == Ok(true) { Ok(()) } else { Err(Unrecorded) }
    }
}

/// Writes a batch, answering each entry: retries while the database is
/// away (entries past their deadline are answered `false` and kept, as
/// 503s); an entry the database refuses (bad data) is written apart, so
/// that it never holds back or loses another's.
async fn write_batch(db: &Db, heads: &audit::store::Heads, mut batch: Vec<Entry>) {
    let mut failures = 0u32;
    let mut unsure = false;
    loop {
        let now = tokio::time::Instant::now();
        for entry in &mut batch {
            if entry.done.is_some() && entry.deadline <= now {
                entry.answer(false);
                entry.events.iter_mut().for_each(as_unrecorded);
            }
        }
        let events: Vec<Event> = batch.iter().flat_map(|e| e.events.iter().cloned()).collect();
        let count = events.len() as u64;
        let started = std::time::Instant::now();
        let attempt = async {
            let mut conn = db.conn().await.map_err(|e| (true, e.to_string()))?;
            // After an attempt whose end was not seen, what it committed
            // is not written twice.
            let events = if unsure {
                audit::store::not_yet_written(&mut conn, events).await.map_err(|e| (true, e.to_string()))?
            } else {
                events
            };
            match audit::store::append_batch(&mut conn, heads, events).await {
                Ok(()) => Ok(()),
                // The database answered: the data is what it refused.
                // Already in the log: an earlier attempt, abandoned by its
                // time limit, committed after all. Tried again, the
                // events already written are left out.
                Err(pipewright_core::iam::IamError::Database(e)) if pipewright_core::iam::is_unique_violation(&e) => {
                    Err((true, e.to_string()))
                }
                Err(e) => Err((!answers(&mut conn).await, e.to_string())),
            }
        };
        let outcome = match tokio::time::timeout(ATTEMPT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err((true, "no answer within the attempt's time".to_owned())),
        };
        match outcome {
            Ok(()) => {
                let metrics = pipewright_core::metrics::get();
                metrics.audit_batch_seconds.observe(started.elapsed().as_secs_f64());
                metrics.audit_events_written.inc_by(count);
                batch.iter_mut().for_each(|e| e.answer(true));
                return;
            }
            Err((false, e)) if batch.len() > 1 || batch.first().is_some_and(|e| e.events.len() > 1) => {
                tracing::warn!(error = %e, "an audit batch was refused; its calls are written one by one");
                for entry in batch {
                    for single in split(entry) {
                        Box::pin(write_batch(db, heads, vec![single])).await;
                    }
                }
                return;
            }
            Err((false, e)) => {
                // One event the database will not take: kept as what can
                // be said of it, never dropped in silence.
                tracing::error!(error = %e, "an audit event was refused; its essentials are recorded instead");
                let Some(mut entry) = batch.pop() else { return };
                entry.answer(false);
                entry.events.iter_mut().for_each(|event| reduce(event, &e));
                // Apart from the writer: however long it takes, it holds
                // back no other call's record.
                tokio::spawn(write_reduced(db.clone(), entry.events));
                return;
            }
            Err((true, e)) => {
                failures += 1;
                unsure = true;
                tracing::warn!(error = %e, attempt = failures, events = batch.iter().map(|e| e.events.len()).sum::<usize>(),
                    "audit events not written yet; retrying");
                let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// An entry of several events as entries of one each (the first answers).
fn split(mut entry: Entry) -> Vec<Entry> {
    let events = std::mem::take(&mut entry.events);
    let (deadline, mut done) = (entry.deadline, entry.done.take());
    let last = events.len().saturating_sub(1);
    events
        .into_iter()
        .enumerate()
        // The call is answered once its last event is written.
        .map(|(i, event)| {
            let mut single = Entry::new(vec![event], deadline, if i == last { done.take() } else { None });
            single.state = entry.state.clone();
            single
        })
        .collect()
}

/// Writes events reduced to their essentials, retrying for as long as the
/// process runs while the database is away (never dropped).
async fn write_reduced(db: Db, events: Vec<Event>) {
    let count = events.len() as u64;
    for attempt in 0u64.. {
        let written = match db.conn().await {
            Ok(mut conn) => match audit::store::not_yet_written(&mut conn, events.clone()).await {
                // Written by an earlier attempt whose end was not seen.
                Ok(left) if left.is_empty() => Ok(()),
                Ok(left) => audit::store::append(&mut conn, left).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => {
                pipewright_core::metrics::get().audit_events_written.inc_by(count);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "a reduced audit event is not written yet; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt.clamp(1, 10))).await;
            }
        }
    }
}

/// The event as the caller saw it when its record was late: a 503.
fn as_unrecorded(event: &mut Event) {
    event.http_status = 503;
    event.error_code = Some("ServiceUnavailableException".to_owned());
    event.error_message = Some("the audit log could not take the call in time; it was answered 503".to_owned());
    event.response_elements = None;
}

/// What is kept of an event the database refused: who, what, when, the
/// outcome, and why the rest is missing.
fn reduce(event: &mut Event, why: &str) {
    as_unrecorded(event);
    event.request_parameters = None;
    event.user_agent = String::new();
    event.error_message = Some(format!(
        "the event could not be stored whole ({}); its call was answered 503",
        why.chars().take(200).collect::<String>()
    ));
}

/// Whether the database answers a trivial query.
async fn answers(conn: &mut pipewright_core::db::Conn) -> bool {
    use diesel_async::RunQueryDsl;
    tokio::time::timeout(Duration::from_secs(2), diesel::sql_query("SELECT 1").execute(&mut **conn))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Reads the JSON answer of a successful mutation for the audit log (reads
/// and streams are passed through untouched).
pub async fn capture_response_body(response: ServiceResponse) -> (ServiceResponse, Option<Value>) {
    use actix_web::body::{BodySize, MessageBody};
    let wanted = response.status().is_success()
        && response.request().method() != actix_web::http::Method::GET
        && response.request().method() != actix_web::http::Method::HEAD
        && is_structured(response.headers().get("content-type").and_then(|v| v.to_str().ok()))
        && matches!(response.response().body().size(), BodySize::Sized(n) if n as usize <= BODY_LIMIT);
    if !wanted {
        return (response, None);
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    match actix_web::body::to_bytes(body).await {
        Ok(bytes) => {
            let parsed = serde_json::from_slice(&bytes).ok();
            let response = head.set_body(bytes).map_into_boxed_body();
            (ServiceResponse::new(request, response), parsed)
        }
        Err(e) => {
            tracing::error!(error = %e, "a response body could not be read");
            let failed = crate::error::ApiError::new(
                crate::error::ErrorCode::InternalFailure,
                "the answer could not be produced; retry shortly",
            );
            (ServiceResponse::new(request, actix_web::ResponseError::error_response(&failed)), None)
        }
    }
}

/// Builds the events of a finished `/v1` call: one in the account acted in,
/// and one more in each other account concerned — the account a role
/// session came from, the account of a role assumed from elsewhere — all
/// with one `sharedEventId`.
pub fn events_of(
    response: &ServiceResponse,
    request_id: &str,
    names: &crate::catalogue::Catalogue,
    latency_status: u16,
    bodies: &Bodies,
) -> Vec<Event> {
    let request = response.request();
    let extensions = request.extensions();
    let caller = extensions.get::<Caller>().cloned();
    let operation = extensions.get::<AuditedOperation>().cloned();
    let account = extensions.get::<AuditedAccount>().cloned();
    let also_in = extensions.get::<AuditedAlsoIn>().map(|a| a.0.clone());
    let chosen = extensions.get::<AuditedRequest>().map(|r| r.0.clone());
    // (What a handler chose to record holds no secret: it is kept as it is.)
    let handler_chose = chosen.is_some();
    let request_body = chosen.or_else(|| bodies.request.clone());
    drop(extensions);
    let response_elements = response
        .response()
        .extensions()
        .get::<AuditedResponse>()
        .map(|r| r.0.clone())
        .or_else(|| bodies.response.clone())
        .map(|mut value| {
            audit::redact(&mut value);
            value
        });
    let error = response.response().extensions().get::<AuditedError>().cloned();
    let pattern = request.match_pattern().unwrap_or_default();
    // A call to the AWS endpoint is named by its X-Amz-Target, also when it
    // was refused before it became an operation's call.
    let aws = extensions_aws_operation(request);
    let event_name = names
        .name_of(request.method().as_str(), &pattern)
        .map(str::to_owned)
        .or_else(|| aws.clone())
        .unwrap_or_else(|| "UnknownOperation".to_owned());
    // The operation's own action, or (for a call refused before it was
    // authorised, e.g. for its body) the one the operation is declared with.
    let action = operation.as_ref().map(|o| o.action).or_else(|| names.action_of(&event_name));
    // One rule for what reads only, by the IAM action (as for the request's
    // transaction); an operation without one reads only if it is a GET.
    let read_only = match action {
        Some(action) => crate::auth::read_only_action(action),
        None => request.method() == actix_web::http::Method::GET,
    };
    let event_source = match action.and_then(|a| a.split_once(':')) {
        Some((service, _)) => format!("{service}.pipewright"),
        None if request.path().starts_with("/v1/auth") => "signin.pipewright".to_owned(),
        None => "pipewright".to_owned(),
    };
    let mut parameters = match request_body {
        Some(Value::Object(fields)) => fields,
        Some(other) => Map::from_iter([("body".to_owned(), other)]),
        None => Map::new(),
    };
    // A call without credentials records only the body and query fields
    // known to hold no secret (a misspelt `pasword` is hidden too), or what
    // its handler chose to record.
    let anonymous = |name: &str| caller.is_none() && !ANONYMOUS_FIELDS.contains(&name);
    if !handler_chose {
        for (name, value) in &mut parameters {
            if anonymous(name) {
                *value = json!(audit::REDACTED);
            }
        }
    }
    if let Ok(query) = actix_web::web::Query::<HashMap<String, String>>::from_query(request.query_string()) {
        for (name, value) in query.into_inner() {
            let value = if anonymous(&name) { json!(audit::REDACTED) } else { json!(value) };
            parameters.insert(name, value);
        }
    }
    for (name, value) in request.match_info().iter() {
        parameters.insert(name.to_owned(), json!(value));
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
        source_ip_address: crate::auth::source_ip(request),
        user_agent: request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        request_parameters: Some(request_parameters),
        response_elements,
        error_code: error.as_ref().map(|e| e.code.to_owned()),
        error_message: error.map(|e| e.message),
        http_status: i32::from(latency_status),
        request_id: request_id.to_owned(),
        resources,
        shared_event_id: None,
    };
    let mut others: Vec<String> = source_account.into_iter().chain(also_in).filter(|o| *o != recipient).collect();
    others.dedup();
    if others.is_empty() {
        return vec![event];
    }
    let shared = Some(Uuid::new_v4());
    let mut events = vec![Event { shared_event_id: shared, ..event }];
    for other in others {
        let mut there = events[0].clone();
        there.event_id = Uuid::new_v4();
        there.recipient_account_id = other;
        events.push(there);
    }
    events
}

/// The request fields a call without credentials (sign-in, sign-up, the
/// token exchange) is recorded with; every other field is hidden.
const ANONYMOUS_FIELDS: [&str; 4] = ["account", "userName", "alias", "accessKeyId"];

/// The AWS operation a call to the AWS endpoint named.
fn extensions_aws_operation(request: &actix_web::HttpRequest) -> Option<String> {
    request.extensions().get::<crate::aws::AwsOperation>().map(|o| o.0.clone())
}

/// The identity type of a call without credentials made on an account's
/// behalf: its root or a user signing in, a webhook's delivery, an
/// Invoke/HTTP action's callback, or a job's artifact URL.
fn identity_type(account: &AuditedAccount) -> &'static str {
    match &account.user_arn {
        Some(arn) if arn.starts_with("arn:pw:codepipeline:") && arn.contains(":webhook:") => "Webhook",
        Some(arn) if arn.starts_with("arn:pw:codepipeline:") && account.user_name == "callback" => "Callback",
        Some(arn) if arn.starts_with("arn:pw:codepipeline:") && account.user_name == "job" => "Job",
        _ if account.user_name == "root" => "Root",
        _ => "IAMUser",
    }
}

/// CloudTrail's `userIdentity`, the account whose log holds the event, and
/// for a role session the account it came from.
fn identity(caller: Option<&Caller>, account: Option<&AuditedAccount>) -> (Value, String, Option<String>) {
    let Some(caller) = caller else {
        return match account {
            Some(a) => (
                json!({"type": identity_type(a), "accountId": a.account_id, "arn": a.user_arn, "userName": a.user_name}),
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

/// Seals the audit log into signed digests every `seconds`, and purges what
/// is past each account's retention, for as long as the process runs.
pub fn start_sealer(db: Db, keys: audit::digest::AuditKeys, seconds: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sealed = match db.conn().await {
                // Sealed first: retention removes only sealed ranges.
                Ok(mut conn) => match audit::digest::seal_all(&mut conn, &keys).await {
                    Ok(_) => audit::retention::purge_all(&mut conn, Utc::now()).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sealed {
                tracing::warn!(error = %e, "the audit log could not be sealed now; will retry");
            }
        }
    });
}
