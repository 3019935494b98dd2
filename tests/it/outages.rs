//! Outages on purpose: each dependency is cut behind a proxy while the API
//! runs; `/readyz` must say which one is down and answer 503 without hanging,
//! and everything must recover without a restart once it is back.

use std::time::{Duration, Instant};

use pipewright_core::config::Dsn;
use serde_json::Value;

use crate::support::{ChaosProxy, TestApp};

/// Polls `/readyz` until `check` holds, failing after `within`.
async fn readiness_until(app: &TestApp, within: Duration, what: &str, check: impl Fn(u16, &Value) -> bool) {
    let started = Instant::now();
    let mut last = (0, Value::Null);
    while started.elapsed() < within {
        let response = app.client.get(app.url("/readyz")).timeout(Duration::from_secs(4)).send().await;
        let response = response.unwrap_or_else(|e| panic!("/readyz must answer, not hang or fail: {e}"));
        last = (response.status().as_u16(), response.json().await.expect("/readyz answers JSON"));
        if check(last.0, &last.1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {within:?}; last answer {} {}", last.0, last.1);
}

/// An app whose PostgreSQL, RabbitMQ and Redis are each behind a proxy
/// the test can cut, in that order.
async fn behind_proxies(base: &pipewright_core::config::Config) -> (TestApp, [ChaosProxy; 3]) {
    let postgres = ChaosProxy::start(base.database_url.host_port()).await;
    let rabbitmq = ChaosProxy::start(base.amqp_url.host_port()).await;
    let redis = ChaosProxy::start(base.redis_url.host_port()).await;
    let app = TestApp::spawn_with(|config| {
        config.database_url = Dsn::new(postgres.url_for(config.database_url.expose()));
        config.amqp_url = Dsn::new(rabbitmq.url_for(config.amqp_url.expose()));
        config.redis_url = Dsn::new(redis.url_for(config.redis_url.expose()));
    })
    .await;
    (app, [postgres, rabbitmq, redis])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_dependency_going_down_is_reported_and_recovered_from() {
    let base = crate::support::base_config();
    let (app, [postgres, rabbitmq, redis]) = behind_proxies(&base).await;
    readiness_until(&app, Duration::from_secs(5), "ready at first", |status, _| status == 200).await;

    for (key, proxy) in [("postgres", &postgres), ("rabbitmq", &rabbitmq), ("redis", &redis)] {
        proxy.cut();
        readiness_until(&app, Duration::from_secs(5), &format!("{key} reported down"), |status, body| {
            let others_ok = ["postgres", "rabbitmq", "redis"].iter().filter(|k| **k != key).all(|k| body[*k] == "ok");
            status == 503 && body[key] == "down" && body["errors"][key].is_string() && others_ok
        })
        .await;

        proxy.restore();
        readiness_until(&app, Duration::from_secs(15), &format!("{key} recovered"), |status, body| {
            status == 200 && body.get("errors").is_none()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_event_cannot_be_recorded_answers_503_and_its_event_is_written_when_the_database_is_back() {
    let base = crate::support::base_config();
    let postgres = ChaosProxy::start(base.database_url.host_port()).await;
    let app = TestApp::spawn_with(|config| {
        config.database_url = Dsn::new(postgres.url_for(config.database_url.expose()));
    })
    .await;
    let account = app.create_account(None, "correct horse battery").await;
    let root = app.sign_in(&account, "root", "correct horse battery").await;
    postgres.cut();
    // The answer needs no database, its record does: no answer without it.
    let started = std::time::Instant::now();
    let answer = app.call("GET", "/v1/auth/whoami", Some(&root), None).await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (503, Some("ServiceUnavailableException")),
        "{}",
        answer.body
    );
    assert!(answer.body["message"].as_str().unwrap().contains("audit log"), "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(15), "answered after {:?}", started.elapsed());
    let request_id = answer.body["requestId"].as_str().unwrap().to_owned();
    postgres.restore();
    // Kept, and written as what the caller saw: a 503.
    let query = format!(
        "SELECT coalesce(string_agg(http_status || ' ' || coalesce(error_code, ''), ','), '') FROM audit_events \
         WHERE request_id = '{request_id}'"
    );
    let mut recorded = String::new();
    for _ in 0..100 {
        recorded = app.sql_text(&query).await;
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(recorded, "503 ServiceUnavailableException");
}

/// A dependency restarts between two calls (its connections die, it
/// answers again at once): the first call after it reconnects inside the
/// call and succeeds, as does each kind of call that uses it.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_calls_after_a_dependency_restarts_succeed() {
    let base = crate::support::base_config();
    let (app, [postgres, rabbitmq, redis]) = behind_proxies(&base).await;
    let account = app.create_account(None, "correct horse battery").await;
    let root = app.sign_in(&account, "root", "correct horse battery").await;
    let repo = crate::executions::Repo::new("hello");
    let pipeline = crate::executions::release_pipeline("web", &repo.path, crate::executions::BUILD);
    let made = app.call("POST", "/v1/pipelines", Some(&root), Some(serde_json::json!({"pipeline": pipeline}))).await;
    assert_eq!(made.status, 201, "{}", made.body);

    for (name, proxy) in [("postgres", &postgres), ("rabbitmq", &rabbitmq), ("redis", &redis)] {
        proxy.cut();
        proxy.restore();
        // Every call is authenticated (Redis: signed-out sessions), reads
        // (PostgreSQL) and is audited (PostgreSQL); a start publishes
        // (RabbitMQ); a sign-in counts failures (Redis).
        let read = app.call("GET", "/v1/pipelines/web", Some(&root), None).await;
        assert_eq!(read.status, 200, "the first call after a {name} restart: {}", read.body);
        let started = app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(serde_json::json!({}))).await;
        assert_eq!(started.status, 200, "a start after a {name} restart: {}", started.body);
        let again = app.sign_in(&account, "root", "correct horse battery").await;
        assert!(!again.is_empty(), "a sign-in after a {name} restart");
    }

    // The server ends every connection of the service (as a restart does),
    // and the calls come at once, before the pool may have noticed: reads
    // are served again on a new connection, changes begin on a new one.
    let database = pipewright_core::db::database_name(&app.config.database_url).unwrap();
    let server = pipewright_core::db::with_database(&base.database_url, "postgres");
    let mut admin = pipewright_core::db::connect_one(&server).await.unwrap();
    for round in 0..5 {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        let read = app.call("GET", "/v1/pipelines/web", Some(&root), None).await;
        assert_eq!(read.status, 200, "round {round}: a read after the server ended the connections: {}", read.body);
        let body = serde_json::json!({"resourceArn": format!("arn:pw:codepipeline:local:{account}:web"),
            "tags": [{"key": "round", "value": round.to_string()}]});
        let tagged = app.call("POST", "/v1/tags", Some(&root), Some(body)).await;
        assert_eq!(
            tagged.status, 200,
            "round {round}: a change after the server ended the connections: {}",
            tagged.body
        );
    }
}
