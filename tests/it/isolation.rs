//! Tenant isolation: an action's commands run in a sandbox that sees none of
//! the host (data folder, keys, other tenants' workspaces, the services,
//! the host's processes and `/tmp`), and are held to their limits.

use serde_json::{Value, json};

use crate::executions::{Repo, action, kind, log_of, state_until, zip_of};
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// Source(Upload) → Build (`build`, exports `RESULT`, makes `dist/out.txt`)
/// → Deploy (prints both).
fn probe_pipeline(name: &str, build: &str) -> Value {
    json!({"name": name, "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"),
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Probe", "actionTypeId": kind("Build", "Shell"),
            "configuration": {"commands": build, "outputFiles": "dist/**"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Dist"}], "namespace": "Build"}]},
        {"name": "Deploy", "actions": [{"name": "Ship", "actionTypeId": kind("Deploy", "Shell"),
            "configuration": {"commands": "echo \"deployed $(cat dist/out.txt) with #{Build.RESULT}\""},
            "inputArtifacts": [{"name": "Dist"}]}]}]})
}

/// Uploads a one-file zip to `name`'s Upload source.
pub async fn upload(app: &TestApp, token: &str, name: &str) {
    let sent = app
        .client
        .post(app.url(&format!("/v1/pipelines/{name}/sources/Upload/revisions")))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(zip_of(&[("app.txt", "hello")]))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
}

async fn account_with(app: &TestApp, pipeline: Value) -> String {
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let created = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    root
}

async fn log_text(app: &TestApp, token: &str, pipeline: &str, state: &Value, stage: &str, name: &str) -> String {
    let id = action(state, stage, name)["actionExecutionId"].as_str().unwrap().to_owned();
    log_of(app, token, pipeline, &id).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_build_finds_nothing_of_the_host_or_another_tenant_and_its_own_results_still_flow() {
    let app = TestApp::spawn_with_worker().await;
    let data = app.config.data_dir.canonicalize().unwrap();
    // What an attacker would be after: a key in the data folder, a file in
    // the host's /tmp, another tenant's workspace while its build runs.
    std::fs::write(data.join("decoy.key"), "TOPSECRET").unwrap();
    let host_tmp = std::env::temp_dir().join(format!("pw-decoy-{}", uuid::Uuid::new_v4()));
    std::fs::write(&host_tmp, "TOPSECRET").unwrap();
    let escape = format!("pw-escape-{}", uuid::Uuid::new_v4());
    let victim_build = "echo victim-secret > victim-file.txt\nsleep 6\nmkdir -p dist\necho v > dist/out.txt\necho RESULT=v >> \"$PW_OUTPUT_VARIABLES\"";
    let victim = account_with(&app, probe_pipeline("payroll", victim_build)).await;
    upload(&app, &victim, "payroll").await;
    state_until(&app, &victim, "payroll", "the victim's build runs", |s| {
        action(s, "Build", "Probe")["status"] == "InProgress"
    })
    .await;

    let port = app.addr.port();
    let data = data.display();
    let host_tmp = host_tmp.display();
    let probes = format!(
        r#"set +e
probe() {{ if sh -c "$2" >/dev/null 2>&1; then echo "ESCAPED: $1"; else echo "refused: $1"; fi; }}
probe "the data folder" "ls {data}"
probe "a key file" "cat {data}/decoy.key"
probe "the workspaces" "ls {data}/workspaces"
probe "the host's /tmp" "cat {host_tmp}"
probe "another tenant's workspace" "find / -path /proc -prune -o -path /usr -prune -o -name victim-file.txt -print | grep -q ."
probe "the host's home" "ls /root"
probe "the host's configuration" "cat /etc/os-release"
probe "the host's processes" "test \$(ls /proc | grep -c '^[0-9]') -gt 8"
probe "root" "test \$(id -u) -eq 0"
probe "the host's paths, from the sandbox's init" "tr '\\0' ' ' </proc/1/cmdline | grep -q -- -\$(echo -)bind"
for port in 5432 6379 5672 {port}; do
  probe "TCP to 127.0.0.1:$port" "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $port), 2)'"
done
echo "user: $(id -un)"
echo "environment: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
echo written > /tmp/{escape}
echo "PROBES DONE"
mkdir -p dist
echo made > dist/out.txt
echo RESULT=ok >> "$PW_OUTPUT_VARIABLES"
"#
    );
    let attacker = account_with(&app, probe_pipeline("probe", &probes)).await;
    upload(&app, &attacker, "probe").await;
    let done = state_until(&app, &attacker, "probe", "the probe deploys", |s| {
        action(s, "Deploy", "Ship")["status"] == "Succeeded"
    })
    .await;
    let log = log_text(&app, &attacker, "probe", &done, "Build", "Probe").await;
    assert!(log.contains("PROBES DONE"), "{log}");
    assert!(!log.contains("ESCAPED"), "the sandbox let something through:\n{log}");
    assert_eq!(log.matches("refused: ").count(), 14, "{log}");
    assert!(log.contains("user: builder"), "{log}");
    // Only the sandbox's own variables, the PW_ ones and the shell's.
    let names = log.lines().find_map(|l| l.strip_prefix("environment: ")).unwrap();
    let allowed = ["HOME", "LANG", "LOGNAME", "PATH", "PWD", "SHLVL", "TMPDIR", "USER", "_", "OLDPWD"];
    for name in names.split_whitespace() {
        assert!(name.starts_with("PW_") || allowed.contains(&name), "the worker's {name} leaked in: {names}");
    }
    assert!(!std::env::temp_dir().join(&escape).exists(), "the build wrote to the host's /tmp");
    // Its own artifact and variable reached the next stage.
    let deployed = log_text(&app, &attacker, "probe", &done, "Deploy", "Ship").await;
    assert!(deployed.contains("deployed made with ok"), "{deployed}");

    // The victim's build was untouched and finishes.
    state_until(&app, &victim, "payroll", "the victim deploys", |s| {
        action(s, "Deploy", "Ship")["status"] == "Succeeded"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_over_its_limits_is_ended_with_a_clear_error() {
    let app = TestApp::spawn_with_worker_and(|config| {
        config.sandbox_memory_mb = 64;
        config.sandbox_log_mb = 1;
        config.sandbox_workspace_mb = 8;
        config.sandbox_processes = 32;
    })
    .await;
    let shell = |name: &str, commands: &str| {
        json!({"name": name, "actionTypeId": kind("Build", "Shell"), "configuration": {"commands": commands},
               "inputArtifacts": [{"name": "Src"}]})
    };
    let pipeline = json!({"name": "limits", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"),
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [
            shell("OneHog", "python3 -c 'b = bytearray(200 * 1024 * 1024)'"),
            shell("ManyHogs", "for i in 1 2 3 4; do python3 -c 'import time; b = b\"x\" * (40 << 20); time.sleep(60)' & done\nwait"),
            shell("Chatty", "yes 'a line of output, again and again'"),
            shell("BigFile", "head -c 20000000 /dev/zero > big"),
            shell("ForkBomb", "for i in $(seq 100); do sleep 30 & done\nwait"),
            // The limits are the script's first line: raising them again fails.
            shell("RaisedForkBomb", "ulimit -p 100000 2>/dev/null || ulimit -u 100000 2>/dev/null || echo cannot raise\nfor i in $(seq 100); do sleep 30 & done\nwait")]}]});
    let root = account_with(&app, pipeline).await;
    upload(&app, &root, "limits").await;
    let names = ["OneHog", "ManyHogs", "Chatty", "BigFile", "ForkBomb", "RaisedForkBomb"];
    let ended = state_until(&app, &root, "limits", "every action ends", |s| {
        names.iter().all(|n| action(s, "Build", n)["status"] == "Failed")
    })
    .await;
    let code = |name: &str| action(&ended, "Build", name)["errorDetails"]["code"].as_str().unwrap().to_owned();
    let message = |name: &str| action(&ended, "Build", name)["errorDetails"]["message"].as_str().unwrap().to_owned();
    assert_eq!(code("OneHog"), "MemoryLimitExceeded", "{}", message("OneHog"));
    assert!(message("OneHog").contains("PIPEWRIGHT_SANDBOX_MEMORY_MB"), "{}", message("OneHog"));
    assert_eq!(code("ManyHogs"), "MemoryLimitExceeded", "{}", message("ManyHogs"));
    assert!(message("ManyHogs").contains("over the limit of 64 MiB"), "{}", message("ManyHogs"));
    assert_eq!(code("Chatty"), "LogLimitExceeded", "{}", message("Chatty"));
    let chatty = log_text(&app, &root, "limits", &ended, "Build", "Chatty").await;
    assert!(chatty.len() < 1024 * 1024 + 4096, "the log passed its limit: {} bytes", chatty.len());
    assert_eq!(code("BigFile"), "WorkspaceLimitExceeded", "{}", message("BigFile"));
    assert_eq!(code("ForkBomb"), "ProcessLimitExceeded", "{}", message("ForkBomb"));
    assert!(message("ForkBomb").contains("PIPEWRIGHT_SANDBOX_PROCESSES"), "{}", message("ForkBomb"));
    assert_eq!(code("RaisedForkBomb"), "ProcessLimitExceeded", "{}", message("RaisedForkBomb"));
    let raised = log_text(&app, &root, "limits", &ended, "Build", "RaisedForkBomb").await;
    assert!(raised.contains("cannot raise"), "{raised}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_variable_holding_shell_syntax_prints_as_text() {
    let app = TestApp::spawn_with_worker().await;
    let commands = "echo plain #{variables.environment}\necho \"double #{variables.environment}\"\necho 'single #{variables.environment}'";
    let repo = Repo::new("hello");
    let pipeline = json!({"name": "vars", "variables": [{"name": "environment", "defaultValue": "staging"}], "stages": [
        {"name": "Source", "actions": [{"name": "Checkout", "actionTypeId": kind("Source", "Git"),
            "configuration": {"repositoryUrl": repo.path.display().to_string(), "pollForSourceChanges": "false"},
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Build", "actions": [{"name": "Echo", "actionTypeId": kind("Build", "Shell"),
            "configuration": {"commands": commands}, "inputArtifacts": [{"name": "Src"}]}]}]});
    let root = account_with(&app, pipeline).await;
    state_until(&app, &root, "vars", "the first run ends", |s| action(s, "Build", "Echo")["status"] == "Succeeded")
        .await;
    let hostile = "prod'\"; echo INJECTED-as-$(id -un) `id -un` \\";
    let body = json!({"variables": [{"name": "environment", "value": hostile}]});
    let started = app.call("POST", "/v1/pipelines/vars/executions", Some(&root), Some(body)).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let done = state_until(&app, &root, "vars", "the hostile run ends", |s| {
        let echo = action(s, "Build", "Echo");
        echo["pipelineExecutionId"] == id.as_str() && echo["status"] != "InProgress"
    })
    .await;
    assert_eq!(action(&done, "Build", "Echo")["status"], "Succeeded", "{done:#}");
    let log = log_text(&app, &root, "vars", &done, "Build", "Echo").await;
    for line in [format!("plain {hostile}"), format!("double {hostile}"), format!("single {hostile}")] {
        assert!(log.lines().any(|l| l == line), "{line:?} not printed as text:\n{log}");
    }
    assert!(!log.contains("INJECTED-as-builder"), "{log}");
}

/// A gzipped tar archive of `entries` (path, link target or None for a file).
pub fn tar_gz(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, target) in entries {
        let mut header = tar::Header::new_gnu();
        match target {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
            None => {
                header.set_size(5);
                header.set_mode(0o644);
                builder.append_data(&mut header, name, &b"hello"[..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_holding_a_link_out_of_its_folder_is_refused() {
    let app = TestApp::spawn_with_worker().await;
    let root = account_with(&app, probe_pipeline("site", "true")).await;
    let data = app.config.data_dir.canonicalize().unwrap();
    let send = async |body: Vec<u8>| {
        let sent = app
            .client
            .post(app.url("/v1/pipelines/site/sources/Upload/revisions"))
            .bearer_auth(&root)
            .header("content-type", "application/gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = sent.status().as_u16();
        (status, sent.json::<Value>().await.unwrap())
    };
    let (status, body) = send(tar_gz(&[("app.txt", None), ("Extra", Some(data.to_str().unwrap()))])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "ValidationException", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("entry Extra is a link to") && message.contains("outside the archive's folder"),
        "{message}"
    );
    let (status, body) = send(tar_gz(&[("app.txt", None), ("lib/up", Some("../../.."))])).await;
    assert_eq!(status, 400, "{body}");
    // Two links that each look inside, the second made through the first:
    // unpacked, `Second` would point at the data folder.
    let (status, body) =
        send(tar_gz(&[("app.txt", None), ("a/b/l", Some("../..")), ("a/b/l/Second", Some("../../.."))])).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("inside a/b/l, a link of the archive"), "{body}");
    // A link to its own files is fine.
    let (status, body) = send(tar_gz(&[("app.txt", None), ("latest.txt", Some("app.txt"))])).await;
    assert_eq!(status, 200, "{body}");
    let executions = app.call("GET", "/v1/pipelines/site/executions", Some(&root), None).await;
    assert_eq!(executions.body["pipelineExecutionSummaries"].as_array().map(Vec::len), Some(1), "{}", executions.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_that_is_a_link_out_of_the_workspace_is_refused_not_followed() {
    let app = TestApp::spawn_with_worker().await;
    let data = app.config.data_dir.canonicalize().unwrap();
    std::fs::write(data.join("decoy.key"), "TOPSECRET").unwrap();
    let build = format!(
        "ln -s {} Extra\nmkdir -p dist\necho made > dist/out.txt\necho RESULT=ok >> \"$PW_OUTPUT_VARIABLES\"",
        data.display()
    );
    let mut pipeline = probe_pipeline("links", &build);
    pipeline["stages"][1]["actions"][0]["outputArtifacts"] = json!([{"name": "Dist"}, {"name": "Extra"}]);
    let root = account_with(&app, pipeline).await;
    upload(&app, &root, "links").await;
    let failed =
        state_until(&app, &root, "links", "the build fails", |s| action(s, "Build", "Probe")["status"] == "Failed")
            .await;
    let details = &action(&failed, "Build", "Probe")["errorDetails"];
    assert_eq!(details["code"], "ArtifactFailed", "{details}");
    assert!(
        details["message"].as_str().unwrap().contains("output artifact Extra could not be stored: Extra is a link"),
        "{details}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_git_source_may_name_no_host_folder_nor_address_the_operator_did_not_allow() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let workspaces = app.config.data_dir.canonicalize().unwrap().join("workspaces");
    let api = format!("http://127.0.0.1:{}/", app.addr.port());
    let pipeline = |url: &str| {
        json!({"pipeline": {"name": "src", "stages": [
            {"name": "Source", "actions": [{"name": "Checkout", "actionTypeId": kind("Source", "Git"),
                "configuration": {"repositoryUrl": url, "pollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "Build", "actions": [{"name": "Echo", "actionTypeId": kind("Build", "Shell"),
                "configuration": {"commands": "ls"}, "inputArtifacts": [{"name": "Src"}]}]}]}})
    };
    let cases = [
        ("/etc", "PIPEWRIGHT_GIT_ALLOWED_FOLDERS"),
        ("file:///etc", "PIPEWRIGHT_GIT_ALLOWED_FOLDERS"),
        (workspaces.to_str().unwrap(), "data folder"),
        (&api, "PIPEWRIGHT_GIT_ALLOWED_HOSTS"),
        ("http://localhost:5432/x.git", "PIPEWRIGHT_GIT_ALLOWED_HOSTS"),
        ("ext::sh -c id", "transport is not allowed"),
    ];
    for (url, says) in cases {
        let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(pipeline(url))).await;
        assert_eq!(refused.status, 400, "{url}: {}", refused.body);
        let error = &refused.body["errors"][0];
        assert_eq!(error["rule"], "GitSourceRefused", "{url}: {}", refused.body);
        assert_eq!(error["path"], "stages[0].actions[0].configuration.repositoryUrl", "{}", refused.body);
        assert!(error["message"].as_str().unwrap().contains(says), "{url}: {}", refused.body);
    }
    let repo = Repo::new("hello");
    // Nor may an action's variables reach the host's loader before the
    // sandbox exists.
    let mut preload = pipeline(repo.path.to_str().unwrap());
    preload["pipeline"]["stages"][1]["actions"][0]["configuration"]["environmentVariables"] =
        json!(r#"{"LD_PRELOAD": "/workspace/evil.so"}"#);
    let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(preload)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["errors"][0]["message"].as_str().unwrap().contains("loader"), "{}", refused.body);
    // Nor the shell's, which would run code before the limits are set
    // (bash as `sh` runs PS4 with SHELLOPTS=xtrace).
    let mut traced = pipeline(repo.path.to_str().unwrap());
    traced["pipeline"]["stages"][1]["actions"][0]["configuration"]["environmentVariables"] =
        json!(r#"{"SHELLOPTS": "xtrace", "PS4": "$(sleep 100 &)"}"#);
    let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(traced)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["errors"][0]["message"].as_str().unwrap().contains("read by the shell"), "{}", refused.body);
    let created = app.call("POST", "/v1/pipelines", Some(&root), Some(pipeline(repo.path.to_str().unwrap()))).await;
    assert_eq!(created.status, 201, "{}", created.body);
}

/// A TCP server on the host's loopback that answers `granted` to each
/// connection: a destination an operator grants.
async fn granted_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"granted\n").await;
        }
    });
    port
}

/// A build that tries each address and prints how each attempt ended:
/// `reached` (with what it read), or the errno (113, no route to host, is
/// the sandbox's firewall; 111, refused, is nothing listening).
fn reach_probes(targets: &[(String, u16)]) -> String {
    let list: Vec<String> = targets.iter().map(|(host, port)| format!("(\"{host}\", {port})")).collect();
    format!(
        r#"python3 - <<'PY'
import socket
for host, port in [{}]:
    try:
        s = socket.create_connection((host, port), 3)
        s.settimeout(3)
        print(f"{{host}}:{{port}} reached: {{s.recv(100).decode().strip()}}")
    except OSError as e:
        print(f"{{host}}:{{port}} errno {{e.errno}}")
PY
mkdir -p dist
echo made > dist/out.txt
echo RESULT=ok >> "$PW_OUTPUT_VARIABLES""#,
        list.join(", ")
    )
}

async fn probe_log(app: &TestApp, build: &str) -> String {
    let root = account_with(app, probe_pipeline("net", build)).await;
    upload(app, &root, "net").await;
    let done =
        state_until(app, &root, "net", "the probe deploys", |s| action(s, "Deploy", "Ship")["status"] == "Succeeded")
            .await;
    log_text(app, &root, "net", &done, "Build", "Probe").await
}

/// The host's own addresses that are not loopback (where a service
/// listening on every address answers).
fn host_addresses() -> Vec<String> {
    pipewright_core::pipelines::sources::own_addresses()
        .into_iter()
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_egress_a_build_reaches_granted_destinations_but_never_the_host_or_a_private_network() {
    let granted = granted_server().await;
    let other = granted_server().await;
    let app = TestApp::spawn_with_worker_and(|config| {
        config.sandbox_network = pipewright_core::config::SandboxNetwork::Egress;
        config.sandbox_destinations = format!("127.0.0.1:{granted}");
    })
    .await;
    let api = app.addr.port();
    let mut targets: Vec<(String, u16)> = vec![
        ("host.pipewright.internal".into(), granted),
        // The host's loopback on a port not granted: the API, the services.
        ("10.0.2.2".into(), other),
        ("10.0.2.2".into(), api),
        ("10.0.2.2".into(), 5432),
        ("10.0.2.2".into(), 6379),
        ("10.0.2.2".into(), 5672),
        // Private ranges and the cloud's metadata address.
        ("169.254.169.254".into(), 80),
        ("192.168.1.1".into(), 80),
        ("172.17.0.1".into(), 2375),
        ("100.64.0.1".into(), 80),
        // The sandbox's own loopback: nothing listens there.
        ("127.0.0.1".into(), 5432),
    ];
    targets.extend(host_addresses().into_iter().map(|ip| (ip, 5432)));
    let log = probe_log(&app, &reach_probes(&targets)).await;
    assert!(log.contains(&format!("host.pipewright.internal:{granted} reached: granted")), "{log}");
    for (host, port) in &targets[1..targets.len()] {
        if host == "127.0.0.1" {
            assert!(log.contains(&format!("127.0.0.1:{port} errno 111")), "{log}");
        } else {
            assert!(log.contains(&format!("{host}:{port} errno 113")), "{host}:{port} was not refused:\n{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_egress_a_granted_destination_is_all_a_build_reaches() {
    let (granted, by_name) = (granted_server().await, granted_server().await);
    let app = TestApp::spawn_with_worker_and(|config| {
        // A name whose answer is the host's loopback grants nothing: only
        // 127.0.0.1 written as such does.
        config.sandbox_destinations = format!("127.0.0.1:{granted}, localhost:{by_name}");
    })
    .await;
    // A public address is refused inside the sandbox: no packet leaves it;
    // nor does DNS, without egress.
    let targets: Vec<(String, u16)> = vec![
        ("host.pipewright.internal".into(), granted),
        ("1.1.1.1".into(), 443),
        ("10.0.2.2".into(), 5432),
        ("10.0.2.2".into(), by_name),
        ("10.0.2.3".into(), 53),
    ];
    let log = probe_log(&app, &reach_probes(&targets)).await;
    assert!(log.contains(&format!("host.pipewright.internal:{granted} reached: granted")), "{log}");
    for refused in
        ["1.1.1.1:443".to_owned(), "10.0.2.2:5432".to_owned(), format!("10.0.2.2:{by_name}"), "10.0.2.3:53".to_owned()]
    {
        assert!(log.contains(&format!("{refused} errno 113")), "{refused} was not refused:\n{log}");
    }
}
