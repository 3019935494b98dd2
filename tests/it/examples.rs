//! The pipeline files of `examples/`, as a newcomer uses them: each is
//! created as it is, and the Quick start's (an upload) runs to its
//! approval.

use serde_json::Value;

use crate::executions::{action, state_until};
use crate::support::{TestApp, workspace_root};

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn every_example_is_created_as_it_is_and_the_quick_starts_runs_to_its_approval() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let folder = workspace_root().join("examples");
    let mut created = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => "application/json",
            Some("yaml" | "yml") => "application/yaml",
            _ => continue,
        };
        let answer = app
            .client
            .post(app.url("/v1/pipelines"))
            .bearer_auth(&root)
            .header("content-type", content_type)
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert_eq!(status, 201, "{}: {}", path.display(), answer.text().await.unwrap());
        created += 1;
    }
    assert!(created >= 3, "{created} examples");

    // The Quick start, from the upload on.
    let waiting = quick_start_to_its_approval(&app, &root).await;
    // The build's output variable and the pipeline variable reached it.
    let summary = action(&waiting, "Approve", "Review")["summary"].as_str().unwrap_or_default().to_owned();
    assert!(summary.starts_with("Ship build 20") && summary.ends_with(" to staging?"), "{waiting:#}");
}

/// The Quick start's last steps, on its pipeline `site` (created): its page
/// uploaded as a tar.gz, as `tar czf -` makes it, and the run followed to
/// its approval. Answers the pipeline's state then.
pub async fn quick_start_to_its_approval(app: &TestApp, root: &str) -> Value {
    let folder = workspace_root().join("examples");
    let tar =
        std::process::Command::new("tar").args(["czf", "-", "-C"]).arg(folder.join("site")).arg(".").output().unwrap();
    assert!(tar.status.success());
    let sent = app
        .client
        .post(app.url("/v1/pipelines/site/sources/Upload/revisions"))
        .bearer_auth(root)
        .header("content-type", "application/gzip")
        .body(tar.stdout)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    state_until(app, root, "site", "the approval waits", |s: &Value| {
        action(s, "Approve", "Review")["token"].is_string()
    })
    .await
}

/// examples/site.tar.gz, which a console user uploads, holds exactly
/// examples/site (remade with `tar --sort=name --owner=0 --group=0
/// --numeric-owner --mtime='2026-01-01 00:00Z' -C examples/site -cf - . | gzip -n -9`).
#[test]
fn the_site_archive_holds_the_site_folder() {
    use std::io::Read;
    let examples = workspace_root().join("examples");
    let archive = std::fs::File::open(examples.join("site.tar.gz")).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(flate2::read::GzDecoder::new(archive)).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().to_string_lossy().trim_start_matches("./").to_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            found.insert(name, content);
        }
    }
    let mut expected = std::collections::BTreeMap::new();
    for file in std::fs::read_dir(examples.join("site")).unwrap() {
        let path = file.unwrap().path();
        expected.insert(path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap());
    }
    assert_eq!(found, expected, "examples/site.tar.gz is not examples/site: remake it (see this test's comment)");
}
