//! The repository against real stores: every scenario runs on the in-memory store and on the
//! embedded engine in a temporary directory.

use std::sync::Arc;

use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount, BankError};
use factum_aggregate::examples::order::{self, Order, OrderCommand, OrderEvent};
use factum_aggregate::{
    Aggregate, CommandContext, EventSchema, Repository, RepositoryError, SnapshotPolicy,
    snapshot_stream_of,
};
use factum_codec::{CodecError, migrate_stream};
use factum_core::{
    EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions, StreamName,
};
use serde_json::json;
use uuid::Uuid;

/// Runs `scenario` once on a fresh in-memory store and once on a fresh embedded store.
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let store: std::sync::Arc<dyn factum_core::EventStore> =
                        std::sync::Arc::new(factum_memory::MemoryStore::new());
                    super::$scenario(store).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store: std::sync::Arc<dyn factum_core::EventStore> =
                        std::sync::Arc::new(factum_log::EmbeddedStore::open(dir.path()).unwrap());
                    super::$scenario(store).await;
                }
            )*
        }
    };
}

on_every_store!(
    a_failing_command_leaves_no_event,
    concurrent_commands_on_one_account_keep_the_balance_exact,
    conflicts_past_the_attempt_limit_fail_cleanly,
    a_retried_command_id_is_applied_once,
    snapshots_shorten_loads_and_stay_out_of_all,
    a_snapshot_from_old_code_is_ignored,
    a_v1_event_loads_as_v3,
    unknown_events_fail_by_name_or_are_skipped_by_policy,
    loads_as_of_a_revision_and_a_time,
    history_says_who_when_and_what,
    migrate_stream_rewrites_through_the_upcasters,
);

fn bank(store: &Arc<dyn EventStore>) -> Repository<BankAccount> {
    Repository::new(store.clone(), EventSchema::json())
}

fn open(owner: &str, initial_balance_cents: u64) -> AccountCommand {
    AccountCommand::Open {
        owner: owner.into(),
        initial_balance_cents,
    }
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

async fn stream_len(store: &Arc<dyn EventStore>, name: &str) -> usize {
    match store
        .read_stream(&stream(name), ReadStreamOptions::forwards())
        .await
    {
        Ok(events) => events.len(),
        Err(factum_core::Error::StreamNotFound { .. }) => 0,
        Err(error) => panic!("{error}"),
    }
}

/// A refused command writes nothing, on a new aggregate and on an existing one.
async fn a_failing_command_leaves_no_event(store: Arc<dyn EventStore>) {
    let repository = bank(&store);
    let refused = repository
        .execute("a", &AccountCommand::Deposit { amount_cents: 5 })
        .await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Rejected(BankError::NotOpen))
    ));
    assert_eq!(stream_len(&store, "account-a").await, 0);

    repository.execute("a", &open("Alice", 100)).await.unwrap();
    let refused = repository
        .execute("a", &AccountCommand::Withdraw { amount_cents: 101 })
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("Insufficient funds"),
        "{refused}"
    );
    assert_eq!(stream_len(&store, "account-a").await, 1);
    assert_eq!(store.head().await.unwrap().value(), 1);
}

/// Sixteen concurrent commands on one account: with enough attempts every one succeeds
/// through retries, and the balance is exactly the sum.
async fn concurrent_commands_on_one_account_keep_the_balance_exact(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_max_attempts(16);
    repository
        .execute("one", &open("Alice", 1_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|index| {
            let repository = repository.clone();
            tokio::spawn(async move {
                let command = if index % 4 == 0 {
                    AccountCommand::Withdraw { amount_cents: 10 }
                } else {
                    AccountCommand::Deposit {
                        amount_cents: index + 1,
                    }
                };
                repository.execute("one", &command).await
            })
        })
        .collect();
    let mut attempts_total = 0;
    for task in tasks {
        let executed = task
            .await
            .unwrap()
            .expect("every command succeeds through retries");
        attempts_total += executed.attempts;
    }
    assert!(attempts_total >= 16);
    let deposits: u64 = (0..16u64).filter(|i| i % 4 != 0).map(|i| i + 1).sum();
    let loaded = repository.load("one").await.unwrap();
    assert_eq!(loaded.state.balance_cents, 1_000 + deposits - 4 * 10);
    assert_eq!(loaded.revision, Some(16));
    assert_eq!(stream_len(&store, "account-one").await, 17);
}

/// With one attempt, concurrent commands either succeed or fail with a clear conflict, and
/// the balance counts exactly the successful ones.
async fn conflicts_past_the_attempt_limit_fail_cleanly(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_max_attempts(1);
    repository.execute("one", &open("Alice", 0)).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|index| {
            let repository = repository.clone();
            tokio::spawn(async move {
                let amount_cents = 1 << index;
                let result = repository
                    .execute("one", &AccountCommand::Deposit { amount_cents })
                    .await;
                (amount_cents, result)
            })
        })
        .collect();
    let mut expected = 0;
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            (amount_cents, Ok(_)) => {
                expected += amount_cents;
                succeeded += 1;
            }
            (_, Err(RepositoryError::Conflict { stream, attempts })) => {
                assert_eq!(stream.as_str(), "account-one");
                assert_eq!(attempts, 1);
            }
            (_, Err(error)) => panic!("unexpected error {error}"),
        }
    }
    assert!(succeeded >= 1);
    let loaded = repository.load("one").await.unwrap();
    assert_eq!(loaded.state.balance_cents, expected);
    assert_eq!(loaded.revision, Some(succeeded));
}

/// A command executed twice with the same command id (a client retry) writes its events
/// once; their ids are derived from the command id.
async fn a_retried_command_id_is_applied_once(store: Arc<dyn EventStore>) {
    let repository = bank(&store);
    repository.execute("a", &open("Alice", 0)).await.unwrap();
    let context = CommandContext::new().with_command_id(Uuid::now_v7());
    let deposit = AccountCommand::Deposit { amount_cents: 70 };
    let first = repository
        .execute_with("a", &deposit, &context)
        .await
        .unwrap();
    assert!(!first.already_applied);
    repository
        .execute("a", &AccountCommand::Deposit { amount_cents: 1 })
        .await
        .unwrap();
    let again = repository
        .execute_with("a", &deposit, &context)
        .await
        .unwrap();
    assert!(again.already_applied);
    assert_eq!(
        again.events,
        vec![AccountEvent::MoneyDeposited { amount_cents: 70 }]
    );
    assert_eq!(again.position, first.position);
    assert_eq!(again.state.balance_cents, 71);
    assert_eq!(stream_len(&store, "account-a").await, 3);
}

/// Snapshots every 10 events: a load starts from the newest one and replays only what follows;
/// old snapshots are capped by `$maxCount`; none shows in `$all` unless system events are asked.
async fn snapshots_shorten_loads_and_stay_out_of_all(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_snapshots(SnapshotPolicy::every(10).keep(2));
    repository.execute("s", &open("Alice", 0)).await.unwrap();
    let mut taken = Vec::new();
    for _ in 0..34 {
        let executed = repository
            .execute("s", &AccountCommand::Deposit { amount_cents: 3 })
            .await
            .unwrap();
        taken.extend(executed.snapshot_revision);
    }
    assert_eq!(taken, vec![9, 19, 29]);
    let loaded = repository.load("s").await.unwrap();
    assert_eq!(loaded.snapshot_revision, Some(29));
    assert_eq!(loaded.replayed, 5);
    assert_eq!(loaded.revision, Some(34));
    assert_eq!(loaded.state.balance_cents, 34 * 3);
    let full = bank(&store).load("s").await.unwrap();
    assert_eq!(full.state, loaded.state);
    assert_eq!(full.replayed, 35);

    let snapshots = snapshot_stream_of(&stream("account-s")).unwrap();
    let kept = store
        .read_stream(&snapshots, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(kept.len(), 2);
    let all = store.read_all(ReadAllOptions::forwards()).await.unwrap();
    assert!(
        all.events
            .iter()
            .all(|event| event.stream.as_str() == "account-s")
    );
    let with_system = store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .unwrap();
    assert!(
        with_system
            .events
            .iter()
            .any(|event| event.stream == snapshots)
    );
}

/// A snapshot written by other code (another snapshot version), or one that does not decode,
/// is ignored: the load replays everything and never misreads it.
async fn a_snapshot_from_old_code_is_ignored(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_snapshots(SnapshotPolicy::every(1_000));
    repository.execute("o", &open("Alice", 40)).await.unwrap();
    repository
        .execute("o", &AccountCommand::Deposit { amount_cents: 2 })
        .await
        .unwrap();
    let snapshots = snapshot_stream_of(&stream("account-o")).unwrap();
    let old_version = ProposedEvent::json(
        "Snapshot",
        &json!({"revision": 1, "state": {"owner": "Mallory", "balance_cents": 999_999, "withdrawal_count": 0}}),
    )
    .unwrap()
    .with_schema_version(BankAccount::SNAPSHOT_VERSION + 1);
    let wrong_shape = ProposedEvent::json(
        "Snapshot",
        &json!({"revision": 1, "state": {"balance": "lots"}}),
    )
    .unwrap()
    .with_schema_version(BankAccount::SNAPSHOT_VERSION);
    store
        .append(
            &snapshots,
            ExpectedRevision::Any,
            vec![wrong_shape, old_version],
        )
        .await
        .unwrap();
    let loaded = repository.load("o").await.unwrap();
    assert_eq!(loaded.snapshot_revision, None);
    assert_eq!(loaded.replayed, 2);
    assert_eq!(loaded.state.owner.as_deref(), Some("Alice"));
    assert_eq!(loaded.state.balance_cents, 42);
}

fn order_placed_v1(customer: &str, total_dollars: f64) -> ProposedEvent {
    ProposedEvent::json(
        "OrderPlaced",
        &json!({"customer": customer, "total": total_dollars}),
    )
    .unwrap()
    .with_schema_version(1)
}

/// An `OrderPlaced` stored at v1 (float dollars) and one at v2 load as v3 through the chain,
/// and the aggregate keeps working on top of them.
async fn a_v1_event_loads_as_v3(store: Arc<dyn EventStore>) {
    store
        .append(
            &stream("order-1"),
            ExpectedRevision::NoStream,
            vec![order_placed_v1("Alice", 19.99)],
        )
        .await
        .unwrap();
    let v2 = ProposedEvent::json(
        "OrderPlaced",
        &json!({"customer_name": "Bob", "total_cents": 500}),
    )
    .unwrap()
    .with_schema_version(2);
    store
        .append(&stream("order-2"), ExpectedRevision::NoStream, vec![v2])
        .await
        .unwrap();
    let repository = Repository::<Order>::new(store.clone(), order::schema());
    let alice = repository.load("1").await.unwrap();
    assert_eq!(alice.state.customer_name.as_deref(), Some("Alice"));
    assert_eq!(alice.state.total_cents, 1999);
    assert_eq!(alice.state.currency, "USD");
    let bob = repository.load("2").await.unwrap().state;
    assert_eq!((bob.total_cents, bob.currency.as_str()), (500, "USD"));

    let shipped = repository
        .execute(
            "1",
            &OrderCommand::Ship {
                carrier: "UPS".into(),
            },
        )
        .await
        .unwrap();
    assert!(shipped.state.shipped);
    let history = repository.history("1").await.unwrap();
    assert_eq!(history[0].schema_version, 1);
    assert_eq!(
        history[0].event,
        Some(OrderEvent::OrderPlaced {
            customer_name: "Alice".into(),
            total_cents: 1999,
            currency: "USD".into()
        })
    );
}

/// An event of a type or version the code does not know fails the load with an error naming
/// both; with the skip policy it is left out (its revision still counts).
async fn unknown_events_fail_by_name_or_are_skipped_by_policy(store: Arc<dyn EventStore>) {
    let events = vec![
        order_placed_v1("Alice", 1.0),
        ProposedEvent::json("OrderGiftWrapped", &json!({}))
            .unwrap()
            .with_schema_version(2),
    ];
    store
        .append(&stream("order-u"), ExpectedRevision::NoStream, events)
        .await
        .unwrap();
    let strict = Repository::<Order>::new(store.clone(), order::schema());
    let error = strict.load("u").await.unwrap_err();
    assert!(
        matches!(&error, RepositoryError::Codec(CodecError::UnknownEventType { event_type, schema_version: 2 }) if event_type == "OrderGiftWrapped"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("OrderGiftWrapped") && message.contains("schema version 2"),
        "{message}"
    );

    let future = ProposedEvent::json("OrderShipped", &json!({"carrier": "X", "drone": true}))
        .unwrap()
        .with_schema_version(7);
    store
        .append(
            &stream("order-v"),
            ExpectedRevision::NoStream,
            vec![order_placed_v1("Bo", 2.0), future],
        )
        .await
        .unwrap();
    let message = strict.load("v").await.unwrap_err().to_string();
    assert!(
        message.contains("unknown schema version 7 of event type \"OrderShipped\""),
        "{message}"
    );

    let lenient = Repository::<Order>::new(store.clone(), order::schema().skip_unknown());
    let loaded = lenient.load("u").await.unwrap();
    assert_eq!(loaded.revision, Some(1));
    assert_eq!(loaded.state.total_cents, 100);
    let cancelled = lenient
        .execute(
            "u",
            &OrderCommand::Cancel {
                reason: "test".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.revision, Some(2));
}

/// Loading as of a revision or a time shows the state then ("what was the balance before the
/// withdrawal?").
async fn loads_as_of_a_revision_and_a_time(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_snapshots(SnapshotPolicy::every(2));
    repository.execute("t", &open("Alice", 100)).await.unwrap();
    repository
        .execute("t", &AccountCommand::Deposit { amount_cents: 50 })
        .await
        .unwrap();
    repository
        .execute("t", &AccountCommand::Withdraw { amount_cents: 30 })
        .await
        .unwrap();
    let history = repository.history("t").await.unwrap();

    let at_zero = repository.load_at_revision("t", 0).await.unwrap();
    assert_eq!(
        (at_zero.state.balance_cents, at_zero.revision),
        (100, Some(0))
    );
    let at_one = repository.load_at_revision("t", 1).await.unwrap();
    assert_eq!(at_one.snapshot_revision, Some(1));
    assert_eq!(at_one.state.balance_cents, 150);
    let beyond = repository.load_at_revision("t", 99).await.unwrap();
    assert_eq!(
        (beyond.state.balance_cents, beyond.revision),
        (120, Some(2))
    );

    let then = repository
        .load_as_of("t", history[1].recorded_at)
        .await
        .unwrap();
    assert!(then.state.balance_cents >= 100);
    assert_eq!(
        then.revision
            .map(|r| history[r as usize].recorded_at <= history[1].recorded_at),
        Some(true)
    );
    let before = repository
        .load_as_of(
            "t",
            factum_core::Timestamp::from_unix_micros(history[0].recorded_at.unix_micros() - 1),
        )
        .await
        .unwrap();
    assert!(!before.exists());
    let now = repository
        .load_as_of("t", factum_core::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(now.state.balance_cents, 120);
}

/// History lists each event with its recorded time, correlation and causation ids, command id,
/// actor, type and version.
async fn history_says_who_when_and_what(store: Arc<dyn EventStore>) {
    let repository = bank(&store);
    let command_id = Uuid::now_v7();
    let context = CommandContext::new()
        .with_command_id(command_id)
        .with_correlation_id("signup-9")
        .with_actor("teller-3");
    repository
        .execute_with("h", &open("Alice", 0), &context)
        .await
        .unwrap();
    repository
        .execute("h", &AccountCommand::Deposit { amount_cents: 5 })
        .await
        .unwrap();
    let history = repository.history("h").await.unwrap();
    assert_eq!(history.len(), 2);
    let opened = &history[0];
    assert_eq!(opened.event_type, "AccountOpened");
    assert_eq!(opened.schema_version, 1);
    assert_eq!(opened.correlation_id.as_deref(), Some("signup-9"));
    assert_eq!(
        opened.causation_id.as_deref(),
        Some(command_id.to_string().as_str())
    );
    assert_eq!(
        opened.command_id.as_deref(),
        Some(command_id.to_string().as_str())
    );
    assert_eq!(opened.actor.as_deref(), Some("teller-3"));
    assert_eq!(
        opened.event_id,
        factum_codec::derive_event_id(command_id, "account-h", 0)
    );
    let deposited = &history[1];
    assert!(deposited.recorded_at >= opened.recorded_at);
    assert_eq!(deposited.actor, None);
    assert_eq!(deposited.correlation_id, deposited.command_id);
    assert_eq!(
        deposited.event,
        Some(AccountEvent::MoneyDeposited { amount_cents: 5 })
    );
    assert!(repository.history("nobody").await.unwrap().is_empty());
}

/// `migrate_stream` copies an old stream into a new one at the current versions, keeping
/// metadata and pointing causation at the originals; running it again adds nothing.
async fn migrate_stream_rewrites_through_the_upcasters(store: Arc<dyn EventStore>) {
    let from = stream("order-old");
    let shipped = ProposedEvent::json("OrderShipped", &json!({"carrier": "DHL"}))
        .unwrap()
        .with_json_metadata(&json!({"$correlationId": "c-1", "user": "ops"}))
        .unwrap();
    let events = vec![order_placed_v1("Alice", 12.5).with_tags(["vip"]), shipped];
    store
        .append(&from, ExpectedRevision::NoStream, events)
        .await
        .unwrap();
    let originals = store
        .read_stream(&from, ReadStreamOptions::forwards())
        .await
        .unwrap();
    let to = stream("order-new");
    let schema = order::schema();
    let report = migrate_stream(store.as_ref(), &from, &to, &schema)
        .await
        .unwrap();
    assert_eq!(
        (report.copied, report.skipped, report.last_revision),
        (2, 0, Some(1))
    );
    let again = migrate_stream(store.as_ref(), &from, &to, &schema)
        .await
        .unwrap();
    assert_eq!(again.copied, 2);

    let copies = store
        .read_stream(&to, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].schema_version, 3);
    let placed: serde_json::Value = copies[0].data_json().unwrap();
    assert_eq!(
        placed,
        json!({"customer_name": "Alice", "total_cents": 1250, "currency": "USD"})
    );
    assert_eq!(copies[0].tags, vec!["vip".to_string()]);
    for (copy, original) in copies.iter().zip(&originals) {
        assert_eq!(copy.causation_id(), Some(original.id.to_string()));
    }
    assert_eq!(copies[1].correlation_id().as_deref(), Some("c-1"));
    let metadata: serde_json::Value = serde_json::from_slice(&copies[1].metadata).unwrap();
    assert_eq!(metadata["user"], "ops");
    assert_eq!(
        metadata["migratedFrom"],
        json!({"stream": "order-old", "revision": 1})
    );

    let migrated = Repository::<Order>::new(store.clone(), order::schema())
        .load("new")
        .await
        .unwrap();
    assert!(migrated.state.shipped);
    assert_eq!(migrated.state.total_cents, 1250);
}
