//! Injected I/O faults on the simulated disk: a failed fsync, a full disk, and crashes and
//! failures while a segment is being sealed. The engine must fail the request, stop taking
//! appends (fail-stop) while still serving reads of what it acknowledged, and come back whole
//! after a reopen.

use std::sync::Arc;

use factum_core::{
    AppendResult, Error, EventId, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, StreamName,
};
use factum_log::index::SealedIndex;
use factum_log::segment::{index_file_name, parse_file_name, segment_file_name};
use factum_log::storage::Storage;
use factum_log::{EmbeddedStore, Options};
use factum_sim::{ENOSPC, Faults, Rng, SimStorage};

const SEGMENT_SIZE_BYTES_MAX: u64 = 2048;
const STREAMS: [&str; 3] = ["fault-a", "fault-b", "fault-c"];

fn options() -> Options {
    Options {
        segment_size_bytes_max: SEGMENT_SIZE_BYTES_MAX,
        ..Options::default()
    }
}

fn open(storage: &SimStorage) -> EmbeddedStore {
    EmbeddedStore::open_on(Arc::new(storage.clone()), options())
        .unwrap_or_else(|error| panic!("the store opens: {error}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

fn name(stream: &str) -> StreamName {
    StreamName::new(stream).expect("a valid name")
}

/// An event with an id and data drawn from `rng`, so a run replays exactly.
fn event(rng: &mut Rng) -> ProposedEvent {
    let data_len = rng.range(20, 90) as usize;
    ProposedEvent::bytes("Happened", rng.bytes(data_len)).with_id(EventId(
        uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()),
    ))
}

/// The acknowledged appends so far, as (stream, events, result).
type Acked = Vec<(StreamName, Vec<ProposedEvent>, AppendResult)>;

/// Appends `count` appends of 1–3 events round-robin over the streams, stopping at the first
/// error (returned).
async fn append_some(
    store: &EmbeddedStore,
    rng: &mut Rng,
    count: usize,
    acked: &mut Acked,
) -> Option<Error> {
    for _ in 0..count {
        let stream = name(STREAMS[rng.below(STREAMS.len() as u64) as usize]);
        let events: Vec<ProposedEvent> = (0..rng.range(1, 3)).map(|_| event(rng)).collect();
        match store
            .append(&stream, ExpectedRevision::Any, events.clone())
            .await
        {
            Ok(result) => acked.push((stream, events, result)),
            Err(error) => return Some(error),
        }
    }
    None
}

async fn all_events(store: &EmbeddedStore) -> Vec<RecordedEvent> {
    store
        .read_all(ReadAllOptions::forwards().include_system())
        .await
        .expect("$all reads")
        .events
}

/// The store holds exactly the acknowledged appends, in order, and each stream reads back
/// (through the sealed indexes too) as written.
async fn assert_holds_exactly(store: &EmbeddedStore, acked: &Acked) {
    let events = all_events(store).await;
    let expected: Vec<(&StreamName, &ProposedEvent)> = acked
        .iter()
        .flat_map(|(stream, events, _)| events.iter().map(move |event| (stream, event)))
        .collect();
    assert_eq!(
        events.len(),
        expected.len(),
        "exactly the acknowledged events"
    );
    for (index, (recorded, (stream, proposed))) in events.iter().zip(&expected).enumerate() {
        assert_eq!(recorded.position.0, index as u64 + 1);
        assert_eq!(recorded.id, proposed.id);
        assert_eq!(&recorded.stream, *stream);
        assert_eq!(recorded.data, proposed.data);
    }
    assert_eq!(store.head().await.expect("head").0, expected.len() as u64);
    for (stream, _, result) in acked {
        let read = store
            .read_stream(stream, ReadStreamOptions::forwards())
            .await
            .expect("an acknowledged stream reads");
        let last = read.last().expect("not empty");
        assert!(last.revision >= result.revision);
        let at = read
            .iter()
            .find(|event| event.revision == result.revision)
            .expect("the acknowledged revision is there");
        assert_eq!(at.position, result.position, "at its acknowledged position");
    }
    for stream in STREAMS {
        if let Ok(read) = store
            .read_stream(&name(stream), ReadStreamOptions::forwards())
            .await
        {
            for (revision, event) in read.iter().enumerate() {
                assert_eq!(event.revision, revision as u64, "{stream} is dense");
            }
        }
    }
}

fn assert_unavailable(result: Result<impl std::fmt::Debug, Error>, what: &str) {
    match result {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// The current length of the highest-numbered segment file.
fn last_segment_len(storage: &SimStorage) -> u64 {
    let last = storage
        .file_names()
        .iter()
        .filter_map(|name| parse_file_name(name))
        .filter(|(_, is_index)| !is_index)
        .map(|(number, _)| number)
        .max()
        .expect("a segment");
    storage
        .contents(&segment_file_name(last))
        .expect("the segment")
        .len() as u64
}

/// Fail-stop after a failed fsync: the append fails, later ones are refused, reads still show
/// exactly what was acknowledged, and a reopen brings the store back with nothing lost.
#[test]
fn a_failed_fsync_fails_the_append_and_stops_appends_until_reopen() {
    let runtime = runtime();
    for seed in 0..20 {
        runtime.block_on(async {
            let mut rng = Rng::new(seed);
            let storage = SimStorage::new(seed);
            let store = open(&storage);
            let mut acked = Acked::new();
            let warmup = rng.range(0, 30) as usize;
            assert!(
                append_some(&store, &mut rng, warmup, &mut acked)
                    .await
                    .is_none()
            );
            let len_before = last_segment_len(&storage);
            storage.set_faults(Faults {
                fail_sync_data: Some(1),
                ..Faults::default()
            });

            let failed = event(&mut rng);
            let result = store
                .append(
                    &name("fault-a"),
                    ExpectedRevision::Any,
                    vec![failed.clone()],
                )
                .await;
            assert!(
                matches!(result, Err(Error::Unavailable { .. } | Error::Io(_))),
                "seed {seed}: the append whose fsync failed fails: {result:?}"
            );
            if last_segment_len(&storage) == len_before {
                // The usual case: the failed group was cut off again.
            } else {
                // The append rolled to a new segment whose header sync failed: nothing of the
                // append was written anywhere.
                assert!(
                    SEGMENT_SIZE_BYTES_MAX.saturating_sub(len_before) < 512,
                    "seed {seed}"
                );
            }
            for stream in STREAMS {
                let later = store
                    .append(&name(stream), ExpectedRevision::Any, vec![event(&mut rng)])
                    .await;
                assert_unavailable(later, "an append after a failed fsync");
            }
            let delete = store
                .delete_stream(&name("fault-b"), ExpectedRevision::Any)
                .await;
            assert_unavailable(delete, "a delete after a failed fsync");
            assert_holds_exactly(&store, &acked).await;
            drop(store);

            // A clean restart (no power loss): the store comes back whole and takes appends.
            let restarted = storage.restart();
            let store = open(&restarted);
            assert_holds_exactly(&store, &acked).await;
            assert!(append_some(&store, &mut rng, 5, &mut acked).await.is_none());
            assert_holds_exactly(&store, &acked).await;
            // A power loss from here is `a_rolled_back_tail_stays_rolled_back_after_a_restart_and_a_seal`.
        });
    }
}

/// A full disk: the append fails, its partial write is cut off (the file is as long as
/// before), reads work, later appends are refused, and a reopen works.
#[test]
fn enospc_fails_the_append_and_rolls_the_partial_tail_back() {
    let runtime = runtime();
    for seed in 0..20 {
        runtime.block_on(async {
            let mut rng = Rng::new(seed);
            let storage = SimStorage::new(seed);
            let store = open(&storage);
            let mut acked = Acked::new();
            let warmup = rng.range(1, 12) as usize;
            assert!(
                append_some(&store, &mut rng, warmup, &mut acked)
                    .await
                    .is_none()
            );
            let len_before = last_segment_len(&storage);
            let segments_before = storage.file_names();
            storage.set_faults(Faults {
                fail_write: Some(1),
                ..Faults::default()
            });
            let error = append_some(&store, &mut rng, 1, &mut acked)
                .await
                .expect("the append fails");
            assert!(
                matches!(error, Error::Unavailable { .. } | Error::Io(_)),
                "seed {seed}: {error:?}"
            );
            if storage.file_names() == segments_before {
                assert_eq!(
                    last_segment_len(&storage),
                    len_before,
                    "seed {seed}: the partial write is rolled back"
                );
            }
            assert_holds_exactly(&store, &acked).await;
            let later = store
                .append(
                    &name("fault-c"),
                    ExpectedRevision::Any,
                    vec![event(&mut rng)],
                )
                .await;
            assert_unavailable(later, "an append after ENOSPC");
            drop(store);

            let store = open(&storage.restart());
            assert_holds_exactly(&store, &acked).await;
            assert!(append_some(&store, &mut rng, 3, &mut acked).await.is_none());
            assert_holds_exactly(&store, &acked).await;
        });
    }
}

/// The error the caller sees for ENOSPC carries the OS error, so operators can tell a full
/// disk from a broken one.
#[test]
fn enospc_reaches_the_caller_as_an_io_cause() {
    let runtime = runtime();
    runtime.block_on(async {
        let storage = SimStorage::new(7);
        let store = open(&storage);
        storage.set_faults(Faults {
            fail_write: Some(1),
            ..Faults::default()
        });
        let mut rng = Rng::new(7);
        let error = store
            .append(
                &name("fault-a"),
                ExpectedRevision::Any,
                vec![event(&mut rng)],
            )
            .await
            .expect_err("no space");
        let text = error.to_string();
        let os = std::io::Error::from_raw_os_error(ENOSPC).to_string();
        assert!(text.contains(&os), "{text:?} names {os:?}");
    });
}

/// The workload of the sealing tests: single-task, so the same seed issues the same
/// operations every time.
async fn sealing_workload(store: &EmbeddedStore, acked: &mut Acked) -> Option<Error> {
    let mut rng = Rng::new(42);
    append_some(store, &mut rng, 70, acked).await
}

/// The numbers of the mutating operations that seal a segment: writing the index (temporary
/// file, fsync, rename, directory sync) and creating the next segment.
fn sealing_ops() -> (u64, Vec<(u64, String)>) {
    let runtime = runtime();
    let storage = SimStorage::new(0);
    let store = open(&storage);
    let base = storage.op_count();
    storage.start_trace();
    let mut acked = Acked::new();
    assert!(
        runtime
            .block_on(sealing_workload(&store, &mut acked))
            .is_none()
    );
    drop(store);
    let trace = storage.take_trace();
    let mut seals = 0;
    let ops: Vec<(u64, String)> = trace
        .iter()
        .filter(|line| {
            line.contains(".idx") || line.contains("sync_dir") || line.contains("open+create")
        })
        .map(|line| {
            if line.contains("rename") {
                seals += 1;
            }
            let number = line[1..line.find(' ').expect("numbered")]
                .parse()
                .expect("a number");
            (number, line.clone())
        })
        .collect();
    assert!(seals >= 3, "the workload seals a few segments: {trace:#?}");
    (base, ops)
}

/// After reopening, every sealed segment has a good index that fits it, and no temporary
/// index is left.
fn assert_indexes_fit(storage: &SimStorage) {
    let names = storage.file_names();
    assert!(
        names.iter().all(|name| !name.ends_with(".tmp")),
        "{names:?}"
    );
    let segments: Vec<u64> = names
        .iter()
        .filter_map(|name| parse_file_name(name))
        .filter(|(_, is_index)| !is_index)
        .map(|(number, _)| number)
        .collect();
    let (_, sealed) = segments.split_last().expect("a segment");
    for number in sealed {
        let file = storage
            .open(&index_file_name(*number), false)
            .unwrap_or_else(|error| panic!("sealed segment {number} has an index: {error}"));
        let index = SealedIndex::open(file).expect("the index is whole");
        assert_eq!(index.segment_number, *number);
        let segment = storage
            .contents(&segment_file_name(*number))
            .expect("segment");
        assert_eq!(index.segment_len, segment.len() as u64);
    }
}

/// A crash at each step of sealing a segment (index write, fsync, rename, directory sync,
/// next segment's creation), with several tears each: the reopened store has every
/// acknowledged event, reads streams through good indexes, and keeps working.
#[test]
fn a_crash_during_sealing_recovers_a_correct_index() {
    let runtime = runtime();
    let (base, ops) = sealing_ops();
    for (op, line) in &ops {
        for tear in 0..4 {
            runtime.block_on(async {
                let storage = SimStorage::new(tear);
                let store = open(&storage);
                assert_eq!(storage.op_count(), base, "the run replays");
                storage.set_faults(Faults {
                    crash_after_ops: Some(op - base - 1),
                    ..Faults::default()
                });
                let mut acked = Acked::new();
                let error = sealing_workload(&store, &mut acked).await;
                assert!(error.is_some(), "crash at {line} stops the workload");
                let after = storage.crash();
                drop(store);
                let store = open(&after);
                // The interrupted append was not acknowledged; it may have landed whole.
                let events = all_events(&store).await;
                let acked_events: usize = acked.iter().map(|(_, events, _)| events.len()).sum();
                assert!(
                    events.len() >= acked_events,
                    "crash at {line} (tear {tear}): acknowledged events are kept"
                );
                let mut kept = acked.clone();
                if events.len() > acked_events {
                    let extra = &events[acked_events..];
                    let stream = extra[0].stream.clone();
                    let revision = extra.last().expect("extra").revision;
                    let position = extra.last().expect("extra").position;
                    let proposed = extra
                        .iter()
                        .map(|event| {
                            ProposedEvent::bytes("Happened", event.data.clone()).with_id(event.id)
                        })
                        .collect();
                    kept.push((stream, proposed, AppendResult { position, revision }));
                }
                assert_holds_exactly(&store, &kept).await;
                assert_indexes_fit(&after);
                let mut rng = Rng::new(tear + 100);
                assert!(append_some(&store, &mut rng, 30, &mut kept).await.is_none());
                drop(store);
                // The indexes written by recovery and by the new seals serve a second open.
                let store = open(&after.restart());
                assert_holds_exactly(&store, &kept).await;
            });
        }
    }
}

/// An fsync or write failure at each step of sealing: the request fails, the store stops
/// appends, and a clean restart brings back every acknowledged event with good indexes.
#[test]
fn a_failure_during_sealing_stops_the_store_and_a_restart_recovers() {
    let runtime = runtime();
    let (base, ops) = sealing_ops();
    // Which sync and write (counting from the store's open) each sealing step is.
    let storage = SimStorage::new(0);
    let store = open(&storage);
    storage.start_trace();
    let mut acked = Acked::new();
    assert!(
        runtime
            .block_on(sealing_workload(&store, &mut acked))
            .is_none()
    );
    drop(store);
    let trace = storage.take_trace();
    let mut faults = Vec::new();
    let (mut syncs, mut writes) = (0, 0);
    for line in &trace {
        if line.contains(" sync_data ") {
            syncs += 1;
        }
        if line.contains(" write ") {
            writes += 1;
        }
        let number: u64 = line[1..line.find(' ').expect("numbered")]
            .parse()
            .expect("a number");
        if ops.iter().any(|(op, _)| *op == number) {
            if line.contains(" sync_data ") {
                faults.push((
                    Faults {
                        fail_sync_data: Some(syncs),
                        ..Faults::default()
                    },
                    line.clone(),
                ));
            }
            if line.contains(" write ") {
                faults.push((
                    Faults {
                        fail_write: Some(writes),
                        ..Faults::default()
                    },
                    line.clone(),
                ));
            }
        }
    }
    assert!(faults.len() >= 6, "{faults:?}");
    for (fault, line) in faults {
        runtime.block_on(async {
            let storage = SimStorage::new(3);
            let store = open(&storage);
            assert_eq!(storage.op_count(), base);
            storage.set_faults(fault);
            let mut acked = Acked::new();
            let error = sealing_workload(&store, &mut acked).await;
            assert!(
                matches!(error, Some(Error::Unavailable { .. } | Error::Io(_))),
                "{line}: {error:?}"
            );
            assert_holds_exactly(&store, &acked).await;
            let mut rng = Rng::new(9);
            let later = store
                .append(
                    &name("fault-a"),
                    ExpectedRevision::Any,
                    vec![event(&mut rng)],
                )
                .await;
            assert_unavailable(later, &line);
            drop(store);
            let restarted = storage.restart();
            let store = open(&restarted);
            assert_holds_exactly(&store, &acked).await;
            assert_indexes_fit(&restarted);
            assert!(
                append_some(&store, &mut rng, 30, &mut acked)
                    .await
                    .is_none()
            );
            assert_holds_exactly(&store, &acked).await;
        });
    }
}

/// Regression story: an append's fsync fails, so the writer cuts the file back with `set_len`
/// (never synced) and stops. The process restarts cleanly; recovery finds the file already cut
/// (the page cache shows the cut) and syncs nothing. The next append seals the full segment:
/// its index records the cut length, but the segment file itself is not synced again. A power
/// loss then may undo the unsynced cut and bring the failed append's frame back in a *sealed*
/// segment: the index no longer fits, the rebuilt one ends past where the next segment starts,
/// and the store refuses to open ("segment N does not continue the log").
#[test]
fn a_rolled_back_tail_stays_rolled_back_after_a_restart_and_a_seal() {
    let runtime = runtime();
    let stream = name("fault-a");
    let mut failures = Vec::new();
    for seed in 0..40 {
        runtime.block_on(async {
            let mut rng = Rng::new(1000 + seed);
            let storage = SimStorage::new(seed);
            let store = open(&storage);
            let mut acked = Acked::new();
            // Fill the first segment close to full.
            while last_segment_len(&storage) < SEGMENT_SIZE_BYTES_MAX * 3 / 4 {
                let events = vec![ProposedEvent::bytes("Happened", rng.bytes(100))];
                let result = store
                    .append(&stream, ExpectedRevision::Any, events.clone())
                    .await
                    .expect("appends");
                acked.push((stream.clone(), events, result));
            }
            // A small append that still fits: written, its fsync fails, it is cut off again.
            let cut_to = last_segment_len(&storage);
            storage.set_faults(Faults {
                fail_sync_data: Some(1),
                ..Faults::default()
            });
            let small = vec![ProposedEvent::bytes("Happened", rng.bytes(10))];
            let failed = store.append(&stream, ExpectedRevision::Any, small).await;
            assert!(failed.is_err(), "the fsync failed");
            assert_eq!(last_segment_len(&storage), cut_to, "the tail is cut off");
            drop(store);

            // A clean restart; the next append does not fit and seals the segment.
            let restarted = storage.restart();
            let store = open(&restarted);
            let big = vec![ProposedEvent::bytes("Happened", rng.bytes(700))];
            let result = store
                .append(&stream, ExpectedRevision::Any, big.clone())
                .await
                .expect("appends after the restart");
            acked.push((stream.clone(), big, result));
            assert!(
                restarted.contents(&index_file_name(1)).is_some(),
                "the first segment is sealed"
            );
            drop(store);

            let crashed = restarted.crash();
            match EmbeddedStore::open_on(Arc::new(crashed), options()) {
                Ok(store) => assert_holds_exactly(&store, &acked).await,
                Err(error) => failures.push(format!("storage seed {seed}: {error}")),
            }
        });
    }
    assert!(
        failures.is_empty(),
        "the store does not reopen after a power loss: {failures:#?}"
    );
}

/// Regression story: the process dies between an append's write and its fsync (the machine
/// stays up, so the page cache keeps the frame). On restart, recovery finds the frame whole in
/// the page cache and serves it: it is in `$all` and counts in the head. But nothing syncs it,
/// so a power loss afterwards can take it away again, and the next append reuses its position
/// for a different event: a reader that saw the first one was shown an event that was never
/// durable, against `EventStore`'s "readers only ever see events that are durable".
#[test]
fn events_served_after_a_restart_survive_a_power_loss() {
    let runtime = runtime();
    let stream = name("fault-b");
    let mut failures = Vec::new();
    for seed in 0..40 {
        runtime.block_on(async {
            let mut rng = Rng::new(2000 + seed);
            let storage = SimStorage::new(seed);
            let store = open(&storage);
            let mut acked = Acked::new();
            assert!(append_some(&store, &mut rng, 2, &mut acked).await.is_none());
            // The write lands in the page cache; the process dies at the fsync.
            storage.set_faults(Faults {
                crash_after_ops: Some(1),
                ..Faults::default()
            });
            let lost = vec![event(&mut rng)];
            let result = store.append(&stream, ExpectedRevision::Any, lost).await;
            assert!(result.is_err(), "the process died before the fsync");
            drop(store);

            let restarted = storage.restart();
            let store = open(&restarted);
            let served = all_events(&store).await;
            drop(store);
            let crashed = restarted.crash();
            let store = open(&crashed);
            let after = all_events(&store).await;
            if after.len() < served.len() || after[..served.len()] != served[..] {
                failures.push(format!(
                    "storage seed {seed}: served {} events after the restart, {} after the power loss",
                    served.len(),
                    after.len()
                ));
            }
        });
    }
    assert!(
        failures.is_empty(),
        "events served after a restart were lost: {failures:#?}"
    );
}
