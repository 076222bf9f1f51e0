//! Crash simulation: for each seed, run a random workload on the embedded engine over a
//! simulated disk, pull the plug at a random I/O operation (sometimes after an injected fsync
//! or ENOSPC failure), rebuild the disk a power loss leaves, reopen, and check that every
//! acknowledged append is there, whole and in place, that nothing else is half there, and that
//! the store keeps working.
//!
//! Run more seeds with `FACTUM_SIM_SEEDS=20000`, or one seed with `FACTUM_SIM_SEED=N`
//! (`cargo test -p factum-sim --test crash_simulation`). A failure prints its seed.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use factum_core::rules::{self, StreamState};
use factum_core::{
    AppendResult, CONTENT_TYPE_JSON, Error, EventId, EventStore, ExpectedRevision,
    METADATA_EVENT_TYPE, ProposedEvent, ReadAllOptions, ReadStreamOptions, RecordedEvent,
    StreamMetadata, StreamName,
};
use factum_log::{EmbeddedStore, Options};
use factum_sim::{Faults, Rng, SimStorage};

/// Seeds in the default run.
const SEEDS_DEFAULT: u64 = 2_000;
/// Crash points are drawn from `0..CRASH_OPS_MAX` mutating operations. A full workload issues
/// about this many, so most seeds crash mid-way and some never crash before the end.
const CRASH_OPS_MAX: u64 = 100;
/// Operations each workload issues, shared between its tasks.
const WORKLOAD_OPS: u64 = 48;
/// The streams the workload writes.
const STREAM_COUNT: u64 = 5;
const TOMBSTONE_EVENT_TYPE: &str = "$streamDeleted";

/// How a request ended, as its caller saw it.
#[derive(Debug, Clone, Copy)]
enum Outcome<T> {
    /// Acknowledged: it must survive every crash.
    Acked(T),
    /// Refused by a rule: nothing may be written.
    Rejected,
    /// Failed with an I/O error or `Unavailable`: it may be there (whole) or not.
    Unknown,
}

#[derive(Debug)]
struct AppendAttempt {
    stream: StreamName,
    events: Vec<ProposedEvent>,
    outcome: Outcome<AppendResult>,
}

#[derive(Debug)]
struct DeleteAttempt {
    stream: StreamName,
    tombstone: bool,
    outcome: Outcome<u64>,
}

/// Every request the workload made and how it ended.
#[derive(Debug, Default)]
struct Journal {
    appends: Vec<AppendAttempt>,
    deletes: Vec<DeleteAttempt>,
}

fn outcome_of<T, U>(result: Result<T, Error>, acked: impl FnOnce(T) -> U) -> Outcome<U> {
    match result {
        Ok(value) => Outcome::Acked(acked(value)),
        Err(Error::Io(_) | Error::Unavailable { .. }) => Outcome::Unknown,
        Err(error @ Error::Corrupt { .. }) => panic!("the live store reports corruption: {error}"),
        Err(_) => Outcome::Rejected,
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("FACTUM_SIM_SEED") {
        return vec![seed.parse().expect("FACTUM_SIM_SEED is a number")];
    }
    let count = std::env::var("FACTUM_SIM_SEEDS")
        .map(|count| count.parse().expect("FACTUM_SIM_SEEDS is a number"))
        .unwrap_or(SEEDS_DEFAULT);
    (0..count).collect()
}

fn stream(index: u64) -> StreamName {
    StreamName::new(format!("sim-{index}")).expect("a valid name")
}

fn event_id(rng: &mut Rng) -> EventId {
    EventId(uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()))
}

fn random_event(rng: &mut Rng) -> ProposedEvent {
    let data_len = rng.below(80) as usize;
    let mut event = ProposedEvent::bytes(format!("Happened{}", rng.below(4)), rng.bytes(data_len))
        .with_id(event_id(rng));
    if rng.chance(1, 4) {
        let metadata_len = rng.range(1, 24) as usize;
        event = event.with_metadata(rng.bytes(metadata_len));
    }
    if rng.chance(1, 5) {
        event = event.with_tags(["tag-a", "b"]);
    }
    event
}

/// One task of the workload: random appends, metadata and deletes until its share of
/// operations is done or the store stops answering.
async fn run_task(store: Arc<EmbeddedStore>, journal: Arc<Mutex<Journal>>, mut rng: Rng, ops: u64) {
    for _ in 0..ops {
        let target = stream(rng.below(STREAM_COUNT));
        let roll = rng.below(100);
        let unknown = if roll < 80 {
            let count = rng.range(1, 5);
            let events: Vec<ProposedEvent> = (0..count).map(|_| random_event(&mut rng)).collect();
            let expected = match rng.below(10) {
                0 => ExpectedRevision::NoStream,
                1 => ExpectedRevision::StreamExists,
                _ => ExpectedRevision::Any,
            };
            let result = store.append(&target, expected, events.clone()).await;
            let outcome = outcome_of(result, |result| result);
            journal
                .lock()
                .expect("journal")
                .appends
                .push(AppendAttempt {
                    stream: target,
                    events,
                    outcome,
                });
            matches!(outcome, Outcome::Unknown)
        } else if roll < 90 {
            // Metadata written as a plain append, so its id is known.
            let json = serde_json::json!({ "note": rng.below(1000) });
            let event = ProposedEvent::new(
                METADATA_EVENT_TYPE,
                CONTENT_TYPE_JSON,
                serde_json::to_vec(&json).expect("json"),
            )
            .with_id(event_id(&mut rng));
            let metadata_stream = target.metadata_stream().expect("a plain stream");
            let result = store
                .append(&metadata_stream, ExpectedRevision::Any, vec![event.clone()])
                .await;
            let outcome = outcome_of(result, |result| result);
            journal
                .lock()
                .expect("journal")
                .appends
                .push(AppendAttempt {
                    stream: metadata_stream,
                    events: vec![event],
                    outcome,
                });
            matches!(outcome, Outcome::Unknown)
        } else {
            let tombstone = roll >= 98;
            let result = if tombstone {
                store.tombstone_stream(&target, ExpectedRevision::Any).await
            } else {
                store.delete_stream(&target, ExpectedRevision::Any).await
            };
            let outcome = outcome_of(result, |result| result.position.0);
            journal
                .lock()
                .expect("journal")
                .deletes
                .push(DeleteAttempt {
                    stream: target,
                    tombstone,
                    outcome,
                });
            matches!(outcome, Outcome::Unknown)
        };
        if unknown {
            // The disk is gone or the store has stopped: later requests cannot succeed.
            return;
        }
    }
}

fn assert_same_event(recorded: &RecordedEvent, proposed: &ProposedEvent, stream: &StreamName) {
    assert_eq!(recorded.id, proposed.id, "event id");
    assert_eq!(&recorded.stream, stream, "stream of {}", proposed.id);
    assert_eq!(
        recorded.event_type, proposed.event_type,
        "type of {}",
        proposed.id
    );
    assert_eq!(recorded.schema_version, proposed.schema_version);
    assert_eq!(recorded.content_type, proposed.content_type);
    assert_eq!(recorded.data, proposed.data, "data of {}", proposed.id);
    assert_eq!(
        recorded.metadata, proposed.metadata,
        "metadata of {}",
        proposed.id
    );
    assert_eq!(recorded.tags, proposed.tags, "tags of {}", proposed.id);
}

/// Checks a reopened store against the journal; returns every event of `$all`.
async fn verify(store: &EmbeddedStore, journal: &Journal) -> Vec<RecordedEvent> {
    let slice = store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("$all reads after reopen");
    assert!(slice.end_of_log);
    let events = slice.events;
    let head = store.head().await.expect("head").0;
    assert_eq!(events.len() as u64, head, "positions are dense 1..=head");
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.position.0, index as u64 + 1, "positions are dense");
    }
    for pair in events.windows(2) {
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "recorded_at never decreases"
        );
    }

    let mut by_id: HashMap<EventId, usize> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert!(
            by_id.insert(event.id, index).is_none(),
            "id {} twice",
            event.id
        );
    }
    let mut claimed = vec![false; events.len()];
    for attempt in &journal.appends {
        let found: Vec<Option<usize>> = attempt
            .events
            .iter()
            .map(|event| by_id.get(&event.id).copied())
            .collect();
        let present = found.iter().flatten().count();
        let count = attempt.events.len();
        match attempt.outcome {
            Outcome::Acked(result) => {
                assert_eq!(
                    present, count,
                    "acknowledged append {attempt:?} is all there"
                );
                let first_position = result.position.0 + 1 - count as u64;
                let first_revision = result.revision + 1 - count as u64;
                for (offset, (proposed, index)) in attempt.events.iter().zip(&found).enumerate() {
                    let recorded = &events[index.expect("present")];
                    assert_same_event(recorded, proposed, &attempt.stream);
                    assert_eq!(
                        recorded.position.0,
                        first_position + offset as u64,
                        "position"
                    );
                    assert_eq!(
                        recorded.revision,
                        first_revision + offset as u64,
                        "revision"
                    );
                }
            }
            Outcome::Rejected => {
                assert_eq!(present, 0, "a refused append wrote nothing: {attempt:?}");
            }
            Outcome::Unknown => {
                assert!(
                    present == 0 || present == count,
                    "an unacknowledged append is all there or not at all: {present} of {count}: {attempt:?}"
                );
                if present == count {
                    let first = found[0].expect("present");
                    for (offset, (proposed, index)) in attempt.events.iter().zip(&found).enumerate()
                    {
                        assert_eq!(index.expect("present"), first + offset, "contiguous");
                        let recorded = &events[first + offset];
                        assert_same_event(recorded, proposed, &attempt.stream);
                        assert_eq!(recorded.revision, events[first].revision + offset as u64);
                    }
                }
            }
        }
        for index in found.into_iter().flatten() {
            claimed[index] = true;
        }
    }

    // What is left was written by deletes: one event each.
    let mut deletes_possible = journal
        .deletes
        .iter()
        .filter(|delete| !matches!(delete.outcome, Outcome::Rejected))
        .count();
    for delete in &journal.deletes {
        if let Outcome::Acked(position) = delete.outcome {
            let index = position as usize - 1;
            let event = events.get(index).expect("an acknowledged delete is there");
            if delete.tombstone {
                assert_eq!(event.stream, delete.stream);
                assert_eq!(event.event_type, TOMBSTONE_EVENT_TYPE);
            } else {
                assert_eq!(
                    Some(&event.stream),
                    delete.stream.metadata_stream().as_ref()
                );
                assert_eq!(event.event_type, METADATA_EVENT_TYPE);
                let metadata = StreamMetadata::from_json(&event.data).expect("metadata");
                assert!(metadata.truncate_before.is_some(), "a soft delete sets $tb");
            }
            assert!(!claimed[index], "a delete's event is its own");
        }
    }
    for (event, claimed) in events.iter().zip(&claimed) {
        if *claimed {
            continue;
        }
        assert!(
            event.event_type == TOMBSTONE_EVENT_TYPE
                || (event.event_type == METADATA_EVENT_TYPE && event.stream.is_metadata()),
            "an event nobody appended: {event:?}"
        );
        assert!(
            deletes_possible > 0,
            "more delete events than deletes: {event:?}"
        );
        deletes_possible -= 1;
    }

    // Revisions are dense per stream, and every stream reads as the rules say it should.
    let mut by_stream: HashMap<StreamName, Vec<&RecordedEvent>> = HashMap::new();
    for event in &events {
        by_stream
            .entry(event.stream.clone())
            .or_default()
            .push(event);
    }
    for (name, stream_events) in &by_stream {
        for (revision, event) in stream_events.iter().enumerate() {
            assert_eq!(
                event.revision, revision as u64,
                "revisions of {name} are dense"
            );
        }
    }
    for index in 0..STREAM_COUNT {
        let name = stream(index);
        check_stream_read(store, &by_stream, &name).await;
        let metadata_name = name.metadata_stream().expect("a plain stream");
        check_stream_read(store, &by_stream, &metadata_name).await;
    }
    events
}

/// Reads `name` and compares with what `$all` says it holds, by the rules' own read plan.
async fn check_stream_read(
    store: &EmbeddedStore,
    by_stream: &HashMap<StreamName, Vec<&RecordedEvent>>,
    name: &StreamName,
) {
    let described = name.metadata_of();
    let plain = described.as_ref().unwrap_or(name);
    let empty = Vec::new();
    let own = by_stream.get(name).unwrap_or(&empty);
    let plain_events = by_stream.get(plain).unwrap_or(&empty);
    let tombstoned = plain_events
        .last()
        .is_some_and(|event| event.event_type == TOMBSTONE_EVENT_TYPE);
    let metadata = match plain
        .metadata_stream()
        .and_then(|meta| by_stream.get(&meta))
    {
        Some(meta_events) => {
            StreamMetadata::from_json(&meta_events.last().expect("not empty").data)
                .expect("metadata")
        }
        None => StreamMetadata::default(),
    };
    let state = StreamState {
        last_revision: own.last().map(|event| event.revision),
        truncate_before: if name.is_metadata() {
            None
        } else {
            metadata.truncate_before
        },
        tombstoned,
    };
    let options = ReadStreamOptions::forwards();
    let expected = rules::plan_stream_read(name, &state, &metadata, &options);
    let actual = store.read_stream(name, options).await;
    match (expected, actual) {
        (Err(expected), Err(actual)) => assert_eq!(expected.kind(), actual.kind(), "{name}"),
        (Ok(None), Ok(actual)) => assert!(actual.is_empty(), "{name} reads empty"),
        (Ok(Some(plan)), Ok(actual)) => {
            let wanted: Vec<&RecordedEvent> = plan
                .revisions()
                .map(|revision| own[revision as usize])
                .collect();
            assert_eq!(actual.len(), wanted.len(), "{name}: event count");
            for (actual, wanted) in actual.iter().zip(wanted) {
                assert_eq!(actual, wanted, "{name}: read_stream agrees with $all");
            }
        }
        (expected, actual) => panic!("{name}: expected {expected:?}, read {actual:?}"),
    }
}

fn options_for(rng: &mut Rng) -> Options {
    Options {
        // Small segments: sealing, index writes and rollover happen often and get interrupted.
        segment_size_bytes_max: [1024, 2048, 4096][rng.below(3) as usize],
        ..Options::default()
    }
}

fn reopen(storage: &SimStorage, options: &Options) -> EmbeddedStore {
    EmbeddedStore::open_on(Arc::new(storage.clone()), options.clone())
        .unwrap_or_else(|error| panic!("the store reopens after a crash: {error}"))
}

async fn run_seed(seed: u64) {
    let mut rng = Rng::new(seed);
    let options = options_for(&mut rng);
    let storage = SimStorage::new(rng.next_u64());
    let store = Arc::new(
        EmbeddedStore::open_on(Arc::new(storage.clone()), options.clone())
            .expect("a fresh store opens"),
    );
    let mut faults = Faults {
        crash_after_ops: Some(rng.below(CRASH_OPS_MAX)),
        ..Faults::default()
    };
    match rng.below(10) {
        0 => faults.fail_sync_data = Some(rng.range(1, 30)),
        1 => faults.fail_write = Some(rng.range(1, 30)),
        _ => {}
    }
    storage.set_faults(faults);

    let journal = Arc::new(Mutex::new(Journal::default()));
    let task_count = rng.range(1, 3);
    let mut tasks = Vec::new();
    for _ in 0..task_count {
        tasks.push(tokio::spawn(run_task(
            store.clone(),
            journal.clone(),
            Rng::new(rng.next_u64()),
            WORKLOAD_OPS / task_count,
        )));
    }
    for task in tasks {
        task.await.expect("a workload task panicked");
    }
    // The power goes now, whether or not the planned crash came.
    let after = storage.crash();
    drop(store);
    let journal = Arc::into_inner(journal)
        .expect("tasks are done")
        .into_inner()
        .expect("journal");

    let reopened = reopen(&after, &options);
    let recovered = verify(&reopened, &journal).await;

    // The store keeps working: a new append lands right after the head.
    let fresh = StreamName::new("after-crash").expect("a valid name");
    let event = random_event(&mut rng);
    let written = reopened
        .append(&fresh, ExpectedRevision::NoStream, vec![event.clone()])
        .await
        .expect("an append after recovery works");
    assert_eq!(
        written.position.0,
        recovered.len() as u64 + 1,
        "it continues the log"
    );
    assert_eq!(written.revision, 0);

    // Recovery itself is crash-safe: crash again; the recovered events and the new append stay.
    let again = after.crash();
    drop(reopened);
    let reopened = reopen(&again, &options);
    let mut journal = journal;
    journal.appends.push(AppendAttempt {
        stream: fresh,
        events: vec![event],
        outcome: Outcome::Acked(written),
    });
    let events = verify(&reopened, &journal).await;
    assert_eq!(
        events.len(),
        recovered.len() + 1,
        "nothing recovered is lost in a second crash"
    );
    assert_eq!(&events[..recovered.len()], &recovered[..]);
}

#[test]
fn acknowledged_appends_survive_a_crash_at_any_operation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let seeds = seeds();
    let started = Instant::now();
    for seed in &seeds {
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(run_seed(*seed))));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!(
                "crash simulation failed for seed {seed}: {message}\n\
                 rerun it alone: FACTUM_SIM_SEED={seed} cargo test -p factum-sim --test crash_simulation"
            );
        }
    }
    eprintln!("{} seeds in {:?}", seeds.len(), started.elapsed());
}
