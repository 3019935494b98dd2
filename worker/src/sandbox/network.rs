//! An action's network beyond its own loopback, when the operator gives one
//! (decision 013): `PIPEWRIGHT_SANDBOX_NETWORK=egress` (public addresses)
//! and `PIPEWRIGHT_SANDBOX_DESTINATIONS` (addresses of this host or of a
//! private network an operator grants). By default a sandbox has neither.
//!
//! The sandbox keeps its own network namespace. Before its commands start,
//! the worker (root) sets a firewall in that namespace (nftables, through
//! `nsenter`) and then gives it a user-mode network stack (`slirp4netns`,
//! whose connections leave from the host). The firewall comes first, so
//! there is never a moment with a route and no rules; the commands cannot
//! change it (no capability, no user namespace of their own). It lets
//! through the sandbox's loopback, DNS to slirp's resolver (which asks the
//! host's), the granted destinations, then — with `egress` — every address
//! but this host's own and the loopback, private, link-local, shared and
//! reserved ranges; everything else is refused at once (no route to host),
//! IPv6 included.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ipnet::Ipv4Net;
use pipewright_core::config::{Config, DestinationHost, GrantedDestination, SandboxNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The host's loopback (127.0.0.1) as the sandbox reaches it, when a
/// destination on it is granted (slirp's gateway).
pub const HOST_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// slirp's resolver, which forwards to the host's.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The name of [`HOST_GATEWAY`] in the sandbox's `/etc/hosts`.
pub const HOST_NAME: &str = "host.pipewright.internal";
/// The FIFO in the scratch folder the commands wait on until the network is
/// up (written once by the worker).
pub const READY: &str = ".network";
/// How long the network may take to come up.
const SETUP: Duration = Duration::from_secs(10);

const TOOLS: [(&str, &str); 4] =
    [("slirp4netns", "slirp4netns"), ("nft", "nftables"), ("nsenter", "util-linux"), ("setpriv", "util-linux")];

/// The network every sandbox of this worker gets.
pub struct Network {
    mode: SandboxNetwork,
    granted: Vec<GrantedDestination>,
    tools: Tools,
}

struct Tools {
    slirp4netns: PathBuf,
    nft: PathBuf,
    nsenter: PathBuf,
    setpriv: PathBuf,
}

/// A sandbox's network stack: it ends when this is dropped.
pub struct Attached {
    _slirp: tokio::process::Child,
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
        let missing: Vec<&str> = TOOLS.iter().filter(|(tool, _)| find(tool).is_none()).map(|(_, pkg)| *pkg).collect();
        let (Some(slirp4netns), Some(nft), Some(nsenter), Some(setpriv)) =
            (find("slirp4netns"), find("nft"), find("nsenter"), find("setpriv"))
        else {
            return Err(format!(
                "a sandbox's network needs slirp4netns, nft and nsenter: install {} (Debian: `apt-get install {}`; \
                 `bash deploy/local-services.sh` does it) and start the worker again",
                missing.join(", "),
                missing.join(" ")
            ));
        };
        Ok(Some(Self { mode: config.sandbox_network, granted, tools: Tools { slirp4netns, nft, nsenter, setpriv } }))
    }

    /// Gives the sandbox whose bubblewrap process is `bwrap` its firewall
    /// and network stack, then lets its commands start (`ready`, the FIFO
    /// they wait on).
    pub async fn attach(&self, bwrap: u32, ready: &Path) -> Result<Attached, String> {
        let init = sandbox_init(bwrap).await?;
        let namespace = format!("/proc/{init}/ns/net");
        let granted = self.resolve().await?;
        let reaches_host = granted.iter().any(|(range, _)| range.contains(&HOST_GATEWAY));
        let rules = ruleset(self.mode, &granted, &own_ipv4());
        self.firewall(&namespace, &rules).await?;
        let slirp = self.stack(&namespace, reaches_host)?;
        let mut slirp = wait_for_route(init, slirp).await?;
        if let Err(e) = release(ready).await {
            let _ = slirp.start_kill();
            return Err(e);
        }
        Ok(Attached { _slirp: slirp })
    }

    /// The granted destinations as ranges the sandbox addresses: names
    /// resolved now, and the host's loopback as [`HOST_GATEWAY`].
    async fn resolve(&self) -> Result<Vec<(Ipv4Net, Option<u16>)>, String> {
        let mut out = Vec::new();
        for destination in &self.granted {
            let ranges = match &destination.host {
                DestinationHost::Range(range) => vec![*range],
                DestinationHost::Name(name) => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map(|found| {
                        found
                            .filter_map(|a| match a.ip() {
                                std::net::IpAddr::V4(v4) => Some(Ipv4Net::from(v4)),
                                std::net::IpAddr::V6(_) => None,
                            })
                            .collect()
                    })
                    // A name that does not resolve now grants nothing now.
                    .unwrap_or_default(),
            };
            for range in ranges {
                let range = if range.contains(&Ipv4Addr::LOCALHOST) { Ipv4Net::from(HOST_GATEWAY) } else { range };
                out.push((range, destination.port));
            }
        }
        Ok(out)
    }

    async fn firewall(&self, namespace: &str, rules: &str) -> Result<(), String> {
        let mut nft = tokio::process::Command::new(&self.tools.nsenter)
            .arg(format!("--net={namespace}"))
            .arg(&self.tools.nft)
            .args(["-f", "-"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("nft could not start: {e}"))?;
        if let Some(mut stdin) = nft.stdin.take() {
            stdin.write_all(rules.as_bytes()).await.map_err(|e| format!("nft could not be given its rules: {e}"))?;
        }
        let output = tokio::time::timeout(SETUP, nft.wait_with_output())
            .await
            .map_err(|_| "nft did not finish".to_owned())?
            .map_err(|e| format!("nft could not be waited for: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("the sandbox's firewall was refused: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    /// slirp4netns for the namespace, in a sandbox of its own (no
    /// capabilities but binding low ports, only `/etc` and `/run`, a
    /// seccomp filter), killed if the worker dies.
    fn stack(&self, namespace: &str, reaches_host: bool) -> Result<tokio::process::Child, String> {
        let mut command = tokio::process::Command::new(&self.tools.setpriv);
        command.args(["--pdeathsig", "KILL", "--"]).arg(&self.tools.slirp4netns);
        command.args(["--configure", "--mtu=65520", "--enable-sandbox", "--enable-seccomp"]);
        if !reaches_host {
            command.arg("--disable-host-loopback");
        }
        command
            .args(["--netns-type=path", namespace, "tap0"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("slirp4netns could not start: {e}"))
    }
}

/// The sandbox's first process inside its namespaces: bubblewrap's child.
async fn sandbox_init(bwrap: u32) -> Result<u32, String> {
    let children = format!("/proc/{bwrap}/task/{bwrap}/children");
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    let deadline = tokio::time::Instant::now() + SETUP;
    while tokio::time::Instant::now() < deadline {
        let first = std::fs::read_to_string(&children)
            .ok()
            .and_then(|list| list.split_whitespace().next().and_then(|pid| pid.parse::<u32>().ok()));
        if let Some(pid) = first {
            let namespace = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if namespace.is_some() && namespace != own {
                return Ok(pid);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err("the sandbox did not start its namespaces".to_owned())
}

/// Waits until slirp4netns has configured the sandbox's default route.
async fn wait_for_route(init: u32, mut slirp: tokio::process::Child) -> Result<tokio::process::Child, String> {
    let routes = format!("/proc/{init}/net/route");
    let deadline = tokio::time::Instant::now() + SETUP;
    while tokio::time::Instant::now() < deadline {
        let up = std::fs::read_to_string(&routes).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace();
                fields.next() == Some("tap0") && fields.next() == Some("00000000")
            })
        });
        if up {
            return Ok(slirp);
        }
        if let Ok(Some(status)) = slirp.try_wait() {
            let mut said = String::new();
            if let Some(mut stderr) = slirp.stderr.take() {
                let _ = stderr.read_to_string(&mut said).await;
            }
            let said: Vec<&str> = said.lines().filter(|l| !l.starts_with("WARNING")).collect();
            return Err(format!("slirp4netns ended ({status}): {}", said.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = slirp.start_kill();
    Err("the sandbox's network did not come up".to_owned())
}

/// Tells the commands, waiting on the FIFO `ready`, that they may start.
async fn release(ready: &Path) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags};
    let deadline = tokio::time::Instant::now() + SETUP;
    loop {
        // Without a reader yet, opening a FIFO to write fails (ENXIO)
        // rather than waiting.
        match rustix::fs::open(ready, OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fifo) => {
                return rustix::io::write(&fifo, b"\n")
                    .map(drop)
                    .map_err(|e| format!("the commands could not be started: {e}"));
            }
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => return Err(format!("the commands could not be started: {e}")),
        }
    }
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
        format!("{RULE} ip daddr {RESOLVER} meta l4proto {{ tcp, udp }} th dport 53 accept"),
    ];
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
        assert!(none.trim_end().ends_with("add rule inet pipewright output reject with icmpx admin-prohibited"));
        assert!(!none.contains("203.0.114.7"));
        assert!(none.contains("ip daddr 10.1.0.0/16 meta l4proto { tcp, udp } th dport 5432 accept"));
    }
}
