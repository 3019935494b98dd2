//! Test support: a Pipewright API per test on a random port, with its own
//! database (cloned from a migrated template), broker names and Redis keys.

pub mod chaos;
pub mod db;
pub mod receiver;

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
    config.audit_digest_secs = 1;
    // Each test's queues are deleted when it ends (see `delete_queues`), or
    // go away a while after, should a process declare them again.
    config.amqp_queue_expires_secs = 120;
    // The tests' Git repositories are made in the first (the second is
    // one the declarations name).
    config.git_allowed_folders = format!("{},/srv/git", repositories().display());
    config
}

/// Where the tests make Git repositories: the one folder (beside a
/// made-up one) their Git sources may name.
pub fn repositories() -> PathBuf {
    let folder = std::env::temp_dir().join("pw-test-repositories");
    std::fs::create_dir_all(&folder).expect("a folder for the tests' repositories");
    folder
}

/// A host folder that an operator grants every action, read-write, at
/// `/shared` in the sandbox: how a test and an action's commands meet.
pub struct SharedFolder {
    pub host: PathBuf,
}

impl SharedFolder {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let host = std::env::temp_dir().join(format!("pw-shared-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&host).expect("a shared folder");
        // Actions run as users of their own.
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777)).expect("open to actions");
        Self { host }
    }

    /// `PIPEWRIGHT_SANDBOX_FOLDERS` granting it.
    pub fn grant(&self, config: &mut Config) {
        config.sandbox_folders = format!("{}:/shared:rw", self.host.display());
    }
}

impl Drop for SharedFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.host);
    }
}

/// Whether a process of this host has `marker` in its command line.
pub fn process_running(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        let alive = std::fs::read_to_string(path.join("stat"))
            .is_ok_and(|stat| stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')));
        alive && std::fs::read(path.join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
    })
}

/// A random `sleep` length, to find the process on the host by.
pub fn unique_sleep() -> String {
    format!("300.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

/// An HTTP client (the build's rustls needs its crypto provider installed).
pub fn client() -> reqwest::Client {
    pipewright_core::artifacts::install_tls_provider();
    reqwest::Client::new()
}

/// A running API with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub config: Config,
    handle: ServerHandle,
    /// Stops the worker, when the test started one.
    pub worker: tokio_util::sync::CancellationToken,
    /// Dropped with the app.
    _database: db::TestDatabase,
}

/// The installation's shared keys, as `pipewright api` opens them.
pub async fn shared_keys(config: &Config, services: &Services) -> pipewright_core::keyring::SharedKeys {
    let cipher = pipewright_core::secrets::Cipher::from_config(config).expect("the secrets key");
    let mut conn = services.db.conn().await.expect("a connection");
    pipewright_core::keyring::SharedKeys::open(&mut conn, config, &cipher).await.expect("the shared keys")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with the configuration changed by `adjust` (called with the
    /// test database already in `database_url`).
    /// An API and a worker (RabbitMQ consumers that run executions).
    pub async fn spawn_with_worker() -> Self {
        Self::spawn_with_worker_and(|_| {}).await
    }

    /// An API and a worker, with the configuration changed by `adjust`.
    pub async fn spawn_with_worker_and(adjust: impl FnOnce(&mut Config)) -> Self {
        let app = Self::spawn_with(|config| {
            config.action_lease_secs = 4;
            config.git_poll_secs = 1;
            adjust(config);
        })
        .await;
        app.start_worker().await;
        app
    }

    /// Starts a worker (another may run beside it); it stops with the app.
    pub async fn start_worker(&self) -> tokio_util::sync::CancellationToken {
        let services = Services::connect(&self.config).await.unwrap_or_else(|missing| {
            panic!("services unavailable: {}", missing.iter().map(|m| m.explain()).collect::<Vec<_>>().join("\n"))
        });
        let token = self.worker.child_token();
        let settings = pipewright_worker::Settings::from_config(&self.config).expect("the artifact store opens");
        tokio::spawn(pipewright_worker::run(services, settings, token.clone()));
        token
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = base_config();
        let database = db::TestDatabase::create(&config.database_url).await;
        config.database_url = database.url.clone();
        adjust(&mut config);
        let services = Services::connect(&config).await.unwrap_or_else(|missing| {
            panic!("services unavailable: {}", missing.iter().map(|m| m.explain()).collect::<Vec<_>>().join("\n"))
        });
        let keys = shared_keys(&config, &services).await;
        let api = pipewright_api::start(&config, services, keys).expect("the API starts");
        tokio::spawn(api.server);
        // The audit writer runs until the server is gone.
        drop(api.audit);
        Self {
            addr: api.addr,
            client: client(),
            config,
            handle: api.handle,
            worker: tokio_util::sync::CancellationToken::new(),
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Another api on the same database, broker and Redis, with a data
    /// folder of its own (as another pod): it shares only what the
    /// configuration gives it, the secrets key here. Its base URL.
    pub async fn another_api(&self) -> String {
        let mut config = self.config.clone();
        let key = std::fs::read_to_string(self.config.data_dir.join("secrets.key")).expect("the first's secrets key");
        config.secrets_key = Some(secrecy::SecretString::from(key.trim().to_owned()));
        config.data_dir = self.config.data_dir.join("another");
        let services = Services::connect(&config).await.expect("the services");
        let keys = shared_keys(&config, &services).await;
        let api = pipewright_api::start(&config, services, keys).expect("the API starts");
        tokio::spawn(api.server);
        drop(api.audit);
        let handle = api.handle;
        let stopped = self.worker.clone();
        tokio::spawn(async move {
            stopped.cancelled().await;
            handle.stop(false).await;
        });
        format!("http://{}", api.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("the API answers")
    }

    /// A GET as the bearer of `token`, its body unread (a stream, a file).
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("the API answers")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.worker.cancel();
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
        let _ = std::fs::remove_dir_all(&self.config.data_dir);
        delete_queues(&self.config.amqp_prefix);
    }
}

/// Deletes a test's queues and exchanges. Quorum queues hold file handles in
/// the broker: the leftovers of a few hundred tests exhausted its limit
/// (1024 on this machine) and it stopped answering.
pub fn delete_queues(prefix: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    use pipewright_core::messaging::{DEAD, JOBS, ORCHESTRATE};
    // The broker itself, not a test's proxy to it.
    let url = Config::load().map(|c| c.amqp_url);
    let prefix = prefix.to_owned();
    // Drop runs inside the test's runtime, which cannot be blocked on.
    let deleted = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        runtime.block_on(async {
            let url = url.ok()?;
            let connect = lapin::Connection::connect(url.expose(), lapin::ConnectionProperties::default());
            let conn = tokio::time::timeout(std::time::Duration::from_secs(5), connect).await.ok()?.ok()?;
            let channel = conn.create_channel().await.ok()?;
            for queue in [ORCHESTRATE, JOBS, DEAD] {
                let name = format!("{prefix}.{queue}");
                let _ = channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
            }
            for exchange in ["messages", "dead"] {
                let name = format!("{prefix}.{exchange}");
                let _ = channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await;
            }
            let _ = conn.close(200, "test done".into()).await;
            Some(())
        })
    });
    let _ = deleted.join();
}

/// The workspace root, where the committed files are.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A response's status and JSON body (`Null` when there is none).
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl TestApp {
    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Answer { status, body }
    }

    /// Creates an account; returns its id.
    /// Every row of the audit table as PostgreSQL prints it, to search for
    /// what must never be there.
    pub async fn audit_table_text(&self) -> String {
        self.sql_text("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM audit_events t").await
    }

    /// The text one query of the test database answers.
    pub async fn sql_text(&self, query: &str) -> String {
        use diesel_async::RunQueryDsl;
        let mut conn = pipewright_core::db::connect_one(&self.config.database_url).await.expect("the test database");
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&format!("({query})")))
            .get_result(&mut conn)
            .await
            .expect("the query answers")
    }

    pub async fn create_account(&self, alias: Option<&str>, root_password: &str) -> String {
        let mut body = serde_json::json!({"rootPassword": root_password});
        if let Some(alias) = alias {
            body["alias"] = alias.into();
        }
        let answer = self.call("POST", "/v1/accounts", None, Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["accountId"].as_str().expect("an account id").to_owned()
    }

    /// Signs in; returns the access token.
    pub async fn sign_in(&self, account: &str, user: &str, password: &str) -> String {
        let answer = self
            .call(
                "POST",
                "/v1/auth/sign-in",
                None,
                Some(serde_json::json!({"account": account, "userName": user, "password": password})),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["accessToken"].as_str().expect("a token").to_owned()
    }

    /// Creates user `name` with a password and the given managed policies, as `root`.
    pub async fn create_user(&self, root: &str, name: &str, password: &str, policies: &[&str]) {
        let created = self.call("POST", "/v1/iam/users", Some(root), Some(serde_json::json!({"userName": name}))).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let profile = self
            .call(
                "PUT",
                &format!("/v1/iam/users/{name}/login-profile"),
                Some(root),
                Some(serde_json::json!({"password": password})),
            )
            .await;
        assert_eq!(profile.status, 200, "{}", profile.body);
        for policy in policies {
            let attached = self
                .call(
                    "POST",
                    &format!("/v1/iam/users/{name}/attached-policies"),
                    Some(root),
                    Some(serde_json::json!({"policyArn": format!("arn:pw:iam::pw:policy/{policy}")})),
                )
                .await;
            assert_eq!(attached.status, 200, "{}", attached.body);
        }
    }
}

/// Runs a tool the tests need (node, npm, python3, a generator), which
/// must succeed: its output, or a panic saying what failed and what it said.
pub async fn run_tool(what: &str, command: &mut tokio::process::Command) -> String {
    let output = command.output().await.unwrap_or_else(|e| {
        panic!("{what} could not start ({e}); bash deploy/local-services.sh installs what it needs")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}
