//! Redis: a multiplexed connection that reconnects by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Dsn;
use crate::deps::{self, Dependency, Health, Unavailable};

/// The cache and pub/sub connection. Cloning shares it.
#[derive(Clone)]
pub struct Cache {
    url: Dsn,
    prefix: String,
    conn: ConnectionManager,
}

impl Cache {
    pub async fn connect(url: &Dsn, prefix: &str) -> Result<Self, Unavailable> {
        let unavailable = |e: &dyn std::fmt::Display| Unavailable::new(Dependency::Redis, url, e);
        let client = redis::Client::open(url.expose()).map_err(|e| unavailable(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(Duration::from_secs(3), ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| unavailable(&"no answer within 3 s"))?
            .map_err(|e| unavailable(&e))?;
        Ok(Self { url: url.clone(), prefix: prefix.to_owned(), conn })
    }

    /// A subscription to `channel` (a connection of its own).
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, Unavailable> {
        let client = redis::Client::open(self.url.expose()).map_err(|e| self.unavailable(e))?;
        let mut pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
            .await
            .map_err(|_| self.unavailable("no answer within 3 s"))?
            .map_err(|e| self.unavailable(e))?;
        pubsub.subscribe(channel).await.map_err(|e| self.unavailable(e))?;
        Ok(pubsub)
    }

    /// Tells `channel`'s subscribers; best effort (live updates only).
    pub async fn publish(&self, channel: &str, message: &str) {
        let sent: redis::RedisResult<i64> = self.query(redis::cmd("PUBLISH").arg(channel).arg(message)).await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "a live update was not published");
        }
    }

    /// The channel of a pipeline's live updates.
    pub fn pipeline_channel(&self, pipeline_id: &uuid::Uuid) -> String {
        self.key(&format!("events:{pipeline_id}"))
    }

    /// Runs `cmd` on the shared connection; when that connection turns out
    /// to be lost (Redis restarted since it was last used), once more on the
    /// new one it reconnects to, so that the first call after a restart
    /// succeeds.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.conn();
        match cmd.query_async(&mut conn).await {
            Err(e) if lost(&e) => {
                tracing::info!(error = %e, "the Redis connection was lost; reconnecting and trying again");
                cmd.query_async(&mut conn).await
            }
            answered => answered,
        }
    }

    /// [`Cache::query`] for a pipeline of commands.
    pub async fn query_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        let mut conn = self.conn();
        match pipe.query_async(&mut conn).await {
            Err(e) if lost(&e) => {
                tracing::info!(error = %e, "the Redis connection was lost; reconnecting and trying again");
                pipe.query_async(&mut conn).await
            }
            answered => answered,
        }
    }

    /// The shared connection (cheap to clone).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A key of this installation.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Readiness: PING.
    pub async fn health(&self) -> Health {
        let mut conn = self.conn();
        deps::probe(async move { redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop) }).await
    }

    /// Wraps a Redis error as the dependency being unavailable.
    pub fn unavailable(&self, e: impl std::fmt::Display) -> Unavailable {
        Unavailable::new(Dependency::Redis, &self.url, e)
    }
}

/// Whether the error says the connection is gone (rather than that Redis
/// refused the command).
fn lost(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal() || e.is_timeout()
}
