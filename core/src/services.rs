//! The three services together: connected at start-up (all of them, so that
//! every one that is missing is reported at once) and probed for readiness.

use crate::broker::Broker;
use crate::cache::Cache;
use crate::config::Config;
use crate::db::Db;
use crate::deps::{Dependency, Health, Unavailable};

/// Connections to PostgreSQL, RabbitMQ and Redis.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub broker: Broker,
    pub cache: Cache,
}

impl Services {
    /// Connects to all three and applies the migrations. On failure, returns
    /// every service that could not be reached.
    pub async fn connect(config: &Config) -> Result<Self, Vec<Unavailable>> {
        let (db, broker, cache) = tokio::join!(
            Db::connect(&config.database_url, config.db_pool_size),
            Broker::connect(&config.amqp_url, &config.amqp_prefix),
            Cache::connect(&config.redis_url, &config.redis_prefix),
        );
        match (db, broker, cache) {
            (Ok(db), Ok(broker), Ok(cache)) => Ok(Self { db, broker, cache }),
            (db, broker, cache) => Err([db.err(), broker.err(), cache.err()].into_iter().flatten().collect()),
        }
    }

    /// Probes the three at once; each answers within the probe timeout.
    pub async fn readiness(&self) -> [(Dependency, Health); 3] {
        let (postgres, rabbitmq, redis) = tokio::join!(self.db.health(), self.broker.health(), self.cache.health());
        [(Dependency::Postgres, postgres), (Dependency::RabbitMq, rabbitmq), (Dependency::Redis, redis)]
    }

    /// Closes what needs closing on shutdown.
    pub async fn close(&self) {
        self.broker.close().await;
    }
}
