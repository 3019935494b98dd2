//! A database per test, created from a template that is migrated once per
//! set of migrations (its name carries their hash), so that a test costs a
//! file copy in PostgreSQL rather than a migration run.

use std::hash::{DefaultHasher, Hash, Hasher};

use diesel_async::SimpleAsyncConnection;
use pipewright_core::config::Dsn;
use pipewright_core::db;
use tokio::sync::OnceCell;

const TEMPLATE_LOCK: i64 = 0x7077_7465_6d70_6c74;

/// A database that is dropped with this value.
pub struct TestDatabase {
    pub url: Dsn,
    name: String,
    server: Dsn,
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

impl TestDatabase {
    /// A new database on the server of `server_url`, migrated.
    pub async fn create(server_url: &Dsn) -> Self {
        let server = db::with_database(server_url, "postgres");
        let template = TEMPLATE.get_or_init(|| make_template(server.clone())).await;
        let name = format!("pw_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = db::connect_one(&server).await.expect("PostgreSQL is reachable");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("the test database is created from the template");
        Self { url: db::with_database(server_url, &name), name, server }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = db::connect_one(&server).await.ok()?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

async fn make_template(server: Dsn) -> String {
    let name = format!("pw_template_{:016x}", migrations_hash());
    let mut admin = db::connect_one(&server).await.expect("PostgreSQL is reachable");
    // Test processes running at once take turns making it.
    admin.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})")).await.expect("lock");
    let exists = admin.batch_execute(&format!("ALTER DATABASE {name} SET search_path TO public")).await.is_ok();
    if !exists {
        let building = format!("{name}_building");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await.expect("drop");
        admin.batch_execute(&format!("CREATE DATABASE {building}")).await.expect("create the template");
        db::migrate(&db::with_database(&server, &building)).await.expect("the migrations apply");
        // Renamed only once complete, so a half-made template is never used.
        admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}")).await.expect("rename");
    }
    name
}

fn migrations_hash() -> u64 {
    let dir = super::workspace_root().join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.strip_prefix(&dir).unwrap_or(&file).hash(&mut hasher);
        std::fs::read(&file).expect("a migration file is readable").hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the migrations folder exists").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
