//! Schemathesis against every operation of the served document, signed in
//! as an account's root, a bounded number of examples each (a fixed seed,
//! so that a run is repeatable): no server error, no answer that breaks the
//! document. Sign-out and session revocation are left out (they would end
//! the session the run uses).

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let output = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {root}")])
        .args(["--max-examples", "5", "--seed", "14", "--workers", "1"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--phases", "examples,coverage,fuzzing", "--suppress-health-check", "filter_too_much"])
        .args(["--exclude-path", "/v1/auth/sign-out", "--exclude-path-regex", ".*revoke.*"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis runs (bash deploy/local-services.sh installs it from PyPI)");
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
}
