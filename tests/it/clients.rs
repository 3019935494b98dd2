//! The generated clients, as a user of each meets them: clients/generate.sh
//! makes both from the committed document (and fails on any warning a
//! generator gives about it); the Python story type-checks with mypy
//! --strict, the TypeScript one with tsc; then each drives the user story
//! against a running service: two accounts, a read-only user refused a
//! change, a role assumed across accounts with an ExternalId, a pipeline
//! with an uploaded source, a build, a manual approval and a deploy run to
//! success, the build's artifact downloaded, LookupEvents finding the
//! approval and the refusal.

use crate::support::{TestApp, run_tool as run, workspace_root};

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_python_and_typescript_clients_type_check_and_drive_the_user_story() {
    let clients = workspace_root().join("clients");
    run("clients/generate.sh", tokio::process::Command::new("bash").arg(clients.join("generate.sh"))).await;

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
