//! What `deploy/` gives an operator, checked without a cluster: the
//! Kubernetes manifests and compose file pass `deploy/kubernetes/lint.py`
//! (schemas and an operator's rules), and the image's health check command
//! tells a serving process from a dead one.

use std::process::Command;

use crate::support::{TestApp, workspace_root};

#[test]
fn the_kubernetes_manifests_and_the_compose_file_pass_their_lint() {
    let output = Command::new("python3")
        .arg(workspace_root().join("deploy/kubernetes/lint.py"))
        .output()
        .expect("python3 runs (bash deploy/local-services.sh installs kubernetes-validate)");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("0 problems"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_healthcheck_command_passes_on_a_ready_process_and_fails_on_a_closed_port() {
    let app = TestApp::spawn().await;
    let check = |listen: String, path: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pipewright"))
            .args(["healthcheck", path])
            .env_remove("PIPEWRIGHT_CONFIG")
            .env("PIPEWRIGHT_LISTEN", listen)
            .output()
    };
    let ready = check(app.addr.to_string(), "/readyz").await.unwrap();
    assert_eq!(ready.status.code(), Some(0), "{}", String::from_utf8_lossy(&ready.stderr));
    let wildcard = check(format!("0.0.0.0:{}", app.addr.port()), "/healthz").await.unwrap();
    assert_eq!(wildcard.status.code(), Some(0), "0.0.0.0 is asked of 127.0.0.1");
    let missing = check(app.addr.to_string(), "/no-such-page").await.unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dead = check(closed.to_string(), "/readyz").await.unwrap();
    assert_eq!(dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dead.stderr).contains(&closed.to_string()));
}
