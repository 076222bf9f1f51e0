//! Conformance cases for stream metadata: the `$metadata` events of `$$stream`, read and
//! written with optimistic concurrency, and the rules the store honours on stream reads
//! (`$maxCount`, `$maxAge`, `$tb`) without changing or removing anything in the log.

use std::sync::Arc;
use std::time::Duration;

use factum_core::{
    CONTENT_TYPE_JSON, CurrentRevision, EventStore, ExpectedRevision, METADATA_EVENT_TYPE,
    Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamMetadata,
    StreamName, StreamStart,
};
use serde_json::{Value, json};

use crate::support::{
    assert_error_kind, assert_wrong_expected, event, events, number, revisions, stream,
};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(a_stream_without_metadata_has_the_default),
        case!(set_then_get_round_trips_every_key),
        case!(unknown_keys_written_as_raw_json_are_kept),
        case!(setting_metadata_twice_with_no_stream_conflicts),
        case!(setting_metadata_with_the_revision_from_get_succeeds),
        case!(metadata_set_before_the_stream_exists_applies_once_written),
        case!(max_count_keeps_only_the_newest_events_forwards),
        case!(max_count_keeps_only_the_newest_events_backwards),
        case!(max_count_zero_hides_every_event_but_the_stream_exists),
        case!(truncate_before_hides_lower_revisions),
        case!(truncate_before_past_the_last_revision_reads_as_not_found),
        case!(the_stricter_of_truncate_before_and_max_count_wins),
        case!(max_age_hides_events_recorded_longer_ago),
        case!(lifting_max_count_makes_events_visible_again),
        case!(truncation_never_changes_revisions_or_positions),
        case!(metadata_is_stored_as_metadata_events_in_the_metadata_stream),
        case!(metadata_streams_have_no_metadata_of_their_own),
        case!(metadata_streams_take_only_valid_metadata_events),
    ]
}

/// A stream with `count` events numbered from 0.
async fn written<S: EventStore>(store: &Arc<S>, prefix: &str, count: u64) -> StreamName {
    let stream = stream(prefix);
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 0, count),
        )
        .await
        .unwrap_or_else(|error| panic!("append to {stream} failed: {error}"));
    stream
}

/// Sets metadata with `ExpectedRevision::Any`, failing the case on an error.
async fn set<S: EventStore>(store: &Arc<S>, stream: &StreamName, metadata: StreamMetadata) {
    store
        .set_stream_metadata(stream, ExpectedRevision::Any, &metadata)
        .await
        .unwrap_or_else(|error| panic!("setting metadata of {stream} failed: {error}"));
}

fn max_count(max_count: u64) -> StreamMetadata {
    StreamMetadata {
        max_count: Some(max_count),
        ..StreamMetadata::default()
    }
}

fn truncate_before(truncate_before: u64) -> StreamMetadata {
    StreamMetadata {
        truncate_before: Some(truncate_before),
        ..StreamMetadata::default()
    }
}

async fn read<S: EventStore>(
    store: &Arc<S>,
    stream: &StreamName,
    options: ReadStreamOptions,
) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, options)
        .await
        .unwrap_or_else(|error| panic!("read of {stream} with {options:?} failed: {error}"))
}

/// Asserts a stream read returns exactly these revisions, in this order.
async fn check_read<S: EventStore>(
    store: &Arc<S>,
    stream: &StreamName,
    options: ReadStreamOptions,
    expected: &[u64],
) {
    let events = read(store, stream, options).await;
    assert_eq!(
        revisions(&events),
        expected,
        "{stream} read with {options:?}"
    );
}

fn backwards_from_start() -> ReadStreamOptions {
    ReadStreamOptions {
        from: StreamStart::Start,
        ..ReadStreamOptions::backwards()
    }
}

/// A stream without metadata, written or not, has the default metadata and
/// `CurrentRevision::NoStream`.
async fn a_stream_without_metadata_has_the_default<S: EventStore>(store: Arc<S>) {
    let never_written = stream("metadata-none");
    let written = written(&store, "metadata-none-written", 2).await;
    for stream in [never_written, written] {
        let result = store.stream_metadata(&stream).await.expect("metadata");
        assert_eq!(result.metadata, StreamMetadata::default(), "{stream}");
        assert_eq!(result.revision, CurrentRevision::NoStream, "{stream}");
    }
}

/// What is set is what is read back: `$maxCount`, `$maxAge`, `$tb`, `$acl` and custom keys,
/// at the metadata stream's revision the write returned.
async fn set_then_get_round_trips_every_key<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "metadata-round-trip", 3).await;
    let mut custom = serde_json::Map::new();
    custom.insert("owner".into(), json!("team-a"));
    custom.insert(
        "retention".into(),
        json!({"tier": "gold", "days": [7, 30], "legal_hold": false}),
    );
    let metadata = StreamMetadata {
        max_count: Some(50),
        max_age: Some(Duration::from_secs(3600)),
        truncate_before: Some(1),
        acl: Some(json!({"$r": ["ops", "audit"], "$w": "writer"})),
        custom,
    };
    let result = store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &metadata)
        .await
        .expect("set metadata");
    assert_eq!(result.revision, 0, "the first metadata event");
    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.metadata, metadata);
    assert_eq!(got.revision, CurrentRevision::Current(0));
}

/// Keys the store does not know, written as raw JSON in a `$metadata` event, are kept, also
/// when the metadata is read, changed and written back.
async fn unknown_keys_written_as_raw_json_are_kept<S: EventStore>(store: Arc<S>) {
    let stream = stream("metadata-raw");
    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    let raw = br#"{"$maxCount":3,"owner":"team-a","nested":{"a":[1,2]},"$custom":true}"#;
    store
        .append(
            &metadata_stream,
            ExpectedRevision::NoStream,
            vec![ProposedEvent::new(
                METADATA_EVENT_TYPE,
                CONTENT_TYPE_JSON,
                raw.to_vec(),
            )],
        )
        .await
        .expect("a raw $metadata event");

    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.metadata.max_count, Some(3));
    assert_eq!(got.revision, CurrentRevision::Current(0));
    assert_eq!(got.metadata.custom.len(), 3, "{:?}", got.metadata.custom);
    assert_eq!(got.metadata.custom["owner"], json!("team-a"));
    assert_eq!(got.metadata.custom["nested"], json!({"a": [1, 2]}));
    assert_eq!(got.metadata.custom["$custom"], json!(true));

    let changed = StreamMetadata {
        max_count: Some(4),
        ..got.metadata
    };
    store
        .set_stream_metadata(&stream, ExpectedRevision::Exact(0), &changed)
        .await
        .expect("write back");
    let newest = read(
        &store,
        &metadata_stream,
        ReadStreamOptions::backwards().limit(1),
    )
    .await;
    let json: Value = serde_json::from_slice(&newest[0].data).expect("metadata is JSON");
    assert_eq!(
        json,
        json!({"$maxCount": 4, "owner": "team-a", "nested": {"a": [1, 2]}, "$custom": true})
    );
}

/// Setting metadata with `NoStream` twice: the second is `WrongExpectedRevision` (the
/// metadata stream is at revision 0) and the first metadata stays.
async fn setting_metadata_twice_with_no_stream_conflicts<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "metadata-twice", 1).await;
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &max_count(5))
        .await
        .expect("the first write");
    assert_wrong_expected(
        store
            .set_stream_metadata(&stream, ExpectedRevision::NoStream, &max_count(9))
            .await,
        ExpectedRevision::NoStream,
        CurrentRevision::Current(0),
    );
    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.metadata, max_count(5));
    assert_eq!(got.revision, CurrentRevision::Current(0));
}

/// The revision `stream_metadata` returns is the expectation for the next write; a stale one
/// is `WrongExpectedRevision`; `Any` and `StreamExists` work once metadata exists.
async fn setting_metadata_with_the_revision_from_get_succeeds<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "metadata-optimistic", 1).await;
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &max_count(1))
        .await
        .expect("the first write");
    let got = store.stream_metadata(&stream).await.expect("metadata");
    let CurrentRevision::Current(revision) = got.revision else {
        panic!("metadata was written: {:?}", got.revision);
    };
    let result = store
        .set_stream_metadata(&stream, ExpectedRevision::Exact(revision), &max_count(2))
        .await
        .expect("the revision from get");
    assert_eq!(result.revision, revision + 1);
    assert_wrong_expected(
        store
            .set_stream_metadata(&stream, ExpectedRevision::Exact(revision), &max_count(3))
            .await,
        ExpectedRevision::Exact(revision),
        CurrentRevision::Current(revision + 1),
    );
    assert_eq!(
        store
            .stream_metadata(&stream)
            .await
            .expect("metadata")
            .metadata,
        max_count(2),
        "the stale write changed nothing"
    );
    store
        .set_stream_metadata(&stream, ExpectedRevision::StreamExists, &max_count(4))
        .await
        .expect("StreamExists");
    store
        .set_stream_metadata(&stream, ExpectedRevision::Any, &max_count(5))
        .await
        .expect("Any");
    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.metadata, max_count(5));
    assert_eq!(got.revision, CurrentRevision::Current(revision + 3));
}

/// Metadata may be set before its stream exists; it does not make the stream exist, and it
/// applies once the stream is written.
async fn metadata_set_before_the_stream_exists_applies_once_written<S: EventStore>(store: Arc<S>) {
    let stream = stream("metadata-early");
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &max_count(2))
        .await
        .expect("metadata of a stream not yet written");
    assert_error_kind(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    let result = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 0, 5),
        )
        .await
        .expect("the stream is still new");
    assert_eq!(result.revision, 4);
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[3, 4]).await;
}

/// `$maxCount` N: forwards reads return only the newest N events, whether they start before,
/// inside or past the visible range.
async fn max_count_keeps_only_the_newest_events_forwards<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "max-count-forwards", 10).await;
    set(&store, &stream, max_count(3)).await;
    let forwards = ReadStreamOptions::forwards;
    check_read(&store, &stream, forwards(), &[7, 8, 9]).await;
    check_read(&store, &stream, forwards().from_revision(0), &[7, 8, 9]).await;
    check_read(&store, &stream, forwards().from_revision(6), &[7, 8, 9]).await;
    check_read(&store, &stream, forwards().from_revision(7), &[7, 8, 9]).await;
    check_read(&store, &stream, forwards().from_revision(8), &[8, 9]).await;
    check_read(&store, &stream, forwards().from_revision(10), &[]).await;
    check_read(&store, &stream, forwards().limit(2), &[7, 8]).await;
    check_read(&store, &stream, forwards().from_revision(2).limit(1), &[7]).await;
    let events = read(&store, &stream, forwards()).await;
    assert_eq!(events.iter().map(number).collect::<Vec<_>>(), [7, 8, 9]);
}

/// `$maxCount` N: backwards reads return only the newest N events, newest first; from below
/// the visible range they return nothing.
async fn max_count_keeps_only_the_newest_events_backwards<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "max-count-backwards", 10).await;
    set(&store, &stream, max_count(3)).await;
    let backwards = ReadStreamOptions::backwards;
    check_read(&store, &stream, backwards(), &[9, 8, 7]).await;
    check_read(&store, &stream, backwards().from_revision(20), &[9, 8, 7]).await;
    check_read(&store, &stream, backwards().from_revision(8), &[8, 7]).await;
    check_read(&store, &stream, backwards().from_revision(7), &[7]).await;
    check_read(&store, &stream, backwards().from_revision(6), &[]).await;
    check_read(&store, &stream, backwards().from_revision(0), &[]).await;
    check_read(&store, &stream, backwards().limit(2), &[9, 8]).await;
    check_read(&store, &stream, backwards_from_start(), &[]).await;
}

/// `$maxCount` 0 hides every event, yet the stream still exists: reads return nothing (not
/// `StreamNotFound`) and `StreamExists` appends work.
async fn max_count_zero_hides_every_event_but_the_stream_exists<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "max-count-zero", 3).await;
    set(&store, &stream, max_count(0)).await;
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[]).await;
    check_read(&store, &stream, ReadStreamOptions::backwards(), &[]).await;
    let result = store
        .append(
            &stream,
            ExpectedRevision::StreamExists,
            vec![event("Happened", 3)],
        )
        .await
        .expect("the stream exists");
    assert_eq!(result.revision, 3);
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[]).await;
}

/// `$tb` T: revisions below T are not returned, in either direction; appends continue after
/// the last revision.
async fn truncate_before_hides_lower_revisions<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "truncate-before", 6).await;
    set(&store, &stream, truncate_before(4)).await;
    let (forwards, backwards) = (ReadStreamOptions::forwards, ReadStreamOptions::backwards);
    check_read(&store, &stream, forwards(), &[4, 5]).await;
    check_read(&store, &stream, forwards().from_revision(1), &[4, 5]).await;
    check_read(&store, &stream, forwards().from_revision(5), &[5]).await;
    check_read(&store, &stream, backwards(), &[5, 4]).await;
    check_read(&store, &stream, backwards().from_revision(4), &[4]).await;
    check_read(&store, &stream, backwards().from_revision(3), &[]).await;
    check_read(&store, &stream, backwards_from_start(), &[]).await;
    let result = store
        .append(
            &stream,
            ExpectedRevision::StreamExists,
            vec![event("Happened", 6)],
        )
        .await
        .expect("a truncated stream exists");
    assert_eq!(result.revision, 6);
    check_read(&store, &stream, forwards(), &[4, 5, 6]).await;
}

/// `$tb` past the last revision (what a soft delete writes) makes the stream read as not
/// found; `$tb` equal to the last revision leaves only the last event.
async fn truncate_before_past_the_last_revision_reads_as_not_found<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "truncate-all", 3).await;
    set(&store, &stream, truncate_before(2)).await;
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[2]).await;
    set(&store, &stream, truncate_before(3)).await;
    assert_error_kind(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    assert_error_kind(
        store
            .read_stream(&stream, ReadStreamOptions::backwards())
            .await,
        "stream_not_found",
    );
}

/// With both `$tb` and `$maxCount`, the stricter rule decides the first visible revision.
async fn the_stricter_of_truncate_before_and_max_count_wins<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "metadata-both", 10).await;
    let both = |truncate_before, max_count| StreamMetadata {
        truncate_before: Some(truncate_before),
        max_count: Some(max_count),
        ..StreamMetadata::default()
    };
    set(&store, &stream, both(2, 5)).await;
    check_read(
        &store,
        &stream,
        ReadStreamOptions::forwards(),
        &[5, 6, 7, 8, 9],
    )
    .await;
    set(&store, &stream, both(8, 5)).await;
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[8, 9]).await;
    check_read(&store, &stream, ReadStreamOptions::backwards(), &[9, 8]).await;
}

/// `$maxAge`: events recorded longer ago than it are hidden, newer ones are visible, and
/// lifting it shows everything again. (This case sleeps ~1.2 s, the suite's only long sleep.)
async fn max_age_hides_events_recorded_longer_ago<S: EventStore>(store: Arc<S>) {
    let stream = stream("max-age");
    let one_second = StreamMetadata {
        max_age: Some(Duration::from_secs(1)),
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &one_second)
        .await
        .expect("set $maxAge");
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 0, 3),
        )
        .await
        .expect("append");
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[0, 1, 2]).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    store
        .append(
            &stream,
            ExpectedRevision::Exact(2),
            vec![event("Happened", 3)],
        )
        .await
        .expect("append after the old events expired");
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[3]).await;
    // The limit counts visible events, so expired ones do not use it up.
    check_read(
        &store,
        &stream,
        ReadStreamOptions::forwards().limit(1),
        &[3],
    )
    .await;
    check_read(&store, &stream, ReadStreamOptions::backwards(), &[3]).await;
    check_read(
        &store,
        &stream,
        ReadStreamOptions::backwards().from_revision(2),
        &[],
    )
    .await;

    let in_all = store
        .read_all(ReadAllOptions::forwards())
        .await
        .expect("read $all");
    assert_eq!(revisions(&in_all.events), [0, 1, 2, 3], "$all keeps them");

    store
        .set_stream_metadata(
            &stream,
            ExpectedRevision::Exact(0),
            &StreamMetadata::default(),
        )
        .await
        .expect("lift $maxAge");
    check_read(
        &store,
        &stream,
        ReadStreamOptions::forwards(),
        &[0, 1, 2, 3],
    )
    .await;
}

/// Lifting `$maxCount` (setting metadata without it) makes the hidden events visible again,
/// unchanged: nothing was physically deleted.
async fn lifting_max_count_makes_events_visible_again<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "max-count-lifted", 5).await;
    let before = read(&store, &stream, ReadStreamOptions::forwards()).await;
    set(&store, &stream, max_count(2)).await;
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[3, 4]).await;
    set(
        &store,
        &stream,
        StreamMetadata {
            max_count: None,
            ..max_count(2)
        },
    )
    .await;
    assert_eq!(
        read(&store, &stream, ReadStreamOptions::forwards()).await,
        before,
        "every event is back, as it was"
    );
}

/// Truncation hides events without changing the revision, position or content of any event,
/// in stream reads or in `$all`; later appends continue the revisions.
async fn truncation_never_changes_revisions_or_positions<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "truncation-stable", 6).await;
    let before = read(&store, &stream, ReadStreamOptions::forwards()).await;
    set(&store, &stream, truncate_before(2)).await;
    assert_eq!(
        read(&store, &stream, ReadStreamOptions::forwards()).await,
        before[2..]
    );
    set(
        &store,
        &stream,
        StreamMetadata {
            max_count: Some(2),
            ..truncate_before(2)
        },
    )
    .await;
    assert_eq!(
        read(&store, &stream, ReadStreamOptions::forwards()).await,
        before[4..]
    );

    let result = store
        .append(
            &stream,
            ExpectedRevision::Exact(5),
            vec![event("Happened", 6)],
        )
        .await
        .expect("append after truncation");
    assert_eq!(result.revision, 6, "revisions continue");
    let after = read(&store, &stream, ReadStreamOptions::forwards()).await;
    assert_eq!(revisions(&after), [5, 6]);
    assert_eq!(after[0], before[5]);
    assert!(after[1].position > before[5].position);

    let in_all = store
        .read_all(ReadAllOptions::forwards())
        .await
        .expect("read $all")
        .events;
    assert_eq!(
        in_all[..6],
        before[..],
        "$all has the same events, unchanged"
    );
    assert_eq!(in_all[6], after[1]);
}

/// Metadata lives in `$$s` as ordinary `$metadata` events with JSON data, one per write,
/// readable with `read_stream`; `s`'s own rules do not apply to `$$s`; `$all` shows them
/// only with `include_system`.
async fn metadata_is_stored_as_metadata_events_in_the_metadata_stream<S: EventStore>(
    store: Arc<S>,
) {
    let stream = written(&store, "metadata-events", 3).await;
    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    let mut results = Vec::new();
    for (write, count) in [3u64, 2, 1].into_iter().enumerate() {
        let expected = match write {
            0 => ExpectedRevision::NoStream,
            _ => ExpectedRevision::Exact(write as u64 - 1),
        };
        let result = store
            .set_stream_metadata(&stream, expected, &max_count(count))
            .await
            .expect("set metadata");
        assert_eq!(result.revision, write as u64);
        results.push(result);
    }

    let stored = read(&store, &metadata_stream, ReadStreamOptions::forwards()).await;
    assert_eq!(
        revisions(&stored),
        [0, 1, 2],
        "$maxCount 1 of s does not cap $$s"
    );
    for ((event, count), result) in stored.iter().zip([3u64, 2, 1]).zip(&results) {
        assert_eq!(event.stream, metadata_stream);
        assert_eq!(event.event_type, METADATA_EVENT_TYPE);
        assert_eq!(event.content_type, CONTENT_TYPE_JSON);
        assert_eq!(event.position, result.position);
        let json: Value = serde_json::from_slice(&event.data).expect("metadata is JSON");
        assert_eq!(json, json!({"$maxCount": count}));
        assert_eq!(
            StreamMetadata::from_json(&event.data).expect("valid metadata"),
            max_count(count)
        );
    }
    let newest = read(
        &store,
        &metadata_stream,
        ReadStreamOptions::backwards().limit(1),
    )
    .await;
    assert_eq!(revisions(&newest), [2]);
    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.metadata, max_count(1));
    assert_eq!(got.revision, CurrentRevision::Current(2));
    check_read(&store, &stream, ReadStreamOptions::forwards(), &[2]).await;

    let default = store
        .read_all(ReadAllOptions::forwards())
        .await
        .expect("read $all");
    assert!(default.events.iter().all(|event| event.stream == stream));
    let with_system = store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("read $all");
    let in_all: Vec<RecordedEvent> = with_system
        .events
        .into_iter()
        .filter(|event| event.stream == metadata_stream)
        .collect();
    assert_eq!(
        in_all, stored,
        "the same events in $all, with include_system"
    );
}

/// A metadata stream has no metadata of its own: reading or setting the metadata of `$$s` is
/// `InvalidRequest`, and writes nothing.
async fn metadata_streams_have_no_metadata_of_their_own<S: EventStore>(store: Arc<S>) {
    let stream = written(&store, "metadata-of-metadata", 1).await;
    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    assert_error_kind(
        store.stream_metadata(&metadata_stream).await,
        "invalid_request",
    );
    assert_error_kind(
        store
            .set_stream_metadata(&metadata_stream, ExpectedRevision::Any, &max_count(1))
            .await,
        "invalid_request",
    );
    let head = store.head().await.expect("head");
    let with_system = store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("read $all");
    assert_eq!(with_system.events.len(), 1, "only the stream's own event");
    assert_eq!(with_system.events[0].position, head);
}

/// A metadata stream takes only `$metadata` events whose data is a JSON object with
/// well-typed known keys (`InvalidEvent` otherwise, nothing written), and a user stream
/// refuses `$metadata` events.
async fn metadata_streams_take_only_valid_metadata_events<S: EventStore>(store: Arc<S>) {
    let stream = stream("metadata-invalid");
    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    let metadata_event =
        |data: &str| ProposedEvent::new(METADATA_EVENT_TYPE, CONTENT_TYPE_JSON, data.to_owned());
    let refused: Vec<Vec<ProposedEvent>> = vec![
        vec![event("SomethingHappened", 0)],
        vec![metadata_event("[1]")],
        vec![metadata_event("not json")],
        vec![metadata_event(r#"{"$maxCount":"ten"}"#)],
        vec![metadata_event(r#"{"$tb":-1}"#)],
        // One bad event refuses the whole append.
        vec![metadata_event("{}"), metadata_event(r#"{"$maxAge":1.5}"#)],
    ];
    for events in refused {
        let description = format!("{events:?}");
        let result = store
            .append(&metadata_stream, ExpectedRevision::Any, events)
            .await;
        assert!(
            matches!(result, Err(factum_core::Error::InvalidEvent { .. })),
            "{description}: {result:?}"
        );
    }
    assert_error_kind(
        store
            .append(&stream, ExpectedRevision::Any, vec![metadata_event("{}")])
            .await,
        "invalid_event",
    );
    assert_eq!(
        store.head().await.expect("head"),
        Position(0),
        "nothing written"
    );
    let got = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(got.revision, CurrentRevision::NoStream);
}
