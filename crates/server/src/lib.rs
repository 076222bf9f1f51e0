//! `factum serve`: a gRPC server that the official KurrentDB clients talk to unchanged, over
//! any Factum [`EventStore`] (the embedded engine by default).
//!
//! The protocol (package `event_store.client.*`) comes from Factum's own `.proto` files in
//! `factum-proto`. This crate maps it onto the store's contract: `convert` translates wire
//! types, `errors` puts failures in the shapes clients parse, `streams` serves reads,
//! subscriptions, appends and deletes, `cluster` the small services around them. `http` serves
//! an HTTP/JSON API (with server-sent events) on the same port.
//! [`metrics`] counts what the server does and serves it at `GET /metrics` (Prometheus).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = Arc::new(factum_memory::MemoryStore::new());
//! let listeners = factum_server::bind(&["127.0.0.1:2113".to_owned()]).await?;
//! let shutdown = async { tokio::signal::ctrl_c().await.ok(); };
//! factum_server::serve(store, listeners, factum_server::ServerOptions::default(), shutdown).await?;
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod cluster;
mod convert;
mod errors;
mod http;
mod limits;
pub mod metrics;
mod shutdown;
mod streams;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use factum_core::EventStore;
use factum_proto::gossip::gossip_server::GossipServer;
use factum_proto::persistent::persistent_subscriptions_server::PersistentSubscriptionsServer;
use factum_proto::server_features::server_features_server::ServerFeaturesServer;
use factum_proto::streams::streams_server::StreamsServer;
use futures_util::StreamExt;
use tokio::net::TcpListener;

pub use cluster::{Advertised, PROTOCOL_SERVER_VERSION, SUPPORTED_METHODS};
pub use limits::Limits;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use tls::{HANDSHAKE_TIMEOUT, MAX_HANDSHAKES, TlsConfig, TlsError, TlsSettings};

/// The port KurrentDB clients use when a URI names none.
pub const DEFAULT_PORT: u16 = 2113;

/// The largest message the server sends. The Python client refuses messages above 17 MiB.
const MAX_ENCODED_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Headroom for the envelope of the message that carries an append.
const MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// How the server behaves, beyond the store it serves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The address given to clients in gossip.
    pub advertised: Advertised,
    /// The largest append accepted, in bytes; `None` takes the store's limit. Larger appends
    /// get the protocol's "Maximum Append Size … Exceeded" error and write nothing.
    pub max_append_bytes: Option<usize>,
    /// TLS on every listener (`TlsConfig::reload` renews its certificate); `None` serves plain
    /// text.
    pub tls: Option<TlsConfig>,
    /// The storage engine's figures (fsync latency, group-commit sizes) for `/metrics`, when
    /// the store has them.
    pub engine_stats: Option<metrics::EngineStatsSource>,
    /// When set, every request but the health checks must carry HTTP basic credentials of one
    /// of these users (UNAUTHENTICATED / 401 otherwise); `None` serves anonymous calls.
    pub users: Option<Arc<auth::users::UserStore>>,
    /// The access rules beyond each stream's `$acl` (who may read `$all`), for authenticated
    /// requests.
    pub access: auth::acl::AccessPolicy,
    /// What one client may take: idle and first-request timeouts, subscriptions, request rate.
    pub limits: Limits,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            advertised: Advertised {
                host: None,
                port: None,
            },
            max_append_bytes: None,
            tls: None,
            engine_stats: None,
            users: None,
            access: auth::acl::AccessPolicy::default(),
            limits: Limits::default(),
        }
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No listener could be bound, or accepting failed.
    #[error("cannot listen: {0}")]
    Listen(#[from] io::Error),
    /// The HTTP/2 transport failed.
    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds every address `addresses` name. A name that resolves to several addresses gets a
/// listener on each; `localhost` always means both loopbacks, `127.0.0.1` and `::1`, whatever
/// the hosts file says (clients resolve it to either). An address that cannot be bound is
/// skipped with a warning when another one of the same name could be (a machine without
/// IPv6), and is an error otherwise.
pub async fn bind(addresses: &[String]) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for name in addresses {
        let resolved = resolve(name).await?;
        let mut bound = 0;
        let mut last_error = None;
        for address in &resolved {
            // A name resolving to one address twice (some resolvers do) binds once.
            if listeners
                .iter()
                .any(|listener: &TcpListener| listener.local_addr().ok() == Some(*address))
            {
                continue;
            }
            match TcpListener::bind(address).await {
                Ok(listener) => {
                    listeners.push(listener);
                    bound += 1;
                }
                Err(error) => {
                    tracing::warn!(%address, %error, "cannot listen on this address");
                    last_error = Some(error);
                }
            }
        }
        if bound == 0
            && let Some(error) = last_error
        {
            return Err(io::Error::new(
                error.kind(),
                format!("cannot listen on {name}: {error}"),
            ));
        }
    }
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }
    Ok(listeners)
}

/// The addresses a `HOST:PORT` name stands for.
async fn resolve(name: &str) -> io::Result<Vec<SocketAddr>> {
    if let Some(port) = name.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port in {name:?}"),
            )
        })?;
        return Ok(vec![
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        ]);
    }
    Ok(tokio::net::lookup_host(name).await?.collect())
}

/// Serves `store` on `listeners` until `shutdown` completes, then shuts down gracefully:
/// stops accepting, ends subscriptions and idle BatchAppend calls (UNAVAILABLE, so clients
/// reconnect), lets in-flight appends finish and answer, and returns.
pub async fn serve(
    store: Arc<dyn EventStore>,
    listeners: Vec<TcpListener>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (trigger, signal) = Shutdown::new();
    let max_append_bytes = options
        .max_append_bytes
        .unwrap_or(store.limits().append_size_bytes_max);
    // Room for an append well over the limit, so it gets the protocol's "Maximum Append Size"
    // answer rather than the transport's; a message past this is refused before decoding.
    let max_decoded_message_bytes = max_append_bytes
        .saturating_mul(2)
        .saturating_add(MESSAGE_OVERHEAD_BYTES);
    let metrics = Arc::new(metrics::Metrics::new(
        store.watch_head(),
        options.engine_stats.clone(),
    ));
    let limits = options.limits.clone();
    let subscriptions = Arc::new(limits::SubscriptionSlots::new(
        limits.max_subscriptions,
        limits.max_subscriptions_per_connection,
    ));
    let streams = StreamsServer::new(streams::StreamsService::new(
        store.clone(),
        signal.clone(),
        max_append_bytes,
        metrics.clone(),
        subscriptions.clone(),
    ))
    .max_decoding_message_size(max_decoded_message_bytes)
    .max_encoding_message_size(MAX_ENCODED_MESSAGE_BYTES);
    let gossip = GossipServer::new(cluster::GossipService::new(options.advertised));
    let features = ServerFeaturesServer::new(cluster::FeaturesService);
    let persistent = PersistentSubscriptionsServer::new(cluster::PersistentService);
    // gRPC calls and the HTTP/JSON API share the port: gRPC paths name their service
    // (`/event_store.client.*`), every other path is the HTTP API's (see `http`).
    let mut grpc = tonic::service::Routes::builder();
    grpc.add_service(streams)
        .add_service(gossip)
        .add_service(features)
        .add_service(persistent);
    let routes = grpc
        .routes()
        .into_axum_router()
        .merge(http::router(http::HttpSettings {
            store,
            shutdown: signal.clone(),
            max_append_bytes,
            metrics: metrics.clone(),
            subscriptions,
            sse_keepalive: limits.sse_keepalive_interval(),
        }))
        .merge(metrics::metrics_router(metrics.clone()))
        .fallback(http::fallback);
    let routes = match options.users.clone() {
        Some(users) => routes.layer(axum::middleware::from_fn_with_state(
            auth::middleware::Authentication {
                users,
                policy: options.access.clone(),
            },
            auth::middleware::require_credentials,
        )),
        None => routes,
    };
    // Outermost, so limits apply before credentials are checked (a password guesser is rate
    // limited too); the request count sees every answer.
    let routes = routes
        .layer(limits::AdmissionLayer {
            rate: limits
                .max_requests_per_second_per_client
                .map(|per_second| Arc::new(limits::rate::RateLimiter::new(per_second))),
        })
        .layer(metrics::HttpMetricsLayer::new(metrics));

    // Plain TCP, or TLS with concurrent handshakes (see `tls`); nodelay on every connection,
    // and each one closed when it idles (see `limits::connection`).
    let incoming = tls::incoming(listeners, options.tls.clone()).map(move |connection| {
        connection.map(|connection| {
            let remote = connection.remote_addr();
            limits::LimitedConnection::new(connection, remote, &limits)
        })
    });

    tonic::transport::Server::builder()
        .accept_http1(true)
        // Pings make a live client's connection move bytes, so only dead or hostile ones idle.
        .http2_keepalive_interval(Some(options.limits.keepalive_interval()))
        .http2_keepalive_timeout(Some(options.limits.keepalive_interval()))
        // Gossip answers with the host the client used, which only the request URI knows.
        .layer(tower::util::MapRequestLayer::new(
            cluster::remember_authority,
        ))
        .add_routes(tonic::service::Routes::from(routes))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight calls");
            trigger.trigger();
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_means_both_loopbacks_and_a_bad_port_is_refused() {
        let addresses = resolve("localhost:2113").await.unwrap();
        assert_eq!(
            addresses,
            vec![
                "127.0.0.1:2113".parse::<SocketAddr>().unwrap(),
                "[::1]:2113".parse().unwrap()
            ]
        );
        assert!(resolve("localhost:http").await.is_err());
        assert!(bind(&[]).await.is_err());
    }
}
