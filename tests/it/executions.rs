//! Executions, end to end: a pipeline runs through RabbitMQ-fed workers on
//! a real Git repository, with shell actions, artifacts and an approval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{SharedFolder, TestApp, process_running, unique_sleep};

const PASSWORD: &str = "correct horse battery";

/// A Git repository with one commit on `main`.
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    pub fn new(content: &str) -> Self {
        let path = crate::support::repositories().join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&path).unwrap();
        let repo = Self { path };
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo.commit(content, "first");
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Commits `content` to `path` on `branch` (made from the current
    /// commit if new); returns the commit id.
    pub fn commit_to(&self, branch: &str, path: &str, content: &str) -> String {
        self.commits_to(branch, &[(path, content)])
    }

    /// Commits each `(path, content)` in turn on `branch` (made from HEAD
    /// when new), then moves the branch to the last in one ref update, so a
    /// poller never sees the branch half-made or between the commits;
    /// returns the last commit id.
    pub fn commits_to(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let exists = self.git(&["branch", "--list", branch]);
        let start = if exists.is_empty() { "HEAD".to_string() } else { branch.to_string() };
        self.git(&["checkout", "--quiet", "--detach", &start]);
        for (path, content) in files {
            let file = self.path.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, content).unwrap();
            self.git(&["add", path]);
            self.git(&["commit", "--quiet", "-m", &format!("{branch}: {path}")]);
        }
        self.git(&["checkout", "--quiet", "-B", branch]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Commits `content` as app.txt; returns the commit id.
    pub fn commit(&self, content: &str, message: &str) -> String {
        std::fs::write(self.path.join("app.txt"), content).unwrap();
        self.git(&["add", "app.txt"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn kind(category: &str, provider: &str) -> Value {
    json!({"category": category, "owner": "Pipewright", "provider": provider, "version": "1"})
}

/// Source(Git) → Build(shell, makes an artifact and a variable) → Approval
/// → Deploy(shell, reads the artifact).
pub fn release_pipeline(name: &str, repo: &Path, build: &str) -> Value {
    json!({
        "name": name,
        "variables": [{"name": "environment", "defaultValue": "staging"}],
        "stages": [
            {"name": "Source", "actions": [{"name": "Checkout", "actionTypeId": kind("Source", "Git"),
                "configuration": {"repositoryUrl": repo.display().to_string(), "branch": "main", "pollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "SourceOut"}], "namespace": "Src"}]},
            {"name": "Build", "actions": [{"name": "Compile", "actionTypeId": kind("Build", "Shell"),
                "configuration": {"commands": build, "outputFiles": "dist/**"},
                "inputArtifacts": [{"name": "SourceOut"}], "outputArtifacts": [{"name": "BuildOut"}], "namespace": "Build"}]},
            {"name": "Approve", "actions": [{"name": "Review", "actionTypeId": kind("Approval", "Manual"),
                "configuration": {"customData": "Release #{Build.VERSION}?"}}]},
            {"name": "Deploy", "actions": [{"name": "Release", "actionTypeId": kind("Deploy", "Shell"),
                "configuration": {"commands": "echo deploying to #{variables.environment}\ncat dist/out.txt\ntest \"$(cat dist/out.txt)\" = \"built: $(git --version >/dev/null; echo ok)\" || true"},
                "inputArtifacts": [{"name": "BuildOut"}]}]}
        ]
    })
}

pub const BUILD: &str = "mkdir -p dist\necho \"built: $(cat app.txt) at #{Src.CommitId}\" > dist/out.txt\necho VERSION=1.2.3 >> \"$PW_OUTPUT_VARIABLES\"";

/// A new account's root token, and its pipeline "web"
/// ([`release_pipeline`] with `build`) on a new repository.
async fn web_pipeline(app: &TestApp, build: &str) -> (String, Repo) {
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("hello");
    let body = json!({"pipeline": release_pipeline("web", &repo.path, build)});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    (root, repo)
}

/// Polls GetPipelineState until `check` holds.
pub async fn state_until(app: &TestApp, token: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let state = app.call("GET", &format!("/v1/pipelines/{name}/state"), Some(token), None).await;
        assert_eq!(state.status, 200, "{}", state.body);
        last = state.body;
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never happened; the state is {last:#}");
}

pub fn action<'a>(state: &'a Value, stage: &str, action: &str) -> &'a Value {
    let stage = state["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == stage).unwrap();
    let action = stage["actionStates"].as_array().unwrap().iter().find(|a| a["actionName"] == action).unwrap();
    &action["latestExecution"]
}

/// An action's log (streamed while the action runs).
pub async fn log_of(app: &TestApp, token: &str, pipeline: &str, action_execution_id: &str) -> reqwest::Response {
    app.get_as(&format!("/v1/pipelines/{pipeline}/action-executions/{action_execution_id}/log"), token).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_goes_from_source_through_build_and_approval_to_deploy() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("hello");
    let commit = repo.git(&["rev-parse", "HEAD"]);

    let created = app
        .call(
            "POST",
            "/v1/pipelines",
            Some(&root),
            Some(json!({"pipeline": release_pipeline("web", &repo.path, BUILD)})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    // Creating it started an execution: it runs up to the approval and waits.
    let waiting =
        state_until(&app, &root, "web", "the approval waits", |s| action(s, "Approve", "Review")["token"].is_string())
            .await;
    assert_eq!(action(&waiting, "Source", "Checkout")["status"], "Succeeded", "{waiting:#}");
    assert_eq!(action(&waiting, "Build", "Compile")["status"], "Succeeded", "{waiting:#}");
    assert_eq!(action(&waiting, "Approve", "Review")["summary"], "Release 1.2.3?", "variables resolved: {waiting:#}");
    assert!(action(&waiting, "Deploy", "Release").is_null(), "{waiting:#}");
    // The source action's revision is the commit; every run has its times.
    let checkout = waiting["stageStates"][0]["actionStates"][0].clone();
    assert_eq!(checkout["currentRevision"]["revisionId"], commit.as_str(), "{checkout:#}");
    let compile = action(&waiting, "Build", "Compile");
    assert!(compile["startTime"].as_str().unwrap() <= compile["endTime"].as_str().unwrap(), "{compile:#}");
    assert!(action(&waiting, "Approve", "Review")["endTime"].is_null(), "it waits: {waiting:#}");
    assert!(waiting["stageStates"][1]["actionStates"][0]["currentRevision"].is_null(), "only sources have one");
    let execution_id = action(&waiting, "Approve", "Review")["pipelineExecutionId"].as_str().unwrap().to_owned();
    let execution = app.call("GET", &format!("/v1/pipelines/web/executions/{execution_id}"), Some(&root), None).await;
    let execution = &execution.body["pipelineExecution"];
    assert_eq!(execution["status"], "InProgress");
    assert_eq!(execution["trigger"]["triggerType"], "CreatePipeline");
    assert_eq!(execution["artifactRevisions"][0]["revisionId"], commit.as_str(), "{execution}");
    assert_eq!(execution["artifactRevisions"][0]["revisionSummary"], "first");
    // ListPipelineExecutions names them as CodePipeline does, too.
    let listed = app.call("GET", "/v1/pipelines/web/executions", Some(&root), None).await;
    let summary = &listed.body["pipelineExecutionSummaries"][0];
    assert_eq!(summary["sourceRevisions"][0]["actionName"], "Checkout", "{summary}");
    assert_eq!(summary["sourceRevisions"][0]["revisionId"], commit.as_str());
    assert_eq!(summary["sourceRevisions"][0]["revisionSummary"], "first");

    // A wrong token is refused; the right one approves.
    let token = action(&waiting, "Approve", "Review")["token"].as_str().unwrap().to_owned();
    let path = "/v1/pipelines/web/stages/Approve/actions/Review/approval";
    let wrong = json!({"token": uuid::Uuid::new_v4().to_string(), "result": {"status": "Approved", "summary": "ok"}});
    let refused = app.call("POST", path, Some(&root), Some(wrong)).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (400, Some("InvalidApprovalTokenException")));
    // A waiting approval has no log: the answer is empty at once, not held open.
    let review_id = action(&waiting, "Approve", "Review")["actionExecutionId"].as_str().unwrap().to_owned();
    let review_log = tokio::time::timeout(Duration::from_secs(10), log_of(&app, &root, "web", &review_id))
        .await
        .expect("answered at once");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), review_log.text()).await.expect("not held open").unwrap(),
        ""
    );
    let approve = json!({"token": token, "result": {"status": "Approved", "summary": "looks good"}});
    let approved = app.call("POST", path, Some(&root), Some(approve.clone())).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let again = app.call("POST", path, Some(&root), Some(approve)).await;
    assert_eq!(again.status, 409, "{}", again.body);

    let done = state_until(&app, &root, "web", "the deploy succeeds", |s| {
        action(s, "Deploy", "Release")["status"] == "Succeeded"
    })
    .await;
    assert_eq!(action(&done, "Approve", "Review")["status"], "Succeeded");
    let execution = app.call("GET", &format!("/v1/pipelines/web/executions/{execution_id}"), Some(&root), None).await;
    for _ in 0..150 {
        if app.call("GET", &format!("/v1/pipelines/web/executions/{execution_id}"), Some(&root), None).await.body["pipelineExecution"]
            ["status"]
            == "Succeeded"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = app.call("GET", &format!("/v1/pipelines/web/executions/{execution_id}"), Some(&root), None).await;
    assert_eq!(finished.body["pipelineExecution"]["status"], "Succeeded", "{} / {}", execution.body, finished.body);

    // The deploy read the build's artifact: its log shows it.
    let deploy_id = action(&done, "Deploy", "Release")["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "web", &deploy_id).await;
    let log = log.text().await.unwrap();
    assert!(log.contains("deploying to staging"), "{log}");
    assert!(log.contains(&format!("built: hello at {commit}")), "{log}");

    // ListActionExecutions: inputs, resolved configuration, outputs.
    let listed = app
        .call(
            "GET",
            &format!("/v1/pipelines/web/action-executions?pipelineExecutionId={execution_id}"),
            Some(&root),
            None,
        )
        .await;
    let details = listed.body["actionExecutionDetails"].as_array().unwrap();
    assert_eq!(details.len(), 4, "{}", listed.body);
    let build = details.iter().find(|d| d["actionName"] == "Compile").unwrap();
    assert_eq!(build["output"]["outputVariables"]["VERSION"], "1.2.3", "{build}");
    assert!(build["input"]["configuration"]["commands"].as_str().unwrap().contains(&commit), "resolved: {build}");
    assert_eq!(build["output"]["outputArtifacts"][0]["name"], "BuildOut");
    let build_id = build["actionExecutionId"].as_str().unwrap();
    let artifact = app
        .client
        .get(app.url(&format!("/v1/pipelines/web/action-executions/{build_id}/artifacts/BuildOut")))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(artifact.status(), 200);
    let bytes = artifact.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("built: hello"), "a tar holding dist/out.txt");

    let executions = app.call("GET", "/v1/pipelines/web/executions", Some(&root), None).await;
    assert_eq!(executions.body["pipelineExecutionSummaries"][0]["pipelineExecutionId"], execution_id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_fails_the_execution_with_its_log_and_a_release_runs_again() {
    let app = TestApp::spawn_with_worker().await;
    let (root, _repo) = web_pipeline(&app, "echo compiling\nexit 3").await;
    let build_stage = |s: &Value| s["stageStates"][1]["latestExecution"]["status"] == "Failed";
    let failed = state_until(&app, &root, "web", "the build stage fails", build_stage).await;
    assert_eq!(action(&failed, "Build", "Compile")["status"], "Failed");
    let details = &action(&failed, "Build", "Compile")["errorDetails"];
    assert_eq!(details["code"], "JobFailed", "{failed:#}");
    assert!(details["message"].as_str().unwrap().contains("status 3"), "{details}");
    assert!(details["message"].as_str().unwrap().contains("compiling"), "the log's end: {details}");
    assert!(!details["message"].as_str().unwrap().contains("[pipewright]"), "only the commands' output: {details}");

    // Release change, idempotent by its token.
    let start = json!({"clientRequestToken": "release-1", "variables": [{"name": "environment", "value": "prod"}]});
    let first = app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(start.clone())).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(start)).await;
    assert_eq!(first.body["pipelineExecutionId"], second.body["pipelineExecutionId"]);
    let unknown = json!({"variables": [{"name": "region", "value": "x"}]});
    assert_eq!(app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(unknown)).await.status, 400);
    let id = first.body["pipelineExecutionId"].as_str().unwrap();
    let execution = app.call("GET", &format!("/v1/pipelines/web/executions/{id}"), Some(&root), None).await;
    assert_eq!(
        execution.body["pipelineExecution"]["variables"],
        json!([{"name": "environment", "resolvedValue": "prod"}])
    );
    let listed = app.call("GET", "/v1/pipelines/web/executions?maxResults=1", Some(&root), None).await;
    assert_eq!(listed.body["pipelineExecutionSummaries"][0]["pipelineExecutionId"], id, "newest first");
    assert!(listed.body["nextToken"].is_string());
}

async fn execution(app: &TestApp, token: &str, name: &str, id: &str) -> Value {
    let found = app.call("GET", &format!("/v1/pipelines/{name}/executions/{id}"), Some(token), None).await;
    assert_eq!(found.status, 200, "{}", found.body);
    found.body["pipelineExecution"].clone()
}

/// A pipeline's executions, newest first.
pub async fn executions_of(app: &TestApp, token: &str, name: &str) -> Vec<Value> {
    let listed = app.call("GET", &format!("/v1/pipelines/{name}/executions"), Some(token), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["pipelineExecutionSummaries"].as_array().unwrap().clone()
}

/// Waits until an execution of `name` ran `commit` and ended.
pub async fn ran(app: &TestApp, token: &str, name: &str, commit: &str) -> Value {
    execution_of_commit(app, token, name, commit, "it runs the commit and ends", |e| e["status"] != "InProgress").await
}

/// Polls until the execution that took `commit` exists and `check` holds for it.
async fn execution_of_commit(
    app: &TestApp,
    token: &str,
    name: &str,
    commit: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let listed = app.call("GET", &format!("/v1/pipelines/{name}/executions"), Some(token), None).await;
        last = listed.body.clone();
        let found = listed.body["pipelineExecutionSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["artifactRevisions"].as_array().unwrap().iter().any(|r| r["revisionId"] == commit))
            .cloned();
        if let Some(found) = found.filter(|e| check(e)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never happened; executions: {last:#}");
}

async fn approve(app: &TestApp, token: &str, name: &str, state: &Value) {
    let approval = action(state, "Approve", "Review")["token"].as_str().unwrap().to_owned();
    let body = json!({"token": approval, "result": {"status": "Approved", "summary": "ok"}});
    let approved = app
        .call("POST", &format!("/v1/pipelines/{name}/stages/Approve/actions/Review/approval"), Some(token), Some(body))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_commit_runs_a_newer_one_supersedes_an_older_waiting_one_and_a_disabled_transition_holds() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("v0");
    let mut pipeline = release_pipeline("web", &repo.path, BUILD);
    pipeline["stages"][0]["actions"][0]["configuration"]["pollForSourceChanges"] = json!("true");
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await.status, 201);
    let first = state_until(&app, &root, "web", "the first waits for approval", |s| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    let first_id = action(&first, "Approve", "Review")["pipelineExecutionId"].as_str().unwrap().to_owned();

    // Two quick commits: each starts an execution; the older, waiting at the
    // approval stage behind the first, is overtaken by the newer.
    let a = repo.commit("v1", "second");
    let older = execution_of_commit(&app, &root, "web", &a, "the commit runs", |_| true).await;
    let b = repo.commit("v2", "third");
    let newer = execution_of_commit(&app, &root, "web", &b, "the next commit runs", |_| true).await;
    assert_eq!(newer["trigger"]["triggerType"], "PollForSourceChanges");
    let older_id = older["pipelineExecutionId"].as_str().unwrap().to_owned();
    let superseded =
        execution_of_commit(&app, &root, "web", &a, "the older is superseded", |e| e["status"] == "Superseded").await;
    assert!(
        superseded["statusSummary"].as_str().unwrap().contains(newer["pipelineExecutionId"].as_str().unwrap()),
        "{superseded}"
    );
    assert_eq!(execution(&app, &root, "web", &older_id).await["status"], "Superseded");

    // The transition into Deploy is disabled: the first, approved, waits before it.
    let disable = json!({"reason": "Release freeze"});
    let path = "/v1/pipelines/web/stages/Deploy/transitions/inbound";
    assert_eq!(app.call("POST", &format!("{path}/disable"), Some(&root), Some(disable)).await.status, 200);
    approve(&app, &root, "web", &first).await;
    // (Once approved, the approval stage takes the newest execution.)
    state_until(&app, &root, "web", "the approval succeeds", |s| {
        action(s, "Approve", "Review")["pipelineExecutionId"] != first_id.as_str()
            || action(s, "Approve", "Review")["status"] == "Succeeded"
    })
    .await;
    // Nothing enters Deploy while its transition is disabled, however long we look.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = app.call("GET", "/v1/pipelines/web/state", Some(&root), None).await.body;
    assert!(action(&held, "Deploy", "Release").is_null(), "held at the transition: {held:#}");
    let deploy = held["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == "Deploy").unwrap();
    assert_eq!(deploy["inboundTransitionState"]["enabled"], false);
    assert_eq!(deploy["inboundTransitionState"]["disabledReason"], "Release freeze");
    assert_eq!(execution(&app, &root, "web", &first_id).await["status"], "InProgress");

    // Enabled again: it goes on and finishes.
    assert_eq!(app.call("POST", &format!("{path}/enable"), Some(&root), None).await.status, 200);
    let deployed =
        state_until(&app, &root, "web", "the deploy runs", |s| action(s, "Deploy", "Release")["status"] == "Succeeded")
            .await;
    assert_eq!(action(&deployed, "Deploy", "Release")["pipelineExecutionId"], first_id.as_str());
    for _ in 0..150 {
        if execution(&app, &root, "web", &first_id).await["status"] == "Succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(execution(&app, &root, "web", &first_id).await["status"], "Succeeded");

    // The newest is now at the approval; stopping it abandons the approval.
    let waiting = state_until(&app, &root, "web", "the newest waits for approval", |s| {
        action(s, "Approve", "Review")["token"].is_string()
            && action(s, "Approve", "Review")["pipelineExecutionId"] == newer["pipelineExecutionId"]
    })
    .await;
    let newest = action(&waiting, "Approve", "Review")["pipelineExecutionId"].as_str().unwrap().to_owned();
    let stop = json!({"abandon": true, "reason": "not this one"});
    let stopped =
        app.call("POST", &format!("/v1/pipelines/web/executions/{newest}/stop"), Some(&root), Some(stop.clone())).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let again = app.call("POST", &format!("/v1/pipelines/web/executions/{newest}/stop"), Some(&root), Some(stop)).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("PipelineExecutionNotStoppableException")));
    let stopped = execution(&app, &root, "web", &newest).await;
    assert_eq!(
        (stopped["status"].as_str(), stopped["statusSummary"].as_str()),
        (Some("Stopped"), Some("not this one"))
    );
    let after = app.call("GET", "/v1/pipelines/web/state", Some(&root), None).await.body;
    assert_eq!(action(&after, "Approve", "Review")["status"], "Abandoned", "{after:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_is_retried_after_the_fix() {
    let shared = SharedFolder::new();
    let app = TestApp::spawn_with_worker_and(|c| shared.grant(c)).await;
    let flag = shared.host.join("fixed");
    let build = format!("test -f /shared/fixed || {{ echo 'the toolchain is missing'; exit 1; }}\n{BUILD}");
    let (root, _repo) = web_pipeline(&app, &build).await;
    let failed = state_until(&app, &root, "web", "the build fails", |s| {
        s["stageStates"][1]["latestExecution"]["status"] == "Failed"
    })
    .await;
    let id = failed["stageStates"][1]["latestExecution"]["pipelineExecutionId"].as_str().unwrap().to_owned();
    for _ in 0..150 {
        if execution(&app, &root, "web", &id).await["status"] == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(execution(&app, &root, "web", &id).await["status"], "Failed");

    let retry = json!({"pipelineExecutionId": id, "retryMode": "FAILED_ACTIONS"});
    let refused = app.call("POST", "/v1/pipelines/web/stages/Source/retry", Some(&root), Some(retry.clone())).await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (409, Some("StageNotRetryableException")),
        "{}",
        refused.body
    );
    std::fs::write(&flag, "fixed").unwrap();
    let retried = app.call("POST", "/v1/pipelines/web/stages/Build/retry", Some(&root), Some(retry)).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let passed = state_until(&app, &root, "web", "the retried build passes", |s| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    assert_eq!(action(&passed, "Build", "Compile")["status"], "Succeeded");
    assert_eq!(action(&passed, "Approve", "Review")["pipelineExecutionId"], id.as_str(), "the same execution went on");
    let runs = app
        .call("GET", &format!("/v1/pipelines/web/action-executions?pipelineExecutionId={id}"), Some(&root), None)
        .await;
    let attempts: Vec<i64> = runs.body["actionExecutionDetails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["actionName"] == "Compile")
        .map(|d| d["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts.len(), 2, "{}", runs.body);
}

/// Reads Server-Sent Events until one's state satisfies `check`.
pub async fn event_until(
    response: &mut reqwest::Response,
    buffer: &mut String,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let state: Value = serde_json::from_str(data).unwrap();
                if check(&state) {
                    return state;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("{what}: no such event ({other:?})"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_step_is_pushed_live_over_server_sent_events() {
    let app = TestApp::spawn_with_worker().await;
    let (root, _repo) = web_pipeline(&app, BUILD).await;
    let mut events = app
        .client
        .get(app.url("/v1/pipelines/web/events"))
        .bearer_auth(&root)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let first = event_until(&mut events, &mut buffer, "the opening state", |_| true).await;
    assert_eq!(first["pipelineName"], "web");
    let waiting = event_until(&mut events, &mut buffer, "the approval waits", |s| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    approve(&app, &root, "web", &waiting).await;
    let done = event_until(&mut events, &mut buffer, "the deploy succeeds", |s| {
        action(s, "Deploy", "Release")["status"] == "Succeeded"
    })
    .await;
    assert_eq!(action(&done, "Build", "Compile")["status"], "Succeeded");

    // A change no execution step follows is pushed too: a disabled transition.
    let disable = json!({"reason": "Release freeze"});
    let path = "/v1/pipelines/web/stages/Deploy/transitions/inbound/disable";
    assert_eq!(app.call("POST", path, Some(&root), Some(disable)).await.status, 200);
    let frozen = event_until(&mut events, &mut buffer, "the transition is disabled", |s| {
        s["stageStates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["stageName"] == "Deploy" && st["inboundTransitionState"]["enabled"] == false)
    })
    .await;
    let deploy = frozen["stageStates"].as_array().unwrap().iter().find(|st| st["stageName"] == "Deploy").unwrap();
    assert_eq!(deploy["inboundTransitionState"]["disabledReason"], "Release freeze");
    assert_eq!(deploy["inboundExecutions"], json!([]));

    // An execution held by it is shown waiting at Deploy (inboundExecutions),
    // and goes in when the transition is enabled again.
    let started = app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(json!({}))).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let held_id = started.body["pipelineExecutionId"].clone();
    let waiting = event_until(&mut events, &mut buffer, "the second approval waits", |s| {
        action(s, "Approve", "Review")["pipelineExecutionId"] == held_id
            && action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    approve(&app, &root, "web", &waiting).await;
    let stage_of = |s: &Value, name: &str| {
        s["stageStates"].as_array().unwrap().iter().find(|st| st["stageName"] == name).cloned().unwrap()
    };
    let held = event_until(&mut events, &mut buffer, "the execution waits at the disabled transition", |s| {
        stage_of(s, "Deploy")["inboundExecutions"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(
        stage_of(&held, "Deploy")["inboundExecutions"],
        json!([{"pipelineExecutionId": held_id, "status": "InProgress"}])
    );
    assert_ne!(stage_of(&held, "Deploy")["latestExecution"]["pipelineExecutionId"], held_id);
    assert_eq!(stage_of(&held, "Approve")["inboundExecutions"], json!([]));
    let path = "/v1/pipelines/web/stages/Deploy/transitions/inbound/enable";
    assert_eq!(app.call("POST", path, Some(&root), None).await.status, 200);
    let released = event_until(&mut events, &mut buffer, "the held execution deploys", |s| {
        stage_of(s, "Deploy")["latestExecution"]["pipelineExecutionId"] == held_id
    })
    .await;
    assert_eq!(stage_of(&released, "Deploy")["inboundExecutions"], json!([]));

    // Someone without GetPipelineState on it gets no stream.
    let other = app.call("GET", "/v1/pipelines/web/events", None, None).await;
    assert_eq!(other.status, 401);
}

/// A `pipewright worker` process of the app's installation.
fn worker_process(app: &TestApp) -> tokio::process::Child {
    worker_process_with(app, &[])
}

/// A `pipewright worker` process with more settings.
fn worker_process_with(app: &TestApp, settings: &[(&str, &str)]) -> tokio::process::Child {
    let config = &app.config;
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .arg("worker")
        .envs(settings.iter().copied())
        .env_remove("PIPEWRIGHT_CONFIG")
        .env("DATABASE_URL", config.database_url.expose())
        .env("PIPEWRIGHT_DATA_DIR", &config.data_dir)
        .env("PIPEWRIGHT_AMQP_PREFIX", &config.amqp_prefix)
        .env("PIPEWRIGHT_REDIS_PREFIX", &config.redis_prefix)
        .env("PIPEWRIGHT_AMQP_QUEUE_EXPIRES_SECS", config.amqp_queue_expires_secs.to_string())
        .env("PIPEWRIGHT_ACTION_LEASE_SECS", "3")
        .env("PIPEWRIGHT_GIT_POLL_SECS", "1")
        .env("PIPEWRIGHT_GIT_ALLOWED_FOLDERS", &config.git_allowed_folders)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_build_leaves_nothing_stuck_another_finishes_the_execution() {
    let app = TestApp::spawn_with(|config| config.action_lease_secs = 3).await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("hello");
    // With a network, so that its stack (slirp4netns) is among what must end.
    let mut first = worker_process_with(&app, &[("PIPEWRIGHT_SANDBOX_DESTINATIONS", "127.0.0.1:9")]);
    let marker = unique_sleep();
    let build = format!("echo started\nsleep {marker} &\nsleep 3\n{BUILD}");
    let body = json!({"pipeline": release_pipeline("web", &repo.path, &build)});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    let building =
        state_until(&app, &root, "web", "the build runs", |s| action(s, "Build", "Compile")["status"] == "InProgress")
            .await;
    let build_id = action(&building, "Build", "Compile")["actionExecutionId"].as_str().unwrap().to_owned();
    log_until(&app, &root, "web", &build_id, "started").await;
    assert!(process_running(&marker), "the build's processes run");
    let stacks = children_named(first.id().unwrap(), "slirp4netns");
    assert_eq!(stacks.len(), 1, "the build's network stack runs");
    // As the action's own host user, never root.
    let status = std::fs::read_to_string(format!("/proc/{}/status", stacks[0])).unwrap();
    let uid =
        status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap().to_owned();
    assert!(uid.parse::<u32>().unwrap() >= 810_000, "slirp4netns runs as uid {uid}");
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    assert!(ends(&marker).await, "a process of the build outlived the worker killed with SIGKILL");
    for _ in 0..100 {
        if stacks.iter().all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stacks.iter().all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()),
        "the build's network stack outlived the worker killed with SIGKILL"
    );

    let mut second = worker_process(&app);
    let passed = state_until(&app, &root, "web", "another worker finishes the build", |s| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    assert_eq!(action(&passed, "Build", "Compile")["status"], "Succeeded");
    assert_eq!(
        action(&passed, "Build", "Compile")["actionExecutionId"],
        build_id.as_str(),
        "the same action, run again"
    );
    let log = log_of(&app, &root, "web", &build_id).await;
    let log = log.text().await.unwrap();
    assert!(log.contains("attempt 2"), "{log}");
    second.start_kill().unwrap();
}

/// The processes named `name` whose parent is `parent`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.lines().any(|l| l == format!("Name:\t{name}"))
                && status.lines().any(|l| l == format!("PPid:\t{parent}"))
        })
        .collect()
}

/// Follows a running action's log until it says `text` (its commands run).
async fn log_until(app: &TestApp, token: &str, pipeline: &str, action_execution_id: &str, text: &str) {
    let mut log = log_of(app, token, pipeline, action_execution_id).await;
    let mut seen = String::new();
    while !seen.contains(text) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), log.chunk()).await.expect("the log grows").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the action is still running")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_copy_of_a_running_job_does_not_fail_it() {
    use lapin::BasicProperties;
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    use pipewright_core::messaging::{DEAD, Message};
    let shared = SharedFolder::new();
    let app = TestApp::spawn_with_worker_and(|c| shared.grant(c)).await;
    // The build runs until the test lets it end.
    let go = shared.host.join("go");
    let build = format!("echo started\nwhile [ ! -e /shared/go ]; do sleep 0.1; done\n{BUILD}");
    let (root, _repo) = web_pipeline(&app, &build).await;
    let building =
        state_until(&app, &root, "web", "the build runs", |s| action(s, "Build", "Compile")["status"] == "InProgress")
            .await;
    let build_id = action(&building, "Build", "Compile")["actionExecutionId"].as_str().unwrap().to_owned();
    log_until(&app, &root, "web", &build_id, "started").await;

    // A copy of its job (a duplicate delivery) lands in the dead-letter queue.
    let services = pipewright_core::services::Services::connect(&app.config).await.expect("the services answer");
    let channel = services.broker.channel().await.expect("a channel");
    let copy = serde_json::to_vec(&Message::Run { action_execution_id: build_id.parse().unwrap() }).unwrap();
    let dead = services.broker.name(DEAD);
    let sent = channel
        .basic_publish(
            "".into(),
            dead.as_str().into(),
            BasicPublishOptions::default(),
            &copy,
            BasicProperties::default(),
        )
        .await
        .expect("published");
    sent.await.expect("confirmed");
    // Until the worker has taken it, and a moment to act on it.
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    for _ in 0..100 {
        let queue = channel.queue_declare(dead.as_str().into(), passive, Default::default()).await.expect("the queue");
        if queue.message_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = app.call("GET", "/v1/pipelines/web/state", Some(&root), None).await.body;
    assert_eq!(action(&still, "Build", "Compile")["status"], "InProgress", "{still:#}");

    std::fs::write(&go, "").unwrap();
    let after =
        state_until(&app, &root, "web", "the build ends", |s| action(s, "Build", "Compile")["status"] != "InProgress")
            .await;
    assert_eq!(action(&after, "Build", "Compile")["status"], "Succeeded", "{after}");
}

/// Waits up to 10 s for the process with `marker` in its command line to end.
async fn ends(marker: &str) -> bool {
    for _ in 0..100 {
        if !process_running(marker) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_actions_commands_start_in_the_background_ends_with_the_action() {
    let app = TestApp::spawn_with_worker().await;
    // The build leaves a process behind, and succeeds.
    let (left, held) = (unique_sleep(), unique_sleep());
    let build = format!("sleep {left} &\n{BUILD}");
    let (root, _repo) = web_pipeline(&app, &build).await;
    state_until(&app, &root, "web", "the build succeeds", |s| action(s, "Approve", "Review")["token"].is_string())
        .await;
    assert!(ends(&left).await, "a process the build left behind still runs after it succeeded");

    // Another pipeline's build waits on one, and is stopped.
    let repo = Repo::new("held");
    let build = format!("sleep {held} &\necho started\nwait");
    let body = json!({"pipeline": release_pipeline("held", &repo.path, &build)});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    let building =
        state_until(&app, &root, "held", "the build runs", |s| action(s, "Build", "Compile")["status"] == "InProgress")
            .await;
    let build = action(&building, "Build", "Compile");
    let (id, execution_id) =
        (build["actionExecutionId"].as_str().unwrap(), build["pipelineExecutionId"].as_str().unwrap());
    log_until(&app, &root, "held", id, "started").await;
    let stop = json!({"abandon": true, "reason": "wrong commit"});
    let stopped =
        app.call("POST", &format!("/v1/pipelines/held/executions/{execution_id}/stop"), Some(&root), Some(stop)).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert!(ends(&held).await, "the stopped build's process still runs");
    let after = app.call("GET", "/v1/pipelines/held/state", Some(&root), None).await.body;
    assert_eq!(action(&after, "Build", "Compile")["status"], "Abandoned", "{after:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_nobody_answers_expires_and_fails_its_stage() {
    let app = TestApp::spawn_with_worker().await;
    let (root, _repo) = web_pipeline(&app, BUILD).await;
    state_until(&app, &root, "web", "the approval waits", |s| action(s, "Approve", "Review")["token"].is_string())
        .await;
    // Seven days later, as far as the database knows.
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
        conn.batch_execute(
            "UPDATE action_executions SET lease_until = now() - interval '1 second' WHERE token IS NOT NULL",
        )
        .await
        .unwrap();
    }
    let expired = state_until(&app, &root, "web", "the approval expires", |s| {
        action(s, "Approve", "Review")["status"] == "Failed"
    })
    .await;
    assert_eq!(action(&expired, "Approve", "Review")["errorDetails"]["code"], "ApprovalExpired");
}

/// An app and a worker (leases of 4 s) that reach one service, the one
/// `service` names in the configuration, through a proxy the test can cut.
async fn app_through_proxy(
    service: impl Fn(&mut pipewright_core::config::Config) -> &mut pipewright_core::config::Dsn,
) -> (TestApp, crate::support::ChaosProxy) {
    use pipewright_core::config::Dsn;
    let mut base = crate::support::base_config();
    let proxy = crate::support::ChaosProxy::start(service(&mut base).host_port()).await;
    let app = TestApp::spawn_with(|config| {
        let url = service(config);
        *url = Dsn::new(proxy.url_for(url.expose()));
        config.action_lease_secs = 4;
    })
    .await;
    app.start_worker().await;
    (app, proxy)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_mid_execution_loses_nothing_and_needs_no_restart() {
    let (app, rabbitmq) = app_through_proxy(|config| &mut config.amqp_url).await;
    let (root, _repo) = web_pipeline(&app, BUILD).await;
    let waiting =
        state_until(&app, &root, "web", "the approval waits", |s| action(s, "Approve", "Review")["token"].is_string())
            .await;

    // The broker goes away; the approval is still recorded (its messages wait in the outbox).
    rabbitmq.cut();
    approve(&app, &root, "web", &waiting).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rabbitmq.restore();
    let done = state_until(&app, &root, "web", "the deploy runs once the broker is back", |s| {
        action(s, "Deploy", "Release")["status"] == "Succeeded"
    })
    .await;
    assert_eq!(action(&done, "Approve", "Review")["status"], "Succeeded");
}

/// A zip archive of these files, as a user's tool would make it.
pub fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_mid_build_loses_nothing_and_needs_no_restart() {
    let (app, postgres) = app_through_proxy(|config| &mut config.database_url).await;
    let build = format!("sleep 2\n{BUILD}");
    let (root, _repo) = web_pipeline(&app, &build).await;
    state_until(&app, &root, "web", "the build runs", |s| action(s, "Build", "Compile")["status"] == "InProgress")
        .await;

    // PostgreSQL goes away (as in a restart) while the build runs, and
    // finishes; it comes back a few seconds later.
    postgres.cut();
    let down = app.call("GET", "/v1/pipelines/web/state", Some(&root), None).await;
    assert_eq!(down.status, 503, "{}", down.body);
    tokio::time::sleep(Duration::from_secs(4)).await;
    postgres.restore();

    let waiting = state_until(&app, &root, "web", "the build's result is recorded once it is back", |s| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await;
    assert_eq!(action(&waiting, "Build", "Compile")["status"], "Succeeded");
    approve(&app, &root, "web", &waiting).await;
    let done =
        state_until(&app, &root, "web", "the deploy runs", |s| action(s, "Deploy", "Release")["status"] == "Succeeded")
            .await;
    let id = action(&done, "Deploy", "Release")["pipelineExecutionId"].as_str().unwrap().to_owned();
    // (The execution ends a step after its last action.)
    let mut finished = execution(&app, &root, "web", &id).await;
    for _ in 0..150 {
        if finished["status"] != "InProgress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        finished = execution(&app, &root, "web", &id).await;
    }
    assert_eq!(finished["status"], "Succeeded");
    // Its last update is its end, seconds after its start.
    let at = |field: &str| chrono::DateTime::parse_from_rfc3339(finished[field].as_str().unwrap()).unwrap();
    assert!(at("lastUpdateTime") - at("startTime") > chrono::Duration::seconds(4), "{finished}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_archive_is_a_revision_that_runs_through_the_pipeline() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let pipeline = json!({"name": "site", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Site"}]}]},
        {"name": "Publish", "actions": [{"name": "Show", "actionTypeId": kind("Deploy", "Shell"),
            "configuration": {"commands": "cat index.html"}, "inputArtifacts": [{"name": "Site"}]}]}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await.status, 201);
    let none = app.call("GET", "/v1/pipelines/site/executions", Some(&root), None).await;
    assert_eq!(none.body["pipelineExecutionSummaries"], json!([]), "nothing to run before an upload");

    // A tar.gz made as a user would.
    let dir = std::env::temp_dir().join(format!("pw-upload-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "<h1>release 7</h1>").unwrap();
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.join("site.tar.gz"))
        .arg("-C")
        .arg(dir.join("site"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let archive = std::fs::read(dir.join("site.tar.gz")).unwrap();
    let upload = |body: Vec<u8>, content_type: &str| {
        app.client
            .post(app.url("/v1/pipelines/site/sources/Upload/revisions"))
            .bearer_auth(&root)
            .header("content-type", content_type)
            .header("x-pw-revision-summary", "release 7")
            .body(body)
            .send()
    };
    let sent = upload(archive, "application/gzip").await.unwrap();
    assert_eq!(sent.status(), 200);
    let sent: Value = sent.json().await.unwrap();
    let id = sent["pipelineExecutionId"].as_str().unwrap().to_owned();
    let done = state_until(&app, &root, "site", "the upload is published", |s| {
        action(s, "Publish", "Show")["status"] == "Succeeded"
    })
    .await;
    let run = action(&done, "Publish", "Show")["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "site", &run).await;
    assert!(log.text().await.unwrap().contains("<h1>release 7</h1>"));
    let execution = execution(&app, &root, "site", &id).await;
    assert_eq!(execution["trigger"]["triggerType"], "PutSourceRevision");
    assert_eq!(execution["artifactRevisions"][0]["revisionSummary"], "release 7");
    assert_eq!(execution["artifactRevisions"][0]["revisionId"], sent["revisionId"]);

    // A zip runs as well.
    let zip = zip_of(&[("index.html", "<h1>release 8</h1>")]);
    let sent = upload(zip, "application/zip").await.unwrap();
    assert_eq!(sent.status(), 200);
    let zipped: Value = sent.json().await.unwrap();
    let zipped_id = zipped["pipelineExecutionId"].as_str().unwrap().to_owned();
    let done = state_until(&app, &root, "site", "the zip is published", |s| {
        let show = action(s, "Publish", "Show");
        show["pipelineExecutionId"] == zipped_id.as_str() && show["status"] == "Succeeded"
    })
    .await;
    let run = action(&done, "Publish", "Show")["actionExecutionId"].as_str().unwrap().to_owned();
    assert!(log_of(&app, &root, "site", &run).await.text().await.unwrap().contains("<h1>release 8</h1>"));

    // Sent as application/octet-stream (what a generated client sends), it is
    // told by its first bytes.
    let sent = upload(zip_of(&[("index.html", "<h1>release 8</h1>")]), "application/octet-stream").await.unwrap();
    assert_eq!(sent.status(), 200, "a zip as octet-stream");
    let zipped: Value = sent.json().await.unwrap();
    let zipped_id = zipped["pipelineExecutionId"].as_str().unwrap().to_owned();
    state_until(&app, &root, "site", "the octet-stream zip is published", |s| {
        let show = action(s, "Publish", "Show");
        show["pipelineExecutionId"] == zipped_id.as_str() && show["status"] == "Succeeded"
    })
    .await;
    let unknown = upload(b"neither tar, gzip nor zip".to_vec(), "application/octet-stream").await.unwrap();
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().await.unwrap().contains("told by its first bytes"));

    // A release without an upload (StartPipelineExecution) runs the
    // latest archive, as CodePipeline's S3 source takes the latest object.
    let started = app.call("POST", "/v1/pipelines/site/executions", Some(&root), Some(json!({}))).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let released = started.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let done = state_until(&app, &root, "site", "the release is published", |s| {
        let show = action(s, "Publish", "Show");
        show["pipelineExecutionId"] == released.as_str() && show["status"] != "InProgress"
    })
    .await;
    assert_eq!(action(&done, "Publish", "Show")["status"], "Succeeded", "{done:#}");
    let run = action(&done, "Publish", "Show")["actionExecutionId"].as_str().unwrap().to_owned();
    assert!(log_of(&app, &root, "site", &run).await.text().await.unwrap().contains("<h1>release 8</h1>"));
    let release = crate::executions::execution(&app, &root, "site", &released).await;
    assert_eq!(release["trigger"]["triggerType"], "StartPipelineExecution");
    assert_eq!(release["artifactRevisions"][0]["revisionId"], zipped["revisionId"], "{release:#}");

    // What is not an archive of its kind is refused, saying so.
    assert_eq!(upload(b"not an archive".to_vec(), "application/x-tar").await.unwrap().status(), 400);
    assert_eq!(upload(Vec::new(), "application/x-tar").await.unwrap().status(), 400, "an empty archive");
    let broken = upload(b"PK..".to_vec(), "application/zip").await.unwrap();
    assert_eq!(broken.status(), 400);
    assert!(broken.text().await.unwrap().contains("not a usable zip archive"));
    let escaping = upload(zip_of(&[("../../etc/evil", "x")]), "application/zip").await.unwrap();
    assert_eq!(escaping.status(), 400, "an entry that leaves the archive's folder");
    assert_eq!(upload(b"{}".to_vec(), "application/json").await.unwrap().status(), 415);

    // The action's ARN names its stage: a policy can allow this one upload only.
    app.create_user(&root, "publisher", PASSWORD, &[]).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codepipeline:PutSourceRevision",
        "Resource": format!("arn:pw:codepipeline:*:{account}:site/Source/Upload")}]});
    let put = app
        .call("PUT", "/v1/iam/users/publisher/policies/upload", Some(&root), Some(json!({"policyDocument": policy})))
        .await;
    assert_eq!(put.status, 200);
    let publisher = app.sign_in(&account, "publisher", PASSWORD).await;
    let archive = std::fs::read(dir.join("site.tar.gz")).unwrap();
    let allowed = app
        .client
        .post(app.url("/v1/pipelines/site/sources/Upload/revisions"))
        .bearer_auth(&publisher)
        .header("content-type", "application/gzip")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200, "{}", allowed.text().await.unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_actions_log_streams_until_it_ends() {
    let app = TestApp::spawn_with_worker().await;
    let build = format!("echo first line\nsleep 3\necho last line\n{BUILD}");
    let (root, _repo) = web_pipeline(&app, &build).await;
    let running =
        state_until(&app, &root, "web", "the build runs", |s| action(s, "Build", "Compile")["status"] == "InProgress")
            .await;
    let id = action(&running, "Build", "Compile")["actionExecutionId"].as_str().unwrap().to_owned();
    let mut log = log_of(&app, &root, "web", &id).await;
    assert_eq!(log.status(), 200);
    let mut text = String::new();
    let mut seen_while_running = false;
    while let Some(chunk) =
        tokio::time::timeout(Duration::from_secs(30), log.chunk()).await.expect("the log ends").unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("first line") && !text.contains("last line") {
            let now = app.call("GET", "/v1/pipelines/web/state", Some(&root), None).await.body;
            seen_while_running |= action(&now, "Build", "Compile")["status"] == "InProgress";
        }
    }
    assert!(seen_while_running, "the first line came while the build still ran: {text}");
    assert!(text.contains("last line") && text.contains("[pipewright] succeeded"), "{text}");
}

/// The value of the sample `series` (name and labels, as written) in a
/// Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_audit_log_executions_action_runs_stage_transitions_and_backlogs() {
    let app = TestApp::spawn_with_worker().await;
    let (root, _repo) = web_pipeline(&app, BUILD).await;
    let waiting =
        state_until(&app, &root, "web", "the approval waits", |s| action(s, "Approve", "Review")["token"].is_string())
            .await;
    approve(&app, &root, "web", &waiting).await;
    state_until(&app, &root, "web", "the deploy succeeds", |s| action(s, "Deploy", "Release")["status"] == "Succeeded")
        .await;
    // The counters are the process's (the tests share it): ours are in them.
    let mut text = String::new();
    for _ in 0..50 {
        text = app.get("/metrics").await.text().await.unwrap();
        if sample(&text, r#"pipewright_executions_finished_total{status="Succeeded"}"#).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_least_one = |series: &str| {
        let value = sample(&text, series).unwrap_or_else(|| panic!("{series} is missing:\n{text}"));
        assert!(value >= 1.0, "{series} = {value}");
    };
    at_least_one("pipewright_audit_events_written_total");
    at_least_one("pipewright_audit_batch_duration_seconds_count");
    at_least_one("pipewright_audit_wait_seconds_count");
    at_least_one("pipewright_executions_started_total");
    at_least_one(r#"pipewright_executions_finished_total{status="Succeeded"}"#);
    at_least_one(r#"pipewright_action_runs_total{provider="Shell",status="Succeeded"}"#);
    at_least_one(r#"pipewright_action_runs_total{provider="Git",status="Succeeded"}"#);
    at_least_one("pipewright_stage_transition_delay_seconds_count");
    at_least_one("pipewright_runner_slots");
    at_least_one("process_resident_memory_bytes");
    at_least_one(&format!(r#"pipewright_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION")));
    for series in [r#"pipewright_queue_depth{queue="jobs"}"#, r#"pipewright_queue_depth{queue="orchestrate"}"#] {
        assert!(sample(&text, series).is_some(), "{series} is missing:\n{text}");
    }
    assert!(sample(&text, "pipewright_outbox_backlog").is_some(), "{text}");
    assert!(sample(&text, "pipewright_runner_slots_busy").is_some(), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_execution_is_pushed_live() {
    let app = TestApp::spawn_with_worker().await;
    let (root, _repo) = web_pipeline(&app, &format!("echo started\nsleep {}\n{BUILD}", unique_sleep())).await;
    let mut events = app.client.get(app.url("/v1/pipelines/web/events")).bearer_auth(&root).send().await.unwrap();
    let mut buffer = String::new();
    let running = event_until(&mut events, &mut buffer, "the build runs", |s| {
        action(s, "Build", "Compile")["status"] == "InProgress"
    })
    .await;
    let id = action(&running, "Build", "Compile")["pipelineExecutionId"].as_str().unwrap().to_owned();
    let body = json!({"abandon": true, "reason": "wrong revision"});
    let stopped = app.call("POST", &format!("/v1/pipelines/web/executions/{id}/stop"), Some(&root), Some(body)).await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    // Abandoning ends it in the call: no execution step follows to announce it.
    let ended = event_until(&mut events, &mut buffer, "the abandoned build is pushed", |s| {
        action(s, "Build", "Compile")["status"] == "Abandoned"
    })
    .await;
    let build = ended["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == "Build").unwrap();
    assert_eq!(build["latestExecution"]["status"], "Stopped", "{build}");
}

#[tokio::test(flavor = "multi_thread")]
async fn release_change_runs_a_chosen_commit_or_an_earlier_upload_and_refuses_what_it_cannot_run() {
    let app = TestApp::spawn_with_worker().await;
    let (root, repo) = web_pipeline(&app, "mkdir -p dist\necho \"built: $(cat app.txt)\" | tee dist/out.txt").await;
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.commit("second", "two");
    let start = |body: Value| {
        let (app, root) = (&app, root.clone());
        async move { app.call("POST", "/v1/pipelines/web/executions", Some(&root), Some(body)).await }
    };
    // The first commit, though the branch has a newer one.
    let short = &first[..10];
    let started = start(json!({"sourceRevisions": [
        {"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": short.to_uppercase()}]}))
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let built = state_until(&app, &root, "web", "the chosen commit is built", |s| {
        action(s, "Build", "Compile")["pipelineExecutionId"] == id.as_str()
            && action(s, "Build", "Compile")["status"] == "Succeeded"
    })
    .await;
    let compile = action(&built, "Build", "Compile")["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "web", &compile).await.text().await.unwrap();
    assert!(log.contains("built: hello"), "the first commit's app.txt: {log}");
    let execution = app.call("GET", &format!("/v1/pipelines/web/executions/{id}"), Some(&root), None).await;
    assert_eq!(execution.body["pipelineExecution"]["sourceRevisions"][0]["revisionId"], first.as_str());

    // What cannot be run is named, and nothing starts.
    for (body, names) in [
        (
            json!([{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": "--orphan=x"}]),
            "revisionValue",
        ),
        (json!([{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": "abc"}]), "revisionValue"),
        (json!([{"actionName": "Compile", "revisionType": "COMMIT_ID", "revisionValue": first}]), "actionName"),
        (
            json!([{"actionName": "Checkout", "revisionType": "IMAGE_DIGEST", "revisionValue": "sha256:00"}]),
            "IMAGE_DIGEST",
        ),
        (
            json!([{"actionName": "Checkout", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": first}]),
            "COMMIT_ID",
        ),
        (
            json!([{"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": first},
                {"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": first}]),
            "twice",
        ),
    ] {
        let refused = start(json!({"sourceRevisions": body})).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(refused.body["message"].as_str().unwrap().contains(names), "{names}: {}", refused.body);
    }
    let unknown_type = start(json!({"sourceRevisions": [
        {"actionName": "Checkout", "revisionType": "BRANCH", "revisionValue": "main"}]}))
    .await;
    assert_eq!(unknown_type.status, 400, "{}", unknown_type.body);

    // A hexadecimal name that is a file, not a commit, is not built
    // (`git checkout NAME` would restore the file and build the branch head).
    std::fs::write(repo.path.join("abcdef12"), "a file").unwrap();
    repo.git(&["add", "abcdef12"]);
    repo.git(&["commit", "--quiet", "-m", "a file named like a commit"]);
    let file = start(json!({"sourceRevisions": [
        {"actionName": "Checkout", "revisionType": "COMMIT_ID", "revisionValue": "abcdef12"}]}))
    .await;
    assert_eq!(file.status, 200, "{}", file.body);
    let file_id = file.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let refused = state_until(&app, &root, "web", "the file is not taken for a commit", |s| {
        action(s, "Source", "Checkout")["pipelineExecutionId"] == file_id.as_str()
            && action(s, "Source", "Checkout")["status"] == "Failed"
    })
    .await;
    assert_eq!(action(&refused, "Source", "Checkout")["errorDetails"]["code"], "RevisionNotFound", "{refused:#}");

    // An Upload source runs an earlier archive by its revision id.
    let upload = json!({"name": "up", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"),
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Show", "actionTypeId": kind("Build", "Shell"),
            "configuration": {"commands": "cat app.txt"}, "inputArtifacts": [{"name": "Src"}]}]}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": upload}))).await.status, 201);
    let mut uploaded = Vec::new();
    // Each upload's execution ends before the next begins (none supersedes another).
    for content in ["one", "two"] {
        let answer = app
            .client
            .post(app.url("/v1/pipelines/up/sources/Upload/revisions"))
            .bearer_auth(&root)
            .header("content-type", "application/gzip")
            .body(archive_of(&[("app.txt", content)]))
            .send()
            .await
            .unwrap();
        let answer: Value = answer.json().await.unwrap();
        uploaded.push(answer["revisionId"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned());
        let id = answer["pipelineExecutionId"].as_str().unwrap().to_owned();
        state_until(&app, &root, "up", "the upload is built", |s| {
            action(s, "Build", "Show")["pipelineExecutionId"] == id.as_str()
                && action(s, "Build", "Show")["status"] == "Succeeded"
        })
        .await;
    }
    let again = app
        .call(
            "POST",
            "/v1/pipelines/up/executions",
            Some(&root),
            Some(json!({"sourceRevisions": [
                {"actionName": "Upload", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": uploaded[0].to_uppercase()}]})),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let id = again.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let shown = state_until(&app, &root, "up", "the first archive is built again", |s| {
        action(s, "Build", "Show")["pipelineExecutionId"] == id.as_str()
            && action(s, "Build", "Show")["status"] == "Succeeded"
    })
    .await;
    let show = action(&shown, "Build", "Show")["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "up", &show).await.text().await.unwrap();
    assert!(log.contains("one") && !log.contains("two"), "{log}");
    // Running an earlier upload again does not make it the latest: a plain
    // Release change runs the last one uploaded.
    let plain = app.call("POST", "/v1/pipelines/up/executions", Some(&root), Some(json!({}))).await;
    let plain_id = plain.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let latest = state_until(&app, &root, "up", "the latest archive is built", |s| {
        action(s, "Build", "Show")["pipelineExecutionId"] == plain_id.as_str()
            && action(s, "Build", "Show")["status"] == "Succeeded"
    })
    .await;
    let show = action(&latest, "Build", "Show")["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "up", &show).await.text().await.unwrap();
    assert!(log.contains("two") && !log.contains("one"), "{log}");
    let missing = app
        .call(
            "POST",
            "/v1/pipelines/up/executions",
            Some(&root),
            Some(json!({"sourceRevisions": [
                {"actionName": "Upload", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": "0".repeat(64)}]})),
        )
        .await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(missing.body["message"].as_str().unwrap().contains("no archive"), "{}", missing.body);
}

/// A gzipped tar archive of files (name, content).
fn archive_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, content.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}
