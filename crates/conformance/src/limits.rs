//! Conformance cases: bad input gets a clear error and changes nothing.
//!
//! The reference is `factum_core::rules::validate_append` and `StreamName::new`. Every refused
//! append is checked through `rejected`, which also checks that neither `head()` nor the
//! stream moved.

use std::sync::Arc;

use bytes::Bytes;
use factum_core::{
    CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, Error, EventStore, ExpectedRevision, Limits,
    METADATA_EVENT_TYPE, Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent,
    StreamMetadata, StreamName,
};

use crate::support::{assert_recorded_as_proposed, event, events, stream};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(invalid_stream_names_are_refused),
        case!(stream_name_limit_counts_bytes_not_characters),
        case!(longest_stream_name_is_usable),
        case!(empty_event_type_is_invalid),
        case!(event_type_over_255_bytes_is_invalid),
        case!(event_type_of_255_bytes_is_accepted),
        case!(dollar_event_types_are_reserved),
        case!(schema_version_zero_is_invalid),
        case!(content_type_must_be_1_to_255_bytes),
        case!(too_many_tags_are_invalid),
        case!(empty_or_oversized_tags_are_invalid),
        case!(event_over_the_size_limit_is_event_too_large),
        case!(event_exactly_at_the_size_limit_is_accepted),
        case!(append_over_the_size_limit_is_append_too_large),
        case!(append_of_too_many_events_is_append_too_large),
        case!(empty_append_is_invalid_request),
        case!(same_id_twice_in_one_append_is_invalid_request),
        case!(metadata_stream_takes_only_metadata_events),
        case!(metadata_stream_takes_only_valid_metadata_json),
        case!(invalid_event_in_the_middle_rejects_the_whole_batch),
        case!(input_is_checked_before_the_expected_revision),
        case!(refused_append_uses_up_no_revision),
    ]
}

/// The stream's events, or `None` if it reads as not found.
async fn contents<S: EventStore>(store: &S, stream: &StreamName) -> Option<Vec<RecordedEvent>> {
    match store
        .read_stream(stream, ReadStreamOptions::forwards())
        .await
    {
        Ok(events) => Some(events),
        Err(Error::StreamNotFound { .. }) => None,
        Err(error) => panic!("reading {stream} failed: {error}"),
    }
}

async fn head<S: EventStore>(store: &S) -> Position {
    store.head().await.expect("head() answers")
}

/// Appends `events` to `stream` with `Any`, expects a refusal, checks that neither `head()`
/// nor the stream changed, and returns the error.
async fn rejected<S: EventStore>(
    store: &S,
    stream: &StreamName,
    events: Vec<ProposedEvent>,
) -> Error {
    let head_before = head(store).await;
    let before = contents(store, stream).await;
    let error = match store.append(stream, ExpectedRevision::Any, events).await {
        Ok(result) => panic!("the append to {stream} was accepted: {result:?}"),
        Err(error) => error,
    };
    assert_eq!(
        head(store).await,
        head_before,
        "a refused append moved the head ({error})"
    );
    assert_eq!(
        contents(store, stream).await,
        before,
        "a refused append changed the stream ({error})"
    );
    error
}

/// Asserts `error` is `InvalidEvent` for the event at `index`.
#[track_caller]
fn assert_invalid_event(error: Error, index: usize) {
    match error {
        Error::InvalidEvent { index: got, .. } => assert_eq!(got, index, "the refused event"),
        other => panic!("expected InvalidEvent at index {index}, got {other:?}"),
    }
}

/// Asserts `error` is `InvalidRequest`.
#[track_caller]
fn assert_invalid_request(error: Error) {
    assert!(
        matches!(error, Error::InvalidRequest { .. }),
        "expected InvalidRequest, got {error:?}"
    );
}

/// A stream holding two events, so refusals can be checked against existing content too.
async fn seeded<S: EventStore>(store: &S, prefix: &str) -> StreamName {
    let stream = stream(prefix);
    store
        .append(&stream, ExpectedRevision::NoStream, events("Seeded", 0, 2))
        .await
        .expect("seeding a stream");
    stream
}

/// Appends one event, which must be accepted, and checks it reads back as proposed.
async fn accepted<S: EventStore>(store: &S, stream: &StreamName, proposed: ProposedEvent) {
    let result = store
        .append(stream, ExpectedRevision::Any, vec![proposed.clone()])
        .await
        .unwrap_or_else(|error| panic!("the append to {stream} was refused: {error}"));
    let recorded = contents(store, stream).await.expect("the stream exists");
    let last = recorded.last().expect("the stream has events");
    assert_eq!(last.position, result.position);
    assert_recorded_as_proposed(last, &proposed);
}

/// Stream names that are empty, over 255 bytes, `$all`, contain control characters or are
/// malformed metadata names are refused with `InvalidStreamName`.
async fn invalid_stream_names_are_refused<S: EventStore>(store: Arc<S>) {
    let too_long = "a".repeat(StreamName::BYTES_MAX + 1);
    let too_long_metadata = format!("$${too_long}");
    let names = [
        "",
        too_long.as_str(),
        too_long_metadata.as_str(),
        "$all",
        "$$$all",
        "$$",
        "$$$$account",
        "tab\there",
        "line\nbreak",
        "nul\0",
        "escape\u{1b}[0m",
        "delete\u{7f}",
    ];
    for name in names {
        match StreamName::new(name) {
            Err(Error::InvalidStreamName { .. }) => {}
            other => panic!("{name:?}: expected InvalidStreamName, got {other:?}"),
        }
    }
    assert_eq!(
        head(&*store).await,
        Position::START,
        "nothing reached the store"
    );
}

/// The 255-byte limit on stream names counts UTF-8 bytes, not characters.
async fn stream_name_limit_counts_bytes_not_characters<S: EventStore>(store: Arc<S>) {
    let two_byte_chars = "é".repeat(128);
    assert_eq!(two_byte_chars.len(), 256);
    let result = StreamName::new(&two_byte_chars);
    assert!(
        matches!(result, Err(Error::InvalidStreamName { .. })),
        "128 two-byte characters are 256 bytes: {result:?}"
    );
    let fits = format!("{}a", "é".repeat(127));
    let stream = StreamName::new(&fits).expect("255 bytes is within the limit");
    accepted(&*store, &stream, event("Named", 0)).await;
}

/// A stream name of exactly 255 bytes works for appends and reads, and so does its 257-byte
/// metadata stream.
async fn longest_stream_name_is_usable<S: EventStore>(store: Arc<S>) {
    let name = "n".repeat(StreamName::BYTES_MAX);
    let stream = StreamName::new(&name).expect("255 bytes is within the limit");
    accepted(&*store, &stream, event("Named", 0)).await;
    let mut metadata = StreamMetadata::default();
    metadata.custom.insert("owner".into(), "alice".into());
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &metadata)
        .await
        .expect("the metadata stream of the longest name is usable");
    let read = store
        .stream_metadata(&stream)
        .await
        .expect("reading metadata");
    assert_eq!(read.metadata, metadata);
}

/// An empty event type is `InvalidEvent`.
async fn empty_event_type_is_invalid<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-empty-type").await;
    let error = rejected(&*store, &stream, vec![event("", 0)]).await;
    assert_invalid_event(error, 0);
}

/// An event type over 255 bytes (also when counted in multi-byte characters) is
/// `InvalidEvent`.
async fn event_type_over_255_bytes_is_invalid<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-long-type").await;
    let too_long = "T".repeat(Limits::EVENT_TYPE_BYTES_MAX + 1);
    assert_invalid_event(
        rejected(&*store, &stream, vec![event(&too_long, 0)]).await,
        0,
    );
    let wide = "é".repeat(128);
    assert_invalid_event(rejected(&*store, &stream, vec![event(&wide, 0)]).await, 0);
}

/// An event type of exactly 255 bytes is accepted and read back whole.
async fn event_type_of_255_bytes_is_accepted<S: EventStore>(store: Arc<S>) {
    let stream = stream("limits-longest-type");
    let longest = "T".repeat(Limits::EVENT_TYPE_BYTES_MAX);
    accepted(&*store, &stream, event(&longest, 0)).await;
}

/// Event types starting with `$` are reserved for the store, `$metadata` included, outside
/// metadata streams.
async fn dollar_event_types_are_reserved<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-dollar-type").await;
    for event_type in ["$custom", "$", METADATA_EVENT_TYPE, "$streamDeleted"] {
        let error = rejected(&*store, &stream, vec![event(event_type, 0)]).await;
        assert_invalid_event(error, 0);
    }
}

/// Schema versions start at 1: version 0 is `InvalidEvent`.
async fn schema_version_zero_is_invalid<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-schema-zero").await;
    let error = rejected(&*store, &stream, vec![event("E", 0).with_schema_version(0)]).await;
    assert_invalid_event(error, 0);
}

/// The content type must be 1 to 255 bytes; both bounds are accepted.
async fn content_type_must_be_1_to_255_bytes<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-content-type").await;
    let empty = ProposedEvent::new("E", "", b"{}".to_vec());
    assert_invalid_event(rejected(&*store, &stream, vec![empty]).await, 0);
    let too_long = "c".repeat(Limits::CONTENT_TYPE_BYTES_MAX + 1);
    let long = ProposedEvent::new("E", too_long, b"{}".to_vec());
    assert_invalid_event(rejected(&*store, &stream, vec![long]).await, 0);

    accepted(
        &*store,
        &stream,
        ProposedEvent::new("E", "c", b"{}".to_vec()),
    )
    .await;
    let longest = "c".repeat(Limits::CONTENT_TYPE_BYTES_MAX);
    accepted(
        &*store,
        &stream,
        ProposedEvent::new("E", longest, b"{}".to_vec()),
    )
    .await;
}

/// More than 16 tags on one event is `InvalidEvent`; exactly 16 is accepted.
async fn too_many_tags_are_invalid<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-tag-count").await;
    let tags = |count: usize| (0..count).map(|n| format!("tag-{n}")).collect::<Vec<_>>();
    let crowded = event("E", 0).with_tags(tags(Limits::TAGS_PER_EVENT_MAX + 1));
    assert_invalid_event(rejected(&*store, &stream, vec![crowded]).await, 0);
    accepted(
        &*store,
        &stream,
        event("E", 0).with_tags(tags(Limits::TAGS_PER_EVENT_MAX)),
    )
    .await;
}

/// A tag must be 1 to 128 bytes: an empty or 129-byte tag is `InvalidEvent`; a 128-byte tag
/// is accepted.
async fn empty_or_oversized_tags_are_invalid<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-tag-size").await;
    let empty = event("E", 0).with_tags(["fine", ""]);
    assert_invalid_event(rejected(&*store, &stream, vec![empty]).await, 0);
    let oversized = event("E", 0).with_tags(["t".repeat(Limits::TAG_BYTES_MAX + 1)]);
    assert_invalid_event(rejected(&*store, &stream, vec![oversized]).await, 0);
    accepted(
        &*store,
        &stream,
        event("E", 0).with_tags(["t".repeat(Limits::TAG_BYTES_MAX)]),
    )
    .await;
}

/// An event of exactly `size_bytes` bytes as the limits count them.
fn event_of_size(event_type: &str, size_bytes: usize) -> ProposedEvent {
    let overhead = event_type.len() + CONTENT_TYPE_BYTES.len();
    assert!(size_bytes > overhead, "the limit leaves room for a type");
    let proposed = ProposedEvent::bytes(event_type, vec![0xa5; size_bytes - overhead]);
    assert_eq!(proposed.size_bytes(), size_bytes);
    proposed
}

/// An event over `event_size_bytes_max` is `EventTooLarge`, naming its index in the append,
/// its size and the limit.
async fn event_over_the_size_limit_is_event_too_large<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-event-size").await;
    let limit = store.limits().event_size_bytes_max;
    let batch = vec![
        event("Small", 0),
        event_of_size("Large", limit + 1),
        event("Small", 1),
    ];
    match rejected(&*store, &stream, batch).await {
        Error::EventTooLarge {
            index,
            size_bytes,
            max_bytes,
        } => {
            assert_eq!(index, 1, "the oversized event");
            assert_eq!(size_bytes, limit + 1);
            assert_eq!(max_bytes, limit);
        }
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
}

/// An event of exactly `event_size_bytes_max` bytes is accepted and read back whole.
async fn event_exactly_at_the_size_limit_is_accepted<S: EventStore>(store: Arc<S>) {
    let stream = stream("limits-event-at-limit");
    let limit = store.limits().event_size_bytes_max;
    accepted(&*store, &stream, event_of_size("Large", limit)).await;
}

/// An append over `append_size_bytes_max`, made of events each within the event limit, is
/// `AppendTooLarge`, reporting its size, its event count and the limit.
async fn append_over_the_size_limit_is_append_too_large<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-append-size").await;
    let limits = store.limits().clone();
    let event_size_bytes = limits
        .event_size_bytes_max
        .min(limits.append_size_bytes_max);
    let count = limits.append_size_bytes_max / event_size_bytes + 1;
    let template = event_of_size("Chunk", event_size_bytes);
    // One shared buffer: the append is large, the test's memory need not be.
    let data: Bytes = template.data.clone();
    let batch: Vec<ProposedEvent> = (0..count)
        .map(|_| ProposedEvent::bytes("Chunk", data.clone()))
        .collect();
    let size_bytes: usize = batch.iter().map(ProposedEvent::size_bytes).sum();
    assert!(size_bytes > limits.append_size_bytes_max);
    match rejected(&*store, &stream, batch).await {
        Error::AppendTooLarge {
            size_bytes: reported,
            event_count,
            max_bytes,
            ..
        } => {
            assert_eq!(reported, size_bytes);
            assert_eq!(event_count, count);
            assert_eq!(max_bytes, limits.append_size_bytes_max);
        }
        other => panic!("expected AppendTooLarge, got {other:?}"),
    }
}

/// An append of more than `EVENTS_PER_APPEND_MAX` events, however small, is `AppendTooLarge`.
async fn append_of_too_many_events_is_append_too_large<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-append-count").await;
    let count = Limits::EVENTS_PER_APPEND_MAX + 1;
    let batch: Vec<ProposedEvent> = (0..count)
        .map(|_| ProposedEvent::bytes("T", Bytes::new()))
        .collect();
    match rejected(&*store, &stream, batch).await {
        Error::AppendTooLarge { event_count, .. } => assert_eq!(event_count, count),
        other => panic!("expected AppendTooLarge, got {other:?}"),
    }
}

/// An append without events is `InvalidRequest`, to a new or an existing stream, whatever
/// the expected revision.
async fn empty_append_is_invalid_request<S: EventStore>(store: Arc<S>) {
    let existing = seeded(&*store, "limits-empty-existing").await;
    let missing = stream("limits-empty-missing");
    assert_invalid_request(rejected(&*store, &existing, Vec::new()).await);
    assert_invalid_request(rejected(&*store, &missing, Vec::new()).await);
    for expected in [ExpectedRevision::NoStream, ExpectedRevision::Exact(1)] {
        let result = store.append(&existing, expected, Vec::new()).await;
        match result {
            Err(error) => assert_invalid_request(error),
            Ok(result) => panic!("an empty append with {expected} was accepted: {result:?}"),
        }
    }
    assert_eq!(
        contents(&*store, &existing)
            .await
            .map(|events| events.len()),
        Some(2)
    );
}

/// The same event id twice in one append is `InvalidRequest`, also when the two events differ
/// otherwise.
async fn same_id_twice_in_one_append_is_invalid_request<S: EventStore>(store: Arc<S>) {
    let existing = seeded(&*store, "limits-duplicate-id").await;
    let first = event("E", 0);
    let twin = event("Other", 1).with_id(first.id);
    let batch = vec![first, event("E", 2), twin];
    assert_invalid_request(rejected(&*store, &existing, batch).await);
    let missing = stream("limits-duplicate-id-new");
    let repeated = event("E", 0);
    assert_invalid_request(rejected(&*store, &missing, vec![repeated.clone(), repeated]).await);
}

/// A metadata stream `$$s` takes only `$metadata` events: anything else is `InvalidEvent`.
async fn metadata_stream_takes_only_metadata_events<S: EventStore>(store: Arc<S>) {
    let base = seeded(&*store, "limits-metadata-type").await;
    let metadata_stream = base
        .metadata_stream()
        .expect("a stream has a metadata stream");
    let valid_json = br#"{"owner":"alice"}"#.to_vec();
    for event_type in ["SomethingHappened", "$streamDeleted", "$metadataX", ""] {
        let other = ProposedEvent::new(event_type, CONTENT_TYPE_JSON, valid_json.clone());
        assert_invalid_event(rejected(&*store, &metadata_stream, vec![other]).await, 0);
    }
    let good = ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, valid_json.clone());
    let mixed = vec![good, event("SomethingHappened", 0)];
    assert_invalid_event(rejected(&*store, &metadata_stream, mixed).await, 1);

    // The refusals left no metadata behind, and a proper `$metadata` event is accepted.
    let current = store
        .stream_metadata(&base)
        .await
        .expect("reading metadata");
    assert_eq!(current.metadata, StreamMetadata::default());
    let good = ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, valid_json);
    accepted(&*store, &metadata_stream, good).await;
}

/// A `$metadata` event must hold a JSON object with well-typed `$` keys: invalid JSON, a JSON
/// array or a `$maxCount` that is not a number is `InvalidEvent`.
async fn metadata_stream_takes_only_valid_metadata_json<S: EventStore>(store: Arc<S>) {
    let base = seeded(&*store, "limits-metadata-json").await;
    let metadata_stream = base
        .metadata_stream()
        .expect("a stream has a metadata stream");
    let bad: [&[u8]; 6] = [
        b"{not json",
        b"",
        b"[1, 2]",
        b"\"text\"",
        br#"{"$maxCount":"ten"}"#,
        &[0xff, 0xfe],
    ];
    for data in bad {
        let proposed = ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, data.to_vec());
        assert_invalid_event(rejected(&*store, &metadata_stream, vec![proposed]).await, 0);
    }
    let current = store
        .stream_metadata(&base)
        .await
        .expect("reading metadata");
    assert_eq!(current.metadata, StreamMetadata::default());
    assert_eq!(
        contents(&*store, &base).await.map(|events| events.len()),
        Some(2),
        "the stream itself is untouched"
    );
}

/// One invalid event in the middle of a batch refuses the whole batch: none of the valid
/// events before or after it is written, to an existing or a new stream.
async fn invalid_event_in_the_middle_rejects_the_whole_batch<S: EventStore>(store: Arc<S>) {
    let existing = seeded(&*store, "limits-middle-existing").await;
    let missing = stream("limits-middle-missing");
    let limit = store.limits().event_size_bytes_max;
    for target in [&existing, &missing] {
        let reserved = vec![
            event("E", 0),
            event("E", 1),
            event("$reserved", 2),
            event("E", 3),
        ];
        assert_invalid_event(rejected(&*store, target, reserved).await, 2);
        let versionless = vec![
            event("E", 0),
            event("E", 1).with_schema_version(0),
            event("E", 2),
        ];
        assert_invalid_event(rejected(&*store, target, versionless).await, 1);
        let oversized = vec![
            event("E", 0),
            event_of_size("Large", limit + 1),
            event("E", 2),
        ];
        let error = rejected(&*store, target, oversized).await;
        assert!(
            matches!(error, Error::EventTooLarge { index: 1, .. }),
            "expected EventTooLarge at index 1, got {error:?}"
        );
    }
    assert_eq!(
        contents(&*store, &missing).await,
        None,
        "the new stream was not created"
    );
}

/// Input is checked before the expected revision: an invalid append with a wrong expectation
/// reports the input error, not `WrongExpectedRevision`.
async fn input_is_checked_before_the_expected_revision<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-before-expected").await;
    let result = store
        .append(&stream, ExpectedRevision::Exact(7), vec![event("", 0)])
        .await;
    match result {
        Err(error) => assert_invalid_event(error, 0),
        Ok(result) => panic!("the append was accepted: {result:?}"),
    }
    let result = store
        .append(&stream, ExpectedRevision::NoStream, Vec::new())
        .await;
    match result {
        Err(error) => assert_invalid_request(error),
        Ok(result) => panic!("the empty append was accepted: {result:?}"),
    }
}

/// A refused append uses up no revision and no position: the next valid append continues
/// right after the stream's last event, and `head()` is its position.
async fn refused_append_uses_up_no_revision<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "limits-no-gap").await;
    rejected(&*store, &stream, vec![event("E", 2), event("", 3)]).await;
    rejected(&*store, &stream, vec![event("E", 2).with_schema_version(0)]).await;
    let result = store
        .append(&stream, ExpectedRevision::Exact(1), vec![event("E", 2)])
        .await
        .expect("a valid append after refusals");
    assert_eq!(result.revision, 2, "revisions stay gapless");
    assert_eq!(head(&*store).await, result.position);
    let all = store
        .read_all(ReadAllOptions::forwards())
        .await
        .expect("$all reads");
    assert_eq!(
        all.events.len(),
        3,
        "only the seeded events and the valid one"
    );
}
