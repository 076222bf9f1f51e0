//! A real crash test: a child process (this test binary, run again) appends from several
//! concurrent tasks and reports each acknowledged append on stdout; the parent kills it with
//! SIGKILL at a random moment, reopens the store and checks that every acknowledged append is
//! there, whole and in place, that nothing is half-visible, and that the store still takes
//! appends. Again and again on one data directory, so what each crash leaves accumulates.
//!
//! A SIGKILL leaves the page cache intact: this checks the engine's recovery from a process
//! that dies between (or in the middle of issuing) its writes, at any step of an append, a
//! segment rollover, an index write or a recovery. Lost disk caches are the simulated-disk
//! tests' job.
//!
//! Every event's data names its append (generation, task, sequence), its stream, the
//! expectation it was appended with, its index in the append and the append's size, followed
//! by padding derived from those fields: the parent can rebuild every byte of every event and
//! group the log back into appends without trusting the store.
//!
//! Each run prints its seed; rerun one with `FACTUM_SIGKILL_SEED=<seed>`.
#![cfg(unix)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use factum_core::{
    CurrentRevision, Error, EventStore, ExpectedRevision, Position, ProposedEvent, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, StreamName,
};
use factum_log::{EmbeddedStore, Options};

/// The test the parent runs as its child.
const CHILD_TEST: &str = "child_appends_until_killed";
/// Set for the child only: the data directory to append to.
const CHILD_DIR_ENV: &str = "FACTUM_SIGKILL_CHILD_DIR";
/// Set for the child only: its generation, which makes its appends' keys unique.
const CHILD_GENERATION_ENV: &str = "FACTUM_SIGKILL_CHILD_GENERATION";
/// Set for the child only: the seed of its choices.
const CHILD_SEED_ENV: &str = "FACTUM_SIGKILL_CHILD_SEED";
/// Overrides the seed of a run.
const SEED_ENV: &str = "FACTUM_SIGKILL_SEED";

/// The streams the appends go to; tasks share them, so `Exact` appends sometimes conflict.
const STREAM_COUNT: usize = 5;
/// The concurrent appending tasks, so group commits hold several appends.
const TASK_COUNT: u64 = 4;
/// Small segments: rollovers (and their index writes) happen often enough to be killed.
const SEGMENT_SIZE_BYTES_MAX: u64 = 64 * 1024;
/// The most events in one append.
const EVENTS_PER_APPEND_MAX: u64 = 5;
/// How many children the parent kills.
const KILL_COUNT: u64 = 30;
/// A child is killed after 1 to this many acknowledged appends...
const KILL_AFTER_ACKS_MAX: u64 = 300;
/// ...or after 0 to this many milliseconds from its start (which can land in its recovery).
const KILL_AFTER_MILLIS_MAX: u64 = 300;
/// The longest a child may take to reach its kill point.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the whole kill test may take (it normally takes a few seconds).
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// A child that was never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);
/// The task number of the appends the parent makes after each reopen.
const PARENT_TASK: u64 = 1_000;
/// The type of every event.
const EVENT_TYPE: &str = "Appended";
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

/// Run by the parent as a child process, it appends until killed. Run alone (by `cargo test`),
/// it runs a few bounded generations of the same append loop in this process, closing and
/// reopening the store between them, and checks the store with the parent's checks.
#[test]
fn child_appends_until_killed() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        run_child(Path::new(&dir));
    }
    let seed = seed();
    println!("seed {seed} (rerun with {SEED_ENV}={seed})");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = runtime();
    let mut acks = Vec::new();
    let mut rng = Rng(seed);
    for generation in 1..=3 {
        let context = format!("seed {seed}, in-process generation {generation}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let report: Report = {
            let lines = lines.clone();
            Arc::new(move |ack: &Ack| lock(&lines).push(ack.line()))
        };
        let child_seed = rng.next();
        runtime.block_on(async {
            let store = Arc::new(open_store(dir.path(), &context));
            let deadline = Instant::now() + CHILD_LIFETIME;
            append_loop(store, generation, child_seed, 30, deadline, report).await;
        });
        let lines = std::mem::take(&mut *lock(&lines));
        // Four tasks of 30 attempts: conflicts lose a few, most are acknowledged.
        assert!(lines.len() >= 30, "{context}: only {} acks", lines.len());
        for line in lines {
            acks.push(parse_ack_line(&line, &context).expect("an ACK line"));
        }
        let unacknowledged =
            runtime.block_on(check_reopened(dir.path(), &mut acks, generation, &context));
        // Without a crash every append that reached the store was answered.
        assert_eq!(unacknowledged, 0, "{context}: appends nobody acknowledged");
    }
}

/// Kills a child appender [`KILL_COUNT`] times at random moments, and after each kill checks
/// the reopened store against every append acknowledged so far.
#[test]
fn acknowledged_appends_survive_sigkill() {
    let seed = seed();
    println!("seed {seed} (rerun with {SEED_ENV}={seed})");
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data directory");
    let runtime = runtime();
    let mut rng = Rng(seed);
    let mut acks: Vec<Ack> = Vec::new();
    let mut child_ack_count = 0;
    for generation in 1..=KILL_COUNT {
        let context = format!("seed {seed}, child {generation}");
        assert!(
            started.elapsed() < TEST_TIMEOUT,
            "{context}: the test ran longer than {TEST_TIMEOUT:?}"
        );
        let plan = if rng.below(2) == 0 {
            KillPlan::AfterAcks(1 + rng.below(KILL_AFTER_ACKS_MAX))
        } else {
            KillPlan::AfterDelay(Duration::from_millis(rng.below(KILL_AFTER_MILLIS_MAX + 1)))
        };
        let stderr_path = dir.path().join(format!("child-{generation}.stderr"));
        let child_acks = run_child_until_killed(
            &data_dir,
            generation,
            rng.next(),
            plan,
            &stderr_path,
            &context,
        );
        let child_ack_count_now = child_acks.len();
        child_ack_count += child_ack_count_now;
        acks.extend(child_acks);
        let unacknowledged =
            runtime.block_on(check_reopened(&data_dir, &mut acks, generation, &context));
        println!(
            "{context}: killed {plan:?}: {child_ack_count_now} acks; {unacknowledged} appends \
             in the store so far were never acknowledged"
        );
    }
    let segment_count = std::fs::read_dir(&data_dir)
        .expect("the data directory lists")
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("segment-") && name.ends_with(".log")
        })
        .count();
    println!(
        "seed {seed}: {KILL_COUNT} kills, {child_ack_count} acknowledged child appends, \
         {segment_count} segments, {:?}",
        started.elapsed()
    );
    // Guards against a test that kills children before they do anything.
    assert!(
        child_ack_count >= 50,
        "seed {seed}: the children acknowledged only {child_ack_count} appends"
    );
    assert!(
        segment_count >= 2,
        "seed {seed}: the log never rolled over to a second segment"
    );
}

/// When the parent kills a child.
#[derive(Debug, Clone, Copy)]
enum KillPlan {
    /// Once it has read this many acknowledgements.
    AfterAcks(u64),
    /// This long after starting it.
    AfterDelay(Duration),
}

/// A child process that is killed if the parent panics, so no appender outlives the test.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child appender on `data_dir`, kills it with SIGKILL as `plan` says, and returns
/// every append it acknowledged, including those still in the pipe when it died.
fn run_child_until_killed(
    data_dir: &Path,
    generation: u64,
    child_seed: u64,
    plan: KillPlan,
    stderr_path: &Path,
    context: &str,
) -> Vec<Ack> {
    let stderr = File::create(stderr_path).expect("the child's stderr file");
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR_ENV, data_dir)
        .env(CHILD_GENERATION_ENV, generation.to_string())
        .env(CHILD_SEED_ENV, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("the child starts");
    let spawned = Instant::now();
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().expect("a piped stdout");
    let (sender, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        // Bounded by the child: it ends at end of file, when the child is gone.
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line cut short by the kill is no acknowledgement.
                Ok(_) if !line.ends_with('\n') => break,
                Ok(_) => {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stderr_of = || std::fs::read_to_string(stderr_path).unwrap_or_default();
    let mut acks = Vec::new();
    let timeout_at = spawned + CHILD_TIMEOUT;
    let kill_at = match plan {
        KillPlan::AfterDelay(delay) => spawned + delay,
        KillPlan::AfterAcks(_) => timeout_at,
    };
    loop {
        if let KillPlan::AfterAcks(count) = plan
            && acks.len() as u64 >= count
        {
            break;
        }
        let now = Instant::now();
        if matches!(plan, KillPlan::AfterDelay(_)) && now >= kill_at {
            break;
        }
        assert!(
            now < timeout_at,
            "{context}: the child did not reach its kill point ({plan:?}) in {CHILD_TIMEOUT:?}, \
             after {} acks; its stderr:\n{}",
            acks.len(),
            stderr_of()
        );
        match lines.recv_timeout(kill_at.min(timeout_at) - now) {
            Ok(line) => acks.extend(parse_ack_line(&line, context)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().expect("the child's status");
                panic!(
                    "{context}: the child stopped by itself ({status}) after {} acks; its \
                     stderr:\n{}",
                    acks.len(),
                    stderr_of()
                );
            }
        }
    }
    child.0.kill().expect("the child is killed");
    let status = child.0.wait().expect("the child's status");
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{context}: the child ended with {status}, not by SIGKILL; its stderr:\n{}",
        stderr_of()
    );
    // What the child wrote before it died was acknowledged too: read the pipe to its end.
    let drain_until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = drain_until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => acks.extend(parse_ack_line(&line, context)),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{context}: the dead child's stdout did not close")
            }
        }
    }
    reader.join().expect("the reader thread");
    acks
}

/// The child's life: append from the store's current state until killed.
fn run_child(dir: &Path) -> ! {
    let number = |name: &str| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("the child needs {name}"))
    };
    let generation = number(CHILD_GENERATION_ENV);
    let seed = number(CHILD_SEED_ENV);
    let report: Report = Arc::new(|ack: &Ack| {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{}", ack.line())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The parent is gone: nobody will kill us, so stop.
            std::process::exit(3);
        }
    });
    // The harness may have printed "test name ... " without a line end: end that line, so every
    // acknowledgement starts one.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout).and_then(|()| stdout.flush()).ok();
    drop(stdout);
    let context = format!("child {generation}");
    runtime().block_on(async {
        let store = Arc::new(open_store(dir, &context));
        let deadline = Instant::now() + CHILD_LIFETIME;
        append_loop(store, generation, seed, u64::MAX, deadline, report).await;
    });
    panic!("the child ran for {CHILD_LIFETIME:?} and was never killed");
}

/// How an append loop reports an acknowledged append.
type Report = Arc<dyn Fn(&Ack) + Send + Sync>;

/// [`TASK_COUNT`] tasks append, each up to `attempts_per_task` times or until `deadline`, to
/// random streams, with `Exact` (or `NoStream`) expectations from the revisions they know and
/// sometimes `Any`. Each acknowledged append is reported once `append` has returned.
async fn append_loop(
    store: Arc<EmbeddedStore>,
    generation: u64,
    seed: u64,
    attempts_per_task: u64,
    deadline: Instant,
    report: Report,
) {
    // The store's state after recovery: the children continue where the last one stopped.
    let known = Arc::new(Mutex::new(last_revisions(&store).await));
    let mut tasks = Vec::new();
    for task in 0..TASK_COUNT {
        let store = store.clone();
        let known = known.clone();
        let report = report.clone();
        let mut rng = Rng(seed ^ (task + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        tasks.push(tokio::spawn(async move {
            for sequence in 0..attempts_per_task {
                if Instant::now() >= deadline {
                    break;
                }
                let stream = rng.below(STREAM_COUNT as u64) as usize;
                let count = 1 + rng.below(EVENTS_PER_APPEND_MAX);
                let expectation = if rng.below(4) == 0 {
                    Expectation::Any
                } else {
                    Expectation::from_last(lock(&known)[stream])
                };
                let key = AppendKey {
                    generation,
                    task,
                    sequence,
                };
                let (events, ids) = proposed_append(key, stream, expectation, count);
                let outcome = store
                    .append(&stream_name(stream), expectation.expected(), events)
                    .await;
                match outcome {
                    Ok(result) => {
                        raise(&mut lock(&known)[stream], Some(result.revision));
                        report(&Ack {
                            key,
                            stream,
                            first_revision: result.revision + 1 - count,
                            last_position: result.position.0,
                            ids,
                        });
                    }
                    Err(Error::WrongExpectedRevision { actual, .. }) => {
                        // Another task wrote to the stream first: learn where it is.
                        let actual = match actual {
                            CurrentRevision::NoStream => None,
                            CurrentRevision::Current(revision) => Some(revision),
                        };
                        raise(&mut lock(&known)[stream], actual);
                    }
                    Err(error) => panic!("append {key:?} to stream {stream} failed: {error}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("an append task panicked");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Moves a known last revision forwards only: answers arrive out of order.
fn raise(known: &mut Option<u64>, seen: Option<u64>) {
    *known = (*known).max(seen);
}

/// Reopens the store on `dir` after a crash (or a close), checks it against `acks`, makes one
/// more append (added to `acks`, so later rounds check it too) and closes the store again.
/// Returns how many appends the store holds that were never acknowledged.
async fn check_reopened(dir: &Path, acks: &mut Vec<Ack>, generation: u64, context: &str) -> usize {
    let store = open_store(dir, context);
    let Verified {
        last,
        unacknowledged,
    } = verify(&store, acks, context).await;
    // The store takes appends after recovery, right after the recovered head.
    let head = store.head().await.expect("the head").0;
    let stream = (generation as usize) % STREAM_COUNT;
    let count = 1 + generation % EVENTS_PER_APPEND_MAX;
    let expectation = Expectation::from_last(last[stream]);
    let key = AppendKey {
        generation,
        task: PARENT_TASK,
        sequence: 0,
    };
    let (events, ids) = proposed_append(key, stream, expectation, count);
    let result = store
        .append(&stream_name(stream), expectation.expected(), events)
        .await
        .unwrap_or_else(|error| panic!("{context}: the reopened store refused an append: {error}"));
    assert_eq!(
        result.position,
        Position(head + count),
        "{context}: the append after reopening"
    );
    assert_eq!(
        result.revision,
        last[stream].map_or(count - 1, |revision| revision + count),
        "{context}: the append after reopening"
    );
    acks.push(Ack {
        key,
        stream,
        first_revision: result.revision + 1 - count,
        last_position: result.position.0,
        ids,
    });
    // Closed before the next child opens the directory (the lock would refuse it).
    store.close();
    unacknowledged
}

/// What [`verify`] found.
struct Verified {
    /// Each stream's last revision.
    last: Vec<Option<u64>>,
    /// How many appends are in the store without an acknowledgement: their fsync completed (or
    /// their bytes reached the page cache) before the kill, their answer did not.
    unacknowledged: usize,
}

/// Checks the whole store: the log is dense and made of whole appends whose events are intact,
/// each stream reads as its part of the log, and every acknowledged append is where its
/// acknowledgement said.
async fn verify(store: &EmbeddedStore, acks: &[Ack], context: &str) -> Verified {
    let log = read_log(store, context).await;
    let head = store.head().await.expect("the head").0;
    assert_eq!(
        log.len() as u64,
        head,
        "{context}: events in the log vs head"
    );
    for (index, event) in log.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(index as u64 + 1),
            "{context}: positions are dense from 1"
        );
    }

    // Whole appends only, whether acknowledged or not.
    let mut last: Vec<Option<u64>> = vec![None; STREAM_COUNT];
    let mut keys = HashSet::new();
    let mut start = 0;
    while start < log.len() {
        let first = &log[start];
        let tag = EventTag::of(first, context);
        let at = format!("{context}: the append at position {}", first.position.0);
        assert_eq!(tag.index, 0, "{at} does not start with its first event");
        assert!(keys.insert(tag.key), "{at} appears twice: {:?}", tag.key);
        let expected_first_revision = last[tag.stream].map_or(0, |revision| revision + 1);
        assert_eq!(
            first.revision, expected_first_revision,
            "{at}: revisions are dense per stream"
        );
        match tag.expectation {
            Expectation::Any => {}
            Expectation::NoStream => assert_eq!(first.revision, 0, "{at} expected no stream"),
            Expectation::Exact(revision) => {
                assert_eq!(first.revision, revision + 1, "{at} expected {revision}")
            }
        }
        for index in 0..tag.count {
            let event = log.get(start + index as usize).unwrap_or_else(|| {
                panic!(
                    "{at} is half-visible: {index} of its {} events, then the log ends",
                    tag.count
                )
            });
            let event_tag = EventTag::of(event, context);
            assert_eq!(
                event_tag,
                EventTag { index, ..tag },
                "{at} is half-visible or mixed with another at position {}",
                event.position.0
            );
            assert_eq!(event.stream, stream_name(tag.stream), "{at}: stream");
            assert_eq!(event.revision, first.revision + index, "{at}: revision");
            assert_eq!(event.event_type, EVENT_TYPE, "{at}: type");
            assert!(
                event.data == event_data(&event_tag),
                "{at}: the data of event {index} is damaged"
            );
            assert!(event.metadata.is_empty(), "{at}: metadata");
            assert_eq!(
                event.recorded_at, first.recorded_at,
                "{at}: one recorded time"
            );
        }
        if start > 0 {
            assert!(
                log[start - 1].recorded_at <= first.recorded_at,
                "{at}: recorded times decrease"
            );
        }
        last[tag.stream] = Some(first.revision + tag.count - 1);
        start += tag.count as usize;
    }

    // Every acknowledged append, at its acknowledged place.
    for ack in acks {
        let count = ack.ids.len() as u64;
        let first_position = ack.last_position + 1 - count;
        for (index, id) in (0u64..).zip(&ack.ids) {
            let position = first_position + index;
            let event = log
                .get(position as usize - 1)
                .unwrap_or_else(|| panic!("{context}: acknowledged {ack:?} is lost"));
            let at = format!("{context}: acknowledged {ack:?}, event {index}");
            assert_eq!(event.id.to_string(), *id, "{at}: id");
            assert_eq!(event.stream, stream_name(ack.stream), "{at}: stream");
            assert_eq!(event.revision, ack.first_revision + index, "{at}: revision");
            let tag = EventTag::of(event, context);
            assert_eq!(tag.key, ack.key, "{at}: another append is in its place");
            assert_eq!(tag.count, count, "{at}: size");
        }
    }

    // Each stream reads as exactly its events of the log.
    for (stream, last_revision) in last.iter().enumerate() {
        let expected: Vec<&RecordedEvent> = log
            .iter()
            .filter(|event| event.stream == stream_name(stream))
            .collect();
        let read = match store
            .read_stream(&stream_name(stream), ReadStreamOptions::forwards())
            .await
        {
            Ok(events) => events,
            Err(Error::StreamNotFound { .. }) => Vec::new(),
            Err(error) => panic!("{context}: reading stream {stream}: {error}"),
        };
        assert_eq!(
            read.len(),
            expected.len(),
            "{context}: stream {stream} vs its events in the log"
        );
        for (read, expected) in read.iter().zip(&expected) {
            assert_eq!(read, *expected, "{context}: stream {stream} vs the log");
        }
        assert_eq!(
            read.last().map(|event| event.revision),
            *last_revision,
            "{context}: stream {stream}'s last revision"
        );
    }
    let acknowledged: HashSet<AppendKey> = acks.iter().map(|ack| ack.key).collect();
    Verified {
        unacknowledged: keys.difference(&acknowledged).count(),
        last,
    }
}

/// The whole global log, system events included, in pages.
async fn read_log(store: &EmbeddedStore, context: &str) -> Vec<RecordedEvent> {
    let mut log = Vec::new();
    let mut from = 1;
    // Bounded: every page but the last moves `from` forwards by up to a page.
    for _ in 0..1_000_000 {
        let options = ReadAllOptions::forwards()
            .from_position(Position(from))
            .include_system()
            .limit(4096);
        let slice = store
            .read_all(options)
            .await
            .unwrap_or_else(|error| panic!("{context}: reading the log: {error}"));
        log.extend(slice.events);
        if slice.end_of_log {
            return log;
        }
        assert!(
            slice.scanned_to.0 >= from,
            "{context}: a read of the log did not move"
        );
        from = slice.scanned_to.0 + 1;
    }
    panic!("{context}: the log did not end");
}

/// Each stream's last revision, read from the store.
async fn last_revisions(store: &EmbeddedStore) -> Vec<Option<u64>> {
    let mut last = Vec::with_capacity(STREAM_COUNT);
    for stream in 0..STREAM_COUNT {
        let newest = ReadStreamOptions::backwards().limit(1);
        match store.read_stream(&stream_name(stream), newest).await {
            Ok(events) => last.push(events.first().map(|event| event.revision)),
            Err(Error::StreamNotFound { .. }) => last.push(None),
            Err(error) => panic!("reading stream {stream}: {error}"),
        }
    }
    last
}

fn open_store(dir: &Path, context: &str) -> EmbeddedStore {
    let options = Options {
        segment_size_bytes_max: SEGMENT_SIZE_BYTES_MAX,
        ..Options::default()
    };
    EmbeddedStore::open_with(dir, options)
        .unwrap_or_else(|error| panic!("{context}: the store does not open: {error}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn stream_name(stream: usize) -> StreamName {
    StreamName::new(format!("crash-{stream}")).expect("a valid stream name")
}

/// The seed from [`SEED_ENV`], or from the clock.
fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(seed) => seed
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV} must be a number, not {seed:?}")),
        Err(_) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("a clock after 1970");
            Rng(now.as_nanos() as u64 ^ u64::from(std::process::id())).next()
        }
    }
}

/// The events of one append and their ids.
fn proposed_append(
    key: AppendKey,
    stream: usize,
    expectation: Expectation,
    count: u64,
) -> (Vec<ProposedEvent>, Vec<String>) {
    let events: Vec<ProposedEvent> = (0..count)
        .map(|index| {
            let tag = EventTag {
                key,
                stream,
                expectation,
                index,
                count,
            };
            ProposedEvent::bytes(EVENT_TYPE, event_data(&tag))
        })
        .collect();
    let ids = events.iter().map(|event| event.id.to_string()).collect();
    (events, ids)
}

/// splitmix64: small, seedable, and good enough to pick streams, sizes and moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Which append an event belongs to: unique in a test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AppendKey {
    /// The child (or in-process round) that made it; the parent's appends after a reopen use
    /// the generation of the child just killed.
    generation: u64,
    /// The task within it.
    task: u64,
    /// The task's attempt number.
    sequence: u64,
}

/// The expectation an append was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expectation {
    Any,
    NoStream,
    Exact(u64),
}

impl Expectation {
    fn from_last(last: Option<u64>) -> Expectation {
        match last {
            None => Expectation::NoStream,
            Some(revision) => Expectation::Exact(revision),
        }
    }

    fn expected(self) -> ExpectedRevision {
        match self {
            Expectation::Any => ExpectedRevision::Any,
            Expectation::NoStream => ExpectedRevision::NoStream,
            Expectation::Exact(revision) => ExpectedRevision::Exact(revision),
        }
    }
}

/// What an event's data says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventTag {
    key: AppendKey,
    stream: usize,
    expectation: Expectation,
    /// Its index in its append.
    index: u64,
    /// How many events its append has.
    count: u64,
}

impl EventTag {
    /// Reads the tag at the start of an event's data.
    fn of(event: &RecordedEvent, context: &str) -> EventTag {
        EventTag::parse(&event.data).unwrap_or_else(|| {
            panic!(
                "{context}: the event at position {} has no tag: {:?}",
                event.position.0,
                String::from_utf8_lossy(&event.data[..event.data.len().min(80)])
            )
        })
    }

    fn parse(data: &[u8]) -> Option<EventTag> {
        let end = data.iter().position(|byte| *byte == b'|')?;
        let text = std::str::from_utf8(&data[..end]).ok()?;
        let fields: Vec<&str> = text.split(' ').collect();
        let [
            generation,
            task,
            sequence,
            stream,
            expectation,
            index,
            count,
        ] = fields[..]
        else {
            return None;
        };
        let expectation = match expectation {
            "any" => Expectation::Any,
            "none" => Expectation::NoStream,
            revision => Expectation::Exact(revision.parse().ok()?),
        };
        Some(EventTag {
            key: AppendKey {
                generation: generation.parse().ok()?,
                task: task.parse().ok()?,
                sequence: sequence.parse().ok()?,
            },
            stream: stream.parse().ok()?,
            expectation,
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        })
    }
}

/// An event's data: its tag, then padding of a length and content derived from the tag, mostly
/// short and now and then large enough to fill a good part of a segment.
fn event_data(tag: &EventTag) -> Vec<u8> {
    let expectation = match tag.expectation {
        Expectation::Any => "any".to_owned(),
        Expectation::NoStream => "none".to_owned(),
        Expectation::Exact(revision) => revision.to_string(),
    };
    let key = tag.key;
    let mut data = format!(
        "{} {} {} {} {expectation} {} {}|",
        key.generation, key.task, key.sequence, tag.stream, tag.index, tag.count
    )
    .into_bytes();
    let mut rng = Rng(key.generation
        ^ key.task.rotate_left(16)
        ^ key.sequence.rotate_left(32)
        ^ tag.index.rotate_left(56));
    let padding = if rng.below(40) == 0 {
        4_000 + rng.below(12_000)
    } else {
        rng.below(800)
    };
    data.extend((0..padding).map(|_| b'a' + rng.below(26) as u8));
    data
}

/// An acknowledged append, as the appender reports it on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    key: AppendKey,
    stream: usize,
    first_revision: u64,
    /// The position of its last event.
    last_position: u64,
    /// Its events' ids, in order.
    ids: Vec<String>,
}

impl Ack {
    fn line(&self) -> String {
        format!(
            "ACK {} {} {} {} {} {} {} END",
            self.key.generation,
            self.key.task,
            self.key.sequence,
            self.stream,
            self.first_revision,
            self.last_position,
            self.ids.join(",")
        )
    }
}

/// The acknowledgement on a line of the child's stdout; `None` for the harness's own lines.
fn parse_ack_line(line: &str, context: &str) -> Option<Ack> {
    let rest = line.trim_end().strip_prefix("ACK ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let parsed = (|| {
        let [
            generation,
            task,
            sequence,
            stream,
            first_revision,
            last_position,
            ids,
            "END",
        ] = fields[..]
        else {
            return None;
        };
        let ack = Ack {
            key: AppendKey {
                generation: generation.parse().ok()?,
                task: task.parse().ok()?,
                sequence: sequence.parse().ok()?,
            },
            stream: stream.parse().ok()?,
            first_revision: first_revision.parse().ok()?,
            last_position: last_position.parse().ok()?,
            ids: ids.split(',').map(str::to_owned).collect(),
        };
        (ack.last_position >= ack.ids.len() as u64).then_some(ack)
    })();
    Some(parsed.unwrap_or_else(|| panic!("{context}: a malformed acknowledgement: {line:?}")))
}

#[test]
fn acknowledgement_lines_read_back_as_written() {
    let ack = Ack {
        key: AppendKey {
            generation: 3,
            task: 1,
            sequence: 17,
        },
        stream: 2,
        first_revision: 40,
        last_position: 99,
        ids: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        parse_ack_line(&format!("{}\n", ack.line()), "test"),
        Some(ack)
    );
    assert_eq!(parse_ack_line("test child ... ok\n", "test"), None);
    let tag = EventTag {
        key: AppendKey {
            generation: 1,
            task: 2,
            sequence: 3,
        },
        stream: 4,
        expectation: Expectation::Exact(5),
        index: 1,
        count: 2,
    };
    assert_eq!(EventTag::parse(&event_data(&tag)), Some(tag));
}
