//! PostgreSQL: the connection pool, the embedded migrations, and creating the
//! database on first start.

use std::time::Duration;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::BigInt;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::Dsn;
use crate::deps::{self, Dependency, Health, Unavailable};

/// The schema, compiled into the binary and applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Key of the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK: i64 = 0x7069_7065_7772_6967; // "pipewrig"

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A pooled connection.
pub type Conn = Object<AsyncPgConnection>;

/// The database: a pool of connections, checked on every checkout so that a
/// restarted server costs no failed request.
#[derive(Clone)]
pub struct Db {
    pool: Pool<AsyncPgConnection>,
    url: Dsn,
}

impl Db {
    /// Connects to the database at `url`, creating it when the server is there
    /// but the database is not, and applies pending migrations.
    pub async fn connect(url: &Dsn, pool_size: usize) -> Result<Self, Unavailable> {
        let unavailable = |e: &dyn std::fmt::Display| Unavailable::new(Dependency::Postgres, url, e);
        create_database_if_missing(url).await?;
        // A connection the server closed (a restart) is known closed and
        // dropped at checkout without a test query; a test query per
        // checkout was a tenth of the executions' round trips.
        let mut manager_config = ManagerConfig::default();
        manager_config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url.expose(), manager_config);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| unavailable(&e))?;
        let db = Self { pool, url: url.clone() };
        db.migrate().await?;
        Ok(db)
    }

    /// A connection from the pool, or why there is none.
    pub async fn conn(&self) -> Result<Conn, Unavailable> {
        self.pool.get().await.map_err(|e| {
            let reason = match e {
                PoolError::Timeout(_) => "no connection within the timeout".to_owned(),
                PoolError::Backend(e) => deps::causes(&e),
                other => other.to_string(),
            };
            Unavailable::new(Dependency::Postgres, &self.url, reason)
        })
    }

    /// Drops the idle connections: after one turned out lost (the server
    /// restarted), the others made before the restart are lost too, and a
    /// retry must not meet one of them.
    pub fn forget_idle(&self) {
        self.pool.retain(|_, _| false);
    }

    /// Readiness: a round trip to the server.
    pub async fn health(&self) -> Health {
        deps::probe(async {
            let mut conn = self.conn().await.map_err(|e| e.reason)?;
            conn.batch_execute("SELECT 1").await.map_err(|e| e.to_string())
        })
        .await
    }

    /// Applies the embedded migrations not yet applied. Processes starting
    /// together take turns through an advisory lock.
    pub async fn migrate(&self) -> Result<(), Unavailable> {
        migrate(&self.url).await
    }

    /// The address, password masked.
    pub fn url(&self) -> &Dsn {
        &self.url
    }
}

/// Applies the embedded migrations to the database at `url` over a connection
/// of its own (closed when done).
pub async fn migrate(url: &Dsn) -> Result<(), Unavailable> {
    let unavailable = |e: &dyn std::fmt::Display| Unavailable::new(Dependency::Postgres, url, e);
    let mut conn = connect_one(url).await?;
    diesel::select(pg_advisory_lock(MIGRATION_LOCK)).execute(&mut conn).await.map_err(|e| unavailable(&e))?;
    let applied = tokio::task::spawn_blocking(move || {
        // The session's advisory lock goes with the connection at the end.
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        conn.run_pending_migrations(MIGRATIONS).map(|versions| versions.len()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| unavailable(&e))?
    .map_err(|e| unavailable(&format!("migration failed: {e}")))?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    Ok(())
}

diesel::define_sql_function! {
    fn pg_advisory_lock(key: BigInt);
}

/// A statement of one fixed text that diesel would otherwise parse and plan
/// anew on every run: it prepares an `UPDATE`, an `INSERT … ON CONFLICT DO
/// UPDATE`, or one with SQL text in it, for that run only (their text may
/// vary without bound in general). Wrapped, it is prepared once per
/// connection (kept by its text and bind types), and PostgreSQL may keep a
/// generic plan for it. Only for statements whose text does not vary with
/// the values: the same columns set, the same conditions.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    // Kept by the statement's text, not its type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

/// One connection outside the pool.
pub async fn connect_one(url: &Dsn) -> Result<AsyncPgConnection, Unavailable> {
    match tokio::time::timeout(CONNECT_TIMEOUT, AsyncPgConnection::establish(url.expose())).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Unavailable::new(Dependency::Postgres, url, deps::causes(&e))),
        Err(_) => Err(Unavailable::new(Dependency::Postgres, url, "no answer within 3 s")),
    }
}

/// Creates the database named in `url` when the server answers that it does
/// not exist, so that a new machine needs no manual `createdb`.
async fn create_database_if_missing(url: &Dsn) -> Result<(), Unavailable> {
    let missing = match connect_one(url).await {
        Ok(_) => return Ok(()),
        Err(e) if e.reason.contains("does not exist") && e.reason.contains("database") => e,
        Err(e) => return Err(e),
    };
    let name = database_name(url).ok_or_else(|| missing.clone())?;
    let mut admin = connect_one(&with_database(url, "postgres")).await.map_err(|_| missing.clone())?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match admin.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
        Ok(()) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        // Another process created it first (an api and a worker starting
        // together): "already exists", or a unique violation on
        // pg_database when both created it at the same moment.
        Err(_) if connect_one(url).await.is_ok() => Ok(()),
        Err(e) => Err(Unavailable::new(
            Dependency::Postgres,
            url,
            format!("database {name} does not exist and could not be created: {e}"),
        )),
    }
}

/// The database named by the URL's path.
pub fn database_name(url: &Dsn) -> Option<String> {
    let rest = url.expose().split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or(path);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The same server with another database.
pub fn with_database(url: &Dsn, database: &str) -> Dsn {
    let raw = url.expose();
    let (scheme, rest) = raw.split_once("://").unwrap_or(("postgres", raw));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    Dsn::new(format!("{scheme}://{authority}/{database}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_read_and_replaced() {
        let url = Dsn::new("postgres://u:p@h:5432/pipewright?sslmode=disable");
        assert_eq!(database_name(&url).as_deref(), Some("pipewright"));
        assert_eq!(with_database(&url, "postgres").expose(), "postgres://u:p@h:5432/postgres?sslmode=disable");
        assert_eq!(database_name(&Dsn::new("postgres://h:5432")), None);
        assert_eq!(with_database(&Dsn::new("postgres://h"), "x").expose(), "postgres://h/x");
    }
}
