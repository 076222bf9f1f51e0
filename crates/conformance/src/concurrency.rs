//! Conformance cases: concurrent writers and readers.
//!
//! A store is shared by many tasks at once. These cases race writers on one stream (optimistic
//! concurrency must pick exactly one winner), on many streams (positions stay unique and
//! ordered), with the same retried batch (idempotency must hold under the race), against a
//! tombstone, and against readers (an append is seen whole or not at all). The tasks run on
//! a multi-threaded runtime, so the races are real.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factum_core::{
    AppendResult, CurrentRevision, Error, EventId, EventStore, ExpectedRevision, ProposedEvent,
    ReadAllOptions, ReadStreamOptions, RecordedEvent, StreamName, rules,
};
use tokio::sync::{Barrier, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::support::{self, event, events};
use crate::{Case, case};

/// Every case of this area.
pub fn cases<S: EventStore>() -> Vec<Case<S>> {
    vec![
        case!(racing_exact_appends_have_one_winner_per_round),
        case!(retrying_writers_lose_and_duplicate_nothing),
        case!(concurrent_appends_to_many_streams_get_unique_ordered_positions),
        case!(concurrent_identical_retries_write_once_and_agree),
        case!(readers_never_see_part_of_an_append),
        case!(appends_racing_a_tombstone_land_before_it_or_fail),
    ]
}

/// How long a case waits for its tasks before calling the backend stuck.
const WAIT: Duration = Duration::from_secs(30);

/// Waits for every task, failing the case if one panics or they take longer than [`WAIT`].
async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        let output = timeout(WAIT, task)
            .await
            .expect("the tasks finish in time")
            .expect("a task panicked");
        outputs.push(output);
    }
    outputs
}

async fn read_stream<S: EventStore>(store: &S, stream: &StreamName) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, ReadStreamOptions::forwards())
        .await
        .expect("reading the stream")
}

async fn read_all<S: EventStore>(store: &S, options: ReadAllOptions) -> Vec<RecordedEvent> {
    store.read_all(options).await.expect("reading $all").events
}

fn ids(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

fn proposed_ids(events: &[ProposedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

#[track_caller]
fn assert_gapless_from_zero(events: &[RecordedEvent]) {
    let expected: Vec<u64> = (0..events.len() as u64).collect();
    assert_eq!(support::revisions(events), expected, "gapless revisions");
}

/// Writers racing with the same `Exact(n)`: in every round exactly one wins, every other gets
/// `WrongExpectedRevision` naming the winner's revision, and the stream holds the winners'
/// events alone, gapless.
async fn racing_exact_appends_have_one_winner_per_round<S: EventStore>(store: Arc<S>) {
    const RACERS: u64 = 16;
    const ROUNDS: u64 = 8;
    let stream = support::stream("race-exact");
    let seed = event("Seeded", 0);
    let seed_id = seed.id;
    store
        .append(&stream, ExpectedRevision::NoStream, vec![seed])
        .await
        .expect("seeding the stream");

    // The barrier starts each round only once every racer finished the previous one, so all
    // racers of round r see the stream at revision r.
    let barrier = Arc::new(Barrier::new(RACERS as usize));
    let racers = (0..RACERS)
        .map(|racer| {
            let store = store.clone();
            let stream = stream.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait().await;
                    let proposed = event("Raced", racer * 1000 + round);
                    let id = proposed.id;
                    let result = store
                        .append(&stream, ExpectedRevision::Exact(round), vec![proposed])
                        .await;
                    outcomes.push((round, id, result));
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<_> = join_all(racers).await.into_iter().flatten().collect();

    let mut winners = BTreeMap::new();
    for (round, id, result) in outcomes {
        match result {
            Ok(written) => {
                assert_eq!(written.revision, round + 1, "the winner's revision");
                let earlier = winners.insert(round, id);
                assert!(
                    earlier.is_none(),
                    "two winners in round {round}: {earlier:?} and {id}"
                );
            }
            loser => support::assert_wrong_expected(
                loser,
                ExpectedRevision::Exact(round),
                CurrentRevision::Current(round + 1),
            ),
        }
    }
    assert_eq!(winners.len() as u64, ROUNDS, "one winner per round");

    let stored = read_stream(&*store, &stream).await;
    assert_gapless_from_zero(&stored);
    let expected: Vec<EventId> = std::iter::once(seed_id)
        .chain(winners.into_values())
        .collect();
    assert_eq!(ids(&stored), expected, "the seed, then each round's winner");
}

/// Writers that read the current revision, append with `Exact` and retry on conflict all get
/// through: the stream ends with every writer's events exactly once, gapless, each writer's in
/// its own order.
async fn retrying_writers_lose_and_duplicate_nothing<S: EventStore>(store: Arc<S>) {
    const WRITERS: u64 = 8;
    const EVENTS_PER_WRITER: u64 = 12;
    const ATTEMPTS_MAX: u64 = 10_000;
    let stream = support::stream("race-retry");
    let writers = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for k in 0..EVENTS_PER_WRITER {
                    let proposed = event("Counted", writer * 1000 + k);
                    let mut attempts = 0;
                    let result = loop {
                        attempts += 1;
                        assert!(
                            attempts <= ATTEMPTS_MAX,
                            "writer {writer} never got through"
                        );
                        let newest = ReadStreamOptions::backwards().limit(1);
                        let expected = match store.read_stream(&stream, newest).await {
                            Ok(events) => ExpectedRevision::Exact(events[0].revision),
                            Err(Error::StreamNotFound { .. }) => ExpectedRevision::NoStream,
                            Err(error) => panic!("reading the stream's revision: {error}"),
                        };
                        match store
                            .append(&stream, expected, vec![proposed.clone()])
                            .await
                        {
                            Ok(result) => break result,
                            Err(Error::WrongExpectedRevision { .. }) => {
                                tokio::task::yield_now().await;
                            }
                            Err(error) => panic!("appending: {error}"),
                        }
                    };
                    written.push((proposed.id, result));
                }
                written
            })
        })
        .collect();
    let written = join_all(writers).await;

    let stored = read_stream(&*store, &stream).await;
    assert_eq!(stored.len() as u64, WRITERS * EVENTS_PER_WRITER);
    assert_gapless_from_zero(&stored);
    let by_id: HashMap<EventId, &RecordedEvent> =
        stored.iter().map(|event| (event.id, event)).collect();
    assert_eq!(by_id.len(), stored.len(), "no id stored twice");
    for (writer, acknowledged) in written.iter().enumerate() {
        let mut previous = None;
        for (id, result) in acknowledged {
            let event = by_id
                .get(id)
                .unwrap_or_else(|| panic!("writer {writer}'s event {id} was lost"));
            assert_eq!(event.revision, result.revision, "acknowledged revision");
            assert_eq!(event.position, result.position, "acknowledged position");
            assert!(
                previous < Some(event.revision),
                "writer {writer}'s events out of order"
            );
            previous = Some(event.revision);
        }
    }
}

/// An acknowledged append, as a writer saw it.
struct Ack {
    stream: StreamName,
    ids: Vec<EventId>,
    result: AppendResult,
}

/// Appends racing on many streams get unique positions; `$all` then holds exactly those
/// events in position order, with non-decreasing recorded times (one per append); each stream's
/// revisions are gapless; and the head is the last position.
async fn concurrent_appends_to_many_streams_get_unique_ordered_positions<S: EventStore>(
    store: Arc<S>,
) {
    const WRITERS: u64 = 8;
    const APPENDS_PER_WRITER: u64 = 25;
    const STREAMS: u64 = 6;
    let streams: Vec<StreamName> = (0..STREAMS).map(|_| support::stream("race-many")).collect();
    let writers = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                let mut acks = Vec::new();
                for index in 0..APPENDS_PER_WRITER {
                    let stream = streams[((writer + index * 5) % STREAMS) as usize].clone();
                    let batch = events("Spread", writer * 1000 + index * 10, 1 + index % 3);
                    let ids = proposed_ids(&batch);
                    let result = store
                        .append(&stream, ExpectedRevision::Any, batch)
                        .await
                        .expect("appending");
                    acks.push(Ack {
                        stream,
                        ids,
                        result,
                    });
                    tokio::task::yield_now().await;
                }
                acks
            })
        })
        .collect();
    let acks: Vec<Ack> = join_all(writers).await.into_iter().flatten().collect();

    let mut positions = HashSet::new();
    for ack in &acks {
        assert!(
            positions.insert(ack.result.position),
            "position {} acknowledged twice",
            ack.result.position
        );
    }

    let all = read_all(&*store, ReadAllOptions::forwards()).await;
    for pair in all.windows(2) {
        assert!(pair[0].position < pair[1].position, "$all out of order");
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "recorded time went back along $all"
        );
    }
    let acknowledged: HashSet<EventId> = acks.iter().flat_map(|ack| ack.ids.clone()).collect();
    let stored: HashSet<EventId> = ids(&all).into_iter().collect();
    assert_eq!(stored.len(), all.len(), "no id twice in $all");
    assert_eq!(
        stored, acknowledged,
        "$all holds exactly the acknowledged events"
    );
    let last = all.last().expect("events were written");
    assert_eq!(store.head().await.expect("the head"), last.position);

    let by_id: HashMap<EventId, &RecordedEvent> =
        all.iter().map(|event| (event.id, event)).collect();
    for ack in &acks {
        let written: Vec<&RecordedEvent> = ack.ids.iter().map(|id| by_id[id]).collect();
        let newest = written.last().expect("appends are not empty");
        assert_eq!(
            newest.position, ack.result.position,
            "acknowledged position"
        );
        assert_eq!(
            newest.revision, ack.result.revision,
            "acknowledged revision"
        );
        for pair in written.windows(2) {
            assert_eq!(pair[0].stream, ack.stream);
            assert_eq!(
                pair[1].revision,
                pair[0].revision + 1,
                "one append, consecutive"
            );
            assert!(pair[0].position < pair[1].position);
            assert_eq!(
                pair[0].recorded_at, pair[1].recorded_at,
                "one append, one time"
            );
        }
    }
    for stream in &streams {
        let events = read_stream(&*store, stream).await;
        assert_gapless_from_zero(&events);
        let in_all: Vec<EventId> = all
            .iter()
            .filter(|event| event.stream == *stream)
            .map(|event| event.id)
            .collect();
        assert_eq!(ids(&events), in_all, "{stream} reads as $all orders it");
    }
}

/// Races `RACERS` tasks appending the same batch with `expected`, and checks that all of them
/// succeed with one identical result and that the batch was written once, after `before`.
async fn race_identical_batches<S: EventStore>(
    store: &Arc<S>,
    stream: &StreamName,
    expected: ExpectedRevision,
    before: &[EventId],
) {
    const RACERS: usize = 8;
    let batch = events("Retried", 0, 3);
    let batch_ids = proposed_ids(&batch);
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            let batch = batch.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.append(&stream, expected, batch).await
            })
        })
        .collect();
    let results: Vec<AppendResult> = join_all(racers)
        .await
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|error| {
                panic!("a retry of the same batch with {expected} failed: {error}")
            })
        })
        .collect();
    assert!(
        results.iter().all(|result| *result == results[0]),
        "every retry with {expected} answers the original result: {results:?}"
    );

    let stored = read_stream(&**store, stream).await;
    let expected_ids: Vec<EventId> = before.iter().chain(&batch_ids).copied().collect();
    assert_eq!(
        ids(&stored),
        expected_ids,
        "the batch written once with {expected}"
    );
    let last = stored.last().expect("the batch was written");
    assert_eq!(results[0].position, last.position);
    assert_eq!(results[0].revision, last.revision);
}

/// Tasks appending the same batch (same ids) at once, with `NoStream`, `Exact` or `Any`: one
/// writes, every other recognises the retry, all get the same result, and the batch is stored
/// once.
async fn concurrent_identical_retries_write_once_and_agree<S: EventStore>(store: Arc<S>) {
    let fresh = support::stream("race-idempotent");
    race_identical_batches(&store, &fresh, ExpectedRevision::NoStream, &[]).await;

    for expected in [ExpectedRevision::Exact(1), ExpectedRevision::Any] {
        let stream = support::stream("race-idempotent");
        let existing = events("Existing", 0, 2);
        let existing_ids = proposed_ids(&existing);
        store
            .append(&stream, ExpectedRevision::NoStream, existing)
            .await
            .expect("writing the stream's start");
        race_identical_batches(&store, &stream, expected, &existing_ids).await;
    }

    let all = read_all(&*store, ReadAllOptions::forwards()).await;
    assert_eq!(all.len(), 3 + 2 * (2 + 3), "nothing written twice in $all");
}

/// Readers running alongside writers of 5-event appends see each append whole or not at all,
/// in `$all` and in stream reads, and always a prefix of each stream.
async fn readers_never_see_part_of_an_append<S: EventStore>(store: Arc<S>) {
    const BATCH_EVENTS: u64 = 5;
    const WRITERS: u64 = 3;
    const APPENDS_PER_WRITER: u64 = 40;
    const READERS: usize = 2;
    let streams: Vec<StreamName> = (0..2).map(|_| support::stream("race-atomic")).collect();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<JoinHandle<u64>> = (0..READERS)
        .map(|_| {
            let store = store.clone();
            let streams = streams.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut reads = 0;
                loop {
                    // Reading the flag before reading the store guarantees one complete read
                    // after the last append.
                    let finished = done.load(Ordering::Acquire);
                    let all = read_all(&*store, ReadAllOptions::forwards()).await;
                    for stream in &streams {
                        let in_all: Vec<RecordedEvent> = all
                            .iter()
                            .filter(|event| event.stream == *stream)
                            .cloned()
                            .collect();
                        assert_eq!(
                            in_all.len() as u64 % BATCH_EVENTS,
                            0,
                            "$all shows part of an append to {stream}"
                        );
                        assert_gapless_from_zero(&in_all);
                        let read = match store
                            .read_stream(stream, ReadStreamOptions::forwards())
                            .await
                        {
                            Ok(events) => events,
                            Err(Error::StreamNotFound { .. }) => Vec::new(),
                            Err(error) => panic!("reading {stream}: {error}"),
                        };
                        assert_eq!(
                            read.len() as u64 % BATCH_EVENTS,
                            0,
                            "a read of {stream} shows part of an append"
                        );
                        assert_gapless_from_zero(&read);
                    }
                    reads += 1;
                    if finished {
                        return reads;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let writers = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                for index in 0..APPENDS_PER_WRITER {
                    let stream = &streams[((writer + index) % 2) as usize];
                    let batch = events("Whole", writer * 1000 + index * 10, BATCH_EVENTS);
                    store
                        .append(stream, ExpectedRevision::Any, batch)
                        .await
                        .expect("appending");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    join_all(writers).await;
    done.store(true, Ordering::Release);
    let reads = join_all(readers).await;
    assert!(reads.iter().all(|count| *count >= 1));

    let all = read_all(&*store, ReadAllOptions::forwards()).await;
    assert_eq!(
        all.len() as u64,
        WRITERS * APPENDS_PER_WRITER * BATCH_EVENTS
    );
}

/// Appends racing a tombstone either land before it (their positions are lower) or fail with
/// `StreamDeleted`; none lands after it, and the tombstone is the stream's last event.
async fn appends_racing_a_tombstone_land_before_it_or_fail<S: EventStore>(store: Arc<S>) {
    const WRITERS: u64 = 4;
    const APPENDS_MAX: u64 = 100_000;
    let stream = support::stream("race-tombstone");
    let (progress, mut appended) = watch::channel(0u64);
    let progress = Arc::new(progress);
    let writers = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let stream = stream.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for index in 0..APPENDS_MAX {
                    let proposed = event("BeforeTheEnd", writer * 1_000_000 + index);
                    let id = proposed.id;
                    match store
                        .append(&stream, ExpectedRevision::Any, vec![proposed])
                        .await
                    {
                        Ok(result) => written.push((id, result)),
                        Err(Error::StreamDeleted { .. }) => return written,
                        Err(error) => panic!("appending: {error}"),
                    }
                    progress.send_modify(|count| *count += 1);
                    tokio::task::yield_now().await;
                }
                panic!("writer {writer} never saw the tombstone");
            })
        })
        .collect();

    timeout(WAIT, appended.wait_for(|count| *count >= 20))
        .await
        .expect("the writers make progress")
        .expect("the progress channel");
    let tombstone = store
        .tombstone_stream(&stream, ExpectedRevision::Any)
        .await
        .expect("tombstoning");
    let written: Vec<(EventId, AppendResult)> =
        join_all(writers).await.into_iter().flatten().collect();

    for (id, result) in &written {
        assert!(
            result.position < tombstone.position,
            "append of {id} at {} acknowledged after the tombstone at {}",
            result.position,
            tombstone.position
        );
    }
    let of_stream: Vec<RecordedEvent> =
        read_all(&*store, ReadAllOptions::forwards().include_system())
            .await
            .into_iter()
            .filter(|event| event.stream == stream)
            .collect();
    assert_gapless_from_zero(&of_stream);
    let (marker, appended_events) = of_stream.split_last().expect("the tombstone is in $all");
    assert_eq!(marker.event_type, rules::STREAM_DELETED_EVENT_TYPE);
    assert_eq!(marker.position, tombstone.position);
    let stored: HashSet<EventId> = ids(appended_events).into_iter().collect();
    let acknowledged: HashSet<EventId> = written.iter().map(|(id, _)| *id).collect();
    assert_eq!(stored.len(), appended_events.len());
    assert_eq!(
        stored, acknowledged,
        "exactly the acknowledged appends precede the tombstone"
    );
}
