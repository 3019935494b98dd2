//! The sandbox every process of an action runs in (decision 012): bubblewrap
//! (`bwrap`, from Debian's packages) run as an unprivileged user, with its
//! own user, PID, mount, IPC, UTS, cgroup and network namespaces. Inside are
//! the workspace (read-write, at `/workspace`), a private `/tmp`, the
//! system's tools read-only (`/usr` and the top-level links into it), a few
//! harmless files of `/etc`, and whatever folders the operator granted;
//! nothing else of the host. The environment is only what the action gives.
//!
//! Limits: processes, CPU seconds and file size by rlimits (set by the
//! sandbox's shell, `ulimit`, before the commands, in the same process:
//! an exec less per action); memory by an rlimit per process and a
//! watch of what the processes hold together; the workspace's size by a
//! watch, `/tmp` by its size; the log by the pump that writes it (which also
//! masks secrets). The sandbox dies with the runner: bubblewrap kills its
//! processes when the worker process dies (`--die-with-parent`), and the PID
//! namespace takes everything the commands started with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pipewright_core::config::{Config, GrantedFolder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub mod network;

/// Where the workspace is inside the sandbox.
pub const WORKSPACE: &str = "/workspace";
/// A folder of the runner's own inside the sandbox (the output variables file).
pub const SCRATCH: &str = "/pw";
/// The user id and name the commands see.
const INSIDE_UID: u32 = 1000;
const USER: &str = "builder";
/// The size of the sandbox's `/dev/shm`.
const SHM_BYTES: u64 = 64 * 1024 * 1024;
/// How many host user ids actions take turns at (from the first).
const UIDS: u32 = 4096;
/// How a missing sandbox tool is installed.
const INSTALL: &str = "install bubblewrap (Debian and Ubuntu: `apt-get install bubblewrap`; \
    `bash deploy/local-services.sh` does it) and start the worker again";

/// The limits of one action.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    pub processes: u64,
    pub cpu_secs: u64,
    pub log_bytes: u64,
    pub workspace_bytes: u64,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        let mib = 1024 * 1024;
        Self {
            memory_bytes: config.sandbox_memory_mb.saturating_mul(mib),
            processes: config.sandbox_processes,
            cpu_secs: config.sandbox_cpu_secs,
            log_bytes: config.sandbox_log_mb.saturating_mul(mib),
            workspace_bytes: config.sandbox_workspace_mb.saturating_mul(mib),
        }
    }
}

/// The sandbox of a worker process: its tool (or why there is none), its
/// limits and its grants.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    /// bubblewrap, or why actions cannot run.
    tool: Result<PathBuf, String>,
    limits: Limits,
    folders: Vec<GrantedFolder>,
    /// passwd, group, hosts and hostname for the sandbox's `/etc`.
    etc: PathBuf,
    /// Host user ids to run as, when the worker may switch user (root).
    uids: Option<Uids>,
    /// The network beyond the sandbox's loopback, when the operator gives one.
    network: Option<network::Network>,
    /// How the machine's `sh` sets the process limit (`ulimit -u` in bash,
    /// `-p` in dash).
    nproc_flag: &'static str,
}

struct Uids {
    first: u32,
    locks: PathBuf,
}

/// A host user id held for one action: no other action on this host runs
/// as it until this is dropped (an flock, which the kernel also lets go of
/// when the worker dies).
struct UidLease {
    uid: u32,
    _lock: std::fs::File,
}

/// What an action runs in its sandbox.
pub struct Job<'a> {
    /// The host folder mounted read-write at [`WORKSPACE`].
    pub workspace: &'a Path,
    /// The host folder mounted read-write at [`SCRATCH`].
    pub scratch: &'a Path,
    /// `sh -e -c` text.
    pub commands: &'a str,
    /// The whole environment of the commands.
    pub environment: &'a BTreeMap<String, String>,
    /// Values the log shows as `***`.
    pub masked: &'a [String],
    pub timeout: Duration,
}

/// How a sandboxed run ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    /// `stop` was cancelled.
    Stopped,
    /// It could not start, or was ended by a limit: an error code of the
    /// action's result and a message that says which and what to change.
    Failed {
        code: &'static str,
        message: String,
    },
}

fn failed(code: &'static str, message: impl Into<String>) -> Ended {
    Ended::Failed { code, message: message.into() }
}

/// Why a run was ended early.
enum Limit {
    Log,
    Memory(u64),
    Workspace(u64),
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Sandbox {
    /// Finds bubblewrap and tries it once; when that fails, every run
    /// fails with the reason (never runs unsandboxed).
    pub fn new(config: &Config) -> Self {
        let etc = config.data_dir.join("sandbox").join("etc");
        let uids = is_root().then(|| Uids {
            first: config.sandbox_first_uid,
            locks: if Path::new("/run").is_dir() {
                PathBuf::from("/run/pipewright/sandbox-uids")
            } else {
                std::env::temp_dir().join("pipewright-sandbox-uids")
            },
        });
        let folders = config.granted_folders().unwrap_or_default();
        let network = network::Network::from_config(config, is_root());
        let mut inner = Inner {
            tool: Err(String::new()),
            limits: Limits::from_config(config),
            folders,
            etc,
            uids,
            network: None,
            nproc_flag: "-u",
        };
        inner.tool = match network {
            Ok(network) => {
                inner.network = network;
                inner.probe()
            }
            Err(why) => Err(why),
        };
        if inner.uids.is_none() {
            tracing::warn!(
                "the worker is not root: every action runs as its user (in namespaces of its own), so actions of \
                 different tenants share one process limit; run workers as root where tenants share them"
            );
        }
        match &inner.tool {
            Ok(tool) => tracing::info!(
                tool = %tool.display(),
                network = %if config.sandbox_has_network() {
                    format!(
                        "{}, and to {}",
                        match config.sandbox_network {
                            pipewright_core::config::SandboxNetwork::Egress =>
                                "egress to public addresses (never this host nor a private range)",
                            pipewright_core::config::SandboxNetwork::None => "no egress",
                        },
                        if config.sandbox_destinations.trim().is_empty() {
                            "no granted destination"
                        } else {
                            config.sandbox_destinations.as_str()
                        }
                    )
                } else {
                    "none (loopback of its own)".to_owned()
                },
                "actions run in a sandbox"
            ),
            Err(why) => tracing::error!("Shell actions are refused: {why}"),
        }
        Self { inner: Arc::new(inner) }
    }

    /// Why actions cannot run, if they cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.inner.tool.as_ref().err().map(String::as_str)
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Runs `job` in a sandbox; its output (masked) is appended to `log`.
    pub async fn run(&self, job: Job<'_>, log: &Path, stop: &CancellationToken) -> Ended {
        let inner = &self.inner;
        let tool = match &inner.tool {
            Ok(tool) => tool.clone(),
            Err(why) => return failed("SandboxUnavailable", format!("Shell actions are refused: {why}")),
        };
        let lease = match &inner.uids {
            Some(uids) => match uids.lease() {
                Ok(lease) => Some(lease),
                Err(e) => return failed("SandboxUnavailable", format!("no user id for the sandbox: {e}")),
            },
            None => None,
        };
        // With a network: what it lets through, the sandbox's hosts file,
        // and the FIFO its commands wait on (opened here, before anything
        // of the sandbox runs, and written through this descriptor only).
        let network = match &inner.network {
            Some(network) => {
                let plan = network.plan().await;
                match prepare_network(job.scratch, &plan) {
                    Ok(ready) => Some((network, plan, ready)),
                    Err(e) => {
                        return failed(
                            "SandboxUnavailable",
                            format!("the sandbox's network could not be prepared: {e}"),
                        );
                    }
                }
            }
            None => None,
        };
        if let Some(lease) = &lease {
            let (uid, owned) = (lease.uid, [job.workspace.to_path_buf(), job.scratch.to_path_buf()]);
            let chowned = tokio::task::spawn_blocking(move || owned.iter().try_for_each(|dir| chown_all(dir, uid)))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = chowned {
                return failed("SandboxUnavailable", format!("the workspace could not be handed to the sandbox: {e}"));
            }
        }
        let args = inner.arguments(job.workspace, job.scratch, job.commands, network.is_some());
        let (reader, writer) = match std::io::pipe() {
            Ok(pipe) => pipe,
            Err(e) => return failed("SandboxUnavailable", format!("the sandbox's output could not be read: {e}")),
        };
        // bwrap reads its arguments from its standard input (`--args 0`):
        // on its command line, which the sandbox's init shows in its
        // /proc/1/cmdline, they would tell the commands the host's paths.
        let (given, sent) = match std::io::pipe() {
            Ok(pipe) => pipe,
            Err(e) => {
                return failed("SandboxUnavailable", format!("the sandbox could not be given its arguments: {e}"));
            }
        };
        // The options go by the pipe; the command (after `--`) must be on
        // the command line, and names no host path.
        let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
        let (options, command_line) = (args[..split].to_vec(), args[split..].to_vec());
        let mut feed: Vec<u8> = Vec::new();
        for arg in &options {
            feed.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(arg.as_os_str()));
            feed.push(0);
        }
        // What fits in the empty pipe is written at once (never blocks);
        // more, by a thread while bwrap reads.
        let feed = if feed.len() <= 16 * 1024 {
            use std::io::Write;
            let mut sent = sent;
            let _ = sent.write_all(&feed);
            None
        } else {
            Some(std::thread::spawn(move || {
                use std::io::Write;
                let mut sent = sent;
                let _ = sent.write_all(&feed);
            }))
        };
        let on_line = [vec!["--args".into(), "0".into()], command_line].concat();
        let (program, args) = launch(&tool, lease.as_ref().map(|l| l.uid), on_line);
        let mut command = tokio::process::Command::new(program);
        // bwrap's own process is the host's: what its loader would act on
        // never reaches it (the declaration refuses those names too).
        let environment = job.environment.iter().filter(|(name, _)| {
            !pipewright_core::pipelines::environment::loader_sensitive(name)
                && !pipewright_core::pipelines::environment::shell_sensitive(name)
        });
        command.args(&args).env_clear().envs(environment).stdin(Stdio::from(given)).kill_on_drop(true);
        match writer.try_clone() {
            Ok(second) => command.stdout(second).stderr(writer),
            Err(e) => return failed("SandboxUnavailable", format!("the sandbox's output could not be read: {e}")),
        };
        let spawned = command.spawn();
        // (bwrap has read them all once it starts the commands.)
        drop(feed);
        // The pipe's writing ends are the sandbox's alone from here on, so
        // that the pump sees its end when the sandbox's processes are gone.
        drop(command);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return failed("SandboxUnavailable", format!("the sandbox could not start: {e}")),
        };
        let pid = child.id();
        // The commands wait (on `ready`) until their network is up.
        let _network = match (&network, pid, &lease) {
            (Some((network, plan, ready)), Some(pid), Some(lease)) => {
                match network.attach(pid, lease.uid, plan, ready).await {
                    Ok(attached) => Some(attached),
                    Err(e) => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        return failed("SandboxUnavailable", format!("the sandbox's network could not be set up: {e}"));
                    }
                }
            }
            (Some(_), _, _) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return failed("SandboxUnavailable", "the sandbox's network needs a worker running as root");
            }
            _ => None,
        };
        let over_log = CancellationToken::new();
        let pump = tokio::spawn(pump(
            reader,
            log.to_path_buf(),
            job.masked.to_vec(),
            inner.limits.log_bytes,
            over_log.clone(),
        ));
        let watch = watch(pid, job.workspace.to_path_buf(), inner.limits);
        tokio::pin!(watch);
        let ended = tokio::select! {
            status = child.wait() => match status {
                // The pump stopped reading at the log's limit, so the
                // commands may end by that (SIGPIPE) before it is noticed.
                Ok(_) if over_log.is_cancelled() => inner.limits.ended_by(&Limit::Log),
                Ok(status) => Ended::Exited(status),
                Err(e) => failed("JobFailed", format!("the sandbox could not be waited for: {e}")),
            },
            () = tokio::time::sleep(job.timeout) => failed(
                "ActionTimedOut",
                format!("the commands timed out after {} minutes (the action's timeoutInMinutes)", job.timeout.as_secs() / 60),
            ),
            () = stop.cancelled() => Ended::Stopped,
            () = over_log.cancelled() => inner.limits.ended_by(&Limit::Log),
            limit = &mut watch => inner.limits.ended_by(&limit),
        };
        // Killing bubblewrap kills the sandbox (its init dies with it, and
        // the PID namespace with its init).
        let _ = child.start_kill();
        let _ = child.wait().await;
        // Everything that could write to the pipe is gone; what it holds
        // is written, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
        drop(lease);
        ended
    }
}

impl Limits {
    fn ended_by(&self, limit: &Limit) -> Ended {
        let mib = |b: u64| b / (1024 * 1024);
        match limit {
            Limit::Log => failed(
                "LogLimitExceeded",
                format!(
                    "the commands wrote over {} MiB to the log, the most an action may (PIPEWRIGHT_SANDBOX_LOG_MB); the action was ended",
                    mib(self.log_bytes)
                ),
            ),
            Limit::Memory(held) => failed(
                "MemoryLimitExceeded",
                format!(
                    "the commands' processes held {} MiB of memory together, over the limit of {} MiB (PIPEWRIGHT_SANDBOX_MEMORY_MB); the action was ended",
                    mib(*held),
                    mib(self.memory_bytes)
                ),
            ),
            Limit::Workspace(size) => failed(
                "WorkspaceLimitExceeded",
                format!(
                    "the workspace grew to {} MiB, over the limit of {} MiB (PIPEWRIGHT_SANDBOX_WORKSPACE_MB); the action was ended",
                    mib(*size),
                    mib(self.workspace_bytes)
                ),
            ),
        }
    }

    /// What an exit status says of the limits the kernel enforces (rlimits),
    /// for the action's result; `None` when it says nothing of them.
    pub fn explain(&self, status: ExitStatus, log_tail: &str) -> Option<(&'static str, String)> {
        use std::os::unix::process::ExitStatusExt;
        // bubblewrap passes on the commands' status; a shell reports a
        // command killed by signal N as 128 + N.
        let signal = status.signal().or_else(|| status.code().filter(|c| *c > 128).map(|c| c - 128));
        let mib = |b: u64| b / (1024 * 1024);
        match signal {
            Some(24) => Some((
                "CpuLimitExceeded",
                format!(
                    "a process used over {} CPU seconds, the most one may (PIPEWRIGHT_SANDBOX_CPU_SECS)",
                    self.cpu_secs
                ),
            )),
            Some(25) => Some((
                "WorkspaceLimitExceeded",
                format!(
                    "a file grew over {} MiB, the workspace's limit (PIPEWRIGHT_SANDBOX_WORKSPACE_MB)",
                    mib(self.workspace_bytes)
                ),
            )),
            _ => {
                let lower = log_tail.to_ascii_lowercase();
                let forks = ["cannot fork", "fork: retry", "fork failed", "resource temporarily unavailable"];
                if forks.iter().any(|m| lower.contains(m)) {
                    return Some((
                        "ProcessLimitExceeded",
                        format!(
                            "the commands could not start more processes: an action may run {} at once (PIPEWRIGHT_SANDBOX_PROCESSES)",
                            self.processes
                        ),
                    ));
                }
                let memory =
                    ["memoryerror", "cannot allocate memory", "out of memory", "memory exhausted", "bad_alloc"];
                memory.iter().any(|m| lower.contains(m)).then(|| {
                    (
                        "MemoryLimitExceeded",
                        format!(
                            "the commands ran out of memory: each process may hold {} MiB, and all of them together as much (PIPEWRIGHT_SANDBOX_MEMORY_MB)",
                            mib(self.memory_bytes)
                        ),
                    )
                })
            }
        }
    }
}

impl Inner {
    /// Tries a sandbox that runs `true`, as an action's would run (its
    /// limits too), and learns how `sh` sets the process limit.
    fn probe(&mut self) -> Result<PathBuf, String> {
        self.nproc_flag = ["-u", "-p"]
            .into_iter()
            .find(|flag| {
                std::process::Command::new("/bin/sh")
                    .args(["-c", &format!("ulimit {flag}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .ok_or("the machine's /bin/sh cannot set a process limit (`ulimit -u` or `-p`)")?;
        let tool = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| format!("the sandbox tool bubblewrap (bwrap) is not installed: {INSTALL}"))?;
        let trial = self.etc.with_file_name(format!("trial-{}", std::process::id()));
        let (workspace, scratch) = (trial.join("workspace"), trial.join("scratch"));
        let result = (|| {
            write_etc(&self.etc, self.network.is_some()).map_err(|e| format!("{}: {e}", self.etc.display()))?;
            for dir in [&workspace, &scratch] {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let lease = self.uids.as_ref().map(Uids::lease).transpose().map_err(|e| e.to_string())?;
            if let Some(lease) = &lease {
                if !Path::new(SETPRIV).is_file() {
                    return Err("setpriv (util-linux) is not installed: install util-linux".to_owned());
                }
                chown_all(&workspace, lease.uid)
                    .and_then(|()| chown_all(&scratch, lease.uid))
                    .map_err(|e| e.to_string())?;
            }
            let arguments = self.arguments(&workspace, &scratch, "true", false);
            let (program, arguments) = launch(&tool, lease.as_ref().map(|l| l.uid), arguments);
            let mut command = std::process::Command::new(program);
            command.args(arguments).env_clear().stdin(Stdio::null());
            let output = command.output().map_err(|e| format!("{} could not start: {e}", tool.display()))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{} could not make a sandbox ({}): {}; the kernel must allow unprivileged user namespaces \
                     (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)",
                    tool.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        })();
        let _ = std::fs::remove_dir_all(&trial);
        result.map(|()| tool)
    }

    /// bubblewrap's arguments for one run; with `network`, the commands
    /// wait until the worker has set up their network.
    fn arguments(&self, workspace: &Path, scratch: &Path, commands: &str, network: bool) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut add = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
            args.extend(items.iter().map(|i| i.as_ref().to_owned()));
        };
        let inside_uid = INSIDE_UID.to_string();
        add(&[&"--unshare-user", &"--uid", &inside_uid, &"--gid", &inside_uid, &"--disable-userns"]);
        add(&[&"--unshare-pid", &"--unshare-ipc", &"--unshare-uts", &"--unshare-net", &"--unshare-cgroup-try"]);
        add(&[&"--die-with-parent", &"--new-session", &"--hostname", &"sandbox", &"--cap-drop", &"ALL"]);
        add(&[&"--ro-bind", &"/usr", &"/usr"]);
        // /bin, /lib, … are links into /usr on a merged-/usr system, folders elsewhere.
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            match std::fs::read_link(top) {
                Ok(target) => add(&[&"--symlink", &target, &top]),
                Err(_) if Path::new(top).is_dir() => add(&[&"--ro-bind", &top, &top]),
                Err(_) => {}
            }
        }
        // /tmp and /dev/shm are memory (tmpfs), which the watch of the
        // processes' memory does not see: each has a size of its own, /tmp
        // at most the memory limit and /dev/shm a small one.
        add(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
        let tmp_size = self.limits.workspace_bytes.min(self.limits.memory_bytes).to_string();
        add(&[&"--size", &tmp_size, &"--tmpfs", &"/tmp"]);
        add(&[&"--size", &SHM_BYTES.to_string(), &"--tmpfs", &"/dev/shm"]);
        // One folder made at start-up (`write_etc`): a mount per file would
        // cost every action's start.
        add(&[&"--ro-bind", &self.etc, &"/etc"]);
        let hosts = scratch.join(network::HOSTS);
        if network {
            add(&[&"--ro-bind", &hosts, &"/etc/hosts"]);
        }
        add(&[&"--bind", &workspace, &WORKSPACE, &"--bind", &scratch, &SCRATCH]);
        for folder in &self.folders {
            let kind = if folder.writable { "--bind" } else { "--ro-bind" };
            add(&[&kind, &folder.host, &folder.sandbox]);
        }
        add(&[&"--chdir", &WORKSPACE, &"--"]);
        let script = format!("{}\n{commands}", self.prologue(network));
        add(&[&"/bin/sh", &"-e", &"-c", &script]);
        args
    }
}

impl Inner {
    /// The first line of every action's script, run by its shell before the
    /// commands (a line of its own, complete, so no text after it changes
    /// it): the limits, set hard and soft, which no process of the sandbox
    /// may raise again; then, with a network, the wait until it is up.
    fn prologue(&self, network: bool) -> String {
        let limits = self.limits;
        let mut line = format!(
            "ulimit -c 0; ulimit -t {}; ulimit -f {}; ulimit -d {}; ulimit {} {}",
            limits.cpu_secs,
            limits.workspace_bytes / 512,
            limits.memory_bytes / 1024,
            self.nproc_flag,
            limits.processes
        );
        if network {
            line.push_str(&format!("; read -r _ < {SCRATCH}/{}", network::READY));
        }
        line
    }
}

/// The environment every action's commands start from, before their own.
pub fn base_environment() -> BTreeMap<String, String> {
    [
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("HOME", "/tmp"),
        ("USER", USER),
        ("LOGNAME", USER),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", "/tmp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The few files of the sandbox's `/etc` (the same for every action).
const SETPRIV: &str = "/usr/bin/setpriv";

/// The program and arguments that start bubblewrap as host user `uid` (when
/// the worker is root): through setpriv, so that the worker is spawned from
/// (`posix_spawn`) rather than forked whole, which a user id of the child's
/// own would need.
fn launch(
    tool: &Path,
    uid: Option<u32>,
    args: Vec<std::ffi::OsString>,
) -> (std::ffi::OsString, Vec<std::ffi::OsString>) {
    match uid {
        None => (tool.as_os_str().to_owned(), args),
        Some(uid) => {
            let mut all: Vec<std::ffi::OsString> = vec![
                format!("--reuid={uid}").into(),
                format!("--regid={uid}").into(),
                "--clear-groups".into(),
                "--".into(),
                tool.as_os_str().to_owned(),
            ];
            all.extend(args);
            (SETPRIV.into(), all)
        }
    }
}

/// The hosts file and the FIFO of a sandbox with a network, in its scratch
/// folder; the FIFO opened (read and write, so that opening never waits).
fn prepare_network(scratch: &Path, plan: &network::Plan) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    std::fs::write(scratch.join(network::HOSTS), &plan.hosts)?;
    let ready = scratch.join(network::READY);
    rustix::fs::mknodat(rustix::fs::CWD, &ready, rustix::fs::FileType::Fifo, Mode::from_raw_mode(0o600), 0)?;
    Ok(rustix::fs::open(&ready, OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

fn write_etc(etc: &Path, network: bool) -> std::io::Result<()> {
    // With a network, names resolve through slirp's resolver (each
    // action's hosts file, bound over this one, names the granted ones).
    let hosts = "127.0.0.1 localhost sandbox\n::1 localhost sandbox\n".to_owned();
    let resolv = if network { format!("nameserver {}\n", network::RESOLVER) } else { String::new() };
    std::fs::create_dir_all(etc)?;
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0::/nonexistent:/usr/sbin/nologin\n{USER}:x:{INSIDE_UID}:{INSIDE_UID}::/tmp:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        ("group", format!("root:x:0:\n{USER}:x:{INSIDE_UID}:\nnogroup:x:65534:\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
        ("hostname", "sandbox\n".to_owned()),
    ];
    for (name, text) in files {
        let path = etc.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)?;
        }
    }
    // What the system's tools read of the host's /etc, none of it secret:
    // the loader's cache, the time zone, Debian's alternatives (links into
    // /usr) and the CA certificates. Copied, never bound: written in place
    // (other workers' running sandboxes may have this folder mounted).
    for file in ["ld.so.cache", "localtime"] {
        if let Ok(bytes) = std::fs::read(Path::new("/etc").join(file))
            && std::fs::read(etc.join(file)).ok().as_deref() != Some(bytes.as_slice())
        {
            let _ = std::fs::remove_file(etc.join(file));
            std::fs::write(etc.join(file), bytes)?;
        }
    }
    for folder in ["alternatives", "ssl/certs"] {
        mirror(&Path::new("/etc").join(folder), &etc.join(folder))?;
    }
    Ok(())
}

/// Copies the links and files of `from` (one level) into `to`, where they
/// differ.
fn mirror(from: &Path, to: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir_all(to)?;
    for entry in entries.flatten() {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source)?;
            if std::fs::read_link(&target).ok().as_ref() != Some(&link) {
                let _ = std::fs::remove_file(&target);
                std::os::unix::fs::symlink(&link, &target)?;
            }
        } else if kind.is_file() {
            let bytes = std::fs::read(&source)?;
            if std::fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
                let _ = std::fs::remove_file(&target);
                std::fs::write(&target, bytes)?;
            }
        }
    }
    Ok(())
}

impl Uids {
    /// The first host user id of the range that no other action holds.
    fn lease(&self) -> std::io::Result<UidLease> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.locks)?;
        for uid in self.first..self.first.saturating_add(UIDS) {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(self.locks.join(uid.to_string()))?;
            if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                return Ok(UidLease { uid, _lock: file });
            }
        }
        Err(std::io::Error::other(format!("all {UIDS} sandbox user ids from {} are in use", self.first)))
    }
}

/// Hands `dir` and everything in it to `uid` (links themselves, never what
/// they point to).
fn chown_all(dir: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_all(&entry.path(), uid)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(uid))?;
        }
    }
    Ok(())
}

/// Writes what the sandbox prints to the log, secrets masked, until the
/// pipe ends; cancels `over` when the log passes `limit` bytes.
async fn pump(reader: std::io::PipeReader, log: PathBuf, masked: Vec<String>, limit: u64, over: CancellationToken) {
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader)) else {
        return;
    };
    let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await else { return };
    let masker = Masker::new(masked);
    let (mut pending, mut written) = (Vec::new(), 0u64);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = pipe.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        pending.extend_from_slice(&buffer[..read]);
        // Whole lines, so that a secret split across two reads is still
        // masked; a line longer than 64 KiB is written as it comes.
        let cut = match pending.iter().rposition(|b| *b == b'\n') {
            Some(at) => at + 1,
            None if pending.len() >= 64 * 1024 => pending.len(),
            None => continue,
        };
        let chunk: Vec<u8> = pending.drain(..cut).collect();
        if !write_limited(&mut file, &masker.mask(&chunk), &mut written, limit).await {
            // (A tokio file's write completes in the background: flushed,
            // it is in the log before anyone reads the log's tail.)
            let _ = file.flush().await;
            over.cancel();
            return;
        }
    }
    if !pending.is_empty() && !write_limited(&mut file, &masker.mask(&pending), &mut written, limit).await {
        over.cancel();
    }
    let _ = file.flush().await;
}

/// Writes `chunk` unless the log would pass `limit`; then it writes what
/// fits and a line saying so, and answers false.
async fn write_limited(file: &mut tokio::fs::File, chunk: &[u8], written: &mut u64, limit: u64) -> bool {
    let room = usize::try_from(limit.saturating_sub(*written)).unwrap_or(usize::MAX);
    if chunk.len() <= room {
        let _ = file.write_all(chunk).await;
        *written += chunk.len() as u64;
        return true;
    }
    let _ = file.write_all(&chunk[..room]).await;
    let _ = file
        .write_all(b"\n[pipewright] the log reached its limit (PIPEWRIGHT_SANDBOX_LOG_MB); the action is ended\n")
        .await;
    *written = limit;
    false
}

/// Replaces each of some values with `***`.
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    pub fn new(mut values: Vec<String>) -> Self {
        // The log is masked a line at a time: each line of a value that
        // spans several (a key file) is masked too, if long enough to
        // tell from ordinary text.
        let lines: Vec<String> = values
            .iter()
            .filter(|v| v.contains('\n'))
            .flat_map(|v| v.lines().map(str::trim).filter(|l| l.len() >= 8).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        values.extend(lines);
        values.retain(|v| !v.is_empty());
        // The longest first, so that a secret that holds another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { values }
    }

    pub fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        if self.values.is_empty() {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        'scan: while at < bytes.len() {
            for value in &self.values {
                if bytes[at..].starts_with(value.as_bytes()) {
                    out.extend_from_slice(b"***");
                    at += value.len();
                    continue 'scan;
                }
            }
            out.push(bytes[at]);
            at += 1;
        }
        out
    }
}

/// Resolves when the sandbox passes its memory or workspace limit; never
/// otherwise. Looks first after half a second, so that short actions pay
/// nothing for it.
async fn watch(pid: Option<u32>, workspace: PathBuf, limits: Limits) -> Limit {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_millis(500), Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let workspace = workspace.clone();
        let checked = tokio::task::spawn_blocking(move || {
            if let Some(pid) = pid {
                let held = memory_of_tree(pid);
                if held > limits.memory_bytes {
                    return Some(Limit::Memory(held));
                }
            }
            if ticks.is_multiple_of(4) {
                let size = size_of(&workspace);
                if size > limits.workspace_bytes {
                    return Some(Limit::Workspace(size));
                }
            }
            None
        })
        .await;
        if let Ok(Some(limit)) = checked {
            return limit;
        }
    }
}

/// The resident memory of `root` and all its descendants, in bytes.
fn memory_of_tree(root: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parents {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    tree.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
        })
        .sum()
}

/// The bytes of the files under `dir` (links not followed).
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => size_of(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_the_longest_first() {
        let masker = Masker::new(vec!["s3cr".to_owned(), "s3cret-token".to_owned(), String::new()]);
        assert_eq!(masker.mask(b"token=s3cret-token; s3cr\n"), b"token=***; ***\n");
        assert_eq!(Masker::new(Vec::new()).mask(b"plain"), b"plain");
        let key = Masker::new(vec!["-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n}\n".to_owned()]);
        assert_eq!(key.mask(b"MIIEvQIBADANBgkq\n}\n"), b"***\n}\n");
    }
}
