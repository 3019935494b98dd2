//! Webhooks in: a GitHub-format push with a valid signature starts the
//! pipeline whose trigger it matches; a bad signature is refused and
//! recorded in the webhook's account; a pull request runs the pipeline
//! whose pull-request filter it matches; a deleted webhook takes nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{Repo, executions_of, ran};
use crate::support::TestApp;
use crate::support::receiver::hmac;
use crate::triggers::triggered;

const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "webhook-secret-42";

/// A webhook-served pipeline ([`triggered`], not polled).
fn pipeline(name: &str, repo: &Repo, git: Value) -> Value {
    triggered(name, repo, false, git)
}

async fn deliver(app: &TestApp, path: &str, event: &str, body: &Value, signature: &str) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let response = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-hub-signature-256", signature)
        .header("user-agent", "GitHub-Hookshot/test")
        .body(bytes)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn put_webhook(app: &TestApp, token: &str, name: &str, pipeline: &str) -> String {
    let body = json!({"webhook": {
        "name": name, "targetPipeline": pipeline, "targetAction": "Code",
        "filters": [{"jsonPath": "$.repository.name", "matchEquals": "mono"}],
        "authentication": "GITHUB_HMAC", "authenticationConfiguration": {"SecretToken": SECRET}
    }});
    let put = app.call("POST", "/v1/webhooks", Some(token), Some(body)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["webhook"]["definition"]["authenticationConfiguration"]["SecretToken"], "****");
    let url = put.body["webhook"]["url"].as_str().unwrap();
    url[url.find("/v1/hooks/").unwrap()..].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_push_starts_the_pipeline_it_matches_and_a_bad_signature_is_refused_and_recorded() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("mono");
    let first = repo.commit_to("main", "services/api/main.rs", "api 0");
    let api = pipeline(
        "api",
        &repo,
        json!({"push": [{"branches": {"includes": ["main", "release/*"]}, "filePaths": {"includes": ["services/api/**"]}}]}),
    );
    let prs = pipeline(
        "prs",
        &repo,
        json!({"pullRequest": [{"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]}}]}),
    );
    for declaration in [api, prs] {
        let created = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": declaration}))).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    ran(&app, &root, "api", &first).await;
    ran(&app, &root, "prs", &first).await;

    // A definition refused, naming what to fix; then the two webhooks.
    let unsigned = json!({"webhook": {"name": "x", "targetPipeline": "api", "targetAction": "Code",
        "filters": [{"jsonPath": "$.ref"}], "authentication": "GITHUB_HMAC"}});
    let refused = app.call("POST", "/v1/webhooks", Some(&root), Some(unsigned)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["code"], "InvalidWebhookAuthenticationParametersException");
    let api_hook = put_webhook(&app, &root, "github-api", "api").await;
    let pr_hook = put_webhook(&app, &root, "github-prs", "prs").await;
    let listed = app.call("GET", "/v1/webhooks", Some(&root), None).await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 2, "{}", listed.body);
    assert!(!listed.body.to_string().contains(SECRET));

    // A push to main touching services/api, delivered as GitHub does.
    let to_api = repo.commit_to("main", "services/api/main.rs", "api 1");
    let push = json!({"ref": "refs/heads/main", "before": first, "after": to_api,
                      "repository": {"name": "mono"}, "commits": []});
    let body = serde_json::to_vec(&push).unwrap();
    let (status, answer) = deliver(&app, &api_hook, "push", &push, &hmac(SECRET, &body)).await;
    assert_eq!((status, &answer["accepted"]), (202, &json!(true)), "{answer}");
    let run = ran(&app, &root, "api", &to_api).await;
    assert_eq!(run["status"], "Succeeded", "{run:#}");
    assert_eq!(run["trigger"]["triggerType"], "Webhook");
    assert!(run["trigger"]["triggerDetail"].as_str().unwrap().ends_with(":webhook:github-api"), "{run:#}");
    assert_eq!(run["trigger"]["filter"], "triggers[0].gitConfiguration.push[0]");

    // The same push with a bad signature: refused, and nothing runs.
    let to_api_2 = repo.commit_to("main", "services/api/main.rs", "api 2");
    let push2 = json!({"ref": "refs/heads/main", "before": to_api, "after": to_api_2, "repository": {"name": "mono"}});
    let body2 = serde_json::to_vec(&push2).unwrap();
    let (status, answer) = deliver(&app, &api_hook, "push", &push2, &hmac("not-the-secret", &body2)).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("WebhookAuthenticationFailedException")), "{answer}");
    // Signed for another body: refused too.
    let (status, _) = deliver(&app, &api_hook, "push", &push2, &hmac(SECRET, &body)).await;
    assert_eq!(status, 401);
    // A push touching only other folders, signed: taken, matched, not run.
    let to_web = repo.commit_to("main", "services/web/index.html", "web");
    let push3 = json!({"ref": "refs/heads/main", "before": to_api_2, "after": to_web, "repository": {"name": "mono"}});
    let body3 = serde_json::to_vec(&push3).unwrap();
    assert_eq!(deliver(&app, &api_hook, "push", &push3, &hmac(SECRET, &body3)).await.0, 202);
    // Hostile payloads, signed: a ref git would read as an option, a
    // commit that is a revision expression, a body past the limit.
    for hostile in [
        json!({"ref": "--upload-pack=touch /tmp/pwned", "after": to_web, "repository": {"name": "mono"}}),
        json!({"ref": "refs/heads/main", "after": "HEAD~3", "repository": {"name": "mono"}}),
    ] {
        let bytes = serde_json::to_vec(&hostile).unwrap();
        let (status, answer) = deliver(&app, &api_hook, "push", &hostile, &hmac(SECRET, &bytes)).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("ValidationException")), "{hostile}: {answer}");
    }
    let huge =
        json!({"ref": "refs/heads/main", "repository": {"name": "mono"}, "padding": "x".repeat(2 * 1024 * 1024)});
    let huge_bytes = serde_json::to_vec(&huge).unwrap();
    let (status, _) = deliver(&app, &api_hook, "push", &huge, &hmac(SECRET, &huge_bytes)).await;
    assert!((400..500).contains(&status), "a 2 MiB delivery: {status}");
    // A delivery the webhook's filter does not pass.
    let other = json!({"ref": "refs/heads/main", "after": to_web, "repository": {"name": "other"}});
    let other_body = serde_json::to_vec(&other).unwrap();
    let (status, answer) = deliver(&app, &api_hook, "push", &other, &hmac(SECRET, &other_body)).await;
    assert_eq!((status, answer["accepted"].as_bool()), (200, Some(false)), "{answer}");

    // The refusal is in the account's event history, as the webhook, with
    // no secret or signature anywhere in the log.
    let mut events = Value::Null;
    for _ in 0..50 {
        events = app.call("GET", "/v1/audit/events?eventName=DeliverWebhook", Some(&root), None).await.body;
        if events["events"].as_array().is_some_and(|e| e.len() >= 5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = events["events"].as_array().unwrap().clone();
    let refusal = events
        .iter()
        .find(|e| e["errorCode"] == "WebhookAuthenticationFailedException")
        .unwrap_or_else(|| panic!("no refusal in {events:#?}"));
    assert_eq!(refusal["userIdentity"]["type"], "Webhook", "{refusal:#}");
    assert_eq!(refusal["userIdentity"]["userName"], "github-api");
    assert_eq!(refusal["userAgent"], "GitHub-Hookshot/test");
    let log = app.audit_table_text().await;
    assert!(
        !log.contains(SECRET) && !log.contains(hmac("not-the-secret", &body2).trim_start_matches("sha256=")),
        "a secret in the log"
    );

    // The first push delivered again (a replay, or late): the branch has
    // moved on, so nothing runs — a branch never goes back to an older commit.
    let (status, _) = deliver(&app, &api_hook, "push", &push, &hmac(SECRET, &body)).await;
    assert_eq!(status, 202);
    // The hook's id (its URL's credential) is not in the log either.
    let id = api_hook.rsplit('/').next().unwrap();
    let log = app.audit_table_text().await;
    let leaked: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
    assert!(leaked.is_empty(), "the webhook's id in the log: {leaked:#?}");

    // Only the signed push to services/api ran (the creation's, and one).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(executions_of(&app, &root, "api").await.len(), 2);

    // A pull request into main: GitHub's head ref runs "prs" on its commit.
    let feature = repo.commit_to("feature/login", "services/web/login.html", "login");
    repo.git(&["update-ref", "refs/pull/7/head", &feature]);
    let opened = json!({"action": "opened", "number": 7, "repository": {"name": "mono"},
        "pull_request": {"title": "Login", "head": {"ref": "feature/login", "sha": feature}, "base": {"ref": "main"}}});
    let opened_body = serde_json::to_vec(&opened).unwrap();
    let (status, answer) = deliver(&app, &pr_hook, "pull_request", &opened, &hmac(SECRET, &opened_body)).await;
    assert_eq!(status, 202, "{answer}");
    let run = ran(&app, &root, "prs", &feature).await;
    assert_eq!(run["status"], "Succeeded", "{run:#}");
    assert_eq!(run["artifactRevisions"][0]["ref"], "refs/pull/7/head");
    assert_eq!(run["artifactRevisions"][0]["branch"], "feature/login");
    assert_eq!(run["trigger"]["filter"], "triggers[0].gitConfiguration.pullRequest[0]");
    // Closed: not an event its filter names.
    let closed = json!({"action": "closed", "number": 7, "repository": {"name": "mono"},
        "pull_request": {"head": {"ref": "feature/login", "sha": feature}, "base": {"ref": "main"}}});
    let closed_body = serde_json::to_vec(&closed).unwrap();
    assert_eq!(deliver(&app, &pr_hook, "pull_request", &closed, &hmac(SECRET, &closed_body)).await.0, 202);

    // Deleted: its URL takes nothing more.
    assert_eq!(app.call("DELETE", "/v1/webhooks/github-prs", Some(&root), None).await.status, 204);
    let (status, answer) = deliver(&app, &pr_hook, "pull_request", &opened, &hmac(SECRET, &opened_body)).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("WebhookNotFoundException")));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(executions_of(&app, &root, "prs").await.len(), 2, "the creation's and the opened pull request's");
}
