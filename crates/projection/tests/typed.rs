//! Typed projections end to end, on the in-memory store and on the embedded engine: order
//! events stored at schema versions 1, 2 and 3 all reach a SQLite read model as version 3, and
//! an event the schema cannot decode stops the runner with [`ProjectionError::Decode`] naming
//! it (in the runner's result, its status and every waiting caller's result), after which a
//! schema that skips unknown events resumes at that event.
//!
//! The order is the toolkit's own example ([`factum_aggregate::examples::order`]), whose
//! `OrderPlaced` changed shape twice (v1 → v2 → v3).

use std::sync::Arc;
use std::time::Duration;

use factum_aggregate::examples::order::{OrderEvent, schema};
use factum_codec::CodecError;
use factum_core::{
    EventFilter, EventStore, ExpectedRevision, Position, ProposedEvent, ReadStreamOptions,
    RecordedEvent, StreamName,
};
use factum_memory::MemoryStore;
use factum_projection::{
    ProjectionError, ProjectionRunner, ReadModel, RunState, RunnerOptions, SqliteReadModel,
    TypedProjection, read_checkpoint,
};
use rusqlite::{Connection, params};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

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
    events_of_every_stored_version_reach_the_read_model_as_the_current_one,
    an_unknown_event_fails_the_runner_until_the_schema_skips_it,
);

/// One row per order, with the schema version its `OrderPlaced` was stored at.
struct OrderTable;

impl TypedProjection for OrderTable {
    type Event = OrderEvent;
    type Model = Connection;

    fn name(&self) -> &str {
        "order_table"
    }

    fn filter(&self) -> Option<EventFilter> {
        Some(EventFilter::stream_prefix("order-"))
    }

    fn init(&mut self, db: &mut Connection) -> Result<(), ProjectionError> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS orders (
                 stream TEXT PRIMARY KEY,
                 customer TEXT NOT NULL,
                 total_cents INTEGER NOT NULL,
                 currency TEXT NOT NULL,
                 stored_version INTEGER NOT NULL,
                 shipped INTEGER NOT NULL DEFAULT 0
             )",
        )?;
        Ok(())
    }

    fn clear(&mut self, db: &mut Connection) -> Result<(), ProjectionError> {
        db.execute_batch("DELETE FROM orders")?;
        Ok(())
    }

    fn apply(
        &mut self,
        db: &mut Connection,
        envelope: &RecordedEvent,
        event: &OrderEvent,
    ) -> Result<(), ProjectionError> {
        let stream = envelope.stream.as_str();
        match event {
            OrderEvent::OrderPlaced {
                customer_name,
                total_cents,
                currency,
            } => db.execute(
                "INSERT INTO orders (stream, customer, total_cents, currency, stored_version)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    stream,
                    customer_name,
                    *total_cents as i64,
                    currency,
                    envelope.schema_version
                ],
            )?,
            OrderEvent::OrderShipped { .. } => db.execute(
                "UPDATE orders SET shipped = 1 WHERE stream = ?1",
                params![stream],
            )?,
            OrderEvent::OrderCancelled { .. } => {
                db.execute("DELETE FROM orders WHERE stream = ?1", params![stream])?
            }
        };
        Ok(())
    }
}

type Row = (String, String, i64, String, u32, bool);

fn rows(db: &Connection) -> Vec<Row> {
    let mut statement = db
        .prepare(
            "SELECT stream, customer, total_cents, currency, stored_version, shipped
             FROM orders ORDER BY stream",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn row(stream: &str, customer: &str, cents: i64, version: u32, shipped: bool) -> Row {
    (
        stream.into(),
        customer.into(),
        cents,
        "USD".into(),
        version,
        shipped,
    )
}

async fn append(store: &Arc<dyn EventStore>, stream: &str, event: ProposedEvent) -> Position {
    let stream = StreamName::new(stream).unwrap();
    store
        .append(&stream, ExpectedRevision::Any, vec![event])
        .await
        .unwrap()
        .position
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

fn placed_v3(customer: &str, cents: u64) -> ProposedEvent {
    let event = OrderEvent::OrderPlaced {
        customer_name: customer.into(),
        total_cents: cents,
        currency: "USD".into(),
    };
    schema().encode(&event).unwrap()
}

async fn events_of_every_stored_version_reach_the_read_model_as_the_current_one(
    store: Arc<dyn EventStore>,
) {
    append(&store, "order-1", placed_v1("Alice", 12)).await;
    append(&store, "order-2", placed_v2("Bob", 700)).await;
    append(&store, "order-3", placed_v3("Carol", 99)).await;
    let shipped = OrderEvent::OrderShipped {
        carrier: "Parcelo".into(),
    };
    let shipped = schema().encode(&shipped).unwrap();
    append(&store, "order-1", shipped).await;
    // Another service's events in `$all`, left out by the filter.
    let other = ProposedEvent::json("SomethingElse", &json!({})).unwrap();
    append(&store, "other-1", other).await;

    let model = SqliteReadModel::open_in_memory(OrderTable.with_schema(schema())).unwrap();
    let mut runner = ProjectionRunner::new(store.clone(), model).unwrap();
    let status = runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(status.state, RunState::Stopped);
    assert_eq!(status.checkpoint.processed_events, 4);
    let db = runner.model().expect("stopped").connection();
    assert_eq!(
        rows(db),
        [
            row("order-1", "Alice", 1200, 1, true),
            row("order-2", "Bob", 700, 2, false),
            row("order-3", "Carol", 99, 3, false),
        ]
    );

    // Live events, after a restart from the checkpoint, are decoded the same way.
    append(&store, "order-4", placed_v1("Dave", 2)).await;
    runner.run_until_caught_up(WAIT).await.unwrap();
    let model = runner.model().expect("stopped");
    assert_eq!(
        rows(model.connection())[3],
        row("order-4", "Dave", 200, 1, false)
    );
    assert_eq!(model.projection().projection().name(), "order_table");
}

async fn an_unknown_event_fails_the_runner_until_the_schema_skips_it(store: Arc<dyn EventStore>) {
    let first = append(&store, "order-1", placed_v1("Alice", 12)).await;
    let lost = ProposedEvent::json("OrderLost", &json!({})).unwrap();
    let lost_at = append(&store, "order-2", lost.with_schema_version(2)).await;
    append(&store, "order-3", placed_v2("Bob", 700)).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    // One event per batch, so the batch before the unknown event commits.
    let options = RunnerOptions {
        batch_size: 1,
        ..RunnerOptions::default()
    };
    let model = SqliteReadModel::open(&path, OrderTable.with_schema(schema())).unwrap();
    let mut runner = ProjectionRunner::with_options(store.clone(), model, options).unwrap();
    let error = runner.run_until_caught_up(WAIT).await.unwrap_err();
    // A value to match on, not only a message: which projection, which event, and why.
    assert_unknown_order_lost(&error, lost_at);
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "projection order_table cannot decode the event at position {lost_at}"
        )),
        "{text}"
    );
    assert!(
        text.contains(r#"unknown event type "OrderLost" (schema version 2)"#),
        "{text}"
    );
    let status = runner.status();
    assert!(matches!(status.state, RunState::Failed(_)));
    assert_unknown_order_lost(status.error.as_deref().expect("the error is kept"), lost_at);
    // Every caller waiting on the failed runner gets the error itself.
    let watcher = runner.watcher();
    let waited = watcher.wait_for(lost_at, WAIT).await.unwrap_err();
    assert_unknown_order_lost(&waited, lost_at);
    let waited = runner.wait_for(Position(lost_at.0 + 1), WAIT).await;
    assert_unknown_order_lost(&waited.unwrap_err(), lost_at);
    let reader = Connection::open(&path).unwrap();
    assert_eq!(rows(&reader), [row("order-1", "Alice", 1200, 1, false)]);
    assert_eq!(
        read_checkpoint(&reader, "order_table").unwrap().position,
        first
    );
    drop(runner);

    // The same read model with a schema that skips unknown events resumes at the lost event.
    let skipping = OrderTable.with_schema(schema().skip_unknown());
    let mut model = SqliteReadModel::open(&path, skipping).unwrap();
    assert_eq!(model.checkpoint().unwrap().position, first);
    let mut runner = ProjectionRunner::with_options(store.clone(), model, options).unwrap();
    let status = runner.run_until_caught_up(WAIT).await.unwrap();
    assert_eq!(status.checkpoint.position, store.head().await.unwrap());
    assert!(status.error.is_none(), "starting again clears the error");
    assert_eq!(
        rows(&reader),
        [
            row("order-1", "Alice", 1200, 1, false),
            row("order-3", "Bob", 700, 2, false),
        ]
    );
}

/// `error` is the runner's decode error for the `OrderLost` event at `position`.
fn assert_unknown_order_lost(error: &ProjectionError, position: Position) {
    match error {
        ProjectionError::Decode {
            projection,
            position: at,
            source:
                CodecError::UnknownEventType {
                    event_type,
                    schema_version,
                },
        } => {
            assert_eq!(projection, "order_table");
            assert_eq!(*at, position);
            assert_eq!(event_type, "OrderLost");
            assert_eq!(*schema_version, 2);
        }
        other => panic!("expected a decode error for OrderLost, got {other:?}"),
    }
}

#[test]
fn the_adapter_reports_decode_errors_with_the_projection_and_position() {
    let mut adapter = OrderTable.with_schema(schema());
    let mut db = Connection::open_in_memory().unwrap();
    factum_projection::Projection::init(&mut adapter, &mut db).unwrap();
    let store = MemoryStore::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Data of a known type and version that does not fit the type.
    let bad = ProposedEvent::json("OrderPlaced", &json!({"customer_name": 1}))
        .unwrap()
        .with_schema_version(3);
    let stream = StreamName::new("order-1").unwrap();
    let events = runtime.block_on(async {
        store
            .append(&stream, ExpectedRevision::NoStream, vec![bad])
            .await
            .unwrap();
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await
            .unwrap()
    });
    let error =
        factum_projection::Projection::apply(&mut adapter, &mut db, &events[0]).unwrap_err();
    match error {
        ProjectionError::Decode {
            projection,
            position,
            source,
        } => {
            assert_eq!(projection, "order_table");
            assert_eq!(position, events[0].position);
            let text = source.to_string();
            assert!(
                text.contains(r#"cannot decode event type "OrderPlaced" at schema version 3"#),
                "{text}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}
