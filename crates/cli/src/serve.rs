//! `factum serve`: the KurrentDB-compatible gRPC server on the embedded store.
//!
//! Settings come from the command line, then a TOML config file (`--config`), then defaults:
//! the store in `./factum-data`, listening on `localhost:2113` (IPv4 and IPv6 loopback),
//! plain-text HTTP/2 with anonymous access. Once every listener is bound the server prints one
//! `listening on ADDRESS` line per listener on standard output (scripts and tests wait for it);
//! logs go to standard error. SIGINT or SIGTERM shut it down gracefully: no new calls,
//! subscriptions ended, in-flight appends finished and answered, the store closed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use factum_log::EmbeddedStore;
use factum_server::{Advertised, DEFAULT_PORT, ServerOptions};
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

    /// A TOML file with any of: `data_dir`, `listen` (a list), `advertise`,
    /// `max_append_bytes`. Command-line options win over it.
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
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(data_dir: &Path, data_dir_given: bool, args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
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
    let options = ServerOptions {
        advertised,
        max_append_bytes: args.max_append_bytes.or(config.max_append_bytes),
    };

    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let store = crate::commands::open(&data_dir, true)?;
    let listeners = factum_server::bind(&listen).await?;
    let mut addresses = Vec::new();
    for listener in &listeners {
        let address = listener.local_addr()?;
        addresses.push(address.to_string());
        crate::commands::print_line(&format!("listening on {address}"))?;
    }
    tracing::info!(
        data_dir = %data_dir.display(),
        listen = ?addresses,
        "factum serve: ready (plain-text HTTP/2, anonymous access)"
    );

    let store: Arc<EmbeddedStore> = Arc::new(store);
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

/// Logs to standard error; `RUST_LOG` chooses the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
    fn the_config_file_refuses_unknown_keys() {
        let parsed: Result<ConfigFile, _> = toml::from_str("listen = [\"127.0.0.1:0\"]\nport = 1");
        assert!(parsed.is_err());
        let parsed: ConfigFile =
            toml::from_str("data_dir = \"d\"\nlisten = [\"127.0.0.1:0\"]").unwrap();
        assert_eq!(parsed.listen.unwrap(), vec!["127.0.0.1:0".to_owned()]);
    }
}
