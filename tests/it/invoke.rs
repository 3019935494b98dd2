//! Invoke/HTTP: an action calls a URL with a header read from a secret and
//! a body with variables; with `waitForCallback` it waits for a callback
//! signed with the secret its request carried, whose output variables the
//! next stage reads; a bad signature is refused; a URL on this host is
//! refused unless the operator allows it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{action, kind, state_until};
use crate::support::TestApp;
use crate::support::receiver::{self, hmac};

const PASSWORD: &str = "correct horse battery";
const API_KEY: &str = "scan-key-0c7e1d";

fn accepted(_: usize) -> (&'static str, &'static str) {
    ("202 Accepted", "accepted")
}

/// Source(Upload) → Scan (Invoke/HTTP, waits for its callback) → Report
/// (Shell, prints the callback's output variable).
fn scan_pipeline(url: &str, role: &str, secret: &str) -> Value {
    let headers = json!([{"name": "Authorization", "type": "SECRETS_MANAGER", "value": secret},
                         {"name": "X-Team", "value": "web"}])
    .to_string();
    json!({"name": "scanned", "roleArn": role, "variables": [{"name": "target", "defaultValue": "staging"}],
        "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Scan", "actions": [{"name": "Scan", "actionTypeId": {"category": "Invoke", "owner": "Pipewright", "provider": "HTTP", "version": "1"},
            "namespace": "Scan",
            "configuration": {"url": url, "method": "POST", "headers": headers, "waitForCallback": "true",
                              "body": "{\"target\": \"#{variables.target}\", \"execution\": \"#{codepipeline.PipelineExecutionId}\"}"}}]},
        {"name": "Report", "actions": [{"name": "Print", "actionTypeId": kind("Test", "Shell"),
            "configuration": {"commands": "echo report #{Scan.REPORT_ID}\ntest '#{Scan.REPORT_ID}' = r-42\ntest '#{Scan.StatusCode}' = 202"},
            "inputArtifacts": [{"name": "Src"}]}]}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_call_with_a_secret_header_waits_for_its_signed_callback() {
    let app = TestApp::spawn_with_worker_and(|c| c.git_allowed_hosts = "127.0.0.1".to_owned()).await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let (address, requests) = receiver::start(accepted).await;
    let url = format!("http://{address}/scans");

    let secret = app
        .call(
            "POST",
            "/v1/secrets",
            Some(&root),
            Some(json!({"name": "scan/key", "secretString": format!("Bearer {API_KEY}")})),
        )
        .await;
    assert_eq!(secret.status, 201, "{}", secret.body);
    let secret_arn = secret.body["arn"].as_str().unwrap().to_owned();
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "codepipeline.pw"}, "Action": "sts:AssumeRole"}]});
    let role = app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&root),
            Some(json!({"roleName": "scanner", "assumeRolePolicyDocument": trust})),
        )
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let policy = json!({"policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn}]}});
    assert_eq!(app.call("PUT", "/v1/iam/roles/scanner/policies/read", Some(&root), Some(policy)).await.status, 200);
    let role_arn = role.body["role"]["arn"].as_str().unwrap();

    let created = app
        .call(
            "POST",
            "/v1/pipelines",
            Some(&root),
            Some(json!({"pipeline": scan_pipeline(&url, role_arn, "scan/key")})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    crate::isolation::upload(&app, &root, "scanned").await;

    // The call: the secret's value as a header, the body's variables
    // resolved, the callback's URL and secret.
    let waiting = state_until(&app, &root, "scanned", "the scan waits for its callback", |s| {
        action(s, "Scan", "Scan")["summary"] == "Waiting for its callback"
    })
    .await;
    let call = requests.lock().unwrap()[0].clone();
    assert_eq!(call.line, "POST /scans HTTP/1.1");
    assert_eq!(call.header("authorization"), format!("Bearer {API_KEY}"));
    assert_eq!(call.header("x-team"), "web");
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["target"], "staging");
    let execution = action(&waiting, "Scan", "Scan")["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert_eq!(sent["execution"], execution.as_str());
    let callback_url = call.header("x-pipewright-callback-url").to_owned();
    let callback_secret = call.header("x-pipewright-callback-secret").to_owned();
    let path = &callback_url[callback_url.find("/v1/callbacks/").unwrap()..];
    // Whoever may read the pipeline's state does not learn the secret.
    let shown = app.call("GET", "/v1/pipelines/scanned/state", Some(&root), None).await.body;
    assert!(!shown.to_string().contains(&callback_secret), "the callback secret in the state: {shown:#}");

    // A callback not signed with that secret is refused; the action waits on.
    let result = json!({"status": "Succeeded", "summary": "no findings", "outputVariables": {"REPORT_ID": "r-42"}});
    let bytes = serde_json::to_vec(&result).unwrap();
    let sign = |key: &str| hmac(key, &bytes);
    let post = |signature: String| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/json")
            .header("x-pipewright-signature-256", signature)
            .body(bytes.clone())
            .send()
    };
    let forged = post(sign("not-the-secret")).await.unwrap();
    assert_eq!(forged.status(), 401);
    let state = app.call("GET", "/v1/pipelines/scanned/state", Some(&root), None).await.body;
    assert_eq!(action(&state, "Scan", "Scan")["status"], "InProgress");

    // Signed: the action succeeds, and Report reads its variable.
    let signed = post(sign(&callback_secret)).await.unwrap();
    assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
    let done = state_until(&app, &root, "scanned", "the report runs", |s| {
        action(s, "Report", "Print")["status"] == "Succeeded" || action(s, "Report", "Print")["status"] == "Failed"
    })
    .await;
    assert_eq!(action(&done, "Report", "Print")["status"], "Succeeded", "{done:#}");
    assert_eq!(action(&done, "Scan", "Scan")["summary"], "no findings");
    // Once ended, the same callback finds nothing waiting.
    let again = post(sign(&callback_secret)).await.unwrap();
    assert_eq!(again.status(), 404);
    // Without waitForCallback, a 2xx answer is the action's success.
    let mut pinged = scan_pipeline(&url, role_arn, "scan/key");
    pinged["name"] = json!("pinged");
    pinged["stages"][1]["actions"][0]["configuration"]["waitForCallback"] = json!("false");
    pinged["stages"].as_array_mut().unwrap().truncate(2);
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pinged}))).await.status, 201);
    crate::isolation::upload(&app, &root, "pinged").await;
    let called = state_until(&app, &root, "pinged", "the call ends", |s| {
        action(s, "Scan", "Scan")["status"] != "InProgress" && !action(s, "Scan", "Scan").is_null()
    })
    .await;
    assert_eq!(action(&called, "Scan", "Scan")["status"], "Succeeded", "{called:#}");
    assert!(action(&called, "Scan", "Scan")["summary"].as_str().unwrap().contains("answered 202"), "{called:#}");

    // Neither the key nor the callback secret is in the audit log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = app.audit_table_text().await;
    assert!(!log.contains(API_KEY) && !log.contains(&callback_secret), "a secret in the audit log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_to_this_host_is_refused_unless_the_operator_allows_it() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    for url in ["http://127.0.0.1:6379/", "http://169.254.169.254/latest", "http://localhost./x", "ftp://example.com/"]
    {
        let mut pipeline = scan_pipeline(url, &format!("arn:pw:iam::{account}:role/none"), "scan/key");
        pipeline["stages"][1]["actions"][0]["configuration"]["waitForCallback"] = json!("false");
        let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
        assert_eq!(refused.status, 400, "{url}: {}", refused.body);
        assert!(refused.body.to_string().contains("stages[1].actions[0].configuration.url"), "{}", refused.body);
    }
}
