//! `factum serve`: the KurrentDB-compatible gRPC server on the embedded store.
//!
//! Settings come from the command line, then a TOML config file (`--config`), then defaults:
//! the store in `./factum-data`, listening on `localhost:2113` (IPv4 and IPv6 loopback),
//! plain-text HTTP/2 with anonymous access. `--tls-cert` and `--tls-key` serve TLS instead
//! (reloaded on SIGHUP); plain text on an address other than loopback needs `--insecure`.
//! Once every listener is bound the server prints one
//! `listening on ADDRESS` line per listener on standard output (scripts and tests wait for it);
//! logs go to standard error. SIGINT or SIGTERM shut it down gracefully: no new calls,
//! subscriptions ended, in-flight appends finished and answered, the store closed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use factum_log::EmbeddedStore;
use factum_server::auth::acl::{ADMINS_GROUP, AccessPolicy};
use factum_server::auth::users::UserStore;
use factum_server::metrics::{EngineSnapshot, EngineStatsSource, HistogramData};
use factum_server::{Advertised, DEFAULT_PORT, Limits, ServerOptions};
use serde::Deserialize;

/// The address `factum serve` listens on when none is given.
pub const DEFAULT_LISTEN: &str = "localhost:2113";

/// `factum serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// An address to listen on, `HOST:PORT` (repeat for several). A host name listens on every
    /// address it resolves to; port 0 picks a free port (printed at start). Default:
    /// localhost:2113.
    #[arg(long = "listen", value_name = "HOST:PORT")]
    pub listen: Vec<String>,

    /// The address clients are told to use in gossip, `HOST` or `HOST:PORT`. Default: the
    /// address each client connected to.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub advertise: Option<String>,

    /// The largest append accepted, in bytes (default: the store's limit, 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_append_bytes: Option<usize>,

    /// The server's certificate chain, a PEM file (with --tls-key): serves TLS, and reloads
    /// both files on SIGHUP. `factum dev-cert` makes a pair for development.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, a PEM file.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serves plain text on addresses other than loopback (logged as a warning): anyone on
    /// the network can read and write the store. Without TLS it is needed for any address
    /// but loopback.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure: bool,

    /// With TLS every call must authenticate as a user of the store (`factum user`). On the
    /// first secure start, when the store has no user yet, an `admin` (group `$admins`) is
    /// created with the password in this file (its first line), or else in the environment
    /// variable FACTUM_ADMIN_PASSWORD; without either the server refuses to start. There is
    /// no default password.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// Members of this group may read `$all` (and subscribe to it) besides admins; they see it
    /// without the streams whose `$acl` does not let them read.
    #[arg(long, value_name = "GROUP")]
    pub all_readers_group: Option<String>,

    /// Closes a connection that moves no byte for this many seconds (gRPC connections are
    /// pinged at half of it, so only dead or abusive ones go that quiet). Default 60.
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<f64>,

    /// Closes a connection that has not sent a whole first request this many seconds after
    /// it was accepted (slowloris). Default 10.
    #[arg(long, value_name = "SECONDS")]
    pub first_request_timeout: Option<f64>,

    /// The most subscriptions one connection may hold. Default 128.
    #[arg(long, value_name = "N")]
    pub max_subscriptions_per_connection: Option<usize>,

    /// The most subscriptions the server holds. Default 10000.
    #[arg(long, value_name = "N")]
    pub max_subscriptions: Option<usize>,

    /// The most requests a second one client (IP address) may make, in bursts of up to a
    /// second's worth; more get RESOURCE_EXHAUSTED / 429. Default: no limit.
    #[arg(long, value_name = "N")]
    pub max_requests_per_second: Option<u32>,

    /// How logs on standard error are written: `text` (for people) or `json` (one object a
    /// line, for log collectors). `RUST_LOG` chooses the level (default info; `debug` logs
    /// every gRPC call).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// A TOML file with any of: `data_dir`, `listen` (a list), `advertise`,
    /// `max_append_bytes`, `tls_cert`, `tls_key`, `insecure`, `idle_timeout`,
    /// `first_request_timeout`, `max_subscriptions_per_connection`, `max_subscriptions`,
    /// `max_requests_per_second`. Command-line options win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The config file's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    listen: Option<Vec<String>>,
    advertise: Option<String>,
    max_append_bytes: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure: Option<bool>,
    idle_timeout: Option<f64>,
    first_request_timeout: Option<f64>,
    max_subscriptions_per_connection: Option<usize>,
    max_subscriptions: Option<usize>,
    max_requests_per_second: Option<u32>,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(data_dir: &Path, data_dir_given: bool, args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let config = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let data_dir = match (data_dir_given, config.data_dir) {
        (false, Some(from_config)) => from_config,
        _ => data_dir.to_path_buf(),
    };
    let listen = if !args.listen.is_empty() {
        args.listen
    } else {
        config
            .listen
            .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()])
    };
    let advertised = parse_advertised(args.advertise.or(config.advertise).as_deref())?;
    let tls = load_tls(
        args.tls_cert.or(config.tls_cert),
        args.tls_key.or(config.tls_key),
    )?;
    if let Some(tls) = &tls {
        // Watched from now on, so a SIGHUP once the server is listening never stops it.
        reload_on_hangup(tls.clone());
    }
    let insecure = args.insecure || config.insecure.unwrap_or(false);
    let transport = if tls.is_some() {
        "TLS"
    } else {
        "plain-text HTTP/2"
    };
    let defaults = Limits::default();
    let limits = Limits {
        idle_timeout: seconds(
            "idle_timeout",
            args.idle_timeout.or(config.idle_timeout),
            defaults.idle_timeout,
        )?,
        first_request_timeout: seconds(
            "first_request_timeout",
            args.first_request_timeout.or(config.first_request_timeout),
            defaults.first_request_timeout,
        )?,
        max_subscriptions_per_connection: args
            .max_subscriptions_per_connection
            .or(config.max_subscriptions_per_connection)
            .unwrap_or(defaults.max_subscriptions_per_connection),
        max_subscriptions: args
            .max_subscriptions
            .or(config.max_subscriptions)
            .unwrap_or(defaults.max_subscriptions),
        max_requests_per_second_per_client: args
            .max_requests_per_second
            .or(config.max_requests_per_second)
            .or(defaults.max_requests_per_second_per_client),
    };
    let options = ServerOptions {
        tls,
        advertised,
        max_append_bytes: args.max_append_bytes.or(config.max_append_bytes),
        engine_stats: None,
        users: None,
        access: AccessPolicy::default(),
        limits,
    };

    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let store = crate::commands::open(&data_dir, true)?;
    let engine_stats = engine_stats_source(&store);
    let store: Arc<EmbeddedStore> = Arc::new(store);
    // Secure means authenticated: with TLS, every call needs a user's credentials.
    let users = match options.tls {
        Some(_) => Some(secure_users(store.clone(), args.admin_password_file.as_deref()).await?),
        None => None,
    };
    let access = if users.is_some() {
        "basic authentication"
    } else {
        "anonymous access"
    };
    let options = ServerOptions {
        engine_stats: Some(engine_stats),
        users,
        access: AccessPolicy {
            all_readers_group: args.all_readers_group.clone(),
        },
        ..options
    };
    let listeners = factum_server::bind(&listen).await?;
    let bound = listeners
        .iter()
        .map(|listener| listener.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    check_plain_text(&bound, options.tls.is_some(), insecure)?;
    let mut addresses = Vec::new();
    for listener in &listeners {
        let address = listener.local_addr()?;
        addresses.push(address.to_string());
        crate::commands::print_line(&format!("listening on {address}"))?;
    }
    tracing::info!(
        data_dir = %data_dir.display(),
        listen = ?addresses,
        transport,
        access,
        "factum serve: ready"
    );

    factum_server::serve(store.clone(), listeners, options, shutdown_signal()).await?;
    // Calls that outlived the transport (a BatchAppend finishing its appends) hold the store
    // a moment longer; the store closes when the last of them lets go.
    match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(_) => tracing::debug!("the store closes when the last call ends"),
    }
    tracing::info!("factum serve: stopped");
    Ok(())
}

/// A timeout given in seconds, or its default; refused unless it is a positive number a
/// `Duration` holds.
fn seconds(name: &str, given: Option<f64>, default: Duration) -> anyhow::Result<Duration> {
    match given {
        None => Ok(default),
        Some(value) if value > 0.0 => Duration::try_from_secs_f64(value)
            .map_err(|_| anyhow::anyhow!("{name} {value} is out of range")),
        Some(value) => anyhow::bail!("{name} must be a positive number of seconds, not {value}"),
    }
}

/// The environment variable that holds the first admin's password.
const ADMIN_PASSWORD_ENV: &str = "FACTUM_ADMIN_PASSWORD";

/// The users of a secure server: the store's, with an `admin` created first if there are
/// none, from the password the operator supplies (never a known default).
async fn secure_users(
    store: Arc<EmbeddedStore>,
    admin_password_file: Option<&Path>,
) -> anyhow::Result<Arc<UserStore>> {
    let users = UserStore::new(store);
    if !users.list().await?.is_empty() {
        return Ok(Arc::new(users));
    }
    let password = match admin_password_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin password file {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => std::env::var(ADMIN_PASSWORD_ENV).unwrap_or_default(),
    };
    if password.is_empty() {
        anyhow::bail!(
            "a secure server needs users and this store has none: give the first admin's \
             password with --admin-password-file FILE or {ADMIN_PASSWORD_ENV}, or add users \
             with `factum user add`"
        );
    }
    users
        .create(
            "admin",
            "Administrator",
            &[ADMINS_GROUP.to_owned()],
            &password,
        )
        .await?;
    tracing::info!("created the user admin (group $admins) on this first secure start");
    Ok(Arc::new(users))
}

/// The TLS configuration the two files make, if given (clap and the config file make sure
/// both are, or neither).
fn load_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<factum_server::TlsConfig>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(certificate_chain), Some(private_key)) => {
            let config = factum_server::TlsConfig::load(factum_server::TlsSettings {
                certificate_chain,
                private_key,
            })?;
            Ok(Some(config))
        }
        (Some(_), None) => anyhow::bail!("tls_cert is set but tls_key is not: give both"),
        (None, Some(_)) => anyhow::bail!("tls_key is set but tls_cert is not: give both"),
    }
}

/// Reloads the TLS certificate and key on each SIGHUP, for as long as the process runs.
fn reload_on_hangup(tls: factum_server::TlsConfig) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tls.reload_and_log();
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; the TLS certificate will not reload");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
    }
}

/// Plain text is the default on loopback only: elsewhere it takes `--insecure`, and a warning.
fn check_plain_text(
    bound: &[std::net::SocketAddr],
    tls: bool,
    insecure: bool,
) -> anyhow::Result<()> {
    if tls {
        return Ok(());
    }
    let exposed: Vec<String> = bound
        .iter()
        .filter(|address| !address.ip().is_loopback())
        .map(ToString::to_string)
        .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        insecure,
        "refusing to serve plain text on {}, which is not loopback: give --tls-cert and \
         --tls-key (`factum dev-cert` makes a pair for development), or --insecure to let \
         anyone on the network read and write the store",
        exposed.join(", ")
    );
    tracing::warn!(
        listen = ?exposed,
        "--insecure: serving plain text, unauthenticated, beyond loopback"
    );
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse_advertised(advertise: Option<&str>) -> anyhow::Result<Advertised> {
    let Some(text) = advertise else {
        return Ok(Advertised {
            host: None,
            port: None,
        });
    };
    // `[::1]:2113`, `host:2113`, or a bare host (the default port).
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .with_context(|| format!("invalid port in --advertise {text:?}"))?;
            (host.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (text, DEFAULT_PORT),
    };
    Ok(Advertised {
        host: Some(host.to_owned()),
        port: Some(port),
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the server");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// How `factum serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal).
    Text,
    /// One JSON object a line: time, level, message, fields, target.
    Json,
}

/// Logs to standard error in `format`; `RUST_LOG` chooses the level (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// The embedded engine's figures (fsync latency, group-commit sizes), for `/metrics`.
fn engine_stats_source(store: &EmbeddedStore) -> EngineStatsSource {
    let stats = store.stats();
    // Divided rather than multiplied, so bounds print as `0.00005`, not `0.000049999…`.
    let histogram = |snapshot: factum_log::HistogramSnapshot, divisor: f64| HistogramData {
        bounds: snapshot
            .bounds
            .iter()
            .map(|bound| *bound as f64 / divisor)
            .collect(),
        counts: snapshot.counts,
        sum: snapshot.sum as f64 / divisor,
    };
    EngineStatsSource::new(move || EngineSnapshot {
        fsync_seconds: histogram(stats.fsync_micros.snapshot(), 1e6),
        group_commit_events: histogram(stats.group_events.snapshot(), 1.0),
        group_commit_writes: histogram(stats.group_writes.snapshot(), 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_addresses_take_a_host_and_an_optional_port() {
        let advertised = parse_advertised(Some("events.example:3000")).unwrap();
        assert_eq!(advertised.host.as_deref(), Some("events.example"));
        assert_eq!(advertised.port, Some(3000));
        let bare = parse_advertised(Some("localhost")).unwrap();
        assert_eq!(bare.port, Some(DEFAULT_PORT));
        let ipv6 = parse_advertised(Some("[::1]:2113")).unwrap();
        assert_eq!(ipv6.host.as_deref(), Some("::1"));
        assert!(parse_advertised(Some("host:notaport")).is_err());
    }

    #[test]
    fn plain_text_beyond_loopback_needs_insecure() {
        let loopback: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:2113".parse().unwrap(),
            "[::1]:2113".parse().unwrap(),
        ];
        let exposed: Vec<std::net::SocketAddr> = vec![
            "127.0.0.1:2113".parse().unwrap(),
            "0.0.0.0:2113".parse().unwrap(),
        ];
        assert!(check_plain_text(&loopback, false, false).is_ok());
        let refused = check_plain_text(&exposed, false, false).unwrap_err();
        assert!(refused.to_string().contains("0.0.0.0:2113"), "{refused}");
        assert!(check_plain_text(&exposed, false, true).is_ok());
        assert!(check_plain_text(&exposed, true, false).is_ok());
        let parsed: ConfigFile =
            toml::from_str("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ninsecure = false").unwrap();
        assert_eq!(parsed.tls_cert.unwrap(), PathBuf::from("c.pem"));
        assert!(load_tls(Some("c.pem".into()), None).is_err());
    }

    #[test]
    fn the_config_file_refuses_unknown_keys() {
        let parsed: Result<ConfigFile, _> = toml::from_str("listen = [\"127.0.0.1:0\"]\nport = 1");
        assert!(parsed.is_err());
        let parsed: ConfigFile =
            toml::from_str("data_dir = \"d\"\nlisten = [\"127.0.0.1:0\"]").unwrap();
        assert_eq!(parsed.listen.unwrap(), vec!["127.0.0.1:0".to_owned()]);
    }
}
