//! Notifications out: a rule on a pipeline posts approval-needed to an
//! HTTP receiver, signed; a receiver that answered 500 gets it again; the
//! delivery log tells; targets this host's addresses are refused unless
//! the operator allows them; secrets are never answered or recorded.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::kind;
use crate::support::TestApp;
use crate::support::receiver::{self, hmac};

const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "notify-secret-7";

/// 500 to the first request, 200 after.
fn fails_once(n: usize) -> (&'static str, &'static str) {
    if n == 1 { ("500 Internal Server Error", "oops") } else { ("200 OK", "ok") }
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_needed_is_posted_signed_and_retried_after_a_500() {
    // The operator lets tenants' requests reach this host's loopback.
    let app = TestApp::spawn_with_worker_and(|c| c.git_allowed_hosts = "127.0.0.1".to_owned()).await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let pipeline = json!({"name": "site", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Site"}]}]},
        {"name": "Approve", "actions": [{"name": "Review", "actionTypeId": kind("Approval", "Manual"),
            "configuration": {"customData": "Ship release #{variables.release}?"}}]}],
        "variables": [{"name": "release", "defaultValue": "7"}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await.status, 201);
    let (address, received) = receiver::start(fails_once).await;
    let url = format!("http://{address}/hook");

    let arn = format!("arn:pw:codepipeline:local:{account}:site");
    let rule = |targets: Value| {
        json!({"name": "approvals", "resource": arn, "detailType": "FULL",
               "eventTypeIds": ["codepipeline-pipeline-manual-approval-needed"], "targets": targets})
    };
    // Refused, saying what to fix: an unknown event type; a Webhook without
    // a secret; a Slack URL over http.
    for (bad, field) in [
        (json!({"eventTypeIds": ["codepipeline-pipeline-approval-needed"]}), "eventTypeIds[0]"),
        (json!({"targets": [{"targetType": "Webhook", "targetAddress": url}]}), "targets[0].secretToken"),
        (
            json!({"targets": [{"targetType": "Slack", "targetAddress": "http://hooks.example/x"}]}),
            "targets[0].targetAddress",
        ),
    ] {
        let mut body = rule(json!([{"targetType": "Webhook", "targetAddress": url, "secretToken": SECRET}]));
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let refused = app.call("POST", "/v1/notification-rules", Some(&root), Some(body)).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.body["message"].as_str().unwrap().contains(field), "{}", refused.body);
    }
    let created = app
        .call(
            "POST",
            "/v1/notification-rules",
            Some(&root),
            Some(rule(json!([{"targetType": "Webhook", "targetAddress": url, "secretToken": SECRET}]))),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let described = app.call("GET", "/v1/notification-rules/approvals", Some(&root), None).await;
    assert_eq!(described.body["targets"][0]["secretToken"], "****", "{}", described.body);

    // An upload runs to the approval: the receiver is told, answers 500,
    // and is told again.
    crate::isolation::upload(&app, &root, "site").await;
    for _ in 0..150 {
        if received.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "sent once, and again after the 500");
    let (first, again) = (&received[0], &received[1]);
    assert_eq!(first.body, again.body, "the same event both times");
    let body = &again.body;
    assert_eq!(again.header("x-pipewright-signature-256"), hmac(SECRET, body));
    assert_eq!(again.header("x-pipewright-event"), "codepipeline-pipeline-manual-approval-needed");
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["detail"]["pipeline"], "site");
    assert_eq!(event["detail"]["stage"], "Approve");
    assert_eq!(event["additionalAttributes"]["approval"]["customData"], "Ship release 7?");
    let link = event["additionalAttributes"]["approval"]["approvalReviewLink"].as_str().unwrap();
    assert!(link.ends_with("/#/pipelines/site"), "{link}");

    // The delivery log: two attempts, the first answered 500.
    let mut log = Value::Null;
    for _ in 0..50 {
        log = app.call("GET", "/v1/notification-rules/approvals/deliveries", Some(&root), None).await.body;
        if log["deliveries"][0]["status"] == "Succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = &log["deliveries"][0];
    assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_i64()), (Some("Succeeded"), Some(2)), "{log:#}");
    assert_eq!(delivery["lastStatusCode"], 200);
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "one event, one target: {log:#}");
    assert!(!app.audit_table_text().await.contains(SECRET), "the secret in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_on_this_host_is_refused_unless_the_operator_allows_it() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let pipeline = json!({"name": "site", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Site"}]}]},
        {"name": "Approve", "actions": [{"name": "Review", "actionTypeId": kind("Approval", "Manual")}]}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await.status, 201);
    for address in [
        "http://127.0.0.1:6379/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:5432/",
        "file:///etc/passwd",
    ] {
        let body = json!({"name": "r", "resource": format!("arn:pw:codepipeline:local:{account}:site"),
            "eventTypeIds": ["codepipeline-pipeline-pipeline-execution-failed"],
            "targets": [{"targetType": "Webhook", "targetAddress": address, "secretToken": "k"}]});
        let refused = app.call("POST", "/v1/notification-rules", Some(&root), Some(body)).await;
        assert_eq!(refused.status, 400, "{address}: {}", refused.body);
        assert!(refused.body["message"].as_str().unwrap().contains("targets[0].targetAddress"), "{}", refused.body);
    }
    // Another account's pipeline is not a resource of this one.
    let body = json!({"name": "r", "resource": "arn:pw:codepipeline:local:999999999999:site",
        "eventTypeIds": ["codepipeline-pipeline-pipeline-execution-failed"],
        "targets": [{"targetType": "Webhook", "targetAddress": "https://hooks.example.com/x", "secretToken": "k"}]});
    assert_eq!(app.call("POST", "/v1/notification-rules", Some(&root), Some(body)).await.status, 400);
}
