//! What is particular to a store on a server, beyond the conformance suite: what travels over
//! the wire and what cannot, large appends, the server's own limits, the head watch's
//! lifecycle, and failures of the connection.

mod support;

use std::sync::Arc;
use std::time::Duration;

use factum_client::RemoteStore;
use factum_core::{
    CONTENT_TYPE_JSON, Error, EventStore, ExpectedRevision, Position, ProposedEvent,
    ReadAllOptions, ReadStreamOptions, StreamName,
};
use factum_server::ServerOptions;
use support::Server;

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

#[tokio::test]
async fn every_field_round_trips_including_schema_versions_and_tags() {
    let server = Server::start().await;
    let store = server.connect().await;
    let s = stream("round-trip");
    let proposed = vec![
        ProposedEvent::new("Deposited", CONTENT_TYPE_JSON, &br#"{"amount":"1.50"}"#[..])
            .with_schema_version(3)
            .with_metadata(&br#"{"$correlationId":"c-1"}"#[..])
            .with_tags(["vip", "region:eu"]),
        ProposedEvent::bytes("Blob", vec![0x00, 0xff, 0xc3, 0x28])
            .with_schema_version(u32::MAX)
            .with_metadata(vec![0xde, 0xad]),
        ProposedEvent::new("Pinged", "text/plain; charset=utf-8", Vec::new()),
    ];
    let written = store
        .append(&s, ExpectedRevision::NoStream, proposed.clone())
        .await
        .unwrap();
    assert_eq!(written.revision, 2);

    let from_stream = store
        .read_stream(&s, ReadStreamOptions::forwards())
        .await
        .unwrap();
    let from_all = store
        .read_all(ReadAllOptions::forwards())
        .await
        .unwrap()
        .events;
    assert_eq!(from_all, from_stream);
    for (recorded, proposed) in from_stream.iter().zip(&proposed) {
        assert_eq!(recorded.id, proposed.id);
        assert_eq!(recorded.event_type, proposed.event_type);
        assert_eq!(recorded.schema_version, proposed.schema_version);
        assert_eq!(recorded.content_type, proposed.content_type);
        assert_eq!(recorded.data, proposed.data);
        assert_eq!(recorded.metadata, proposed.metadata);
        assert_eq!(recorded.tags, proposed.tags);
    }
    assert_eq!(from_stream[2].position, written.position);
    // One append, one recorded time, and a plausible one (microseconds survive the ticks).
    assert_eq!(from_stream[0].recorded_at, from_stream[2].recorded_at);
    assert!(from_stream[0].recorded_at > factum_core::Timestamp::EPOCH);
}

#[tokio::test]
async fn a_large_append_travels_in_chunks_and_lands_whole() {
    let server = Server::start().await;
    let store = server.connect().await;
    let s = stream("large");
    // 48 events of 100 KiB: several chunks of about 1 MiB.
    let events: Vec<ProposedEvent> = (0..48u8)
        .map(|n| ProposedEvent::bytes("Chunk", vec![n; 100 * 1024]))
        .collect();
    let written = store
        .append(&s, ExpectedRevision::NoStream, events.clone())
        .await
        .unwrap();
    assert_eq!(written.revision, 47);
    let read = store
        .read_stream(&s, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(read.len(), 48);
    assert!(
        read.iter()
            .zip(&events)
            .all(|(r, p)| r.id == p.id && r.data == p.data)
    );
    // An idempotent retry of the whole append returns the original result.
    let retried = store
        .append(&s, ExpectedRevision::NoStream, events)
        .await
        .unwrap();
    assert_eq!(retried, written);
}

#[tokio::test]
async fn the_servers_own_append_limit_comes_back_as_append_too_large() {
    let server = Server::start_with(ServerOptions {
        max_append_bytes: Some(1000),
        ..ServerOptions::default()
    })
    .await;
    // The client checks against the default limits, which allow this: the server refuses it.
    let store = server.connect().await;
    let s = stream("over-the-server-limit");
    let events = vec![
        ProposedEvent::bytes("Big", vec![0; 600]),
        ProposedEvent::bytes("Big", vec![0; 600]),
    ];
    let error = store
        .append(&s, ExpectedRevision::Any, events)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::AppendTooLarge {
                max_bytes: 1000,
                event_count: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(
        store.read_stream(&s, ReadStreamOptions::forwards()).await,
        Err(Error::StreamNotFound { .. })
    ));
}

#[tokio::test]
async fn the_head_watch_sees_other_clients_appends_and_closes_with_the_store() {
    let server = Server::start().await;
    let watching = server.connect().await;
    let writing = server.connect().await;
    let mut head = watching.watch_head();
    let s = stream("watched");
    for n in 0..3u8 {
        let written = writing
            .append(
                &s,
                ExpectedRevision::Any,
                vec![ProposedEvent::bytes("E", vec![n])],
            )
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, head.wait_for(|head| *head >= written.position))
            .await
            .expect("the watch follows appends of another client")
            .unwrap();
    }
    drop(watching);
    let closed =
        tokio::time::timeout(PATIENCE, async { while head.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "the watch closes when the store is dropped");
}

#[tokio::test]
async fn subscriptions_on_a_remote_store_receive_live_events() {
    use factum_core::{SubscribeToStreamOptions, Subscription, SubscriptionMessage};
    let server = Server::start().await;
    let store: Arc<dyn EventStore> = Arc::new(server.connect().await);
    let writer = server.connect().await;
    let s = stream("live");
    let mut subscription =
        Subscription::to_stream(store, s.clone(), SubscribeToStreamOptions::default())
            .await
            .unwrap();
    let first = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .unwrap();
    assert!(
        matches!(first, Some(Ok(SubscriptionMessage::CaughtUp))),
        "{first:?}"
    );
    let written = writer
        .append(
            &s,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::bytes("Live", vec![1])],
        )
        .await
        .unwrap();
    let next = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .unwrap();
    match next {
        Some(Ok(SubscriptionMessage::Event(event))) => assert_eq!(event.position, written.position),
        other => panic!("expected the live event, got {other:?}"),
    }
}

#[tokio::test]
async fn kurrentdb_urls_connect_and_tls_without_a_ca_file_is_refused() {
    let server = Server::start().await;
    let address = server.url.strip_prefix("http://").unwrap();
    let store = RemoteStore::connect(&format!(
        "kurrentdb://{address}?tls=false&connectionName=test"
    ))
    .await
    .unwrap();
    assert_eq!(store.head().await.unwrap(), Position(0));
    let refused = RemoteStore::connect(&format!("kurrentdb://{address}")).await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest { reason }) if reason.contains("tls=false")),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn no_server_is_unavailable_with_the_cause() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let error = RemoteStore::connect(&format!("http://{address}"))
        .await
        .err()
        .expect("nothing to connect to");
    assert!(
        matches!(&error, Error::Unavailable { reason } if reason.contains(&address.to_string())),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_goes_away_makes_calls_unavailable() {
    let server = Server::start().await;
    let store = server.connect().await;
    let s = stream("gone");
    store
        .append(
            &s,
            ExpectedRevision::Any,
            vec![ProposedEvent::bytes("E", vec![1])],
        )
        .await
        .unwrap();
    server.stop().await;
    let read = store.read_stream(&s, ReadStreamOptions::forwards()).await;
    assert!(matches!(read, Err(Error::Unavailable { .. })), "{read:?}");
    let append = store
        .append(
            &s,
            ExpectedRevision::Any,
            vec![ProposedEvent::bytes("E", vec![2])],
        )
        .await;
    assert!(
        matches!(append, Err(Error::Unavailable { .. })),
        "{append:?}"
    );
}
