//! The messages between api and worker, their RabbitMQ topology, and the
//! transactional outbox that hands them over.
//!
//! A change and the messages it causes commit together (an `outbox` row per
//! message); then whoever committed publishes them with publisher confirms
//! and deletes them, and the relay sweeps up any that a crash left behind.
//! Queues are quorum queues with manual acks, a bounded prefetch, and a
//! dead-letter exchange that takes a message delivered too often.

use std::sync::Arc;

use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::broker::Broker;
use crate::deps::Unavailable;
use crate::iam::IamError;
use crate::schema::outbox;

/// Deliveries of one message before it goes to the dead-letter queue.
pub const DELIVERY_LIMIT: i64 = 5;

/// What the api and the worker tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Message {
    /// Look at the execution and take its next steps.
    #[serde(rename_all = "camelCase")]
    Advance { execution_id: Uuid },
    /// Run the action.
    #[serde(rename_all = "camelCase")]
    Run { action_execution_id: Uuid },
    /// Decide a change a webhook delivered to a source (the worker reads
    /// the files it touched, then matches it with the source's trigger).
    #[serde(rename_all = "camelCase")]
    Change {
        pipeline_id: Uuid,
        action_name: String,
        change: Box<crate::pipelines::triggers::Change>,
        /// The commit the ref was at before (a push's `before`).
        before: Option<String>,
        /// The webhook's ARN.
        webhook: String,
    },
}

impl Message {
    pub fn routing_key(&self) -> &'static str {
        match self {
            Self::Advance { .. } | Self::Change { .. } => ORCHESTRATE,
            Self::Run { .. } => JOBS,
        }
    }
}

/// The queue (and routing key) of orchestration messages.
pub const ORCHESTRATE: &str = "orchestrate";
/// The queue (and routing key) of action jobs.
pub const JOBS: &str = "jobs";
/// Where messages delivered [`DELIVERY_LIMIT`] times end.
pub const DEAD: &str = "dead-letter";

/// Declares the exchanges and queues (idempotent).
pub async fn declare(channel: &Channel, broker: &Broker, expires_secs: u64) -> Result<(), lapin::Error> {
    let exchange = broker.name("messages");
    let dead_exchange = broker.name("dead");
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
    channel
        .exchange_declare(dead_exchange.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default())
        .await?;
    let mut base = FieldTable::default();
    base.insert(ShortString::from("x-queue-type"), AMQPValue::LongString("quorum".into()));
    if expires_secs > 0 {
        let millis = i64::try_from(expires_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        base.insert(ShortString::from("x-expires"), AMQPValue::LongLongInt(millis));
    }
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let dead = broker.name(DEAD);
    channel.queue_declare(dead.as_str().into(), options, base.clone()).await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dead_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut work = base;
    work.insert(ShortString::from("x-dead-letter-exchange"), AMQPValue::LongString(dead_exchange.as_str().into()));
    work.insert(ShortString::from("x-delivery-limit"), AMQPValue::LongLongInt(DELIVERY_LIMIT));
    for queue in [ORCHESTRATE, JOBS] {
        let name = broker.name(queue);
        channel.queue_declare(name.as_str().into(), options, work.clone()).await?;
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.as_str().into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// How long a publish may wait for the broker.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Publishes with confirms on one channel, opened again after a failure.
#[derive(Clone)]
pub struct Publisher {
    broker: Broker,
    expires_secs: u64,
    channel: Arc<Mutex<Option<Channel>>>,
    published: Published,
}

impl Publisher {
    pub fn new(broker: Broker, expires_secs: u64) -> Self {
        Self { broker, expires_secs, channel: Arc::default(), published: Published::default() }
    }

    /// The outbox rows this publisher published and its process has yet
    /// to delete.
    pub fn published(&self) -> &Published {
        &self.published
    }

    async fn open(&self) -> Result<Channel, Unavailable> {
        let channel = self.broker.channel().await?;
        let failed = |e: lapin::Error| self.broker.unavailable(&e);
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(failed)?;
        declare(&channel, &self.broker, self.expires_secs).await.map_err(failed)?;
        Ok(channel)
    }

    /// Publishes the messages and waits until the broker has them all. The
    /// channel is held only while sending: confirms are awaited outside it,
    /// so that concurrent publishers share one channel without waiting for
    /// each other's confirms.
    pub async fn publish(&self, messages: &[(String, Vec<u8>)]) -> Result<(), Unavailable> {
        // A broker that stops answering mid-publish (its connection half
        // open) fails the publish in time; the outbox keeps the rows.
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.publish_confirmed(messages)).await {
            Ok(published) => published,
            Err(_) => {
                *self.channel.lock().await = None;
                Err(self.broker.unavailable(&"no confirm within 10 s"))
            }
        }
    }

    async fn publish_confirmed(&self, messages: &[(String, Vec<u8>)]) -> Result<(), Unavailable> {
        let mut confirms = Vec::with_capacity(messages.len());
        let channel = {
            let mut slot = self.channel.lock().await;
            if slot.as_ref().is_none_or(|c| !c.status().connected()) {
                *slot = Some(self.open().await?);
            }
            let Some(channel) = slot.as_ref() else { return Ok(()) };
            let exchange = self.broker.name("messages");
            for (key, payload) in messages {
                let properties =
                    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
                let sent = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        key.as_str().into(),
                        BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                        payload,
                        properties,
                    )
                    .await;
                match sent {
                    Ok(confirm) => confirms.push(confirm),
                    Err(e) => {
                        *slot = None;
                        return Err(self.broker.unavailable(&e));
                    }
                }
            }
            channel.clone()
        };
        for confirm in confirms {
            let taken = match confirm.await {
                Ok(confirmation) => confirmation.is_ack() && confirmation.take_message().is_none(),
                Err(_) => false,
            };
            if !taken {
                // Open a fresh channel for whoever publishes next.
                let mut slot = self.channel.lock().await;
                if slot.as_ref().is_some_and(|c| c.id() == channel.id()) {
                    *slot = None;
                }
                return Err(self.broker.unavailable(&lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Error,
                    "the broker did not take a message",
                ))));
            }
        }
        Ok(())
    }
}

/// A message written to the outbox: its row, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub message: Message,
}

/// Adds a message to the outbox, in the caller's transaction.
pub async fn enqueue(conn: &mut AsyncPgConnection, message: &Message) -> Result<Queued, IamError> {
    let payload = serde_json::to_value(message).unwrap_or_default();
    let id = diesel::insert_into(outbox::table)
        .values((outbox::routing_key.eq(message.routing_key()), outbox::payload.eq(payload)))
        .returning(outbox::id)
        .get_result(conn)
        .await?;
    Ok(Queued { id, message: message.clone() })
}

/// Why a relay pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Database(#[from] IamError),
    #[error("{}", .0.explain())]
    Broker(#[from] Unavailable),
}

impl From<diesel::result::Error> for RelayError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(IamError::from(e))
    }
}

/// Publishes the outbox rows their writers left (older than 2 s: younger
/// ones are being published by whoever wrote them, see
/// [`publish_committed`]), and deletes them once the broker confirmed them.
/// Rows another process is relaying are skipped. Returns how many were
/// published.
pub async fn relay(conn: &mut AsyncPgConnection, publisher: &Publisher, limit: i64) -> Result<usize, RelayError> {
    let publisher = publisher.clone();
    conn.transaction::<_, RelayError, _>(async move |conn| {
        let settled = chrono::Utc::now() - chrono::Duration::seconds(2);
        let rows: Vec<(i64, String, serde_json::Value)> = outbox::table
            .filter(outbox::created_at.lt(settled))
            .select((outbox::id, outbox::routing_key, outbox::payload))
            .order(outbox::id.asc())
            .limit(limit)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let messages: Vec<(String, Vec<u8>)> =
            rows.iter().map(|(_, key, payload)| (key.clone(), payload.to_string().into_bytes())).collect();
        publisher.publish(&messages).await?;
        let ids: Vec<i64> = rows.iter().map(|(id, _, _)| *id).collect();
        diesel::delete(outbox::table.filter(outbox::id.eq_any(&ids))).execute(conn).await?;
        Ok(rows.len())
    })
    .await
}

/// Publishes the outbox rows a transaction just committed, then deletes
/// them. No lock and no durable commit: if this process dies half-way, the
/// relay publishes them again (a message is safe to receive twice).
pub async fn publish_committed(
    conn: &mut AsyncPgConnection,
    publisher: &Publisher,
    queued: Vec<Queued>,
) -> Result<usize, RelayError> {
    if queued.is_empty() {
        return Ok(0);
    }
    publish_queued(publisher, &queued).await?;
    let ids: Vec<i64> = queued.iter().map(|q| q.id).collect();
    delete_published(conn, &ids).await?;
    Ok(queued.len())
}

/// Publishes what the outbox rows say (they stay; see [`Published`]).
pub async fn publish_queued(publisher: &Publisher, queued: &[Queued]) -> Result<(), Unavailable> {
    let messages: Vec<(String, Vec<u8>)> = queued
        .iter()
        .map(|q| (q.message.routing_key().to_owned(), serde_json::to_vec(&q.message).unwrap_or_default()))
        .collect();
    publisher.publish(&messages).await
}

/// Deletes outbox rows the broker confirmed, in one round trip. Losing
/// this delete in a crash only means publishing again, so it does not wait
/// for its commit to reach the disk.
pub async fn delete_published(conn: &mut AsyncPgConnection, ids: &[i64]) -> Result<(), IamError> {
    use diesel_async::SimpleAsyncConnection;
    if ids.is_empty() {
        return Ok(());
    }
    // The ids are numbers, so writing them into the text is safe.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let deleted = conn
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit TO OFF; DELETE FROM outbox WHERE id IN ({list}); COMMIT"
        ))
        .await;
    if let Err(e) = deleted {
        // Leave the connection usable for whoever takes it next.
        let _ = conn.batch_execute("ROLLBACK").await;
        return Err(e.into());
    }
    Ok(())
}

/// Outbox rows published but not yet deleted: a busy process deletes them
/// in batches (every few milliseconds, one statement) rather than one
/// statement per message. Rows left when it dies are published again by
/// the relay.
#[derive(Debug, Clone, Default)]
pub struct Published(Arc<std::sync::Mutex<Vec<i64>>>);

impl Published {
    pub fn note(&self, queued: &[Queued]) {
        if let Ok(mut ids) = self.0.lock() {
            ids.extend(queued.iter().map(|q| q.id));
        }
    }

    /// The rows noted since the last call.
    pub fn take(&self) -> Vec<i64> {
        self.0.lock().map(|mut ids| std::mem::take(&mut *ids)).unwrap_or_default()
    }

    /// Notes them again (a delete that failed).
    pub fn restore(&self, ids: Vec<i64>) {
        if let Ok(mut pending) = self.0.lock() {
            pending.extend(ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `executions::store` writes an advance message in SQL with
    /// `jsonb_build_object('kind', 'advance', 'executionId', ...)`.
    #[test]
    fn an_advance_written_in_sql_reads_as_a_message() {
        let id = Uuid::new_v4();
        let written = serde_json::json!({"kind": "advance", "executionId": id});
        let read: Message = serde_json::from_value(written.clone()).expect("reads");
        assert_eq!(read, Message::Advance { execution_id: id });
        assert_eq!(serde_json::to_value(&read).expect("writes"), written);
    }
}
