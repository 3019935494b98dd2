//! The action providers a runner runs: Source/Git, Source/Upload, and Shell
//! (for Build, Test and Deploy). Each gets a fresh workspace with its input
//! artifacts, writes its output to the action's log, and hands back its
//! output artifacts and variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pipewright_core::artifacts::{self, Store};
use pipewright_core::executions::store::{ArtifactLocation, Claim, Outcome, SourceRevision};
use tokio_util::sync::CancellationToken;

use crate::{Settings, sandbox};

/// The default time an action may run, as CodePipeline's.
const DEFAULT_TIMEOUT_MINUTES: u64 = 60;
/// The output variables file, in the sandbox's scratch folder.
const VARIABLES_FILE: &str = "variables";
/// The most bytes of output variables an action may write.
const MAX_VARIABLES_BYTES: u64 = 1024 * 1024;

fn failed(code: &str, message: impl Into<String>) -> Outcome {
    Outcome { error_code: Some(code.to_owned()), error_message: Some(message.into()), ..Outcome::default() }
}

/// Where an action's log is kept.
pub fn log_path(logs: &Path, action_execution_id: uuid::Uuid) -> PathBuf {
    logs.join(format!("{action_execution_id}.log"))
}

/// Runs the claimed action; `None` when `stop` interrupted it.
pub async fn run(
    claim: &Claim,
    settings: &Settings,
    db: &pipewright_core::db::Db,
    stop: CancellationToken,
) -> Option<Outcome> {
    let action = &claim.action;
    let declared = claim.declared();
    let Some(declared) = declared else {
        return Some(failed("ActionNotFound", "the action is no longer in the pipeline version it ran with"));
    };
    let held = match settings.workspaces.take().await {
        Ok(held) => held,
        Err(e) => return Some(failed("WorkspaceFailed", format!("the workspace could not be made: {e}"))),
    };
    let workspace = held.path().to_path_buf();
    let log = log_path(&settings.logs(), action.action_execution_id);
    let id = &declared.action_type_id;
    let outcome = match (id.category.as_str(), id.provider.as_str()) {
        ("Source", "Git") => git(claim, settings, &workspace, &log, stop).await,
        ("Source", "Upload") => Some(upload(claim, declared)),
        (_, "Shell") => shell(claim, settings, db, &workspace, &log, stop).await,
        ("Invoke", "HTTP") => invoke(claim, settings, db, &log).await,
        _ => Some(failed("UnknownProvider", format!("no runner runs {id}"))),
    };
    drop(held);
    outcome
}

async fn append_log(log: &Path, text: &str) {
    let (log, text) = (log.to_path_buf(), text.to_owned());
    let _ = tokio::task::spawn_blocking(move || append_log_now(&log, &text, false)).await;
}

/// The first line of an action's log (see [`append_log_now`]).
async fn start_log(log: &Path, text: &str) {
    let (log, text) = (log.to_path_buf(), text.to_owned());
    let _ = tokio::task::spawn_blocking(move || append_log_now(&log, &text, true)).await;
}

/// Appends to the log, on this thread: for the blocking pool, with whatever
/// else a step does to files, in one trip (each trip costs two thread
/// switches). The first line of an action's log (`first`) makes the logs'
/// folder if it is missing; a later one does not, so that a log whose
/// folder was removed while it ran is not kept as its last line alone.
fn append_log_now(log: &Path, text: &str, first: bool) {
    use std::io::Write;
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(log);
    let file = open().or_else(|e| {
        let folder = log.parent().filter(|_| first && e.kind() == std::io::ErrorKind::NotFound).ok_or(e)?;
        std::fs::create_dir_all(folder)?;
        open()
    });
    if let Ok(mut file) = file {
        let _ = file.write_all(text.as_bytes());
    }
}

/// The last lines of the log, for an error message.
async fn tail(log: &Path, lines: usize) -> String {
    let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.starts_with("[pipewright]")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command with its output appended to the log, until it exits, the
/// timeout passes, or `stop`. The whole process group is ended on timeout.
async fn run_logged(
    mut command: tokio::process::Command,
    log: &Path,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<Option<std::process::ExitStatus>, String> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stdout(Stdio::from(file)).stderr(Stdio::from(err)).kill_on_drop(true);
    command.process_group(0);
    let mut child = command.spawn().map_err(|e| format!("the command could not start: {e}"))?;
    // The commands' process group (the shell leads it): what they started
    // in the background ends with them.
    let group = child.id().and_then(|pid| rustix::process::Pid::from_raw(i32::try_from(pid).ok()?));
    let kill_group = async || {
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    };
    tokio::select! {
        status = child.wait() => {
            // What they left running in the background would outlive the
            // action, in a workspace the next action gets.
            kill_group().await;
            status.map(Some).map_err(|e| e.to_string())
        }
        () = tokio::time::sleep(timeout) => {
            kill_group().await;
            let _ = child.wait().await;
            Err(format!("timed out after {} minutes", timeout.as_secs() / 60))
        }
        () = stop.cancelled() => {
            kill_group().await;
            let _ = child.wait().await;
            Ok(None)
        }
    }
}

fn env_name(artifact: &str) -> String {
    artifact.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

fn timeout_of(claim: &Claim, configured: Option<&String>) -> Duration {
    let declared = claim.declared().and_then(|a| a.timeout_in_minutes).and_then(|m| u64::try_from(m).ok());
    let minutes = configured.and_then(|v| v.parse::<u64>().ok()).or(declared).unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    Duration::from_secs(minutes.max(1) * 60)
}

/// A property of named values (a shell's `environmentVariables`, an HTTP
/// call's `headers`) and the values a log masks: plain values as given, and
/// each `SECRETS_MANAGER` value's secret, read now under the action's (or
/// else the pipeline's) role.
async fn declared_values(
    claim: &Claim,
    settings: &Settings,
    db: &pipewright_core::db::Db,
    property: &str,
) -> Result<(BTreeMap<String, String>, Vec<String>), Outcome> {
    use pipewright_core::pipelines::environment::{self, VariableType};
    use secrecy::ExposeSecret;
    let (mut given, mut masked) = (BTreeMap::new(), Vec::new());
    let Some(text) = claim.configuration.get(property) else { return Ok((given, masked)) };
    let parsed = if property == "headers" { environment::parse_headers(text) } else { environment::parse(text) };
    let variables = parsed.map_err(|why| failed("ConfigurationInvalid", format!("{property}: {why}")))?;
    let role = claim.declared().and_then(|a| a.role_arn.clone()).or_else(|| claim.declaration.role_arn.clone());
    for variable in variables {
        if variable.kind == VariableType::Plaintext {
            given.insert(variable.name, variable.value);
            continue;
        }
        let Some(role) = &role else {
            return Err(failed(
                "SecretAccessDenied",
                format!("{} names a secret, but neither the action nor the pipeline has a roleArn", variable.name),
            ));
        };
        let mut conn = db.conn().await.map_err(|e| failed("SecretUnavailable", format!("{}: {e}", variable.name)))?;
        let account = &claim.execution.account_id;
        let wanted = pipewright_core::secrets::Wanted {
            region: &settings.region,
            account,
            role_arn: role,
            named: &variable.value,
        };
        let read = pipewright_core::secrets::for_action(&mut conn, &settings.secrets, &wanted).await;
        match read {
            Ok(value) => {
                masked.push(value.expose_secret().to_owned());
                given.insert(variable.name, value.expose_secret().to_owned());
            }
            Err(pipewright_core::secrets::Refused::Denied(why)) => {
                return Err(failed("SecretAccessDenied", format!("{}: {why}", variable.name)));
            }
            Err(pipewright_core::secrets::Refused::NotFound(why)) => {
                return Err(failed("SecretNotFound", format!("{}: {why}", variable.name)));
            }
            Err(pipewright_core::secrets::Refused::Database(e)) => {
                return Err(failed("SecretUnavailable", format!("{}: {e}", variable.name)));
            }
        }
    }
    Ok((given, masked))
}

async fn shell(
    claim: &Claim,
    settings: &Settings,
    db: &pipewright_core::db::Db,
    workspace: &Path,
    log: &Path,
    stop: CancellationToken,
) -> Option<Outcome> {
    let store = &settings.artifacts;
    let action = &claim.action;
    if let Some(why) = settings.sandbox.unavailable() {
        start_log(log, &format!("[pipewright] Shell actions are refused: {why}\n")).await;
        return Some(failed("SandboxUnavailable", format!("Shell actions are refused: {why}")));
    }
    let inputs: Vec<ArtifactLocation> = serde_json::from_value(action.input_artifacts.clone()).unwrap_or_default();
    let (given, masked) = match declared_values(claim, settings, db, "environmentVariables").await {
        Ok(declared) => declared,
        Err(outcome) => {
            let why = outcome.error_message.clone().unwrap_or_default();
            start_log(log, &format!("[pipewright] {why}\n")).await;
            return Some(outcome);
        }
    };
    let mut environment = sandbox::base_environment();
    // The action's own variables come first, so that none can replace a PW_ one.
    environment.extend(given);
    // The values of the variables the commands reference (never pasted in).
    environment.extend(claim.references.clone());
    for (i, input) in inputs.iter().enumerate() {
        let (target, inside) = if i == 0 {
            (workspace.to_path_buf(), sandbox::WORKSPACE.to_owned())
        } else {
            (workspace.join(&input.name), format!("{}/{}", sandbox::WORKSPACE, input.name))
        };
        // A later input goes in a folder of its own, never where a link
        // the first one held would take it.
        if i > 0 && std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
            return Some(failed(
                "ArtifactUnavailable",
                format!(
                    "input artifact {} cannot be unpacked: the first input holds {} at its place",
                    input.name, input.name
                ),
            ));
        }
        let unpacked = match store.local(&input.sha256).await {
            Ok(path) => tokio::task::spawn_blocking(move || artifacts::unpack(&path, &target))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r),
            Err(e) => Err(e),
        };
        if let Err(e) = unpacked {
            return Some(failed(
                "ArtifactUnavailable",
                format!("input artifact {} could not be read: {e}", input.name),
            ));
        }
        environment.insert(format!("PW_INPUT_{}", env_name(&input.name)), inside);
    }
    let scratch = workspace.with_extension("pw");
    let revision: Vec<SourceRevision> =
        serde_json::from_value(claim.execution.source_revisions.clone()).unwrap_or_default();
    environment.insert("PW_EXECUTION_ID".to_owned(), claim.execution.execution_id.to_string());
    environment.insert("PW_PIPELINE_NAME".to_owned(), claim.execution.pipeline_name.clone());
    environment.insert("PW_STAGE_NAME".to_owned(), action.stage_name.clone());
    environment.insert("PW_ACTION_NAME".to_owned(), action.action_name.clone());
    environment
        .insert("PW_REVISION_ID".to_owned(), revision.first().map(|r| r.revision_id.clone()).unwrap_or_default());
    environment.insert("PW_WORKSPACE".to_owned(), sandbox::WORKSPACE.to_owned());
    environment.insert("PW_OUTPUT_VARIABLES".to_owned(), format!("{}/{VARIABLES_FILE}", sandbox::SCRATCH));
    let commands = claim.configuration.get("commands").cloned().unwrap_or_default();
    let header = format!("[pipewright] attempt {}: running the commands in a sandbox\n", action.job_attempt);
    let (begun_log, begun_scratch) = (log.to_path_buf(), scratch.clone());
    let prepared = tokio::task::spawn_blocking(move || {
        // Nothing from an earlier action in this slot.
        let _ = std::fs::remove_dir_all(&begun_scratch);
        append_log_now(&begun_log, &header, true);
        std::fs::create_dir_all(&begun_scratch)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    if let Err(e) = prepared {
        return Some(failed("WorkspaceFailed", format!("the workspace could not be made: {e}")));
    }
    let job = sandbox::Job {
        workspace,
        scratch: &scratch,
        commands: &commands,
        environment: &environment,
        masked: &masked,
        timeout: timeout_of(claim, claim.configuration.get("timeoutInMinutes")),
    };
    let ended = settings.sandbox.run(job, log, &stop).await;
    let status = match ended {
        sandbox::Ended::Exited(status) => status,
        sandbox::Ended::Stopped => return None,
        sandbox::Ended::Failed { code, message } => {
            append_log(log, &format!("[pipewright] {message}\n")).await;
            return Some(failed(code, message));
        }
    };
    if !status.success() {
        let code = status.code().map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        append_log(log, &format!("[pipewright] the commands exited with {code}\n")).await;
        let tail = tail(log, 5).await;
        if let Some((code, why)) = settings.sandbox.limits().explain(status, &tail) {
            append_log(log, &format!("[pipewright] {why}\n")).await;
            return Some(failed(code, format!("{why}; the log ends:\n{tail}")));
        }
        return Some(failed("JobFailed", format!("the commands exited with {code}; the log ends:\n{tail}")));
    }
    // Output variables, NAME=value a line, from a regular file (never
    // through a link the commands left in its place).
    let written = tokio::task::spawn_blocking(move || {
        let file = scratch.join(VARIABLES_FILE);
        let text = std::fs::symlink_metadata(&file)
            .ok()
            .filter(|m| m.is_file() && m.len() <= MAX_VARIABLES_BYTES)
            .and_then(|_| std::fs::read_to_string(&file).ok());
        let _ = std::fs::remove_dir_all(&scratch);
        text
    })
    .await
    .ok()
    .flatten();
    let mut variables = BTreeMap::new();
    for line in written.as_deref().unwrap_or_default().lines() {
        if let Some((name, value)) = line.split_once('=')
            && !name.trim().is_empty()
        {
            // A secret never leaves as a variable (the state, the next
            // actions and ListActionExecutions would show it).
            let value = masked.iter().filter(|m| !m.is_empty()).fold(value.to_owned(), |v, m| v.replace(m, "***"));
            variables.insert(name.trim().to_owned(), value);
        }
    }
    let declared = claim.declared();
    let globs: Vec<String> = claim
        .configuration
        .get("outputFiles")
        .map(|v| v.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut outputs = Vec::new();
    for (i, output) in declared.map(|d| d.output_artifacts.clone()).unwrap_or_default().iter().enumerate() {
        // The first output is the workspace (by outputFiles); the others are
        // the folders named after them.
        let (dir, globs) =
            if i == 0 { (workspace.to_path_buf(), globs.clone()) } else { (workspace.join(&output.name), Vec::new()) };
        match pack_and_store(store, &output.name, &dir, globs, workspace).await {
            Ok(location) => outputs.push(location),
            Err(e) => {
                return Some(failed(
                    "ArtifactFailed",
                    format!("output artifact {} could not be stored: {e}", output.name),
                ));
            }
        }
    }
    append_log(log, "[pipewright] succeeded\n").await;
    Some(Outcome {
        succeeded: true,
        summary: Some("the commands succeeded".to_owned()),
        outputs,
        variables,
        ..Outcome::default()
    })
}

async fn pack_and_store(
    store: &Store,
    name: &str,
    dir: &Path,
    globs: Vec<String>,
    workspace: &Path,
) -> Result<ArtifactLocation, String> {
    let archive = workspace.with_extension(format!("{name}.tar"));
    let (dir, archive_path) = (dir.to_path_buf(), archive.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
        // A missing output folder is an empty output; a link in its place
        // is refused by `pack`, never followed.
        if std::fs::symlink_metadata(&dir).is_err() {
            std::fs::create_dir_all(&dir)?;
        }
        artifacts::pack(&dir, &globs, &archive_path)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let stored = store.put(name, &archive).await.map_err(|e| e.to_string());
    let _ = tokio::fs::remove_file(&archive).await;
    stored
}

async fn git_output(workspace: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("git").arg("-C").arg(workspace).args(args).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn git(
    claim: &Claim,
    settings: &Settings,
    workspace: &Path,
    log: &Path,
    stop: CancellationToken,
) -> Option<Outcome> {
    let action = &claim.action;
    let Some(url) = claim.configuration.get("repositoryUrl").cloned() else {
        return Some(failed("ConfigurationMissing", "repositoryUrl is not set"));
    };
    let configured = claim.configuration.get("branch").cloned().unwrap_or_else(|| "main".to_owned());
    // The revision the execution was started with: a commit, and the ref a
    // change brought it on (a branch of a trigger, a tag, a pull request).
    let chosen: Option<SourceRevision> =
        serde_json::from_value::<Vec<SourceRevision>>(claim.execution.source_revisions.clone())
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.action_name == action.action_name);
    let reference =
        chosen.as_ref().and_then(|r| r.reference.clone()).unwrap_or_else(|| format!("refs/heads/{configured}"));
    let branch = chosen
        .as_ref()
        .and_then(|r| r.branch.clone())
        .or_else(|| reference.strip_prefix("refs/heads/").map(str::to_owned))
        .unwrap_or_default();
    let pinned = chosen.map(|r| r.revision_id);
    let shown = pipewright_core::pipelines::sources::shown(&url);
    start_log(log, &format!("[pipewright] fetching {reference} of {shown}\n")).await;
    if let Err(why) = pipewright_core::pipelines::sources::check_reference(&reference) {
        append_log(log, &format!("[pipewright] refused: {why}\n")).await;
        return Some(failed("SourceRefused", why));
    }
    // Checked again here: the rules, or what a host name resolves to, may
    // have changed since the pipeline was saved.
    let reach = match settings.sources.check(&url, &configured).await {
        Ok(reach) => reach,
        Err(why) => {
            append_log(log, &format!("[pipewright] refused: {why}\n")).await;
            return Some(failed("SourceRefused", why));
        }
    };
    let _ = tokio::fs::remove_dir_all(workspace).await;
    if let Err(e) = tokio::fs::create_dir_all(workspace).await {
        return Some(failed("SourceUnavailable", format!("the workspace could not be made: {e}")));
    }
    if git_output(workspace, &["init", "--quiet"]).await.is_none() {
        return Some(failed("SourceUnavailable", "the workspace could not be made a repository"));
    }
    let mut command = git_command(claim.configuration.get("token").map(String::as_str), &reach);
    let url = reach.url.clone().unwrap_or(url);
    command.arg("-C").arg(workspace).args([
        "fetch",
        "--quiet",
        "--no-tags",
        "--",
        &url,
        &format!("+{reference}:refs/pipewright/source"),
    ]);
    match run_logged(command, log, timeout_of(claim, None), &stop).await {
        Ok(Some(status)) if status.success() => {}
        Ok(Some(_)) => {
            return Some(failed(
                "SourceUnavailable",
                format!("{reference} of {shown} could not be fetched; the log ends:\n{}", tail(log, 3).await),
            ));
        }
        Ok(None) => return None,
        Err(e) => return Some(failed("SourceUnavailable", format!("fetching {shown} {e}"))),
    }
    // A commit id only (the API and the poller check it too): nothing `git`
    // could read as an option or a path; by default the ref's head.
    let wanted = pinned.unwrap_or_else(|| "refs/pipewright/source".to_owned());
    if wanted != "refs/pipewright/source" && (wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit())) {
        return Some(failed("RevisionNotFound", format!("{wanted:?} is not a commit id")));
    }
    // A commit of the ref's history, by its full id: never a file of the
    // same name (`git checkout NAME` restores a file and succeeds).
    let full = git_output(workspace, &["rev-parse", "--verify", "--quiet", &format!("{wanted}^{{commit}}")])
        .await
        .filter(|id| !id.is_empty());
    let checkout = match &full {
        Some(id) => {
            tokio::process::Command::new("git")
                .arg("-C")
                .arg(workspace)
                .args(["checkout", "--quiet", "--detach", id, "--"])
                .status()
                .await
        }
        None => Err(std::io::Error::other("no such commit")),
    };
    if !checkout.is_ok_and(|s| s.success()) {
        return Some(failed("RevisionNotFound", format!("commit {wanted} is not on {reference} of {shown}")));
    }
    let commit = git_output(workspace, &["rev-parse", "HEAD"]).await.unwrap_or_default();
    let message = git_output(workspace, &["log", "-1", "--format=%B"]).await.unwrap_or_default();
    let author_date = git_output(workspace, &["log", "-1", "--format=%aI"]).await.unwrap_or_default();
    let store = &settings.artifacts;
    let declared = claim.declared();
    let mut outputs = Vec::new();
    if let Some(output) = declared.and_then(|d| d.output_artifacts.first()) {
        match pack_and_store(store, &output.name, workspace, Vec::new(), &workspace.with_extension("git")).await {
            Ok(location) => outputs.push(location),
            Err(e) => return Some(failed("ArtifactFailed", format!("the source could not be stored: {e}"))),
        }
    }
    append_log(log, &format!("[pipewright] commit {commit}: {}\n", message.lines().next().unwrap_or_default())).await;
    let variables = BTreeMap::from([
        ("CommitId".to_owned(), commit.clone()),
        ("CommitMessage".to_owned(), message.clone()),
        ("BranchName".to_owned(), branch.clone()),
        ("AuthorDate".to_owned(), author_date),
        ("RepositoryUrl".to_owned(), shown),
    ]);
    Some(Outcome {
        succeeded: true,
        summary: Some(message.lines().next().unwrap_or_default().to_owned()),
        outputs,
        variables,
        revision: Some(SourceRevision {
            action_name: action.action_name.clone(),
            revision_id: commit,
            revision_summary: Some(message),
            reference: Some(reference),
            branch: Some(branch).filter(|b| !b.is_empty()),
            ..SourceRevision::default()
        }),
        ..Outcome::default()
    })
}

/// How much of an answer's body the log and the error show.
const ANSWER_SHOWN: usize = 4096;

/// Invoke/HTTP: calls the URL (checked as every address a tenant names,
/// the connection pinned to the address checked, no redirects), with the
/// headers (secrets read under the role) and the body; succeeds on a 2xx,
/// or with `waitForCallback` then waits for a callback signed with the
/// secret the request carries (`X-Pipewright-Callback-Secret`).
async fn invoke(claim: &Claim, settings: &Settings, db: &pipewright_core::db::Db, log: &Path) -> Option<Outcome> {
    let config = &claim.configuration;
    let Some(url) = config.get("url") else { return Some(failed("ConfigurationMissing", "url is not set")) };
    let method = config.get("method").map_or("POST", String::as_str);
    let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
        return Some(failed("ConfigurationInvalid", format!("{method:?} is not an HTTP method")));
    };
    let wait = config.get("waitForCallback").is_some_and(|v| v == "true");
    let reach = match settings.sources.check_http(url).await {
        Ok(reach) => reach,
        Err(why) => {
            start_log(log, &format!("[pipewright] refused: {why}\n")).await;
            return Some(failed("InvokeRefused", why));
        }
    };
    // The log names the host and path, never a query (it may hold a key).
    let shown = format!("{}://{}{}", reach.url.scheme(), reach.url.host_str().unwrap_or_default(), reach.url.path());
    start_log(log, &format!("[pipewright] {method} {shown}\n")).await;
    let (headers, mut masked) = match declared_values(claim, settings, db, "headers").await {
        Ok(found) => found,
        Err(outcome) => return Some(outcome),
    };
    let client = match reach.client(Duration::from_secs(30)) {
        Ok(client) => client,
        Err(e) => return Some(failed("InvokeFailed", e)),
    };
    let id = claim.action.action_execution_id;
    let mut request = client
        .request(method.clone(), reach.url.clone())
        .header("user-agent", "Pipewright-Invoke/1")
        .header("x-pipewright-action-execution-id", id.to_string())
        .header("x-pipewright-pipeline-execution-id", claim.execution.execution_id.to_string());
    for (name, value) in &headers {
        let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(value).is_ok();
        if !valid {
            return Some(failed(
                "ConfigurationInvalid",
                format!("headers: {name}: its value (a secret's?) holds a line break or a control character"),
            ));
        }
        request = request.header(name, value);
    }
    // The callback's deadline: 1 minute to 7 days (60 by default).
    let minutes = config.get("timeoutInMinutes").and_then(|m| m.parse::<i64>().ok()).unwrap_or(60).clamp(1, 10_080);
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(minutes);
    if wait {
        let secret = match db.conn().await {
            Ok(mut conn) => {
                pipewright_core::executions::store::callback_secret(&mut conn, id, claim.action.job_attempt, deadline)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let secret = match secret {
            Ok(Some(secret)) => secret,
            // Another attempt holds the action now.
            Ok(None) => return None,
            Err(e) => return Some(failed("InvokeFailed", format!("the callback could not be prepared: {e}"))),
        };
        masked.push(secret.to_string());
        request = request
            .header("x-pipewright-callback-url", format!("{}/v1/callbacks/{id}", settings.public_url))
            .header("x-pipewright-callback-secret", secret.to_string());
    }
    if let Some(body) = config.get("body") {
        request = request.body(body.clone());
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            let e = e.without_url();
            append_log(log, &format!("[pipewright] no answer: {e}\n")).await;
            return Some(failed("InvokeFailed", format!("{method} {shown}: no answer ({e})")));
        }
    };
    let status = answer.status();
    // The answer's start only (a service may stream without end), the
    // secrets the request carried masked (a service may echo them).
    let mut answer = answer;
    let mut start = Vec::new();
    while start.len() < ANSWER_SHOWN {
        match answer.chunk().await {
            Ok(Some(chunk)) => start.extend_from_slice(&chunk),
            _ => break,
        }
    }
    start.truncate(ANSWER_SHOWN);
    let mut text = String::from_utf8_lossy(&start).into_owned();
    for secret in masked.iter().filter(|m| !m.is_empty()) {
        text = text.replace(secret.as_str(), pipewright_core::pipelines::MASK);
    }
    append_log(log, &format!("[pipewright] answered {status}\n{text}\n")).await;
    if !status.is_success() {
        let start: String = text.chars().take(500).collect();
        return Some(failed("InvokeFailed", format!("{method} {shown} answered {status}: {start}")));
    }
    let variables = BTreeMap::from([("StatusCode".to_owned(), status.as_u16().to_string())]);
    if wait {
        append_log(log, "[pipewright] waiting for the callback\n").await;
        return Some(Outcome { waits_until: Some(deadline), variables, ..Outcome::default() });
    }
    Some(Outcome {
        succeeded: true,
        summary: Some(format!("{method} {shown} answered {status}")),
        variables,
        ..Outcome::default()
    })
}

/// An uploaded archive (PutSourceRevision) is the source's output.
fn upload(claim: &Claim, declared: &pipewright_core::pipelines::ActionDeclaration) -> Outcome {
    pipewright_core::executions::store::upload_outcome(&claim.execution, declared)
}

/// git, for a fetch the control plane makes for a tenant: no prompts, no
/// system configuration, only the transports a source may use, no
/// redirects (to an address the source's check never saw); the token by
/// the environment, not the command line (which others can read).
fn git_command(token: Option<&str>, reach: &pipewright_core::pipelines::sources::Reach) -> tokio::process::Command {
    let mut ssh = "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none".to_owned();
    // (ssh's command is read by a shell: only a plain host name goes in.)
    if let Some(alias) =
        reach.host_key_alias.as_ref().filter(|a| a.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)))
    {
        ssh.push_str(&format!(" -o HostKeyAlias={alias}"));
    }
    let mut command = tokio::process::Command::new("git");
    // None of the worker's own environment, configuration or credentials:
    // no ~/.gitconfig, credential helpers, ssh keys or agent, proxies.
    let home = std::env::temp_dir().join("pipewright-git-home");
    let _ = std::fs::create_dir_all(&home);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_SSH_COMMAND", ssh)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
        .env("GIT_PROTOCOL_FROM_USER", "0");
    let mut settings = vec![("http.followRedirects", "false".to_owned())];
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        settings.push(("http.extraHeader", format!("Authorization: Bearer {token}")));
    }
    if let Some(pin) = &reach.curl_resolve {
        settings.push(("http.curloptResolve", pin.clone()));
    }
    command.env("GIT_CONFIG_COUNT", settings.len().to_string());
    for (i, (key, value)) in settings.into_iter().enumerate() {
        command.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    command
}

/// At most this many refs of a repository are looked at.
const MAX_REFS: usize = 5000;

/// The refs of a repository that `patterns` name (`refs/heads/main`,
/// `refs/heads/*`, `refs/tags/*`), each with its commit (a tag's peeled
/// commit), if they can be read (and the source may name the repository).
pub async fn refs_of(
    sources: &pipewright_core::pipelines::sources::SourcePolicy,
    url: &str,
    branch: &str,
    token: Option<&str>,
    patterns: &[String],
) -> Option<Vec<(String, String)>> {
    use pipewright_core::pipelines::sources::{check_reference, shown};
    let reach = match sources.check(url, branch).await {
        Ok(reach) => reach,
        Err(why) => {
            tracing::warn!(url = %shown(url), %branch, "a Git source is not polled: {why}");
            return None;
        }
    };
    let mut command = git_command(token, &reach);
    let url = reach.url.as_deref().unwrap_or(url);
    command.args(["ls-remote", "--", url]).args(patterns);
    let output = tokio::time::timeout(Duration::from_secs(30), command.kill_on_drop(true).output()).await.ok()?.ok()?;
    if !output.status.success() {
        return None;
    }
    let named = |reference: &str| {
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => reference.starts_with(prefix),
            None => reference == p,
        })
    };
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((commit, reference)) = line.split_once('\t') else { continue };
        if commit.len() < 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        // An annotated tag's line, then its peeled commit's (`^{}`).
        let (reference, peeled) = match reference.strip_suffix("^{}") {
            Some(tag) => (tag, true),
            None => (reference, false),
        };
        if !named(reference) || check_reference(reference).is_err() {
            continue;
        }
        if peeled || !found.contains_key(reference) {
            found.insert(reference.to_owned(), commit.to_ascii_lowercase());
        }
        if found.len() > MAX_REFS {
            tracing::warn!(url = %shown(url), "a Git source has more than {MAX_REFS} refs; the rest are not looked at");
            break;
        }
    }
    Some(found.into_iter().collect())
}

/// The lock of a copy of a repository.
fn mirror_lock(mirror: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    type Locks = std::sync::Mutex<BTreeMap<PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>>;
    static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    locks.entry(mirror.to_path_buf()).or_default().clone()
}

/// The files a change touched, read from a copy of the repository the
/// worker keeps per source (fetched again each time): since `before` when
/// that commit is known; else since where `commit` left `base_branch` (a
/// new branch, a pull request); else the commit's own.
#[allow(clippy::too_many_arguments)]
pub async fn touched_files(
    settings: &Settings,
    mirror: &Path,
    url: &str,
    base_branch: &str,
    token: Option<&str>,
    reference: &str,
    before: Option<&str>,
    commit: &str,
) -> Result<Vec<String>, String> {
    use pipewright_core::pipelines::sources::{check_reference, shown};
    check_reference(reference)?;
    if !commit.chars().all(|c| c.is_ascii_hexdigit())
        || before.is_some_and(|b| !b.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err("a commit id is hexadecimal".to_owned());
    }
    let base = format!("refs/heads/{base_branch}");
    check_reference(&base)?;
    let reach = settings.sources.check(url, base_branch).await?;
    // One fetch into a copy at a time in this process (git's ref locks
    // would fail the second).
    let lock = mirror_lock(mirror);
    let _held = lock.lock().await;
    if !mirror.join("HEAD").exists() {
        tokio::fs::create_dir_all(mirror).await.map_err(|e| e.to_string())?;
        let made = git_command(None, &Default::default())
            .arg("-C")
            .arg(mirror)
            .args(["init", "--quiet", "--bare"])
            .status()
            .await;
        if !made.is_ok_and(|s| s.success()) {
            return Err("a copy of the repository could not be made".to_owned());
        }
    }
    let mut fetch = git_command(token, &reach);
    let fetched_url = reach.url.as_deref().unwrap_or(url);
    fetch.arg("-C").arg(mirror).args(["fetch", "--quiet", "--no-tags", "--", fetched_url]);
    fetch.arg(format!("+{reference}:{reference}"));
    if base != reference {
        fetch.arg(format!("+{base}:{base}"));
    }
    let fetched = tokio::time::timeout(Duration::from_secs(120), fetch.kill_on_drop(true).output())
        .await
        .map_err(|_| format!("fetching {} took too long", shown(url)))?
        .map_err(|e| e.to_string())?;
    if !fetched.status.success() {
        // (The base branch may not exist: fetch the change's ref alone.)
        let mut alone = git_command(token, &reach);
        alone.arg("-C").arg(mirror).args(["fetch", "--quiet", "--no-tags", "--", fetched_url]);
        alone.arg(format!("+{reference}:{reference}"));
        let again = tokio::time::timeout(Duration::from_secs(120), alone.kill_on_drop(true).status()).await;
        if !again.is_ok_and(|s| s.is_ok_and(|s| s.success())) {
            return Err(format!("{reference} of {} could not be fetched", shown(url)));
        }
    }
    // Local reads of the copy, each bounded in time and in what it prints.
    let local = async |args: &[&str]| -> Option<Vec<u8>> {
        let mut command = git_command(None, &Default::default());
        command.arg("-C").arg(mirror).args(args).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), command.output()).await.ok()?.ok()?;
        (out.status.success() && out.stdout.len() <= MAX_LISTING).then_some(out.stdout)
    };
    let is_commit = async |id: &str| local(&["cat-file", "-e", &format!("{id}^{{commit}}")]).await.is_some();
    let since = match before {
        Some(before) if is_commit(before).await => Some(before.to_owned()),
        _ => local(&["merge-base", &base, commit])
            .await
            .map(|out| String::from_utf8_lossy(&out).trim().to_owned())
            // (On the source's own branch the merge base is the commit
            // itself, which says nothing of what it changed.)
            .filter(|id| !id.is_empty() && id != commit),
    };
    let listing = match &since {
        Some(since) => local(&["diff", "--name-only", "--no-renames", "-z", since, commit, "--"]).await,
        None => {
            local(&["diff-tree", "--root", "--no-commit-id", "--name-only", "--no-renames", "-r", "-z", commit, "--"])
                .await
        }
    }
    .ok_or_else(|| format!("the files of commit {commit} could not be read (or are too many)"))?;
    Ok(listing.split(|b| *b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into_owned()).collect())
}

/// The largest list of changed files read (bytes): beyond it, a change's
/// files are not read and no file-path filter matches it.
const MAX_LISTING: usize = 16 * 1024 * 1024;
