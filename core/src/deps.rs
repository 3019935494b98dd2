//! The three services Pipewright stands on, named once: what each is called,
//! how to start it, and what to say when it cannot be reached.

use std::fmt;

use crate::config::Dsn;

/// One of the services Pipewright needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Postgres,
    RabbitMq,
    Redis,
}

impl Dependency {
    pub const ALL: [Dependency; 3] = [Self::Postgres, Self::RabbitMq, Self::Redis];

    /// The key used in `/readyz` and in metrics.
    pub fn key(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::RabbitMq => "rabbitmq",
            Self::Redis => "redis",
        }
    }

    /// The environment variable that points at it.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "DATABASE_URL",
            Self::RabbitMq => "AMQP_URL",
            Self::Redis => "REDIS_URL",
        }
    }

    /// How to bring it up, on a Debian machine or with the compose file.
    pub fn how_to_start(self) -> &'static str {
        match self {
            Self::Postgres => {
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
                 (Debian), or: docker compose -f deploy/compose.yaml up -d postgres"
            }
            Self::RabbitMq => {
                "rabbitmq-server -detached (Debian), or: docker compose -f deploy/compose.yaml up -d rabbitmq"
            }
            Self::Redis => {
                "redis-server --daemonize yes --port 6379 (Debian), or: docker compose -f deploy/compose.yaml up -d redis"
            }
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "PostgreSQL",
            Self::RabbitMq => "RabbitMQ",
            Self::Redis => "Redis",
        })
    }
}

/// A dependency could not be reached or used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dependency} is unavailable at {address}: {reason}")]
pub struct Unavailable {
    pub dependency: Dependency,
    /// The URL tried, password masked.
    pub address: String,
    pub reason: String,
}

impl Unavailable {
    pub fn new(dependency: Dependency, dsn: &Dsn, reason: impl fmt::Display) -> Self {
        Self { dependency, address: dsn.redacted(), reason: reason.to_string() }
    }

    /// The start-up message: which service, where we looked, how to start it.
    pub fn explain(&self) -> String {
        format!(
            "{dep} is not reachable at {addr} ({reason}).\n  Start it: {how}\n  Or set {var} to where it runs.",
            dep = self.dependency,
            addr = self.address,
            reason = self.reason,
            how = self.dependency.how_to_start(),
            var = self.dependency.variable(),
        )
    }
}

/// Whether a dependency answered a readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Down(String),
}

/// How long a readiness probe may take before the dependency counts as down.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `probe` with the readiness deadline.
pub async fn probe<F, E>(probe: F) -> Health
where
    F: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Health::Ok,
        Ok(Err(e)) => Health::Down(e.to_string()),
        Err(_) => Health::Down(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// An error with its chain of causes, `outer: inner: innermost`, for messages
/// where the outer text alone ("error connecting to server") says too little.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}
