//! Aggregates for Factum: command handling separate from state change, and a repository that
//! loads by replay (from a snapshot when there is one), saves with optimistic concurrency,
//! retries on conflict, answers temporal queries and lists history.
//!
//! - [`Aggregate`]: `handle(&self, &command) -> Result<Vec<Event>, Error>` reads state and
//!   decides (the article's "Insufficient funds" lives here); `apply(&mut self, &event)` folds
//!   an event in and never fails.
//! - [`Repository`]: [`execute`](Repository::execute) loads, handles, saves with
//!   `ExpectedRevision::Exact`, and on a conflict reloads and retries a bounded number of times;
//!   [`load`](Repository::load), [`load_at_revision`](Repository::load_at_revision),
//!   [`load_as_of`](Repository::load_as_of), [`history`](Repository::history).
//!   A bounded in-memory state cache ([`with_cache`](Repository::with_cache), on by default
//!   for states that [`Aggregate::cached_copy`]) lets a command read only the events written
//!   since the state it last saw; the `Exact` save keeps a stale entry from ever writing.
//! - [`SnapshotPolicy`]: snapshots every N events, kept in the system stream
//!   `$snapshots-{stream}` of the same store.
//! - [`testing`]: `given(events).when(command).then(events)`, pure, no store.
//! - [`examples`]: the article's bank account, and an order whose event schema changed twice.
//!
//! # Your first aggregate
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use factum_aggregate::examples::bank::{AccountCommand, BankAccount, BankError};
//! use factum_aggregate::{EventSchema, Repository, RepositoryError};
//! use factum_memory::MemoryStore;
//!
//! let repository = Repository::<BankAccount>::new(Arc::new(MemoryStore::new()), EventSchema::json());
//!
//! let open = AccountCommand::Open { owner: "Alice".into(), initial_balance_cents: 0 };
//! repository.execute("acc_123", &open).await?;
//! repository.execute("acc_123", &AccountCommand::Deposit { amount_cents: 500 }).await?;
//! let done = repository.execute("acc_123", &AccountCommand::Withdraw { amount_cents: 200 }).await?;
//! assert_eq!(done.state.balance_cents, 300);
//!
//! // The handler refuses, and nothing is written.
//! let refused = repository.execute("acc_123", &AccountCommand::Withdraw { amount_cents: 1_000 }).await;
//! assert!(matches!(refused, Err(RepositoryError::Rejected(BankError::InsufficientFunds { .. }))));
//! assert_eq!(repository.load("acc_123").await?.revision, Some(2));
//! # Ok(())
//! # }
//! ```

mod cache;
pub mod examples;
mod repository;
mod snapshot;
pub mod testing;

pub use factum_codec::{DomainEvent, EventSchema, UnknownPolicy};
pub use repository::{CommandContext, Executed, HistoryEntry, Loaded, Repository, RepositoryError};
pub use snapshot::{SNAPSHOT_EVENT_TYPE, SnapshotPolicy, snapshot_stream_of};

/// An aggregate: a consistency boundary whose state is rebuilt from its events, one stream per
/// instance (`{CATEGORY}-{id}`).
///
/// Command handling is separate from state change: [`handle`](Aggregate::handle) validates a
/// command against the current state and returns the events it produces (or refuses, writing
/// nothing); [`apply`](Aggregate::apply) folds one event into the state and never fails, so a
/// stored history always replays. `Default` is the state before the first event.
///
/// See [`examples::bank::BankAccount`] for the article's bank account. The smallest one:
///
/// ```
/// use factum_aggregate::testing::given;
/// use factum_aggregate::{Aggregate, DomainEvent};
/// use serde::{Deserialize, Serialize};
///
/// /// A door that is opened and closed.
/// #[derive(Debug, Default)]
/// struct Door {
///     open: bool,
/// }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum DoorEvent {
///     DoorOpened,
///     DoorClosed,
/// }
///
/// impl DomainEvent for DoorEvent {
///     const EVENT_TYPES: &'static [(&'static str, u32)] = &[("DoorOpened", 1), ("DoorClosed", 1)];
///     fn event_type(&self) -> &'static str {
///         match self {
///             DoorEvent::DoorOpened => "DoorOpened",
///             DoorEvent::DoorClosed => "DoorClosed",
///         }
///     }
/// }
///
/// enum DoorCommand {
///     Open,
///     Close,
/// }
///
/// #[derive(Debug, PartialEq, thiserror::Error)]
/// #[error("the door is already {0}")]
/// struct AlreadyThere(&'static str);
///
/// impl Aggregate for Door {
///     const CATEGORY: &'static str = "door";
///     type Command = DoorCommand;
///     type Event = DoorEvent;
///     type Error = AlreadyThere;
///
///     fn handle(&self, command: &DoorCommand) -> Result<Vec<DoorEvent>, AlreadyThere> {
///         match (command, self.open) {
///             (DoorCommand::Open, false) => Ok(vec![DoorEvent::DoorOpened]),
///             (DoorCommand::Close, true) => Ok(vec![DoorEvent::DoorClosed]),
///             (_, open) => Err(AlreadyThere(if open { "open" } else { "closed" })),
///         }
///     }
///
///     fn apply(&mut self, event: &DoorEvent) {
///         self.open = matches!(event, DoorEvent::DoorOpened);
///     }
/// }
///
/// given::<Door>([]).when(DoorCommand::Open).then([DoorEvent::DoorOpened]);
/// given::<Door>([DoorEvent::DoorOpened])
///     .when(DoorCommand::Open)
///     .then_error(AlreadyThere("open"));
/// ```
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The stream category: instance `id` lives in stream `{CATEGORY}-{id}`.
    const CATEGORY: &'static str;

    /// The schema version of this aggregate's snapshot shape. Raise it whenever the state's
    /// serialized form changes: snapshots of another version are ignored (full replay), never
    /// misread.
    const SNAPSHOT_VERSION: u32 = 1;

    /// What callers ask for (imperative: `Withdraw`).
    type Command: Send + Sync;

    /// What happened (past tense: `MoneyWithdrawn`).
    type Event: DomainEvent;

    /// Why a command is refused (`InsufficientFunds`).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what `command` does given the current state: the events to record, in order
    /// (none is fine), or why it is refused. Pure: no I/O, no change to `self`.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Never fails: an event is a fact already recorded.
    fn apply(&mut self, event: &Self::Event);

    /// A copy of this state for the repository's state cache, or `None` (the default) to
    /// keep this type out of it. Return `Some(self.clone())` when the state is `Clone`, so
    /// that [`Repository::new`] caches it and [`Repository::execute`] usually skips reloading
    /// the aggregate (or call [`Repository::with_cache`], which needs only `Clone`).
    fn cached_copy(&self) -> Option<Self> {
        None
    }
}
