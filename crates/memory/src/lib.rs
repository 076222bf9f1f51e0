//! The in-memory event store.
//!
//! Everything lives in one `Vec` of events in commit order (the global log: position `p` is at
//! index `p - 1`, so positions are dense) plus, per stream, the positions of its revisions. One
//! lock serialises writers, which makes every append atomic and gives the commit order; readers
//! share the lock and see only whole appends. Nothing is durable: a dropped store is gone.
//!
//! It implements the same contract as every other backend, checked by the same conformance
//! suite, so tests written against it hold for the durable backends too.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), factum_core::Error> {
//! use factum_core::{EventStore, ExpectedRevision, ProposedEvent, ReadStreamOptions, StreamName};
//! use factum_memory::MemoryStore;
//!
//! let store = MemoryStore::new();
//! let stream = StreamName::new("account-1")?;
//! let event = ProposedEvent::json("AccountOpened", &serde_json::json!({"owner": "Alice"}))?;
//! store.append(&stream, ExpectedRevision::NoStream, vec![event]).await?;
//! assert_eq!(store.read_stream(&stream, ReadStreamOptions::forwards()).await?.len(), 1);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use factum_core::rules::{
    self, AppendPlan, IdCheckOutcome, STREAM_DELETED_EVENT_TYPE, StoredId, StreamState,
};
use factum_core::{
    AllSlice, AllStart, AppendResult, CONTENT_TYPE_JSON, DeleteResult, Direction, Error,
    EventStore, ExpectedRevision, Limits, METADATA_EVENT_TYPE, Position, ProposedEvent,
    ReadAllOptions, ReadStreamOptions, RecordedEvent, Result, StreamMetadata, StreamName,
    Timestamp,
};
use tokio::sync::watch;

/// An event store that keeps everything in memory.
pub struct MemoryStore {
    state: RwLock<State>,
    /// The head position, published after every append for subscriptions.
    head: watch::Sender<Position>,
    limits: Limits,
}

#[derive(Default)]
struct State {
    /// Every event in commit order; the event at position `p` is at index `p - 1`.
    log: Vec<RecordedEvent>,
    streams: HashMap<StreamName, StreamEntry>,
    /// The recorded time of the newest event, so recorded times never decrease.
    last_recorded_at: Timestamp,
}

/// What the store keeps per stream (metadata streams `$$s` included).
#[derive(Default)]
struct StreamEntry {
    /// The position of each revision: revision `r` is at index `r`.
    positions: Vec<u64>,
    /// The latest metadata (from `$$s`), parsed; always the default for metadata streams.
    metadata: StreamMetadata,
    /// Whether the stream was tombstoned; always false for metadata streams (their state
    /// follows the stream they describe).
    tombstoned: bool,
}

impl MemoryStore {
    /// An empty store with the default [`Limits`].
    pub fn new() -> MemoryStore {
        MemoryStore::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> MemoryStore {
        let (head, _) = watch::channel(Position::START);
        MemoryStore {
            state: RwLock::new(State::default()),
            head,
            limits,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic under the lock is a bug that already failed loudly; the state it left is
        // still consistent because every mutation below asserts before it writes.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_head(&self, state: &State) {
        self.head.send_replace(state.head());
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryStore")
            .field("events", &state.log.len())
            .field("streams", &state.streams.len())
            .finish()
    }
}

impl State {
    fn head(&self) -> Position {
        Position(self.log.len() as u64)
    }

    fn event_at(&self, position: u64) -> &RecordedEvent {
        let event = &self.log[(position - 1) as usize];
        debug_assert_eq!(event.position.0, position);
        event
    }

    /// The rules' view of a stream; a metadata stream takes its tombstone from its stream.
    fn stream_state(&self, stream: &StreamName) -> StreamState {
        let entry = self.streams.get(stream);
        let last_revision = entry.and_then(|entry| entry.positions.len().checked_sub(1));
        match stream.metadata_of() {
            Some(described) => StreamState {
                last_revision: last_revision.map(|last| last as u64),
                truncate_before: None,
                tombstoned: self
                    .streams
                    .get(&described)
                    .is_some_and(|entry| entry.tombstoned),
            },
            None => StreamState {
                last_revision: last_revision.map(|last| last as u64),
                truncate_before: entry.and_then(|entry| entry.metadata.truncate_before),
                tombstoned: entry.is_some_and(|entry| entry.tombstoned),
            },
        }
    }

    fn stored_ids(&self, stream: &StreamName, revisions: std::ops::Range<u64>) -> Vec<StoredId> {
        let Some(entry) = self.streams.get(stream) else {
            return Vec::new();
        };
        revisions
            .filter_map(|revision| {
                let position = *entry.positions.get(revision as usize)?;
                Some(StoredId {
                    revision,
                    id: self.event_at(position).id,
                    position: Position(position),
                })
            })
            .collect()
    }

    /// Writes already-checked events to `stream` from `first_revision` on, atomically (the
    /// caller holds the write lock), and keeps the metadata cache up to date.
    fn write_events(
        &mut self,
        stream: &StreamName,
        first_revision: u64,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        let recorded_at = Timestamp::now().max(self.last_recorded_at);
        let count = events.len() as u64;
        let last_position = self.log.len() as u64 + count;
        if last_position > Position::MAX.0 {
            return Err(Error::Unavailable {
                reason: "the global log is full (2^63 - 1 positions)".into(),
            });
        }
        let entry = self.streams.entry(stream.clone()).or_default();
        assert_eq!(
            entry.positions.len() as u64,
            first_revision,
            "writes must continue the stream without a gap"
        );
        let mut newest_metadata = None;
        for (offset, event) in events.into_iter().enumerate() {
            let position = self.log.len() as u64 + 1;
            if event.event_type == METADATA_EVENT_TYPE && stream.is_metadata() {
                newest_metadata = Some(event.data.clone());
            }
            entry.positions.push(position);
            self.log.push(RecordedEvent {
                id: event.id,
                stream: stream.clone(),
                revision: first_revision + offset as u64,
                position: Position(position),
                event_type: event.event_type.into(),
                schema_version: event.schema_version,
                content_type: event.content_type.into(),
                data: event.data,
                metadata: event.metadata,
                tags: event.tags,
                recorded_at,
            });
        }
        self.last_recorded_at = recorded_at;
        if let (Some(json), Some(described)) = (newest_metadata, stream.metadata_of()) {
            let metadata = StreamMetadata::from_json(&json)
                .expect("metadata events are validated before they are written");
            self.streams.entry(described).or_default().metadata = metadata;
        }
        Ok(AppendResult {
            position: Position(last_position),
            revision: first_revision + count - 1,
        })
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendResult> {
        rules::validate_append(stream, &events, &self.limits)?;
        let mut state = self.write();
        let stream_state = state.stream_state(stream);
        let first_revision =
            match rules::plan_append(stream, &stream_state, expected, events.len() as u64)? {
                AppendPlan::Write { first_revision } => first_revision,
                AppendPlan::CheckIds(check) => {
                    let stored = state.stored_ids(stream, check.revisions());
                    let proposed: Vec<_> = events.iter().map(|event| event.id).collect();
                    match check.resolve(&proposed, &stored)? {
                        IdCheckOutcome::Write { first_revision } => first_revision,
                        IdCheckOutcome::AlreadyWritten(result) => return Ok(result),
                    }
                }
            };
        let result = state.write_events(stream, first_revision, events)?;
        self.publish_head(&state);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        options: ReadStreamOptions,
    ) -> Result<Vec<RecordedEvent>> {
        let state = self.read();
        let stream_state = state.stream_state(stream);
        let default_metadata = StreamMetadata::default();
        let entry = state.streams.get(stream);
        let metadata = entry.map_or(&default_metadata, |entry| &entry.metadata);
        let Some(plan) = rules::plan_stream_read(stream, &stream_state, metadata, &options)? else {
            return Ok(Vec::new());
        };
        let entry = entry.expect("a stream with a read plan has been written");
        let now = Timestamp::now();
        let limit = usize::try_from(options.limit).unwrap_or(usize::MAX);
        Ok(plan
            .revisions()
            .map(|revision| state.event_at(entry.positions[revision as usize]))
            .filter(|event| !metadata.is_expired(event.recorded_at, now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn read_all(&self, options: ReadAllOptions) -> Result<AllSlice> {
        let state = self.read();
        let head = state.head().0;
        let limit = usize::try_from(options.limit).unwrap_or(usize::MAX);
        let scan_limit = options.scan_limit.unwrap_or(u64::MAX);
        // The positions to walk, in order, and where "nothing examined" leaves `scanned_to`.
        let (positions, unscanned): (Box<dyn Iterator<Item = u64>>, u64) =
            match (options.direction, options.from) {
                (Direction::Forwards, AllStart::Start) => (Box::new(1..=head), 0),
                (Direction::Forwards, AllStart::End) => (Box::new(std::iter::empty()), head),
                (Direction::Forwards, AllStart::Position(from)) => {
                    (Box::new(from.0.max(1)..=head), from.0.saturating_sub(1))
                }
                (Direction::Backwards, AllStart::Start) => (Box::new(std::iter::empty()), 0),
                (Direction::Backwards, AllStart::End) => (Box::new((1..=head).rev()), head + 1),
                (Direction::Backwards, AllStart::Position(before)) => {
                    let newest = before.0.saturating_sub(1).min(head);
                    (Box::new((1..=newest).rev()), before.0)
                }
            };
        let mut events = Vec::new();
        let mut scanned_to = unscanned;
        let mut end_of_log = true;
        for (scanned, position) in (0u64..).zip(positions) {
            if events.len() >= limit || scanned >= scan_limit {
                end_of_log = false;
                break;
            }
            scanned_to = position;
            let event = state.event_at(position);
            if options.keeps(event) {
                events.push(event.clone());
            }
        }
        Ok(AllSlice {
            events,
            scanned_to: Position(scanned_to),
            end_of_log,
        })
    }

    async fn delete_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        let mut state = self.write();
        let stream_state = state.stream_state(stream);
        rules::plan_delete(stream, &stream_state, expected, false)?;
        let last_revision = stream_state
            .last_revision
            .expect("plan_delete refuses soft deletes of never-written streams");
        let current = state
            .streams
            .get(stream)
            .map(|entry| entry.metadata.clone())
            .unwrap_or_default();
        let metadata = rules::soft_delete_metadata(&current, last_revision);
        let metadata_stream = stream
            .metadata_stream()
            .expect("plan_delete refuses metadata streams");
        let next_revision = state.stream_state(&metadata_stream).next_revision();
        let event = ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, metadata.to_json());
        let result = state.write_events(&metadata_stream, next_revision, vec![event])?;
        self.publish_head(&state);
        Ok(DeleteResult {
            position: result.position,
        })
    }

    async fn tombstone_stream(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
    ) -> Result<DeleteResult> {
        let mut state = self.write();
        let stream_state = state.stream_state(stream);
        rules::plan_delete(stream, &stream_state, expected, true)?;
        let marker = ProposedEvent::new(STREAM_DELETED_EVENT_TYPE, CONTENT_TYPE_JSON, &b"{}"[..]);
        let result = state.write_events(stream, stream_state.next_revision(), vec![marker])?;
        state
            .streams
            .get_mut(stream)
            .expect("write_events creates the entry")
            .tombstoned = true;
        self.publish_head(&state);
        Ok(DeleteResult {
            position: result.position,
        })
    }

    async fn head(&self) -> Result<Position> {
        Ok(self.read().head())
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}
