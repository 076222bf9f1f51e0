//! Conformance cases for soft delete and tombstone, as decided by `rules::plan_delete`.
//!
//! A soft delete is stream metadata (`$tb` just past the last revision): the stream reads as
//! not found until a later append brings it back with its revisions continued. A tombstone is
//! final: a `$streamDeleted` event at the stream's next revision, after which every operation
//! on the stream and on its metadata answers `StreamDeleted`.

use std::sync::Arc;

use factum_core::{
    CurrentRevision, EventStore, ExpectedRevision, Position, ReadAllOptions, ReadStreamOptions,
    RecordedEvent, StreamMetadata, StreamName,
};

use crate::support::{
    assert_error_kind, assert_wrong_expected, event, events, number, revisions, stream,
};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(soft_deleted_stream_reads_as_not_found),
        case!(soft_delete_sets_truncate_before_past_the_last_revision),
        case!(appending_with_no_stream_recreates_a_soft_deleted_stream),
        case!(appending_with_the_old_last_revision_recreates_a_soft_deleted_stream),
        case!(appending_with_any_recreates_a_soft_deleted_stream),
        case!(stream_exists_fails_on_a_soft_deleted_stream),
        case!(soft_deleting_a_never_written_stream_is_not_found),
        case!(soft_delete_checks_its_expected_revision),
        case!(soft_delete_with_a_wrong_expected_revision_changes_nothing),
        case!(repeating_a_soft_delete_succeeds),
        case!(soft_delete_keeps_other_metadata_keys),
        case!(a_recreated_stream_can_be_soft_deleted_again),
        case!(delete_result_position_is_the_new_head),
        case!(tombstoned_stream_refuses_every_operation),
        case!(tombstoning_a_never_written_stream_retires_the_name),
        case!(tombstoning_a_never_written_stream_with_stream_exists_or_exact_fails),
        case!(tombstone_with_a_wrong_expected_revision_changes_nothing),
        case!(tombstoning_a_soft_deleted_stream_works),
        case!(tombstone_marker_is_a_system_event_at_the_next_revision),
        case!(metadata_streams_cannot_be_deleted),
    ]
}

/// A stream with `count` events numbered from 0; returns it and its last revision.
async fn written<S: EventStore>(store: &Arc<S>, prefix: &str, count: u64) -> (StreamName, u64) {
    let stream = stream(prefix);
    let result = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 0, count),
        )
        .await
        .unwrap_or_else(|error| panic!("append to {stream} failed: {error}"));
    assert_eq!(result.revision, count - 1);
    (stream, result.revision)
}

async fn soft_delete<S: EventStore>(store: &Arc<S>, stream: &StreamName) {
    store
        .delete_stream(stream, ExpectedRevision::Any)
        .await
        .unwrap_or_else(|error| panic!("soft delete of {stream} failed: {error}"));
}

async fn read_forwards<S: EventStore>(store: &Arc<S>, stream: &StreamName) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, ReadStreamOptions::forwards())
        .await
        .unwrap_or_else(|error| panic!("read of {stream} failed: {error}"))
}

async fn head<S: EventStore>(store: &Arc<S>) -> Position {
    store.head().await.expect("head")
}

/// Everything in `$all`, system events included.
async fn whole_log<S: EventStore>(store: &Arc<S>) -> Vec<RecordedEvent> {
    store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("read $all")
        .events
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: factum_core::Result<T>) {
    assert_error_kind(result, "stream_not_found");
}

#[track_caller]
fn assert_deleted<T: std::fmt::Debug>(result: factum_core::Result<T>) {
    assert_error_kind(result, "stream_deleted");
}

/// A soft-deleted stream reads as `StreamNotFound`, forwards, backwards and from a revision.
async fn soft_deleted_stream_reads_as_not_found<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-read", 3).await;
    let other = written(&store, "soft-read-other", 2).await.0;
    soft_delete(&store, &stream).await;

    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
    );
    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::backwards())
            .await,
    );
    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::forwards().from_revision(last))
            .await,
    );
    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::backwards().from_revision(0))
            .await,
    );
    assert_eq!(
        read_forwards(&store, &other).await.len(),
        2,
        "other streams are untouched"
    );
}

/// After a soft delete the stream's metadata has `$tb` = last revision + 1.
async fn soft_delete_sets_truncate_before_past_the_last_revision<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-tb", 4).await;
    soft_delete(&store, &stream).await;
    let metadata = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(metadata.metadata.truncate_before, Some(last + 1));
    assert_eq!(
        metadata.revision,
        CurrentRevision::Current(0),
        "the delete wrote the first metadata event"
    );
    assert_eq!(
        metadata.metadata.max_count, None,
        "no other rule was invented"
    );
}

/// Appending with `NoStream` to a soft-deleted stream recreates it: revisions continue after
/// the old last one, and reads return only the new events.
async fn appending_with_no_stream_recreates_a_soft_deleted_stream<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-recreate-nostream", 3).await;
    soft_delete(&store, &stream).await;
    let result = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 100, 2),
        )
        .await
        .expect("NoStream recreates a soft-deleted stream");
    assert_eq!(result.revision, last + 2, "revisions continue");
    let events = read_forwards(&store, &stream).await;
    assert_eq!(revisions(&events), [last + 1, last + 2]);
    assert_eq!(events.iter().map(number).collect::<Vec<_>>(), [100, 101]);
    let backwards = store
        .read_stream(&stream, ReadStreamOptions::backwards())
        .await
        .expect("read backwards");
    assert_eq!(revisions(&backwards), [last + 2, last + 1]);
    let metadata = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(
        metadata.metadata.truncate_before,
        Some(last + 1),
        "$tb stays"
    );
}

/// Appending with `Exact(old last revision)` to a soft-deleted stream recreates it.
async fn appending_with_the_old_last_revision_recreates_a_soft_deleted_stream<S: EventStore>(
    store: Arc<S>,
) {
    let (stream, last) = written(&store, "soft-recreate-exact", 2).await;
    soft_delete(&store, &stream).await;
    let result = store
        .append(
            &stream,
            ExpectedRevision::Exact(last),
            vec![event("Happened", 7)],
        )
        .await
        .expect("the old last revision continues a soft-deleted stream");
    assert_eq!(result.revision, last + 1);
    let events = read_forwards(&store, &stream).await;
    assert_eq!(revisions(&events), [last + 1]);
    assert_eq!(number(&events[0]), 7);
}

/// Appending with `Any` to a soft-deleted stream recreates it.
async fn appending_with_any_recreates_a_soft_deleted_stream<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-recreate-any", 5).await;
    soft_delete(&store, &stream).await;
    let result = store
        .append(&stream, ExpectedRevision::Any, vec![event("Happened", 9)])
        .await
        .expect("Any recreates a soft-deleted stream");
    assert_eq!(result.revision, last + 1);
    assert_eq!(revisions(&read_forwards(&store, &stream).await), [last + 1]);
}

/// `StreamExists`, or an `Exact` other than the old last revision, fails on a soft-deleted
/// stream, which reports `NoStream`; nothing is written.
async fn stream_exists_fails_on_a_soft_deleted_stream<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-exists", 3).await;
    soft_delete(&store, &stream).await;
    let head_before = head(&store).await;
    assert_wrong_expected(
        store
            .append(
                &stream,
                ExpectedRevision::StreamExists,
                vec![event("Happened", 0)],
            )
            .await,
        ExpectedRevision::StreamExists,
        CurrentRevision::NoStream,
    );
    assert_wrong_expected(
        store
            .append(
                &stream,
                ExpectedRevision::Exact(last + 1),
                vec![event("Happened", 0)],
            )
            .await,
        ExpectedRevision::Exact(last + 1),
        CurrentRevision::NoStream,
    );
    assert_eq!(head(&store).await, head_before, "nothing was written");
    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
    );
}

/// Soft-deleting a stream that was never written is `StreamNotFound`, whatever the
/// expectation, and writes nothing.
async fn soft_deleting_a_never_written_stream_is_not_found<S: EventStore>(store: Arc<S>) {
    let stream = stream("soft-never");
    for expected in [
        ExpectedRevision::Any,
        ExpectedRevision::NoStream,
        ExpectedRevision::StreamExists,
        ExpectedRevision::Exact(0),
    ] {
        assert_not_found(store.delete_stream(&stream, expected).await);
    }
    assert_eq!(head(&store).await, Position(0), "nothing was written");
    let metadata = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(metadata.revision, CurrentRevision::NoStream);
}

/// A soft delete accepts `StreamExists` and the exact last revision of a live stream.
async fn soft_delete_checks_its_expected_revision<S: EventStore>(store: Arc<S>) {
    let (exists, _) = written(&store, "soft-expect-exists", 2).await;
    store
        .delete_stream(&exists, ExpectedRevision::StreamExists)
        .await
        .expect("StreamExists on a live stream");
    assert_not_found(
        store
            .read_stream(&exists, ReadStreamOptions::forwards())
            .await,
    );

    let (exact, last) = written(&store, "soft-expect-exact", 3).await;
    store
        .delete_stream(&exact, ExpectedRevision::Exact(last))
        .await
        .expect("the exact last revision");
    assert_not_found(
        store
            .read_stream(&exact, ReadStreamOptions::forwards())
            .await,
    );
}

/// A soft delete with a wrong expectation (`Exact` other than the last revision, `NoStream` on
/// a live stream) is `WrongExpectedRevision` and changes nothing.
async fn soft_delete_with_a_wrong_expected_revision_changes_nothing<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-wrong", 3).await;
    let before = read_forwards(&store, &stream).await;
    let head_before = head(&store).await;
    for expected in [
        ExpectedRevision::Exact(last - 1),
        ExpectedRevision::Exact(last + 1),
        ExpectedRevision::NoStream,
    ] {
        assert_wrong_expected(
            store.delete_stream(&stream, expected).await,
            expected,
            CurrentRevision::Current(last),
        );
    }
    assert_eq!(
        read_forwards(&store, &stream).await,
        before,
        "the stream is intact"
    );
    assert_eq!(head(&store).await, head_before, "nothing was written");
    let metadata = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(
        metadata.revision,
        CurrentRevision::NoStream,
        "no metadata written"
    );
}

/// Repeating a soft delete with `Any`, `NoStream` or the old last revision succeeds and leaves
/// the stream deleted with the same `$tb`; `StreamExists` fails on it.
async fn repeating_a_soft_delete_succeeds<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-repeat", 3).await;
    soft_delete(&store, &stream).await;
    for expected in [
        ExpectedRevision::Any,
        ExpectedRevision::Exact(last),
        ExpectedRevision::NoStream,
    ] {
        store
            .delete_stream(&stream, expected)
            .await
            .unwrap_or_else(|error| panic!("repeating the delete with {expected}: {error}"));
        assert_not_found(
            store
                .read_stream(&stream, ReadStreamOptions::forwards())
                .await,
        );
        let metadata = store.stream_metadata(&stream).await.expect("metadata");
        assert_eq!(metadata.metadata.truncate_before, Some(last + 1));
    }
    assert_wrong_expected(
        store
            .delete_stream(&stream, ExpectedRevision::StreamExists)
            .await,
        ExpectedRevision::StreamExists,
        CurrentRevision::NoStream,
    );
}

/// A soft delete keeps the stream's other metadata keys (`$maxCount`, custom keys).
async fn soft_delete_keeps_other_metadata_keys<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-keeps", 4).await;
    let mut custom = serde_json::Map::new();
    custom.insert("owner".into(), serde_json::json!("team-a"));
    let metadata = StreamMetadata {
        max_count: Some(10),
        acl: Some(serde_json::json!({"$r": "ops"})),
        custom,
        ..StreamMetadata::default()
    };
    store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &metadata)
        .await
        .expect("set metadata");
    soft_delete(&store, &stream).await;
    let after = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(
        after.metadata,
        StreamMetadata {
            truncate_before: Some(last + 1),
            ..metadata
        },
        "only $tb changed"
    );
    assert_eq!(after.revision, CurrentRevision::Current(1));
}

/// A recreated stream can be soft-deleted again: `$tb` moves past its new last revision, and a
/// second recreation continues from there.
async fn a_recreated_stream_can_be_soft_deleted_again<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "soft-twice", 2).await;
    soft_delete(&store, &stream).await;
    let recreated = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            events("Happened", 10, 2),
        )
        .await
        .expect("recreate");
    assert_eq!(recreated.revision, last + 2);
    store
        .delete_stream(&stream, ExpectedRevision::Exact(recreated.revision))
        .await
        .expect("delete again");
    assert_not_found(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
    );
    let metadata = store.stream_metadata(&stream).await.expect("metadata");
    assert_eq!(
        metadata.metadata.truncate_before,
        Some(recreated.revision + 1)
    );
    let again = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![event("Happened", 20)],
        )
        .await
        .expect("recreate again");
    assert_eq!(again.revision, recreated.revision + 1);
    let events = read_forwards(&store, &stream).await;
    assert_eq!(revisions(&events), [again.revision]);
    assert_eq!(number(&events[0]), 20);
}

/// A soft delete's and a tombstone's `DeleteResult.position` is a new position past the old
/// head, the new head, and the position of the record that carries the deletion.
async fn delete_result_position_is_the_new_head<S: EventStore>(store: Arc<S>) {
    let (soft, _) = written(&store, "position-soft", 2).await;
    let (tombstoned, _) = written(&store, "position-tombstone", 2).await;

    let before = head(&store).await;
    let deleted = store
        .delete_stream(&soft, ExpectedRevision::Any)
        .await
        .expect("soft delete");
    assert!(deleted.position > before, "{} > {before}", deleted.position);
    assert_eq!(head(&store).await, deleted.position);
    let log = whole_log(&store).await;
    let record = log.last().expect("the log is not empty");
    assert_eq!(record.position, deleted.position);
    assert_eq!(Some(&record.stream), soft.metadata_stream().as_ref());
    assert_eq!(record.event_type, "$metadata");

    let before = head(&store).await;
    let tombstone = store
        .tombstone_stream(&tombstoned, ExpectedRevision::Any)
        .await
        .expect("tombstone");
    assert!(
        tombstone.position > before,
        "{} > {before}",
        tombstone.position
    );
    assert_eq!(head(&store).await, tombstone.position);
    let log = whole_log(&store).await;
    let record = log.last().expect("the log is not empty");
    assert_eq!(record.position, tombstone.position);
    assert_eq!(record.stream, tombstoned);
    assert_eq!(record.event_type, "$streamDeleted");
}

/// After a tombstone every read, append (whatever the expectation), delete, tombstone,
/// metadata read and metadata write of the stream answers `StreamDeleted`, and so do reads
/// and appends of its metadata stream.
async fn tombstoned_stream_refuses_every_operation<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "tombstone-final", 3).await;
    store
        .tombstone_stream(&stream, ExpectedRevision::Exact(last))
        .await
        .expect("tombstone");
    let head_after_tombstone = head(&store).await;

    assert_deleted(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
    );
    assert_deleted(
        store
            .read_stream(&stream, ReadStreamOptions::backwards())
            .await,
    );
    assert_deleted(
        store
            .read_stream(&stream, ReadStreamOptions::forwards().from_revision(1))
            .await,
    );
    let expectations = [
        ExpectedRevision::Any,
        ExpectedRevision::NoStream,
        ExpectedRevision::StreamExists,
        ExpectedRevision::Exact(last),
        ExpectedRevision::Exact(last + 1),
    ];
    for expected in expectations {
        assert_deleted(
            store
                .append(&stream, expected, vec![event("Happened", 0)])
                .await,
        );
        assert_deleted(store.delete_stream(&stream, expected).await);
        assert_deleted(store.tombstone_stream(&stream, expected).await);
    }
    assert_deleted(store.stream_metadata(&stream).await);
    assert_deleted(
        store
            .set_stream_metadata(&stream, ExpectedRevision::Any, &StreamMetadata::default())
            .await,
    );
    assert_deleted(
        store
            .set_stream_metadata(
                &stream,
                ExpectedRevision::NoStream,
                &StreamMetadata::default(),
            )
            .await,
    );

    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    assert_deleted(
        store
            .read_stream(&metadata_stream, ReadStreamOptions::forwards())
            .await,
    );
    let raw_metadata = factum_core::ProposedEvent::new(
        factum_core::METADATA_EVENT_TYPE,
        factum_core::CONTENT_TYPE_JSON,
        b"{}".to_vec(),
    );
    assert_deleted(
        store
            .append(&metadata_stream, ExpectedRevision::Any, vec![raw_metadata])
            .await,
    );
    assert_eq!(
        head(&store).await,
        head_after_tombstone,
        "nothing more was written"
    );
}

/// Tombstoning a stream never written succeeds with `Any` and `NoStream`, and the name can
/// never be used afterwards.
async fn tombstoning_a_never_written_stream_retires_the_name<S: EventStore>(store: Arc<S>) {
    for expected in [ExpectedRevision::Any, ExpectedRevision::NoStream] {
        let stream = stream("tombstone-unused");
        let result = store
            .tombstone_stream(&stream, expected)
            .await
            .unwrap_or_else(|error| panic!("tombstone of an unused name with {expected}: {error}"));
        assert_eq!(head(&store).await, result.position);
        assert_deleted(
            store
                .read_stream(&stream, ReadStreamOptions::forwards())
                .await,
        );
        assert_deleted(
            store
                .append(
                    &stream,
                    ExpectedRevision::NoStream,
                    vec![event("Happened", 0)],
                )
                .await,
        );
        assert_deleted(
            store
                .append(&stream, ExpectedRevision::Any, vec![event("Happened", 0)])
                .await,
        );
        assert_deleted(store.stream_metadata(&stream).await);
        let log = whole_log(&store).await;
        let marker = log.last().expect("the tombstone wrote its marker");
        assert_eq!(marker.stream, stream);
        assert_eq!(marker.revision, 0, "the marker is the stream's first event");
        assert_eq!(marker.event_type, "$streamDeleted");
    }
}

/// Tombstoning a stream never written with `StreamExists` is `StreamNotFound`; with `Exact` it
/// is `WrongExpectedRevision` (actual `NoStream`). Neither writes anything, and the name stays
/// usable.
async fn tombstoning_a_never_written_stream_with_stream_exists_or_exact_fails<S: EventStore>(
    store: Arc<S>,
) {
    let stream = stream("tombstone-unused-strict");
    assert_not_found(
        store
            .tombstone_stream(&stream, ExpectedRevision::StreamExists)
            .await,
    );
    assert_wrong_expected(
        store
            .tombstone_stream(&stream, ExpectedRevision::Exact(0))
            .await,
        ExpectedRevision::Exact(0),
        CurrentRevision::NoStream,
    );
    assert_eq!(head(&store).await, Position(0), "nothing was written");
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![event("Happened", 0)],
        )
        .await
        .expect("the name is still usable");
}

/// A tombstone with a wrong expectation is `WrongExpectedRevision` and changes nothing;
/// `StreamExists` on a live stream is accepted.
async fn tombstone_with_a_wrong_expected_revision_changes_nothing<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "tombstone-wrong", 3).await;
    let before = read_forwards(&store, &stream).await;
    let head_before = head(&store).await;
    for expected in [
        ExpectedRevision::Exact(last - 1),
        ExpectedRevision::Exact(last + 1),
        ExpectedRevision::NoStream,
    ] {
        assert_wrong_expected(
            store.tombstone_stream(&stream, expected).await,
            expected,
            CurrentRevision::Current(last),
        );
    }
    assert_eq!(
        read_forwards(&store, &stream).await,
        before,
        "the stream is intact"
    );
    assert_eq!(head(&store).await, head_before, "nothing was written");
    store
        .append(
            &stream,
            ExpectedRevision::Exact(last),
            vec![event("Happened", 3)],
        )
        .await
        .expect("the stream is still writable");
    store
        .tombstone_stream(&stream, ExpectedRevision::StreamExists)
        .await
        .expect("StreamExists on a live stream");
    assert_deleted(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
    );
}

/// A soft-deleted stream can be tombstoned (with `Any`, `NoStream` or its old last revision,
/// not with `StreamExists`); the marker takes the revision after the old last one.
async fn tombstoning_a_soft_deleted_stream_works<S: EventStore>(store: Arc<S>) {
    for expected in [
        ExpectedRevision::Any,
        ExpectedRevision::NoStream,
        ExpectedRevision::Exact(1),
    ] {
        let (stream, last) = written(&store, "tombstone-soft", 2).await;
        assert_eq!(last, 1);
        soft_delete(&store, &stream).await;
        assert_wrong_expected(
            store
                .tombstone_stream(&stream, ExpectedRevision::StreamExists)
                .await,
            ExpectedRevision::StreamExists,
            CurrentRevision::NoStream,
        );
        let result = store
            .tombstone_stream(&stream, expected)
            .await
            .unwrap_or_else(|error| {
                panic!("tombstone of a soft-deleted stream ({expected}): {error}")
            });
        assert_deleted(
            store
                .read_stream(&stream, ReadStreamOptions::forwards())
                .await,
        );
        assert_deleted(
            store
                .append(
                    &stream,
                    ExpectedRevision::NoStream,
                    vec![event("Happened", 0)],
                )
                .await,
        );
        assert_deleted(store.stream_metadata(&stream).await);
        let log = whole_log(&store).await;
        let marker = log.last().expect("the tombstone wrote its marker");
        assert_eq!(marker.position, result.position);
        assert_eq!(marker.stream, stream);
        assert_eq!(
            marker.revision,
            last + 1,
            "the marker follows the old last revision"
        );
    }
}

/// The `$streamDeleted` marker is in the tombstoned stream at its next revision, at the
/// position the tombstone returned, and visible in `$all` only with `include_system`; the
/// stream's earlier events stay visible.
async fn tombstone_marker_is_a_system_event_at_the_next_revision<S: EventStore>(store: Arc<S>) {
    let (stream, last) = written(&store, "tombstone-marker", 3).await;
    let result = store
        .tombstone_stream(&stream, ExpectedRevision::Any)
        .await
        .expect("tombstone");

    let default = store
        .read_all(ReadAllOptions::forwards())
        .await
        .expect("read $all");
    assert_eq!(
        revisions(&default.events),
        [0, 1, 2],
        "only the user events, without the marker"
    );
    assert!(default.events.iter().all(|event| event.stream == stream));

    let log = whole_log(&store).await;
    assert_eq!(log.len(), 4, "the user events and the marker");
    let marker = &log[3];
    assert_eq!(marker.stream, stream);
    assert_eq!(marker.event_type, "$streamDeleted");
    assert_eq!(marker.revision, last + 1);
    assert_eq!(marker.position, result.position);
    assert!(marker.is_system());
    assert_eq!(
        &log[..3],
        &default.events[..],
        "the earlier events are unchanged"
    );
}

/// A metadata stream `$$s` cannot be soft-deleted or tombstoned (`InvalidRequest`), whether
/// or not it has events; the stream it describes is untouched.
async fn metadata_streams_cannot_be_deleted<S: EventStore>(store: Arc<S>) {
    let unused = stream("delete-metadata-unused")
        .metadata_stream()
        .expect("a user stream has metadata");
    let (stream, _) = written(&store, "delete-metadata", 2).await;
    let metadata_stream = stream
        .metadata_stream()
        .expect("a user stream has metadata");
    let check = |store: Arc<S>, target: StreamName| async move {
        for expected in [ExpectedRevision::Any, ExpectedRevision::NoStream] {
            assert_error_kind(
                store.delete_stream(&target, expected).await,
                "invalid_request",
            );
            assert_error_kind(
                store.tombstone_stream(&target, expected).await,
                "invalid_request",
            );
        }
    };
    check(store.clone(), unused).await;
    check(store.clone(), metadata_stream.clone()).await;
    store
        .set_stream_metadata(
            &stream,
            ExpectedRevision::NoStream,
            &StreamMetadata::default(),
        )
        .await
        .expect("set metadata");
    let head_before = head(&store).await;
    check(store.clone(), metadata_stream.clone()).await;
    assert_eq!(head(&store).await, head_before, "nothing was written");
    assert_eq!(read_forwards(&store, &stream).await.len(), 2);
    let metadata_events = store
        .read_stream(&metadata_stream, ReadStreamOptions::forwards())
        .await
        .expect("the metadata stream is intact");
    assert_eq!(metadata_events.len(), 1);
}
