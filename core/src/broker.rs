//! RabbitMQ: one connection per process, opened again by itself after the
//! broker went away.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::config::Dsn;
use crate::deps::{self, Dependency, Health, Unavailable};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The broker connection. Cloning shares it.
#[derive(Clone)]
pub struct Broker {
    url: Dsn,
    prefix: Arc<str>,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl Broker {
    /// Connects now, so that a broker that is down is reported at start-up.
    pub async fn connect(url: &Dsn, prefix: &str) -> Result<Self, Unavailable> {
        let broker = Self { url: url.clone(), prefix: prefix.into(), connection: Arc::default() };
        broker.channel().await?;
        Ok(broker)
    }

    /// A new channel, reconnecting first when the connection was lost.
    pub async fn channel(&self) -> Result<Channel, Unavailable> {
        let unavailable = |e: &dyn std::fmt::Display| Unavailable::new(Dependency::RabbitMq, &self.url, e);
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            if conn.status().connected() {
                match tokio::time::timeout(CONNECT_TIMEOUT, conn.create_channel()).await {
                    Ok(Ok(channel)) => return Ok(channel),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "RabbitMQ channel failed; reconnecting")
                    }
                    Err(_) => {
                        tracing::warn!("RabbitMQ did not open a channel in time; reconnecting")
                    }
                }
            }
            *slot = None;
        }
        let properties = ConnectionProperties::default().with_connection_name("pipewright".into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(self.url.expose(), properties))
            .await
            .map_err(|_| unavailable(&"no answer within 3 s"))?
            .map_err(|e| unavailable(&e))?;
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, conn.create_channel())
            .await
            .map_err(|_| unavailable(&"no channel within 3 s"))?
            .map_err(|e| unavailable(&e))?;
        *slot = Some(conn);
        Ok(channel)
    }

    /// Readiness: open and close a channel, a round trip to the broker.
    pub async fn health(&self) -> Health {
        deps::probe(async {
            let channel = self.channel().await.map_err(|e| e.reason)?;
            channel.close(200, "probe".into()).await.map_err(|e| e.to_string())
        })
        .await
    }

    /// The error of an operation on the broker that failed.
    pub fn unavailable(&self, e: &dyn std::fmt::Display) -> Unavailable {
        Unavailable::new(Dependency::RabbitMq, &self.url, e)
    }

    /// The name of an exchange or queue of this installation.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// Closes the connection (on shutdown), giving the broker a moment to
    /// answer: a connection the broker dropped may never be answered.
    pub async fn close(&self) {
        let Some(conn) = self.connection.lock().await.take() else {
            return;
        };
        if conn.status().connected() {
            let closing = conn.close(200, "shutdown".into());
            if tokio::time::timeout(CONNECT_TIMEOUT, closing).await.is_err() {
                tracing::warn!("RabbitMQ did not confirm closing the connection");
            }
        }
    }
}
