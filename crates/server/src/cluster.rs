//! The small services around Streams: `Gossip.Read` (one member, the leader),
//! `ServerFeatures.GetSupportedMethods` (exactly what is implemented), and
//! `PersistentSubscriptions.List` (an empty list until persistent subscriptions exist).

use factum_proto::gossip::gossip_server::Gossip;
use factum_proto::gossip::{ClusterInfo, EndPoint, MemberInfo, member_info::VNodeState};
use factum_proto::persistent::persistent_subscriptions_server::PersistentSubscriptions;
use factum_proto::persistent::{ListReq, ListResp};
use factum_proto::server_features::server_features_server::ServerFeatures;
use factum_proto::server_features::{SupportedMethod, SupportedMethods};
use factum_proto::shared::Empty;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert::{UuidFormat, uuid_to_wire};

/// The version reported to clients. They compare it with KurrentDB's releases to pick code
/// paths, so it names the KurrentDB protocol level Factum speaks, not Factum's own version.
pub const PROTOCOL_SERVER_VERSION: &str = "25.0.0";

/// Every method served, as `(service, method, features)`, lower case as KurrentDB lists them.
pub const SUPPORTED_METHODS: &[(&str, &str, &[&str])] = &[
    (
        "event_store.client.streams.streams",
        "read",
        &["position", "events"],
    ),
    ("event_store.client.streams.streams", "append", &[]),
    (
        "event_store.client.streams.streams",
        "batchappend",
        &["deadline_duration"],
    ),
    ("event_store.client.streams.streams", "delete", &[]),
    ("event_store.client.streams.streams", "tombstone", &[]),
    ("event_store.client.gossip.gossip", "read", &[]),
    (
        "event_store.client.server_features.serverfeatures",
        "getsupportedmethods",
        &[],
    ),
    (
        "event_store.client.persistent_subscriptions.persistentsubscriptions",
        "list",
        &[],
    ),
];

/// Where clients should reach this node.
#[derive(Debug, Clone)]
pub struct Advertised {
    /// The host name or address; `None` answers the address the client connected to.
    pub host: Option<String>,
    /// The port; `None` answers the port the client connected to.
    pub port: Option<u16>,
}

/// `Gossip`: a cluster of one.
pub struct GossipService {
    instance_id: Uuid,
    advertised: Advertised,
}

impl GossipService {
    /// The service for a node with a fresh instance id.
    pub fn new(advertised: Advertised) -> GossipService {
        GossipService {
            instance_id: Uuid::new_v4(),
            advertised,
        }
    }
}

/// The `host:port` a client addressed (HTTP/2 `:authority`), kept for [`GossipService`].
#[derive(Debug, Clone)]
pub struct ClientAuthority(http::uri::Authority);

/// Copies the request's authority into its extensions, where a tonic handler can see it.
pub fn remember_authority<B>(mut request: http::Request<B>) -> http::Request<B> {
    if let Some(authority) = request.uri().authority().cloned() {
        request.extensions_mut().insert(ClientAuthority(authority));
    }
    request
}

#[tonic::async_trait]
impl Gossip for GossipService {
    async fn read(&self, request: Request<Empty>) -> Result<Response<ClusterInfo>, Status> {
        // Configured address first; else the host and port the client used (clients that
        // reconnect to the gossiped member then stay on the name they chose); else the
        // connection's local address.
        let authority = request.extensions().get::<ClientAuthority>();
        let local = request.local_addr();
        let address = self
            .advertised
            .host
            .clone()
            .or_else(|| {
                authority.map(|authority| authority.0.host().trim_matches(['[', ']']).to_owned())
            })
            .or_else(|| local.map(|address| address.ip().to_string()))
            .unwrap_or_else(|| "localhost".to_owned());
        let port = self
            .advertised
            .port
            .or_else(|| authority.and_then(|authority| authority.0.port_u16()))
            .or_else(|| local.map(|address| address.port()))
            .unwrap_or(2113);
        let member = MemberInfo {
            instance_id: Some(uuid_to_wire(self.instance_id, UuidFormat::Structured)),
            time_stamp: dotnet_ticks_now(),
            state: VNodeState::Leader as i32,
            is_alive: true,
            http_end_point: Some(EndPoint {
                address,
                port: u32::from(port),
            }),
        };
        Ok(Response::new(ClusterInfo {
            members: vec![member],
        }))
    }
}

/// .NET ticks (100 ns since 0001-01-01), as KurrentDB stamps gossip.
fn dotnet_ticks_now() -> i64 {
    const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UNIX_EPOCH_TICKS.saturating_add((since_unix.as_nanos() / 100).min(i64::MAX as u128) as i64)
}

/// `ServerFeatures`.
pub struct FeaturesService;

#[tonic::async_trait]
impl ServerFeatures for FeaturesService {
    async fn get_supported_methods(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<SupportedMethods>, Status> {
        let methods = SUPPORTED_METHODS
            .iter()
            .map(|(service, method, features)| SupportedMethod {
                method_name: (*method).to_owned(),
                service_name: (*service).to_owned(),
                features: features
                    .iter()
                    .map(|feature| (*feature).to_owned())
                    .collect(),
            })
            .collect();
        Ok(Response::new(SupportedMethods {
            methods,
            event_store_server_version: PROTOCOL_SERVER_VERSION.to_owned(),
        }))
    }
}

/// `PersistentSubscriptions`: only `List`, which answers that there are none.
pub struct PersistentService;

#[tonic::async_trait]
impl PersistentSubscriptions for PersistentService {
    async fn list(&self, _request: Request<ListReq>) -> Result<Response<ListResp>, Status> {
        Ok(Response::new(ListResp {
            subscriptions: Vec::new(),
        }))
    }
}
