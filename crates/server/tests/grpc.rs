//! The server over the wire, with tonic clients: what the official clients rely on, and what a
//! misbehaving client must not be able to break.

mod support;

use std::sync::Arc;
use std::time::Duration;

use factum_core::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
use factum_memory::MemoryStore;
use factum_proto::shared::{self, Empty};
use factum_proto::streams::append_req::{self, options::ExpectedStreamRevision};
use factum_proto::streams::batch_append_req::{self, options::ExpectedStreamPosition};
use factum_proto::streams::read_req::options::{FilterOptions, filter_options};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{
    AppendReq, BatchAppendReq, BatchAppendResp, ReadResp, append_resp, batch_append_resp, read_resp,
};
use factum_server::ServerOptions;
use prost::Message;
use support::*;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use uuid::Uuid;

fn memory_store() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

fn proposed(event_type: &str, data: &[u8]) -> batch_append_req::ProposedMessage {
    batch_append_req::ProposedMessage {
        id: Some(string_uuid(Uuid::new_v4())),
        metadata: event_metadata(event_type),
        custom_metadata: Default::default(),
        data: data.to_vec().into(),
    }
}

fn batch_request(
    correlation: Uuid,
    stream: Option<&str>,
    events: Vec<batch_append_req::ProposedMessage>,
    is_final: bool,
) -> BatchAppendReq {
    BatchAppendReq {
        correlation_id: Some(string_uuid(correlation)),
        options: stream.map(|stream| batch_append_req::Options {
            stream_identifier: Some(stream_id(stream)),
            expected_stream_position: Some(ExpectedStreamPosition::Any(())),
            deadline_option: None,
        }),
        proposed_messages: events,
        is_final,
    }
}

fn correlation_of(reply: &BatchAppendResp) -> Uuid {
    match reply
        .correlation_id
        .as_ref()
        .and_then(|id| id.value.as_ref())
    {
        Some(shared::uuid::Value::String(text)) => text.parse().unwrap(),
        other => panic!("correlation id not echoed as sent: {other:?}"),
    }
}

async fn stream_len(store: &dyn EventStore, name: &str) -> usize {
    match store
        .read_stream(
            &StreamName::new(name).unwrap(),
            ReadStreamOptions::forwards(),
        )
        .await
    {
        Ok(events) => events.len(),
        Err(factum_core::Error::StreamNotFound { .. }) => 0,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn batch_append_multiplexes_chunked_requests_and_echoes_correlation_ids() {
    let server = TestServer::start(memory_store()).await;
    let mut client = server.client().await;
    let (requests, receiver) = mpsc::channel(8);
    let mut replies = client
        .batch_append(ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();

    let chunked = Uuid::new_v4();
    let single = Uuid::new_v4();
    // The first chunk of one request, a whole second request, then the first's last chunk.
    requests
        .send(batch_request(
            chunked,
            Some("order-1"),
            vec![proposed("A", b"{}"), proposed("B", b"{}")],
            false,
        ))
        .await
        .unwrap();
    requests
        .send(batch_request(
            single,
            Some("order-2"),
            vec![proposed("C", b"{}")],
            true,
        ))
        .await
        .unwrap();
    let first = replies.next().await.unwrap().unwrap();
    assert_eq!(correlation_of(&first), single);
    assert_eq!(
        stream_len(server.store.as_ref(), "order-1").await,
        0,
        "an unfinished request writes nothing"
    );
    requests
        .send(batch_request(
            chunked,
            None,
            vec![proposed("D", b"{}")],
            true,
        ))
        .await
        .unwrap();
    let second = replies.next().await.unwrap().unwrap();
    assert_eq!(correlation_of(&second), chunked);
    let Some(batch_append_resp::Result::Success(success)) = second.result else {
        panic!("expected success, got {second:?}");
    };
    assert_eq!(
        success.current_revision_option,
        Some(batch_append_resp::success::CurrentRevisionOption::CurrentRevision(2))
    );
    assert_eq!(stream_len(server.store.as_ref(), "order-1").await, 3);
    assert_eq!(second.stream_identifier, Some(stream_id("order-1")));

    // Half-closing ends the call once everything is answered.
    drop(requests);
    assert!(replies.next().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn batch_append_answers_a_wrong_expected_version_in_band_with_its_packed_detail() {
    let server = TestServer::start(memory_store()).await;
    let mut client = server.client().await;
    let mut request = batch_request(
        Uuid::new_v4(),
        Some("acc"),
        vec![proposed("A", b"{}")],
        true,
    );
    request.options.as_mut().unwrap().expected_stream_position =
        Some(ExpectedStreamPosition::StreamPosition(7));
    let mut replies = client
        .batch_append(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(batch_append_resp::Result::Error(status)) = reply.result else {
        panic!("expected an in-band error, got {reply:?}");
    };
    assert_eq!(status.code, Code::AlreadyExists as i32);
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/event_store.client.WrongExpectedVersion"
    );
    let detail = shared::WrongExpectedVersion::decode(status.details[0].value.as_slice()).unwrap();
    assert_eq!(
        detail.current_stream_revision_option,
        Some(shared::wrong_expected_version::CurrentStreamRevisionOption::CurrentNoStream(()))
    );
    assert_eq!(stream_len(server.store.as_ref(), "acc").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn append_answers_a_wrong_expected_version_in_band_in_both_layouts() {
    let server = TestServer::start(memory_store()).await;
    let stream = StreamName::new("acc").unwrap();
    server
        .store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::bytes("A", "x")],
        )
        .await
        .unwrap();
    let mut client = server.client().await;
    let messages = [
        AppendReq {
            content: Some(append_req::Content::Options(append_req::Options {
                stream_identifier: Some(stream_id("acc")),
                expected_stream_revision: Some(ExpectedStreamRevision::NoStream(Empty {})),
            })),
        },
        AppendReq {
            content: Some(append_req::Content::ProposedMessage(
                append_req::ProposedMessage {
                    id: Some(string_uuid(Uuid::new_v4())),
                    metadata: event_metadata("B"),
                    custom_metadata: Default::default(),
                    data: b"{}".to_vec().into(),
                },
            )),
        },
    ];
    let reply = client
        .append(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let Some(append_resp::Result::WrongExpectedVersion(wrong)) = reply.result else {
        panic!("expected wrong_expected_version, got {reply:?}");
    };
    use append_resp::wrong_expected_version as w;
    assert_eq!(
        wrong.current_revision_option,
        Some(w::CurrentRevisionOption::CurrentRevision(0))
    );
    assert_eq!(
        wrong.current_revision_option_20_6_0,
        Some(w::CurrentRevisionOption2060::CurrentRevision2060(0))
    );
    assert_eq!(
        wrong.expected_revision_option,
        Some(w::ExpectedRevisionOption::ExpectedNoStream(Empty {}))
    );
    assert_eq!(stream_len(server.store.as_ref(), "acc").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn oversized_appends_get_the_protocols_errors_and_write_nothing() {
    let options = ServerOptions {
        max_append_bytes: Some(64 * 1024),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(memory_store(), options).await;
    let mut client = server.client().await;
    let big = vec![b'x'; 40 * 1024];

    // Append: a gRPC error with the exception trailer (the Node client switches on it).
    let messages = std::iter::once(AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: Some(stream_id("big")),
            expected_stream_revision: Some(ExpectedStreamRevision::Any(Empty {})),
        })),
    })
    .chain((0..2).map(|_| AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(string_uuid(Uuid::new_v4())),
                metadata: event_metadata("Big"),
                custom_metadata: Default::default(),
                data: big.clone().into(),
            },
        )),
    }));
    let status = client
        .append(tokio_stream::iter(messages.collect::<Vec<_>>()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "Maximum Append Size of 65536 Exceeded.");
    assert_eq!(
        status.metadata().get("exception").unwrap(),
        "maximum-append-size-exceeded"
    );

    // BatchAppend: in-band, with the detail the clients map to MaximumAppendSizeExceeded.
    let request = batch_request(
        Uuid::new_v4(),
        Some("big"),
        vec![proposed("Big", &big), proposed("Big", &big)],
        true,
    );
    let mut replies = client
        .batch_append(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(batch_append_resp::Result::Error(status)) = reply.result else {
        panic!("expected an in-band error, got {reply:?}");
    };
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/event_store.client.MaximumAppendSizeExceeded"
    );

    // A message far past any append limit is refused by the transport before decoding.
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let request = batch_request(
        Uuid::new_v4(),
        Some("big"),
        vec![proposed("Big", &huge)],
        true,
    );
    let outcome = client.batch_append(tokio_stream::iter([request])).await;
    let refused = match outcome {
        Err(status) => status,
        Ok(response) => response
            .into_inner()
            .next()
            .await
            .expect("an answer")
            .expect_err("the oversized message is refused"),
    };
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert_eq!(stream_len(server.store.as_ref(), "big").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_event_type_is_refused_with_the_property_named() {
    let server = TestServer::start(memory_store()).await;
    let mut client = server.client().await;
    let mut event = proposed("A", b"{}");
    event.metadata.remove("type");
    let request = batch_request(Uuid::new_v4(), Some("s"), vec![event], true);
    let mut replies = client
        .batch_append(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(batch_append_resp::Result::Error(status)) = reply.result else {
        panic!("expected an in-band error, got {reply:?}");
    };
    assert_eq!(
        status.message,
        "Required Metadata Property 'type' is missing"
    );
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/event_store.client.BadRequest"
    );
    server.stop().await;
}

/// Runs `call` on a client of its own runtime, then drops that runtime once `call` has sent
/// its messages: the connection is cut as a crashed client would cut it, with the request
/// neither finished nor half-closed.
async fn cut_connection_mid_call<F, Fut>(address: String, call: F)
where
    F: FnOnce(StreamsClient<tonic::transport::Channel>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            call(StreamsClient::new(channel)).await;
        });
        // Dropping the runtime drops the connection task with the call still open.
        drop(runtime);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_append_or_mid_batch_writes_nothing_and_leaks_no_task() {
    let server = TestServer::start(memory_store()).await;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    // Append: options and one event sent, then the connection is cut before half-close.
    cut_connection_mid_call(server.address.clone(), |mut client| async move {
        let (requests, receiver) = mpsc::channel(4);
        requests
            .send(AppendReq {
                content: Some(append_req::Content::Options(append_req::Options {
                    stream_identifier: Some(stream_id("cut-append")),
                    expected_stream_revision: Some(ExpectedStreamRevision::Any(Empty {})),
                })),
            })
            .await
            .unwrap();
        requests
            .send(AppendReq {
                content: Some(append_req::Content::ProposedMessage(
                    append_req::ProposedMessage {
                        id: Some(string_uuid(Uuid::new_v4())),
                        metadata: event_metadata("A"),
                        custom_metadata: Default::default(),
                        data: b"{}".to_vec().into(),
                    },
                )),
            })
            .await
            .unwrap();
        let call = client.append(ReceiverStream::new(receiver));
        // Give the messages time to reach the server, then return with the call pending and
        // `requests` still open (the request stream never ends).
        let _ = tokio::time::timeout(Duration::from_millis(200), call).await;
        std::mem::forget(requests);
    })
    .await;

    // BatchAppend: the first chunk of a request, then the connection is cut.
    cut_connection_mid_call(server.address.clone(), |mut client| async move {
        let (requests, receiver) = mpsc::channel(4);
        requests
            .send(batch_request(
                Uuid::new_v4(),
                Some("cut-batch"),
                vec![proposed("A", b"{}")],
                false,
            ))
            .await
            .unwrap();
        let replies = client.batch_append(ReceiverStream::new(receiver)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::mem::forget((requests, replies));
    })
    .await;

    wait_for_alive_tasks_at_most(baseline).await;
    assert_eq!(stream_len(server.store.as_ref(), "cut-append").await, 0);
    assert_eq!(stream_len(server.store.as_ref(), "cut-batch").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_disconnects_leaks_no_task_and_shutdown_ends_live_subscriptions() {
    let server = TestServer::start(memory_store()).await;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    {
        let mut client = server.client().await;
        let mut messages = client
            .read(subscribe_all_request(None))
            .await
            .unwrap()
            .into_inner();
        let first = messages.next().await.unwrap().unwrap();
        assert!(matches!(
            first.content,
            Some(read_resp::Content::Confirmation(_))
        ));
        drop(messages);
        drop(client);
    }
    wait_for_alive_tasks_at_most(baseline).await;

    // A live subscription at shutdown ends with UNAVAILABLE, and the server stops.
    let mut client = server.client().await;
    let mut messages = client
        .read(subscribe_all_request(None))
        .await
        .unwrap()
        .into_inner();
    messages.next().await.unwrap().unwrap();
    let stopping = tokio::spawn(server.stop());
    let ended = loop {
        match messages.next().await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break Some(status),
            None => break None,
        }
    };
    let status = ended.expect("the subscription ends with a status");
    assert_eq!(status.code(), Code::Unavailable);
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_filtered_all_subscription_confirms_catches_up_checkpoints_and_goes_live() {
    let server = TestServer::start(memory_store()).await;
    let store = server.store.clone();
    for index in 0..50 {
        let stream = StreamName::new(format!("noise-{index}")).unwrap();
        store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![ProposedEvent::bytes("Noise", "x")],
            )
            .await
            .unwrap();
    }
    let filter = FilterOptions {
        filter: Some(filter_options::Filter::StreamIdentifier(
            filter_options::Expression {
                regex: String::new(),
                prefix: vec!["account-".to_owned()],
            },
        )),
        window: Some(filter_options::Window::Max(4)),
        checkpoint_interval_multiplier: 2,
    };
    let mut client = server.client().await;
    let mut messages = client
        .read(subscribe_all_request(Some(filter)))
        .await
        .unwrap()
        .into_inner();
    let mut next = async || -> ReadResp { messages.next().await.unwrap().unwrap() };
    assert!(matches!(
        next().await.content,
        Some(read_resp::Content::Confirmation(_))
    ));
    let mut checkpoints = 0;
    loop {
        match next().await.content {
            Some(read_resp::Content::Checkpoint(_)) => checkpoints += 1,
            Some(read_resp::Content::CaughtUp(_)) => break,
            other => panic!("unexpected message before catching up: {other:?}"),
        }
    }
    assert!(
        checkpoints >= 5,
        "50 skipped events, a checkpoint per 8: {checkpoints}"
    );
    let account = StreamName::new("account-1").unwrap();
    store
        .append(
            &account,
            ExpectedRevision::Any,
            vec![ProposedEvent::bytes("Opened", "x")],
        )
        .await
        .unwrap();
    let live = loop {
        match next().await.content {
            Some(read_resp::Content::Event(event)) => break event,
            Some(read_resp::Content::Checkpoint(_)) => continue,
            other => panic!("unexpected message: {other:?}"),
        }
    };
    let recorded = live.event.unwrap();
    assert_eq!(recorded.stream_identifier, Some(stream_id("account-1")));
    assert_eq!(recorded.metadata["type"], "Opened");
    assert!(recorded.metadata["created"].parse::<u64>().unwrap() > 0);
    assert!(matches!(
        live.position,
        Some(read_resp::read_event::Position::CommitPosition(position)) if position > 50
    ));
    drop(messages);
    server.stop().await;
}

#[tokio::test]
async fn reading_a_missing_stream_answers_stream_not_found_and_a_tombstoned_one_is_deleted() {
    let server = TestServer::start(memory_store()).await;
    let mut client = server.client().await;
    let mut messages = client
        .read(read_stream_request("missing"))
        .await
        .unwrap()
        .into_inner();
    let first = messages.next().await.unwrap().unwrap();
    assert!(matches!(
        first.content,
        Some(read_resp::Content::StreamNotFound(_))
    ));
    assert!(messages.next().await.is_none(), "then the call ends OK");

    let gone = StreamName::new("gone").unwrap();
    server
        .store
        .append(
            &gone,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::bytes("A", "x")],
        )
        .await
        .unwrap();
    server
        .store
        .tombstone_stream(&gone, ExpectedRevision::Any)
        .await
        .unwrap();
    let outcome = client.read(read_stream_request("gone")).await;
    let status = match outcome {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "Event stream 'gone' is deleted.");
    server.stop().await;
}

#[tokio::test]
async fn gossip_names_one_leader_at_the_host_the_client_used() {
    use factum_proto::gossip::gossip_client::GossipClient;
    use factum_proto::gossip::member_info::VNodeState;
    let server = TestServer::start(memory_store()).await;
    let port = server.address.rsplit_once(':').unwrap().1.to_owned();
    let channel = tonic::transport::Channel::from_shared(format!("http://localhost:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let cluster = GossipClient::new(channel)
        .read(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cluster.members.len(), 1);
    let member = &cluster.members[0];
    assert_eq!(member.state, VNodeState::Leader as i32);
    assert!(member.is_alive);
    let endpoint = member.http_end_point.as_ref().unwrap();
    assert_eq!(endpoint.address, "localhost");
    assert_eq!(endpoint.port.to_string(), port);
    server.stop().await;
}

#[tokio::test]
async fn server_features_list_exactly_the_served_methods_and_the_rest_is_unimplemented() {
    use factum_proto::server_features::server_features_client::ServerFeaturesClient;
    let server = TestServer::start(memory_store()).await;
    let channel = server.channel().await;
    let features = ServerFeaturesClient::new(channel.clone())
        .get_supported_methods(Empty {})
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<String> = features
        .methods
        .iter()
        .map(|method| format!("{}/{}", method.service_name, method.method_name))
        .collect();
    assert!(listed.contains(&"event_store.client.streams.streams/batchappend".to_owned()));
    assert!(!listed.iter().any(|method| method.ends_with("/create")));
    assert_eq!(features.event_store_server_version, "25.0.0");

    // Every listed method answers something other than UNIMPLEMENTED; unlisted ones do.
    let mut grpc = tonic::client::Grpc::new(channel);
    for (path, implemented) in [
        ("/event_store.client.gossip.Gossip/Read", true),
        (
            "/event_store.client.persistent_subscriptions.PersistentSubscriptions/List",
            true,
        ),
        (
            "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Create",
            false,
        ),
        ("/event_store.client.users.Users/Create", false),
        ("/event_store.client.projections.Projections/Create", false),
        (
            "/event_store.client.operations.Operations/StartScavenge",
            false,
        ),
    ] {
        grpc.ready().await.unwrap();
        let outcome: Result<tonic::Response<Empty>, tonic::Status> = grpc
            .unary(
                tonic::Request::new(Empty {}),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        let unimplemented = matches!(&outcome, Err(status) if status.code() == Code::Unimplemented);
        assert_eq!(!unimplemented, implemented, "{path}: {outcome:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_soft_deleted_stream_with_stream_exists_answers_that_it_is_deleted() {
    use factum_proto::streams::{DeleteReq, delete_req};
    let server = TestServer::start(memory_store()).await;
    let stream = StreamName::new("closed").unwrap();
    server
        .store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::bytes("A", "x")],
        )
        .await
        .unwrap();
    server
        .store
        .delete_stream(&stream, ExpectedRevision::Any)
        .await
        .unwrap();
    let mut client = server.client().await;
    let delete = |expected| DeleteReq {
        options: Some(delete_req::Options {
            stream_identifier: Some(stream_id("closed")),
            expected_stream_revision: Some(expected),
        }),
    };
    use delete_req::options::ExpectedStreamRevision as Expected;
    let status = client
        .delete(delete(Expected::StreamExists(Empty {})))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "Event stream 'closed' is deleted.");
    // Repeating the delete with the old last revision succeeds, as with KurrentDB.
    client.delete(delete(Expected::Revision(0))).await.unwrap();
    server.stop().await;
}
