//! The audit events in PostgreSQL: appending to each account's chain, and
//! LookupEvents.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, PgArrayExpressionMethods, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::{Event, GENESIS, Resource};
use crate::iam::IamError;
use crate::schema::{audit_chain_heads, audit_events};

/// Appends events to their accounts' chains in one transaction (one
/// commit for the whole batch; the chain heads are locked in the accounts'
/// order, as a mutation's request transaction locks them). Appenders of
/// one account take turns on the account's chain head.
pub async fn append(conn: &mut AsyncPgConnection, events: Vec<Event>) -> Result<(), IamError> {
    let mut by_account: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for event in events {
        by_account.entry(event.recipient_account_id.clone()).or_default().push(event);
    }
    conn.transaction::<_, IamError, _>(async move |conn| {
        for (account, events) in by_account {
            append_in(conn, &account, events).await?;
        }
        Ok(())
    })
    .await
}

/// The events of `events` not in the log yet (after an append whose end was
/// not seen: what it committed is not appended twice).
pub async fn not_yet_written(conn: &mut AsyncPgConnection, events: Vec<Event>) -> Result<Vec<Event>, IamError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let written: Vec<Uuid> = audit_events::table
        .filter(audit_events::event_id.eq_any(&ids))
        .select(audit_events::event_id)
        .load(conn)
        .await?;
    Ok(events.into_iter().filter(|e| !written.contains(&e.event_id)).collect())
}

/// Appends `events` of `account` on a connection already in a transaction.
pub async fn append_in(conn: &mut AsyncPgConnection, account: &str, events: Vec<Event>) -> Result<(), IamError> {
    // Everything but the links first, before the head is locked: other
    // appenders of the account wait only for the links and the writes.
    let prepared: Vec<(Event, String)> = events
        .into_iter()
        .map(|mut event| {
            // PostgreSQL keeps microseconds and stores no NUL character:
            // hash what will be read back.
            event.event_time = truncate_to_micros(event.event_time);
            event.escape_nul();
            let canonical = event.canonical();
            (event, canonical)
        })
        .collect();
    let Head { mut seq, mut hash, event_id: mut last_id } = read_head(conn, account, true).await?;
    let mut rows = Vec::with_capacity(prepared.len());
    for (event, canonical) in prepared {
        seq += 1;
        let prev = hash;
        let prev_id = last_id;
        hash = super::chain_hash(&prev, prev_id, &canonical);
        last_id = Some(event.event_id);
        rows.push((
            audit_events::event_id.eq(event.event_id),
            audit_events::account_id.eq(account.to_owned()),
            audit_events::seq.eq(seq),
            audit_events::prev_hash.eq(prev),
            audit_events::prev_event_id.eq(prev_id),
            audit_events::hash.eq(hash.clone()),
            audit_events::event_time.eq(event.event_time),
            audit_events::principal_arn.eq(event.principal_arn()),
            audit_events::user_name.eq(event.user_name()),
            audit_events::resources.eq(serde_json::to_value(&event.resources).unwrap_or_default()),
            audit_events::resource_keys.eq(event.resource_keys()),
            (
                audit_events::event_source.eq(event.event_source),
                audit_events::event_name.eq(event.event_name),
                audit_events::read_only.eq(event.read_only),
                audit_events::user_identity.eq(event.user_identity),
                audit_events::source_ip.eq(event.source_ip_address),
                audit_events::user_agent.eq(event.user_agent),
                audit_events::request_parameters.eq(event.request_parameters),
                audit_events::response_elements.eq(event.response_elements),
                audit_events::error_code.eq(event.error_code),
                audit_events::error_message.eq(event.error_message),
                audit_events::http_status.eq(event.http_status),
                audit_events::request_id.eq(event.request_id),
                audit_events::shared_event_id.eq(event.shared_event_id),
            ),
        ));
    }
    // One statement for all of them (its text differs with the number of
    // rows; PostgreSQL plans each count once per connection).
    diesel::insert_into(audit_events::table).values(rows).execute(conn).await?;
    diesel::update(audit_chain_heads::table.find(account))
        .set((
            audit_chain_heads::seq.eq(seq),
            audit_chain_heads::hash.eq(&hash),
            audit_chain_heads::event_id.eq(last_id),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Where an account's chain ends: its last sequence number, hash and event.
#[derive(Debug, Clone)]
struct Head {
    seq: i64,
    hash: String,
    event_id: Option<Uuid>,
}

/// The chain heads a writer last wrote, by account: a cache that lets a
/// batch go in one statement, without locking the head first. A stale
/// entry (another process, or a change's own event, appended since) only
/// costs a retry: the statement writes nothing unless the head is still
/// where the cache says.
#[derive(Debug, Clone, Default)]
pub struct Heads(std::sync::Arc<std::sync::Mutex<HashMap<String, Head>>>);

impl Heads {
    fn get(&self, account: &str) -> Option<Head> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(account).cloned()
    }

    fn set(&self, account: &str, head: Option<Head>) {
        let mut heads = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match head {
            Some(head) => heads.insert(account.to_owned(), head),
            None => heads.remove(account),
        };
    }
}

/// Reads the account's head (locked until the transaction ends when
/// `lock`), making it when the account has none (its first event).
async fn read_head(conn: &mut AsyncPgConnection, account: &str, lock: bool) -> Result<Head, IamError> {
    async fn fetch(
        conn: &mut AsyncPgConnection,
        account: &str,
        lock: bool,
    ) -> diesel::QueryResult<Option<(i64, String, Option<Uuid>)>> {
        let query = audit_chain_heads::table.find(account).select((
            audit_chain_heads::seq,
            audit_chain_heads::hash,
            audit_chain_heads::event_id,
        ));
        if lock { query.for_update().first(conn).await.optional() } else { query.first(conn).await.optional() }
    }
    let (seq, hash, event_id) = match fetch(conn, account, lock).await? {
        Some(found) => found,
        None => {
            diesel::insert_into(audit_chain_heads::table)
                .values((
                    audit_chain_heads::account_id.eq(account),
                    audit_chain_heads::seq.eq(0i64),
                    audit_chain_heads::hash.eq(GENESIS),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            fetch(conn, account, lock).await?.ok_or(diesel::result::Error::NotFound)?
        }
    };
    Ok(Head { seq, hash, event_id })
}

/// One statement: moves the head from where `from` says to the batch's
/// end, and inserts the batch, or does neither when the head was not
/// there. Its text never changes (the rows go as one array per column), so
/// PostgreSQL plans it once per connection.
const APPEND: &str = "WITH head AS (
    UPDATE audit_chain_heads SET seq = $2, hash = $3, event_id = $4
    WHERE account_id = $1 AND seq = $5 AND hash = $6
    RETURNING 1
)
INSERT INTO audit_events (event_id, account_id, seq, prev_hash, prev_event_id, hash, event_time,
    principal_arn, user_name, resources, resource_keys, event_source, event_name, read_only, user_identity,
    source_ip, user_agent, request_parameters, response_elements, error_code, error_message, http_status,
    request_id, shared_event_id)
SELECT u.event_id, $1, u.seq, u.prev_hash, u.prev_event_id, u.hash, u.event_time,
    u.principal_arn, u.user_name, u.resources, ARRAY(SELECT jsonb_array_elements_text(u.resource_keys)),
    u.event_source, u.event_name, u.read_only, u.user_identity,
    u.source_ip, u.user_agent, u.request_parameters, u.response_elements, u.error_code, u.error_message,
    u.http_status, u.request_id, u.shared_event_id
FROM unnest($7::uuid[], $8::bigint[], $9::text[], $10::uuid[], $11::text[], $12::timestamptz[],
    $13::text[], $14::text[], $15::jsonb[], $16::jsonb[], $17::text[], $18::text[], $19::bool[], $20::jsonb[],
    $21::text[], $22::text[], $23::jsonb[], $24::jsonb[], $25::text[], $26::text[], $27::int4[],
    $28::text[], $29::uuid[])
    AS u(event_id, seq, prev_hash, prev_event_id, hash, event_time, principal_arn, user_name, resources,
         resource_keys, event_source, event_name, read_only, user_identity, source_ip, user_agent,
         request_parameters, response_elements, error_code, error_message, http_status, request_id,
         shared_event_id)
WHERE EXISTS (SELECT 1 FROM head)";

/// Columns of a batch of one account, in [`APPEND`]'s order.
#[derive(Default)]
struct Columns {
    event_id: Vec<Uuid>,
    seq: Vec<i64>,
    prev_hash: Vec<String>,
    prev_event_id: Vec<Option<Uuid>>,
    hash: Vec<String>,
    event_time: Vec<DateTime<Utc>>,
    principal_arn: Vec<Option<String>>,
    user_name: Vec<Option<String>>,
    resources: Vec<Value>,
    resource_keys: Vec<Value>,
    event_source: Vec<String>,
    event_name: Vec<String>,
    read_only: Vec<bool>,
    user_identity: Vec<Value>,
    source_ip: Vec<String>,
    user_agent: Vec<String>,
    request_parameters: Vec<Option<Value>>,
    response_elements: Vec<Option<Value>>,
    error_code: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    http_status: Vec<i32>,
    request_id: Vec<String>,
    shared_event_id: Vec<Option<Uuid>>,
}

/// The account's events linked after `from`: the columns, and the head
/// they end at.
fn link(from: &Head, events: &[(Event, String)]) -> (Columns, Head) {
    let mut c = Columns::default();
    let (mut seq, mut hash, mut last) = (from.seq, from.hash.clone(), from.event_id);
    for (event, canonical) in events {
        seq += 1;
        let next = super::chain_hash(&hash, last, canonical);
        c.event_id.push(event.event_id);
        c.seq.push(seq);
        c.prev_hash.push(std::mem::replace(&mut hash, next.clone()));
        c.prev_event_id.push(last);
        c.hash.push(next);
        last = Some(event.event_id);
        c.event_time.push(event.event_time);
        c.principal_arn.push(event.principal_arn());
        c.user_name.push(event.user_name());
        c.resources.push(serde_json::to_value(&event.resources).unwrap_or_default());
        c.resource_keys.push(Value::from(event.resource_keys()));
        c.event_source.push(event.event_source.clone());
        c.event_name.push(event.event_name.clone());
        c.read_only.push(event.read_only);
        c.user_identity.push(event.user_identity.clone());
        c.source_ip.push(event.source_ip_address.clone());
        c.user_agent.push(event.user_agent.clone());
        c.request_parameters.push(event.request_parameters.clone());
        c.response_elements.push(event.response_elements.clone());
        c.error_code.push(event.error_code.clone());
        c.error_message.push(event.error_message.clone());
        c.http_status.push(event.http_status);
        c.request_id.push(event.request_id.clone());
        c.shared_event_id.push(event.shared_event_id);
    }
    (c, Head { seq, hash, event_id: last })
}

/// Runs [`APPEND`]: whether the head was where `from` says (and the rows
/// are in).
async fn append_linked(
    conn: &mut AsyncPgConnection,
    account: &str,
    from: &Head,
    to: &Head,
    c: Columns,
) -> Result<bool, IamError> {
    use diesel::sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let rows = c.event_id.len();
    let inserted = diesel::sql_query(APPEND)
        .bind::<Text, _>(account)
        .bind::<BigInt, _>(to.seq)
        .bind::<Text, _>(&to.hash)
        .bind::<Nullable<SqlUuid>, _>(to.event_id)
        .bind::<BigInt, _>(from.seq)
        .bind::<Text, _>(&from.hash)
        .bind::<Array<SqlUuid>, _>(c.event_id)
        .bind::<Array<BigInt>, _>(c.seq)
        .bind::<Array<Text>, _>(c.prev_hash)
        .bind::<Array<Nullable<SqlUuid>>, _>(c.prev_event_id)
        .bind::<Array<Text>, _>(c.hash)
        .bind::<Array<Timestamptz>, _>(c.event_time)
        .bind::<Array<Nullable<Text>>, _>(c.principal_arn)
        .bind::<Array<Nullable<Text>>, _>(c.user_name)
        .bind::<Array<Jsonb>, _>(c.resources)
        .bind::<Array<Jsonb>, _>(c.resource_keys)
        .bind::<Array<Text>, _>(c.event_source)
        .bind::<Array<Text>, _>(c.event_name)
        .bind::<Array<Bool>, _>(c.read_only)
        .bind::<Array<Jsonb>, _>(c.user_identity)
        .bind::<Array<Text>, _>(c.source_ip)
        .bind::<Array<Text>, _>(c.user_agent)
        .bind::<Array<Nullable<Jsonb>>, _>(c.request_parameters)
        .bind::<Array<Nullable<Jsonb>>, _>(c.response_elements)
        .bind::<Array<Nullable<Text>>, _>(c.error_code)
        .bind::<Array<Nullable<Text>>, _>(c.error_message)
        .bind::<Array<Integer>, _>(c.http_status)
        .bind::<Array<Text>, _>(c.request_id)
        .bind::<Array<Nullable<SqlUuid>>, _>(c.shared_event_id)
        .execute(conn)
        .await?;
    Ok(inserted == rows)
}

/// Appends a batch of events (the audit writer's): per account, one
/// statement that links them after the head `heads` remembers and moves
/// it, in one round trip and without a lock held between statements. A
/// head that moved meanwhile is read again and the batch linked anew; after
/// a few such tries it goes the locking way ([`append`]). Several accounts
/// go in one transaction.
pub async fn append_batch(conn: &mut AsyncPgConnection, heads: &Heads, events: Vec<Event>) -> Result<(), IamError> {
    let mut by_account: BTreeMap<String, Vec<(Event, String)>> = BTreeMap::new();
    for mut event in events {
        event.event_time = truncate_to_micros(event.event_time);
        event.escape_nul();
        let canonical = event.canonical();
        by_account.entry(event.recipient_account_id.clone()).or_default().push((event, canonical));
    }
    for _ in 0..4 {
        let mut plans = Vec::with_capacity(by_account.len());
        for (account, events) in &by_account {
            let from = match heads.get(account) {
                Some(head) => head,
                None => read_head(conn, account, false).await?,
            };
            let (columns, to) = link(&from, events);
            plans.push((account.clone(), from, to, columns));
        }
        let single = plans.len() == 1;
        let heads_after = heads.clone();
        let appended = async move |conn: &mut AsyncPgConnection| -> Result<bool, IamError> {
            for (account, from, to, columns) in plans {
                if !append_linked(conn, &account, &from, &to, columns).await? {
                    heads_after.set(&account, None);
                    return Ok(false);
                }
                heads_after.set(&account, Some(to));
            }
            Ok(true)
        };
        let done = if single {
            appended(conn).await?
        } else {
            // All accounts or none (a moved head rolls the others back).
            let moved = conn
                .transaction::<_, IamError, _>(async move |conn| {
                    if appended(conn).await? {
                        Ok(())
                    } else {
                        Err(IamError::Database(diesel::result::Error::RollbackTransaction))
                    }
                })
                .await;
            match moved {
                Ok(()) => true,
                Err(IamError::Database(diesel::result::Error::RollbackTransaction)) => false,
                Err(e) => return Err(e),
            }
        };
        if done {
            return Ok(());
        }
        for account in by_account.keys() {
            heads.set(account, None);
        }
    }
    for account in by_account.keys() {
        heads.set(account, None);
    }
    append(conn, by_account.into_values().flatten().map(|(event, _)| event).collect()).await
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct Row {
    event_id: Uuid,
    account_id: String,
    event_time: DateTime<Utc>,
    event_source: String,
    event_name: String,
    read_only: bool,
    user_identity: serde_json::Value,
    source_ip: String,
    user_agent: String,
    request_parameters: Option<serde_json::Value>,
    response_elements: Option<serde_json::Value>,
    error_code: Option<String>,
    error_message: Option<String>,
    http_status: i32,
    request_id: String,
    resources: serde_json::Value,
    shared_event_id: Option<Uuid>,
}

impl From<Row> for Event {
    fn from(r: Row) -> Self {
        Self {
            event_id: r.event_id,
            recipient_account_id: r.account_id,
            event_time: r.event_time,
            event_source: r.event_source,
            event_name: r.event_name,
            read_only: r.read_only,
            user_identity: r.user_identity,
            source_ip_address: r.source_ip,
            user_agent: r.user_agent,
            request_parameters: r.request_parameters,
            response_elements: r.response_elements,
            error_code: r.error_code,
            error_message: r.error_message,
            http_status: r.http_status,
            request_id: r.request_id,
            resources: serde_json::from_value::<Vec<Resource>>(r.resources).unwrap_or_default(),
            shared_event_id: r.shared_event_id,
        }
    }
}

/// LookupEvents' filters (all optional, ANDed).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub event_name: Option<String>,
    pub user_name: Option<String>,
    pub principal_arn: Option<String>,
    pub resource_arn: Option<String>,
    pub read_only: Option<bool>,
    pub error_code: Option<String>,
    pub source_ip: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// A page of `account`'s events, newest first, after `after` (the last
/// event's time and id of the previous page).
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    account: &str,
    filter: &Filter,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<(Vec<Event>, Option<(DateTime<Utc>, Uuid)>), IamError> {
    let mut query = audit_events::table
        .select(Row::as_select())
        .filter(audit_events::account_id.eq(account))
        .order((audit_events::event_time.desc(), audit_events::event_id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some(v) = &filter.event_name {
        query = query.filter(audit_events::event_name.eq(v.clone()));
    }
    if let Some(v) = &filter.user_name {
        query = query.filter(audit_events::user_name.eq(v.clone()));
    }
    if let Some(v) = &filter.principal_arn {
        query = query.filter(audit_events::principal_arn.eq(v.clone()));
    }
    if let Some(v) = &filter.resource_arn {
        query = query.filter(audit_events::resource_keys.contains(vec![v.clone()]));
    }
    if let Some(v) = filter.read_only {
        query = query.filter(audit_events::read_only.eq(v));
    }
    if let Some(v) = &filter.error_code {
        query = query.filter(audit_events::error_code.eq(v.clone()));
    }
    if let Some(v) = &filter.source_ip {
        query = query.filter(audit_events::source_ip.eq(v.clone()));
    }
    if let Some(v) = filter.start_time {
        query = query.filter(audit_events::event_time.ge(v));
    }
    if let Some(v) = filter.end_time {
        query = query.filter(audit_events::event_time.le(v));
    }
    if let Some((time, id)) = after {
        use diesel::BoolExpressionMethods;
        query = query.filter(
            audit_events::event_time.lt(time).or(audit_events::event_time.eq(time).and(audit_events::event_id.lt(id))),
        );
    }
    let mut rows: Vec<Row> = query.load(conn).await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| (r.event_time, r.event_id))
    } else {
        None
    };
    Ok((rows.into_iter().map(Event::from).collect(), next))
}

fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The first event that breaks the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = InvalidRecord)]
#[serde(rename_all = "camelCase")]
pub struct Invalid {
    pub event_id: Option<Uuid>,
    pub reason: String,
}

/// What verifying a range found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub valid: bool,
    pub events_checked: i64,
    pub digests_checked: i64,
    pub first_invalid: Option<Invalid>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct Chained {
    seq: i64,
    prev_hash: String,
    prev_event_id: Option<Uuid>,
    hash: String,
    /// The lookup columns, which LookupEvents filters on: derived from the
    /// hashed content, and checked against it.
    principal_arn: Option<String>,
    user_name: Option<String>,
    resource_keys: Vec<String>,
    #[diesel(embed)]
    row: Row,
}

/// Walks `account`'s chain over the time range, in order: every event's
/// hash is recomputed from its content and its predecessor's hash, and the
/// sequence must have no gap. An altered row fails its hash; a deleted one
/// leaves a gap; an inserted one breaks its successor's link.
pub async fn verify(
    conn: &mut AsyncPgConnection,
    account: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    keys: Option<&super::digest::AuditKeys>,
) -> Result<Verification, IamError> {
    // One snapshot of head, events and digests: an append, a seal or a purge
    // committing meanwhile must not look like tampering.
    let (account, keys) = (account.to_owned(), keys.cloned());
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async move |conn| verify_in(conn, &account, start, end, keys.as_ref()).await)
        .await
}

async fn verify_in(
    conn: &mut AsyncPgConnection,
    account: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    keys: Option<&super::digest::AuditKeys>,
) -> Result<Verification, IamError> {
    // The head first: events appended while verifying are beyond it and left
    // for the next check.
    let head: Option<(i64, String, i64, String, Option<Uuid>)> = audit_chain_heads::table
        .find(account)
        .select((
            audit_chain_heads::seq,
            audit_chain_heads::hash,
            audit_chain_heads::purged_seq,
            audit_chain_heads::purged_hash,
            audit_chain_heads::event_id,
        ))
        .first(conn)
        .await
        .optional()?;
    // Where retention cut the log: the chain starts right after it.
    let (purged_seq, purged_hash) = head.as_ref().map_or((0, GENESIS.to_owned()), |h| (h.2, h.3.clone()));
    let last_recorded = head.as_ref().and_then(|h| h.4);
    let head = head.map(|(seq, hash, _, _, _)| (seq, hash));
    let mut query = audit_events::table
        .select(Chained::as_select())
        .filter(audit_events::account_id.eq(account))
        .filter(audit_events::seq.le(head.as_ref().map_or(0, |(seq, _)| *seq)))
        .order(audit_events::seq.asc())
        .into_boxed();
    if let Some(start) = start {
        query = query.filter(audit_events::event_time.ge(start));
    }
    if let Some(end) = end {
        query = query.filter(audit_events::event_time.le(end));
    }
    let rows: Vec<Chained> = query.load(conn).await?;
    let mut checked = 0;
    let mut previous: Option<(i64, String)> = None;
    let mut hashes: std::collections::HashMap<i64, (Uuid, String)> = std::collections::HashMap::new();
    let mut last_purge: Option<i64> = None;
    for chained in rows {
        hashes.insert(chained.seq, (chained.row.event_id, chained.hash.clone()));
        checked += 1;
        let id = chained.row.event_id;
        let fail = |event_id: Option<Uuid>, reason: String| Verification {
            valid: false,
            events_checked: checked,
            digests_checked: 0,
            first_invalid: Some(Invalid { event_id: event_id.or(Some(id)), reason }),
        };
        let (seq, prev_hash, prev_id, stored_hash) =
            (chained.seq, chained.prev_hash, chained.prev_event_id, chained.hash);
        let lookup = (chained.principal_arn, chained.user_name, chained.resource_keys);
        let event = Event::from(chained.row);
        // Its own hash first: only an intact event's link to its predecessor is believed.
        if event.linked_hash(&prev_hash, prev_id) != stored_hash {
            return Ok(fail(
                None,
                "this event was altered after it was recorded (its hash no longer matches)".to_owned(),
            ));
        }
        // What LookupEvents finds it by must say what the event says.
        let altered: Vec<&str> = [
            ("principal_arn", lookup.0 != event.principal_arn()),
            ("user_name", lookup.1 != event.user_name()),
            ("resource_keys", lookup.2 != event.resource_keys()),
        ]
        .into_iter()
        .filter_map(|(column, differs)| differs.then_some(column))
        .collect();
        if !altered.is_empty() {
            return Ok(fail(
                None,
                format!(
                    "this event's lookup columns ({}) were altered after it was recorded: they no longer match its content",
                    altered.join(", ")
                ),
            ));
        }
        let expected_first = match &previous {
            Some((before, _)) => Some(before + 1),
            None if start.is_none() => Some(purged_seq + 1),
            None => None,
        };
        if let Some(expected) = expected_first
            && seq != expected
        {
            let which = if seq - 1 == expected {
                format!("event {expected} was")
            } else {
                format!("events {expected} to {} were", seq - 1)
            };
            let reason = match prev_id {
                Some(_) if seq - 1 == expected => format!("{which} deleted from the chain"),
                Some(_) => format!("{which} deleted from the chain (the id is event {}'s, the last of them)", seq - 1),
                None => format!("{which} deleted from the chain before this event"),
            };
            return Ok(fail(prev_id, reason));
        }
        match &previous {
            Some((_, hash)) if prev_hash != *hash => {
                return Ok(fail(
                    None,
                    "this event does not follow the one before it in the chain (inserted or reordered)".to_owned(),
                ));
            }
            None if (start.is_none() || seq == purged_seq + 1) && prev_hash != purged_hash => {
                return Ok(fail(
                    None,
                    if purged_seq == 0 {
                        "the first event of the chain does not start from the genesis hash".to_owned()
                    } else {
                        format!("the first event kept does not follow event {purged_seq}, where the log was purged")
                    },
                ));
            }
            _ => {}
        }
        if event.event_name == super::retention::PURGE_EVENT && event.event_source == "audit.pipewright" {
            last_purge =
                event.request_parameters.as_ref().and_then(|p| p.get("throughSeq")).and_then(serde_json::Value::as_i64);
        }
        previous = Some((seq, stored_hash));
    }
    // Every event deleted (but the head remembers them).
    if start.is_none()
        && end.is_none()
        && previous.is_none()
        && let Some((head_seq, _)) = &head
        && *head_seq > purged_seq
    {
        return Ok(Verification {
            valid: false,
            events_checked: 0,
            digests_checked: 0,
            first_invalid: Some(Invalid {
                event_id: last_recorded,
                reason: format!("{head_seq} events were recorded and none is left: they were deleted"),
            }),
        });
    }
    // Events deleted at the end of the chain: the head remembers the last one.
    if end.is_none()
        && let (Some((head_seq, head_hash)), Some((seq, hash))) = (&head, &previous)
        && (head_seq != seq || head_hash != hash)
    {
        return Ok(Verification {
            valid: false,
            events_checked: checked,
            digests_checked: 0,
            first_invalid: Some(Invalid {
                event_id: last_recorded,
                reason: format!(
                    "the chain ends at event {seq} but {head_seq} were recorded: the last were deleted (the id is the \
                     last recorded event's)"
                ),
            }),
        });
    }
    // A cut by retention must be one a recorded purge made.
    if start.is_none() && end.is_none() && purged_seq > 0 && last_purge != Some(purged_seq) {
        return Ok(Verification {
            valid: false,
            events_checked: checked,
            digests_checked: 0,
            first_invalid: Some(Invalid {
                event_id: None,
                reason: format!("the log starts after event {purged_seq}, but no recorded purge removed those events"),
            }),
        });
    }
    // The digests: each signed, each naming the one before, each sealing the
    // hash its range ended with.
    let mut digests_checked = 0;
    let mut cut_sealed = purged_seq == 0;
    if let Some(keys) = keys {
        let mut prev = GENESIS.to_owned();
        for digest in super::digest::digests(conn, account).await? {
            digests_checked += 1;
            let done = digests_checked;
            let fail = |reason: String, event_id: Option<Uuid>| Verification {
                valid: false,
                events_checked: checked,
                digests_checked: done,
                first_invalid: Some(Invalid { event_id, reason }),
            };
            let n = digest.digest_seq;
            let expected = super::digest::digest_hash(
                account,
                n,
                digest.first_seq,
                digest.last_seq,
                &digest.last_hash,
                &digest.prev_digest_hash,
            );
            if let Some(id) = digest.key_id.as_deref()
                && !keys.keys().iter().any(|k| k.key_id == id)
            {
                return Ok(fail(format!("digest {n} names the key {id}, which is not one of the audit keys"), None));
            }
            if expected != digest.digest_hash
                || !keys.verify(digest.key_id.as_deref(), &digest.digest_hash, &digest.signature)
            {
                return Ok(fail(format!("digest {n} was altered (its signature does not verify)"), None));
            }
            if digest.prev_digest_hash != prev {
                return Ok(fail(format!("digest {n} does not follow the digest before it"), None));
            }
            prev = digest.digest_hash.clone();
            if digest.last_seq == purged_seq && digest.last_hash == purged_hash {
                cut_sealed = true;
            }
            if digest.last_seq <= purged_seq {
                continue;
            }
            let head_seq = head.as_ref().map_or(0, |(seq, _)| *seq);
            if digest.last_seq > head_seq {
                return Ok(fail(
                    format!(
                        "digest {n} sealed events up to {} but the chain ends at {head_seq}: the last were deleted",
                        digest.last_seq
                    ),
                    None,
                ));
            }
            let in_range = start.is_none() && end.is_none();
            match hashes.get(&digest.last_seq) {
                Some((id, hash)) if *hash != digest.last_hash => {
                    return Ok(fail(format!("the events sealed by digest {n} were changed"), Some(*id)));
                }
                None if in_range && digest.last_seq <= head.as_ref().map_or(0, |(seq, _)| *seq) => {
                    return Ok(fail(format!("event {} sealed by digest {n} was deleted", digest.last_seq), None));
                }
                _ => {}
            }
        }
    }
    if !cut_sealed {
        return Ok(Verification {
            valid: false,
            events_checked: checked,
            digests_checked,
            first_invalid: Some(Invalid {
                event_id: None,
                reason: format!("the log was cut after event {purged_seq}, where no signed digest ends"),
            }),
        });
    }
    Ok(Verification { valid: true, events_checked: checked, digests_checked, first_invalid: None })
}

/// Up to `limit` of `account`'s events after sequence number `after`, oldest
/// first, within the time range: a page of an export.
pub async fn export_page(
    conn: &mut AsyncPgConnection,
    account: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Event)>, IamError> {
    let mut query = audit_events::table
        .select(Chained::as_select())
        .filter(audit_events::account_id.eq(account))
        .filter(audit_events::seq.gt(after))
        .order(audit_events::seq.asc())
        .limit(limit)
        .into_boxed();
    if let Some(start) = start {
        query = query.filter(audit_events::event_time.ge(start));
    }
    if let Some(end) = end {
        query = query.filter(audit_events::event_time.le(end));
    }
    let rows: Vec<Chained> = query.load(conn).await?;
    Ok(rows.into_iter().map(|c| (c.seq, Event::from(c.row))).collect())
}
