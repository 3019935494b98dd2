//! Many processes, as `deploy/kubernetes/` runs them: two api and two
//! worker processes of the binary on one database, broker and Redis, each
//! api with a data folder of its own (pods share no disk; the workers share
//! one for the local artifact store). Tokens, live events, executions and
//! the audit log's verification all hold across them.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::executions::{BUILD, Repo, action, event_until, release_pipeline};
use crate::process::{Served, serve, terminate};
use crate::support::{base_config, client, db::TestDatabase, repositories};

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn two_apis_and_two_workers_share_tokens_events_executions_and_a_verifiable_audit_log() {
    let config = base_config();
    let database = TestDatabase::create(&config.database_url).await;
    let secrets_key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let shared_data = config.data_dir.join("workers");
    let process = |role: &str, data_dir: std::path::PathBuf| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pipewright"));
        command
            .arg(role)
            .env_remove("PIPEWRIGHT_CONFIG")
            .env_remove("PIPEWRIGHT_JWT_SECRET")
            .env("DATABASE_URL", database.url.expose())
            .env("PIPEWRIGHT_LISTEN", "127.0.0.1:0")
            .env("PIPEWRIGHT_DATA_DIR", data_dir)
            .env("PIPEWRIGHT_SECRETS_KEY", &secrets_key)
            .env("PIPEWRIGHT_AMQP_PREFIX", &config.amqp_prefix)
            .env("PIPEWRIGHT_REDIS_PREFIX", &config.redis_prefix)
            .env("PIPEWRIGHT_AMQP_QUEUE_EXPIRES_SECS", "120")
            .env("PIPEWRIGHT_AUDIT_DIGEST_SECS", "1")
            .env("PIPEWRIGHT_HTTP_WORKERS", "1")
            .env("PIPEWRIGHT_RUNNER_CONCURRENCY", "2")
            .env("PIPEWRIGHT_GIT_ALLOWED_FOLDERS", repositories())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        serve(command)
    };
    let api1 = process("api", config.data_dir.join("api-1")).await;
    let api2 = process("api", config.data_dir.join("api-2")).await;
    let worker1 = process("worker", shared_data.clone()).await;
    let worker2 = process("worker", shared_data).await;
    let http = client();

    // The workers' probes and metrics.
    for worker in [&worker1, &worker2] {
        assert_eq!(http.get(format!("{}/healthz", worker.url)).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{}/readyz", worker.url)).send().await.unwrap().status(), 200);
        let metrics = http.get(format!("{}/metrics", worker.url)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("pipewright_runner_slots 2"), "{metrics}");
        let elsewhere = http.get(format!("{}/v1/pipelines", worker.url)).send().await.unwrap();
        assert_eq!(elsewhere.status(), 404, "a worker serves no API");
    }

    // An account made on one api, signed in on it, its token used on the other.
    let created: Value = http
        .post(format!("{}/v1/accounts", api1.url))
        .json(&json!({"rootPassword": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = created["accountId"].as_str().expect("an account id").to_owned();
    let signed_in: Value = http
        .post(format!("{}/v1/auth/sign-in", api1.url))
        .json(&json!({"account": account, "userName": "root", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["accessToken"].as_str().expect("a token").to_owned();
    let whoami = http.get(format!("{}/v1/auth/whoami", api2.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(whoami.status(), 200, "a token of one api works on the other");

    // A pipeline created on the second api; both apis' live streams follow it.
    let repo = Repo::new("hello");
    let mut pipeline = release_pipeline("web", &repo.path, BUILD);
    pipeline["stages"][0]["actions"][0]["configuration"]["pollForSourceChanges"] = json!("false");
    let made = http
        .post(format!("{}/v1/pipelines", api2.url))
        .bearer_auth(&token)
        .json(&json!({"pipeline": pipeline}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    let mut streams = Vec::new();
    for api in [&api1, &api2] {
        let stream = http.get(format!("{}/v1/pipelines/web/events", api.url)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(stream.status(), 200);
        streams.push((stream, String::new()));
    }
    let mut waiting = Value::Null;
    for (stream, buffer) in &mut streams {
        waiting =
            event_until(stream, buffer, "the approval waits", |s| action(s, "Approve", "Review")["token"].is_string())
                .await;
    }
    let approval = action(&waiting, "Approve", "Review")["token"].as_str().unwrap().to_owned();
    let approved = http
        .post(format!("{}/v1/pipelines/web/stages/Approve/actions/Review/approval", api1.url))
        .bearer_auth(&token)
        .json(&json!({"token": approval, "result": {"status": "Approved", "summary": "ok"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    for (stream, buffer) in &mut streams {
        let done = event_until(stream, buffer, "the deploy succeeds", |s| {
            action(s, "Deploy", "Release")["status"] == "Succeeded"
        })
        .await;
        assert_eq!(action(&done, "Build", "Compile")["status"], "Succeeded");
    }
    drop(streams);

    // The audit log verifies, digests included, from either api.
    for api in [&api1, &api2] {
        let mut verified = Value::Null;
        for _ in 0..100 {
            verified = http
                .get(format!("{}/v1/audit/verify", api.url))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if verified["digestsChecked"].as_i64().unwrap_or(0) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(verified["valid"], true, "{}: {verified}", api.url);
        assert!(verified["digestsChecked"].as_i64().unwrap() >= 2, "{verified}");
    }

    // Signed out on one api, refused on the other at once (each follows
    // Redis's announcements of signed-out sessions).
    for api in [&api1, &api2] {
        let metrics = http.get(format!("{}/metrics", api.url)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("pipewright_revocations_followed 1"), "{metrics}");
    }
    let out = http.post(format!("{}/v1/auth/sign-out", api1.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.status(), 204);
    let mut refused = 0;
    for _ in 0..50 {
        let status =
            http.get(format!("{}/v1/auth/whoami", api2.url)).bearer_auth(&token).send().await.unwrap().status();
        if status == 401 {
            refused += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused, 1, "the signed-out token is refused by the other api within a second");

    for Served { child, logged, .. } in [api1, api2, worker1, worker2] {
        terminate(child, logged).await;
    }
    let _ = std::fs::remove_dir_all(&config.data_dir);
    crate::support::delete_queues(&config.amqp_prefix);
}
