//! The web console (console/), as a person meets it: the files the binary
//! embeds are what its sources build to, and a real browser (Debian's
//! Chromium, driven by playwright-core) takes a pipeline from sign-up to
//! deployed with the console alone, a read-only user following in a second
//! window. Screenshots land in console/test-results/ (CI keeps them).

use std::path::Path;

use crate::support::{TestApp, run_tool as run, workspace_root};

fn files(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<_> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_console_is_what_its_sources_build_to() {
    let console = workspace_root().join("console");
    let out = std::env::temp_dir().join(format!("pw-console-build-{}", std::process::id()));
    // Types from the committed document, then a strict type-check: a
    // change to the contract that breaks the console fails here.
    run("the console's type-check", tokio::process::Command::new("npm").args(["run", "check"]).current_dir(&console))
        .await;
    run(
        "the console's build",
        tokio::process::Command::new("npx")
            .args(["--no-install", "vite", "build", "--logLevel", "warn", "--outDir"])
            .arg(&out)
            .current_dir(&console),
    )
    .await;
    let built = files(&out);
    let _ = std::fs::remove_dir_all(&out);
    let committed = files(&console.join("dist"));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&built), names(&committed), "console/dist holds other files than the build makes");
    for ((name, fresh), (_, kept)) in built.iter().zip(&committed) {
        assert!(
            fresh == kept,
            "console/dist/{name} is not what the sources build to: run `npm run build` in console/ and commit dist/"
        );
    }
}

/// console/tests/*.test.mjs, in Chromium, against one spawned service with
/// 60-second access tokens (so that the console's refresh is exercised):
/// sign-up to deployed with a read-only user following, editing, retry and
/// copy, IAM and the simulator, a thousand pipelines paged, a streaming log
/// and a stop, the session refreshed.
#[tokio::test(flavor = "multi_thread")]
async fn in_a_real_browser_the_console_runs_pipelines_iam_and_the_audit_log() {
    let app = TestApp::spawn_with_worker_and(|config| config.access_token_secs = 60).await;
    let console = workspace_root().join("console");
    let url = app.url("");
    let said = run(
        "the console's browser tests (node --test console/tests/)",
        tokio::process::Command::new("node")
            .args(["--test", "--test-concurrency=2", "--test-reporter=spec", "tests/"])
            .env("PIPEWRIGHT_URL", url.trim_end_matches('/'))
            .current_dir(&console),
    )
    .await;
    assert!(said.contains("fail 0") && !said.contains("pass 0"), "{said}");
}
