//! A projection process killed with SIGKILL in the middle of a rebuild resumes from its
//! checkpoint and ends with the same read model as an uninterrupted run.
//!
//! The parent writes a bank history to an embedded store and builds the `account_summary`
//! read model once without interruption (the reference). Then it rebuilds a second read model
//! in child processes (this test binary, run again): the first child resets and replays, and
//! reports each committed checkpoint on stdout; the parent kills it with SIGKILL after a random
//! number of commits, checks that the read model on disk is exactly the history folded up to
//! its stored checkpoint (nothing half-applied, nothing applied twice), and starts the next
//! child, which resumes from that checkpoint. At the end the parent finishes the rebuild in
//! process and compares it with the reference, including the count of processed events.
//!
//! Each run prints its seed; rerun one with `FACTUM_PROJECTION_SIGKILL_SEED=<seed>`.
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use factum_core::{EventFilter, EventStore, Position, RecordedEvent};
use factum_log::EmbeddedStore;
use factum_projection::{
    AccountSummary, Projection, ProjectionError, ProjectionRunner, RunnerOptions, SqliteReadModel,
    read_checkpoint,
};
use rusqlite::Connection;
use support::*;

/// The test the parent runs as its child.
const CHILD_TEST: &str = "child_rebuilds_until_killed";
/// Set for the child only: the directory with `store/` and `model.db`.
const CHILD_DIR_ENV: &str = "FACTUM_PROJECTION_SIGKILL_DIR";
/// Set for the child only: `rebuild` (reset first) or `resume`.
const CHILD_MODE_ENV: &str = "FACTUM_PROJECTION_SIGKILL_MODE";
/// Overrides the seed of a run.
const SEED_ENV: &str = "FACTUM_PROJECTION_SIGKILL_SEED";
/// The history: accounts × events per account (20,000 account events).
const ACCOUNTS: usize = 40;
const EVENTS_PER_ACCOUNT: usize = 500;
/// Small batches, so a rebuild has hundreds of commits to be killed between (or inside).
const BATCH_SIZE: usize = 50;
/// How many children are killed.
const KILL_COUNT: u64 = 4;
/// A child is killed after 1 to this many reported commits: at most 4 × 80 × 50 = 16,000 of
/// the 20,000 events, so every kill lands mid-rebuild.
const KILL_AFTER_COMMITS_MAX: u64 = 80;
/// Each event costs the child this long, so the kill cannot miss the rebuild.
const CHILD_DELAY_PER_EVENT: Duration = Duration::from_micros(40);
/// The longest a child may take to reach its kill point.
const CHILD_TIMEOUT: Duration = Duration::from_secs(15);
/// A child that was never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

/// The summary, slowed down a little per event.
struct Slow(AccountSummary);

impl Projection for Slow {
    type Model = Connection;

    fn name(&self) -> &str {
        self.0.name()
    }

    fn filter(&self) -> Option<EventFilter> {
        self.0.filter()
    }

    fn init(&mut self, model: &mut Connection) -> Result<(), ProjectionError> {
        self.0.init(model)
    }

    fn clear(&mut self, model: &mut Connection) -> Result<(), ProjectionError> {
        self.0.clear(model)
    }

    fn apply(
        &mut self,
        model: &mut Connection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        std::thread::sleep(CHILD_DELAY_PER_EVENT);
        self.0.apply(model, event)
    }
}

fn options() -> RunnerOptions {
    RunnerOptions {
        batch_size: BATCH_SIZE,
        checkpoint_interval: 1024,
    }
}

/// Rebuilds (or resumes) the read model in `dir`, calling `report` with each committed
/// checkpoint position, until `stop_after` commits or the head is reached.
async fn rebuild(
    dir: &Path,
    reset: bool,
    stop_after: Option<u64>,
    mut report: impl FnMut(Position),
) {
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.join("store")).expect("the store opens"));
    let model = SqliteReadModel::open(dir.join("model.db"), Slow(AccountSummary))
        .expect("the read model opens");
    let mut runner = ProjectionRunner::with_options(store.clone(), model, options()).unwrap();
    if reset {
        runner.reset().await.expect("the reset");
    }
    let head = store.head().await.unwrap();
    let mut status = runner.watch_status();
    runner.start().unwrap();
    let mut commits = 0;
    let mut last = runner.status().checkpoint.position;
    // Bounded: each round waits for a new checkpoint, and there are finitely many.
    while last < head && stop_after.is_none_or(|count| commits < count) {
        status.changed().await.expect("the runner reports");
        let now = status.borrow_and_update().checkpoint.position;
        assert!(!matches!(
            runner.status().state,
            factum_projection::RunState::Failed(_)
        ));
        if now > last {
            last = now;
            commits += 1;
            report(now);
        }
    }
    runner.stop().await.unwrap();
}

/// Run by the parent as a child process, it rebuilds until killed. Run alone (by `cargo
/// test`), it interrupts a rebuild in process twice (stopping after a few commits and dropping
/// everything), resumes it, and compares the result with an uninterrupted build.
#[test]
fn child_rebuilds_until_killed() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        run_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let bank = runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path().join("store")).unwrap();
        write_history(&store, 6, 60, 20, 11).await
    });
    runtime.block_on(rebuild(dir.path(), true, Some(2), |_| {}));
    let after_first = checkpoint_of(&dir.path().join("model.db"));
    assert!(after_first.position.0 > 0, "the first run committed");
    runtime.block_on(rebuild(dir.path(), false, Some(2), |_| {}));
    runtime.block_on(rebuild(dir.path(), false, None, |_| {}));
    assert_eq!(summary_rows(&dir.path().join("model.db")), bank.rows());
    assert_eq!(
        checkpoint_of(&dir.path().join("model.db")).processed_events,
        bank.account_events
    );
}

fn checkpoint_of(path: &Path) -> factum_projection::Checkpoint {
    read_checkpoint(&Connection::open(path).unwrap(), "account_summary").unwrap()
}

/// The child's life: rebuild or resume, printing each commit, until killed.
fn run_child(dir: &Path) -> ! {
    let reset = std::env::var(CHILD_MODE_ENV).as_deref() == Ok("rebuild");
    // The harness may have printed "test name ... " without a line end.
    println!();
    runtime().block_on(rebuild(dir, reset, None, |position| {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "COMMITTED {}", position.0)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            std::process::exit(3);
        }
    }));
    // Finished before being killed: wait for the kill (the parent counts this as a failure).
    std::thread::sleep(CHILD_LIFETIME);
    std::process::exit(4);
}

/// A child process that is killed if the parent panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and kills it after `commits` reported commits; returns the last reported
/// checkpoint position.
fn run_child_until_killed(dir: &Path, mode: &str, commits: u64, context: &str) -> u64 {
    let stderr_path = dir.join(format!("child-{context}.stderr").replace([' ', ','], "_"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("the child starts");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_of = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let mut seen = 0;
    let mut last = 0;
    while seen < commits {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(position) = line.strip_prefix("COMMITTED ") {
                    last = position.parse().expect("a position");
                    seen += 1;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{context}: no kill point after {seen} commits; stderr:\n{}",
                    stderr_of()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "{context}: the child ended by itself; stderr:\n{}",
                    stderr_of()
                )
            }
        }
    }
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{context}: {status}; {}",
        stderr_of()
    );
    // Commits reported after the kill point were durable too.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        if let Some(position) = line.strip_prefix("COMMITTED ") {
            last = position.parse().expect("a position");
        }
    }
    reader.join().unwrap();
    last
}

#[test]
fn a_rebuild_killed_with_sigkill_resumes_and_matches_an_uninterrupted_run() {
    let seed = match std::env::var(SEED_ENV) {
        Ok(seed) => seed.parse().expect("a numeric seed"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    println!("seed {seed} (rerun with {SEED_ENV}={seed})");
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let mut rng = Rng(seed);

    // The history, and the reference read model built without interruption.
    let (bank, head) = runtime.block_on(async {
        let store = Arc::new(EmbeddedStore::open(dir.path().join("store")).unwrap());
        let bank = write_history(store.as_ref(), ACCOUNTS, EVENTS_PER_ACCOUNT, 100, seed).await;
        let head = store.head().await.unwrap();
        let reference =
            SqliteReadModel::open(dir.path().join("reference.db"), AccountSummary).unwrap();
        let mut runner =
            ProjectionRunner::with_options(store.clone(), reference, options()).unwrap();
        runner
            .run_until_caught_up(Duration::from_secs(30))
            .await
            .unwrap();
        // A complete read model to rebuild over, built the same way.
        let model = SqliteReadModel::open(dir.path().join("model.db"), AccountSummary).unwrap();
        let mut runner = ProjectionRunner::with_options(store, model, options()).unwrap();
        runner
            .run_until_caught_up(Duration::from_secs(30))
            .await
            .unwrap();
        (bank, head)
    });
    let reference = summary_rows(&dir.path().join("reference.db"));
    assert_eq!(
        reference,
        bank.rows(),
        "the uninterrupted run matches the history"
    );
    assert_eq!(summary_rows(&dir.path().join("model.db")), reference);

    for generation in 1..=KILL_COUNT {
        let context = format!("seed {seed}, child {generation}");
        let mode = if generation == 1 { "rebuild" } else { "resume" };
        let commits = 1 + rng.below(KILL_AFTER_COMMITS_MAX);
        let reported = run_child_until_killed(dir.path(), mode, commits, &context);
        let checkpoint = checkpoint_of(&dir.path().join("model.db"));
        println!(
            "{context}: {mode}, killed after {commits} commits at checkpoint {} of {head}",
            checkpoint.position
        );
        assert!(
            checkpoint.position.0 >= reported,
            "{context}: the reported commit at {reported} is lost"
        );
        assert!(
            checkpoint.position < head,
            "{context}: the kill did not land mid-rebuild"
        );
        // The read model is exactly the history up to its checkpoint.
        let partial = runtime.block_on(async {
            let store = EmbeddedStore::open(dir.path().join("store")).unwrap();
            expected_bank(&store, checkpoint.position).await
        });
        assert_eq!(
            summary_rows(&dir.path().join("model.db")),
            partial.rows(),
            "{context}"
        );
        assert_eq!(
            checkpoint.processed_events, partial.account_events,
            "{context}"
        );
    }

    // Resume to the end in process.
    runtime.block_on(rebuild(dir.path(), false, None, |_| {}));
    let checkpoint = checkpoint_of(&dir.path().join("model.db"));
    assert_eq!(checkpoint.position, head);
    assert_eq!(
        checkpoint.processed_events, bank.account_events,
        "no event processed twice"
    );
    assert_eq!(summary_rows(&dir.path().join("model.db")), reference);
    println!("seed {seed}: {KILL_COUNT} kills, {:?}", started.elapsed());
}
