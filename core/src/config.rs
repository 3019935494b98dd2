//! The service's configuration: one typed struct, read from defaults, then a
//! TOML file, then environment variables (later sources win).

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The file read when `PIPEWRIGHT_CONFIG` is not set (optional).
pub const DEFAULT_CONFIG_FILE: &str = "pipewright.toml";

/// Everything the api and the worker are told from outside.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL (`DATABASE_URL`).
    pub database_url: Dsn,
    /// RabbitMQ (`AMQP_URL`).
    pub amqp_url: Dsn,
    /// Redis (`REDIS_URL`).
    pub redis_url: Dsn,
    /// host:port the API listens on (`PIPEWRIGHT_LISTEN`).
    #[serde(deserialize_with = "lenient::string")]
    pub listen: String,
    /// Keys and artifacts (`PIPEWRIGHT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// HMAC key that signs access tokens (`PIPEWRIGHT_JWT_SECRET`); when
    /// absent, the keys are made once and shared through the database.
    #[serde(serialize_with = "skip_secret", deserialize_with = "lenient::secret", default)]
    pub jwt_secret: Option<SecretString>,
    /// Keys that signed access tokens before `jwt_secret` and still verify
    /// them (`PIPEWRIGHT_JWT_PREVIOUS_SECRETS`, comma separated), for a
    /// rotation without downtime.
    #[serde(serialize_with = "skip_secret", deserialize_with = "lenient::secret", default)]
    pub jwt_previous_secrets: Option<SecretString>,
    /// AES-256 key sealing the accounts' secrets at rest
    /// (`PIPEWRIGHT_SECRETS_KEY`, 32 bytes base64); generated into the data
    /// folder on first start when absent. Every api and worker process of
    /// an installation needs the same one.
    #[serde(serialize_with = "skip_secret", deserialize_with = "lenient::secret", default)]
    pub secrets_key: Option<SecretString>,
    /// Prefix of every exchange and queue name (`PIPEWRIGHT_AMQP_PREFIX`), so
    /// that several installations (or tests) can share one broker.
    #[serde(deserialize_with = "lenient::string")]
    pub amqp_prefix: String,
    /// Seconds after which an unused queue of this installation is deleted
    /// by RabbitMQ (`PIPEWRIGHT_AMQP_QUEUE_EXPIRES_SECS`); 0, the default,
    /// keeps them. Tests set it, so that their queues do not pile up.
    pub amqp_queue_expires_secs: u64,
    /// How long a runner holds an action before another may take it over
    /// (`PIPEWRIGHT_ACTION_LEASE_SECS`); renewed while the action runs.
    pub action_lease_secs: u64,
    /// How often Git sources are polled for new commits, in seconds
    /// (`PIPEWRIGHT_GIT_POLL_SECS`).
    pub git_poll_secs: u64,
    /// How long a job worker has to acknowledge a job PollForJobs gave it
    /// before the job is handed to another, in seconds
    /// (`PIPEWRIGHT_JOB_ACK_SECS`).
    pub job_ack_secs: u64,
    /// Prefix of every Redis key (`PIPEWRIGHT_REDIS_PREFIX`).
    #[serde(deserialize_with = "lenient::string")]
    pub redis_prefix: String,
    /// Largest number of PostgreSQL connections per process.
    pub db_pool_size: usize,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Log filter, e.g. `info` or `info,pipewright_api=debug` (`PIPEWRIGHT_LOG`).
    #[serde(deserialize_with = "lenient::string")]
    pub log: String,
    /// `json` (default) or `text` (`PIPEWRIGHT_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Seconds that in-flight requests and jobs get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// The region in ARNs (`PIPEWRIGHT_REGION`).
    #[serde(deserialize_with = "lenient::string")]
    pub region: String,
    /// Who may create accounts (`PIPEWRIGHT_SIGNUP`): `open`, or `operator`
    /// (only callers presenting the operator token).
    pub signup: Signup,
    /// The operator token (`PIPEWRIGHT_OPERATOR_TOKEN`), for `signup = operator`.
    #[serde(serialize_with = "skip_secret", deserialize_with = "lenient::secret", default)]
    pub operator_token: Option<SecretString>,
    /// Lifetime of an access token from sign-in, in seconds.
    pub access_token_secs: i64,
    /// Lifetime of a sign-in session (its refresh token), in seconds.
    pub session_secs: i64,
    /// The window in which failed sign-ins are counted, in seconds
    /// (`PIPEWRIGHT_SIGNIN_WINDOW_SECS`); throttling never outlasts it.
    pub signin_window_secs: i64,
    /// Proxies whose `X-Forwarded-For` is believed (`PIPEWRIGHT_TRUSTED_PROXIES`:
    /// addresses or CIDRs, comma separated). None by default: the client is
    /// the peer. Behind a proxy, throttling and `pw:SourceIp` need it.
    #[serde(deserialize_with = "lenient::string")]
    pub trusted_proxies: String,
    /// How often the audit log is sealed into signed digests, in seconds
    /// (`PIPEWRIGHT_AUDIT_DIGEST_SECS`).
    pub audit_digest_secs: u64,
    /// Where artifacts are kept (`PIPEWRIGHT_ARTIFACT_STORE`): `local` (the
    /// data folder) or `s3://bucket[/prefix]`, an S3-compatible bucket that
    /// workers on several hosts share.
    #[serde(deserialize_with = "lenient::string")]
    pub artifact_store: String,
    /// The S3-compatible service's URL (`PIPEWRIGHT_S3_ENDPOINT`), e.g.
    /// `http://127.0.0.1:9000` for MinIO; AWS's when unset.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// The bucket's region (`PIPEWRIGHT_S3_REGION`).
    #[serde(deserialize_with = "lenient::string")]
    pub s3_region: String,
    /// Credentials (`PIPEWRIGHT_S3_ACCESS_KEY_ID`,
    /// `PIPEWRIGHT_S3_SECRET_ACCESS_KEY`); the usual `AWS_*` variables, or
    /// the host's role, when unset.
    #[serde(default)]
    pub s3_access_key_id: Option<String>,
    #[serde(serialize_with = "skip_secret", deserialize_with = "lenient::secret", default)]
    pub s3_secret_access_key: Option<SecretString>,
    /// Days that artifacts and action logs are kept after the last
    /// execution that used them (`PIPEWRIGHT_ARTIFACT_RETENTION_DAYS`).
    pub artifact_retention_days: u32,
    /// Actions one worker process runs at once
    /// (`PIPEWRIGHT_RUNNER_CONCURRENCY`).
    pub runner_concurrency: u16,
    /// Most memory an action's processes may hold together, in MiB
    /// (`PIPEWRIGHT_SANDBOX_MEMORY_MB`); each process's data is also capped
    /// at it.
    pub sandbox_memory_mb: u64,
    /// Most processes an action may run at once (`PIPEWRIGHT_SANDBOX_PROCESSES`).
    pub sandbox_processes: u64,
    /// Most CPU seconds one of an action's processes may use
    /// (`PIPEWRIGHT_SANDBOX_CPU_SECS`).
    pub sandbox_cpu_secs: u64,
    /// Most bytes of an action's log, in MiB (`PIPEWRIGHT_SANDBOX_LOG_MB`).
    pub sandbox_log_mb: u64,
    /// Most bytes of an action's workspace (and of its `/tmp`), in MiB
    /// (`PIPEWRIGHT_SANDBOX_WORKSPACE_MB`).
    pub sandbox_workspace_mb: u64,
    /// Host folders an operator grants every action
    /// (`PIPEWRIGHT_SANDBOX_FOLDERS`): `HOST[:SANDBOX][:ro|rw]`, comma
    /// separated, read-only unless `rw`. None by default.
    #[serde(deserialize_with = "lenient::string")]
    pub sandbox_folders: String,
    /// The first of the 4096 host user ids actions run as, one per action
    /// running on the host, when the worker runs as root
    /// (`PIPEWRIGHT_SANDBOX_FIRST_UID`).
    pub sandbox_first_uid: u32,
    /// What network an action's sandbox has (`PIPEWRIGHT_SANDBOX_NETWORK`):
    /// `none` (the default: loopback of its own only) or `egress` (public
    /// addresses; never this host nor a private, link-local or reserved
    /// range).
    pub sandbox_network: SandboxNetwork,
    /// Destinations an operator grants every action although they are this
    /// host's or private (`PIPEWRIGHT_SANDBOX_DESTINATIONS`, comma separated
    /// IPv4 `ADDRESS[/PREFIX][:PORT]` or `NAME[:PORT]`). With `none`, the
    /// sandbox reaches these and nothing else. None by default.
    #[serde(deserialize_with = "lenient::string")]
    pub sandbox_destinations: String,
    /// Host folders whose Git repositories (a path or `file://` URL) a Git
    /// source may name (`PIPEWRIGHT_GIT_ALLOWED_FOLDERS`, comma separated).
    /// None by default.
    #[serde(deserialize_with = "lenient::string")]
    pub git_allowed_folders: String,
    /// Hosts, addresses or CIDR ranges that a Git source's `http(s)`/`ssh`
    /// URL may name although they are this host's own or private
    /// (`PIPEWRIGHT_GIT_ALLOWED_HOSTS`, comma separated). None by default.
    #[serde(deserialize_with = "lenient::string")]
    pub git_allowed_hosts: String,
    /// The URL the service is reached at from outside
    /// (`PIPEWRIGHT_PUBLIC_URL`, e.g. `https://ci.example.com`): webhooks'
    /// receiving URLs and notifications' links to the console start with
    /// it. By default `http://` and `listen` (`0.0.0.0` read as 127.0.0.1).
    #[serde(deserialize_with = "lenient::string")]
    pub public_url: String,
}

/// What network an action's sandbox has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxNetwork {
    /// Loopback of its own only (plus the granted destinations).
    None,
    /// Public addresses too, through a user-mode network stack.
    Egress,
}

/// A destination granted to every action's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedDestination {
    pub host: DestinationHost,
    /// Every port when `None`.
    pub port: Option<u16>,
}

/// The host part of a granted destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHost {
    Range(ipnet::Ipv4Net),
    /// Resolved (IPv4) each time an action starts.
    Name(String),
}

/// A host folder granted to every action's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedFolder {
    pub host: PathBuf,
    pub sandbox: PathBuf,
    pub writable: bool,
}

impl Config {
    /// The folders of `PIPEWRIGHT_SANDBOX_FOLDERS`, or what is wrong with one.
    pub fn granted_folders(&self) -> Result<Vec<GrantedFolder>, String> {
        let mut out = Vec::new();
        for entry in self.sandbox_folders.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts: Vec<&str> = entry.split(':').collect();
            let writable = match parts.last() {
                Some(&"rw") => {
                    parts.pop();
                    true
                }
                Some(&"ro") => {
                    parts.pop();
                    false
                }
                _ => false,
            };
            let (host, sandbox) = match parts.as_slice() {
                [host] => (*host, *host),
                [host, sandbox] => (*host, *sandbox),
                _ => return Err(format!("PIPEWRIGHT_SANDBOX_FOLDERS: {entry:?} is not HOST[:SANDBOX][:ro|rw]")),
            };
            let (host, sandbox) = (PathBuf::from(host), PathBuf::from(sandbox));
            let plain =
                |p: &Path| p.is_absolute() && p.components().all(|c| !matches!(c, std::path::Component::ParentDir));
            if !plain(&host) || !plain(&sandbox) || sandbox == Path::new("/") {
                return Err(format!(
                    "PIPEWRIGHT_SANDBOX_FOLDERS: {entry:?} must name absolute paths without `..` (and not `/` in the sandbox)"
                ));
            }
            out.push(GrantedFolder { host, sandbox, writable });
        }
        Ok(out)
    }

    /// The entries of `PIPEWRIGHT_SANDBOX_DESTINATIONS`, or what is wrong
    /// with one.
    pub fn granted_destinations(&self) -> Result<Vec<GrantedDestination>, String> {
        self.sandbox_destinations
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let wrong = |why: &str| {
                    format!("PIPEWRIGHT_SANDBOX_DESTINATIONS: {entry:?} {why} (entries are IPv4 ADDRESS[/PREFIX][:PORT] or NAME[:PORT])")
                };
                if entry.contains('[') || entry.matches(':').count() > 1 {
                    return Err(wrong("is IPv6, which sandboxes do not reach yet"));
                }
                let (host, port) = match entry.rsplit_once(':') {
                    Some((host, port)) => match port.parse::<u16>() {
                        Ok(port) if port > 0 => (host, Some(port)),
                        _ => return Err(wrong("has a port that is not a number from 1 to 65535")),
                    },
                    None => (entry, None),
                };
                let range = host
                    .parse::<ipnet::Ipv4Net>()
                    .map(|r| r.trunc())
                    .or_else(|_| host.parse::<std::net::Ipv4Addr>().map(ipnet::Ipv4Net::from));
                let host = if let Ok(range) = range {
                    let overlaps = |other: &str| {
                        other.parse::<ipnet::Ipv4Net>().is_ok_and(|o| range.contains(&o.network()) || o.contains(&range.network()))
                    };
                    // The host's loopback is one address the sandbox reaches
                    // (as host.pipewright.internal), granted on purpose only.
                    if overlaps("127.0.0.0/8") && range != ipnet::Ipv4Net::from(std::net::Ipv4Addr::LOCALHOST) {
                        return Err(wrong("covers the host's loopback, which is granted as 127.0.0.1[:PORT] only"));
                    }
                    if overlaps("10.0.2.0/24") {
                        return Err(wrong("covers 10.0.2.0/24, the sandbox's own network: grant a narrower range"));
                    }
                    DestinationHost::Range(range)
                } else if !host.is_empty()
                    && host.len() <= 253
                    && host.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    })
                    && !host.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '/')
                {
                    DestinationHost::Name(host.to_ascii_lowercase())
                } else {
                    return Err(wrong("is not an address, a CIDR range or a host name"));
                };
                Ok(GrantedDestination { host, port })
            })
            .collect()
    }

    /// Whether an action's sandbox has a network beyond its own loopback.
    pub fn sandbox_has_network(&self) -> bool {
        self.sandbox_network == SandboxNetwork::Egress || !self.sandbox_destinations.trim().is_empty()
    }

    /// The folders of `PIPEWRIGHT_GIT_ALLOWED_FOLDERS`.
    pub fn git_folders(&self) -> Vec<PathBuf> {
        self.git_allowed_folders.split(',').map(str::trim).filter(|e| !e.is_empty()).map(PathBuf::from).collect()
    }

    /// The ranges of `PIPEWRIGHT_TRUSTED_PROXIES`, or the entry that is none.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("PIPEWRIGHT_TRUSTED_PROXIES: {entry:?} is not an address or CIDR range"))
            })
            .collect()
    }

    /// Where the service is reached from outside, without a trailing `/`.
    pub fn public_url(&self) -> String {
        let given = self.public_url.trim().trim_end_matches('/');
        if !given.is_empty() {
            return given.to_owned();
        }
        let listen = self.listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
        format!("http://{listen}")
    }

    /// The entries of `PIPEWRIGHT_GIT_ALLOWED_HOSTS`.
    pub fn git_hosts(&self) -> Vec<String> {
        self.git_allowed_hosts.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect()
    }
}

/// Who may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signup {
    Open,
    Operator,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: Dsn::new("postgres://postgres@127.0.0.1:5432/pipewright"),
            amqp_url: Dsn::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            redis_url: Dsn::new("redis://127.0.0.1:6379/0"),
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("data"),
            jwt_secret: None,
            jwt_previous_secrets: None,
            secrets_key: None,
            amqp_prefix: "pipewright".to_owned(),
            redis_prefix: "pw:".to_owned(),
            amqp_queue_expires_secs: 0,
            action_lease_secs: 30,
            git_poll_secs: 30,
            job_ack_secs: 60,
            db_pool_size: 16,
            http_workers: 0,
            log: "info".to_owned(),
            log_format: LogFormat::Json,
            shutdown_timeout_secs: 8,
            region: "local".to_owned(),
            signup: Signup::Open,
            operator_token: None,
            access_token_secs: 900,
            session_secs: 12 * 3600,
            signin_window_secs: 300,
            trusted_proxies: String::new(),
            audit_digest_secs: 60,
            artifact_store: "local".to_owned(),
            s3_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            artifact_retention_days: 30,
            runner_concurrency: 8,
            sandbox_memory_mb: 2048,
            sandbox_processes: 256,
            sandbox_cpu_secs: 3600,
            sandbox_log_mb: 64,
            sandbox_workspace_mb: 4096,
            sandbox_folders: String::new(),
            sandbox_first_uid: 810_000,
            sandbox_network: SandboxNetwork::None,
            sandbox_destinations: String::new(),
            git_allowed_folders: String::new(),
            git_allowed_hosts: String::new(),
            public_url: String::new(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} (from PIPEWRIGHT_CONFIG) does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the configuration from the process environment and the file it
    /// names (`PIPEWRIGHT_CONFIG`, else `pipewright.toml` when present).
    pub fn load() -> Result<Self, ConfigError> {
        let explicit = std::env::var_os("PIPEWRIGHT_CONFIG").map(PathBuf::from);
        Self::figment(explicit.as_deref())?
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
            .and_then(Self::validated)
    }

    fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let file = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        Ok(figment
            .merge(Env::raw().only(&["DATABASE_URL", "AMQP_URL", "REDIS_URL"]))
            .merge(Env::prefixed("PIPEWRIGHT_").ignore(&["CONFIG"])))
    }

    fn validated(self) -> Result<Self, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for (name, dsn, schemes) in [
            ("DATABASE_URL", &self.database_url, &["postgres", "postgresql"][..]),
            ("AMQP_URL", &self.amqp_url, &["amqp", "amqps"][..]),
            ("REDIS_URL", &self.redis_url, &["redis", "rediss"][..]),
        ] {
            if !schemes.contains(&dsn.scheme()) {
                return invalid(format!("{name} must be a URL starting with {}://, got {dsn}", schemes[0]));
            }
        }
        if self.listen.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
            return invalid(format!("PIPEWRIGHT_LISTEN must be host:port, e.g. 127.0.0.1:8080, got {:?}", self.listen));
        }
        if self.signup == Signup::Operator && self.operator_token.is_none() {
            return invalid("PIPEWRIGHT_SIGNUP=operator needs PIPEWRIGHT_OPERATOR_TOKEN".to_owned());
        }
        if !(60..=43_200).contains(&self.access_token_secs) {
            return invalid("PIPEWRIGHT_ACCESS_TOKEN_SECS must be between 60 and 43200".to_owned());
        }
        if self.db_pool_size == 0 {
            return invalid("PIPEWRIGHT_DB_POOL_SIZE must be at least 1".to_owned());
        }
        if !(1..=256).contains(&self.runner_concurrency) {
            return invalid("PIPEWRIGHT_RUNNER_CONCURRENCY must be between 1 and 256".to_owned());
        }
        if !(1..=3653).contains(&self.artifact_retention_days) {
            return invalid("PIPEWRIGHT_ARTIFACT_RETENTION_DAYS must be between 1 and 3653".to_owned());
        }
        for (name, value, range) in [
            ("PIPEWRIGHT_SANDBOX_MEMORY_MB", self.sandbox_memory_mb, 16..=1_048_576),
            ("PIPEWRIGHT_SANDBOX_PROCESSES", self.sandbox_processes, 8..=65_536),
            ("PIPEWRIGHT_SANDBOX_CPU_SECS", self.sandbox_cpu_secs, 1..=31_536_000),
            ("PIPEWRIGHT_SANDBOX_LOG_MB", self.sandbox_log_mb, 1..=65_536),
            ("PIPEWRIGHT_SANDBOX_WORKSPACE_MB", self.sandbox_workspace_mb, 1..=16_777_216),
        ] {
            if !range.contains(&value) {
                return invalid(format!("{name} must be between {} and {}", range.start(), range.end()));
            }
        }
        if !(1000..=u32::MAX - 4096).contains(&self.sandbox_first_uid) {
            return invalid("PIPEWRIGHT_SANDBOX_FIRST_UID must be at least 1000".to_owned());
        }
        self.granted_folders().map_err(ConfigError::Invalid)?;
        self.granted_destinations().map_err(ConfigError::Invalid)?;
        self.proxies().map_err(ConfigError::Invalid)?;
        if let Some(folder) = self.git_folders().iter().find(|f| !f.is_absolute()) {
            return invalid(format!(
                "PIPEWRIGHT_GIT_ALLOWED_FOLDERS must name absolute paths, got {}",
                folder.display()
            ));
        }
        let store = self.artifact_store.trim();
        if !(store == "local"
            || store.strip_prefix("s3://").is_some_and(|rest| !rest.starts_with('/') && !rest.is_empty()))
        {
            return invalid(format!(
                "PIPEWRIGHT_ARTIFACT_STORE must be `local` or s3://bucket[/prefix], got {:?}",
                self.artifact_store
            ));
        }
        Ok(self)
    }
}

fn skip_secret<S: Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

/// A connection URL that may carry a password: it prints with the password
/// masked, so that it can be logged and shown in error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn(String);

impl Dsn {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: for the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The part before `://`.
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// `host:port` as written in the URL (for messages).
    pub fn host_port(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        authority.rsplit_once('@').map_or(authority, |(_, host)| host)
    }

    /// The URL with a password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                let masked = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{masked}@{host}{tail}")
            }
            None => self.0.clone(),
        }
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dsn({})", self.redacted())
    }
}

impl Serialize for Dsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Dsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::string(d).map(Dsn)
    }
}

/// Environment values arrive typed by their look (`8080` as a number, `true`
/// as a boolean): text fields take them as the text they were.
mod lenient {
    use std::fmt;

    use secrecy::SecretString;
    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    struct Text;

    impl Visitor<'_> for Text {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_bool<E: Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(Text)
    }

    struct MaybeText;

    impl<'de> Visitor<'de> for MaybeText {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or nothing")
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            string(d).map(Some)
        }
    }

    pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        d.deserialize_option(MaybeText).map(|s| s.map(SecretString::from))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err, reason = "figment's Jail returns figment's error")]
mod tests {
    use super::*;

    #[test]
    fn dsn_masks_the_password_and_nothing_else() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/pw", "postgres://postgres@127.0.0.1:5432/pw"),
            ("amqp://guest:guest@127.0.0.1:5672/%2f", "amqp://guest:***@127.0.0.1:5672/%2f"),
            ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("postgres://u:p@ss@h/db?x=@", "postgres://u:***@h/db?x=@"),
        ];
        for (url, shown) in cases {
            let dsn = Dsn::new(url);
            assert_eq!(dsn.to_string(), shown);
            assert_eq!(format!("{dsn:?}"), format!("Dsn({shown})"));
        }
        assert_eq!(Dsn::new("postgres://u:p@db.example:5433/x").host_port(), "db.example:5433");
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pw.toml", "listen = \"0.0.0.0:9000\"\nlog = \"debug\"\n")?;
            jail.set_env("PIPEWRIGHT_CONFIG", "pw.toml");
            jail.set_env("PIPEWRIGHT_LOG", "warn");
            jail.set_env("DATABASE_URL", "postgres://a:b@db:5432/x");
            jail.set_env("PIPEWRIGHT_DATA_DIR", "/var/lib/pw");
            let config = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "0.0.0.0:9000");
            assert_eq!(config.log, "warn");
            assert_eq!(config.database_url.expose(), "postgres://a:b@db:5432/x");
            assert_eq!(config.data_dir, PathBuf::from("/var/lib/pw"));
            assert_eq!(config.redis_url.expose(), "redis://127.0.0.1:6379/0");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            // Each bad value in turn, named in the error; then a good one in its place.
            let refused = |jail: &mut figment::Jail, var: &str, bad: &str, says: &str, good: &str| {
                jail.set_env(var, bad);
                let err = Config::load().expect_err(bad).to_string();
                assert!(err.contains(says), "{err}");
                jail.set_env(var, good);
            };
            refused(jail, "AMQP_URL", "http://x", "AMQP_URL must be a URL starting with amqp://", "amqp://x");
            refused(jail, "PIPEWRIGHT_LISTEN", "8080", "PIPEWRIGHT_LISTEN must be host:port", "127.0.0.1:0");
            refused(jail, "PIPEWRIGHT_CONFIG", "missing.toml", "missing.toml", "missing.toml");
            jail.clear_env();
            refused(
                jail,
                "PIPEWRIGHT_ARTIFACT_STORE",
                "/srv/artifacts",
                "PIPEWRIGHT_ARTIFACT_STORE must be `local` or s3://bucket[/prefix]",
                "s3://team-bucket/pipewright",
            );
            refused(
                jail,
                "PIPEWRIGHT_ARTIFACT_RETENTION_DAYS",
                "0",
                "PIPEWRIGHT_ARTIFACT_RETENTION_DAYS must be between 1 and 3653",
                "7",
            );
            refused(
                jail,
                "PIPEWRIGHT_RUNNER_CONCURRENCY",
                "0",
                "PIPEWRIGHT_RUNNER_CONCURRENCY must be between 1 and 256",
                "16",
            );
            refused(
                jail,
                "PIPEWRIGHT_SANDBOX_NETWORK",
                "bridge",
                "found `bridge`, expected ``none` or `egress``",
                "egress",
            );
            for (bad, says) in [
                ("10.0.0.1:http", "has a port that is not a number"),
                ("[fd00::1]:443", "is IPv6"),
                ("-x.example", "is not an address"),
                ("10.0.0.0/8:5432", "covers 10.0.2.0/24"),
                ("0.0.0.0/0:443", "covers the host's loopback"),
                ("127.0.0.2:80", "covers the host's loopback"),
                ("10.0.0.300", "is not an address"),
            ] {
                refused(
                    jail,
                    "PIPEWRIGHT_SANDBOX_DESTINATIONS",
                    bad,
                    says,
                    "10.1.2.0/24:5432, Registry.internal, 127.0.0.1:80",
                );
            }
            let config = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(
                (config.artifact_store.as_str(), config.artifact_retention_days, config.runner_concurrency),
                ("s3://team-bucket/pipewright", 7, 16)
            );
            assert_eq!(config.sandbox_network, SandboxNetwork::Egress);
            assert_eq!(
                config.granted_destinations()?,
                vec![
                    GrantedDestination {
                        host: DestinationHost::Range("10.1.2.0/24".parse().unwrap()),
                        port: Some(5432)
                    },
                    GrantedDestination { host: DestinationHost::Name("registry.internal".to_owned()), port: None },
                    GrantedDestination {
                        host: DestinationHost::Range("127.0.0.1/32".parse().unwrap()),
                        port: Some(80)
                    },
                ]
            );
            Ok(())
        });
    }
}
