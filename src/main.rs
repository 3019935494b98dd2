//! `pipewright`: one binary, roles by argument.
//!
//! - `pipewright run` (default): the API and the worker in one process.
//! - `pipewright api` / `pipewright worker`: one role, for running apart.
//! - `pipewright openapi`: print the OpenAPI document the code generates.

mod bench;

use std::process::ExitCode;
use std::time::Duration;

use pipewright_core::config::{Config, LogFormat};
use pipewright_core::services::Services;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Pipewright: a self-hosted, multi-tenant continuous-delivery service.
///
/// Configuration: environment variables (DATABASE_URL, AMQP_URL, REDIS_URL,
/// PIPEWRIGHT_LISTEN, PIPEWRIGHT_DATA_DIR, ...) over a TOML file
/// (PIPEWRIGHT_CONFIG, default ./pipewright.toml). See README.md.
#[derive(clap::Parser)]
#[command(name = "pipewright", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The API and the worker together (the default)
    Run,
    /// The HTTP API only
    Api,
    /// The worker only; it serves /healthz, /readyz and /metrics on PIPEWRIGHT_LISTEN
    Worker,
    /// Print the OpenAPI document and exit
    Openapi,
    /// Check an account's audit hash chain (and digests) straight from the
    /// database; print the result as JSON, exit 0 when valid, 1 when not
    AuditVerify {
        /// The account's 12-digit id (or `anonymous`)
        account: String,
        /// Only events from this RFC 3339 time
        #[arg(value_parser = rfc3339)]
        start: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events before this RFC 3339 time
        #[arg(value_parser = rfc3339)]
        end: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Add a new access-token (jwt) or audit-signing (audit) key; it signs a
    /// minute later, once every process has loaded it, and the keys before it
    /// still verify (access-token keys for one token lifetime more, audit keys
    /// for ever)
    RotateKey {
        #[arg(value_enum)]
        purpose: KeyPurpose,
    },
    /// GET PATH of the process serving at PIPEWRIGHT_LISTEN on this host; exit
    /// 0 when it answers 200 (a container's HEALTHCHECK: the image has no curl)
    Healthcheck {
        #[arg(default_value = "/readyz")]
        path: String,
    },
    /// Fill a scratch database with EVENTS audit events and print LookupEvents
    /// latencies by filter
    BenchAudit {
        #[arg(default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
        events: u64,
    },
    /// Run EXECUTIONS executions of 3-stage pipelines through one, then two
    /// worker processes; print executions per second and stage transition
    /// delays. With MILLIS, each shell action waits that long
    BenchExecutions {
        #[arg(default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        executions: u64,
        #[arg(default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
        millis: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyPurpose {
    Jwt,
    Audit,
}

fn rfc3339(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time (2026-12-01T00:00:00Z): {e}"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Both,
    Api,
    Worker,
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let role = match cli.command.unwrap_or(Command::Run) {
        Command::Run => Role::Both,
        Command::Api => Role::Api,
        Command::Worker => Role::Worker,
        Command::Openapi => return print_openapi(),
        Command::AuditVerify { account, start, end } => return audit_verify(account, start, end),
        Command::RotateKey { purpose } => {
            return rotate_key(match purpose {
                KeyPurpose::Jwt => pipewright_core::keyring::Purpose::Jwt,
                KeyPurpose::Audit => pipewright_core::keyring::Purpose::Audit,
            });
        }
        Command::Healthcheck { path } => return healthcheck(&path),
        Command::BenchAudit { events } => return bench::audit_lookup(events),
        Command::BenchExecutions { executions, millis } => {
            return bench::executions(usize::try_from(executions).unwrap_or(usize::MAX), millis);
        }
    };
    let (config, runtime) = match setup() {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    init_logging(&config);
    runtime.block_on(serve(role, config))
}

/// The configuration and the async runtime every command starts from.
pub(crate) fn setup() -> Result<(Config, tokio::runtime::Runtime), ExitCode> {
    let config = Config::load().map_err(|e| {
        eprintln!("pipewright: {e}");
        ExitCode::from(2)
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("pipewright: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })?;
    Ok((config, runtime))
}

fn print_openapi() -> ExitCode {
    match pipewright_api::openapi().to_pretty_json() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipewright: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter: Targets = config.log.parse().unwrap_or_else(|e| {
        eprintln!("pipewright: PIPEWRIGHT_LOG {:?} is not a log filter ({e}); using info", config.log);
        Targets::new().with_default(tracing::Level::INFO)
    });
    let registry = tracing_subscriber::registry().with(filter);
    match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text => {
            // A value a caller sent (a user name holding a newline) must not
            // start a line of its own: control characters are escaped.
            use tracing_subscriber::field::MakeExt;
            let fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
                let text = escape_controls(&format!("{value:?}"));
                if field.name() == "message" { write!(writer, "{text}") } else { write!(writer, "{field}={text}") }
            })
            .delimited(" ");
            registry.with(tracing_subscriber::fmt::layer().fmt_fields(fields).with_writer(std::io::stderr)).init();
        }
    }
}

/// `text` with every control character written as an escape (`\n`,
/// `\u{1b}`), so that it stays on its line.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

async fn serve(role: Role, config: Config) -> ExitCode {
    let services = match Services::connect(&config).await {
        Ok(services) => services,
        Err(missing) => {
            for unavailable in &missing {
                eprintln!("pipewright: cannot start: {}", unavailable.explain());
            }
            return ExitCode::FAILURE;
        }
    };

    let shutdown = CancellationToken::new();
    let settings = match pipewright_worker::Settings::from_config(&config) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("pipewright: {e}");
            services.close().await;
            return ExitCode::FAILURE;
        }
    };
    // The keys every api process shares, from the database.
    let shared_keys = if role == Role::Worker {
        None
    } else {
        match shared_keys(&config, &services).await {
            Ok(keys) => Some(keys),
            Err(message) => {
                eprintln!("pipewright: {message}");
                services.close().await;
                return ExitCode::FAILURE;
            }
        }
    };
    let worker =
        (role != Role::Api).then(|| tokio::spawn(pipewright_worker::run(services.clone(), settings, shutdown.clone())));
    // The api serves on PIPEWRIGHT_LISTEN; a worker alone serves its probes
    // and metrics there. Where is printed on standard output.
    let listening = |addr: std::net::SocketAddr, line: &dyn Fn(&str) -> String| {
        let url = format!("http://{addr}");
        tracing::info!(%url, "listening");
        println!("{}", line(&url));
    };
    let started = (|| -> std::io::Result<_> {
        let api = match shared_keys {
            Some(keys) => Some(pipewright_api::start(&config, services.clone(), keys)?),
            None => None,
        };
        let health = match role {
            Role::Worker => Some(pipewright_api::start_health(&config, services.clone())?),
            _ => None,
        };
        Ok((api, health))
    })();
    let (api, health) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("pipewright: {e}");
            shutdown.cancel();
            return ExitCode::FAILURE;
        }
    };
    if let Some(api) = &api {
        listening(api.addr, &|url| {
            format!("Pipewright is serving at {url} (API reference: {url}/docs, readiness: {url}/readyz)")
        });
    }
    if let Some(health) = &health {
        listening(health.addr, &|url| {
            format!("Pipewright worker is running; it serves /healthz, /readyz and /metrics at {url}")
        });
    }
    let health_handle = health.as_ref().map(|h| h.handle.clone());
    if let Some(health) = health {
        tokio::spawn(health.server);
    }

    let stopping = api.as_ref().map(|api| api.stopping.clone());
    let (audit, api): (Option<_>, Option<_>) = api.map(|api| (api.audit, (api.handle, api.server))).unzip();
    let (handle, server) = api.unzip();
    let server = tokio::spawn(async move {
        match server {
            Some(server) => server.await,
            None => std::future::pending().await,
        }
    });
    let mut code = ExitCode::SUCCESS;
    tokio::select! {
        signal = shutdown_signal() => tracing::info!(signal, "shutting down"),
        ended = server => {
            tracing::error!(?ended, "the HTTP server stopped by itself");
            code = ExitCode::FAILURE;
        }
    }

    // Stop taking requests, let in-flight ones and jobs finish, then flush.
    shutdown.cancel();
    if let Some(stopping) = stopping {
        stopping.cancel();
    }
    let grace = Duration::from_secs(config.shutdown_timeout_secs + 1);
    let drained = tokio::time::timeout(grace, async {
        if let Some(handle) = handle {
            handle.stop(true).await;
        }
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(health) = health_handle {
            health.stop(true).await;
        }
        // The server is gone, and with it every sender: the writer drains.
        if let Some(audit) = audit {
            audit.drained().await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(seconds = grace.as_secs(), "in-flight work did not finish in time");
    }
    services.close().await;
    tracing::info!("stopped");
    code
}

/// The access tokens' and audit digests' keys, made once and shared
/// through the database (decision 016).
async fn shared_keys(config: &Config, services: &Services) -> Result<pipewright_core::keyring::SharedKeys, String> {
    let cipher = pipewright_core::secrets::Cipher::from_config(config)?;
    let mut conn = services.db.conn().await.map_err(|e| e.explain())?;
    pipewright_core::keyring::SharedKeys::open(&mut conn, config, &cipher).await.map_err(|e| e.to_string())
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// `pipewright healthcheck [PATH]`: GET PATH of the process serving at
/// PIPEWRIGHT_LISTEN on this host (0.0.0.0 asked of 127.0.0.1), within 5 s.
fn healthcheck(path: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pipewright: {e}");
            return ExitCode::from(2);
        }
    };
    let listen = config.listen.replacen("0.0.0.0:", "127.0.0.1:", 1).replacen("[::]:", "[::1]:", 1);
    let asked = (|| -> std::io::Result<String> {
        let addr = listen.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("no address"))?;
        let timeout = Duration::from_secs(5);
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {listen}\r\n\r\n")?;
        let mut answer = String::new();
        stream.take(4096).read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_owned())
    })();
    match asked {
        Ok(status) if status.split_whitespace().nth(1) == Some("200") => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("pipewright: {listen}{path} answered {status:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pipewright: {listen}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pipewright rotate-key jwt|audit`: a new shared key, which signs once
/// every process has had time to load it.
fn rotate_key(purpose: pipewright_core::keyring::Purpose) -> ExitCode {
    use pipewright_core::keyring::{self, Purpose};
    let (config, runtime) = match setup() {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    if purpose == Purpose::Jwt && config.jwt_secret.is_some() {
        eprintln!(
            "pipewright: PIPEWRIGHT_JWT_SECRET is set, so access-token keys come from the configuration: move it to \
             PIPEWRIGHT_JWT_PREVIOUS_SECRETS and set a new one (README, Keys)"
        );
        return ExitCode::from(2);
    }
    runtime.block_on(async {
        let rotated = async {
            let cipher = pipewright_core::secrets::Cipher::from_config(&config)?;
            let db = pipewright_core::db::Db::connect(&config.database_url, 2).await.map_err(|e| e.explain())?;
            let mut conn = db.conn().await.map_err(|e| e.explain())?;
            keyring::SharedKeys::open(&mut conn, &config, &cipher).await.map_err(|e| e.to_string())?;
            // An access token signed by an old key lives at most this long.
            let grace = (purpose == Purpose::Jwt)
                .then(|| chrono::TimeDelta::seconds(config.access_token_secs.saturating_add(60)));
            keyring::rotate(&mut conn, &cipher, purpose, chrono::Utc::now(), grace).await.map_err(|e| e.to_string())
        };
        match rotated.await {
            Ok((id, from)) => {
                println!("{}", serde_json::json!({"purpose": purpose.as_str(), "keyId": id, "signsFrom": from}));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pipewright: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `pipewright audit-verify ACCOUNT [START [END]]`: the audit chain checked
/// straight from the database, as an operator would after an incident.
fn audit_verify(
    account: String,
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> ExitCode {
    let (config, runtime) = match setup() {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let db = match pipewright_core::db::Db::connect(&config.database_url, 2).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("pipewright: cannot start: {}", e.explain());
                return ExitCode::FAILURE;
            }
        };
        let mut conn = match db.conn().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("pipewright: {}", e.explain());
                return ExitCode::FAILURE;
            }
        };
        let keys = match pipewright_core::secrets::Cipher::from_config(&config) {
            Ok(cipher) => {
                pipewright_core::keyring::SharedKeys::open(&mut conn, &config, &cipher).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        let keys = match keys {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("pipewright: {e}");
                return ExitCode::FAILURE;
            }
        };
        match pipewright_core::audit::store::verify(&mut conn, &account, start, end, Some(&keys.audit)).await {
            Ok(result) => {
                println!("{}", serde_json::to_string(&result).unwrap_or_default());
                if result.valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            }
            Err(e) => {
                eprintln!("pipewright: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
