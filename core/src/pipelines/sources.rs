//! What a Git source may name. The fetch runs in the worker's trust zone,
//! so a repository URL is a request the control plane makes for a tenant:
//! host paths only under the folders the operator allows, no address of
//! this host or of a private network unless allowed, no transport but
//! http(s), ssh and git (and file for allowed folders), and no value that
//! git could read as an option.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use crate::config::Config;

/// The operator's rules for Git sources.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    folders: Vec<PathBuf>,
    /// Never named, whatever the folders allowed: workspaces, artifacts,
    /// logs and keys are there.
    data_dir: PathBuf,
    hosts: Vec<String>,
    ranges: Vec<ipnet::IpNet>,
}

impl SourcePolicy {
    /// The problems of a declaration's Git sources (`GitSourceRefused`).
    pub async fn problems(&self, pipeline: &super::PipelineDeclaration) -> Vec<super::Problem> {
        let mut problems = Vec::new();
        for (s, stage) in pipeline.stages.iter().enumerate() {
            for (a, action) in stage.actions.iter().enumerate() {
                let id = &action.action_type_id;
                if id.category == "Invoke" && id.provider == "HTTP" {
                    // (A URL made of variables is checked when it runs.)
                    let url = action.configuration.get("url").filter(|u| !u.contains("#{"));
                    if let Some(Err(message)) = match url {
                        Some(url) => Some(self.check_http_target(url).await),
                        None => None,
                    } {
                        problems.push(super::Problem {
                            path: format!("stages[{s}].actions[{a}].configuration.url"),
                            rule: "InvokeUrlRefused",
                            message,
                            structural: false,
                        });
                    }
                    continue;
                }
                if !(id.category == "Source" && id.provider == "Git") {
                    continue;
                }
                let Some(url) = action.configuration.get("repositoryUrl") else { continue };
                let branch = action.configuration.get("branch").map_or("main", String::as_str);
                // A name that does not resolve now may by the time it runs
                // (the fetch checks again, and then it must).
                if let Err(message) = self.checked(url, branch, Unresolved::Accept).await {
                    let field = if check_branch(branch).is_err() { "branch" } else { "repositoryUrl" };
                    problems.push(super::Problem {
                        path: format!("stages[{s}].actions[{a}].configuration.{field}"),
                        rule: "GitSourceRefused",
                        message,
                        structural: false,
                    });
                }
            }
        }
        problems
    }
}

/// Where a repository URL points.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Folder(PathBuf),
    /// A host and the port it is reached on.
    Host(String, u16),
}

const FOLDERS_HINT: &str = "an operator allows folders with PIPEWRIGHT_GIT_ALLOWED_FOLDERS";
const HOSTS_HINT: &str = "an operator allows it with PIPEWRIGHT_GIT_ALLOWED_HOSTS";

impl SourcePolicy {
    pub fn from_config(config: &Config) -> Self {
        let folders = config.git_folders().into_iter().map(|f| f.canonicalize().unwrap_or(f)).collect();
        let (mut hosts, mut ranges) = (Vec::new(), Vec::new());
        for entry in config.git_hosts() {
            if let Ok(range) = entry.parse::<ipnet::IpNet>() {
                ranges.push(range);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                ranges.push(ipnet::IpNet::from(ip));
            } else {
                hosts.push(entry.to_ascii_lowercase());
            }
        }
        let data_dir =
            config.data_dir.canonicalize().or_else(|_| std::path::absolute(&config.data_dir)).unwrap_or_default();
        Self { folders, data_dir, hosts, ranges }
    }

    /// Whether a Git source may fetch `branch` of `url` now; why not,
    /// saying what to change. What it returns keeps git on the address
    /// that was checked, so that a second lookup cannot send it elsewhere.
    pub async fn check(&self, url: &str, branch: &str) -> Result<Reach, String> {
        self.checked(url, branch, Unresolved::Refuse).await
    }

    async fn checked(&self, url: &str, branch: &str, unresolved: Unresolved) -> Result<Reach, String> {
        check_branch(branch)?;
        match target(url)? {
            Target::Folder(path) => self.check_folder(&path).map(|()| Reach::default()),
            Target::Host(host, port) => {
                // `name.` is `name`, for the resolver and for the pin.
                let host = host.strip_suffix('.').map(str::to_owned).unwrap_or(host);
                let address = self.check_host(&host, port, unresolved).await?;
                // (An address written in the URL needs no pin.)
                let named = host.parse::<IpAddr>().is_err();
                let Some(ip) = address.filter(|_| named) else { return Ok(Reach::default()) };
                let lower = url.to_ascii_lowercase();
                if lower.starts_with("http://") || lower.starts_with("https://") {
                    let at = match ip {
                        IpAddr::V6(v6) => format!("[{v6}]"),
                        IpAddr::V4(v4) => v4.to_string(),
                    };
                    // (`name.` is given to git as `name`, the name pinned.)
                    let url = url::Url::parse(url)
                        .ok()
                        .filter(|u| u.host_str().is_some_and(|h| h.ends_with('.')))
                        .and_then(|mut u| u.set_host(Some(&host)).ok().map(|()| u.to_string()));
                    return Ok(Reach { curl_resolve: Some(format!("{host}:{port}:{at}")), url, ..Reach::default() });
                }
                // ssh and git://: the URL names the address itself; ssh
                // still checks the host key under the name.
                let ssh = !lower.starts_with("git://");
                Ok(Reach { curl_resolve: None, url: Some(with_address(url, ip)), host_key_alias: ssh.then_some(host) })
            }
        }
    }

    fn check_folder(&self, path: &Path) -> Result<(), String> {
        if self.folders.is_empty() {
            return Err(format!(
                "{} is a folder of this host; Git sources may not name one unless {FOLDERS_HINT}",
                path.display()
            ));
        }
        // The folder as it is (links resolved), else as written.
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.data_dir.as_os_str().is_empty()
            && (real.starts_with(&self.data_dir) || path.starts_with(&self.data_dir))
        {
            return Err(format!(
                "{} is in Pipewright's data folder (workspaces, artifacts, keys): no Git source may name it",
                path.display()
            ));
        }
        if self.folders.iter().any(|allowed| real.starts_with(allowed)) {
            Ok(())
        } else {
            Err(format!(
                "{} is not under a folder Git sources may name ({}); {FOLDERS_HINT}",
                path.display(),
                self.folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// The address to reach `host` at (None: an allowed name, or one that
    /// does not resolve yet and `unresolved` accepts that).
    async fn check_host(&self, host: &str, port: u16, unresolved: Unresolved) -> Result<Option<IpAddr>, String> {
        if self.hosts.iter().any(|h| h == &host.to_ascii_lowercase()) {
            return Ok(None);
        }
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await;
                match lookup {
                    Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                    _ if unresolved == Unresolved::Accept => return Ok(None),
                    Ok(Err(e)) => return Err(format!("the host {host} could not be resolved: {e}")),
                    Err(_) => return Err(format!("the host {host} could not be resolved within {LOOKUP_TIMEOUT:?}")),
                }
            }
        };
        let own = own_addresses();
        for &ip in &addresses {
            if (internal(ip) || own.contains(&ip)) && !self.ranges.iter().any(|r| r.contains(&ip)) {
                let named =
                    if host == ip.to_string() { format!("{host} is") } else { format!("{host} is {ip}, which is") };
                return Err(format!(
                    "{named} an address of this host or of a private network; what a tenant names may not reach one \
                     unless {HOSTS_HINT}"
                ));
            }
        }
        match addresses.first() {
            Some(ip) => Ok(Some(*ip)),
            None if unresolved == Unresolved::Accept => Ok(None),
            None => Err(format!("the host {host} resolves to no address")),
        }
    }
}

impl SourcePolicy {
    /// Whether the service may send a tenant's HTTP request to `url` (a
    /// notification's target, an Invoke action's URL): `http(s)://` only,
    /// no user name or password in it, to a host that is not this host's
    /// nor a private network's unless the operator allows it; with the
    /// address checked, for the request to be pinned to.
    pub async fn check_http(&self, url: &str) -> Result<HttpReach, String> {
        let (mut parsed, host, port) = http_target(url)?;
        let address = self.check_host(&host, port, Unresolved::Refuse).await?;
        // The URL names the host as it was checked and pinned (`name.` is
        // `name`): the client never looks up a name the pin does not cover.
        if parsed.domain().is_some() && parsed.set_host(Some(&host)).is_err() {
            return Err(format!("{url:?} names no usable host"));
        }
        Ok(HttpReach { pin: address.map(|ip| std::net::SocketAddr::new(ip, port)), host, url: parsed })
    }

    /// Whether `url` may be saved as an HTTP target (a name that does not
    /// resolve yet is taken: it is checked again before each request).
    pub async fn check_http_target(&self, url: &str) -> Result<(), String> {
        let (_, host, port) = http_target(url)?;
        self.check_host(&host, port, Unresolved::Accept).await.map(|_| ())
    }
}

/// An HTTP target's URL, host (`name.` read as `name`) and port, or why a
/// tenant may not name it: `http(s)://` only, no user name or password.
fn http_target(url: &str) -> Result<(url::Url, String, u16), String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !["http", "https"].contains(&parsed.scheme()) {
        return Err(format!("the {}:// scheme is not allowed: use https:// or http://", parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL with a user name or password in it is not allowed".to_owned());
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.strip_suffix('.').unwrap_or(d).to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{url:?} names no host")),
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    Ok((parsed, host, port))
}

/// Where a checked HTTP request goes: the client connects to `pin` (when
/// the name was resolved here) for `host`, never to a second lookup's
/// answer.
#[derive(Debug, Clone)]
pub struct HttpReach {
    pub url: url::Url,
    pub host: String,
    pub pin: Option<std::net::SocketAddr>,
}

impl HttpReach {
    /// A client for this request alone: pinned, no redirects (to an address
    /// never checked), no proxy from the environment, a timeout.
    pub fn client(&self, timeout: std::time::Duration) -> Result<reqwest::Client, String> {
        crate::artifacts::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(std::time::Duration::from_secs(5));
        if let Some(pin) = self.pin
            && self.host.parse::<IpAddr>().is_err()
        {
            builder = builder.resolve(&self.host, pin);
        }
        builder.build().map_err(|e| format!("no HTTP client: {e}"))
    }
}

/// What to make of a host name that does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unresolved {
    /// Saving a declaration: it may resolve by the time it runs.
    Accept,
    /// Fetching: it must.
    Refuse,
}

const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How git is to reach a checked source (nothing for a folder, or a host
/// the operator allowed by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// `http.curloptResolve`: `host:port:address`.
    pub curl_resolve: Option<String>,
    /// The URL to give git in place of the declared one.
    pub url: Option<String>,
    /// ssh's `HostKeyAlias`: the name the host key is known by.
    pub host_key_alias: Option<String>,
}

/// `url` (ssh://, git:// or scp-like) with its host replaced by `ip`.
fn with_address(url: &str, ip: IpAddr) -> String {
    if url.contains("://")
        && let Ok(mut parsed) = url::Url::parse(url)
        && parsed.set_ip_host(ip).is_ok()
    {
        return parsed.to_string();
    }
    // [user@]host:path
    let at = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    match url.split_once(':') {
        Some((before, path)) => match before.rsplit_once('@') {
            Some((user, _)) => format!("{user}@{at}:{path}"),
            None => format!("{at}:{path}"),
        },
        None => url.to_owned(),
    }
}

/// `url` as logs and variables may show it: without a user name or
/// password written into it.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Where `url` points, or why git may not be given it.
fn target(url: &str) -> Result<Target, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("repositoryUrl is empty".to_owned());
    }
    if url.starts_with('-') {
        return Err(format!("{url:?} would be read as an option of git"));
    }
    if url.chars().any(char::is_control) {
        return Err("repositoryUrl holds control characters".to_owned());
    }
    // git's "<transport>::<address>" (ext::, fd::, …) runs helpers.
    if let Some((transport, _)) = url.split_once("::")
        && !transport.contains('/')
    {
        return Err(format!("the {transport}:: transport is not allowed: use https://, ssh://, git:// or a folder"));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        return match scheme.as_str() {
            "file" => {
                let path = parsed.to_file_path().map_err(|()| format!("{url:?} names no local path"))?;
                folder(path)
            }
            "http" | "https" | "ssh" | "git" => {
                let host = match parsed.host() {
                    Some(url::Host::Domain(d)) => d.to_owned(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    None => return Err(format!("{url:?} names no host")),
                };
                let default = match scheme.as_str() {
                    "http" => 80,
                    "https" => 443,
                    "ssh" => 22,
                    _ => 9418,
                };
                Ok(Target::Host(host, parsed.port().unwrap_or(default)))
            }
            other => Err(format!("the {other}:// scheme is not allowed: use https://, ssh://, git:// or a folder")),
        };
    }
    // scp-like ssh: [user@]host:path, where the part before ':' has no '/'.
    if let Some((before, _)) = url.split_once(':')
        && !before.contains('/')
        && !url.starts_with('/')
    {
        let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || host.starts_with('-')
            || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return Err(format!("{url:?} names no usable host"));
        }
        return Ok(Target::Host(host.to_owned(), 22));
    }
    folder(PathBuf::from(url))
}

fn folder(path: PathBuf) -> Result<Target, String> {
    if !path.is_absolute() {
        return Err(format!("{} is a relative path: name a repository folder by its absolute path", path.display()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{} holds `..`: name the folder without it", path.display()));
    }
    Ok(Target::Folder(path))
}

/// A branch name git takes as a name (its check-ref-format rules), and
/// never as an option.
/// A full ref name (`refs/heads/NAME`, `refs/tags/NAME`,
/// `refs/pull/7/head`) that git takes as one and nothing else: never an
/// option, a refspec's `:` or `+`, a revision expression.
pub fn check_reference(reference: &str) -> Result<(), String> {
    match reference.strip_prefix("refs/") {
        Some(rest) if reference.len() <= 255 && check_branch(rest).is_ok() && !rest.starts_with('+') => Ok(()),
        _ => Err(format!("{reference:?} is not a ref name (refs/heads/NAME, refs/tags/NAME)")),
    }
}

/// A branch name git takes as one.
pub fn check_branch(branch: &str) -> Result<(), String> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with('.')
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("@{")
        || branch.contains("//")
        || branch == "@"
        || branch.split('/').any(|part| part.starts_with('.'))
        || branch.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        Err(format!(
            "{branch:?} is not a branch name git takes (no leading -, spaces, .., ~^:?*[\\ or control characters)"
        ))
    } else {
        Ok(())
    }
}

/// The addresses of this host's interfaces, public ones too (a service
/// listening on every address answers on them): from the kernel's local
/// routing table and its list of IPv6 addresses.
pub fn own_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<IpAddr> = None;
        for line in trie.lines() {
            let line = line.trim();
            if let Some(address) = line.strip_prefix("|-- ") {
                last = address.parse().ok();
            } else if line.ends_with("host LOCAL")
                && let Some(ip) = last
            {
                found.push(ip);
            }
        }
    }
    if let Ok(list) = std::fs::read_to_string("/proc/net/if_inet6") {
        for hex in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Ok(bits) = u128::from_str_radix(hex, 16) {
                found.push(IpAddr::V6(std::net::Ipv6Addr::from(bits)));
            }
        }
    }
    found
}

/// The IPv4 ranges [`internal`] refuses, as CIDR ranges: what a sandbox's
/// egress is refused (a firewall takes ranges, not a function).
pub const INTERNAL_V4: [&str; 15] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    // Azure's host agent (WireServer): not private, but the host's own.
    "168.63.129.16/32",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// Whether `ip` is this host's, a private network's, or otherwise not a
/// public address (loopback, private, link-local, shared, unspecified,
/// multicast, broadcast, documentation and benchmarking ranges; IPv6's
/// equivalents and the IPv4 addresses it embeds).
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0)
                || v4.octets() == [168, 63, 129, 16]
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return internal(IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            // Forms that embed an IPv4 address some stacks reach: IPv4-
            // compatible (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d),
            // the local-use NAT64 range (64:ff9b:1::/48), 6to4 (2002::/16).
            if segments[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified()
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                let o = v6.octets();
                return internal(IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            if segments[..3] == [0x64, 0xff9b, 1] {
                return true;
            }
            if segments[0] == 0x2002 {
                let o = v6.octets();
                return internal(IpAddr::V4(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5])));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] == 0x2001 && segments[1] == 0xdb8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_forms_that_embed_an_internal_ipv4_address_are_internal() {
        for ip in ["::127.0.0.1", "::ffff:0:169.254.169.254", "64:ff9b:1::a00:1", "2002:7f00:1::", "::ffff:10.0.0.1"] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(!internal("2606:4700::1111".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_trailing_dot_is_not_a_way_around_the_pin() {
        let policy = SourcePolicy::default();
        let reach = policy.check_http("http://93.184.216.34./x").await;
        assert!(reach.is_err() || reach.is_ok_and(|r| !r.url.as_str().contains("34./")));
        let named = policy.check_http("http://localhost./x").await;
        assert!(named.is_err(), "localhost. is this host");
    }

    #[test]
    fn the_internal_ranges_are_what_internal_refuses() {
        let ranges: Vec<ipnet::Ipv4Net> = INTERNAL_V4.iter().map(|r| r.parse().unwrap()).collect();
        let listed = |ip: std::net::Ipv4Addr| ranges.iter().any(|r| r.contains(&ip));
        // Every range's edges, and the addresses just outside them.
        for range in &ranges {
            for ip in [range.network(), range.broadcast()] {
                assert!(internal(IpAddr::V4(ip)), "{ip} is listed but not internal");
            }
            for ip in [u32::from(range.network()).checked_sub(1), u32::from(range.broadcast()).checked_add(1)] {
                if let Some(ip) = ip.map(std::net::Ipv4Addr::from) {
                    assert_eq!(listed(ip), internal(IpAddr::V4(ip)), "{ip}");
                }
            }
        }
        for public in ["1.1.1.1", "8.8.8.8", "100.128.0.1", "172.32.0.1", "198.20.0.1", "223.255.255.255"] {
            let ip: std::net::Ipv4Addr = public.parse().unwrap();
            assert!(!listed(ip) && !internal(IpAddr::V4(ip)), "{ip}");
        }
    }

    fn policy(folders: &[&str], hosts: &[&str]) -> SourcePolicy {
        let config = Config {
            git_allowed_folders: folders.join(","),
            git_allowed_hosts: hosts.join(","),
            data_dir: PathBuf::new(),
            ..Config::default()
        };
        SourcePolicy::from_config(&config)
    }

    #[tokio::test]
    async fn repository_urls_are_checked_against_the_operators_rules() {
        let none = policy(&[], &[]);
        let repos = policy(&["/srv/git"], &["git.internal", "10.1.0.0/16", "127.0.0.2"]);
        let data = SourcePolicy { data_dir: "/srv/git/data".into(), ..policy(&["/srv/git"], &[]) };
        let cases: &[(&SourcePolicy, &str, &str, Option<&str>)] = &[
            (&none, "https://203.0.113.0.example/repo.git", "main", Some("could not be resolved")),
            (&none, "https://8.8.8.8/repo.git", "main", None),
            (&none, "https://[2606:4700::1111]/r.git", "main", None),
            (
                &none,
                "/var/lib/pipewright",
                "main",
                Some(
                    "Git sources may not name one unless an operator allows folders with PIPEWRIGHT_GIT_ALLOWED_FOLDERS",
                ),
            ),
            (&none, "file:///etc", "main", Some("PIPEWRIGHT_GIT_ALLOWED_FOLDERS")),
            (&repos, "/srv/git/app", "main", None),
            (&data, "/srv/git/data/workspaces/x", "main", Some("is in Pipewright's data folder")),
            (&data, "/srv/git/app", "main", None),
            (&repos, "file:///srv/git/app", "main", None),
            (&repos, "/srv/gitx/app", "main", Some("is not under a folder Git sources may name (/srv/git)")),
            (&repos, "/srv/git/../../etc", "main", Some("holds `..`")),
            (&repos, "srv/git/app", "main", Some("relative path")),
            (
                &none,
                "http://127.0.0.1:5432/",
                "main",
                Some("127.0.0.1 is an address of this host or of a private network"),
            ),
            (&none, "http://localhost:6379/", "main", Some("an address of this host")),
            (&none, "https://10.0.0.5/r.git", "main", Some("PIPEWRIGHT_GIT_ALLOWED_HOSTS")),
            (&none, "https://169.254.169.254/latest", "main", Some("private network")),
            (&none, "https://[::1]/r.git", "main", Some("private network")),
            (&none, "https://[::ffff:127.0.0.1]/r.git", "main", Some("private network")),
            (&none, "https://[fd00::1]/r.git", "main", Some("private network")),
            (&none, "https://0.0.0.0/r.git", "main", Some("private network")),
            (&none, "git@192.168.1.4:team/app.git", "main", Some("private network")),
            (&repos, "https://10.1.2.3/r.git", "main", None),
            (&repos, "https://127.0.0.2/r.git", "main", None),
            (&repos, "https://git.internal/r.git", "main", None),
            (&none, "ext::sh -c 'id'", "main", Some("the ext:: transport is not allowed")),
            (&none, "fd::3", "main", Some("the fd:: transport is not allowed")),
            (&none, "ftp://example.com/r.git", "main", Some("the ftp:// scheme is not allowed")),
            (&none, "--upload-pack=touch /tmp/x", "main", Some("read as an option")),
            (&none, "https://8.8.8.8/r.git", "--upload-pack=id", Some("not a branch name")),
            (&none, "https://8.8.8.8/r.git", "a b", Some("not a branch name")),
            (&none, "https://8.8.8.8/r.git", "release/1.x", None),
        ];
        assert_eq!(shown("https://bot:ghp_secret@git.example.com/r.git"), "https://git.example.com/r.git");
        assert_eq!(shown("/srv/git/app"), "/srv/git/app");
        // Every address of this host is refused, a public one too.
        for ip in own_addresses() {
            let url = match ip {
                IpAddr::V4(v4) => format!("https://{v4}/r.git"),
                IpAddr::V6(v6) => format!("https://[{v6}]/r.git"),
            };
            let err = none.check(&url, "main").await.err().unwrap_or_default();
            assert!(err.contains("an address of this host"), "{url}: {err}");
        }
        assert!(own_addresses().contains(&IpAddr::from([127, 0, 0, 1])), "{:?}", own_addresses());
        // Saving a declaration accepts a name that does not resolve yet.
        assert!(none.checked("https://203.0.113.0.example/repo.git", "main", Unresolved::Accept).await.is_ok());
        // An http(s) host is pinned to the address checked.
        assert_eq!(none.check("https://8.8.8.8:8443/r.git", "main").await, Ok(Reach::default()));
        assert_eq!(none.check("git://8.8.8.8/r.git", "main").await, Ok(Reach::default()));
        let loopback = policy(&[], &["127.0.0.0/8", "::1/128"]);
        let pin = loopback.check("http://localhost:8080/r.git", "main").await.unwrap().curl_resolve.unwrap_or_default();
        assert!(pin.starts_with("localhost:8080:"), "{pin}");
        // ssh and git:// are given the address checked; ssh knows the host by its name.
        let v4 = policy(&[], &["127.0.0.0/8"]);
        let reach = v4.check("ssh://git@localhost:2222/team/app.git", "main").await.unwrap_or_default();
        if reach.url.as_deref().is_some_and(|u| u.contains("127.0.0.1")) {
            assert_eq!(reach.url.as_deref(), Some("ssh://git@127.0.0.1:2222/team/app.git"));
            assert_eq!(reach.host_key_alias.as_deref(), Some("localhost"));
        }
        let err = none.check("git@ho st;id:team/app.git", "main").await.unwrap_err();
        assert!(err.contains("names no usable host"), "{err}");
        assert_eq!(
            with_address("git@git.example.com:team/app.git", "203.0.113.9".parse().unwrap()),
            "git@203.0.113.9:team/app.git"
        );
        assert_eq!(
            with_address("git://git.example.com/app.git", "2001:db8::1".parse().unwrap()),
            "git://[2001:db8::1]/app.git"
        );
        for (policy, url, branch, refused) in cases {
            let checked = policy.check(url, branch).await;
            match refused {
                None => assert!(checked.is_ok(), "{url} {branch}: {checked:?}"),
                Some(says) => {
                    let err = checked.err().unwrap_or_default();
                    assert!(err.contains(says), "{url} {branch}: {err}");
                }
            }
        }
    }
}
