//! Schemathesis against every operation of the served document, signed in
//! as an account's root, a bounded number of examples each (a fixed seed,
//! so that a run is repeatable): no server error, no answer that breaks the
//! document. The path parameters name things that exist (the Quick start's
//! pipeline waiting at its approval, a user, a group, a role, a policy, an
//! access key, an execution and the build's artifact, a custom action's
//! dispatched job and its input), so that the
//! operations are tried past their 404. Sign-out and session revocation are
//! left out (they would end the session the run uses).

use serde_json::{Value, json};

use crate::support::{TestApp, workspace_root};

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let config = things_to_name(&app, &account, &root).await;
    // Its own folder: schemathesis keeps a cache beside its configuration.
    let folder = std::env::temp_dir().join(format!("pipewright-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    let config_file = folder.join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    // The AWS endpoint's bodies are JSON under AWS's media type.
    std::fs::write(
        folder.join("pipewright_hooks.py"),
        "import schemathesis\nschemathesis.serializer.alias(\"application/x-amz-json-1.1\", \"application/json\")\n",
    )
    .unwrap();

    let output = tokio::process::Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {root}")])
        .args(["--max-examples", "5", "--seed", "14", "--workers", "1"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--phases", "examples,coverage,fuzzing", "--suppress-health-check", "filter_too_much"])
        .args(["--exclude-path", "/v1/auth/sign-out", "--exclude-path-regex", ".*revoke.*"])
        .current_dir(&folder)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "pipewright_hooks")
        .env("PYTHONPATH", &folder)
        .output()
        .await
        .expect("schemathesis runs (bash deploy/local-services.sh installs it from PyPI)");
    let _ = std::fs::remove_dir_all(&folder);
    let said = String::from_utf8_lossy(&output.stdout);
    // What went wrong: the failures (or errors) and the summary.
    let failures = said
        .find("FAILURES")
        .or_else(|| said.find("ERRORS"))
        .map_or(&said[said.len().saturating_sub(3000)..], |at| &said[at..]);
    assert!(
        output.status.success(),
        "{}\n{}",
        &failures[..failures.len().min(6000)],
        String::from_utf8_lossy(&output.stderr)
    );
    // The identifiers reached the operations: few still answer only 404
    // (37 of 95 did with random names).
    let missing = said.find("Missing test data: ").map(|at| &said[at + 19..]);
    let missing: usize = missing.and_then(|m| m.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    assert!(missing <= 6, "{missing} operations answered only 404:\n{}", &said[said.len().saturating_sub(3000)..]);
}

/// Makes one of each thing a path names, and answers the schemathesis
/// configuration that names them.
async fn things_to_name(app: &TestApp, account: &str, root: &str) -> String {
    let declaration = std::fs::read(workspace_root().join("examples/upload-build-approve-deploy.json")).unwrap();
    let declaration: Value = serde_json::from_slice(&declaration).unwrap();
    let document = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*"}]});
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"PW": format!("arn:pw:iam::{account}:root")}, "Action": "sts:AssumeRole"}]});
    for (method, path, body) in [
        ("POST", "/v1/pipelines".to_owned(), declaration),
        ("POST", "/v1/iam/users".to_owned(), json!({"userName": "reader"})),
        ("POST", "/v1/iam/groups".to_owned(), json!({"groupName": "devs"})),
        ("POST", "/v1/iam/policies".to_owned(), json!({"policyName": "ops", "policyDocument": document})),
        ("POST", "/v1/iam/roles".to_owned(), json!({"roleName": "deployer", "assumeRolePolicyDocument": trust})),
        ("PUT", "/v1/iam/users/reader/policies/ops".to_owned(), json!({"policyDocument": document})),
        ("PUT", "/v1/iam/groups/devs/policies/ops".to_owned(), json!({"policyDocument": document})),
        ("PUT", "/v1/iam/roles/deployer/policies/ops".to_owned(), json!({"policyDocument": document})),
        ("POST", "/v1/iam/policies/ops/versions".to_owned(), json!({"policyDocument": document})),
    ] {
        let made = app.call(method, &path, Some(root), Some(body)).await;
        assert!(made.status < 300, "{method} {path}: {} {}", made.status, made.body);
    }
    let key = app.call("POST", "/v1/iam/users/reader/access-keys", Some(root), None).await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["accessKey"]["accessKeyId"].as_str().unwrap().to_owned();

    crate::examples::quick_start_to_its_approval(app, root).await;
    // A notification rule on it, a webhook on a Git pipeline and a secret,
    // named as the pipeline (`path.name`).
    let rule = json!({"name": "site", "resource": format!("arn:pw:codepipeline:local:{account}:site"),
        "eventTypeIds": ["codepipeline-pipeline-manual-approval-needed"],
        "targets": [{"targetType": "Webhook", "targetAddress": "https://hooks.example.com/ci", "secretToken": "k"}]});
    let made = app.call("POST", "/v1/notification-rules", Some(root), Some(rule)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let repo = crate::executions::Repo::new("hello");
    let git = json!({"name": "gitsite", "stages": [
        {"name": "Source", "actions": [{"name": "Code", "actionTypeId": crate::executions::kind("Source", "Git"),
            "configuration": {"repositoryUrl": repo.path.display().to_string(), "pollForSourceChanges": "false"},
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Show", "actionTypeId": crate::executions::kind("Build", "Shell"),
            "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Src"}]}]}]});
    let made = app.call("POST", "/v1/pipelines", Some(root), Some(json!({"pipeline": git}))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let hook = json!({"webhook": {"name": "site", "targetPipeline": "gitsite", "targetAction": "Code",
        "filters": [{"jsonPath": "$.ref"}], "authentication": "GITHUB_HMAC",
        "authenticationConfiguration": {"SecretToken": "k"}}});
    let made = app.call("POST", "/v1/webhooks", Some(root), Some(hook.clone())).await;
    assert_eq!(made.status, 200, "{}", made.body);
    // (Another one for the receiving URL: DeleteWebhook may take "site" first.)
    let mut kept = hook;
    kept["webhook"]["name"] = json!("kept");
    let made = app.call("POST", "/v1/webhooks", Some(root), Some(kept)).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let url = made.body["webhook"]["url"].as_str().unwrap();
    let webhook = url.rsplit('/').next().unwrap().to_owned();
    let secret = json!({"name": "site", "secretString": "s3cr3t"});
    assert_eq!(app.call("POST", "/v1/secrets", Some(root), Some(secret)).await.status, 201);
    std::mem::forget(repo);
    // A custom action's job, dispatched (not acknowledged), for the job API.
    let scan = json!({"category": "Test", "provider": "Scan", "version": "1",
        "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1}});
    assert_eq!(app.call("POST", "/v1/action-types", Some(root), Some(scan)).await.status, 201);
    let scanned = json!({"name": "scanned", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": crate::executions::kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Scan", "actions": [{"name": "Scan", "actionTypeId": {"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Report"}]}]}]});
    let made = app.call("POST", "/v1/pipelines", Some(root), Some(json!({"pipeline": scanned}))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    crate::isolation::upload(app, root, "scanned").await;
    let poll = json!({"actionTypeId": {"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"},
        "waitTimeSeconds": 20});
    let polled = app.call("POST", "/v1/jobs/poll", Some(root), Some(poll)).await;
    let job = &polled.body["jobs"][0];
    let job_id = job["id"].as_str().unwrap_or_else(|| panic!("a job: {}", polled.body)).to_owned();
    let url = job["data"]["inputArtifacts"][0]["location"]["url"].as_str().unwrap();
    let token = url.rsplit("token=").next().unwrap().to_owned();
    let runs = app.call("GET", "/v1/pipelines/site/action-executions", Some(root), None).await;
    let build = runs.body["actionExecutionDetails"]
        .as_array()
        .and_then(|runs| runs.iter().find(|run| run["actionName"] == "Package"))
        .unwrap_or_else(|| panic!("the build ran: {}", runs.body));
    let execution = build["pipelineExecutionId"].as_str().unwrap();
    let build = build["actionExecutionId"].as_str().unwrap();
    format!(
        r#"[parameters]
"path.name" = "site"
"path.userName" = "reader"
"path.groupName" = "devs"
"path.roleName" = "deployer"
"path.policyName" = "ops"
"path.versionId" = "v2"
"path.accessKeyId" = "{key}"
"path.stage" = "Approve"
"path.action" = "Review"
"path.id" = "{execution}"
"path.webhookId" = "{webhook}"
"path.jobId" = "{job_id}"

[[operations]]
include-path-regex = "action-executions"
parameters = {{ "path.id" = "{build}", "path.artifact" = "BuildOut" }}

[[operations]]
include-path-regex = "/v1/action-types/"
parameters = {{ "path.owner" = "Pipewright", "path.category" = "Build", "path.provider" = "Shell", "path.version" = "1" }}

[[operations]]
include-path-regex = "/v1/jobs/.*/artifacts/"
parameters = {{ "path.name" = "Src", "query.token" = "{token}" }}

[[operations]]
include-path-regex = "/sources/"
parameters = {{ "path.action" = "Upload" }}
"#
    )
}
