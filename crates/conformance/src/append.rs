//! Conformance cases: appending events, expected revisions, idempotent retries, and what a
//! recorded event carries.
//!
//! The reference for every expectation here is `factum_core::rules::plan_append`: an
//! expectation that does not hold writes nothing, and a retry (same ids) answers with the
//! original result instead of writing again.

use std::sync::Arc;

use factum_core::rules::IDEMPOTENCY_WINDOW_EVENTS;
use factum_core::{
    AppendResult, CONTENT_TYPE_JSON, CurrentRevision, Error, EventStore, ExpectedRevision,
    Position, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamName,
};

use crate::support::{
    assert_error_kind, assert_recorded_as_proposed, assert_wrong_expected, event, events, number,
    revisions, stream,
};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(no_stream_creates_a_new_stream_at_revision_zero),
        case!(any_creates_a_new_stream_at_revision_zero),
        case!(exact_on_a_new_stream_is_wrong_expected_revision),
        case!(revisions_are_zero_based_and_gapless),
        case!(append_result_names_the_last_event),
        case!(each_event_gets_its_own_increasing_position),
        case!(head_is_the_position_of_the_last_event),
        case!(empty_store_head_is_zero),
        case!(exact_with_the_right_revision_appends),
        case!(exact_with_a_wrong_revision_reports_the_current_revision),
        case!(no_stream_on_an_existing_stream_is_wrong_expected_revision),
        case!(stream_exists_on_a_new_stream_is_wrong_expected_revision),
        case!(stream_exists_on_an_existing_stream_appends),
        case!(any_appends_whatever_the_stream_state),
        case!(failed_append_writes_nothing),
        case!(retry_with_exact_returns_the_original_result),
        case!(retry_with_no_stream_returns_the_original_result),
        case!(retry_of_the_first_events_of_an_append_returns_their_result),
        case!(partial_overlap_with_exact_or_no_stream_is_wrong_expected_revision),
        case!(retry_with_any_returns_the_original_result),
        case!(any_with_a_mix_of_stored_and_new_ids_is_wrong_expected_revision),
        case!(any_appends_again_an_id_older_than_the_window),
        case!(retry_with_stream_exists_returns_the_original_result),
        case!(recorded_event_round_trips_every_field),
        case!(events_of_one_append_share_recorded_at),
        case!(recorded_at_never_decreases),
        case!(correlation_and_causation_ids_come_from_json_metadata),
        case!(appends_to_different_streams_interleave_in_all_in_commit_order),
        case!(streams_have_independent_revisions),
    ]
}

/// The whole stream, oldest first; the stream must exist.
async fn read<S: EventStore>(store: &S, stream: &StreamName) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, ReadStreamOptions::forwards())
        .await
        .unwrap_or_else(|error| panic!("reading {stream} failed: {error}"))
}

/// The whole global log, oldest first, system events included.
async fn read_all<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("$all reads")
        .events
}

async fn head<S: EventStore>(store: &S) -> Position {
    store.head().await.expect("head() answers")
}

/// Appends `events` with `expected`, which must succeed.
async fn append<S: EventStore>(
    store: &S,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> AppendResult {
    store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|error| panic!("append to {stream} with {expected} failed: {error}"))
}

/// An append with `NoStream` to a new stream creates it: its first event gets revision 0.
async fn no_stream_creates_a_new_stream_at_revision_zero<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-new-nostream");
    let proposed = event("AccountOpened", 0);
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        vec![proposed.clone()],
    )
    .await;
    assert_eq!(result.revision, 0, "a stream's first revision is 0");
    assert!(result.position > Position::START, "positions start at 1");
    assert!(result.position < Position::MAX, "positions stay below 2^63");
    let recorded = read(&*store, &stream).await;
    assert_eq!(recorded.len(), 1);
    assert_recorded_as_proposed(&recorded[0], &proposed);
    assert_eq!(recorded[0].stream, stream);
    assert_eq!(recorded[0].revision, 0);
    assert_eq!(recorded[0].position, result.position);
}

/// An append with `Any` to a new stream creates it at revision 0.
async fn any_creates_a_new_stream_at_revision_zero<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-new-any");
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::Any,
        events("Opened", 0, 2),
    )
    .await;
    assert_eq!(result.revision, 1, "two events take revisions 0 and 1");
    assert_eq!(revisions(&read(&*store, &stream).await), vec![0, 1]);
}

/// `Exact(n)` on a stream that was never written fails, reporting `NoStream`, and writes
/// nothing.
async fn exact_on_a_new_stream_is_wrong_expected_revision<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-new-exact");
    for expected in [0, 3] {
        let result = store
            .append(
                &stream,
                ExpectedRevision::Exact(expected),
                vec![event("Opened", 0)],
            )
            .await;
        assert_wrong_expected(
            result,
            ExpectedRevision::Exact(expected),
            CurrentRevision::NoStream,
        );
    }
    assert_error_kind(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    assert_eq!(head(&*store).await, Position::START, "nothing was written");
}

/// Revisions are 0-based and gapless across appends of different sizes, and each result
/// names the revision of the append's last event.
async fn revisions_are_zero_based_and_gapless<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-gapless");
    let mut expected = ExpectedRevision::NoStream;
    let mut written = 0;
    for count in [1, 3, 1, 5, 2] {
        let result = append(
            &*store,
            &stream,
            expected,
            events("Counted", written, count),
        )
        .await;
        written += count;
        assert_eq!(
            result.revision,
            written - 1,
            "the revision of the last event"
        );
        expected = ExpectedRevision::Exact(result.revision);
    }
    let recorded = read(&*store, &stream).await;
    assert_eq!(revisions(&recorded), (0..written).collect::<Vec<_>>());
    let numbers: Vec<u64> = recorded.iter().map(number).collect();
    assert_eq!(
        numbers,
        (0..written).collect::<Vec<_>>(),
        "events keep their order"
    );
}

/// An append's result carries the revision and position of its last event.
async fn append_result_names_the_last_event<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-result");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("First", 0, 2),
    )
    .await;
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::Exact(1),
        events("Second", 2, 3),
    )
    .await;
    let recorded = read(&*store, &stream).await;
    let last = recorded.last().expect("the stream has events");
    assert_eq!(result.revision, 4);
    assert_eq!(last.revision, result.revision);
    assert_eq!(last.position, result.position);
    assert_eq!(number(last), 4, "the last event of the append");
}

/// Every event of a multi-event append gets its own position, strictly increasing within the
/// append and across appends, always in `1..2^63`.
async fn each_event_gets_its_own_increasing_position<S: EventStore>(store: Arc<S>) {
    let first = stream("append-positions-a");
    let second = stream("append-positions-b");
    let mut results = Vec::new();
    results.push(append(&*store, &first, ExpectedRevision::Any, events("A", 0, 4)).await);
    results.push(append(&*store, &second, ExpectedRevision::Any, events("B", 0, 3)).await);
    results.push(append(&*store, &first, ExpectedRevision::Any, events("A", 4, 2)).await);

    let all = read_all(&*store).await;
    assert_eq!(all.len(), 9, "every event is in $all once");
    let positions: Vec<Position> = all.iter().map(|event| event.position).collect();
    assert!(
        positions
            .iter()
            .all(|position| *position > Position::START && *position < Position::MAX),
        "positions lie in 1..2^63: {positions:?}"
    );
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions strictly increase: {positions:?}"
    );
    // The last event of each append sits where its result says, in commit order.
    let lasts: Vec<Position> = [3, 6, 8].iter().map(|&index| positions[index]).collect();
    let reported: Vec<Position> = results.iter().map(|result| result.position).collect();
    assert_eq!(lasts, reported);
}

/// `head()` is the position of the last event written, after every append.
async fn head_is_the_position_of_the_last_event<S: EventStore>(store: Arc<S>) {
    let first = stream("append-head-a");
    let second = stream("append-head-b");
    for (round, stream) in [&first, &second, &first, &second].into_iter().enumerate() {
        let count = round as u64 % 3 + 1;
        let result = append(
            &*store,
            stream,
            ExpectedRevision::Any,
            events("E", 0, count),
        )
        .await;
        assert_eq!(head(&*store).await, result.position, "after append {round}");
    }
    let all = read_all(&*store).await;
    let last = all.last().expect("$all has events");
    assert_eq!(head(&*store).await, last.position);
}

/// An empty store has `head() == Position(0)` and an empty `$all`.
async fn empty_store_head_is_zero<S: EventStore>(store: Arc<S>) {
    assert_eq!(head(&*store).await, Position(0));
    assert!(
        read_all(&*store).await.is_empty(),
        "an empty store has no events"
    );
}

/// `Exact(n)` appends when `n` is the stream's last revision.
async fn exact_with_the_right_revision_appends<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-exact-right");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("E", 0, 3),
    )
    .await;
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::Exact(2),
        events("E", 3, 1),
    )
    .await;
    assert_eq!(result.revision, 3);
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::Exact(3),
        events("E", 4, 2),
    )
    .await;
    assert_eq!(result.revision, 5);
    assert_eq!(
        revisions(&read(&*store, &stream).await),
        vec![0, 1, 2, 3, 4, 5]
    );
}

/// `Exact(n)` with `n` behind or ahead of the stream fails with `WrongExpectedRevision`,
/// reporting the expectation, the stream and its current revision.
async fn exact_with_a_wrong_revision_reports_the_current_revision<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-exact-wrong");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("E", 0, 3),
    )
    .await;
    for expected in [0, 1, 3, 7] {
        let result = store
            .append(
                &stream,
                ExpectedRevision::Exact(expected),
                vec![event("E", 9)],
            )
            .await;
        assert_wrong_expected(
            result,
            ExpectedRevision::Exact(expected),
            CurrentRevision::Current(2),
        );
    }
    match store
        .append(&stream, ExpectedRevision::Exact(5), vec![event("E", 9)])
        .await
    {
        Err(Error::WrongExpectedRevision {
            stream: reported, ..
        }) => assert_eq!(reported, stream, "the error names the stream"),
        other => panic!("expected WrongExpectedRevision, got {other:?}"),
    }
    assert_eq!(read(&*store, &stream).await.len(), 3, "nothing was written");
}

/// `NoStream` on a stream with events fails, reporting its current revision.
async fn no_stream_on_an_existing_stream_is_wrong_expected_revision<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-nostream-existing");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("E", 0, 2),
    )
    .await;
    let result = store
        .append(&stream, ExpectedRevision::NoStream, vec![event("E", 2)])
        .await;
    assert_wrong_expected(
        result,
        ExpectedRevision::NoStream,
        CurrentRevision::Current(1),
    );
    assert_eq!(read(&*store, &stream).await.len(), 2, "nothing was written");
}

/// `StreamExists` on a stream that was never written fails, reporting `NoStream`, and does
/// not create the stream.
async fn stream_exists_on_a_new_stream_is_wrong_expected_revision<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-exists-new");
    let result = store
        .append(&stream, ExpectedRevision::StreamExists, vec![event("E", 0)])
        .await;
    assert_wrong_expected(
        result,
        ExpectedRevision::StreamExists,
        CurrentRevision::NoStream,
    );
    assert_error_kind(
        store
            .read_stream(&stream, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    assert_eq!(head(&*store).await, Position::START);
}

/// `StreamExists` on a stream with events appends after its last revision.
async fn stream_exists_on_an_existing_stream_appends<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-exists");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("E", 0, 2),
    )
    .await;
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::StreamExists,
        events("E", 2, 2),
    )
    .await;
    assert_eq!(result.revision, 3);
    assert_eq!(revisions(&read(&*store, &stream).await), vec![0, 1, 2, 3]);
}

/// `Any` appends to a new stream and to an existing one alike.
async fn any_appends_whatever_the_stream_state<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-any");
    for round in 0..4 {
        let result = append(
            &*store,
            &stream,
            ExpectedRevision::Any,
            vec![event("E", round)],
        )
        .await;
        assert_eq!(result.revision, round);
    }
    assert_eq!(revisions(&read(&*store, &stream).await), vec![0, 1, 2, 3]);
}

/// A failed append writes nothing: the stream, `$all` and `head()` are as before, and the next
/// append gets the next revision as if the failures never happened.
async fn failed_append_writes_nothing<S: EventStore>(store: Arc<S>) {
    let existing = stream("append-fail-existing");
    let missing = stream("append-fail-missing");
    append(
        &*store,
        &existing,
        ExpectedRevision::NoStream,
        events("E", 0, 2),
    )
    .await;
    let stream_before = read(&*store, &existing).await;
    let all_before = read_all(&*store).await;
    let head_before = head(&*store).await;

    let failures = [
        (&existing, ExpectedRevision::Exact(0)),
        (&existing, ExpectedRevision::Exact(5)),
        (&existing, ExpectedRevision::NoStream),
        (&missing, ExpectedRevision::StreamExists),
        (&missing, ExpectedRevision::Exact(0)),
    ];
    for (stream, expected) in failures {
        let result = store.append(stream, expected, events("Lost", 10, 3)).await;
        assert_error_kind(result, "wrong_expected_revision");
    }

    assert_eq!(head(&*store).await, head_before, "the head did not move");
    assert_eq!(read(&*store, &existing).await, stream_before);
    assert_eq!(read_all(&*store).await, all_before);
    assert_error_kind(
        store
            .read_stream(&missing, ReadStreamOptions::forwards())
            .await,
        "stream_not_found",
    );
    let next = append(
        &*store,
        &existing,
        ExpectedRevision::Exact(1),
        vec![event("E", 2)],
    )
    .await;
    assert_eq!(next.revision, 2, "no revision was used up by the failures");
}

/// Re-appending an event with `Exact(e)` after it was written at `e + 1` returns the original
/// result and writes nothing, even after the stream moved on.
async fn retry_with_exact_returns_the_original_result<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-retry-exact");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        vec![event("Opened", 0)],
    )
    .await;
    let deposit = event("Deposited", 1);
    let original = append(
        &*store,
        &stream,
        ExpectedRevision::Exact(0),
        vec![deposit.clone()],
    )
    .await;
    let head_before = head(&*store).await;

    let retried = append(
        &*store,
        &stream,
        ExpectedRevision::Exact(0),
        vec![deposit.clone()],
    )
    .await;
    assert_eq!(
        retried, original,
        "a retry answers with the original result"
    );
    assert_eq!(head(&*store).await, head_before, "a retry writes nothing");
    assert_eq!(read(&*store, &stream).await.len(), 2);

    append(
        &*store,
        &stream,
        ExpectedRevision::Exact(1),
        vec![event("Deposited", 2)],
    )
    .await;
    let head_before = head(&*store).await;
    let retried = append(&*store, &stream, ExpectedRevision::Exact(0), vec![deposit]).await;
    assert_eq!(retried, original, "still a retry after later appends");
    assert_eq!(head(&*store).await, head_before);
    assert_eq!(read(&*store, &stream).await.len(), 3);
}

/// Re-appending a multi-event append with `NoStream` returns the result of its last event and
/// writes nothing.
async fn retry_with_no_stream_returns_the_original_result<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-retry-nostream");
    let batch = events("Opened", 0, 3);
    let original = append(&*store, &stream, ExpectedRevision::NoStream, batch.clone()).await;
    let head_before = head(&*store).await;
    let recorded_before = read(&*store, &stream).await;

    let retried = append(&*store, &stream, ExpectedRevision::NoStream, batch).await;
    assert_eq!(retried, original);
    assert_eq!(
        retried.revision, 2,
        "the revision of the batch's last event"
    );
    assert_eq!(head(&*store).await, head_before, "a retry writes nothing");
    assert_eq!(read(&*store, &stream).await, recorded_before);
}

/// Re-appending the first events of an earlier append, at the same expected revision, is a
/// retry of those events: the answer names the last of them (`rules::IdCheck::resolve`).
async fn retry_of_the_first_events_of_an_append_returns_their_result<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-retry-prefix");
    let batch = events("Opened", 0, 3);
    append(&*store, &stream, ExpectedRevision::NoStream, batch.clone()).await;
    let recorded = read(&*store, &stream).await;
    let head_before = head(&*store).await;

    let retried = append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        batch[..2].to_vec(),
    )
    .await;
    assert_eq!(
        retried,
        AppendResult {
            position: recorded[1].position,
            revision: 1,
        }
    );
    assert_eq!(head(&*store).await, head_before, "a retry writes nothing");
    assert_eq!(read(&*store, &stream).await.len(), 3);
}

/// With `Exact(e)` or `NoStream`, ids that overlap what was written only partly (one new id,
/// an extra event, or stored ids at other revisions) are a conflict, and nothing is written.
async fn partial_overlap_with_exact_or_no_stream_is_wrong_expected_revision<S: EventStore>(
    store: Arc<S>,
) {
    let stream = stream("append-partial-overlap");
    let opened = event("Opened", 0);
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        vec![opened.clone()],
    )
    .await;
    let batch = events("Deposited", 1, 2);
    append(&*store, &stream, ExpectedRevision::Exact(0), batch.clone()).await;
    let head_before = head(&*store).await;
    let current = CurrentRevision::Current(2);

    let first_then_new = vec![batch[0].clone(), event("Deposited", 9)];
    let result = store
        .append(&stream, ExpectedRevision::Exact(0), first_then_new)
        .await;
    assert_wrong_expected(result, ExpectedRevision::Exact(0), current);

    let with_extra = vec![batch[0].clone(), batch[1].clone(), event("Deposited", 9)];
    let result = store
        .append(&stream, ExpectedRevision::Exact(0), with_extra)
        .await;
    assert_wrong_expected(result, ExpectedRevision::Exact(0), current);

    // `batch[1]` is stored, but at revision 2, not at revision 1 where a retry would sit.
    let shifted = vec![batch[1].clone()];
    let result = store
        .append(&stream, ExpectedRevision::Exact(0), shifted)
        .await;
    assert_wrong_expected(result, ExpectedRevision::Exact(0), current);

    let opened_then_new = vec![opened, event("Deposited", 9)];
    let result = store
        .append(&stream, ExpectedRevision::NoStream, opened_then_new)
        .await;
    assert_wrong_expected(result, ExpectedRevision::NoStream, current);

    assert_eq!(head(&*store).await, head_before, "nothing was written");
    assert_eq!(read(&*store, &stream).await.len(), 3);
}

/// With `Any`, ids all stored consecutively among the stream's last events are a retry (the
/// original result of the last of them); ids none of which is stored are appended.
async fn retry_with_any_returns_the_original_result<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-retry-any");
    let batch = events("Deposited", 0, 3);
    let original = append(&*store, &stream, ExpectedRevision::Any, batch.clone()).await;
    let later = event("Deposited", 3);
    let later_result = append(&*store, &stream, ExpectedRevision::Any, vec![later.clone()]).await;
    let recorded = read(&*store, &stream).await;
    let head_before = head(&*store).await;

    let retried = append(&*store, &stream, ExpectedRevision::Any, batch.clone()).await;
    assert_eq!(retried, original, "the whole earlier append");
    let retried = append(&*store, &stream, ExpectedRevision::Any, batch[1..].to_vec()).await;
    assert_eq!(retried, original, "its last two events end where it ended");
    let retried = append(&*store, &stream, ExpectedRevision::Any, batch[..2].to_vec()).await;
    assert_eq!(
        retried,
        AppendResult {
            position: recorded[1].position,
            revision: 1,
        },
        "its first two events"
    );
    let retried = append(&*store, &stream, ExpectedRevision::Any, vec![later]).await;
    assert_eq!(retried, later_result, "the latest append");
    assert_eq!(head(&*store).await, head_before, "retries write nothing");
    assert_eq!(read(&*store, &stream).await.len(), 4);

    let fresh = append(
        &*store,
        &stream,
        ExpectedRevision::Any,
        events("Deposited", 4, 2),
    )
    .await;
    assert_eq!(fresh.revision, 5, "new ids are appended");
}

/// With `Any`, ids of which some are stored and some are not, or stored but not consecutively
/// in the proposed order, are a conflict, reporting `Any` and the current revision.
async fn any_with_a_mix_of_stored_and_new_ids_is_wrong_expected_revision<S: EventStore>(
    store: Arc<S>,
) {
    let stream = stream("append-any-mix");
    let batch = events("Deposited", 0, 3);
    append(&*store, &stream, ExpectedRevision::Any, batch.clone()).await;
    let head_before = head(&*store).await;

    let mixes = [
        vec![batch[0].clone(), event("New", 9)],
        vec![event("New", 9), batch[0].clone()],
        vec![batch[2].clone(), event("New", 9)],
        vec![batch[0].clone(), batch[2].clone()],
        vec![batch[1].clone(), batch[0].clone()],
    ];
    for (index, mix) in mixes.into_iter().enumerate() {
        let result = store.append(&stream, ExpectedRevision::Any, mix).await;
        match result {
            Err(Error::WrongExpectedRevision {
                expected, actual, ..
            }) => {
                assert_eq!(expected, ExpectedRevision::Any, "mix {index}");
                assert_eq!(actual, CurrentRevision::Current(2), "mix {index}");
            }
            other => panic!("mix {index}: expected WrongExpectedRevision, got {other:?}"),
        }
    }
    assert_eq!(head(&*store).await, head_before, "nothing was written");
    assert_eq!(read(&*store, &stream).await.len(), 3);
}

/// With `Any`, only the last `IDEMPOTENCY_WINDOW_EVENTS` events are compared: the oldest id in
/// the window is a retry, an id just older than it is appended again.
async fn any_appends_again_an_id_older_than_the_window<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-any-window");
    let count = IDEMPOTENCY_WINDOW_EVENTS + 2;
    let batch = events("Counted", 0, count);
    append(&*store, &stream, ExpectedRevision::NoStream, batch.clone()).await;
    let recorded = read(&*store, &stream).await;
    let oldest_in_window = 2;

    let retried = append(
        &*store,
        &stream,
        ExpectedRevision::Any,
        vec![batch[oldest_in_window].clone()],
    )
    .await;
    assert_eq!(
        retried,
        AppendResult {
            position: recorded[oldest_in_window].position,
            revision: oldest_in_window as u64,
        },
        "the oldest event in the window is recognised"
    );
    assert_eq!(read(&*store, &stream).await.len(), count as usize);

    let again = append(
        &*store,
        &stream,
        ExpectedRevision::Any,
        vec![batch[1].clone()],
    )
    .await;
    assert_eq!(
        again.revision, count,
        "an id outside the window is written again"
    );
    let recorded = read(&*store, &stream).await;
    assert_eq!(recorded.len(), count as usize + 1);
    assert_eq!(recorded[count as usize].id, batch[1].id);
    assert_eq!(head(&*store).await, again.position);
}

/// `StreamExists` recognises retries the way `Any` does, and appends new ids.
async fn retry_with_stream_exists_returns_the_original_result<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-retry-exists");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        vec![event("Opened", 0)],
    )
    .await;
    let batch = events("Deposited", 1, 2);
    let original = append(
        &*store,
        &stream,
        ExpectedRevision::StreamExists,
        batch.clone(),
    )
    .await;
    let head_before = head(&*store).await;

    let retried = append(&*store, &stream, ExpectedRevision::StreamExists, batch).await;
    assert_eq!(retried, original);
    assert_eq!(head(&*store).await, head_before, "a retry writes nothing");
    let fresh = append(
        &*store,
        &stream,
        ExpectedRevision::StreamExists,
        vec![event("Deposited", 3)],
    )
    .await;
    assert_eq!(fresh.revision, 3);
}

/// A recorded event carries exactly what was proposed: id, type, schema version, content
/// type, data (binary and empty too), metadata (binary too) and tags, in both stream and `$all`
/// reads.
async fn recorded_event_round_trips_every_field<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-round-trip");
    let json = ProposedEvent::new(
        "MoneyDeposited",
        CONTENT_TYPE_JSON,
        br#"{"amount":"12.50","currency":"EUR","note":"caf\u00e9 \u2615"}"#.to_vec(),
    )
    .with_id(uuid::Uuid::new_v4())
    .with_schema_version(3)
    .with_metadata(br#"{"$correlationId":"c-1","user":"alice"}"#.to_vec())
    .with_tags(["tenant:7", "vip", "ünïcødé"]);
    let binary = ProposedEvent::bytes("BlobStored", vec![0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a])
        .with_schema_version(u32::MAX)
        .with_metadata(vec![0xde, 0xad, 0xbe, 0xef, 0x00]);
    let empty = ProposedEvent::new("Pinged", "text/plain; charset=utf-8", Vec::new());
    let proposed = vec![json, binary, empty];
    let result = append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        proposed.clone(),
    )
    .await;

    let from_stream = read(&*store, &stream).await;
    let from_all = read_all(&*store).await;
    assert_eq!(from_stream.len(), proposed.len());
    assert_eq!(
        from_all, from_stream,
        "$all and the stream return the same records"
    );
    for (index, (recorded, proposed)) in from_stream.iter().zip(&proposed).enumerate() {
        assert_recorded_as_proposed(recorded, proposed);
        assert_eq!(recorded.stream, stream);
        assert_eq!(recorded.revision, index as u64);
    }
    assert_eq!(from_stream[2].position, result.position);
}

/// All events of one append share one `recorded_at`.
async fn events_of_one_append_share_recorded_at<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-recorded-at-shared");
    append(
        &*store,
        &stream,
        ExpectedRevision::NoStream,
        events("E", 0, 5),
    )
    .await;
    let recorded = read(&*store, &stream).await;
    let first = recorded[0].recorded_at;
    assert!(
        recorded.iter().all(|event| event.recorded_at == first),
        "one commit time per append: {:?}",
        recorded
            .iter()
            .map(|event| event.recorded_at)
            .collect::<Vec<_>>()
    );
}

/// `recorded_at` never decreases along `$all`, across appends to several streams.
async fn recorded_at_never_decreases<S: EventStore>(store: Arc<S>) {
    let streams = [
        stream("append-recorded-at-a"),
        stream("append-recorded-at-b"),
    ];
    let mut results = Vec::new();
    for round in 0..20u64 {
        let stream = &streams[round as usize % 2];
        let count = round % 3 + 1;
        results.push(
            append(
                &*store,
                stream,
                ExpectedRevision::Any,
                events("E", round, count),
            )
            .await,
        );
    }
    let all = read_all(&*store).await;
    assert!(
        all.windows(2)
            .all(|pair| pair[0].recorded_at <= pair[1].recorded_at),
        "recorded times along $all: {:?}",
        all.iter()
            .map(|event| event.recorded_at)
            .collect::<Vec<_>>()
    );
    // Appends made one after another get non-decreasing times too.
    let last_of_each: Vec<_> = results
        .iter()
        .map(|result| {
            all.iter()
                .find(|event| event.position == result.position)
                .expect("every append's last event is in $all")
                .recorded_at
        })
        .collect();
    assert!(last_of_each.windows(2).all(|pair| pair[0] <= pair[1]));
}

/// `$correlationId` and `$causationId` are read from JSON object metadata, and only when they
/// are strings; other metadata has neither.
async fn correlation_and_causation_ids_come_from_json_metadata<S: EventStore>(store: Arc<S>) {
    let stream = stream("append-correlation");
    let proposed = vec![
        event("Traced", 0)
            .with_json_metadata(&serde_json::json!({
                "$correlationId": "command-7",
                "$causationId": "event-3",
                "user": "alice",
            }))
            .expect("JSON metadata encodes"),
        event("Numbered", 1).with_metadata(br#"{"$correlationId":7,"$causationId":null}"#.to_vec()),
        event("Binary", 2).with_metadata(vec![0xff, 0x00]),
        event("Listed", 3).with_metadata(br#"["$correlationId"]"#.to_vec()),
        event("Bare", 4),
    ];
    append(&*store, &stream, ExpectedRevision::NoStream, proposed).await;
    let recorded = read(&*store, &stream).await;
    assert_eq!(recorded[0].correlation_id().as_deref(), Some("command-7"));
    assert_eq!(recorded[0].causation_id().as_deref(), Some("event-3"));
    for event in &recorded[1..] {
        assert_eq!(event.correlation_id(), None, "{}", event.event_type);
        assert_eq!(event.causation_id(), None, "{}", event.event_type);
    }
}

/// Appends to different streams appear in `$all` in the order they committed, each event
/// with its stream and revision.
async fn appends_to_different_streams_interleave_in_all_in_commit_order<S: EventStore>(
    store: Arc<S>,
) {
    let left = stream("append-interleave-left");
    let right = stream("append-interleave-right");
    let plan: [(&StreamName, u64); 5] =
        [(&left, 1), (&right, 1), (&left, 2), (&right, 1), (&left, 1)];
    let mut expected_order = Vec::new();
    let mut next_revision = std::collections::HashMap::new();
    let mut results = Vec::new();
    for (stream, count) in plan {
        let first = *next_revision.get(stream).unwrap_or(&0);
        results.push(
            append(
                &*store,
                stream,
                ExpectedRevision::Any,
                events("E", first, count),
            )
            .await,
        );
        for revision in first..first + count {
            expected_order.push((stream.clone(), revision));
        }
        next_revision.insert(stream, first + count);
    }
    let all: Vec<RecordedEvent> = read_all(&*store)
        .await
        .into_iter()
        .filter(|event| event.stream == left || event.stream == right)
        .collect();
    let order: Vec<(StreamName, u64)> = all
        .iter()
        .map(|event| (event.stream.clone(), event.revision))
        .collect();
    assert_eq!(order, expected_order);
    for result in results {
        assert!(
            all.iter().any(|event| event.position == result.position),
            "the last event of each append is in $all at its reported position"
        );
    }
}

/// Each stream has its own revisions: appends to one stream neither use up nor check another
/// stream's revisions.
async fn streams_have_independent_revisions<S: EventStore>(store: Arc<S>) {
    let busy = stream("append-independent-busy");
    let quiet = stream("append-independent-quiet");
    append(
        &*store,
        &busy,
        ExpectedRevision::NoStream,
        events("E", 0, 5),
    )
    .await;
    let first = append(
        &*store,
        &quiet,
        ExpectedRevision::NoStream,
        vec![event("E", 0)],
    )
    .await;
    assert_eq!(
        first.revision, 0,
        "a new stream starts at 0 whatever others hold"
    );
    append(
        &*store,
        &busy,
        ExpectedRevision::Exact(4),
        events("E", 5, 3),
    )
    .await;
    let second = append(
        &*store,
        &quiet,
        ExpectedRevision::Exact(0),
        vec![event("E", 1)],
    )
    .await;
    assert_eq!(second.revision, 1);
    assert_eq!(revisions(&read(&*store, &quiet).await), vec![0, 1]);
    assert_eq!(read(&*store, &busy).await.len(), 8);
}
