//! The binary as an operator runs it: what it says when a dependency is
//! missing, and how it stops.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{ChaosProxy, base_config, db::TestDatabase};

fn pipewright() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pipewright"));
    let config = base_config();
    command
        .env_remove("PIPEWRIGHT_CONFIG")
        .env("PIPEWRIGHT_LISTEN", "127.0.0.1:0")
        .env("PIPEWRIGHT_DATA_DIR", &config.data_dir)
        .env("PIPEWRIGHT_AMQP_PREFIX", &config.amqp_prefix)
        .env("PIPEWRIGHT_REDIS_PREFIX", &config.redis_prefix)
        .env("PIPEWRIGHT_AMQP_QUEUE_EXPIRES_SECS", config.amqp_queue_expires_secs.to_string())
        .env("PIPEWRIGHT_HTTP_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dependency_is_named_with_its_address_and_how_to_start_it() {
    let output = pipewright()
        .env("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:1/pipewright")
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.expect("exits by itself").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exits non-zero: {stderr}");
    assert!(
        stderr.contains("PostgreSQL is not reachable at postgres://postgres:***@127.0.0.1:1/pipewright"),
        "{stderr}"
    );
    assert!(stderr.contains("Redis is not reachable at redis://127.0.0.1:1/0"), "{stderr}");
    assert!(stderr.contains("pg_ctlcluster"), "says how to start PostgreSQL: {stderr}");
    assert!(stderr.contains("redis-server"), "says how to start Redis: {stderr}");
    assert!(!stderr.contains("RabbitMQ is not reachable"), "RabbitMQ is up: {stderr}");
    assert!(!stderr.contains("hunter2"), "the password is never printed: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_service_with_exit_code_zero_even_after_a_broker_restart() {
    let config = base_config();
    let database = TestDatabase::create(&config.database_url).await;
    let broker = ChaosProxy::start(config.amqp_url.host_port()).await;
    let mut command = pipewright();
    command.env("DATABASE_URL", database.url.expose()).env("AMQP_URL", broker.url_for(config.amqp_url.expose()));
    let Served { child, url, logged } = serve(command).await;
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // The broker goes away and comes back; the service reconnects.
    broker.cut();
    let down = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(down.status(), 503);
    broker.restore();
    let mut recovered = false;
    for _ in 0..150 {
        if reqwest::get(format!("{url}/readyz")).await.unwrap().status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "readyz recovers after the broker is back");

    terminate(child, logged).await;
    let stopped = reqwest::get(format!("{url}/healthz")).await;
    assert!(stopped.is_err(), "nothing listens any more");
}

/// The binary, serving.
pub struct Served {
    pub child: tokio::process::Child,
    pub url: String,
    /// Its last 20 lines of log, once it ends.
    pub logged: tokio::task::JoinHandle<String>,
}

/// Starts `command` and waits until it prints where it serves.
pub async fn serve(mut command: Command) -> Served {
    // The HTTP clients of the tests that run it need it (alone, too).
    pipewright_core::artifacts::install_tls_provider();
    let mut child = command.spawn().expect("starts");
    // The run command prints where it serves.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("prints its URL")
        .unwrap()
        .expect("a line on stdout");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL in the line").to_owned();
    // Its output is read to the end: a full pipe would block its logging,
    // and with it the shutdown the tests time.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let logged = tokio::spawn(async move {
        let mut last = std::collections::VecDeque::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            if last.len() == 20 {
                last.pop_front();
            }
            last.push_back(line);
        }
        Vec::from(last).join("\n")
    });
    Served { child, url, logged }
}

/// Sends SIGTERM; it must exit with status 0 within 10 s.
pub async fn terminate(mut child: tokio::process::Child, logged: tokio::task::JoinHandle<String>) {
    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    if status.is_err() {
        let _ = child.start_kill();
    }
    let logged = tokio::time::timeout(Duration::from_secs(5), logged).await.map(Result::unwrap_or_default);
    let status =
        status.unwrap_or_else(|_| panic!("exits within 10 s of SIGTERM; it last logged:\n{logged:?}")).unwrap();
    assert_eq!(status.code(), Some(0), "{logged:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_live_event_and_log_streams_rather_than_waiting_for_their_clients() {
    let config = base_config();
    let database = TestDatabase::create(&config.database_url).await;
    let mut command = pipewright();
    // In-flight requests may take 30 s; a stream that never ends must not.
    command.env("DATABASE_URL", database.url.expose()).env("PIPEWRIGHT_SHUTDOWN_TIMEOUT_SECS", "30");
    let Served { child, url, logged } = serve(command).await;
    let client = crate::support::client();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut request = client.post(format!("{url}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let path = path.to_owned();
        async move {
            let answer = request.send().await.unwrap();
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    let account = post("/v1/accounts", None, serde_json::json!({"rootPassword": "Correct-Horse-9"})).await;
    let account = account["accountId"].as_str().unwrap().to_owned();
    let signed_in = post(
        "/v1/auth/sign-in",
        None,
        serde_json::json!({"account": account, "userName": "root", "password": "Correct-Horse-9"}),
    )
    .await;
    let token = signed_in["accessToken"].as_str().unwrap().to_owned();
    let kind =
        |c: &str, p: &str| serde_json::json!({"category": c, "owner": "Pipewright", "provider": p, "version": "1"});
    let pipeline = serde_json::json!({"pipeline": {"name": "web", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Build", "actionTypeId": kind("Build", "Shell"), "configuration": {"commands": "echo started\nsleep 60"}, "inputArtifacts": [{"name": "Src"}]}]}
    ]}});
    post("/v1/pipelines", Some(&token), pipeline).await;
    let mut events = client.get(format!("{url}/v1/pipelines/web/events")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let opening = events.chunk().await.unwrap().expect("the opening state");
    assert!(String::from_utf8_lossy(&opening).starts_with("event: state"));

    // A build that runs a minute, and its log followed while it runs.
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "app.txt", &b"hello"[..]).unwrap();
    let uploaded = client
        .post(format!("{url}/v1/pipelines/web/sources/Upload/revisions"))
        .bearer_auth(&token)
        .header("content-type", "application/x-tar")
        .body(archive.into_inner().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let mut running = None;
    for _ in 0..150 {
        let state: serde_json::Value = client
            .get(format!("{url}/v1/pipelines/web/state"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let build = &state["stageStates"][1]["actionStates"][0]["latestExecution"];
        if build["status"] == "InProgress" {
            running = build["actionExecutionId"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = running.expect("the build runs");
    let mut log = client
        .get(format!("{url}/v1/pipelines/web/action-executions/{running}/log"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let mut followed = String::new();
    while !followed.contains("started") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), log.chunk()).await.expect("the log grows");
        followed.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("more of the log")));
    }

    terminate(child, logged).await;
    // Both streams ended (rather than being cut off with the process).
    for (name, mut stream) in [("events", events), ("log", log)] {
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            while stream.chunk().await?.is_some() {}
            Ok::<_, reqwest::Error>(())
        })
        .await
        .unwrap_or_else(|_| panic!("the {name} stream ends"));
        assert!(rest.is_ok(), "the {name} stream ends cleanly: {rest:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn processes_starting_together_on_a_new_database_all_start() {
    use pipewright_core::db::{self, Db};
    let server = base_config().database_url;
    let name = format!("pw_new_{}", uuid::Uuid::new_v4().simple());
    let url = db::with_database(&server, &name);
    // An api and workers started at once: each finds no database and creates it.
    let starts = (0..4).map(|_| Db::connect(&url, 1));
    let failed: Vec<String> =
        futures_util::future::join_all(starts).await.into_iter().filter_map(|s| s.err()).map(|e| e.explain()).collect();
    let mut admin = db::connect_one(&db::with_database(&server, "postgres")).await.unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
    .unwrap();
    assert!(failed.is_empty(), "processes did not start: {failed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_the_executions_repeat_is_prepared_once_per_connection() {
    use diesel::{ExpressionMethods, QueryDsl};
    use diesel_async::RunQueryDsl;
    use pipewright_core::db::{self, Prepared};
    use pipewright_core::schema::stage_executions as s;
    let database = TestDatabase::create(&base_config().database_url).await;
    let mut conn = db::connect_one(&database.url).await.unwrap();
    let update = |id: uuid::Uuid| {
        diesel::update(s::table.find((id, 0))).set((s::status.eq("Succeeded"), s::updated_at.eq(chrono::Utc::now())))
    };
    let prepared = async |conn: &mut diesel_async::AsyncPgConnection| -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'UPDATE \"stage_executions\"%')",
        ))
        .get_result(conn)
        .await
        .unwrap()
    };
    // As diesel runs an UPDATE: parsed and planned anew every time, kept nowhere.
    for _ in 0..3 {
        update(uuid::Uuid::new_v4()).execute(&mut conn).await.unwrap();
    }
    assert_eq!(prepared(&mut conn).await, 0);
    // Wrapped: prepared on the first run, and that statement used again.
    for _ in 0..3 {
        Prepared(update(uuid::Uuid::new_v4())).execute(&mut conn).await.unwrap();
    }
    assert_eq!(prepared(&mut conn).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_a_caller_sent_cannot_forge_a_line_of_the_text_log() {
    let config = base_config();
    let database = TestDatabase::create(&config.database_url).await;
    let mut command = pipewright();
    command.arg("api").env("DATABASE_URL", database.url.expose()).env("PIPEWRIGHT_LOG_FORMAT", "text");
    let Served { child, url, logged } = serve(command).await;
    // A failed sign-in logs the user name it was sent.
    let forged = "mallory\nFORGED: 2026-12-04T00:00:00Z INFO admin signed in";
    let body = serde_json::json!({"account": "123456789012", "userName": forged, "password": "wrong password!"});
    let answer = reqwest::Client::new().post(format!("{url}/v1/auth/sign-in")).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let logged = tokio::time::timeout(Duration::from_secs(15), logged).await.unwrap().unwrap();
    assert!(logged.contains("sign-in failed"), "{logged}");
    assert!(logged.contains("mallory\\nFORGED"), "the newline is escaped: {logged}");
    assert!(!logged.lines().any(|l| l.starts_with("FORGED")), "a forged line:\n{logged}");
}

#[test]
fn the_command_line_says_its_version_names_a_wrong_argument_and_checks_numbers() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_pipewright")).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };
    let (code, text) = run(&["--version"]);
    assert_eq!((code, text.trim()), (Some(0), format!("pipewright {}", env!("CARGO_PKG_VERSION")).as_str()));
    let (code, text) = run(&["rotate-key", "--help"]);
    assert_eq!(code, Some(0));
    assert!(text.contains("[possible values: jwt, audit]"), "{text}");
    let (code, text) = run(&["api", "--listen"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("'--listen'"), "the unknown argument is named: {text}");
    let (code, text) = run(&["deploy"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("'deploy'"), "{text}");
    let (code, text) = run(&["bench-executions", "0"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("0 is not in 1..=1000000"), "{text}");
    let (code, text) = run(&["audit-verify", "111122223333", "yesterday"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("not an RFC 3339 time"), "{text}");
}
