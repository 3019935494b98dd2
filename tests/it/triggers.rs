//! V2 triggers on polled Git sources: branch, tag and file-path filters
//! decide which pushes run which pipeline, a new branch counts, and the
//! execution records the filter that matched and the branch it ran.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{Repo, executions_of, kind, ran};
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// Source (Git; polled or not) → Build (a shell that prints the branch),
/// started by the trigger's `git` configuration (its action name added).
pub fn triggered(name: &str, repo: &Repo, polled: bool, mut git: Value) -> Value {
    git["sourceActionName"] = json!("Code");
    json!({
        "name": name,
        "stages": [
            {"name": "Source", "actions": [{"name": "Code", "actionTypeId": kind("Source", "Git"),
                "configuration": {"repositoryUrl": repo.path.display().to_string(), "branch": "main",
                                  "pollForSourceChanges": polled.to_string()},
                "outputArtifacts": [{"name": "Src"}], "namespace": "Src"}]},
            {"name": "Build", "actions": [{"name": "Show", "actionTypeId": kind("Build", "Shell"),
                "configuration": {"commands": "echo on #{Src.BranchName}; ls services"},
                "inputArtifacts": [{"name": "Src"}]}]}
        ],
        "triggers": [{"providerType": "Git", "gitConfiguration": git}]
    })
}

/// [`triggered`], polled, by `push` filters.
fn filtered(name: &str, repo: &Repo, push: Value) -> Value {
    triggered(name, repo, true, json!({"push": push}))
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_run_only_the_pipelines_whose_branches_and_paths_they_touch() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let repo = Repo::new("monorepo");
    repo.commit_to("main", "services/api/main.rs", "api 0");
    repo.commit_to("main", "services/web/index.html", "web 0");
    repo.commit_to("old", "services/api/main.rs", "a branch made before the pipelines");
    repo.git(&["checkout", "--quiet", "main"]);

    let of = |folder: &str| {
        json!([{"branches": {"includes": ["main", "release/*"]},
                "filePaths": {"includes": [format!("services/{folder}/**")], "excludes": ["**/*.md"]}}])
    };
    for (name, push) in [
        ("api", of("api")),
        ("web", of("web")),
        ("tagged", json!([{"tags": {"includes": ["v*"], "excludes": ["v*-rc*"]}}])),
        ("anything", json!([{"branches": {"excludes": ["main"]}}])),
    ] {
        let created = app
            .call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": filtered(name, &repo, push)})))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let head = repo.git(&["rev-parse", "HEAD"]);
    for name in ["api", "web", "tagged", "anything"] {
        ran(&app, &root, name, &head).await;
    }
    // The pollers' first look (existing branches and tags start nothing).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A commit to main touching services/api runs api, and only api.
    let to_api = repo.commit_to("main", "services/api/main.rs", "api 1");
    let api = ran(&app, &root, "api", &to_api).await;
    assert_eq!(api["status"], "Succeeded", "{api:#}");
    assert_eq!(api["trigger"]["triggerType"], "PollForSourceChanges");
    assert_eq!(api["trigger"]["filter"], "triggers[0].gitConfiguration.push[0]");
    assert_eq!(api["artifactRevisions"][0]["ref"], "refs/heads/main");

    // A new branch release/1 with a commit touching services/web runs web
    // on that branch; a README under services/api runs nothing.
    let to_web =
        repo.commits_to("release/1", &[("services/api/README.md", "docs only"), ("services/web/index.html", "web 1")]);
    let web = ran(&app, &root, "web", &to_web).await;
    assert_eq!(web["status"], "Succeeded", "{web:#}");
    assert_eq!(web["artifactRevisions"][0]["branch"], "release/1");
    let runs = app
        .call(
            "GET",
            &format!(
                "/v1/pipelines/web/action-executions?pipelineExecutionId={}",
                web["pipelineExecutionId"].as_str().unwrap()
            ),
            Some(&root),
            None,
        )
        .await;
    let source =
        runs.body["actionExecutionDetails"].as_array().unwrap().iter().find(|a| a["actionName"] == "Code").unwrap();
    assert_eq!(source["output"]["outputVariables"]["BranchName"], "release/1", "{source:#}");
    // (The branch with any name but main runs "anything".)
    ran(&app, &root, "anything", &to_web).await;

    // A branch outside the filters, a tag outside them, then a tag inside.
    let feature = repo.commit_to("feature/x", "services/api/main.rs", "api 2");
    repo.git(&["tag", "v2-rc1"]);
    repo.git(&["tag", "-a", "v2", "-m", "release 2"]);
    let tagged = ran(&app, &root, "tagged", &feature).await;
    assert_eq!(tagged["artifactRevisions"][0]["ref"], "refs/tags/v2");
    assert_eq!(tagged["trigger"]["filter"], "triggers[0].gitConfiguration.push[0]");
    ran(&app, &root, "anything", &feature).await;
    // One more poll: nothing else started.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let count = |list: Vec<Value>| list.len();
    assert_eq!(count(executions_of(&app, &root, "api").await), 2, "creation and services/api on main");
    assert_eq!(count(executions_of(&app, &root, "web").await), 2, "creation and services/web on release/1");
    assert_eq!(count(executions_of(&app, &root, "tagged").await), 2, "creation and v2, not v2-rc1");
    assert_eq!(count(executions_of(&app, &root, "anything").await), 3, "creation, release/1, feature/x, not old");

    // Widening a filter to every branch runs none of the branches that
    // exist already; a push after that does.
    let mut current = app.call("GET", "/v1/pipelines/api", Some(&root), None).await.body["pipeline"].clone();
    current["triggers"][0]["gitConfiguration"]["push"][0]["branches"] = json!({"includes": ["**"]});
    let updated = app.call("PUT", "/v1/pipelines/api", Some(&root), Some(json!({"pipeline": current}))).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(executions_of(&app, &root, "api").await), 2, "old, feature/x and release/1 are not new");
    let on_old = repo.commit_to("old", "services/api/main.rs", "api on old");
    ran(&app, &root, "api", &on_old).await;
}
