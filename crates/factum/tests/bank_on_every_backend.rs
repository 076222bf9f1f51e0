//! The article's bank, end to end, on every backend the conformance suite runs: accounts opened,
//! deposits, a refused withdrawal that writes nothing, concurrent commands on one account that
//! all end cleanly with the balance right, and the `account_summary` projection's query.
//!
//! The scenario only uses the `EventStore` trait, so a backend that passes the conformance
//! suite must pass it too; each backend gets its own test below.

use std::sync::Arc;
use std::time::Duration;

use factum::aggregate::examples::bank::{AccountCommand, BankAccount, BankError};
use factum::aggregate::{EventSchema, Repository, RepositoryError};
use factum::embedded::EmbeddedStore;
use factum::memory::MemoryStore;
use factum::projection::{
    AccountSummary, ProjectionRunner, SqliteReadModel, accounts_with_balance_above, all_accounts,
};
use factum::{EventStore, ReadStreamOptions};

/// How many commands race on one account.
const RACERS: u64 = 12;

fn open(owner: &str, cents: u64) -> AccountCommand {
    AccountCommand::Open {
        owner: owner.into(),
        initial_balance_cents: cents,
    }
}

async fn bank_scenario(store: Arc<dyn EventStore>) {
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

/// The bank scenario on the in-memory backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_memory_store() {
    bank_scenario(Arc::new(MemoryStore::new())).await;
}

/// The bank scenario on the embedded (durable) backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_on_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    bank_scenario(store).await;
}
