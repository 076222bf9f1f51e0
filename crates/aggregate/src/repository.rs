//! The repository: load an aggregate by replay (from its latest usable snapshot), execute
//! commands with optimistic concurrency and bounded retries, temporal loads, and history.

use std::sync::Arc;

use bytes::Bytes;
use factum_codec::{CodecError, EventSchema, derive_event_id};
use factum_core::{
    Error, EventId, EventStore, ExpectedRevision, Position, ReadStreamOptions, RecordedEvent,
    StreamMetadata, StreamName, Timestamp, rules::IDEMPOTENCY_WINDOW_EVENTS,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Aggregate;
use crate::cache::{Cached, StateCache};
use crate::snapshot::{
    SNAPSHOT_EVENT_TYPE, SnapshotCodec, SnapshotPolicy, SnapshotRecord, snapshot_data,
    snapshot_stream_of,
};

/// How many events a replay reads (and holds) at once.
const PAGE_EVENTS: u64 = 4096;

/// How many events a command reads to bring a cached state up to date; more than this and a
/// full load (from a snapshot) is cheaper.
const CATCH_UP_EVENTS: u64 = 256;

/// How many of the newest snapshots a load examines to find a usable one.
const SNAPSHOTS_EXAMINED_MAX: u64 = 8;

/// Metadata key of the command id.
const COMMAND_ID_KEY: &str = "commandId";
/// Metadata key of who issued the command.
const ACTOR_KEY: &str = "actor";

/// What went wrong executing a command or loading an aggregate. `E` is the aggregate's
/// [`Aggregate::Error`].
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use factum_aggregate::examples::bank::{AccountCommand, BankAccount, BankError};
/// use factum_aggregate::{EventSchema, Repository, RepositoryError};
/// use factum_codec::CodecError;
/// use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
///
/// let store: Arc<dyn EventStore> = Arc::new(factum_memory::MemoryStore::new());
/// let accounts = Repository::<BankAccount>::new(store.clone(), EventSchema::json());
/// let deposit = AccountCommand::Deposit { amount_cents: 100 };
///
/// // The handler's answer, for the caller.
/// match accounts.execute("1", &deposit).await {
///     Err(RepositoryError::Rejected(BankError::NotOpen)) => {}
///     other => panic!("expected a refusal, got {other:?}"),
/// }
///
/// // An event written by newer code: a deployment problem, named by type and version.
/// let newer = ProposedEvent::json("AccountOpened", &serde_json::json!({}))?.with_schema_version(2);
/// store.append(&StreamName::new("account-2")?, ExpectedRevision::NoStream, vec![newer]).await?;
/// match accounts.execute("2", &deposit).await {
///     Err(RepositoryError::Codec(CodecError::UnknownSchemaVersion { schema_version: 2, .. })) => {}
///     other => panic!("expected an unknown version, got {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E> {
    /// The command handler refused the command. Nothing was written.
    ///
    /// Handle as the answer to the caller ("Insufficient funds").
    #[error("command rejected: {0}")]
    Rejected(#[source] E),

    /// Other writers kept changing the aggregate: every attempt met a newer revision. Nothing
    /// of this command was written.
    ///
    /// Handle by retrying later, or by raising [`Repository::with_max_attempts`].
    #[error("concurrency conflict on stream {stream}: gave up after {attempts} attempts")]
    Conflict {
        /// The aggregate's stream.
        stream: StreamName,
        /// How many times the command was handled and its append refused.
        attempts: u32,
    },

    /// A stored event could not be decoded, or a new one encoded (see [`CodecError`]).
    ///
    /// Handle as a deployment problem: register the missing upcaster or event type.
    #[error("event codec: {0}")]
    Codec(#[from] CodecError),

    /// The store failed (see [`factum_core::Error`] for each variant's handling).
    #[error("event store: {0}")]
    Store(#[from] Error),
}

/// Who issued a command, and why: written into the metadata of every event it produces.
///
/// - `command_id`: when set, the command's events get ids derived from it, so executing the
///   same command again (a client retry after a timeout) writes nothing and returns
///   [`Executed::already_applied`]. It is recognised among the stream's last
///   [`IDEMPOTENCY_WINDOW_EVENTS`] events.
/// - `$correlationId`: `correlation_id`, else the command id.
/// - `$causationId`: `causation_id`, else the command id.
/// - `actor` and any extra keys, as given.
///
/// ```
/// use factum_aggregate::CommandContext;
/// use uuid::Uuid;
///
/// let context = CommandContext::new()
///     .with_command_id(Uuid::now_v7())
///     .with_correlation_id("checkout-7")
///     .with_actor("alice@example.com")
///     .with_metadata("ip", "192.0.2.1");
/// assert_eq!(context.actor.as_deref(), Some("alice@example.com"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandContext {
    /// The command's id; `None` means a fresh one per execution (no idempotency).
    pub command_id: Option<Uuid>,
    /// The id of the whole flow this command belongs to.
    pub correlation_id: Option<String>,
    /// The id of the message (command or event) that caused this command.
    pub causation_id: Option<String>,
    /// Who issued the command.
    pub actor: Option<String>,
    /// Other metadata keys, written as they are.
    pub extra: Map<String, Value>,
}

impl CommandContext {
    /// An empty context.
    pub fn new() -> CommandContext {
        CommandContext::default()
    }

    /// Sets the command id (see the type's documentation).
    pub fn with_command_id(mut self, command_id: Uuid) -> CommandContext {
        self.command_id = Some(command_id);
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> CommandContext {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, causation_id: impl Into<String>) -> CommandContext {
        self.causation_id = Some(causation_id.into());
        self
    }

    /// Sets who issued the command.
    pub fn with_actor(mut self, actor: impl Into<String>) -> CommandContext {
        self.actor = Some(actor.into());
        self
    }

    /// Adds a metadata key.
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> CommandContext {
        self.extra.insert(key.into(), value.into());
        self
    }

    fn metadata(&self, command_id: Uuid) -> Bytes {
        let command_id = command_id.to_string();
        let mut object = self.extra.clone();
        let correlation = self
            .correlation_id
            .clone()
            .unwrap_or_else(|| command_id.clone());
        let causation = self
            .causation_id
            .clone()
            .unwrap_or_else(|| command_id.clone());
        object.insert("$correlationId".into(), correlation.into());
        object.insert("$causationId".into(), causation.into());
        object.insert(COMMAND_ID_KEY.into(), command_id.into());
        if let Some(actor) = &self.actor {
            object.insert(ACTOR_KEY.into(), actor.clone().into());
        }
        Bytes::from(serde_json::to_vec(&object).expect("a JSON map always serializes"))
    }
}

/// An aggregate as loaded: its state and the revision it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state after the events replayed.
    pub state: A,
    /// The revision of the last event reflected, `None` if there is none (a new aggregate).
    pub revision: Option<u64>,
    /// The revision covered by the snapshot the load started from, if it used one.
    pub snapshot_revision: Option<u64>,
    /// How many events were read and replayed (after the snapshot, if any).
    pub replayed: u64,
}

impl<A> Loaded<A> {
    /// Whether the aggregate has any event.
    pub fn exists(&self) -> bool {
        self.revision.is_some()
    }

    /// The expectation under which to append after this state.
    pub fn expected_revision(&self) -> ExpectedRevision {
        match self.revision {
            None => ExpectedRevision::NoStream,
            Some(revision) => ExpectedRevision::Exact(revision),
        }
    }
}

/// What an executed command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A: Aggregate> {
    /// The aggregate's state after the command.
    pub state: A,
    /// The events the command produced (empty if it decided nothing should happen).
    pub events: Vec<A::Event>,
    /// The revision of the aggregate's last event after the command.
    pub revision: Option<u64>,
    /// The global position of the command's last event, `None` if it wrote none. Wait for a
    /// projection to reach it for read-your-writes.
    pub position: Option<Position>,
    /// How many times the command was handled (1 without conflicts).
    pub attempts: u32,
    /// Whether the command (by its id) had already been applied: nothing new was written and
    /// `events` are the ones the first execution wrote.
    pub already_applied: bool,
    /// The revision of the snapshot this command's save took, if it took one. Snapshots are
    /// best effort: a failed snapshot write costs replay time later, never the command.
    pub snapshot_revision: Option<u64>,
}

/// One event of an aggregate's history: who, when, what.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry<E> {
    /// Its revision in the stream.
    pub revision: u64,
    /// Its global position.
    pub position: Position,
    /// Its id.
    pub event_id: EventId,
    /// What happened.
    pub event_type: String,
    /// The schema version it was stored with.
    pub schema_version: u32,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// `$correlationId` of its metadata.
    pub correlation_id: Option<String>,
    /// `$causationId` of its metadata.
    pub causation_id: Option<String>,
    /// The id of the command that produced it.
    pub command_id: Option<String>,
    /// Who issued that command.
    pub actor: Option<String>,
    /// The event decoded through the schema (upcast to today's shape); `None` if the schema
    /// skips it.
    pub event: Option<E>,
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy)]
enum Until {
    Latest,
    Revision(u64),
    Time(Timestamp),
}

/// Loads and saves aggregates of type `A` in any [`EventStore`]. Cheap to clone; share one
/// between tasks.
///
/// See the [crate example](crate).
pub struct Repository<A: Aggregate> {
    store: Arc<dyn EventStore>,
    schema: EventSchema<A::Event>,
    snapshots: Option<SnapshotCodec<A>>,
    attempts_max: u32,
    /// The state cache, shared with clones; `None` when turned off.
    cache: Option<Arc<StateCache<A>>>,
}

impl<A: Aggregate> Clone for Repository<A> {
    fn clone(&self) -> Repository<A> {
        Repository {
            store: self.store.clone(),
            schema: self.schema.clone(),
            snapshots: self.snapshots.clone(),
            attempts_max: self.attempts_max,
            cache: self.cache.clone(),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("category", &A::CATEGORY)
            .field("schema", &self.schema)
            .field(
                "snapshots",
                &self.snapshots.as_ref().map(|codec| codec.policy),
            )
            .field("attempts_max", &self.attempts_max)
            .field(
                "cache_capacity",
                &self.cache.as_ref().map(|cache| cache.capacity()),
            )
            .finish()
    }
}

impl<A: Aggregate> Repository<A> {
    /// How many times [`Repository::execute`] handles a command by default before giving up on
    /// conflicts.
    pub const ATTEMPTS_MAX_DEFAULT: u32 = 10;

    /// How many aggregates the state cache of [`Repository::new`] keeps.
    pub const CACHE_CAPACITY_DEFAULT: usize = 1024;

    /// A repository over `store`, encoding events with `schema`, without snapshots, with a
    /// state cache of [`Self::CACHE_CAPACITY_DEFAULT`] aggregates for the types whose
    /// [`Aggregate::cached_copy`] copies their state (see [`Repository::with_cache`]).
    pub fn new(store: Arc<dyn EventStore>, schema: EventSchema<A::Event>) -> Repository<A> {
        Repository {
            store,
            schema,
            snapshots: None,
            attempts_max: Self::ATTEMPTS_MAX_DEFAULT,
            cache: Some(Arc::new(StateCache::new(
                Self::CACHE_CAPACITY_DEFAULT,
                A::cached_copy,
            ))),
        }
    }

    /// Keeps the state of the `capacity` most recently used aggregates in memory (a new, empty
    /// cache shared by this repository's clones; `0` turns caching off), so that
    /// [`execute`](Repository::execute) normally reads only the events written since the
    /// cached revision (usually none) instead of reloading the aggregate.
    ///
    /// The cache cannot make a command decide on stale state: before each command the events
    /// after the cached revision are read and folded in; a cached state is dropped (and the
    /// aggregate reloaded) when the stream was deleted or recreated, or its truncation hides
    /// events the state reflects (the rule snapshots follow); and the events are appended with
    /// `ExpectedRevision::Exact`, so a write that slips in between is a conflict, which drops
    /// the entry and reloads. [`load`](Repository::load) and the temporal loads never use it.
    ///
    /// [`Repository::new`] already caches [`Self::CACHE_CAPACITY_DEFAULT`] aggregates when
    /// `A` implements [`Aggregate::cached_copy`]; this method works for any `Clone` state.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// use factum_aggregate::{EventSchema, Repository};
    ///
    /// let store = Arc::new(factum_memory::MemoryStore::new());
    /// let accounts = Repository::<BankAccount>::new(store, EventSchema::json()).with_cache(2);
    /// for id in ["a", "b", "c"] {
    ///     let open = AccountCommand::Open { owner: id.into(), initial_balance_cents: 0 };
    ///     accounts.execute(id, &open).await?;
    /// }
    /// // The two most recently used are kept, at the revision their last command wrote.
    /// assert_eq!(accounts.cached_len(), 2);
    /// assert_eq!(accounts.cached_revision("c"), Some(0));
    /// assert_eq!(accounts.cached_revision("a"), None);
    ///
    /// let deposit = AccountCommand::Deposit { amount_cents: 5 };
    /// assert_eq!(accounts.execute("c", &deposit).await?.state.balance_cents, 5);
    /// assert_eq!(accounts.cached_revision("c"), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_cache(mut self, capacity: usize) -> Repository<A>
    where
        A: Clone,
    {
        self.cache = (capacity > 0)
            .then(|| Arc::new(StateCache::new(capacity, |state: &A| Some(state.clone()))));
        self
    }

    /// Turns the state cache off: every command reloads its aggregate.
    pub fn without_cache(mut self) -> Repository<A> {
        self.cache = None;
        self
    }

    /// The revision at which aggregate `id`'s state is cached, if it is (for diagnostics and
    /// tests).
    pub fn cached_revision(&self, id: &str) -> Option<u64> {
        let stream = self.stream_name(id).ok()?;
        self.cache.as_ref()?.revision(stream.as_str())
    }

    /// How many aggregates the state cache holds.
    pub fn cached_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.len())
    }

    /// Takes snapshots by `policy` (the state is stored as JSON).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// use factum_aggregate::{EventSchema, Repository, SnapshotPolicy};
    ///
    /// let repository = Repository::<BankAccount>::new(Arc::new(factum_memory::MemoryStore::new()), EventSchema::json())
    ///     .with_snapshots(SnapshotPolicy::every(10));
    /// repository.execute("a", &AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 0 }).await?;
    /// for _ in 0..20 {
    ///     repository.execute("a", &AccountCommand::Deposit { amount_cents: 1 }).await?;
    /// }
    /// let loaded = repository.load("a").await?;
    /// assert_eq!(loaded.snapshot_revision, Some(19));
    /// assert_eq!(loaded.replayed, 1);
    /// assert_eq!(loaded.state.balance_cents, 20);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Repository<A>
    where
        A: Serialize + DeserializeOwned,
    {
        self.snapshots = Some(SnapshotCodec {
            policy,
            encode: |state| serde_json::to_vec(state),
            decode: |data| serde_json::from_slice::<SnapshotRecord<A>>(data),
        });
        self
    }

    /// Handles a command at most `attempts` times (at least 1) before returning
    /// [`RepositoryError::Conflict`].
    ///
    /// Concurrent commands on one aggregate each append with the revision they decided on;
    /// those that meet a newer one reload, decide again and retry, so with enough attempts all
    /// of them succeed and none is lost:
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// use factum_aggregate::{EventSchema, Repository};
    ///
    /// let store = Arc::new(factum_memory::MemoryStore::new());
    /// let accounts = Repository::<BankAccount>::new(store, EventSchema::json()).with_max_attempts(20);
    /// let open = AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 0 };
    /// accounts.execute("a", &open).await?;
    ///
    /// let mut racers = Vec::new();
    /// for _ in 0..8 {
    ///     let accounts = accounts.clone();
    ///     racers.push(tokio::spawn(async move {
    ///         accounts.execute("a", &AccountCommand::Deposit { amount_cents: 10 }).await
    ///     }));
    /// }
    /// for racer in racers {
    ///     let done = racer.await??;
    ///     assert!(done.attempts >= 1);
    /// }
    /// let loaded = accounts.load("a").await?;
    /// assert_eq!(loaded.state.balance_cents, 80);
    /// assert_eq!(loaded.revision, Some(8));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_max_attempts(mut self, attempts: u32) -> Repository<A> {
        self.attempts_max = attempts.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The event schema.
    pub fn schema(&self) -> &EventSchema<A::Event> {
        &self.schema
    }

    /// The stream of aggregate `id`: `{CATEGORY}-{id}`.
    pub fn stream_name(&self, id: &str) -> Result<StreamName, Error> {
        StreamName::new(format!("{}-{id}", A::CATEGORY))
    }

    /// Loads aggregate `id` at its latest revision: from the latest usable snapshot, then the
    /// events after it. An aggregate with no events loads as `A::default()`.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = self.stream_name(id)?;
        self.load_stream(&stream, Until::Latest).await
    }

    /// Loads aggregate `id` as it was after the event at `revision` (or at its latest revision,
    /// if it has fewer events).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// # use factum_aggregate::{EventSchema, Repository};
    /// # let repository = Repository::<BankAccount>::new(Arc::new(factum_memory::MemoryStore::new()), EventSchema::json());
    /// repository.execute("a", &AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 100 }).await?;
    /// repository.execute("a", &AccountCommand::Deposit { amount_cents: 50 }).await?;
    /// assert_eq!(repository.load_at_revision("a", 0).await?.state.balance_cents, 100);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_at_revision(
        &self,
        id: &str,
        revision: u64,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = self.stream_name(id)?;
        self.load_stream(&stream, Until::Revision(revision)).await
    }

    /// Loads aggregate `id` as it was at `time`: only events recorded at or before it (a full
    /// replay; snapshots are not used).
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// # use factum_aggregate::{EventSchema, Repository};
    /// # use factum_core::Timestamp;
    /// # let repository = Repository::<BankAccount>::new(Arc::new(factum_memory::MemoryStore::new()), EventSchema::json());
    /// let before = Timestamp::now();
    /// repository.execute("a", &AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 100 }).await?;
    /// let then = repository.load_as_of("a", before).await?;
    /// assert!(!then.exists());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_as_of(
        &self,
        id: &str,
        time: Timestamp,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = self.stream_name(id)?;
        self.load_stream(&stream, Until::Time(time)).await
    }

    /// Lists aggregate `id`'s events, oldest first, with who issued them, when they were
    /// recorded, and what they were (type, stored schema version, decoded event). Empty if the
    /// aggregate has no events.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// # use factum_aggregate::{CommandContext, EventSchema, Repository};
    /// # let repository = Repository::<BankAccount>::new(Arc::new(factum_memory::MemoryStore::new()), EventSchema::json());
    /// let open = AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 0 };
    /// repository.execute_with("a", &open, &CommandContext::new().with_actor("teller-9")).await?;
    /// let history = repository.history("a").await?;
    /// assert_eq!(history[0].event_type, "AccountOpened");
    /// assert_eq!(history[0].actor.as_deref(), Some("teller-9"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn history(
        &self,
        id: &str,
    ) -> Result<Vec<HistoryEntry<A::Event>>, RepositoryError<A::Error>> {
        let stream = self.stream_name(id)?;
        let mut entries = Vec::new();
        let mut next_revision = 0;
        loop {
            let page = ReadStreamOptions::forwards()
                .from_revision(next_revision)
                .limit(PAGE_EVENTS);
            let events = match self.store.read_stream(&stream, page).await {
                Ok(events) => events,
                Err(Error::StreamNotFound { .. }) => return Ok(entries),
                Err(error) => return Err(error.into()),
            };
            for event in &events {
                entries.push(self.history_entry(event)?);
            }
            match events.last() {
                Some(last) if events.len() as u64 == PAGE_EVENTS => {
                    next_revision = last.revision + 1
                }
                _ => return Ok(entries),
            }
        }
    }

    fn history_entry(
        &self,
        event: &RecordedEvent,
    ) -> Result<HistoryEntry<A::Event>, RepositoryError<A::Error>> {
        let metadata: Map<String, Value> =
            serde_json::from_slice(&event.metadata).unwrap_or_default();
        let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(HistoryEntry {
            revision: event.revision,
            position: event.position,
            event_id: event.id,
            event_type: event.event_type.to_string(),
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            correlation_id: text("$correlationId"),
            causation_id: text("$causationId"),
            command_id: text(COMMAND_ID_KEY),
            actor: text(ACTOR_KEY),
            event: self.schema.decode(event)?,
        })
    }

    /// Executes `command` on aggregate `id` with an empty [`CommandContext`]: see
    /// [`Repository::execute_with`].
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        self.execute_with(id, command, &CommandContext::new()).await
    }

    /// Executes `command` on aggregate `id`: loads it, lets it [handle](Aggregate::handle) the
    /// command, and appends the events with `ExpectedRevision::Exact` (or `NoStream` for a new
    /// aggregate). When another writer got there first, it reloads and handles the command
    /// again, at most [`with_max_attempts`](Repository::with_max_attempts) times in all, then
    /// returns [`RepositoryError::Conflict`]. A refused command, or one that produces no
    /// events, writes nothing.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use factum_aggregate::examples::bank::{AccountCommand, BankAccount};
    /// # use factum_aggregate::{CommandContext, EventSchema, Repository};
    /// # let repository = Repository::<BankAccount>::new(Arc::new(factum_memory::MemoryStore::new()), EventSchema::json());
    /// let open = AccountCommand::Open { owner: "Bo".into(), initial_balance_cents: 0 };
    /// let context = CommandContext::new().with_command_id(uuid::Uuid::now_v7());
    /// let first = repository.execute_with("a", &open, &context).await?;
    /// // A client retry of the same command id writes nothing new.
    /// let again = repository.execute_with("a", &open, &context).await?;
    /// assert!(again.already_applied);
    /// assert_eq!(again.revision, first.revision);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_with(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let stream = self.stream_name(id)?;
        let command_id = context.command_id.unwrap_or_else(Uuid::now_v7);
        let metadata = context.metadata(command_id);
        let mut attempts = 0;
        while attempts < self.attempts_max {
            attempts += 1;
            let loaded = self.load_for_command(&stream).await?;
            if context.command_id.is_some()
                && let Some(applied) = self.find_applied(&stream, command_id).await?
            {
                return Ok(Executed {
                    state: loaded.state,
                    events: applied.0,
                    revision: loaded.revision,
                    position: Some(applied.1),
                    attempts,
                    already_applied: true,
                    snapshot_revision: None,
                });
            }
            let events = loaded
                .state
                .handle(command)
                .map_err(RepositoryError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    state: loaded.state,
                    events,
                    revision: loaded.revision,
                    position: None,
                    attempts,
                    already_applied: false,
                    snapshot_revision: None,
                });
            }
            let mut proposed = Vec::with_capacity(events.len());
            for (index, event) in events.iter().enumerate() {
                let id = derive_event_id(command_id, stream.as_str(), index as u64);
                proposed.push(
                    self.schema
                        .encode(event)?
                        .with_id(id)
                        .with_metadata(metadata.clone()),
                );
            }
            match self
                .store
                .append(&stream, loaded.expected_revision(), proposed)
                .await
            {
                Ok(written) => {
                    let mut state = loaded.state;
                    for event in &events {
                        state.apply(event);
                    }
                    let snapshot_revision = self
                        .maybe_snapshot(&stream, &state, written.revision, loaded.snapshot_revision)
                        .await;
                    if let Some(cache) = &self.cache {
                        let covered = snapshot_revision.or(loaded.snapshot_revision);
                        cache.put(stream.as_str(), &state, written.revision, covered);
                    }
                    return Ok(Executed {
                        state,
                        events,
                        revision: Some(written.revision),
                        position: Some(written.position),
                        attempts,
                        already_applied: false,
                        snapshot_revision,
                    });
                }
                Err(Error::WrongExpectedRevision { .. }) => {
                    // Someone else wrote first: what this command saw is stale.
                    if let (Some(cache), Some(revision)) = (&self.cache, loaded.revision) {
                        cache.remove_at_most(stream.as_str(), revision);
                    }
                    continue;
                }
                Err(error) => {
                    if let Some(cache) = &self.cache {
                        cache.remove(stream.as_str());
                    }
                    return Err(error.into());
                }
            }
        }
        Err(RepositoryError::Conflict { stream, attempts })
    }

    /// The aggregate as a command sees it: the cached state brought up to date when there is
    /// one, else a full load (whose result is cached).
    async fn load_for_command(
        &self,
        stream: &StreamName,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let Some(cache) = &self.cache else {
            return self.load_stream(stream, Until::Latest).await;
        };
        if let Some(cached) = cache.get(stream.as_str()) {
            match self.catch_up(stream, cached).await {
                Ok(Some(loaded)) => return Ok(loaded),
                Ok(None) => cache.remove(stream.as_str()),
                Err(error) => {
                    cache.remove(stream.as_str());
                    return Err(error);
                }
            }
        }
        let loaded = self.load_stream(stream, Until::Latest).await?;
        if let Some(revision) = loaded.revision {
            cache.put(
                stream.as_str(),
                &loaded.state,
                revision,
                loaded.snapshot_revision,
            );
        }
        Ok(loaded)
    }

    /// Brings a cached state up to date with the events written after it (by other
    /// repositories). `None` means it cannot be: the stream was deleted (and maybe recreated)
    /// or truncated past the cached revision, or too many events were written since.
    async fn catch_up(
        &self,
        stream: &StreamName,
        cached: Cached<A>,
    ) -> Result<Option<Loaded<A>>, RepositoryError<A::Error>> {
        let page = ReadStreamOptions::forwards()
            .from_revision(cached.revision + 1)
            .limit(CATCH_UP_EVENTS);
        let events = match self.store.read_stream(stream, page).await {
            Ok(events) => events,
            // Soft deleted: a full load says what is visible.
            Err(Error::StreamNotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let mut loaded = Loaded {
            state: cached.state,
            revision: Some(cached.revision),
            snapshot_revision: cached.snapshot_revision,
            replayed: 0,
        };
        // No event after the cached revision, and the stream is not deleted: the stream's last
        // event is the cached one, and no delete since can have hidden it.
        if events.is_empty() {
            return Ok(Some(loaded));
        }
        if events.len() as u64 == CATCH_UP_EVENTS {
            return Ok(None);
        }
        // Others wrote since. A soft delete and recreation, or a truncation, may hide events
        // the cached state reflects; like a snapshot, it is usable only if none is hidden.
        let metadata = self.store.stream_metadata(stream).await?.metadata;
        if metadata
            .truncate_before
            .is_some_and(|truncate_before| truncate_before > cached.revision)
        {
            return Ok(None);
        }
        for event in &events {
            let next_revision = loaded.revision.map_or(0, |revision| revision + 1);
            if event.revision != next_revision {
                return Ok(None);
            }
            if let Some(decoded) = self.schema.decode(event)? {
                loaded.state.apply(&decoded);
            }
            loaded.revision = Some(event.revision);
            loaded.replayed += 1;
        }
        Ok(Some(loaded))
    }

    /// Finds the events a command with `command_id` wrote among the stream's last events: the
    /// decoded events and the position of the last one.
    async fn find_applied(
        &self,
        stream: &StreamName,
        command_id: Uuid,
    ) -> Result<Option<(Vec<A::Event>, Position)>, RepositoryError<A::Error>> {
        let window = ReadStreamOptions::backwards().limit(IDEMPOTENCY_WINDOW_EVENTS);
        let mut recent = match self.store.read_stream(stream, window).await {
            Ok(events) => events,
            Err(Error::StreamNotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        recent.reverse();
        let first_id = derive_event_id(command_id, stream.as_str(), 0);
        let Some(start) = recent.iter().position(|event| event.id == first_id) else {
            return Ok(None);
        };
        let mut events = Vec::new();
        let mut position = recent[start].position;
        for (index, event) in recent[start..].iter().enumerate() {
            if event.id != derive_event_id(command_id, stream.as_str(), index as u64) {
                break;
            }
            position = event.position;
            events.extend(self.schema.decode(event)?);
        }
        Ok(Some((events, position)))
    }

    /// Writes a snapshot if the policy says one is due; best effort (see
    /// [`Executed::snapshot_revision`]).
    async fn maybe_snapshot(
        &self,
        stream: &StreamName,
        state: &A,
        revision: u64,
        covered: Option<u64>,
    ) -> Option<u64> {
        let codec = self.snapshots.as_ref()?;
        if !codec.policy.is_due(revision, covered) {
            return None;
        }
        let snapshot_stream = snapshot_stream_of(stream)?;
        let state_json = (codec.encode)(state).ok()?;
        if covered.is_none() {
            // The first snapshot this code takes: bound how many are kept. Failing because the
            // metadata already exists is fine.
            let keep = StreamMetadata {
                max_count: Some(codec.policy.keep_count()),
                ..StreamMetadata::default()
            };
            let _ = self
                .store
                .set_stream_metadata(&snapshot_stream, ExpectedRevision::NoStream, &keep)
                .await;
        }
        let event = factum_core::ProposedEvent::new(
            SNAPSHOT_EVENT_TYPE,
            factum_core::CONTENT_TYPE_JSON,
            snapshot_data(revision, &state_json),
        )
        .with_schema_version(A::SNAPSHOT_VERSION);
        self.store
            .append(&snapshot_stream, ExpectedRevision::Any, vec![event])
            .await
            .ok()?;
        Some(revision)
    }

    /// The newest usable snapshot of `stream` covering at most `max_revision`: of this code's
    /// snapshot version, decodable, and not covering events the stream no longer shows.
    async fn read_snapshot(
        &self,
        stream: &StreamName,
        max_revision: Option<u64>,
    ) -> Result<Option<SnapshotRecord<A>>, RepositoryError<A::Error>> {
        let Some(codec) = &self.snapshots else {
            return Ok(None);
        };
        let Some(snapshot_stream) = snapshot_stream_of(stream) else {
            return Ok(None);
        };
        let newest = ReadStreamOptions::backwards().limit(SNAPSHOTS_EXAMINED_MAX);
        let snapshots = match self.store.read_stream(&snapshot_stream, newest).await {
            Ok(snapshots) => snapshots,
            Err(Error::StreamNotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let usable = snapshots.iter().find_map(|snapshot| {
            if snapshot.event_type != SNAPSHOT_EVENT_TYPE
                || snapshot.schema_version != A::SNAPSHOT_VERSION
            {
                return None;
            }
            let record = (codec.decode)(&snapshot.data).ok()?;
            max_revision
                .is_none_or(|max| record.revision <= max)
                .then_some(record)
        });
        let Some(record) = usable else {
            return Ok(None);
        };
        // A snapshot must not resurrect events a soft delete or truncation hid.
        let metadata = self.store.stream_metadata(stream).await?.metadata;
        if metadata
            .truncate_before
            .is_some_and(|truncate_before| truncate_before > record.revision)
        {
            return Ok(None);
        }
        Ok(Some(record))
    }

    async fn load_stream(
        &self,
        stream: &StreamName,
        until: Until,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let snapshot = match until {
            Until::Latest => self.read_snapshot(stream, None).await?,
            Until::Revision(revision) => self.read_snapshot(stream, Some(revision)).await?,
            Until::Time(_) => None,
        };
        let mut loaded = match snapshot {
            Some(record) => Loaded {
                state: record.state,
                revision: Some(record.revision),
                snapshot_revision: Some(record.revision),
                replayed: 0,
            },
            None => Loaded {
                state: A::default(),
                revision: None,
                snapshot_revision: None,
                replayed: 0,
            },
        };
        loop {
            let next_revision = loaded.revision.map_or(0, |revision| revision + 1);
            let limit = match until {
                Until::Revision(last) if last < next_revision => break,
                Until::Revision(last) => PAGE_EVENTS.min(last - next_revision + 1),
                _ => PAGE_EVENTS,
            };
            let page = ReadStreamOptions::forwards()
                .from_revision(next_revision)
                .limit(limit);
            let events = match self.store.read_stream(stream, page).await {
                Ok(events) => events,
                Err(Error::StreamNotFound { .. }) if loaded.snapshot_revision.is_some() => {
                    // The stream was deleted after the snapshot: it has no visible history.
                    return Ok(Loaded {
                        state: A::default(),
                        revision: None,
                        snapshot_revision: None,
                        replayed: 0,
                    });
                }
                Err(Error::StreamNotFound { .. }) => break,
                Err(error) => return Err(error.into()),
            };
            let count = events.len() as u64;
            for event in &events {
                if let Until::Time(time) = until
                    && event.recorded_at > time
                {
                    return Ok(loaded);
                }
                if let Some(decoded) = self.schema.decode(event)? {
                    loaded.state.apply(&decoded);
                }
                loaded.revision = Some(event.revision);
                loaded.replayed += 1;
            }
            if count < limit {
                break;
            }
        }
        Ok(loaded)
    }
}
