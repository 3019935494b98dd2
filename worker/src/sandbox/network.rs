//! An action's network beyond its own loopback, when the operator gives one
//! (decision 013): `PIPEWRIGHT_SANDBOX_NETWORK=egress` (public addresses)
//! and `PIPEWRIGHT_SANDBOX_DESTINATIONS` (addresses of this host or of a
//! private network an operator grants). By default a sandbox has neither.
//!
//! The sandbox keeps its own network namespace. Before its commands start,
//! the worker (root) sets a firewall in that namespace (nftables, through
//! `nsenter`), then gives it a user-mode network stack (`slirp4netns`,
//! run as the action's own host user, whose connections leave from the
//! host) and configures its interface. The firewall comes first, so there
//! is never a moment with a route and no rules; the commands cannot change
//! it (no capability, no user namespace of their own). It lets through the
//! sandbox's loopback, the granted destinations, then — with `egress` —
//! DNS to slirp's resolver (which asks the host's) and every address but
//! this host's own and the loopback, private, link-local, shared and
//! reserved ranges; everything else is refused at once (no route to host),
//! IPv6 included.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipnet::Ipv4Net;
use pipewright_core::config::{Config, DestinationHost, GrantedDestination, SandboxNetwork};
use tokio::io::AsyncWriteExt;

/// The host's loopback (127.0.0.1) as the sandbox reaches it, when a
/// destination on it is granted (slirp's gateway).
pub const HOST_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// slirp's resolver, which forwards to the host's.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The name of [`HOST_GATEWAY`] in the sandbox's `/etc/hosts`.
pub const HOST_NAME: &str = "host.pipewright.internal";
/// The FIFO in the scratch folder the commands wait on until the network is
/// up (written once by the worker, through the descriptor it opened before
/// the sandbox started: never by its path again).
pub const READY: &str = ".network";
/// The sandbox's `/etc/hosts` when it has a network, in its scratch folder.
pub const HOSTS: &str = ".hosts";
/// The sandbox's address on slirp's network.
const ADDRESS: &str = "10.0.2.100/24";
/// How long the network may take to come up.
const SETUP: Duration = Duration::from_secs(10);

const TOOLS: [(&str, &str); 6] = [
    ("slirp4netns", "slirp4netns"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("prlimit", "util-linux"),
];

/// The network every sandbox of this worker gets.
pub struct Network {
    mode: SandboxNetwork,
    granted: Vec<GrantedDestination>,
    tools: Tools,
}

struct Tools {
    slirp4netns: PathBuf,
    nft: PathBuf,
    ip: PathBuf,
    nsenter: PathBuf,
    setpriv: PathBuf,
    prlimit: PathBuf,
}

/// A sandbox's network stack: it ends when this is dropped.
pub struct Attached {
    _slirp: tokio::process::Child,
}

/// What one action's network lets through, resolved as it starts.
pub struct Plan {
    granted: Vec<(Ipv4Net, Option<u16>)>,
    reaches_host: bool,
    /// The sandbox's `/etc/hosts`: localhost, the host's loopback when
    /// granted, and the granted names as they resolved.
    pub hosts: String,
}

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

impl Network {
    /// The network of the configuration: `Ok(None)` when sandboxes have
    /// none; `Err` says why the one configured cannot be made here.
    pub fn from_config(config: &Config, root: bool) -> Result<Option<Self>, String> {
        if !config.sandbox_has_network() {
            return Ok(None);
        }
        let granted = config.granted_destinations()?;
        if !root {
            return Err("PIPEWRIGHT_SANDBOX_NETWORK=egress and PIPEWRIGHT_SANDBOX_DESTINATIONS need a worker running \
                        as root: it sets each sandbox's firewall and starts its network stack"
                .to_owned());
        }
        let mut missing: Vec<&str> =
            TOOLS.iter().filter(|(tool, _)| find(tool).is_none()).map(|(_, pkg)| *pkg).collect();
        missing.dedup();
        let (Some(slirp4netns), Some(nft), Some(ip), Some(nsenter), Some(setpriv), Some(prlimit)) =
            (find("slirp4netns"), find("nft"), find("ip"), find("nsenter"), find("setpriv"), find("prlimit"))
        else {
            return Err(format!(
                "a sandbox's network needs slirp4netns, nft, ip and nsenter: install {} (Debian: `apt-get install {}`; \
                 `bash deploy/local-services.sh` does it) and start the worker again",
                missing.join(", "),
                missing.join(" ")
            ));
        };
        // slirp4netns runs as the action's user, and opens the TUN device
        // as that user (Debian's own rule makes it 0666; opening it gives
        // nothing without a capability in a network namespace).
        let tun = std::fs::metadata("/dev/net/tun").map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
        if !tun.is_ok_and(|mode| mode & 0o006 == 0o006) {
            return Err("a sandbox's network needs /dev/net/tun readable and writable by every user (mode 0666, \
                        Debian's default; `chmod 0666 /dev/net/tun`, which `bash deploy/local-services.sh` does)"
                .to_owned());
        }
        Ok(Some(Self {
            mode: config.sandbox_network,
            granted,
            tools: Tools { slirp4netns, nft, ip, nsenter, setpriv, prlimit },
        }))
    }

    /// What this action's network lets through: the granted names
    /// resolved now (never to the host's loopback nor slirp's network: a
    /// DNS answer cannot grant those), the host's `127.0.0.1` as
    /// [`HOST_GATEWAY`].
    pub async fn plan(&self) -> Plan {
        let slirp: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap_or_default();
        let (mut granted, mut names) = (Vec::new(), Vec::new());
        for destination in &self.granted {
            match &destination.host {
                // The configuration takes no other range that covers the
                // loopback than 127.0.0.1 itself.
                DestinationHost::Range(range) if range.contains(&Ipv4Addr::LOCALHOST) => {
                    granted.push((Ipv4Net::from(HOST_GATEWAY), destination.port));
                }
                DestinationHost::Range(range) => granted.push((*range, destination.port)),
                DestinationHost::Name(name) => {
                    let found = tokio::net::lookup_host((name.as_str(), 0)).await.map(Iterator::collect::<Vec<_>>);
                    // A name that does not resolve now grants nothing now.
                    for address in found.unwrap_or_default() {
                        if let std::net::IpAddr::V4(v4) = address.ip()
                            && !v4.is_loopback()
                            && !slirp.contains(&v4)
                            && !v4.is_unspecified()
                        {
                            granted.push((Ipv4Net::from(v4), destination.port));
                            names.push(format!("{v4} {name}"));
                        }
                    }
                }
            }
        }
        let reaches_host = granted.iter().any(|(range, _)| range.contains(&HOST_GATEWAY));
        let mut hosts = "127.0.0.1 localhost sandbox\n::1 localhost sandbox\n".to_owned();
        if reaches_host {
            hosts.push_str(&format!("{HOST_GATEWAY} {HOST_NAME}\n"));
        }
        names.dedup();
        for line in names {
            hosts.push_str(&line);
            hosts.push('\n');
        }
        Plan { granted, reaches_host, hosts }
    }

    /// Gives the sandbox whose bubblewrap process is `bwrap` (running as
    /// host user `uid`) its firewall and network stack, then lets its
    /// commands start by writing to `ready` (the FIFO they wait on, opened
    /// by the worker before the sandbox started).
    pub async fn attach(
        &self,
        bwrap: u32,
        uid: u32,
        plan: &Plan,
        ready: &std::os::fd::OwnedFd,
    ) -> Result<Attached, String> {
        let (init, checked) = sandbox_init(bwrap).await?;
        let namespace = format!("/proc/{init}/ns/net");
        // The namespace's owner, for slirp4netns: asked of the namespace
        // itself (the sandbox's processes move into a user namespace nested
        // in it as bubblewrap finishes, `--disable-userns`).
        let owner = std::fs::File::open(&namespace)
            .and_then(|net| owner_of(&net))
            .map_err(|e| format!("the sandbox's user namespace could not be opened: {e}"))?;
        let rules = ruleset(self.mode, &plan.granted, &own_ipv4());
        self.in_namespace(&namespace, &self.tools.nft, &["-f", "-"], &rules).await?;
        let slirp = self.stack(init, uid, owner, plan.reaches_host)?;
        let mut slirp = wait_for_tap(init, slirp).await?;
        let configured = async {
            let interface =
                format!("link set tap0 up\naddr add {ADDRESS} dev tap0\nroute add default via {HOST_GATEWAY}\n");
            self.in_namespace(&namespace, &self.tools.ip, &["-batch", "-"], &interface).await?;
            // Still the namespace checked first (its process was not
            // replaced by another of the same id meanwhile).
            if std::fs::read_link(&namespace).ok() != Some(checked) {
                return Err("the sandbox's process changed while its network was set up".to_owned());
            }
            rustix::io::write(ready, b"\n").map(drop).map_err(|e| format!("the commands could not be started: {e}"))
        };
        if let Err(e) = configured.await {
            let _ = slirp.start_kill();
            return Err(e);
        }
        Ok(Attached { _slirp: slirp })
    }

    /// Runs `tool` with `args` in the network namespace `namespace` (as
    /// root), `input` on its standard input.
    async fn in_namespace(&self, namespace: &str, tool: &Path, args: &[&str], input: &str) -> Result<(), String> {
        let name = tool.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut child = tokio::process::Command::new(&self.tools.nsenter)
            .arg(format!("--net={namespace}"))
            .arg(tool)
            .args(args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{name} could not start: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).await.map_err(|e| format!("{name} could not be given its input: {e}"))?;
        }
        let output = tokio::time::timeout(SETUP, child.wait_with_output())
            .await
            .map_err(|_| format!("{name} did not finish"))?
            .map_err(|e| format!("{name} could not be waited for: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{name} refused the sandbox's network: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    /// slirp4netns for the sandbox whose first process is `init`: as the
    /// action's host user `uid`, capable only in the sandbox's user
    /// namespace (`owner`, on its standard input), under a seccomp filter,
    /// with bounded descriptors and memory, killed if the worker dies.
    fn stack(
        &self,
        init: u32,
        uid: u32,
        owner: std::fs::File,
        reaches_host: bool,
    ) -> Result<tokio::process::Child, String> {
        let mut command = tokio::process::Command::new(&self.tools.setpriv);
        command
            .args([format!("--reuid={uid}"), format!("--regid={uid}")])
            .args(["--clear-groups", "--pdeathsig", "KILL", "--"])
            .arg(&self.tools.prlimit)
            .args(["--nofile=4096", "--as=1073741824", "--"])
            .arg(&self.tools.slirp4netns)
            .args(["--mtu=65520", "--enable-seccomp", "--userns-path=/dev/stdin"]);
        if !reaches_host {
            command.arg("--disable-host-loopback");
        }
        command
            .args([init.to_string(), "tap0".to_owned()])
            .env_clear()
            .stdin(Stdio::from(owner))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("slirp4netns could not start: {e}"))
    }
}

/// The user namespace that owns the namespace `namespace` is (the kernel's
/// `NS_GET_USERNS`).
#[allow(unsafe_code)]
fn owner_of(namespace: &std::fs::File) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // _IO(0xb7, 0x1), from linux/nsfs.h.
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: the ioctl takes no argument and only reads the descriptor,
    // which `namespace` keeps open for the call; it answers a new
    // descriptor (owned by no one else) or -1.
    let raw = unsafe { libc::ioctl(namespace.as_raw_fd(), NS_GET_USERNS) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor the kernel just opened for us.
    Ok(unsafe { std::fs::File::from_raw_fd(raw) })
}

/// The sandbox's first process inside its namespaces (bubblewrap's child),
/// and its network namespace as it was checked.
async fn sandbox_init(bwrap: u32) -> Result<(u32, PathBuf), String> {
    let children = format!("/proc/{bwrap}/task/{bwrap}/children");
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    let deadline = tokio::time::Instant::now() + SETUP;
    while tokio::time::Instant::now() < deadline {
        let first = std::fs::read_to_string(&children)
            .ok()
            .and_then(|list| list.split_whitespace().next().and_then(|pid| pid.parse::<u32>().ok()));
        if let Some(pid) = first {
            let namespace = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if let Some(namespace) = namespace.filter(|n| Some(n) != own.as_ref()) {
                return Ok((pid, namespace));
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err("the sandbox did not start its namespaces".to_owned())
}

/// Waits until slirp4netns has made the sandbox's `tap0`.
async fn wait_for_tap(init: u32, mut slirp: tokio::process::Child) -> Result<tokio::process::Child, String> {
    let devices = format!("/proc/{init}/net/dev");
    let deadline = tokio::time::Instant::now() + SETUP;
    while tokio::time::Instant::now() < deadline {
        if std::fs::read_to_string(&devices)
            .is_ok_and(|table| table.lines().any(|l| l.trim_start().starts_with("tap0:")))
        {
            return Ok(slirp);
        }
        if let Ok(Some(status)) = slirp.try_wait() {
            return Err(format!("slirp4netns ended ({status}) before the sandbox's network was up"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = slirp.start_kill();
    Err("the sandbox's network did not come up".to_owned())
}

/// This host's own IPv4 addresses, which egress never reaches.
fn own_ipv4() -> Vec<Ipv4Addr> {
    pipewright_core::pipelines::sources::own_addresses()
        .into_iter()
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect()
}

/// The sandbox's firewall (nftables), for `nft -f`.
pub fn ruleset(mode: SandboxNetwork, granted: &[(Ipv4Net, Option<u16>)], own: &[Ipv4Addr]) -> String {
    const RULE: &str = "add rule inet pipewright output";
    let mut rules = vec![
        "add table inet pipewright".to_owned(),
        "add chain inet pipewright output { type filter hook output priority 0; policy accept; }".to_owned(),
        format!("{RULE} oifname \"lo\" accept"),
        format!("{RULE} meta nfproto ipv6 reject with icmpx admin-prohibited"),
    ];
    // Names resolve through the host's resolver with egress; without it
    // the granted names are in the sandbox's hosts file, and DNS (a way
    // out of its own) is closed.
    if mode == SandboxNetwork::Egress {
        rules.push(format!("{RULE} ip daddr {RESOLVER} meta l4proto {{ tcp, udp }} th dport 53 accept"));
    }
    for (range, port) in granted {
        rules.push(match port {
            Some(port) => format!("{RULE} ip daddr {range} meta l4proto {{ tcp, udp }} th dport {port} accept"),
            None => format!("{RULE} ip daddr {range} accept"),
        });
    }
    match mode {
        SandboxNetwork::Egress => {
            let mut refused: Vec<String> =
                pipewright_core::pipelines::sources::INTERNAL_V4.iter().map(|r| (*r).to_owned()).collect();
            refused.extend(own.iter().filter(|ip| !refused_already(**ip)).map(ToString::to_string));
            rules.push(format!("{RULE} ip daddr {{ {} }} reject with icmpx admin-prohibited", refused.join(", ")));
        }
        SandboxNetwork::None => rules.push(format!("{RULE} reject with icmpx admin-prohibited")),
    }
    rules.join("\n") + "\n"
}

/// Whether `ip` is in one of the internal ranges (nft refuses a set whose
/// elements overlap).
fn refused_already(ip: Ipv4Addr) -> bool {
    pipewright_core::pipelines::sources::INTERNAL_V4
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .any(|range| range.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firewall_lets_through_what_the_operator_chose_and_nothing_else() {
        let granted = [("10.1.0.0/16".parse().unwrap(), Some(5432)), (Ipv4Net::from(HOST_GATEWAY), None)];
        let own = [Ipv4Addr::new(203, 0, 114, 7), Ipv4Addr::new(10, 255, 0, 9)];
        let egress = ruleset(SandboxNetwork::Egress, &granted, &own);
        let lines: Vec<&str> = egress.lines().collect();
        let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}"));
        // Granted before refused; refused before the policy's accept.
        assert!(at("ip daddr 10.1.0.0/16 meta l4proto { tcp, udp } th dport 5432 accept") < at("ip daddr { 0.0.0.0/8"));
        assert!(at("ip daddr 10.0.2.2/32 accept") < at("10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8"));
        assert!(at("10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept") < at("10.0.0.0/8"));
        let refused = lines[at("10.0.0.0/8")];
        assert!(refused.contains("203.0.114.7"), "the host's own public address: {refused}");
        assert!(!refused.contains("10.255.0.9"), "already in 10.0.0.0/8 (nft refuses overlaps): {refused}");
        assert!(egress.contains("meta nfproto ipv6 reject"));
        assert!(!egress.contains("output reject"), "egress ends open:\n{egress}");

        let none = ruleset(SandboxNetwork::None, &granted, &own);
        assert!(!none.contains("dport 53"), "no DNS without egress:\n{none}");
        assert!(none.trim_end().ends_with("add rule inet pipewright output reject with icmpx admin-prohibited"));
        assert!(!none.contains("203.0.114.7"));
        assert!(none.contains("ip daddr 10.1.0.0/16 meta l4proto { tcp, udp } th dport 5432 accept"));
    }
}
