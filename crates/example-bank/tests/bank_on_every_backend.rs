//! The article on every backend the conformance suite runs: each scenario below is an
//! `async fn(Arc<dyn EventStore>)`, run once on the in-memory store and once on the durable
//! embedded engine (in a temporary directory) by [`on_every_backend!`].
//!
//! - `bank`: accounts opened, deposits, a refused withdrawal that writes nothing, concurrent
//!   commands on one account that all end cleanly with the balance right, and the
//!   `account_summary` projection's query.
//! - `orders`: the order whose `OrderPlaced` changed shape twice: v1 and v2 events written by
//!   old code load as v3, commands work on them, the store keeps them as written, an event from
//!   newer code is refused with its type and version named, and a migration rewrites a stream
//!   at the current version.
//! - `the_whole_article`: every step of the demo (`factum demo bank`), checked by its figures.
//!
//! The scenarios only use the `EventStore` trait, so a backend that passes the conformance
//! suite must pass them too.

use std::sync::Arc;
use std::time::Duration;

use factum::aggregate::examples::bank::{AccountCommand, BankAccount, BankError};
use factum::aggregate::examples::order::{self, Order, OrderCommand, OrderEvent};
use factum::aggregate::{EventSchema, Repository, RepositoryError};
use factum::codec::{CodecError, migrate_stream};
use factum::projection::{
    AccountSummary, ProjectionRunner, SqliteReadModel, accounts_with_balance_above, all_accounts,
};
use factum::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
use serde_json::json;

/// Runs each named scenario, an `async fn(Arc<dyn EventStore>)`, as two tests in a module of
/// its name: `on_memory_store` and `on_embedded_store`.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use std::sync::Arc;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_memory_store() {
                super::$scenario(Arc::new(factum::memory::MemoryStore::new())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_embedded_store() {
                let dir = tempfile::tempdir().unwrap();
                let store = factum::embedded::EmbeddedStore::open(dir.path()).unwrap();
                super::$scenario(Arc::new(store)).await;
            }
        }
    )*};
}

on_every_backend!(bank, orders, the_whole_article);

/// How many commands race on one account.
const RACERS: u64 = 12;

fn open(owner: &str, cents: u64) -> AccountCommand {
    AccountCommand::Open {
        owner: owner.into(),
        initial_balance_cents: cents,
    }
}

async fn bank(store: Arc<dyn EventStore>) {
    let accounts = Repository::<BankAccount>::new(store.clone(), EventSchema::json())
        .with_max_attempts(RACERS as u32 * 4);

    accounts.execute("alice", &open("Alice", 0)).await.unwrap();
    accounts.execute("bob", &open("Bob", 20_000)).await.unwrap();
    accounts
        .execute("carol", &open("Carol", 250_000))
        .await
        .unwrap();
    for cents in [50_000, 70_000] {
        let deposit = AccountCommand::Deposit {
            amount_cents: cents,
        };
        accounts.execute("alice", &deposit).await.unwrap();
    }

    // The refused withdrawal: an error naming the shortfall, and no event.
    let before = accounts.load("bob").await.unwrap();
    let refused = accounts
        .execute(
            "bob",
            &AccountCommand::Withdraw {
                amount_cents: 20_001,
            },
        )
        .await;
    let Err(RepositoryError::Rejected(error)) = refused else {
        panic!("an overdraft must be refused, got {refused:?}");
    };
    assert_eq!(
        error,
        BankError::InsufficientFunds {
            balance_cents: 20_000,
            requested_cents: 20_001
        }
    );
    assert!(error.to_string().starts_with("Insufficient funds"));
    let stream = accounts.stream_name("bob").unwrap();
    let events = store
        .read_stream(&stream, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "a refused command writes nothing");
    assert_eq!(accounts.load("bob").await.unwrap(), before);

    // Concurrent commands on one account: deposits and withdrawals race; each one either
    // succeeds (after retries on conflicts) or is refused for funds, never half-done.
    let mut racers = Vec::new();
    for racer in 0..RACERS {
        let accounts = accounts.clone();
        racers.push(tokio::spawn(async move {
            let command = if racer % 2 == 0 {
                AccountCommand::Deposit {
                    amount_cents: 1_000,
                }
            } else {
                AccountCommand::Withdraw {
                    amount_cents: 3_000,
                }
            };
            (command.clone(), accounts.execute("bob", &command).await)
        }));
    }
    let mut expected = 20_000u64;
    let mut written = 0;
    for racer in racers {
        let (command, outcome) = racer.await.unwrap();
        match (command, outcome) {
            (AccountCommand::Deposit { amount_cents }, Ok(done)) => {
                expected += amount_cents;
                written += done.events.len();
            }
            (AccountCommand::Withdraw { amount_cents }, Ok(done)) => {
                expected -= amount_cents;
                written += done.events.len();
            }
            (AccountCommand::Withdraw { .. }, Err(RepositoryError::Rejected(error))) => {
                assert!(matches!(error, BankError::InsufficientFunds { .. }));
            }
            (command, outcome) => panic!("{command:?} ended badly: {outcome:?}"),
        }
    }
    let bob = accounts.load("bob").await.unwrap();
    assert_eq!(bob.state.balance_cents, expected);
    assert_eq!(bob.revision, Some(written as u64));

    // The article's query, on the account_summary projection in SQLite.
    let model = SqliteReadModel::open_in_memory(AccountSummary).unwrap();
    let mut runner = ProjectionRunner::new(store.clone(), model).unwrap();
    runner
        .run_until_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let db = runner.model().expect("stopped").connection();
    let rich: Vec<(String, i64)> = accounts_with_balance_above(db, 100_000)
        .unwrap()
        .into_iter()
        .map(|row| (row.account_id, row.balance_cents))
        .collect();
    assert_eq!(
        rich,
        vec![("carol".to_owned(), 250_000), ("alice".to_owned(), 120_000)]
    );
    let summary = all_accounts(db).unwrap();
    assert_eq!(summary.len(), 3);
    assert_eq!(summary[1].account_id, "bob");
    assert_eq!(summary[1].owner, "Bob");
    assert_eq!(summary[1].balance_cents, expected as i64);
}

async fn orders(store: Arc<dyn EventStore>) {
    // Old code wrote these: v1 with the total in dollars as a float, v2 in cents without a
    // currency.
    let old = [
        ("order-1", 1, json!({"customer": "Alice", "total": 12.5})),
        (
            "order-2",
            2,
            json!({"customer_name": "Bob", "total_cents": 4_999}),
        ),
    ];
    for (stream, version, data) in old {
        let event = ProposedEvent::json("OrderPlaced", &data)
            .unwrap()
            .with_schema_version(version);
        let stream = StreamName::new(stream).unwrap();
        store
            .append(&stream, ExpectedRevision::NoStream, vec![event])
            .await
            .unwrap();
    }
    let orders = Repository::<Order>::new(store.clone(), order::schema());

    // Both load as today's shape.
    let alice = orders.load("1").await.unwrap().state;
    assert_eq!(alice.customer_name.as_deref(), Some("Alice"));
    assert_eq!(alice.total_cents, 1_250);
    assert_eq!(alice.currency, "USD");
    let bob = orders.load("2").await.unwrap().state;
    assert_eq!(bob.customer_name.as_deref(), Some("Bob"));
    assert_eq!(bob.total_cents, 4_999);
    assert_eq!(bob.currency, "USD");

    // Today's code commands an order placed by v1 code; its own event is stored at today's
    // version, and the old one stays as it was written (upcasting happens on reads).
    let shipped = orders
        .execute(
            "1",
            &OrderCommand::Ship {
                carrier: "Parcelo".into(),
            },
        )
        .await
        .unwrap();
    assert!(shipped.state.shipped);
    assert_eq!(shipped.revision, Some(1));
    let stream = StreamName::new("order-1").unwrap();
    let stored = store
        .read_stream(&stream, ReadStreamOptions::forwards())
        .await
        .unwrap();
    let versions: Vec<(&str, u32)> = stored
        .iter()
        .map(|event| (event.event_type.as_str(), event.schema_version))
        .collect();
    assert_eq!(versions, [("OrderPlaced", 1), ("OrderShipped", 1)]);
    let history = orders.history("1").await.unwrap();
    assert_eq!(history[0].schema_version, 1);
    assert_eq!(
        history[0].event,
        Some(OrderEvent::OrderPlaced {
            customer_name: "Alice".into(),
            total_cents: 1_250,
            currency: "USD".into(),
        })
    );
    let placed = orders
        .execute(
            "3",
            &OrderCommand::Place {
                customer_name: "Carol".into(),
                total_cents: 2_000,
                currency: "EUR".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(placed.state.currency, "EUR");
    assert_eq!(orders.history("3").await.unwrap()[0].schema_version, 3);

    // An event written by newer code than this: refused with its type and version named, and
    // the command writes nothing.
    let newer = ProposedEvent::json(
        "OrderPlaced",
        &json!({"customer_name": "Dave", "total_cents": 1, "currency": "USD", "vat": 0}),
    )
    .unwrap()
    .with_schema_version(4);
    let stream = StreamName::new("order-4").unwrap();
    store
        .append(&stream, ExpectedRevision::NoStream, vec![newer])
        .await
        .unwrap();
    let cancel = OrderCommand::Cancel {
        reason: "late".into(),
    };
    let refused = orders.execute("4", &cancel).await;
    match refused {
        Err(RepositoryError::Codec(CodecError::UnknownSchemaVersion {
            ref event_type,
            schema_version,
            current_version,
        })) => {
            assert_eq!(event_type, "OrderPlaced");
            assert_eq!(schema_version, 4);
            assert_eq!(current_version, 3);
        }
        other => panic!("expected an unknown schema version, got {other:?}"),
    }
    let order_4 = store
        .read_stream(&stream, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(order_4.len(), 1, "a failing command writes nothing");

    // A rewrite, when wanted: the copy holds today's versions and loads the same state.
    let from = StreamName::new("order-1").unwrap();
    let to = StreamName::new("order-1v3").unwrap();
    let report = migrate_stream(store.as_ref(), &from, &to, &order::schema())
        .await
        .unwrap();
    assert_eq!(report.copied, 2);
    let copied = store
        .read_stream(&to, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(copied[0].schema_version, 3);
    let copy = Repository::<Order>::new(store.clone(), order::schema())
        .load("1v3")
        .await
        .unwrap();
    assert_eq!(copy.state, shipped.state);
}

/// Every step of the demo, checked by its figures: the refused withdrawal wrote nothing, the
/// summary and the query match the script, snapshots cut the replay, the fraud report replayed
/// all history and flags the account with five quick withdrawals, and orders stored as v1 and
/// v2 load as v3.
async fn the_whole_article(store: Arc<dyn EventStore>) {
    let read_models = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    let report = factum_example_bank::run(store, read_models.path(), 1_000, &mut text)
        .await
        .unwrap();
    let text = String::from_utf8(text).unwrap();

    assert_eq!(report.commands, 15 + 8 + 2);
    assert_eq!(report.refused.account_id, "bob");
    assert_eq!(report.refused.requested_cents, 100_000);
    assert!(report.refused.message.starts_with("Insufficient funds"));
    assert_eq!(report.refused.head_before, report.refused.head_after);

    let balances: Vec<(&str, i64)> = report
        .accounts
        .iter()
        .map(|row| (row.account_id.as_str(), row.balance_cents))
        .collect();
    assert_eq!(
        balances,
        vec![
            ("alice", 105_000),
            ("bob", 15_000),
            ("carol", 270_345),
            ("dave", 70_000),
            ("erin", 100_100),
        ]
    );
    let rich: Vec<&str> = report
        .rich_accounts
        .iter()
        .map(|row| row.account_id.as_str())
        .collect();
    assert_eq!(rich, vec!["carol", "alice", "erin"]);

    assert_eq!(report.snapshot.events, 1_002);
    assert_eq!(report.snapshot.without.replayed, 1_002);
    assert_eq!(report.snapshot.without.snapshot_revision, None);
    assert_eq!(report.snapshot.with.snapshot_revision, Some(1_001));
    assert_eq!(report.snapshot.with.replayed, 0);
    assert_eq!(report.snapshot.with.balance_cents, 100_100);

    assert_eq!(report.concurrent.deposits, 8);
    assert!(report.concurrent.attempts >= 8);
    assert_eq!(report.concurrent.balance_cents, 270_345);

    // Every account event: 14 accepted commands, 8 concurrent deposits, the busy account's
    // 1,002.
    assert_eq!(report.fraud.replayed_events, 14 + 8 + 1_002);
    assert_eq!(report.fraud.flagged, vec![("dave".to_owned(), 5)]);

    let orders: Vec<(u32, &str, u64, &str, bool)> = report
        .orders
        .iter()
        .map(|order| {
            (
                order.stored_version,
                order.customer_name.as_str(),
                order.total_cents,
                order.currency.as_str(),
                order.shipped,
            )
        })
        .collect();
    assert_eq!(
        orders,
        vec![
            (1, "Alice", 1_250, "USD", true),
            (2, "Bob", 4_999, "USD", false),
            (3, "Carol", 2_000, "EUR", false),
        ]
    );

    assert!(text.contains("REFUSED: Insufficient funds"), "{text}");
    assert!(
        text.contains("balance > $1,000: carol (Carol) $2,703.45"),
        "{text}"
    );
    assert!(
        text.contains("fraud report: dave flagged, 5 withdrawals"),
        "{text}"
    );
    assert!(read_models.path().join("account_summary.sqlite").is_file());
    assert!(read_models.path().join("fraud_report.sqlite").is_file());
}
