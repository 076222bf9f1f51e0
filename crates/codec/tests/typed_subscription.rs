//! Typed subscriptions, on the in-memory store and on the embedded engine: old events come out
//! upcast to the current version, live events too, other messages pass through, and unknown
//! events either end the subscription with an error naming them or are reported as skipped, per
//! the schema's policy.
//!
//! The order is the toolkit's own example ([`factum_aggregate::examples::order`], a
//! dev-dependency only), whose `OrderPlaced` changed shape twice (v1 → v2 → v3).

use std::sync::Arc;
use std::time::Duration;

use factum_aggregate::examples::order::{OrderEvent, schema};
use factum_codec::{TypedMessage, TypedSubscription, TypedSubscriptionError};
use factum_core::{
    EventFilter, EventStore, ExpectedRevision, ProposedEvent, StreamName, SubscribeToAllOptions,
    SubscribeToStreamOptions, SubscriptionStart,
};
use serde_json::json;

/// Runs each named scenario, an `async fn(Arc<dyn EventStore>)`, as two tests in a module of
/// its name: `on_memory_store` and `on_embedded_store` (the durable engine, in a temporary
/// directory).
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use std::sync::Arc;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_memory_store() {
                super::$scenario(Arc::new(factum_memory::MemoryStore::new())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_embedded_store() {
                let dir = tempfile::tempdir().unwrap();
                let store = factum_log::EmbeddedStore::open(dir.path()).unwrap();
                super::$scenario(Arc::new(store)).await;
            }
        }
    )*};
}

on_every_backend!(
    history_and_live_events_come_out_at_the_current_version,
    a_stream_subscription_decodes_and_keeps_the_envelope,
    an_unknown_event_ends_the_subscription_with_its_type_and_version,
    skipped_events_are_reported_so_progress_can_be_saved,
    checkpoints_and_system_events_pass_through,
);

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped {
        carrier: "Parcelo".into(),
    }
}

fn placed(customer: &str, total_cents: u64) -> OrderEvent {
    OrderEvent::OrderPlaced {
        customer_name: customer.into(),
        total_cents,
        currency: "USD".into(),
    }
}

fn placed_v1(customer: &str, dollars: u64) -> ProposedEvent {
    ProposedEvent::json(
        "OrderPlaced",
        &json!({"customer": customer, "total": dollars}),
    )
    .unwrap()
    .with_schema_version(1)
}

fn placed_v2(customer: &str, cents: u64) -> ProposedEvent {
    let data = json!({"customer_name": customer, "total_cents": cents});
    ProposedEvent::json("OrderPlaced", &data)
        .unwrap()
        .with_schema_version(2)
}

async fn append(store: &Arc<dyn EventStore>, stream: &str, event: ProposedEvent) {
    let stream = StreamName::new(stream).unwrap();
    store
        .append(&stream, ExpectedRevision::Any, vec![event])
        .await
        .unwrap();
}

/// The next message, within a deadline so a missing message fails instead of hanging.
async fn next(
    subscription: &mut TypedSubscription<OrderEvent>,
) -> Option<Result<TypedMessage<OrderEvent>, TypedSubscriptionError>> {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("the subscription delivers in time")
}

/// The next decoded event, skipping checkpoints and progress messages.
async fn next_event(subscription: &mut TypedSubscription<OrderEvent>) -> (OrderEvent, u32, u64) {
    loop {
        match next(subscription).await {
            Some(Ok(TypedMessage::Event(typed))) => {
                return (
                    typed.event,
                    typed.recorded.schema_version,
                    typed.recorded.revision,
                );
            }
            Some(Ok(TypedMessage::Skipped(event))) => panic!("skipped {event:?}"),
            Some(Ok(_)) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

async fn history_and_live_events_come_out_at_the_current_version(store: Arc<dyn EventStore>) {
    append(&store, "order-1", placed_v1("Alice", 12)).await;
    let mut subscription =
        TypedSubscription::to_all(store.clone(), SubscribeToAllOptions::default(), schema())
            .await
            .unwrap();
    assert_eq!(
        next_event(&mut subscription).await,
        (placed("Alice", 1200), 1, 0)
    );
    assert!(matches!(
        next(&mut subscription).await,
        Some(Ok(TypedMessage::CaughtUp))
    ));

    // Live: appended after the subscription caught up.
    append(&store, "order-2", placed_v2("Bob", 700)).await;
    assert_eq!(
        next_event(&mut subscription).await,
        (placed("Bob", 700), 2, 0)
    );
    append(&store, "order-2", schema().encode(&shipped()).unwrap()).await;
    assert_eq!(next_event(&mut subscription).await, (shipped(), 1, 1));
}

async fn a_stream_subscription_decodes_and_keeps_the_envelope(store: Arc<dyn EventStore>) {
    let metadata = serde_json::to_vec(&json!({"correlation": "c-1"})).unwrap();
    let event = placed_v1("Carol", 3).with_metadata(metadata);
    append(&store, "order-9", event).await;
    let stream = StreamName::new("order-9").unwrap();
    let options = SubscribeToStreamOptions {
        from: SubscriptionStart::Start,
    };
    let mut subscription = TypedSubscription::to_stream(store.clone(), stream, options, schema())
        .await
        .unwrap();
    match next(&mut subscription).await {
        Some(Ok(TypedMessage::Event(typed))) => {
            assert_eq!(typed.event, placed("Carol", 300));
            assert_eq!(typed.recorded.stream.as_str(), "order-9");
            assert_eq!(typed.recorded.revision, 0);
            assert!(typed.recorded.position.0 >= 1);
            let metadata: serde_json::Value =
                serde_json::from_slice(&typed.recorded.metadata).unwrap();
            assert_eq!(metadata["correlation"], "c-1");
        }
        other => panic!("expected the event, got {other:?}"),
    }
}

async fn an_unknown_event_ends_the_subscription_with_its_type_and_version(
    store: Arc<dyn EventStore>,
) {
    append(&store, "order-1", placed_v1("Alice", 12)).await;
    let lost = ProposedEvent::json("OrderLost", &json!({})).unwrap();
    append(&store, "order-1", lost.with_schema_version(4)).await;
    append(&store, "order-1", placed_v1("Alice", 1)).await;
    let mut subscription =
        TypedSubscription::to_all(store.clone(), SubscribeToAllOptions::default(), schema())
            .await
            .unwrap();
    assert_eq!(next_event(&mut subscription).await.0, placed("Alice", 1200));
    let error = match next(&mut subscription).await {
        Some(Err(error)) => error,
        other => panic!("expected a decode error, got {other:?}"),
    };
    let text = error.to_string();
    assert!(
        text.contains(r#"unknown event type "OrderLost" (schema version 4)"#),
        "{text}"
    );
    assert!(
        text.contains("order-1") && text.contains("revision 1"),
        "{text}"
    );
    assert!(matches!(error, TypedSubscriptionError::Decode { .. }));
    assert!(next(&mut subscription).await.is_none(), "it ended");
}

async fn skipped_events_are_reported_so_progress_can_be_saved(store: Arc<dyn EventStore>) {
    append(&store, "order-1", placed_v1("Alice", 12)).await;
    append(
        &store,
        "order-1",
        ProposedEvent::json("OrderLost", &json!({})).unwrap(),
    )
    .await;
    append(
        &store,
        "order-1",
        ProposedEvent::json("OrderArchived", &json!({})).unwrap(),
    )
    .await;
    // A version newer than the code knows.
    let newer = ProposedEvent::json("OrderShipped", &json!(null)).unwrap();
    append(&store, "order-1", newer.with_schema_version(2)).await;
    append(&store, "order-1", placed_v2("Alice", 5)).await;
    let schema = schema().skip_unknown().ignore("OrderArchived");
    let mut subscription =
        TypedSubscription::to_all(store.clone(), SubscribeToAllOptions::default(), schema)
            .await
            .unwrap();
    assert_eq!(next_event(&mut subscription).await.0, placed("Alice", 1200));
    let mut skipped = Vec::new();
    for _ in 0..3 {
        match next(&mut subscription).await {
            Some(Ok(TypedMessage::Skipped(event))) => {
                skipped.push((event.event_type.to_string(), event.revision));
            }
            other => panic!("expected a skipped event, got {other:?}"),
        }
    }
    assert_eq!(
        skipped,
        [
            ("OrderLost".to_owned(), 1),
            ("OrderArchived".to_owned(), 2),
            ("OrderShipped".to_owned(), 3)
        ]
    );
    assert_eq!(
        next_event(&mut subscription).await,
        (placed("Alice", 5), 2, 4)
    );

    // Skipping is for unknown events: data of a known type that does not decode still fails.
    append(
        &store,
        "order-1",
        placed_v2("Alice", 5).with_schema_version(3),
    )
    .await;
    let mut message = next(&mut subscription).await;
    while let Some(Ok(TypedMessage::CaughtUp | TypedMessage::Checkpoint(_))) = message {
        message = next(&mut subscription).await;
    }
    match message {
        Some(Err(error)) => {
            let text = error.to_string();
            assert!(
                text.contains(r#"cannot decode event type "OrderPlaced" at schema version 3"#),
                "{text}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

async fn checkpoints_and_system_events_pass_through(store: Arc<dyn EventStore>) {
    for index in 0..5 {
        let other = ProposedEvent::json("SomethingElse", &json!({"n": index})).unwrap();
        append(&store, "other-1", other).await;
    }
    append(&store, "order-1", placed_v1("Alice", 12)).await;
    let filtered = SubscribeToAllOptions {
        filter: Some(EventFilter::stream_prefix("order-")),
        checkpoint_interval: 2,
        ..SubscribeToAllOptions::default()
    };
    let mut subscription = TypedSubscription::to_all(store.clone(), filtered, schema())
        .await
        .unwrap();
    let mut checkpoints = 0;
    loop {
        match next(&mut subscription).await {
            Some(Ok(TypedMessage::Checkpoint(_))) => checkpoints += 1,
            Some(Ok(TypedMessage::Event(typed))) => {
                assert_eq!(typed.event, placed("Alice", 1200));
                break;
            }
            other => panic!("expected checkpoints then the event, got {other:?}"),
        }
    }
    assert!(
        checkpoints >= 1,
        "the filter skipped 5 events: checkpoints were delivered"
    );

    // With system events included, a soft delete's `$metadata` event is skipped, not an error
    // under the strict default policy.
    let stream = StreamName::new("order-1").unwrap();
    store
        .delete_stream(&stream, ExpectedRevision::Any)
        .await
        .unwrap();
    let with_system = SubscribeToAllOptions {
        filter: Some(EventFilter::stream_regex(r"^(\$\$)?order-").unwrap()),
        include_system: true,
        ..SubscribeToAllOptions::default()
    };
    let mut subscription = TypedSubscription::to_all(store.clone(), with_system, schema())
        .await
        .unwrap();
    let mut system = 0;
    loop {
        match next(&mut subscription).await {
            Some(Ok(TypedMessage::Skipped(event))) => {
                assert!(event.is_system(), "{event:?}");
                system += 1;
            }
            Some(Ok(TypedMessage::CaughtUp)) => break,
            Some(Ok(TypedMessage::Event(_) | TypedMessage::Checkpoint(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(system, 1);
}
