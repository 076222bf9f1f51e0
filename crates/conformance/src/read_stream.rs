//! Conformance cases: reading one stream, forwards and backwards, with starts and limits.
//!
//! The reference is `factum_core::rules::plan_stream_read`: forwards reads start at a revision
//! inclusive, backwards reads end at one inclusive (newest first), and `limit` counts the
//! events returned.

use std::sync::Arc;

use factum_core::{
    Error, EventStore, ExpectedRevision, METADATA_EVENT_TYPE, ReadStreamOptions, RecordedEvent,
    StreamMetadata, StreamName, StreamStart,
};

use crate::support::{assert_error_kind, events, number, revisions, stream};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(forwards_from_start_returns_the_whole_stream_oldest_first),
        case!(forwards_from_a_revision_includes_it),
        case!(forwards_from_the_last_revision_returns_only_it),
        case!(forwards_from_past_the_end_is_empty),
        case!(forwards_from_end_is_empty),
        case!(backwards_from_end_returns_the_whole_stream_newest_first),
        case!(backwards_from_a_revision_includes_it),
        case!(backwards_from_beyond_the_last_revision_starts_at_the_last),
        case!(backwards_from_start_returns_only_the_first_event),
        case!(limit_counts_events_forwards),
        case!(limit_counts_events_backwards),
        case!(limit_zero_returns_nothing),
        case!(limit_larger_than_the_stream_returns_it_all),
        case!(paging_with_a_limit_visits_every_event_once),
        case!(stream_never_written_is_not_found),
        case!(read_returns_only_its_own_stream),
        case!(read_events_carry_stream_revision_and_increasing_positions),
        case!(metadata_stream_returns_its_metadata_events),
        case!(metadata_stream_without_metadata_is_not_found),
    ]
}

/// A stream of `count` events numbered `0..count` (number == revision), written in appends of
/// three so reads cross append boundaries.
async fn seeded<S: EventStore>(store: &S, prefix: &str, count: u64) -> StreamName {
    let stream = stream(prefix);
    let mut expected = ExpectedRevision::NoStream;
    let mut written = 0;
    while written < count {
        let batch = (count - written).min(3);
        let result = store
            .append(&stream, expected, events("Counted", written, batch))
            .await
            .expect("seeding a stream");
        expected = ExpectedRevision::Exact(result.revision);
        written += batch;
    }
    stream
}

/// Reads `stream` with `options`, which must succeed.
async fn read<S: EventStore>(
    store: &S,
    stream: &StreamName,
    options: ReadStreamOptions,
) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, options)
        .await
        .unwrap_or_else(|error| panic!("reading {stream} with {options:?} failed: {error}"))
}

fn forwards_from(from: StreamStart) -> ReadStreamOptions {
    ReadStreamOptions {
        from,
        ..ReadStreamOptions::forwards()
    }
}

fn backwards_from(from: StreamStart) -> ReadStreamOptions {
    ReadStreamOptions {
        from,
        ..ReadStreamOptions::backwards()
    }
}

/// The revisions a read returns, after checking each event is the one written there.
fn checked_revisions(events: &[RecordedEvent]) -> Vec<u64> {
    for event in events {
        assert_eq!(
            number(event),
            event.revision,
            "the event written at this revision"
        );
    }
    revisions(events)
}

/// Forwards from `Start` returns every event, oldest first.
async fn forwards_from_start_returns_the_whole_stream_oldest_first<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-forwards-start", 7).await;
    let read = read(&*store, &stream, ReadStreamOptions::forwards()).await;
    assert_eq!(checked_revisions(&read), (0..7).collect::<Vec<_>>());
}

/// Forwards from `Revision(r)` returns `r` and every later revision.
async fn forwards_from_a_revision_includes_it<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-forwards-revision", 7).await;
    for from in [0, 1, 3, 4] {
        let read = read(
            &*store,
            &stream,
            ReadStreamOptions::forwards().from_revision(from),
        )
        .await;
        assert_eq!(
            checked_revisions(&read),
            (from..7).collect::<Vec<_>>(),
            "from revision {from}"
        );
    }
}

/// Forwards from the last revision returns exactly the last event.
async fn forwards_from_the_last_revision_returns_only_it<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-forwards-last", 5).await;
    let read = read(
        &*store,
        &stream,
        ReadStreamOptions::forwards().from_revision(4),
    )
    .await;
    assert_eq!(checked_revisions(&read), vec![4]);
}

/// Forwards from a revision past the end is an empty read, not an error.
async fn forwards_from_past_the_end_is_empty<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-forwards-past", 5).await;
    for from in [5, 6, 1_000, u64::MAX] {
        let read = read(
            &*store,
            &stream,
            ReadStreamOptions::forwards().from_revision(from),
        )
        .await;
        assert!(read.is_empty(), "from revision {from}: {read:?}");
    }
}

/// Forwards from `End` returns nothing: there is nothing after the end.
async fn forwards_from_end_is_empty<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-forwards-end", 4).await;
    let read = read(&*store, &stream, forwards_from(StreamStart::End)).await;
    assert!(read.is_empty(), "{read:?}");
}

/// Backwards from `End` returns every event, newest first.
async fn backwards_from_end_returns_the_whole_stream_newest_first<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-backwards-end", 7).await;
    let read = read(&*store, &stream, ReadStreamOptions::backwards()).await;
    assert_eq!(checked_revisions(&read), (0..7).rev().collect::<Vec<_>>());
}

/// Backwards from `Revision(r)` returns `r` and every earlier revision, newest first.
async fn backwards_from_a_revision_includes_it<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-backwards-revision", 7).await;
    for from in [0, 2, 3, 6] {
        let read = read(
            &*store,
            &stream,
            ReadStreamOptions::backwards().from_revision(from),
        )
        .await;
        assert_eq!(
            checked_revisions(&read),
            (0..=from).rev().collect::<Vec<_>>(),
            "from revision {from}"
        );
    }
}

/// Backwards from a revision beyond the last starts at the last event.
async fn backwards_from_beyond_the_last_revision_starts_at_the_last<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-backwards-beyond", 4).await;
    for from in [4, 10, u64::MAX] {
        let read = read(
            &*store,
            &stream,
            ReadStreamOptions::backwards().from_revision(from),
        )
        .await;
        assert_eq!(
            checked_revisions(&read),
            vec![3, 2, 1, 0],
            "from revision {from}"
        );
    }
}

/// Backwards from `Start` returns at most the event at revision 0.
async fn backwards_from_start_returns_only_the_first_event<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-backwards-start", 4).await;
    let read = read(&*store, &stream, backwards_from(StreamStart::Start)).await;
    assert_eq!(checked_revisions(&read), vec![0]);
}

/// Forwards, `limit` caps the number of events returned, counted from the start point.
async fn limit_counts_events_forwards<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-limit-forwards", 8).await;
    let read_start = read(&*store, &stream, ReadStreamOptions::forwards().limit(3)).await;
    assert_eq!(checked_revisions(&read_start), vec![0, 1, 2]);
    let options = ReadStreamOptions::forwards().from_revision(4).limit(2);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![4, 5]
    );
    let options = ReadStreamOptions::forwards().from_revision(6).limit(5);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![6, 7],
        "the end of the stream comes first"
    );
    let options = ReadStreamOptions::forwards().limit(1);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![0]
    );
}

/// Backwards, `limit` caps the number of events returned, newest first from the start point.
async fn limit_counts_events_backwards<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-limit-backwards", 8).await;
    let options = ReadStreamOptions::backwards().limit(3);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![7, 6, 5]
    );
    let options = ReadStreamOptions::backwards().from_revision(4).limit(2);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![4, 3]
    );
    let options = ReadStreamOptions::backwards().from_revision(1).limit(5);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![1, 0],
        "the start of the stream comes first"
    );
    let options = ReadStreamOptions::backwards().limit(1);
    assert_eq!(
        checked_revisions(&read(&*store, &stream, options).await),
        vec![7],
        "how a writer finds the last event"
    );
}

/// A limit of 0 returns no events, from any start, in either direction.
async fn limit_zero_returns_nothing<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-limit-zero", 4).await;
    let options = [
        ReadStreamOptions::forwards().limit(0),
        ReadStreamOptions::forwards().from_revision(2).limit(0),
        ReadStreamOptions::backwards().limit(0),
        ReadStreamOptions::backwards().from_revision(2).limit(0),
    ];
    for options in options {
        let read = read(&*store, &stream, options).await;
        assert!(read.is_empty(), "{options:?}: {read:?}");
    }
}

/// A limit larger than the stream returns the whole stream.
async fn limit_larger_than_the_stream_returns_it_all<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-limit-large", 5).await;
    for limit in [5, 6, 100, u64::MAX] {
        let forwards = read(&*store, &stream, ReadStreamOptions::forwards().limit(limit)).await;
        assert_eq!(
            checked_revisions(&forwards),
            vec![0, 1, 2, 3, 4],
            "limit {limit}"
        );
        let backwards = read(
            &*store,
            &stream,
            ReadStreamOptions::backwards().limit(limit),
        )
        .await;
        assert_eq!(
            checked_revisions(&backwards),
            vec![4, 3, 2, 1, 0],
            "limit {limit}"
        );
    }
}

/// Paging with a limit, each page starting after the previous one's last revision, visits
/// every event exactly once in both directions.
async fn paging_with_a_limit_visits_every_event_once<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-paging", 10).await;
    let mut forwards = Vec::new();
    let mut from = 0;
    for _ in 0..10 {
        let page = read(
            &*store,
            &stream,
            ReadStreamOptions::forwards().from_revision(from).limit(3),
        )
        .await;
        let Some(last) = page.last() else { break };
        from = last.revision + 1;
        forwards.extend(checked_revisions(&page));
    }
    assert_eq!(forwards, (0..10).collect::<Vec<_>>());

    let mut backwards = Vec::new();
    let mut options = ReadStreamOptions::backwards().limit(4);
    for _ in 0..10 {
        let page = read(&*store, &stream, options).await;
        backwards.extend(checked_revisions(&page));
        match page.last() {
            Some(last) if last.revision > 0 => {
                options = ReadStreamOptions::backwards()
                    .from_revision(last.revision - 1)
                    .limit(4);
            }
            _ => break,
        }
    }
    assert_eq!(backwards, (0..10).rev().collect::<Vec<_>>());
}

/// Reading a stream that was never written is `StreamNotFound` naming it, whatever the
/// options, even while other streams hold events.
async fn stream_never_written_is_not_found<S: EventStore>(store: Arc<S>) {
    seeded(&*store, "read-missing-other", 3).await;
    let missing = stream("read-missing");
    let options = [
        ReadStreamOptions::forwards(),
        ReadStreamOptions::forwards().from_revision(0).limit(1),
        forwards_from(StreamStart::End),
        ReadStreamOptions::backwards(),
        ReadStreamOptions::backwards().from_revision(3),
        backwards_from(StreamStart::Start),
    ];
    for options in options {
        match store.read_stream(&missing, options).await {
            Err(Error::StreamNotFound { stream }) => assert_eq!(stream, missing, "{options:?}"),
            other => panic!("{options:?}: expected StreamNotFound, got {other:?}"),
        }
    }
}

/// A stream read returns only that stream's events, even when appends to other streams (one
/// of them named with this stream's name as a prefix) interleave with it.
async fn read_returns_only_its_own_stream<S: EventStore>(store: Arc<S>) {
    let own = stream("read-own");
    let longer = StreamName::new(format!("{own}0")).expect("a valid name");
    let other = stream("read-other");
    for round in 0..4 {
        for target in [&own, &longer, &other] {
            store
                .append(
                    target,
                    ExpectedRevision::Any,
                    events("Counted", round * 2, 2),
                )
                .await
                .expect("append");
        }
    }
    for target in [&own, &longer, &other] {
        let forwards = read(&*store, target, ReadStreamOptions::forwards()).await;
        assert!(
            forwards.iter().all(|event| event.stream == *target),
            "{target}"
        );
        assert_eq!(
            checked_revisions(&forwards),
            (0..8).collect::<Vec<_>>(),
            "{target}"
        );
        let backwards = read(&*store, target, ReadStreamOptions::backwards().limit(5)).await;
        assert!(
            backwards.iter().all(|event| event.stream == *target),
            "{target}"
        );
        assert_eq!(
            checked_revisions(&backwards),
            vec![7, 6, 5, 4, 3],
            "{target}"
        );
    }
}

/// Events read from a stream carry its name and their revision, with positions that increase
/// with revision; a backwards read returns the same records reversed.
async fn read_events_carry_stream_revision_and_increasing_positions<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-records", 6).await;
    let forwards = read(&*store, &stream, ReadStreamOptions::forwards()).await;
    assert!(forwards.iter().all(|event| event.stream == stream));
    assert!(
        forwards
            .windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "positions increase with revision"
    );
    let mut backwards = read(&*store, &stream, ReadStreamOptions::backwards()).await;
    backwards.reverse();
    assert_eq!(
        backwards, forwards,
        "both directions return the same records"
    );
}

/// Reading `$$s` of a stream with metadata returns its `$metadata` events, oldest first, each
/// carrying the metadata that was set; the stream's own read does not include them.
async fn metadata_stream_returns_its_metadata_events<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-metadata", 2).await;
    let metadata_stream = stream
        .metadata_stream()
        .expect("a stream has a metadata stream");
    let mut first = StreamMetadata::default();
    first.custom.insert("owner".into(), "alice".into());
    let mut second = first.clone();
    second.custom.insert("team".into(), "payments".into());
    let set = store
        .set_stream_metadata(&stream, ExpectedRevision::NoStream, &first)
        .await
        .expect("setting metadata");
    assert_eq!(set.revision, 0);
    store
        .set_stream_metadata(&stream, ExpectedRevision::Exact(0), &second)
        .await
        .expect("updating metadata");

    let read_metadata = read(&*store, &metadata_stream, ReadStreamOptions::forwards()).await;
    assert_eq!(revisions(&read_metadata), vec![0, 1]);
    for (event, expected) in read_metadata.iter().zip([&first, &second]) {
        assert_eq!(event.stream, metadata_stream);
        assert_eq!(event.event_type, METADATA_EVENT_TYPE);
        let stored = StreamMetadata::from_json(&event.data).expect("metadata events hold JSON");
        assert_eq!(&stored, expected);
    }
    let newest = read(
        &*store,
        &metadata_stream,
        ReadStreamOptions::backwards().limit(1),
    )
    .await;
    assert_eq!(newest.len(), 1);
    assert_eq!(
        newest[0].revision, 1,
        "the newest metadata comes first backwards"
    );

    let own = read(&*store, &stream, ReadStreamOptions::forwards()).await;
    assert_eq!(
        checked_revisions(&own),
        vec![0, 1],
        "metadata events stay in $$s"
    );
}

/// `$$s` of a stream that never had metadata set is `StreamNotFound`, even if `s` has events.
async fn metadata_stream_without_metadata_is_not_found<S: EventStore>(store: Arc<S>) {
    let stream = seeded(&*store, "read-no-metadata", 2).await;
    let metadata_stream = stream
        .metadata_stream()
        .expect("a stream has a metadata stream");
    assert_error_kind(
        store
            .read_stream(&metadata_stream, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
}
