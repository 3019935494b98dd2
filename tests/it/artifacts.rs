//! Artifacts: in an S3-compatible bucket (a real S3 API server, moto, on a
//! port of the test's own), and removed after the retention period.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::executions::{action, kind, log_of, state_until, zip_of};
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// Source(Upload) → Build (makes `dist/app.txt` from the source) → Deploy (reads it).
fn upload_build_deploy(name: &str) -> Value {
    json!({"name": name, "executionMode": "PARALLEL", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"),
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Make", "actionTypeId": kind("Build", "Shell"),
            "configuration": {"commands": "mkdir -p dist\ntr a-z A-Z < app.txt > dist/app.txt", "outputFiles": "dist/**"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Dist"}]}]},
        {"name": "Deploy", "actions": [{"name": "Ship", "actionTypeId": kind("Deploy", "Shell"),
            "configuration": {"commands": "cat dist/app.txt"}, "inputArtifacts": [{"name": "Dist"}]}]}]})
}

/// Uploads a zip holding `app.txt` and waits until its execution deployed;
/// returns the final state and the execution's id.
async fn release(app: &TestApp, token: &str, name: &str, text: &str) -> (Value, String) {
    let sent = app
        .client
        .post(app.url(&format!("/v1/pipelines/{name}/sources/Upload/revisions")))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(zip_of(&[("app.txt", text)]))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().await.unwrap();
    let id = sent["pipelineExecutionId"].as_str().unwrap().to_owned();
    let done = state_until(app, token, name, "the release is deployed", |s| {
        let ship = action(s, "Deploy", "Ship");
        ship["pipelineExecutionId"] == id.as_str() && ship["status"] == "Succeeded"
    })
    .await;
    (done, id)
}

/// The `Dist` artifact of the execution's build, as the API hands it out.
async fn dist_of(app: &TestApp, token: &str, name: &str, execution: &str) -> reqwest::Response {
    let runs = app
        .call(
            "GET",
            &format!("/v1/pipelines/{name}/action-executions?pipelineExecutionId={execution}"),
            Some(token),
            None,
        )
        .await;
    let make = runs.body["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["actionName"] == "Make")
        .unwrap_or_else(|| panic!("no build run: {}", runs.body))
        .clone();
    let id = make["actionExecutionId"].as_str().unwrap();
    app.get_as(&format!("/v1/pipelines/{name}/action-executions/{id}/artifacts/Dist"), token).await
}

/// A new account's root token, and its pipeline "shop" ([`upload_build_deploy`]).
async fn shop(app: &TestApp) -> String {
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let body = json!({"pipeline": upload_build_deploy("shop")});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    root
}

/// The text of `dist/app.txt` in a tar archive.
fn app_txt(archive: &[u8]) -> String {
    use std::io::Read;
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == "dist/app.txt" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return text;
        }
    }
    panic!("no dist/app.txt in the artifact")
}

/// A moto S3 server on a free port, stopped when dropped.
struct S3Server {
    url: String,
    _child: tokio::process::Child,
}

impl S3Server {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server (an S3-compatible server) could not start: {e}; `bash deploy/local-services.sh` installs it")
            });
        let url = format!("http://127.0.0.1:{port}");
        let client = crate::support::client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while client.get(&url).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "moto_server did not answer at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { url, _child: child }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_live_in_an_s3_compatible_bucket_when_configured() {
    let s3 = S3Server::start().await;
    let client = crate::support::client();
    assert!(client.put(format!("{}/pw-artifacts", s3.url)).send().await.unwrap().status().is_success());
    let endpoint = s3.url.clone();
    let app = TestApp::spawn_with(move |config| {
        config.artifact_store = "s3://pw-artifacts/team-a".to_owned();
        config.s3_endpoint = Some(endpoint);
        config.s3_access_key_id = Some("testing".to_owned());
        config.s3_secret_access_key = Some("testing-secret".to_owned().into());
    })
    .await;
    app.start_worker().await;
    let root = shop(&app).await;

    let (done, id) = release(&app, &root, "shop", "hello from s3").await;
    let ship = action(&done, "Deploy", "Ship")["actionExecutionId"].as_str().unwrap().to_owned();
    assert!(log_of(&app, &root, "shop", &ship).await.text().await.unwrap().contains("HELLO FROM S3"));
    let dist = dist_of(&app, &root, "shop", &id).await;
    assert_eq!(dist.status(), 200);
    assert_eq!(app_txt(&dist.bytes().await.unwrap()), "HELLO FROM S3");

    // Both artifacts are objects of the bucket, under the prefix; nothing
    // went to the local folder.
    let listing = client.get(format!("{}/pw-artifacts?list-type=2&prefix=team-a/", s3.url)).send().await.unwrap();
    let listing = listing.text().await.unwrap();
    assert_eq!(listing.matches("<Key>team-a/").count() - listing.matches("<Key>team-a/logs/").count(), 2, "{listing}");
    assert_eq!(listing.matches("<Key>team-a/logs/").count(), 2, "the build's and the deploy's logs: {listing}");
    assert!(!app.config.data_dir.join("artifacts").exists());

    // An API on another host (no local logs) serves the log from the bucket.
    std::fs::remove_dir_all(app.config.data_dir.join("logs")).unwrap();
    assert!(log_of(&app, &root, "shop", &ship).await.text().await.unwrap().contains("HELLO FROM S3"));

    // A worker on another host (an empty cache) fetches what it needs from the bucket.
    let _ = std::fs::remove_dir_all(app.config.data_dir.join("artifact-cache"));
    let (done, _) = release(&app, &root, "shop", "second").await;
    let ship = action(&done, "Deploy", "Ship")["actionExecutionId"].as_str().unwrap().to_owned();
    assert!(log_of(&app, &root, "shop", &ship).await.text().await.unwrap().contains("SECOND"));
    let refetched = dist_of(&app, &root, "shop", &id).await;
    assert_eq!(app_txt(&refetched.bytes().await.unwrap()), "HELLO FROM S3");
}

/// Sets a file's (and every file's under a folder) modification time.
fn backdate(path: &std::path::Path, to: SystemTime) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            backdate(&entry.path(), to);
        }
    } else if path.is_file() {
        std::fs::File::options().append(true).open(path).unwrap().set_modified(to).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_and_logs_are_removed_after_the_retention_period_unless_still_in_use() {
    let app = TestApp::spawn_with(|config| config.artifact_retention_days = 30).await;
    app.start_worker().await;
    let root = shop(&app).await;
    let (old_state, old) = release(&app, &root, "shop", "old").await;
    let old_ship = action(&old_state, "Deploy", "Ship")["actionExecutionId"].as_str().unwrap().to_owned();

    // Forty days pass for the first release: its execution, its files.
    let forty_days_ago = SystemTime::now() - Duration::from_secs(40 * 24 * 3600);
    backdate(&app.config.data_dir.join("artifacts"), forty_days_ago);
    backdate(&app.config.data_dir.join("logs"), forty_days_ago);
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
        conn.batch_execute(&format!(
            "UPDATE pipeline_executions SET updated_at = now() - interval '40 days' WHERE execution_id = '{old}';
             UPDATE action_executions SET finished_at = now() - interval '40 days', updated_at = now() - interval '40 days'
              WHERE execution_id = '{old}'"
        ))
        .await
        .unwrap();
    }
    // A new release, since: its artifacts are in use.
    let (_, new) = release(&app, &root, "shop", "new").await;

    let services = pipewright_core::services::Services::connect(&app.config).await.unwrap();
    let settings = pipewright_worker::Settings::from_config(&app.config).unwrap();
    let removed = pipewright_worker::retention::sweep(&services, &settings, SystemTime::now()).await.unwrap();
    assert_eq!(removed.artifacts, 2, "the old source and build: {removed:?}");
    assert!(removed.logs >= 2, "the old build's and deploy's logs: {removed:?}");

    let gone = dist_of(&app, &root, "shop", &old).await;
    assert_eq!(gone.status(), 404);
    let gone: Value = gone.json().await.unwrap();
    assert_eq!(gone["code"], "ArtifactNotFoundException");
    assert!(gone["message"].as_str().unwrap().contains("no longer kept"), "{gone}");
    let log = app.call("GET", &format!("/v1/pipelines/shop/action-executions/{old_ship}/log"), Some(&root), None).await;
    assert_eq!(log.status, 404, "{}", log.body);
    assert!(log.body["message"].as_str().unwrap().contains("no longer kept"));

    let kept = dist_of(&app, &root, "shop", &new).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(app_txt(&kept.bytes().await.unwrap()), "NEW");
    // A second sweep finds nothing more to remove.
    let again = pipewright_worker::retention::sweep(&services, &settings, SystemTime::now()).await.unwrap();
    assert_eq!(again.artifacts, 0);
}
