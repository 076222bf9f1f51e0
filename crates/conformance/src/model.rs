//! The model-based property test: random sequences of operations run against a store and
//! against a deliberately simple model of the contract, and every result is compared.
//!
//! The model is a `Vec` of every event in commit order plus the set of tombstoned streams;
//! every read filters that `Vec` again. It implements the expected-revision, idempotency,
//! delete and read rules itself, from the brief and the docs of `factum_core::rules`, so it is
//! an independent check of a backend (only input validation is borrowed, from
//! [`rules::validate_append`]).
//!
//! Positions: the model numbers its events densely 1, 2, 3…, while a backend may leave gaps.
//! After every operation the runner reads the store's new events from `$all` and records their
//! positions (and the ids and recorded times of the events the store generates itself, such as
//! tombstone markers), checking they are strictly increasing; from then on model positions are
//! translated through that table. The same read checks that the operation wrote exactly what the
//! model wrote — nothing for a failed append or an idempotent retry. `$maxAge` is not modelled:
//! it depends on the clock.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use factum_core::rules;
use factum_core::{
    AllStart, CONTENT_TYPE_JSON, CurrentRevision, Direction, Error, EventFilter, EventId,
    EventStore, ExpectedRevision, METADATA_EVENT_TYPE, Position, ProposedEvent, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, StreamMetadata, StreamMetadataResult, StreamName,
    StreamStart, Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// How many cases run when `PROPTEST_CASES` does not say otherwise.
const CASES_DEFAULT: u32 = 64;

/// The ordinary streams the operations touch. Their names share prefixes so that prefix filters
/// select some of them, and one is a system stream that is not a metadata stream.
const STREAMS: [&str; 4] = ["acct-1", "acct-12", "order-1", "$snap-1"];

/// The event types of valid events in ordinary streams.
const EVENT_TYPES: [&str; 4] = ["Opened", "Deposited", "Withdrawn", "Closed"];

/// Stream-name prefixes for `$all` filters (the empty one matches everything).
const STREAM_PREFIXES: [&str; 8] = ["acct-", "acct-1", "order", "$$", "$$acct", "$snap", "", "x"];

/// Event-type prefixes for `$all` filters.
const TYPE_PREFIXES: [&str; 7] = ["Opened", "De", "W", "$", "$meta", "$stream", "x"];

/// The marker a tombstone appends, as the core docs name it.
const TOMBSTONE_TYPE: &str = "$streamDeleted";

/// Runs random operations against fresh stores from `new_store` and against a simple model,
/// comparing every result; panics with the smallest failing sequence it finds.
///
/// Runs 64 cases unless `PROPTEST_CASES` says otherwise. Each case builds its own
/// current-thread tokio runtime and store.
pub fn check_against_model<S, F, Fut>(new_store: F)
where
    S: EventStore,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES_DEFAULT;
    }
    // The runner is called from other crates' tests: keep no regression files in them.
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&vec(op(), 30..=80), |ops| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        runtime
            .block_on(async {
                let store = new_store().await;
                Runner::new(store).run(&ops).await
            })
            .map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!(
            "the store disagrees with the model: {reason}\n\nminimal failing operations:\n{}",
            show_ops(&ops)
        ),
        Err(TestError::Abort(reason)) => panic!("the model test aborted: {reason}"),
    }
}

/// The operations in order, with runs of `Head` (what irrelevant operations shrink to)
/// collapsed.
fn show_ops(ops: &[Op]) -> String {
    let mut lines = Vec::new();
    let mut index = 0;
    while index < ops.len() {
        let heads = ops[index..]
            .iter()
            .take_while(|op| matches!(op, Op::Head))
            .count();
        if heads > 1 {
            lines.push(format!(
                "  #{index}..#{}: Head × {heads}",
                index + heads - 1
            ));
            index += heads;
        } else {
            lines.push(format!("  #{index}: {:?}", ops[index]));
            index += 1;
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Operations, as proptest generates and shrinks them.
// ---------------------------------------------------------------------------------------------

/// One of the eight streams: the four of [`STREAMS`] and their metadata streams.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StreamRef(u8);

impl StreamRef {
    fn name(self) -> StreamName {
        let base = STREAMS[usize::from(self.0 % 4)];
        let name = if self.0 < 4 {
            base.to_owned()
        } else {
            format!("$${base}")
        };
        StreamName::new(name).expect("the model's stream names are valid")
    }
}

impl fmt::Debug for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// An expected revision, resolved against the model's state of the target stream when the
/// operation runs.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    /// `Exact(last revision)`, or `NoStream` for a stream never written.
    Current,
    /// `Exact(last revision - 1)` (`Exact(0)` for a stream never written).
    Behind,
    /// `Exact(last revision + 1)`.
    Ahead,
    /// `Exact(n)`, whatever the stream's state.
    Exact(u8),
    /// The expectation the reused batch was first written after (`NoStream` at revision 0),
    /// which makes a retry with `Exact`; `Current` when the batch is not in the stream.
    BeforeBatch,
}

/// How one fresh event is made. The same spec gives a valid event for an ordinary stream and a
/// valid `$metadata` event for a metadata stream, unless it is `invalid`.
#[derive(Debug, Clone, Copy)]
struct EventSpec {
    /// Which event type (ordinary streams) or which metadata (metadata streams).
    kind: u8,
    /// Varies the data, content type, schema version, metadata and tags.
    n: u8,
    /// A reserved `$` type in an ordinary stream, an ordinary type in a metadata stream.
    invalid: bool,
}

/// Which part of an earlier batch to send again, for partial overlaps.
#[derive(Debug, Clone, Copy)]
enum Overlap {
    /// The first half (at least one event): a retry of a prefix.
    Prefix,
    /// All but the first event (nothing, for a batch of one: an empty append).
    Suffix,
    /// The whole batch and one fresh event after it.
    PlusFresh,
    /// One fresh event and the whole batch after it.
    FreshFirst,
    /// The whole batch in reverse order.
    Reversed,
    /// The whole batch with its first event again at the end (an id twice in one append).
    Doubled,
}

/// The events of an append.
#[derive(Debug, Clone)]
enum Batch {
    /// New events with new ids, to the operation's stream.
    Fresh(Vec<EventSpec>),
    /// Exactly the events of the `back`-th latest earlier batch (0: the previous one), to the
    /// stream it was sent to, or to the operation's stream when `elsewhere`.
    Retry { back: u8, elsewhere: bool },
    /// Part of the `back`-th latest earlier batch, to the stream it was sent to.
    Overlap { back: u8, how: Overlap },
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy)]
enum StreamFrom {
    Start,
    End,
    Revision(u8),
}

/// Where a `$all` read starts.
#[derive(Debug, Clone, Copy)]
enum AllFrom {
    Start,
    End,
    /// A model position `at % (events + 2)`: 0, an event's position, or just past the head.
    At(u16),
}

/// A `$all` filter.
#[derive(Debug, Clone)]
enum Filter {
    StreamPrefix(Vec<&'static str>),
    TypePrefix(Vec<&'static str>),
}

/// One operation on the store.
#[derive(Debug, Clone)]
enum Op {
    Head,
    Append {
        stream: StreamRef,
        expected: Expect,
        batch: Batch,
    },
    ReadStream {
        stream: StreamRef,
        backwards: bool,
        from: StreamFrom,
        /// `None` reads without a limit.
        limit: Option<u8>,
    },
    ReadAll {
        backwards: bool,
        from: AllFrom,
        limit: Option<u8>,
        filter: Option<Filter>,
        include_system: bool,
    },
    Delete {
        stream: StreamRef,
        expected: Expect,
    },
    Tombstone {
        stream: StreamRef,
        expected: Expect,
    },
    SetMetadata {
        stream: StreamRef,
        expected: Expect,
        max_count: Option<u8>,
        truncate_before: Option<u8>,
        custom: bool,
    },
    StreamMetadata {
        stream: StreamRef,
    },
}

/// Mostly ordinary streams; metadata streams now and then.
fn stream_ref() -> impl Strategy<Value = StreamRef> {
    prop_oneof![4 => (0..4u8).prop_map(StreamRef), 1 => (4..8u8).prop_map(StreamRef)]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Any),
        2 => Just(Expect::NoStream),
        1 => Just(Expect::StreamExists),
        4 => Just(Expect::Current),
        1 => Just(Expect::Behind),
        1 => Just(Expect::Ahead),
        1 => (0..6u8).prop_map(Expect::Exact),
        2 => Just(Expect::BeforeBatch),
    ]
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (0..4u8, 0..16u8, prop::bool::weighted(0.04)).prop_map(|(kind, n, invalid)| EventSpec {
        kind,
        n,
        invalid,
    })
}

fn batch() -> impl Strategy<Value = Batch> {
    let overlap = prop_oneof![
        Just(Overlap::Prefix),
        Just(Overlap::Suffix),
        Just(Overlap::PlusFresh),
        Just(Overlap::FreshFirst),
        Just(Overlap::Reversed),
        Just(Overlap::Doubled),
    ];
    prop_oneof![
        6 => vec(event_spec(), 1..=4).prop_map(Batch::Fresh),
        3 => (0..4u8, prop::bool::weighted(0.15))
            .prop_map(|(back, elsewhere)| Batch::Retry { back, elsewhere }),
        2 => (0..4u8, overlap).prop_map(|(back, how)| Batch::Overlap { back, how }),
    ]
}

fn limit() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![2 => Just(None), 3 => (0..7u8).prop_map(Some)]
}

fn filter() -> impl Strategy<Value = Option<Filter>> {
    prop_oneof![
        3 => Just(None),
        1 => prop::sample::subsequence(STREAM_PREFIXES.to_vec(), 0..=2)
            .prop_map(|prefixes| Some(Filter::StreamPrefix(prefixes))),
        1 => prop::sample::subsequence(TYPE_PREFIXES.to_vec(), 0..=2)
            .prop_map(|prefixes| Some(Filter::TypePrefix(prefixes))),
    ]
}

/// One operation. `Head` comes first so that shrinking turns irrelevant operations into it.
fn op() -> impl Strategy<Value = Op> {
    let read_stream = (
        stream_ref(),
        any::<bool>(),
        prop_oneof![
            Just(StreamFrom::Start),
            Just(StreamFrom::End),
            (0..10u8).prop_map(StreamFrom::Revision)
        ],
        limit(),
    )
        .prop_map(|(stream, backwards, from, limit)| Op::ReadStream {
            stream,
            backwards,
            from,
            limit,
        });
    let read_all = (
        any::<bool>(),
        prop_oneof![
            Just(AllFrom::Start),
            Just(AllFrom::End),
            any::<u16>().prop_map(AllFrom::At)
        ],
        limit(),
        filter(),
        any::<bool>(),
    )
        .prop_map(
            |(backwards, from, limit, filter, include_system)| Op::ReadAll {
                backwards,
                from,
                limit,
                filter,
                include_system,
            },
        );
    let set_metadata = (
        prop_oneof![9 => (0..4u8).prop_map(StreamRef), 1 => (4..8u8).prop_map(StreamRef)],
        expect(),
        prop::option::of(0..5u8),
        prop::option::of(0..8u8),
        any::<bool>(),
    )
        .prop_map(
            |(stream, expected, max_count, truncate_before, custom)| Op::SetMetadata {
                stream,
                expected,
                max_count,
                truncate_before,
                custom,
            },
        );
    prop_oneof![
        1 => Just(Op::Head),
        12 => (stream_ref(), expect(), batch())
            .prop_map(|(stream, expected, batch)| Op::Append { stream, expected, batch }),
        4 => read_stream,
        4 => read_all,
        2 => (stream_ref(), expect()).prop_map(|(stream, expected)| Op::Delete { stream, expected }),
        1 => (stream_ref(), expect())
            .prop_map(|(stream, expected)| Op::Tombstone { stream, expected }),
        2 => set_metadata,
        2 => stream_ref().prop_map(|stream| Op::StreamMetadata { stream }),
    ]
}

/// Makes the event `spec` describes for `stream`, with `id`.
fn proposed_event(spec: EventSpec, stream: &StreamName, id: EventId) -> ProposedEvent {
    let n = spec.n;
    if stream.is_metadata() {
        let data = match spec.kind % 4 {
            0 => serde_json::json!({ "$maxCount": n % 5 }),
            1 => serde_json::json!({ "$tb": n % 6 }),
            2 => serde_json::json!({ "owner": format!("team-{n}") }),
            _ => serde_json::json!({ "$maxCount": n % 5 + 1, "$tb": n % 4, "owner": "ops" }),
        };
        let event_type = if spec.invalid {
            EVENT_TYPES[0]
        } else {
            METADATA_EVENT_TYPE
        };
        let data = serde_json::to_vec(&data).expect("JSON values encode");
        return ProposedEvent::new(event_type, CONTENT_TYPE_JSON, data).with_id(id);
    }
    let event_type = if spec.invalid {
        "$Reserved"
    } else {
        EVENT_TYPES[usize::from(spec.kind % 4)]
    };
    let mut event = if n % 4 == 3 {
        ProposedEvent::bytes(event_type, vec![n, 0, 255])
    } else {
        ProposedEvent::new(
            event_type,
            CONTENT_TYPE_JSON,
            format!("{{\"n\":{n}}}").into_bytes(),
        )
    };
    event = event.with_id(id).with_schema_version(1 + u32::from(n % 3));
    if n.is_multiple_of(2) {
        event = event.with_metadata(format!("{{\"$correlationId\":\"c-{n}\"}}").into_bytes());
    }
    if n % 3 == 1 {
        event = event.with_tags([format!("tag-{n}")]);
    }
    event
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

/// What the model knows of an event's content.
#[derive(Debug, Clone)]
enum Body {
    /// Proposed by the test: every field is known.
    Proposed(ProposedEvent),
    /// Stream metadata the store wrote itself (a soft delete, `set_stream_metadata`): its
    /// encoding is the backend's, so it is compared parsed.
    Metadata(StreamMetadata),
    /// A tombstone's marker: only its type is known.
    Marker,
}

/// One event of the model.
#[derive(Debug, Clone)]
struct ModelEvent {
    /// `None` for an event the store generated, until the runner learns its id from `$all`.
    id: Option<EventId>,
    stream: StreamName,
    revision: u64,
    event_type: String,
    body: Body,
}

impl ModelEvent {
    /// The stream metadata a `$metadata` event carries.
    fn metadata(&self) -> StreamMetadata {
        match &self.body {
            Body::Metadata(metadata) => metadata.clone(),
            Body::Proposed(event) => StreamMetadata::from_json(&event.data)
                .expect("the model only stores validated metadata events"),
            Body::Marker => StreamMetadata::default(),
        }
    }

    fn is_system(&self) -> bool {
        self.stream.as_str().starts_with('$') || self.event_type.starts_with('$')
    }
}

/// An event the model is asked to write: an id (`None` when the store generates it), a type and
/// a body.
struct NewEvent {
    id: Option<EventId>,
    event_type: String,
    body: Body,
}

/// What an append decided.
enum Decision {
    /// Write the events from the stream's next revision on.
    Write,
    /// A retry: answer with this model position and revision, write nothing.
    Retry(u64, u64),
}

/// The contract as a list of events: model position `p` is `events[p - 1]`.
#[derive(Default)]
struct Model {
    events: Vec<ModelEvent>,
    /// Streams that were tombstoned (ordinary streams only; their metadata streams follow).
    tombstoned: BTreeSet<StreamName>,
}

impl Model {
    /// The events of `stream` with their model positions, in revision order.
    fn history(&self, stream: &StreamName) -> Vec<(u64, &ModelEvent)> {
        self.events
            .iter()
            .enumerate()
            .filter(|(_, event)| event.stream == *stream)
            .map(|(index, event)| (index as u64 + 1, event))
            .collect()
    }

    fn last_revision(&self, stream: &StreamName) -> Option<u64> {
        self.history(stream).last().map(|(_, event)| event.revision)
    }

    /// Whether `stream`, or the stream a metadata stream describes, was tombstoned.
    fn is_tombstoned(&self, stream: &StreamName) -> bool {
        let base = stream.metadata_of().unwrap_or_else(|| stream.clone());
        self.tombstoned.contains(&base)
    }

    /// The latest metadata of an ordinary stream (the default if none was set).
    fn metadata(&self, stream: &StreamName) -> StreamMetadata {
        match stream.metadata_stream() {
            Some(metadata_stream) => self
                .history(&metadata_stream)
                .last()
                .map(|(_, event)| event.metadata())
                .unwrap_or_default(),
            None => StreamMetadata::default(),
        }
    }

    /// Whether the stream has visible events: written, and not soft-deleted (its `$tb` past
    /// its last revision). Metadata streams have no `$tb`.
    fn exists(&self, stream: &StreamName) -> bool {
        match self.last_revision(stream) {
            None => false,
            Some(_) if stream.is_metadata() => true,
            Some(last) => self
                .metadata(stream)
                .truncate_before
                .is_none_or(|truncate_before| truncate_before <= last),
        }
    }

    fn actual(&self, stream: &StreamName) -> CurrentRevision {
        match self.last_revision(stream) {
            Some(last) if self.exists(stream) => CurrentRevision::Current(last),
            _ => CurrentRevision::NoStream,
        }
    }

    /// Appends `new` to `stream` if `expected` holds; recognises retries by id. Returns the
    /// model position and revision of the last event (of the original append, for a retry).
    fn write(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        new: Vec<NewEvent>,
    ) -> Result<(u64, u64), Error> {
        if self.is_tombstoned(stream) {
            return Err(Error::StreamDeleted {
                stream: stream.clone(),
            });
        }
        let decision = self.decide(stream, expected, &new)?;
        match decision {
            Decision::Retry(position, revision) => Ok((position, revision)),
            Decision::Write => {
                let next = self.last_revision(stream).map_or(0, |last| last + 1);
                let count = new.len() as u64;
                for (offset, event) in new.into_iter().enumerate() {
                    self.events.push(ModelEvent {
                        id: event.id,
                        stream: stream.clone(),
                        revision: next + offset as u64,
                        event_type: event.event_type,
                        body: event.body,
                    });
                }
                Ok((self.events.len() as u64, next + count - 1))
            }
        }
    }

    fn decide(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        new: &[NewEvent],
    ) -> Result<Decision, Error> {
        let history = self.history(stream);
        let last = self.last_revision(stream);
        let exists = self.exists(stream);
        let wrong = || Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected,
            actual: self.actual(stream),
        };
        // A proposed id matches a stored one only if the test chose it: ids the store generates
        // are fresh.
        let same = |stored: &ModelEvent, proposed: &NewEvent| {
            proposed.id.is_some() && stored.id == proposed.id
        };
        // Whether `stored`, from its start, holds exactly the proposed ids in order.
        let retry = |stored: &[(u64, &ModelEvent)]| -> Result<Decision, Error> {
            let matches = stored.len() >= new.len()
                && stored
                    .iter()
                    .zip(new)
                    .all(|((_, stored), proposed)| same(stored, proposed));
            if !matches {
                return Err(wrong());
            }
            let (position, event) = stored[new.len() - 1];
            Ok(Decision::Retry(position, event.revision))
        };
        match expected {
            ExpectedRevision::Any | ExpectedRevision::StreamExists => {
                if expected == ExpectedRevision::StreamExists && !exists {
                    return Err(wrong());
                }
                let window_len = rules::IDEMPOTENCY_WINDOW_EVENTS as usize;
                let window = &history[history.len().saturating_sub(window_len)..];
                match window.iter().position(|(_, stored)| same(stored, &new[0])) {
                    Some(start) => retry(&window[start..]),
                    None => {
                        let any_stored = window
                            .iter()
                            .any(|(_, stored)| new.iter().any(|proposed| same(stored, proposed)));
                        if any_stored {
                            Err(wrong())
                        } else {
                            Ok(Decision::Write)
                        }
                    }
                }
            }
            ExpectedRevision::NoStream => {
                if !exists {
                    return Ok(Decision::Write);
                }
                // Revisions are gapless from 0, so a revision is an index into the history.
                let first = if stream.is_metadata() {
                    0
                } else {
                    self.metadata(stream).truncate_before.unwrap_or(0)
                };
                retry(&history[first as usize..])
            }
            ExpectedRevision::Exact(revision) => match last {
                Some(last) if last == revision => Ok(Decision::Write),
                Some(last) if last > revision => retry(&history[revision as usize + 1..]),
                _ => Err(wrong()),
            },
        }
    }

    /// Soft-deletes or tombstones `stream`; returns the model position of the event written.
    fn delete(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        tombstone: bool,
    ) -> Result<u64, Error> {
        let Some(metadata_stream) = stream.metadata_stream() else {
            return Err(Error::invalid_request("metadata streams cannot be deleted"));
        };
        if self.is_tombstoned(stream) {
            return Err(Error::StreamDeleted {
                stream: stream.clone(),
            });
        }
        let not_found = || Error::StreamNotFound {
            stream: stream.clone(),
        };
        let last = self.last_revision(stream);
        let exists = self.exists(stream);
        let accepted = match last {
            // A name never written cannot be soft-deleted, but can be retired by a tombstone.
            None if !tombstone => return Err(not_found()),
            None => match expected {
                ExpectedRevision::StreamExists => return Err(not_found()),
                ExpectedRevision::Any | ExpectedRevision::NoStream => true,
                ExpectedRevision::Exact(_) => false,
            },
            Some(last) => match expected {
                ExpectedRevision::Any => true,
                ExpectedRevision::NoStream => !exists,
                ExpectedRevision::StreamExists => exists,
                ExpectedRevision::Exact(revision) => revision == last,
            },
        };
        if !accepted {
            return Err(Error::WrongExpectedRevision {
                stream: stream.clone(),
                expected,
                actual: self.actual(stream),
            });
        }
        if tombstone {
            self.events.push(ModelEvent {
                id: None,
                stream: stream.clone(),
                revision: last.map_or(0, |last| last + 1),
                event_type: TOMBSTONE_TYPE.to_owned(),
                body: Body::Marker,
            });
            self.tombstoned.insert(stream.clone());
        } else {
            let last = last.expect("soft deletes of unwritten streams were refused above");
            let metadata = StreamMetadata {
                truncate_before: Some(last + 1),
                ..self.metadata(stream)
            };
            self.events.push(ModelEvent {
                id: None,
                revision: self
                    .last_revision(&metadata_stream)
                    .map_or(0, |last| last + 1),
                stream: metadata_stream,
                event_type: METADATA_EVENT_TYPE.to_owned(),
                body: Body::Metadata(metadata),
            });
        }
        Ok(self.events.len() as u64)
    }

    fn set_metadata(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        metadata: StreamMetadata,
    ) -> Result<(u64, u64), Error> {
        let Some(metadata_stream) = stream.metadata_stream() else {
            return Err(Error::invalid_request("metadata streams have no metadata"));
        };
        let event = NewEvent {
            id: None,
            event_type: METADATA_EVENT_TYPE.to_owned(),
            body: Body::Metadata(metadata),
        };
        self.write(&metadata_stream, expected, vec![event])
    }

    fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadataResult, Error> {
        let Some(metadata_stream) = stream.metadata_stream() else {
            return Err(Error::invalid_request("metadata streams have no metadata"));
        };
        if self.is_tombstoned(stream) {
            return Err(Error::StreamDeleted {
                stream: stream.clone(),
            });
        }
        Ok(StreamMetadataResult {
            metadata: self.metadata(stream),
            revision: match self.last_revision(&metadata_stream) {
                Some(last) => CurrentRevision::Current(last),
                None => CurrentRevision::NoStream,
            },
        })
    }

    /// The model positions a stream read returns.
    fn read_stream(
        &self,
        stream: &StreamName,
        backwards: bool,
        from: StreamStart,
        limit: u64,
    ) -> Result<Vec<u64>, Error> {
        if self.is_tombstoned(stream) {
            return Err(Error::StreamDeleted {
                stream: stream.clone(),
            });
        }
        let Some(last) = self.last_revision(stream) else {
            return Err(Error::StreamNotFound {
                stream: stream.clone(),
            });
        };
        if !self.exists(stream) {
            return Err(Error::StreamNotFound {
                stream: stream.clone(),
            });
        }
        // `$tb` hides revisions below it, `$maxCount` all but the newest N; neither applies
        // to metadata streams.
        let metadata = if stream.is_metadata() {
            StreamMetadata::default()
        } else {
            self.metadata(stream)
        };
        let hidden_by_count = metadata
            .max_count
            .map_or(0, |max_count| (last + 1).saturating_sub(max_count));
        let first_visible = metadata.truncate_before.unwrap_or(0).max(hidden_by_count);
        let mut visible: Vec<(u64, &ModelEvent)> = self
            .history(stream)
            .into_iter()
            .filter(|(_, event)| event.revision >= first_visible)
            .collect();
        let wanted = |revision: u64| match (backwards, from) {
            (false, StreamStart::Start) | (true, StreamStart::End) => true,
            (false, StreamStart::End) => false,
            (false, StreamStart::Revision(from)) => revision >= from,
            (true, StreamStart::Start) => revision == 0,
            (true, StreamStart::Revision(from)) => revision <= from,
        };
        visible.retain(|(_, event)| wanted(event.revision));
        if backwards {
            visible.reverse();
        }
        Ok(visible
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(position, _)| position)
            .collect())
    }

    /// The model positions a `$all` read returns: forwards from a position inclusive, backwards
    /// before it (exclusive); forwards from the end and backwards from the start return nothing.
    fn read_all(
        &self,
        backwards: bool,
        from: ModelFrom,
        limit: u64,
        filter: &Option<Filter>,
        include_system: bool,
    ) -> Vec<u64> {
        let in_range = |position: u64| match (backwards, from) {
            (false, ModelFrom::Start) | (true, ModelFrom::End) => true,
            (false, ModelFrom::End) | (true, ModelFrom::Start) => false,
            (false, ModelFrom::At(from)) => position >= from,
            (true, ModelFrom::At(from)) => position < from,
        };
        let keeps = |event: &ModelEvent| {
            if event.is_system() && !include_system {
                return false;
            }
            match filter {
                None => true,
                Some(Filter::StreamPrefix(prefixes)) => prefixes
                    .iter()
                    .any(|prefix| event.stream.as_str().starts_with(prefix)),
                Some(Filter::TypePrefix(prefixes)) => prefixes
                    .iter()
                    .any(|prefix| event.event_type.starts_with(prefix)),
            }
        };
        let mut kept: Vec<u64> = self
            .events
            .iter()
            .enumerate()
            .map(|(index, event)| (index as u64 + 1, event))
            .filter(|(position, event)| in_range(*position) && keeps(event))
            .map(|(position, _)| position)
            .collect();
        if backwards {
            kept.reverse();
        }
        kept.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        kept
    }
}

/// Where a `$all` read starts, in model positions.
#[derive(Debug, Clone, Copy)]
enum ModelFrom {
    Start,
    End,
    At(u64),
}

// ---------------------------------------------------------------------------------------------
// Running operations against both and comparing.
// ---------------------------------------------------------------------------------------------

/// Runs one sequence of operations on one store and the model.
struct Runner<S> {
    store: Arc<S>,
    model: Model,
    /// The store's position of model position `p` at index `p - 1`, learned after each write.
    positions: Vec<Position>,
    /// The store's recorded time of each model event, learned with its position.
    recorded_at: Vec<Timestamp>,
    /// Every batch appended so far (whatever the outcome) and the stream it was sent to, for
    /// retries.
    batches: Vec<(StreamName, Vec<ProposedEvent>)>,
    /// The next id a fresh event gets: ids are small numbers, so traces are readable.
    next_id: u128,
    /// One line per operation run, for the failure report.
    trace: Vec<String>,
}

impl<S: EventStore> Runner<S> {
    fn new(store: Arc<S>) -> Runner<S> {
        Runner {
            store,
            model: Model::default(),
            positions: Vec::new(),
            recorded_at: Vec::new(),
            batches: Vec::new(),
            next_id: 1,
            trace: Vec::new(),
        }
    }

    async fn run(mut self, ops: &[Op]) -> Result<(), String> {
        let head = self.store.head().await;
        if !matches!(head, Ok(Position(0))) {
            return Err(format!(
                "the factory must make an empty store, but its head is {head:?}"
            ));
        }
        for (index, op) in ops.iter().enumerate() {
            let outcome = match self.step(op).await {
                Ok(line) => match self.learn().await {
                    Ok(()) => Ok(line),
                    Err(problem) => Err(format!("{line}\n{problem}")),
                },
                Err(problem) => Err(problem),
            };
            match outcome {
                Ok(line) => self.trace.push(format!("#{index} {line}")),
                Err(problem) => {
                    return Err(format!(
                        "at operation #{index} ({op:?}):\n{problem}\n\ntrace of the operations \
                         before it:\n{}",
                        self.trace.join("\n")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs one operation on both sides and compares what can be compared before the new
    /// events' positions are known; writes finish their comparison in [`Self::check_write`].
    async fn step(&mut self, op: &Op) -> Result<String, String> {
        match op {
            Op::Head => {
                let store = self.store.head().await;
                let model = Ok::<_, Error>(self.store_position(self.model.events.len() as u64));
                let line = format!("head -> store {store:?}, model {model:?}");
                compare(&store, &model, &line)?;
                if let (Ok(store), Ok(model)) = (store, model)
                    && store != model
                {
                    return Err(format!("{line}: the heads differ"));
                }
                Ok(line)
            }
            Op::Append {
                stream,
                expected,
                batch,
            } => self.append(stream.name(), *expected, batch).await,
            Op::ReadStream {
                stream,
                backwards,
                from,
                limit,
            } => {
                let stream = stream.name();
                let from = match from {
                    StreamFrom::Start => StreamStart::Start,
                    StreamFrom::End => StreamStart::End,
                    StreamFrom::Revision(revision) => StreamStart::Revision(u64::from(*revision)),
                };
                let limit = limit.map_or(u64::MAX, u64::from);
                let options = ReadStreamOptions {
                    from,
                    direction: if *backwards {
                        Direction::Backwards
                    } else {
                        Direction::Forwards
                    },
                    limit,
                };
                let store = self.store.read_stream(&stream, options).await;
                let model = self.model.read_stream(&stream, *backwards, from, limit);
                let line = format!(
                    "read_stream {stream} {options:?} -> store {}, model {}",
                    show_result(&store, |events| show_events(events)),
                    show_result(&model, |positions| format!("{positions:?}")),
                );
                compare(&store, &model, &line)?;
                if let (Ok(store), Ok(model)) = (&store, &model) {
                    self.compare_events(store, model)
                        .map_err(|problem| format!("{line}\n{problem}"))?;
                }
                Ok(line)
            }
            Op::ReadAll {
                backwards,
                from,
                limit,
                filter,
                include_system,
            } => {
                self.read_all(*backwards, *from, *limit, filter, *include_system)
                    .await
            }
            Op::Delete { stream, expected } | Op::Tombstone { stream, expected } => {
                let tombstone = matches!(op, Op::Tombstone { .. });
                let stream = stream.name();
                let expected = self.resolve_expected(&stream, *expected, None);
                let model = self.model.delete(&stream, expected, tombstone);
                let store = if tombstone {
                    self.store.tombstone_stream(&stream, expected).await
                } else {
                    self.store.delete_stream(&stream, expected).await
                };
                let verb = if tombstone { "tombstone" } else { "delete" };
                let line = format!(
                    "{verb} {stream} {expected:?} -> store {store:?}, model {}",
                    show_result(&model, |position| format!("model position {position}")),
                );
                compare(&store, &model, &line)?;
                let store = store.map(|result| (result.position, None));
                let model = model.map(|position| (position, None));
                self.check_write(&store, &model, &line).await?;
                Ok(line)
            }
            Op::SetMetadata {
                stream,
                expected,
                max_count,
                truncate_before,
                custom,
            } => {
                let stream = stream.name();
                let mut metadata = StreamMetadata {
                    max_count: max_count.map(u64::from),
                    truncate_before: truncate_before.map(u64::from),
                    ..StreamMetadata::default()
                };
                if *custom {
                    metadata
                        .custom
                        .insert("owner".into(), serde_json::Value::from("team-a"));
                }
                let expected = match stream.metadata_stream() {
                    Some(metadata_stream) => {
                        self.resolve_expected(&metadata_stream, *expected, None)
                    }
                    None => ExpectedRevision::Any,
                };
                let model = self.model.set_metadata(&stream, expected, metadata.clone());
                let store = self
                    .store
                    .set_stream_metadata(&stream, expected, &metadata)
                    .await;
                let line = format!(
                    "set_stream_metadata {stream} {expected:?} {metadata:?} -> store {store:?}, \
                     model {}",
                    show_result(&model, |(position, revision)| format!(
                        "revision {revision} at model position {position}"
                    )),
                );
                compare(&store, &model, &line)?;
                let store = store.map(|result| (result.position, Some(result.revision)));
                let model = model.map(|(position, revision)| (position, Some(revision)));
                self.check_write(&store, &model, &line).await?;
                Ok(line)
            }
            Op::StreamMetadata { stream } => {
                let stream = stream.name();
                let store = self.store.stream_metadata(&stream).await;
                let model = self.model.stream_metadata(&stream);
                let line = format!("stream_metadata {stream} -> store {store:?}, model {model:?}");
                compare(&store, &model, &line)?;
                if let (Ok(store), Ok(model)) = (&store, &model)
                    && store != model
                {
                    return Err(format!("{line}: the metadata differ"));
                }
                Ok(line)
            }
        }
    }

    async fn append(
        &mut self,
        stream: StreamName,
        expected: Expect,
        batch: &Batch,
    ) -> Result<String, String> {
        let (target, events, source) = self.resolve_batch(stream, batch);
        let expected = self.resolve_expected(&target, expected, source);
        self.batches.push((target.clone(), events.clone()));
        let model = match rules::validate_append(&target, &events, self.store.limits()) {
            Err(error) => Err(error),
            Ok(()) => {
                let new = events
                    .iter()
                    .map(|event| NewEvent {
                        id: Some(event.id),
                        event_type: event.event_type.clone(),
                        body: Body::Proposed(event.clone()),
                    })
                    .collect();
                self.model.write(&target, expected, new)
            }
        };
        let ids: Vec<u128> = events.iter().map(|event| event.id.0.as_u128()).collect();
        let store = self.store.append(&target, expected, events).await;
        let line = format!(
            "append {target} {expected:?} ids {ids:?} -> store {store:?}, model {}",
            show_result(&model, |(position, revision)| format!(
                "revision {revision} at model position {position}"
            )),
        );
        compare(&store, &model, &line)?;
        let store = store.map(|result| (result.position, Some(result.revision)));
        let model = model.map(|(position, revision)| (position, Some(revision)));
        self.check_write(&store, &model, &line).await?;
        Ok(line)
    }

    /// After a write, learns the new events' positions and checks the write's result: the
    /// revision (for appends), and the position of its last event (the original one, for a
    /// retry).
    async fn check_write(
        &mut self,
        store: &Result<(Position, Option<u64>), Error>,
        model: &Result<(u64, Option<u64>), Error>,
        line: &str,
    ) -> Result<(), String> {
        let (Ok((store_position, store_revision)), Ok((model_position, model_revision))) =
            (store, model)
        else {
            return Ok(());
        };
        self.learn()
            .await
            .map_err(|problem| format!("{line}\n{problem}"))?;
        if store_revision != model_revision {
            return Err(format!(
                "{line}: the store answered revision {store_revision:?}, the model \
                 {model_revision:?}"
            ));
        }
        let expected_position = self.store_position(*model_position);
        if *store_position != expected_position {
            return Err(format!(
                "{line}: the store answered position {store_position}, but the event it stands \
                 for is at {expected_position}"
            ));
        }
        Ok(())
    }

    async fn read_all(
        &mut self,
        backwards: bool,
        from: AllFrom,
        limit: Option<u8>,
        filter: &Option<Filter>,
        include_system: bool,
    ) -> Result<String, String> {
        let count = self.model.events.len() as u64;
        let (store_from, model_from) = match from {
            AllFrom::Start => (AllStart::Start, ModelFrom::Start),
            AllFrom::End => (AllStart::End, ModelFrom::End),
            AllFrom::At(at) => {
                let position = u64::from(at) % (count + 2);
                let store_position = if position <= count {
                    self.store_position(position)
                } else {
                    Position(self.store_position(count).0 + 1)
                };
                (AllStart::Position(store_position), ModelFrom::At(position))
            }
        };
        let limit = limit.map_or(u64::MAX, u64::from);
        let options = ReadAllOptions {
            from: store_from,
            direction: if backwards {
                Direction::Backwards
            } else {
                Direction::Forwards
            },
            limit,
            filter: filter.as_ref().map(|filter| match filter {
                Filter::StreamPrefix(prefixes) => {
                    EventFilter::StreamPrefix(prefixes.iter().map(|p| (*p).to_owned()).collect())
                }
                Filter::TypePrefix(prefixes) => {
                    EventFilter::EventTypePrefix(prefixes.iter().map(|p| (*p).to_owned()).collect())
                }
            }),
            include_system,
            scan_limit: None,
        };
        let model = self
            .model
            .read_all(backwards, model_from, limit, filter, include_system);
        let store = self.store.read_all(options.clone()).await;
        let line = format!(
            "read_all {options:?} (model from {model_from:?}) -> store {}, model {model:?}",
            show_result(&store, |slice| format!(
                "{} (scanned_to {}, end_of_log {})",
                show_events(&slice.events),
                slice.scanned_to,
                slice.end_of_log
            )),
        );
        let slice = store.map_err(|error| format!("{line}: the store failed: {error}"))?;
        self.compare_events(&slice.events, &model)
            .map_err(|problem| format!("{line}\n{problem}"))?;
        // Without a scan limit, only the limit may stop a read before the end of the log.
        if (slice.events.len() as u64) < limit && !slice.end_of_log {
            return Err(format!(
                "{line}: fewer events than the limit, but end_of_log is false"
            ));
        }
        if let Some(last) = slice.events.last() {
            let beyond = if backwards {
                slice.scanned_to > last.position
            } else {
                slice.scanned_to < last.position
            };
            if beyond {
                return Err(format!(
                    "{line}: scanned_to {} does not cover the last event returned",
                    slice.scanned_to
                ));
            }
        }
        Ok(line)
    }

    /// Chooses the target stream and events of an append, and the first id of the batch it
    /// reuses (if any).
    fn resolve_batch(
        &mut self,
        stream: StreamName,
        batch: &Batch,
    ) -> (StreamName, Vec<ProposedEvent>, Option<EventId>) {
        let source = |back: u8| {
            let count = self.batches.len();
            (count > 0).then(|| self.batches[count - 1 - usize::from(back) % count].clone())
        };
        let fresh_spec = EventSpec {
            kind: 0,
            n: 0,
            invalid: false,
        };
        match batch {
            Batch::Fresh(specs) => {
                let events = specs
                    .iter()
                    .map(|spec| self.fresh(*spec, &stream))
                    .collect();
                (stream, events, None)
            }
            Batch::Retry { back, elsewhere } => match source(*back) {
                None => {
                    let events = vec![self.fresh(fresh_spec, &stream)];
                    (stream, events, None)
                }
                Some((original, events)) => {
                    let target = if *elsewhere { stream } else { original };
                    let first = events.first().map(|event| event.id);
                    (target, events, first)
                }
            },
            Batch::Overlap { back, how } => match source(*back) {
                None => {
                    let events = vec![self.fresh(fresh_spec, &stream)];
                    (stream, events, None)
                }
                Some((original, mut events)) => {
                    let first = events.first().map(|event| event.id);
                    match how {
                        Overlap::Prefix => events.truncate((events.len() / 2).max(1)),
                        Overlap::Suffix => {
                            if !events.is_empty() {
                                events.remove(0);
                            }
                        }
                        Overlap::PlusFresh => {
                            let event = self.fresh(fresh_spec, &original);
                            events.push(event);
                        }
                        Overlap::FreshFirst => {
                            let event = self.fresh(fresh_spec, &original);
                            events.insert(0, event);
                        }
                        Overlap::Reversed => events.reverse(),
                        Overlap::Doubled => {
                            // An earlier empty batch stays empty: still an invalid request.
                            if let Some(again) = events.first().cloned() {
                                events.push(again);
                            }
                        }
                    }
                    (original, events, first)
                }
            },
        }
    }

    fn fresh(&mut self, spec: EventSpec, stream: &StreamName) -> ProposedEvent {
        let id = EventId(uuid::Uuid::from_u128(self.next_id));
        self.next_id += 1;
        proposed_event(spec, stream, id)
    }

    fn resolve_expected(
        &self,
        stream: &StreamName,
        expect: Expect,
        batch_first_id: Option<EventId>,
    ) -> ExpectedRevision {
        let last = self.model.last_revision(stream);
        let current = last.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        match expect {
            Expect::Any => ExpectedRevision::Any,
            Expect::NoStream => ExpectedRevision::NoStream,
            Expect::StreamExists => ExpectedRevision::StreamExists,
            Expect::Current => current,
            Expect::Behind => {
                ExpectedRevision::Exact(last.map_or(0, |last| last.saturating_sub(1)))
            }
            Expect::Ahead => ExpectedRevision::Exact(last.map_or(0, |last| last + 1)),
            Expect::Exact(revision) => ExpectedRevision::Exact(u64::from(revision)),
            Expect::BeforeBatch => {
                let revision = batch_first_id.and_then(|id| {
                    self.model
                        .history(stream)
                        .into_iter()
                        .find(|(_, event)| event.id == Some(id))
                        .map(|(_, event)| event.revision)
                });
                match revision {
                    Some(0) => ExpectedRevision::NoStream,
                    Some(revision) => ExpectedRevision::Exact(revision - 1),
                    None => current,
                }
            }
        }
    }

    /// The store's position for a model position (0 for 0).
    fn store_position(&self, model_position: u64) -> Position {
        match model_position {
            0 => Position(0),
            position => self.positions[position as usize - 1],
        }
    }

    /// Reads the events the store appended to `$all` since the last call (nothing, after a
    /// read or a failed write), checks they are
    /// exactly the model's new events (in order, strictly increasing positions, one recorded
    /// time per write, never decreasing) and records their positions, recorded times and, for
    /// events the store generated, ids.
    async fn learn(&mut self) -> Result<(), String> {
        let known = self.positions.len();
        let from = Position(self.store_position(known as u64).0 + 1);
        let options = ReadAllOptions::forwards()
            .from_position(from)
            .include_system();
        let slice = self
            .store
            .read_all(options)
            .await
            .map_err(|error| format!("reading the new events from $all failed: {error}"))?;
        let new = &self.model.events[known..];
        if slice.events.len() != new.len() {
            let model: Vec<String> = new
                .iter()
                .map(|event| format!("{}@{} {}", event.stream, event.revision, event.event_type))
                .collect();
            return Err(format!(
                "$all from position {from} (with system events) shows {} new event(s) after \
                 this operation, the model wrote {}:\nstore: {}\nmodel: {model:?}",
                slice.events.len(),
                new.len(),
                show_events(&slice.events),
            ));
        }
        for (offset, recorded) in slice.events.iter().enumerate() {
            let index = known + offset;
            let previous = self.positions.last().copied().unwrap_or(Position(0));
            if recorded.position <= previous || recorded.position >= Position::MAX {
                return Err(format!(
                    "new event {} has position {}, not between the previous position {previous} \
                     and 2^63",
                    show_event(recorded),
                    recorded.position
                ));
            }
            let previous_time = self.recorded_at.last().copied();
            let time_ok = match previous_time {
                // All events of one write share one recorded time.
                Some(time) if offset > 0 => recorded.recorded_at == time,
                Some(time) => recorded.recorded_at >= time,
                None => true,
            };
            if !time_ok {
                return Err(format!(
                    "new event {} is recorded at {:?}, after an event recorded at {:?} (one \
                     time per append, never decreasing)",
                    show_event(recorded),
                    recorded.recorded_at,
                    previous_time
                ));
            }
            let event = &mut self.model.events[index];
            if event.id.is_none() {
                event.id = Some(recorded.id);
            }
            compare_content(recorded, event)?;
            self.positions.push(recorded.position);
            self.recorded_at.push(recorded.recorded_at);
        }
        Ok(())
    }

    /// Compares events a read returned with the model's, field by field.
    fn compare_events(&self, store: &[RecordedEvent], model: &[u64]) -> Result<(), String> {
        if store.len() != model.len() {
            return Err(format!(
                "the store returned {} event(s), the model {}",
                store.len(),
                model.len()
            ));
        }
        for (recorded, position) in store.iter().zip(model) {
            let index = *position as usize - 1;
            compare_content(recorded, &self.model.events[index])?;
            if recorded.position != self.positions[index] {
                return Err(format!(
                    "{} is at position {}, but it was written at {}",
                    show_event(recorded),
                    recorded.position,
                    self.positions[index]
                ));
            }
            if recorded.recorded_at != self.recorded_at[index] {
                return Err(format!(
                    "{} is recorded at {:?}, but $all showed {:?} after it was written",
                    show_event(recorded),
                    recorded.recorded_at,
                    self.recorded_at[index]
                ));
            }
        }
        Ok(())
    }
}

/// Compares the parts of an event the model knows: id, stream, revision, type and content.
fn compare_content(recorded: &RecordedEvent, model: &ModelEvent) -> Result<(), String> {
    let what = show_event(recorded);
    let differ = |field: &str, store: String, model: String| {
        Err(format!(
            "{what}: the {field} is {store}, the model says {model}"
        ))
    };
    if Some(recorded.id) != model.id {
        let model_id = model
            .id
            .map_or_else(|| "not known yet".to_owned(), short_id);
        return differ("id", short_id(recorded.id), model_id);
    }
    if recorded.stream != model.stream {
        return differ(
            "stream",
            recorded.stream.to_string(),
            model.stream.to_string(),
        );
    }
    if recorded.revision != model.revision {
        return differ(
            "revision",
            recorded.revision.to_string(),
            model.revision.to_string(),
        );
    }
    if recorded.event_type != model.event_type {
        return differ(
            "event type",
            recorded.event_type.to_string(),
            model.event_type.clone(),
        );
    }
    match &model.body {
        Body::Proposed(proposed) => {
            let fields = [
                (
                    "schema version",
                    recorded.schema_version.to_string(),
                    proposed.schema_version.to_string(),
                ),
                (
                    "content type",
                    recorded.content_type.to_string(),
                    proposed.content_type.clone(),
                ),
                (
                    "data",
                    format!("{:?}", recorded.data),
                    format!("{:?}", proposed.data),
                ),
                (
                    "metadata",
                    format!("{:?}", recorded.metadata),
                    format!("{:?}", proposed.metadata),
                ),
                (
                    "tags",
                    format!("{:?}", recorded.tags),
                    format!("{:?}", proposed.tags),
                ),
            ];
            for (field, store, model) in fields {
                if store != model {
                    return differ(field, store, model);
                }
            }
        }
        Body::Metadata(metadata) => match StreamMetadata::from_json(&recorded.data) {
            Ok(stored) if stored == *metadata => {}
            stored => return differ("metadata", format!("{stored:?}"), format!("{metadata:?}")),
        },
        Body::Marker => {}
    }
    Ok(())
}

/// Compares the success or failure of an operation, and for failures the error kind (and for
/// `WrongExpectedRevision`, the expectation and the actual state reported).
fn compare<T, M>(
    store: &Result<T, Error>,
    model: &Result<M, Error>,
    line: &str,
) -> Result<(), String> {
    match (store, model) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(store), Err(model)) => {
            if store.kind() != model.kind() {
                return Err(format!(
                    "{line}: the store failed with {}, the model with {}",
                    store.kind(),
                    model.kind()
                ));
            }
            if let (
                Error::WrongExpectedRevision {
                    expected: store_expected,
                    actual: store_actual,
                    ..
                },
                Error::WrongExpectedRevision {
                    expected: model_expected,
                    actual: model_actual,
                    ..
                },
            ) = (store, model)
                && (store_expected != model_expected || store_actual != model_actual)
            {
                return Err(format!(
                    "{line}: the store reported expected {store_expected}, actual \
                     {store_actual}; the model expected {model_expected}, actual {model_actual}"
                ));
            }
            Ok(())
        }
        (Ok(_), Err(model)) => Err(format!(
            "{line}: the store succeeded, the model failed with {model}"
        )),
        (Err(store), Ok(_)) => Err(format!(
            "{line}: the store failed with {store}, the model succeeded"
        )),
    }
}

fn show_result<T>(result: &Result<T, Error>, show: impl Fn(&T) -> String) -> String {
    match result {
        Ok(value) => show(value),
        Err(error) => format!("Err({})", error.kind()),
    }
}

fn show_event(event: &RecordedEvent) -> String {
    format!(
        "{}@{} #{} {} (id {})",
        event.stream,
        event.revision,
        event.position,
        event.event_type,
        short_id(event.id)
    )
}

fn show_events(events: &[RecordedEvent]) -> String {
    let shown: Vec<String> = events.iter().map(show_event).collect();
    format!("[{}]", shown.join(", "))
}

/// The test's ids are small numbers; the store's own are long.
fn short_id(id: EventId) -> String {
    let value = id.0.as_u128();
    if value < 1 << 32 {
        value.to_string()
    } else {
        id.to_string()
    }
}
