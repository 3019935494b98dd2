//! The generated clients, as a user of each meets them: clients/generate.sh
//! makes both from the committed document (and fails on any warning a
//! generator gives about it); the Python story type-checks with mypy
//! --strict, the TypeScript one with tsc; then each drives the user story
//! against a running service: two accounts, a read-only user refused a
//! change, a role assumed across accounts with an ExternalId, a pipeline
//! with an uploaded source, a build, a manual approval and a deploy run to
//! success, the build's artifact downloaded, LookupEvents finding the
//! approval and the refusal. The example job worker (examples/job-worker.py,
//! on the Python client) runs a custom action end to end.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, run_tool as run, workspace_root};

/// Both clients generated, once for the tests that use them (generating
/// removes the Python package first: two tests must not race on it).
async fn generated() {
    static GENERATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    GENERATED
        .get_or_init(|| async {
            let script = workspace_root().join("clients/generate.sh");
            run("clients/generate.sh", tokio::process::Command::new("bash").arg(script)).await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_python_and_typescript_clients_type_check_and_drive_the_user_story() {
    let clients = workspace_root().join("clients");
    generated().await;

    let python = clients.join("python");
    let typescript = clients.join("typescript");
    run(
        "mypy --strict on clients/python/story.py",
        tokio::process::Command::new("python3").args(["-m", "mypy", "--strict", "story.py"]).current_dir(&python),
    )
    .await;
    run(
        "tsc on clients/typescript/story.ts",
        tokio::process::Command::new("npx").args(["--no-install", "tsc", "-p", "."]).current_dir(&typescript),
    )
    .await;

    let app = TestApp::spawn_with_worker().await;
    let url = app.url("");
    let url = url.trim_end_matches('/');
    let mut py = tokio::process::Command::new("python3");
    py.arg("story.py").env("PIPEWRIGHT_URL", url).current_dir(&python);
    let mut ts = tokio::process::Command::new("node");
    ts.arg("dist/story.js").env("PIPEWRIGHT_URL", url).current_dir(&typescript);
    let (py, ts) = tokio::join!(run("the Python story", &mut py), run("the TypeScript story", &mut ts));
    for (story, text) in [("python", py), ("typescript", ts)] {
        for milestone in [
            "refused: User:",
            "B acts in A as arn:pw:sts::",
            "the execution succeeded",
            "holds",
            "PutApprovalResult by arn:pw:sts::",
            "DeletePipeline refused to",
            "done",
        ] {
            assert!(text.contains(milestone), "the {story} story did not get to {milestone:?}:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_job_worker_runs_a_custom_scan_action_whose_output_variable_the_next_stage_reads() {
    generated().await;
    let examples = workspace_root().join("examples");
    let python = workspace_root().join("clients/python");
    run(
        "mypy --strict on examples/job-worker.py",
        tokio::process::Command::new("python3")
            .args(["-m", "mypy", "--strict", "--config-file"])
            .arg(python.join("mypy.ini"))
            .arg("--cache-dir=/dev/null")
            .arg(examples.join("job-worker.py"))
            .env("MYPYPATH", &python),
    )
    .await;

    let app = TestApp::spawn_with_worker().await;
    let password = "correct horse battery";
    let account = app.create_account(None, password).await;
    let root = app.sign_in(&account, "root", password).await;
    // The type and the pipeline, as the example's docstring has them.
    let scan = json!({"category": "Test", "provider": "Scan", "version": "1",
        "configurationProperties": [
            {"name": "Project", "required": true, "key": true, "secret": false, "queryable": true},
            {"name": "MaxFindings", "required": false, "key": false, "secret": false, "type": "Number"}],
        "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 1, "maximumCount": 1}});
    assert_eq!(app.call("POST", "/v1/action-types", Some(&root), Some(scan)).await.status, 201);
    let kind = crate::executions::kind;
    let pipeline = json!({"name": "scanned", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Scan", "actions": [{"name": "Scan", "namespace": "Scan",
            "actionTypeId": {"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"},
            "configuration": {"Project": "web", "MaxFindings": "5"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Report"}]}]},
        {"name": "Release", "actions": [{"name": "Gate", "actionTypeId": kind("Deploy", "Shell"),
            "configuration": {"commands": "grep -q 'findings: 1' report.txt\ntest \"#{Scan.FINDINGS}\" = 1"},
            "inputArtifacts": [{"name": "Report"}]}]}]});
    let created = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    app.create_user(&root, "scanner", password, &["PipewrightCustomActionAccess"]).await;
    let key = app.call("POST", "/v1/iam/users/scanner/access-keys", Some(&root), None).await;
    assert_eq!(key.status, 201, "{}", key.body);

    let url = app.url("");
    let mut worker = tokio::process::Command::new("python3");
    worker
        .arg(examples.join("job-worker.py"))
        .args(["--project", "web", "--once", "--give-up-after", "60"])
        .env("PIPEWRIGHT_URL", url.trim_end_matches('/'))
        .env("PIPEWRIGHT_ACCESS_KEY_ID", key.body["accessKey"]["accessKeyId"].as_str().unwrap())
        .env("PIPEWRIGHT_SECRET_ACCESS_KEY", key.body["accessKey"]["secretAccessKey"].as_str().unwrap())
        .env("PYTHONPATH", &python)
        .kill_on_drop(true);
    let worker = tokio::spawn(async move { run("examples/job-worker.py", &mut worker).await });
    let sent = app
        .client
        .post(app.url("/v1/pipelines/scanned/sources/Upload/revisions"))
        .bearer_auth(&root)
        .header("content-type", "application/zip")
        .body(crate::executions::zip_of(&[("app.py", "print('hi')  # TODO: greet by name\n"), ("README", "fine")]))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let said = tokio::time::timeout(Duration::from_secs(120), worker).await.expect("the worker ends").unwrap();
    assert!(said.contains("succeeded with 1 findings"), "{said}");
    let state = crate::executions::state_until(&app, &root, "scanned", "the release gate ends", |s| {
        let gate = &crate::executions::action(s, "Release", "Gate")["status"];
        gate == "Succeeded" || gate == "Failed"
    })
    .await;
    let gate = crate::executions::action(&state, "Release", "Gate");
    assert_eq!(gate["status"], "Succeeded", "the gate read the report and #{{Scan.FINDINGS}}: {state:#}");
    assert_eq!(crate::executions::action(&state, "Scan", "Scan")["summary"], "1 findings (100%)");
}
