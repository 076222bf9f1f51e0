//! Stream ACLs over the wire: every operation × every permission × every entry point (gRPC and
//! HTTP, stream subscriptions and SSE included) against the `$acl` in the stream's metadata, and
//! `$all` (reads and subscriptions, filtered or not, history and live) for admins, the readers'
//! group and everyone else, asserted on the events actually received.
//!
//! The servers authenticate (`users: Some(..)`) over plain text: the credentials middleware
//! does not depend on TLS. Cases set their streams up in the store directly and check what a
//! call changed there, so a refused call is seen to change nothing.

mod support;

use std::fmt;
use std::sync::Arc;

use factum_core::{
    EventFilter, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions,
    StreamMetadata, StreamName,
};
use factum_memory::MemoryStore;
use factum_proto::shared::{self, Empty};
use factum_proto::streams::read_req::options::{FilterOptions, filter_options};
use factum_proto::streams::{
    AppendReq, BatchAppendReq, DeleteReq, ReadReq, ReadResp, TombstoneReq, append_req, append_resp,
    batch_append_req, batch_append_resp, delete_req, read_req, read_resp, tombstone_req,
};
use factum_server::ServerOptions;
use factum_server::auth::acl::AccessPolicy;
use factum_server::auth::users::UserStore;
use serde_json::{Value, json};
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

const PASSWORD: &str = "pw";

/// The users of every server here: `alice` (group `team`) is the caller the ACLs are about,
/// `bob` the someone else they grant to instead, `root` an admin, `rita` a member of the
/// readers' group.
const USERS: [(&str, &[&str]); 4] = [
    ("alice", &["team"]),
    ("bob", &["others"]),
    ("root", &["$admins"]),
    ("rita", &["readers"]),
];

/// The group whose members may read `$all`.
const READERS: &str = "readers";

async fn server() -> TestServer {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let users = UserStore::new(store.clone());
    for (name, groups) in USERS {
        let groups: Vec<String> = groups.iter().map(|group| (*group).to_owned()).collect();
        users.create(name, "", &groups, PASSWORD).await.unwrap();
    }
    let options = ServerOptions {
        users: Some(Arc::new(users)),
        access: AccessPolicy {
            all_readers_group: Some(READERS.to_owned()),
        },
        ..ServerOptions::default()
    };
    TestServer::start_with(store, options).await
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Each operation × each permission × each entry point.
// ---------------------------------------------------------------------------------------------

/// The `$acl` keys.
const PERMISSIONS: [&str; 5] = ["$r", "$w", "$d", "$mr", "$mw"];

/// Whom a scenario's `$acl` grants its permission to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grantee {
    /// `alice`, by name.
    User,
    /// `team`, a group alice is in.
    Group,
    /// `$all`: every authenticated user.
    Everyone,
    /// `bob` only: alice is refused.
    SomeoneElse,
}

impl Grantee {
    fn role(self) -> &'static str {
        match self {
            Grantee::User => "alice",
            Grantee::Group => "team",
            Grantee::Everyone => "$all",
            Grantee::SomeoneElse => "bob",
        }
    }
}

/// A stream's `$acl` and who calls.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// Alice calls; `permission` is granted to `grantee`, every other one to bob only.
    Grant {
        permission: &'static str,
        grantee: Grantee,
    },
    /// Alice calls; the stream has metadata without `$acl`: the defaults open a user stream.
    NoAcl,
    /// An admin calls; every permission is granted to bob only.
    Admin,
}

impl Scenario {
    fn all() -> Vec<Scenario> {
        let mut scenarios = vec![Scenario::NoAcl, Scenario::Admin];
        for permission in PERMISSIONS {
            for grantee in [
                Grantee::User,
                Grantee::Group,
                Grantee::Everyone,
                Grantee::SomeoneElse,
            ] {
                scenarios.push(Scenario::Grant {
                    permission,
                    grantee,
                });
            }
        }
        scenarios
    }

    fn caller(self) -> &'static str {
        match self {
            Scenario::Admin => "root",
            _ => "alice",
        }
    }

    fn acl(self) -> Option<Value> {
        let role_for = |key: &str| match self {
            Scenario::Grant {
                permission,
                grantee,
            } if permission == key => grantee.role(),
            _ => "bob",
        };
        match self {
            Scenario::NoAcl => None,
            _ => Some(Value::Object(
                PERMISSIONS
                    .iter()
                    .map(|key| ((*key).to_owned(), json!(role_for(key))))
                    .collect(),
            )),
        }
    }

    /// Whether the caller may use `permission`: the rule the server must follow.
    fn allows(self, permission: &str) -> bool {
        match self {
            Scenario::Grant {
                permission: granted,
                grantee,
            } => granted == permission && grantee != Grantee::SomeoneElse,
            Scenario::NoAcl | Scenario::Admin => true,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Grant {
                permission,
                grantee,
            } => write!(
                f,
                "alice, {permission} granted to {} ({grantee:?})",
                grantee.role()
            ),
            Scenario::NoAcl => write!(f, "alice, no $acl"),
            Scenario::Admin => write!(f, "root (admin), everything granted to bob"),
        }
    }
}

/// One operation through one entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    GrpcRead,
    GrpcSubscribe,
    GrpcAppend,
    GrpcBatchAppend,
    GrpcDelete,
    GrpcTombstone,
    /// `Read` of `$$stream`.
    GrpcMetadataRead,
    /// `Append` to `$$stream`.
    GrpcMetadataWrite,
    /// `BatchAppend` to `$$stream`.
    GrpcMetadataBatchWrite,
    HttpRead,
    /// `GET /streams/{s}/subscribe` (SSE).
    HttpSubscribe,
    HttpAppend,
    HttpDelete,
    /// `DELETE /streams/{s}?hard=true`.
    HttpTombstone,
    /// `GET /streams/{s}/metadata`.
    HttpMetadataRead,
    /// `PUT /streams/{s}/metadata`.
    HttpMetadataWrite,
    /// `GET /streams/$${s}`.
    HttpMetadataStreamRead,
    /// `POST /streams/$${s}`.
    HttpMetadataStreamWrite,
}

impl Call {
    const ALL: [Call; 18] = [
        Call::GrpcRead,
        Call::GrpcSubscribe,
        Call::GrpcAppend,
        Call::GrpcBatchAppend,
        Call::GrpcDelete,
        Call::GrpcTombstone,
        Call::GrpcMetadataRead,
        Call::GrpcMetadataWrite,
        Call::GrpcMetadataBatchWrite,
        Call::HttpRead,
        Call::HttpSubscribe,
        Call::HttpAppend,
        Call::HttpDelete,
        Call::HttpTombstone,
        Call::HttpMetadataRead,
        Call::HttpMetadataWrite,
        Call::HttpMetadataStreamRead,
        Call::HttpMetadataStreamWrite,
    ];

    /// The `$acl` key that governs the call.
    fn permission(self) -> &'static str {
        match self {
            Call::GrpcRead | Call::GrpcSubscribe | Call::HttpRead | Call::HttpSubscribe => "$r",
            Call::GrpcAppend | Call::GrpcBatchAppend | Call::HttpAppend => "$w",
            Call::GrpcDelete | Call::GrpcTombstone | Call::HttpDelete | Call::HttpTombstone => "$d",
            Call::GrpcMetadataRead | Call::HttpMetadataRead | Call::HttpMetadataStreamRead => "$mr",
            Call::GrpcMetadataWrite
            | Call::GrpcMetadataBatchWrite
            | Call::HttpMetadataWrite
            | Call::HttpMetadataStreamWrite => "$mw",
        }
    }

    /// What an allowed call reads: the seeded event's type, or the metadata as set.
    fn expected_read(self, metadata: &Value) -> Option<Value> {
        match self.permission() {
            "$r" => Some(json!(["Seeded"])),
            "$mr" => Some(metadata.clone()),
            _ => None,
        }
    }
}

/// What a stream holds, as the store itself answers: its events' types (or the error's kind)
/// and its metadata (or the error's kind).
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    events: Result<Vec<String>, &'static str>,
    metadata: Result<Value, &'static str>,
}

async fn snapshot(store: &dyn EventStore, name: &str) -> Snapshot {
    let events = store
        .read_stream(&stream(name), ReadStreamOptions::forwards())
        .await
        .map(|events| {
            events
                .iter()
                .map(|event| event.event_type.to_string())
                .collect()
        })
        .map_err(|error| error.kind());
    let metadata = store
        .stream_metadata(&stream(name))
        .await
        .map(|result| serde_json::from_slice(&result.metadata.to_json()).unwrap())
        .map_err(|error| error.kind());
    Snapshot { events, metadata }
}

/// What `call` does to a stream holding `before`, when it is allowed.
fn after(call: Call, before: &Snapshot) -> Snapshot {
    let mut after = before.clone();
    match call {
        Call::GrpcAppend | Call::GrpcBatchAppend | Call::HttpAppend => {
            after.events.as_mut().unwrap().push("Written".to_owned());
        }
        Call::GrpcDelete | Call::HttpDelete => {
            // A soft delete hides the events and records where they end in `$tb`.
            let count = before.events.as_ref().unwrap().len();
            after.events = Err("stream_not_found");
            after.metadata.as_mut().unwrap()["$tb"] = json!(count);
        }
        Call::GrpcTombstone | Call::HttpTombstone => {
            after.events = Err("stream_deleted");
            after.metadata = Err("stream_deleted");
        }
        Call::GrpcMetadataWrite
        | Call::GrpcMetadataBatchWrite
        | Call::HttpMetadataWrite
        | Call::HttpMetadataStreamWrite => after.metadata = Ok(written_metadata()),
        _ => {}
    }
    after
}

/// The metadata a metadata write sets.
fn written_metadata() -> Value {
    json!({"written": true})
}

/// How a call ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// It was carried out; what it read, for a read.
    Done(Option<Value>),
    /// It was refused in the entry point's shape for an access denial.
    Denied,
}

/// Callers' credentials and connections.
struct Callers {
    address: String,
    channel: Channel,
}

impl Callers {
    fn grpc(
        &self,
        user: &str,
    ) -> factum_proto::streams::streams_client::StreamsClient<
        tonic::service::interceptor::InterceptedService<Channel, Authorize>,
    > {
        streams_client_as(self.channel.clone(), &basic_auth(user, PASSWORD))
    }

    async fn http(
        &self,
        user: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> HttpReply {
        let authorization = basic_auth(user, PASSWORD);
        let mut all = vec![("authorization", authorization.as_str())];
        all.extend_from_slice(headers);
        http_request(&self.address, method, path, &all, body).await
    }
}

/// Subscribes over SSE as `user` (`GET path`): the event stream, or the refusal.
async fn sse_as(address: &str, user: &str, path: &str) -> Result<SseStream, HttpReply> {
    let authorization = basic_auth(user, PASSWORD);
    let (response, connection) = http_open(
        address,
        "GET",
        path,
        &[
            ("authorization", authorization.as_str()),
            ("accept", "text/event-stream"),
        ],
        Vec::new(),
    )
    .await;
    if response.status() != 200 {
        let reply = http_reply(response).await;
        connection.abort();
        return Err(reply);
    }
    Ok(SseStream::new(response, connection))
}

/// A gRPC error: a denial in KurrentDB's shape, or something unexpected.
fn grpc_denied(status: tonic::Status) -> Result<Outcome, String> {
    if status.code() == Code::PermissionDenied && status.message() == "Access Denied" {
        Ok(Outcome::Denied)
    } else {
        Err(format!("unexpected status {status:?}"))
    }
}

/// An HTTP answer: a 403 `access_denied` JSON error is a denial; `done` reads an OK answer.
fn http_outcome(
    reply: HttpReply,
    done: impl FnOnce(&HttpReply) -> Option<Value>,
) -> Result<Outcome, String> {
    match reply.status {
        200 => Ok(Outcome::Done(done(&reply))),
        403 if reply.content_type == "application/json"
            && reply.json()["error"]["code"] == "access_denied"
            && reply.json()["error"]["message"].is_string() =>
        {
            Ok(Outcome::Denied)
        }
        _ => Err(format!("unexpected answer {reply:?}")),
    }
}

/// The events of a gRPC read reply, as the types read and the data of the last one; a status
/// ends it.
async fn grpc_events(
    messages: &mut tonic::Streaming<ReadResp>,
    until_caught_up: bool,
) -> Result<Result<(Vec<String>, Option<Value>), tonic::Status>, String> {
    let mut types = Vec::new();
    let mut last_data = None;
    while let Some(message) = messages.next().await {
        match message {
            Err(status) => return Ok(Err(status)),
            Ok(ReadResp {
                content: Some(read_resp::Content::Event(event)),
            }) => {
                let event = event.event.ok_or("an event message without its event")?;
                types.push(event.metadata["type"].clone());
                last_data = serde_json::from_slice(&event.data).ok();
            }
            Ok(ReadResp {
                content: Some(read_resp::Content::Confirmation(_)),
            }) if until_caught_up && types.is_empty() => {}
            Ok(ReadResp {
                content: Some(read_resp::Content::CaughtUp(_)),
            }) if until_caught_up => return Ok(Ok((types, last_data))),
            Ok(other) => return Err(format!("unexpected message {other:?}")),
        }
    }
    if until_caught_up {
        return Err("the subscription ended before catching up".into());
    }
    Ok(Ok((types, last_data)))
}

fn append_request(name: &str, event_type: &str, data: &Value) -> Vec<AppendReq> {
    vec![
        AppendReq {
            content: Some(append_req::Content::Options(append_req::Options {
                stream_identifier: Some(stream_id(name)),
                expected_stream_revision: Some(append_req::options::ExpectedStreamRevision::Any(
                    Empty {},
                )),
            })),
        },
        AppendReq {
            content: Some(append_req::Content::ProposedMessage(
                append_req::ProposedMessage {
                    id: Some(string_uuid(uuid::Uuid::new_v4())),
                    metadata: event_metadata(event_type),
                    custom_metadata: Default::default(),
                    data: data.to_string().into_bytes().into(),
                },
            )),
        },
    ]
}

fn batch_request(name: &str, event_type: &str, data: &Value) -> BatchAppendReq {
    BatchAppendReq {
        correlation_id: Some(string_uuid(uuid::Uuid::new_v4())),
        options: Some(batch_append_req::Options {
            stream_identifier: Some(stream_id(name)),
            expected_stream_position: Some(batch_append_req::options::ExpectedStreamPosition::Any(
                (),
            )),
            deadline_option: None,
        }),
        proposed_messages: vec![batch_append_req::ProposedMessage {
            id: Some(string_uuid(uuid::Uuid::new_v4())),
            metadata: event_metadata(event_type),
            custom_metadata: Default::default(),
            data: data.to_string().into_bytes().into(),
        }],
        is_final: true,
    }
}

/// Carries `call` out on stream `name` as `user`.
async fn run(callers: &Callers, call: Call, user: &str, name: &str) -> Result<Outcome, String> {
    let metadata_stream = format!("$${name}");
    let json = ("content-type", "application/json");
    match call {
        Call::GrpcRead | Call::GrpcMetadataRead | Call::GrpcSubscribe => {
            let request = match call {
                Call::GrpcRead => read_stream_request(name),
                Call::GrpcMetadataRead => read_stream_request(&metadata_stream),
                _ => subscribe_stream_request(name),
            };
            let mut messages = match callers.grpc(user).read(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => return grpc_denied(status),
            };
            match grpc_events(&mut messages, call == Call::GrpcSubscribe).await? {
                // A subscription is refused before it is confirmed, as KurrentDB does.
                Err(status) if call == Call::GrpcSubscribe => Err(format!(
                    "the subscription was refused after it started: {status:?}"
                )),
                Err(status) => grpc_denied(status),
                Ok((_, Some(data))) if call == Call::GrpcMetadataRead => {
                    Ok(Outcome::Done(Some(data)))
                }
                Ok((types, _)) => Ok(Outcome::Done(Some(json!(types)))),
            }
        }
        Call::GrpcAppend | Call::GrpcMetadataWrite => {
            let request = if call == Call::GrpcAppend {
                append_request(name, "Written", &json!({}))
            } else {
                append_request(&metadata_stream, "$metadata", &written_metadata())
            };
            match callers.grpc(user).append(tokio_stream::iter(request)).await {
                Ok(reply) => match reply.into_inner().result {
                    Some(append_resp::Result::Success(_)) => Ok(Outcome::Done(None)),
                    other => Err(format!("unexpected append answer {other:?}")),
                },
                Err(status) => grpc_denied(status),
            }
        }
        Call::GrpcBatchAppend | Call::GrpcMetadataBatchWrite => {
            let request = if call == Call::GrpcBatchAppend {
                batch_request(name, "Written", &json!({}))
            } else {
                batch_request(&metadata_stream, "$metadata", &written_metadata())
            };
            let reply = callers
                .grpc(user)
                .batch_append(tokio_stream::iter([request]))
                .await
                .map_err(|status| format!("BatchAppend refused the call: {status:?}"))?
                .into_inner()
                .next()
                .await
                .ok_or("BatchAppend answered nothing")?
                .map_err(|status| format!("BatchAppend failed the call: {status:?}"))?;
            match reply.result {
                Some(batch_append_resp::Result::Success(_)) => Ok(Outcome::Done(None)),
                // In band: `google.rpc.Status` with one `AccessDenied` detail.
                Some(batch_append_resp::Result::Error(status))
                    if status.code == Code::PermissionDenied as i32
                        && status.message == "Access Denied"
                        && status.details.len() == 1
                        && status.details[0].type_url
                            == "type.googleapis.com/event_store.client.AccessDenied" =>
                {
                    Ok(Outcome::Denied)
                }
                other => Err(format!("unexpected BatchAppend answer {other:?}")),
            }
        }
        Call::GrpcDelete => {
            let request = DeleteReq {
                options: Some(delete_req::Options {
                    stream_identifier: Some(stream_id(name)),
                    expected_stream_revision: Some(
                        delete_req::options::ExpectedStreamRevision::Any(Empty {}),
                    ),
                }),
            };
            match callers.grpc(user).delete(request).await {
                Ok(_) => Ok(Outcome::Done(None)),
                Err(status) => grpc_denied(status),
            }
        }
        Call::GrpcTombstone => {
            let request = TombstoneReq {
                options: Some(tombstone_req::Options {
                    stream_identifier: Some(stream_id(name)),
                    expected_stream_revision: Some(
                        tombstone_req::options::ExpectedStreamRevision::Any(Empty {}),
                    ),
                }),
            };
            match callers.grpc(user).tombstone(request).await {
                Ok(_) => Ok(Outcome::Done(None)),
                Err(status) => grpc_denied(status),
            }
        }
        Call::HttpRead | Call::HttpMetadataStreamRead => {
            let path = if call == Call::HttpRead {
                format!("/streams/{name}")
            } else {
                format!("/streams/{metadata_stream}")
            };
            let reply = callers.http(user, "GET", &path, &[], Vec::new()).await;
            http_outcome(reply, |reply| {
                let events = reply.json()["events"].as_array().unwrap().clone();
                Some(if call == Call::HttpRead {
                    json!(events.iter().map(|e| e["type"].clone()).collect::<Vec<_>>())
                } else {
                    events.last().unwrap()["data"].clone()
                })
            })
        }
        Call::HttpSubscribe => {
            let path = format!("/streams/{name}/subscribe");
            let mut events = match sse_as(&callers.address, user, &path).await {
                Ok(events) => events,
                Err(reply) => return http_outcome(reply, |_| None),
            };
            let mut types = Vec::new();
            loop {
                match events.next().await {
                    Some(event) if event.event == "event" => {
                        let body: Value = serde_json::from_str(&event.data).unwrap();
                        types.push(body["type"].clone());
                    }
                    Some(event) if event.event == "caught_up" => break,
                    other => return Err(format!("unexpected server-sent event {other:?}")),
                }
            }
            Ok(Outcome::Done(Some(json!(types))))
        }
        Call::HttpAppend | Call::HttpMetadataStreamWrite => {
            let (path, body) = if call == Call::HttpAppend {
                (
                    format!("/streams/{name}"),
                    json!([{"type": "Written", "data": {}}]),
                )
            } else {
                (
                    format!("/streams/{metadata_stream}"),
                    json!([{"type": "$metadata", "data": written_metadata()}]),
                )
            };
            let reply = callers
                .http(user, "POST", &path, &[json], body.to_string().into_bytes())
                .await;
            http_outcome(reply, |_| None)
        }
        Call::HttpDelete | Call::HttpTombstone => {
            let path = if call == Call::HttpDelete {
                format!("/streams/{name}")
            } else {
                format!("/streams/{name}?hard=true")
            };
            let reply = callers.http(user, "DELETE", &path, &[], Vec::new()).await;
            http_outcome(reply, |_| None)
        }
        Call::HttpMetadataRead => {
            let path = format!("/streams/{name}/metadata");
            let reply = callers.http(user, "GET", &path, &[], Vec::new()).await;
            http_outcome(reply, |reply| Some(reply.json()["metadata"].clone()))
        }
        Call::HttpMetadataWrite => {
            let path = format!("/streams/{name}/metadata");
            let body = written_metadata().to_string().into_bytes();
            let reply = callers.http(user, "PUT", &path, &[json], body).await;
            http_outcome(reply, |_| None)
        }
    }
}

/// Seeds stream `name` for `scenario`: one event, and metadata with its `$acl` (if any) and a
/// marker a metadata read must return.
async fn seed(store: &dyn EventStore, name: &str, scenario: Scenario) {
    store
        .append(
            &stream(name),
            ExpectedRevision::NoStream,
            vec![ProposedEvent::json("Seeded", &json!({"n": 0})).unwrap()],
        )
        .await
        .unwrap();
    let mut metadata = StreamMetadata {
        acl: scenario.acl(),
        ..StreamMetadata::default()
    };
    metadata.custom.insert("case".into(), json!(name));
    store
        .set_stream_metadata(&stream(name), ExpectedRevision::NoStream, &metadata)
        .await
        .unwrap();
}

/// The matrix. Each case gets its own stream; a failure names its call and scenario, and all
/// failures are reported together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_every_entry_point_follows_each_permission() {
    let server = server().await;
    let store = server.store.clone();
    let callers = Callers {
        address: server.address.clone(),
        channel: server.channel().await,
    };
    let mut failures = Vec::new();
    let mut cases = 0;
    for (index, (scenario, call)) in Scenario::all()
        .into_iter()
        .flat_map(|scenario| Call::ALL.into_iter().map(move |call| (scenario, call)))
        .enumerate()
    {
        cases += 1;
        let name = format!("case-{index}");
        seed(store.as_ref(), &name, scenario).await;
        let before = snapshot(store.as_ref(), &name).await;
        let allowed = scenario.allows(call.permission());
        let outcome = run(&callers, call, scenario.caller(), &name).await;
        let (expected_outcome, expected_after) = if allowed {
            let metadata = before.metadata.clone().unwrap();
            (
                Outcome::Done(call.expected_read(&metadata)),
                after(call, &before),
            )
        } else {
            (Outcome::Denied, before.clone())
        };
        let now = snapshot(store.as_ref(), &name).await;
        let case = format!("{call:?} on {name} as {scenario}");
        match outcome {
            Ok(outcome) if outcome == expected_outcome => {}
            Ok(outcome) => failures.push(format!(
                "{case}: expected {expected_outcome:?}, got {outcome:?}"
            )),
            Err(unexpected) => failures.push(format!("{case}: {unexpected}")),
        }
        if now != expected_after {
            failures.push(format!(
                "{case}: the stream holds {now:?}, expected {expected_after:?}"
            ));
        }
    }
    assert_eq!(cases, 22 * Call::ALL.len());
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// `$all`: admins see everything, the readers' group sees what it may read, others are refused.
// ---------------------------------------------------------------------------------------------

/// Whether rita (readers' group) may see an event of `name` in `$all`, from the names the
/// streams below are given (`{prefix}-{kind}-{n}`, their metadata streams `$$…`) and the users'
/// streams, which are system streams and so for admins only.
fn reader_sees(name: &str) -> bool {
    let (base, is_metadata) = match name.strip_prefix("$$") {
        Some(base) => (base, true),
        None => (name, false),
    };
    if base.starts_with('$') {
        return false;
    }
    match base.split('-').nth(1) {
        Some("open" | "granted" | "group") => true,
        // Readable events, unreadable metadata.
        Some("metasecret") => !is_metadata,
        // A tombstone takes the `$acl` with it: its events are for admins only.
        Some("secret" | "tomb" | "softdel") => false,
        _ => panic!("a stream this test did not name: {name}"),
    }
}

/// The streams of the `$all` tests, with their `$acl`s, seeded in two interleaved rounds.
async fn seed_all(store: &dyn EventStore) {
    let acl = |read: &str, metadata_read: &str| Some(json!({"$r": read, "$mr": metadata_read}));
    let streams = [
        ("acl-open-1", None),
        ("acl-granted-1", acl("rita", "rita")),
        ("acl-group-1", acl(READERS, READERS)),
        ("acl-secret-1", acl("bob", "bob")),
        ("acl-metasecret-1", acl("$all", "bob")),
        ("acl-tomb-1", acl("bob", "bob")),
        ("acl-tomb-2", None),
        ("acl-softdel-1", acl("bob", "bob")),
        ("other-open-1", None),
        ("other-secret-1", acl("bob", "bob")),
    ];
    for (name, acl) in &streams {
        if let Some(acl) = acl {
            let metadata = StreamMetadata {
                acl: Some(acl.clone()),
                ..StreamMetadata::default()
            };
            store
                .set_stream_metadata(&stream(name), ExpectedRevision::Any, &metadata)
                .await
                .unwrap();
        }
    }
    for round in 0..2 {
        for (name, _) in &streams {
            store
                .append(
                    &stream(name),
                    ExpectedRevision::Any,
                    vec![ProposedEvent::json("Seeded", &json!({"round": round})).unwrap()],
                )
                .await
                .unwrap();
        }
    }
    for name in ["acl-tomb-1", "acl-tomb-2"] {
        store
            .tombstone_stream(&stream(name), ExpectedRevision::Any)
            .await
            .unwrap();
    }
    store
        .delete_stream(&stream("acl-softdel-1"), ExpectedRevision::Any)
        .await
        .unwrap();
}

/// Appends while a subscription is live: events rita may and may not see, in streams old and
/// new, then a sentinel in `acl-open-1`, whose revision it returns.
async fn append_live(store: &dyn EventStore, round: usize) -> u64 {
    let live = || vec![ProposedEvent::json("Live", &json!({})).unwrap()];
    let fresh = format!("acl-secret-live{round}");
    let hidden = StreamMetadata {
        acl: Some(json!({"$r": "bob", "$mr": "bob"})),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&stream(&fresh), ExpectedRevision::Any, &hidden)
        .await
        .unwrap();
    let metasecret = StreamMetadata {
        acl: Some(json!({"$r": "$all", "$mr": "bob"})),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(
            &stream("acl-metasecret-1"),
            ExpectedRevision::Any,
            &metasecret,
        )
        .await
        .unwrap();
    for name in [
        fresh.as_str(),
        "acl-secret-1",
        "acl-metasecret-1",
        "acl-granted-1",
        "other-secret-1",
        "other-open-1",
        "acl-group-1",
    ] {
        store
            .append(&stream(name), ExpectedRevision::Any, live())
            .await
            .unwrap();
    }
    store
        .append(
            &stream("acl-open-1"),
            ExpectedRevision::Any,
            vec![ProposedEvent::json("Sentinel", &json!({})).unwrap()],
        )
        .await
        .unwrap()
        .revision
}

/// A `$all` read or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AllCall {
    GrpcRead,
    GrpcReadBackwards,
    GrpcSubscribe,
    HttpRead,
    /// `GET /all/subscribe` (SSE).
    HttpSubscribe,
}

impl AllCall {
    const ALL: [AllCall; 5] = [
        AllCall::GrpcRead,
        AllCall::GrpcReadBackwards,
        AllCall::GrpcSubscribe,
        AllCall::HttpRead,
        AllCall::HttpSubscribe,
    ];
}

/// The stream-prefix filter of the filtered cases: the `acl-` streams and their metadata.
const PREFIXES: [&str; 2] = ["acl-", "$$acl-"];

/// An event, as `$all` delivers it: stream and revision.
type Seen = (String, u64);

/// What a `$all` call saw: its events, and for a subscription the revision of the sentinel it
/// ended on (what came live).
struct AllSeen {
    events: Vec<Seen>,
    sentinel: Option<u64>,
}

fn read_all_request(backwards: bool, filtered: bool) -> ReadReq {
    use read_req::options::{self, all_options};
    let mut request = subscribe_all_request(filtered.then(grpc_filter));
    let options = request.options.as_mut().unwrap();
    options.count_option = Some(options::CountOption::Count(u64::MAX));
    if backwards {
        options.read_direction = options::ReadDirection::Backwards as i32;
        options.stream_option = Some(options::StreamOption::All(options::AllOptions {
            all_option: Some(all_options::AllOption::End(shared::Empty {})),
        }));
    }
    request
}

fn grpc_filter() -> FilterOptions {
    FilterOptions {
        filter: Some(filter_options::Filter::StreamIdentifier(
            filter_options::Expression {
                regex: String::new(),
                prefix: PREFIXES.iter().map(|prefix| (*prefix).to_owned()).collect(),
            },
        )),
        window: Some(filter_options::Window::Max(4)),
        checkpoint_interval_multiplier: 1,
    }
}

fn grpc_seen(event: read_resp::ReadEvent) -> Seen {
    let event = event.event.expect("an event message carries its event");
    let name = event.stream_identifier.unwrap().stream_name;
    (
        String::from_utf8(name.to_vec()).unwrap(),
        event.stream_revision,
    )
}

fn http_seen(event: &Value) -> Seen {
    (
        event["stream"].as_str().unwrap().to_owned(),
        event["revision"].as_u64().unwrap(),
    )
}

/// Carries a `$all` call out as `user`; a refusal is the outcome `Denied`.
async fn run_all(
    callers: &Callers,
    store: &dyn EventStore,
    call: AllCall,
    filtered: bool,
    user: &str,
    round: usize,
) -> Result<Result<AllSeen, Outcome>, String> {
    let filter_query = if filtered {
        "&stream_prefix=acl-&stream_prefix=%24%24acl-"
    } else {
        ""
    };
    let done = |events| {
        Ok(Ok(AllSeen {
            events,
            sentinel: None,
        }))
    };
    let denied = |outcome: Result<Outcome, String>| match outcome? {
        Outcome::Denied => Ok(Err(Outcome::Denied)),
        other => Err(format!("unexpected outcome {other:?}")),
    };
    match call {
        AllCall::GrpcRead | AllCall::GrpcReadBackwards => {
            let request = read_all_request(call == AllCall::GrpcReadBackwards, filtered);
            let mut messages = match callers.grpc(user).read(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => return denied(grpc_denied(status)),
            };
            let mut events = Vec::new();
            while let Some(message) = messages.next().await {
                match message {
                    Ok(ReadResp {
                        content: Some(read_resp::Content::Event(event)),
                    }) => events.push(grpc_seen(event)),
                    Ok(other) => return Err(format!("unexpected message {other:?}")),
                    Err(status) if events.is_empty() => return denied(grpc_denied(status)),
                    Err(status) => return Err(format!("failed after events: {status:?}")),
                }
            }
            done(events)
        }
        AllCall::GrpcSubscribe => {
            let request = subscribe_all_request(filtered.then(grpc_filter));
            let mut messages = match callers.grpc(user).read(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => return denied(grpc_denied(status)),
            };
            let mut events = Vec::new();
            let mut sentinel = None;
            loop {
                let message =
                    tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
                        .await
                        .map_err(|_| "no message within 10 s".to_owned())?
                        .ok_or("the subscription ended")?;
                match message {
                    Ok(ReadResp {
                        content: Some(read_resp::Content::Event(event)),
                    }) => {
                        let seen = grpc_seen(event);
                        let ended = Some(seen.1) == sentinel && seen.0 == "acl-open-1";
                        events.push(seen);
                        if ended {
                            break;
                        }
                    }
                    Ok(ReadResp {
                        content: Some(read_resp::Content::CaughtUp(_)),
                    }) if sentinel.is_none() => {
                        sentinel = Some(append_live(store, round).await);
                    }
                    Ok(ReadResp {
                        content:
                            Some(
                                read_resp::Content::Confirmation(_)
                                | read_resp::Content::Checkpoint(_)
                                | read_resp::Content::CaughtUp(_),
                            ),
                    }) => {}
                    Ok(other) => return Err(format!("unexpected message {other:?}")),
                    // A refusal comes before the confirmation (above), never in the stream.
                    Err(status) => return Err(format!("failed after it started: {status:?}")),
                }
            }
            Ok(Ok(AllSeen { events, sentinel }))
        }
        AllCall::HttpRead => {
            let mut events = Vec::new();
            let mut from = String::new();
            loop {
                let path = format!("/all?include_system=true&limit=3{from}{filter_query}");
                let reply = callers.http(user, "GET", &path, &[], Vec::new()).await;
                let page = match http_outcome(reply, |reply| Some(reply.json())) {
                    Ok(Outcome::Done(Some(page))) => page,
                    Ok(Outcome::Denied) if events.is_empty() => {
                        return Ok(Err(Outcome::Denied));
                    }
                    other => return Err(format!("unexpected page {other:?}")),
                };
                events.extend(page["events"].as_array().unwrap().iter().map(http_seen));
                if page["end_of_log"] == true {
                    break;
                }
                from = format!("&from={}", page["next"]);
            }
            done(events)
        }
        AllCall::HttpSubscribe => {
            let path = format!("/all/subscribe?include_system=true{filter_query}");
            let mut messages = match sse_as(&callers.address, user, &path).await {
                Ok(messages) => messages,
                Err(reply) => return denied(http_outcome(reply, |_| None)),
            };
            let mut events = Vec::new();
            let mut sentinel = None;
            loop {
                let message = messages.next().await.ok_or("the event stream ended")?;
                match message.event.as_str() {
                    "event" => {
                        let seen = http_seen(&serde_json::from_str(&message.data).unwrap());
                        let ended = Some(seen.1) == sentinel && seen.0 == "acl-open-1";
                        events.push(seen);
                        if ended {
                            break;
                        }
                    }
                    "caught_up" if sentinel.is_none() => {
                        sentinel = Some(append_live(store, round).await);
                    }
                    "caught_up" | "checkpoint" => {}
                    _ => return Err(format!("unexpected server-sent event {message:?}")),
                }
            }
            Ok(Ok(AllSeen { events, sentinel }))
        }
    }
}

/// What `$all` must show `user`, up to the sentinel of a subscription, straight from the store.
async fn expected_all(
    store: &dyn EventStore,
    call: AllCall,
    filtered: bool,
    user: &str,
    sentinel: Option<u64>,
) -> Vec<Seen> {
    let mut options = ReadAllOptions::forwards().include_system();
    if filtered {
        options = options.filter(EventFilter::StreamPrefix(
            PREFIXES.iter().map(|prefix| (*prefix).to_owned()).collect(),
        ));
    }
    let mut events: Vec<Seen> = Vec::new();
    for event in store.read_all(options).await.unwrap().events {
        let seen = (event.stream.to_string(), event.revision);
        if user == "root" || reader_sees(&seen.0) {
            events.push(seen);
        }
        if let Some(revision) = sentinel
            && event.stream.as_str() == "acl-open-1"
            && event.revision == revision
        {
            break;
        }
    }
    if call == AllCall::GrpcReadBackwards {
        events.reverse();
    }
    events
}

/// `$all` × reads and subscriptions × filtered or not × gRPC and HTTP × admin, reader and
/// outsider: the events received are exactly those the caller may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_shows_each_caller_exactly_the_events_it_may_read_and_refuses_outsiders() {
    let server = server().await;
    let store = server.store.clone();
    seed_all(store.as_ref()).await;
    let callers = Callers {
        address: server.address.clone(),
        channel: server.channel().await,
    };
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut round = 0;
    for call in AllCall::ALL {
        for filtered in [false, true] {
            for user in ["root", "rita", "alice"] {
                cases += 1;
                round += 1;
                let case = format!(
                    "{call:?}{} as {user}",
                    if filtered { " (filtered)" } else { "" }
                );
                match run_all(&callers, store.as_ref(), call, filtered, user, round).await {
                    Err(unexpected) => failures.push(format!("{case}: {unexpected}")),
                    Ok(Err(Outcome::Denied)) if user == "alice" => {}
                    Ok(Err(outcome)) => failures.push(format!("{case}: {outcome:?}")),
                    Ok(Ok(_)) if user == "alice" => {
                        failures.push(format!("{case}: alice was let in"));
                    }
                    Ok(Ok(seen)) => {
                        let expected =
                            expected_all(store.as_ref(), call, filtered, user, seen.sentinel).await;
                        if seen.events != expected {
                            let leaked: Vec<&Seen> = seen
                                .events
                                .iter()
                                .filter(|event| !expected.contains(event))
                                .collect();
                            failures.push(format!(
                                "{case}: saw {:?}\nexpected {expected:?}\nnot allowed: {leaked:?}",
                                seen.events
                            ));
                        }
                        // The expectation is not empty: the reader may read the group's stream.
                        assert!(expected.iter().any(|(name, _)| name == "acl-group-1"));
                    }
                }
            }
        }
    }
    // The hidden events exist: an admin's `$all` has them.
    let everything = expected_all(store.as_ref(), AllCall::GrpcRead, false, "root", None).await;
    for hidden in [
        "acl-secret-1",
        "$$acl-metasecret-1",
        "acl-tomb-1",
        "acl-softdel-1",
        "$user-root",
    ] {
        assert!(
            everything.iter().any(|(name, _)| name == hidden),
            "{hidden} is in $all"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    server.stop().await;
}

/// The messages of a gRPC subscription up to its caught-up message; the events' streams.
async fn grpc_until_caught_up(messages: &mut tonic::Streaming<ReadResp>) -> Vec<String> {
    let mut streams = Vec::new();
    loop {
        match messages.next().await.unwrap().unwrap().content {
            Some(read_resp::Content::Event(event)) => streams.push(grpc_seen(event).0),
            Some(read_resp::Content::CaughtUp(_)) => return streams,
            _ => {}
        }
    }
}

/// A subscription over SSE as `user`, read up to its `caught_up` event; the events' streams.
async fn sse_until_caught_up(address: &str, path: &str, user: &str) -> (SseStream, Vec<String>) {
    let mut events = sse_as(address, user, path)
        .await
        .unwrap_or_else(|reply| panic!("{path} as {user}: {reply:?}"));
    let mut streams = Vec::new();
    loop {
        let event = events.next().await.expect("the event stream goes on");
        match event.event.as_str() {
            "event" => streams.push(http_seen(&serde_json::from_str(&event.data).unwrap()).0),
            "caught_up" => return (events, streams),
            _ => {}
        }
    }
}

/// Taking a reader's `$r` away while it is subscribed: its stream subscriptions end refused
/// before the next event, and its `$all` subscriptions go on without that stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_revoked_mid_subscription_delivers_nothing_more() {
    let server = server().await;
    let store = server.store.clone();
    let callers = Callers {
        address: server.address.clone(),
        channel: server.channel().await,
    };
    let watched = stream("watched-1");
    store
        .append(
            &watched,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::json("Seeded", &json!({})).unwrap()],
        )
        .await
        .unwrap();
    let mut grpc_stream = callers
        .grpc("alice")
        .read(subscribe_stream_request("watched-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc_until_caught_up(&mut grpc_stream).await, ["watched-1"]);
    let (mut sse_stream, seen) =
        sse_until_caught_up(&server.address, "/streams/watched-1/subscribe", "alice").await;
    assert_eq!(seen, ["watched-1"]);
    let mut grpc_all = callers
        .grpc("rita")
        .read(subscribe_all_request(None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        grpc_until_caught_up(&mut grpc_all)
            .await
            .contains(&"watched-1".to_owned())
    );
    let (mut sse_all, seen) = sse_until_caught_up(
        &server.address,
        "/all/subscribe?include_system=true",
        "rita",
    )
    .await;
    assert!(seen.contains(&"watched-1".to_owned()));

    let revoked = StreamMetadata {
        acl: Some(json!({"$r": "bob", "$mr": "bob"})),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&watched, ExpectedRevision::Any, &revoked)
        .await
        .unwrap();
    for name in ["watched-1", "open-1"] {
        store
            .append(
                &stream(name),
                ExpectedRevision::Any,
                vec![ProposedEvent::json("Live", &json!({})).unwrap()],
            )
            .await
            .unwrap();
    }

    let status = grpc_stream.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "Access Denied");
    let ended = sse_stream.next().await.unwrap();
    assert_eq!(ended.event, "error", "{ended:?}");
    let error: Value = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(error["error"]["code"], "access_denied", "{error}");
    // `$all` goes on, without `watched-1` nor its metadata, up to the event after them.
    loop {
        match grpc_all.next().await.unwrap().unwrap().content {
            Some(read_resp::Content::Event(event)) => {
                assert_eq!(grpc_seen(event), ("open-1".to_owned(), 0));
                break;
            }
            Some(read_resp::Content::Checkpoint(_)) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
    // Checkpoints may come first, as on gRPC (the hidden events were examined).
    let next = sse_all.next_event().await;
    assert_eq!(next.event, "event", "{next:?}");
    let event: Value = serde_json::from_str(&next.data).unwrap();
    assert_eq!(http_seen(&event), ("open-1".to_owned(), 0));
    drop((grpc_stream, grpc_all, sse_stream, sse_all));
    server.stop().await;
}
