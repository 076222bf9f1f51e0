//! The repository's state cache against real stores: a cached state is brought up to date, or
//! dropped and reloaded, whenever another writer, a delete or a tombstone changed the stream,
//! so commands never decide on stale state. Every scenario runs on the in-memory store and on
//! the embedded engine.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use factum_aggregate::examples::bank::{AccountCommand, AccountEvent, BankAccount, BankError};
use factum_aggregate::{EventSchema, Repository, RepositoryError};
use factum_core::{
    AllSlice, AppendResult, DeleteResult, Error, EventStore, ExpectedRevision, Limits, Position,
    ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamName,
};
use tokio::sync::watch;

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
    a_cached_state_catches_up_with_another_repository,
    a_write_between_check_and_save_is_a_conflict_that_reloads,
    a_stale_entry_is_dropped_when_the_attempts_run_out,
    commands_from_two_repositories_stay_exact,
    sixteen_concurrent_commands_on_one_account_with_the_cache,
    the_least_recently_used_aggregate_is_evicted,
    a_soft_deleted_account_is_not_revived_by_the_cache,
    a_recreated_account_starts_from_its_new_history,
    a_tombstoned_account_fails_even_when_cached,
    the_cache_can_be_turned_off,
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

fn deposit(amount_cents: u64) -> AccountCommand {
    AccountCommand::Deposit { amount_cents }
}

fn withdraw(amount_cents: u64) -> AccountCommand {
    AccountCommand::Withdraw { amount_cents }
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

/// The events of a deposit of `amount_cents`, as another writer would append them.
fn deposited(amount_cents: u64) -> Vec<ProposedEvent> {
    let event = AccountEvent::MoneyDeposited { amount_cents };
    vec![EventSchema::<AccountEvent>::json().encode(&event).unwrap()]
}

/// A store that, once armed, slips other events into a stream just before the next append to
/// it: the write of another process landing between a command's check and its save.
struct Interloper {
    inner: Arc<dyn EventStore>,
    armed: Mutex<Option<(StreamName, Vec<ProposedEvent>)>>,
}

impl Interloper {
    fn new(inner: Arc<dyn EventStore>) -> Arc<Interloper> {
        Arc::new(Interloper {
            inner,
            armed: Mutex::new(None),
        })
    }

    /// Appends `events` to `stream` right before the next append to it.
    fn arm(&self, stream: StreamName, events: Vec<ProposedEvent>) {
        *self.armed.lock().unwrap() = Some((stream, events));
    }
}

#[async_trait]
impl EventStore for Interloper {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> factum_core::Result<AppendResult> {
        let slipped = {
            let mut armed = self.armed.lock().unwrap();
            match armed.take() {
                Some((target, events)) if target == *stream => Some(events),
                other => {
                    *armed = other;
                    None
                }
            }
        };
        if let Some(slipped) = slipped {
            self.inner
                .append(stream, ExpectedRevision::Any, slipped)
                .await?;
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> factum_core::Result<Vec<RecordedEvent>> {
        self.inner.read_stream(stream, options).await
    }

    async fn read_all(&self, options: ReadAllOptions) -> factum_core::Result<AllSlice> {
        self.inner.read_all(options).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> factum_core::Result<DeleteResult> {
        self.inner.delete_stream(stream, expected).await
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> factum_core::Result<DeleteResult> {
        self.inner.tombstone_stream(stream, expected).await
    }

    async fn head(&self) -> factum_core::Result<Position> {
        self.inner.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
}

/// Another repository (another process) deposits after this one cached the account: the
/// next command reads that deposit before deciding, so the withdrawal it allows is right.
async fn a_cached_state_catches_up_with_another_repository(store: Arc<dyn EventStore>) {
    let mine = bank(&store);
    mine.execute("a", &open("Alice", 100)).await.unwrap();
    assert_eq!(mine.cached_revision("a"), Some(0));
    bank(&store).execute("a", &deposit(50)).await.unwrap();
    assert_eq!(mine.cached_revision("a"), Some(0));

    let executed = mine.execute("a", &withdraw(120)).await.unwrap();
    assert_eq!(executed.attempts, 1);
    assert_eq!(executed.revision, Some(2));
    assert_eq!(executed.state.balance_cents, 30);
    assert_eq!(mine.cached_revision("a"), Some(2));
    assert_eq!(mine.load("a").await.unwrap().state, executed.state);
}

/// A write lands between the command's check of its cached state and its save: the save
/// (`ExpectedRevision::Exact`) is refused, the entry dropped, and the retry decides on the
/// reloaded state.
async fn a_write_between_check_and_save_is_a_conflict_that_reloads(store: Arc<dyn EventStore>) {
    let interloper = Interloper::new(store.clone());
    let mine = bank(&(interloper.clone() as Arc<dyn EventStore>));
    mine.execute("a", &open("Alice", 100)).await.unwrap();
    interloper.arm(stream("account-a"), deposited(7));

    let executed = mine.execute("a", &withdraw(100)).await.unwrap();
    assert_eq!(executed.attempts, 2);
    assert_eq!(executed.revision, Some(2));
    assert_eq!(executed.state.balance_cents, 7);
    assert_eq!(mine.cached_revision("a"), Some(2));
    let loaded = bank(&store).load("a").await.unwrap();
    assert_eq!(loaded.state, executed.state);

    // The same race with a command only the cached state allows: refused after the reload,
    // and nothing of it written.
    let withdrawn = AccountEvent::MoneyWithdrawn { amount_cents: 7 };
    let schema = EventSchema::<AccountEvent>::json();
    interloper.arm(
        stream("account-a"),
        vec![schema.encode(&withdrawn).unwrap()],
    );
    let refused = mine.execute("a", &withdraw(5)).await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Rejected(
            BankError::InsufficientFunds { .. }
        ))
    ));
    let loaded = bank(&store).load("a").await.unwrap();
    assert_eq!(loaded.revision, Some(3));
    assert_eq!(loaded.state.balance_cents, 0);
}

/// With a single attempt the stale entry is still dropped: the next command starts from the
/// store, not from the state that lost the race.
async fn a_stale_entry_is_dropped_when_the_attempts_run_out(store: Arc<dyn EventStore>) {
    let interloper = Interloper::new(store.clone());
    let mine = bank(&(interloper.clone() as Arc<dyn EventStore>)).with_max_attempts(1);
    mine.execute("a", &open("Alice", 10)).await.unwrap();
    interloper.arm(stream("account-a"), deposited(5));

    let conflict = mine.execute("a", &withdraw(10)).await;
    assert!(matches!(
        conflict,
        Err(RepositoryError::Conflict { attempts: 1, .. })
    ));
    assert_eq!(mine.cached_revision("a"), None);
    let executed = mine.execute("a", &withdraw(15)).await.unwrap();
    assert_eq!(executed.state.balance_cents, 0);
    assert_eq!(executed.revision, Some(2));
}

/// Two repositories (two processes, two caches) hammer one account at once: conflicts between
/// them reload and retry, and the balance counts every command exactly once.
async fn commands_from_two_repositories_stay_exact(store: Arc<dyn EventStore>) {
    let first = bank(&store).with_max_attempts(64);
    let second = bank(&store).with_max_attempts(64);
    first.execute("two", &open("Alice", 0)).await.unwrap();
    second.execute("two", &deposit(1)).await.unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|index| {
            let repository = if index % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { repository.execute("two", &deposit(1 << index)).await })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("every command succeeds through retries");
    }
    let expected = 1 + (0..16u64).map(|index| 1 << index).sum::<u64>();
    for repository in [&first, &second] {
        let loaded = repository.load("two").await.unwrap();
        assert_eq!(loaded.state.balance_cents, expected);
        assert_eq!(loaded.revision, Some(17));
    }
    // Both caches converge on the store's state through their next command.
    let after_first = first.execute("two", &deposit(1)).await.unwrap();
    let after_second = second.execute("two", &deposit(1)).await.unwrap();
    assert_eq!(after_first.state.balance_cents, expected + 1);
    assert_eq!(after_second.state.balance_cents, expected + 2);
    assert_eq!(after_second.revision, Some(19));
}

/// Sixteen concurrent commands on one account through one repository and its cache: every
/// one succeeds through retries, the balance is exactly the sum, and the cache ends at the
/// last revision.
async fn sixteen_concurrent_commands_on_one_account_with_the_cache(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_cache(8).with_max_attempts(16);
    repository
        .execute("one", &open("Alice", 1_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|index| {
            let repository = repository.clone();
            tokio::spawn(async move {
                let command = if index % 4 == 0 {
                    withdraw(10)
                } else {
                    deposit(index + 1)
                };
                repository.execute("one", &command).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("every command succeeds through retries");
    }
    let deposits: u64 = (0..16u64).filter(|i| i % 4 != 0).map(|i| i + 1).sum();
    let balance = 1_000 + deposits - 4 * 10;
    let loaded = repository.load("one").await.unwrap();
    assert_eq!(loaded.state.balance_cents, balance);
    assert_eq!(loaded.revision, Some(16));
    assert_eq!(repository.cached_revision("one"), Some(16));
    let next = repository.execute("one", &deposit(1)).await.unwrap();
    assert_eq!(next.state.balance_cents, balance + 1);
    assert_eq!(next.attempts, 1);
}

/// A cache of two keeps the two most recently used accounts; an evicted one is reloaded and
/// still right.
async fn the_least_recently_used_aggregate_is_evicted(store: Arc<dyn EventStore>) {
    let repository = bank(&store).with_cache(2);
    for id in ["a", "b"] {
        repository.execute(id, &open(id, 10)).await.unwrap();
    }
    // Using `a` leaves `b` the least recently used.
    repository.execute("a", &deposit(1)).await.unwrap();
    repository.execute("c", &open("c", 10)).await.unwrap();
    assert_eq!(repository.cached_len(), 2);
    assert_eq!(repository.cached_revision("a"), Some(1));
    assert_eq!(repository.cached_revision("b"), None);
    assert_eq!(repository.cached_revision("c"), Some(0));

    let executed = repository.execute("b", &withdraw(4)).await.unwrap();
    assert_eq!(executed.state.balance_cents, 6);
    assert_eq!(repository.cached_revision("b"), Some(1));
    assert_eq!(repository.cached_revision("a"), None);
    assert_eq!(repository.cached_len(), 2);
}

/// A soft delete after the account was cached: the account no longer exists, so a deposit is
/// refused, exactly as without a cache.
async fn a_soft_deleted_account_is_not_revived_by_the_cache(store: Arc<dyn EventStore>) {
    let repository = bank(&store);
    repository.execute("d", &open("Alice", 100)).await.unwrap();
    assert_eq!(repository.cached_revision("d"), Some(0));
    store
        .delete_stream(&stream("account-d"), ExpectedRevision::Any)
        .await
        .unwrap();

    let refused = repository.execute("d", &deposit(5)).await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Rejected(BankError::NotOpen))
    ));
    assert_eq!(repository.cached_revision("d"), None);
    assert!(matches!(
        store
            .read_stream(&stream("account-d"), ReadStreamOptions::forwards())
            .await,
        Err(Error::StreamNotFound { .. })
    ));
}

/// Another process soft-deletes the account and opens it again: the cached state (of the old
/// account) is dropped, and the command decides on the new account's history alone.
async fn a_recreated_account_starts_from_its_new_history(store: Arc<dyn EventStore>) {
    let mine = bank(&store);
    mine.execute("r", &open("Alice", 100)).await.unwrap();
    mine.execute("r", &deposit(1)).await.unwrap();
    store
        .delete_stream(&stream("account-r"), ExpectedRevision::Exact(1))
        .await
        .unwrap();
    let reopened = bank(&store).execute("r", &open("Bob", 3)).await.unwrap();
    assert_eq!(reopened.revision, Some(2));

    let refused = mine.execute("r", &withdraw(50)).await;
    assert!(matches!(
        refused,
        Err(RepositoryError::Rejected(
            BankError::InsufficientFunds { .. }
        ))
    ));
    let executed = mine.execute("r", &deposit(4)).await.unwrap();
    assert_eq!(executed.state.owner.as_deref(), Some("Bob"));
    assert_eq!(executed.state.balance_cents, 7);
    assert_eq!(executed.revision, Some(3));
    assert_eq!(mine.cached_revision("r"), Some(3));
}

/// A tombstone after the account was cached: the command fails as it would without a cache,
/// and the entry is gone.
async fn a_tombstoned_account_fails_even_when_cached(store: Arc<dyn EventStore>) {
    let repository = bank(&store);
    repository.execute("t", &open("Alice", 100)).await.unwrap();
    store
        .tombstone_stream(&stream("account-t"), ExpectedRevision::Any)
        .await
        .unwrap();
    let failed = repository.execute("t", &deposit(5)).await;
    assert!(matches!(
        failed,
        Err(RepositoryError::Store(Error::StreamDeleted { .. }))
    ));
    assert_eq!(repository.cached_revision("t"), None);
}

/// Without a cache nothing is kept, and commands still work.
async fn the_cache_can_be_turned_off(store: Arc<dyn EventStore>) {
    for repository in [bank(&store).without_cache(), bank(&store).with_cache(0)] {
        let refused = repository.execute("off", &deposit(1)).await;
        assert!(matches!(
            refused,
            Err(RepositoryError::Rejected(BankError::NotOpen))
        ));
        assert_eq!(repository.cached_len(), 0);
    }
    let repository = bank(&store).without_cache();
    repository.execute("off", &open("Alice", 1)).await.unwrap();
    let executed = repository.execute("off", &deposit(2)).await.unwrap();
    assert_eq!(executed.state.balance_cents, 3);
    assert_eq!(repository.cached_len(), 0);
    assert_eq!(repository.cached_revision("off"), None);
}
