//! Test support: a Pipewright API per test on a random port, with its own
//! database (cloned from a migrated template), broker names and Redis keys.

pub mod chaos;
pub mod db;

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use pipewright_core::config::Config;
use pipewright_core::services::Services;

pub use chaos::ChaosProxy;

/// The configuration a test starts from: the machine's services (or those
/// named by DATABASE_URL, AMQP_URL and REDIS_URL), a random port, and names of
/// its own.
pub fn base_config() -> Config {
    let mut config = Config::load().expect("the test environment's configuration is valid");
    let unique = uuid::Uuid::new_v4().simple().to_string();
    config.listen = "127.0.0.1:0".to_owned();
    config.amqp_prefix = format!("pw-test-{unique}");
    config.redis_prefix = format!("pw-test:{unique}:");
    config.data_dir = std::env::temp_dir().join(format!("pw-test-{unique}"));
    config.db_pool_size = 4;
    config.http_workers = 1;
    config.shutdown_timeout_secs = 2;
    config
}

/// A running API with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub config: Config,
    handle: ServerHandle,
    /// Dropped with the app.
    _database: db::TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with the configuration changed by `adjust` (called with the
    /// test database already in `database_url`).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = base_config();
        let database = db::TestDatabase::create(&config.database_url).await;
        config.database_url = database.url.clone();
        adjust(&mut config);
        let services = Services::connect(&config).await.unwrap_or_else(|missing| {
            panic!("services unavailable: {}", missing.iter().map(|m| m.explain()).collect::<Vec<_>>().join("\n"))
        });
        let api = pipewright_api::start(&config, services).expect("the API starts");
        tokio::spawn(api.server);
        Self { addr: api.addr, client: reqwest::Client::new(), config, handle: api.handle, _database: database }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("the API answers")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
        let _ = std::fs::remove_dir_all(&self.config.data_dir);
    }
}

/// The workspace root, where the committed files are.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
