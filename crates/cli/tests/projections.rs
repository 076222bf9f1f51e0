//! End-to-end tests of `factum projections ...` and `factum migrate-stream`: each runs the real
//! executable on a fresh temporary data directory, writes events with `factum append`, and
//! checks the JSON it prints, the read models it builds and its exit codes.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a test waits for a spawned `factum` before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh data directory inside a temporary directory.
struct Store {
    _temp: TempDir,
    data_dir: PathBuf,
}

impl Store {
    fn new() -> Store {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = temp.path().join("data");
        Store {
            _temp: temp,
            data_dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_factum"));
        command.arg("--data-dir").arg(&self.data_dir).args(args);
        command
    }

    fn run(&self, args: &[&str], input: &str) -> Output {
        support::run_with_input(self.command(args), input)
    }

    /// Runs a command that must succeed; returns its output lines as JSON and its stderr.
    fn ok_full(&self, args: &[&str], input: &str) -> (Vec<Value>, String) {
        let output = self.run(args, input);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{args:?} failed: {stderr}");
        (json_lines(&output.stdout), stderr)
    }

    fn ok(&self, args: &[&str]) -> Vec<Value> {
        self.ok_full(args, "").0
    }

    /// Runs a command that must fail with `code`; returns its standard error.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args, "");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        stderr
    }

    /// Appends events given as `(type, data)` to `stream`, in one append.
    fn append(&self, stream: &str, events: &[(&str, Value)]) {
        let lines: Vec<String> = events
            .iter()
            .map(|(event_type, data)| json!({"type": event_type, "data": data}).to_string())
            .collect();
        self.ok_full(&["append", stream, "--jsonl", "-"], &lines.join("\n"));
    }

    /// The article's bank: Alice rich (and withdrawing often), Bob not, Carol just above $1000.
    fn bank(&self) {
        let opened = |owner: &str, cents: i64| {
            (
                "AccountOpened",
                json!({"owner": owner, "initial_balance_cents": cents}),
            )
        };
        let deposited = |cents: i64| ("MoneyDeposited", json!({"amount_cents": cents}));
        let withdrawn = |cents: i64| ("MoneyWithdrawn", json!({"amount_cents": cents}));
        self.append(
            "account-alice",
            &[
                opened("Alice", 0),
                deposited(500_000),
                withdrawn(1_000),
                withdrawn(1_000),
                withdrawn(1_000),
                withdrawn(1_000),
            ],
        );
        self.append(
            "account-bob",
            &[opened("Bob", 10_000), deposited(5_000), withdrawn(2_000)],
        );
        self.append("account-carol", &[opened("Carol", 100_001)]);
        // Not an account: the projections' filter leaves it out.
        self.append("order-1", &[("OrderShipped", json!({"carrier": "UPS"}))]);
    }

    /// The last status line a projections command printed for `name`.
    fn status_of(&self, name: &str) -> Value {
        let lines = self.ok(&["projections", "status", name]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap()
    }
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn account_ids(rows: &[Value]) -> Vec<&str> {
    rows.iter()
        .map(|row| row["account_id"].as_str().unwrap())
        .collect()
}

/// `rebuild` replays all history into the read model, shows progress, and ends caught up.
#[test]
fn rebuild_replays_history_and_ends_caught_up() {
    let store = Store::new();
    store.bank();
    let before = store.status_of("account_summary");
    assert_eq!(before["state"], "new");
    assert_eq!(before["checkpoint"], 0);
    assert_eq!(before["events_behind"], before["head"]);

    let (lines, stderr) = store.ok_full(&["projections", "rebuild", "account_summary"], "");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let status = &lines[0];
    assert_eq!(status["name"], "account_summary");
    assert_eq!(status["state"], "caught_up");
    assert_eq!(status["events_behind"], 0);
    assert_eq!(status["seconds_behind"], 0.0);
    assert_eq!(status["checkpoint"], status["head"]);
    // Ten account events; the order event is filtered out.
    assert_eq!(status["processed_events"], 10);
    // Standard error is a pipe here: plain progress lines, the last one complete.
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("account_summary ["), "{stderr}");
    assert!(last.contains("100.0%"), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "no bar redraws on a pipe: {stderr:?}"
    );

    assert_eq!(store.status_of("account_summary"), *status);
    // The other projection was left alone.
    assert_eq!(store.status_of("fraud_report")["state"], "new");
}

/// `query account_summary --min-balance-cents` is the article's "balance > $1000".
#[test]
fn query_lists_accounts_above_a_balance() {
    let store = Store::new();
    store.bank();
    store.ok(&["projections", "rebuild", "account_summary", "--quiet"]);

    let rich = store.ok(&[
        "projections",
        "query",
        "account_summary",
        "--min-balance-cents",
        "100000",
    ]);
    assert_eq!(
        rich,
        vec![
            json!({"account_id": "alice", "owner": "Alice", "balance_cents": 496_000}),
            json!({"account_id": "carol", "owner": "Carol", "balance_cents": 100_001}),
        ]
    );
    let all = store.ok(&["projections", "query", "account_summary"]);
    assert_eq!(account_ids(&all), ["alice", "bob", "carol"]);
    assert_eq!(all[1]["balance_cents"], 13_000);
}

/// `reset` clears the read model and checkpoint; `run` catches up again to the same rows.
#[test]
fn reset_then_run_rebuilds_the_same_read_model() {
    let store = Store::new();
    store.bank();
    store.ok(&["projections", "run", "--quiet"]);
    let built = store.ok(&["projections", "query", "account_summary"]);
    assert_eq!(built.len(), 3);

    let reset = store.ok(&["projections", "reset", "account_summary"]);
    assert_eq!(reset[0]["checkpoint"], 0);
    assert_eq!(reset[0]["processed_events"], 0);
    assert_eq!(reset[0]["state"], "new");
    assert!(
        store
            .ok(&["projections", "query", "account_summary"])
            .is_empty()
    );

    let run = store.ok(&["projections", "run", "account_summary", "--quiet"]);
    assert_eq!(run[0]["state"], "caught_up");
    assert_eq!(run[0]["events_behind"], 0);
    assert_eq!(
        store.ok(&["projections", "query", "account_summary"]),
        built
    );
}

/// `run` continues from the checkpoint: after new appends it is behind, then catches up.
#[test]
fn status_shows_lag_after_new_events() {
    let store = Store::new();
    store.bank();
    store.ok(&["projections", "run", "account_summary", "--quiet"]);
    let caught_up = store.status_of("account_summary");
    store.append(
        "account-bob",
        &[("MoneyDeposited", json!({"amount_cents": 1}))],
    );
    store.append(
        "account-bob",
        &[("MoneyDeposited", json!({"amount_cents": 1}))],
    );

    let behind = store.status_of("account_summary");
    assert_eq!(behind["state"], "behind");
    assert_eq!(behind["events_behind"], 2);
    assert_eq!(behind["checkpoint"], caught_up["checkpoint"]);
    assert!(
        behind["seconds_behind"].as_f64().unwrap() >= 0.0,
        "{behind}"
    );

    let run = store.ok(&["projections", "run", "account_summary", "--quiet"]);
    assert_eq!(run[0]["events_behind"], 0);
    // Only the two new events were processed on top of the first run's.
    assert_eq!(
        run[0]["processed_events"].as_u64().unwrap(),
        caught_up["processed_events"].as_u64().unwrap() + 2
    );
    let bob = store.ok(&["projections", "query", "account_summary"])[1].clone();
    assert_eq!(bob["balance_cents"], 13_002);

    let human = store.run(&["projections", "status", "--human"], "");
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.starts_with("account_summary  caught_up"), "{text}");
    assert!(text.contains("fraud_report     new"), "{text}");
}

/// The fraud report, added later, is built by replaying all history.
#[test]
fn the_fraud_report_is_built_by_replay() {
    let store = Store::new();
    store.bank();
    store.ok(&["projections", "run", "account_summary", "--quiet"]);
    assert_eq!(store.status_of("fraud_report")["state"], "new");

    let rebuilt = store.ok(&["projections", "rebuild", "fraud_report", "--quiet"]);
    assert_eq!(rebuilt[0]["events_behind"], 0);
    let flagged = store.ok(&["projections", "query", "fraud_report"]);
    assert_eq!(
        flagged,
        vec![json!({"account_id": "alice", "withdrawals_in_window": 4})]
    );
    let refused = store.fails(
        &[
            "projections",
            "query",
            "fraud_report",
            "--min-balance-cents",
            "1",
        ],
        1,
    );
    assert!(refused.contains("account_summary"), "{refused}");
}

/// `list` names the built-in projections; unknown names are usage errors.
#[test]
fn list_and_unknown_names() {
    let store = Store::new();
    let listed = store.ok(&["projections", "list"]);
    let names: Vec<&str> = listed
        .iter()
        .map(|line| line["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["account_summary", "fraud_report"]);

    let unknown = store.fails(&["projections", "status", "balances"], 2);
    assert!(unknown.contains("account_summary"), "{unknown}");
    // Nothing to report on a data directory that does not exist, and nothing is created.
    let missing = store.fails(&["projections", "status"], 1);
    assert!(missing.contains("does not exist"), "{missing}");
    let no_models = store.fails(&["projections", "query", "account_summary"], 1);
    assert!(no_models.contains("projections run"), "{no_models}");
    assert!(!store.data_dir.exists());
}

/// `run --follow` catches up, reports, keeps the store, lets `query` read meanwhile, and stops
/// cleanly on SIGTERM.
#[test]
fn run_follow_runs_until_terminated() {
    let store = Store::new();
    store.bank();
    let mut child = store
        .command(&[
            "projections",
            "run",
            "account_summary",
            "--follow",
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = support::line_channel(child.stdout.take().unwrap());
    let mut guard = KillOnDrop(child);

    let first: Value = serde_json::from_str(&lines.recv_timeout(PATIENCE).unwrap()).unwrap();
    assert_eq!(first["state"], "caught_up");
    assert_eq!(first["events_behind"], 0);
    // The store is held; the read model is not.
    let held = store.fails(&["projections", "status"], 1);
    assert!(held.contains("in use"), "{held}");
    let rows = store.ok(&["projections", "query", "account_summary"]);
    assert_eq!(account_ids(&rows), ["alice", "bob", "carol"]);

    let child = &mut guard.0;
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let last: Value = serde_json::from_str(&lines.recv_timeout(PATIENCE).unwrap()).unwrap();
    assert_eq!(last["name"], "account_summary");
    assert_eq!(last["events_behind"], 0);
}

/// Kills a spawned process if a test panics before it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `migrate-stream` copies v1 and v2 `OrderPlaced` events as v3, other events as they are.
#[test]
fn migrate_stream_upcasts_old_events() {
    let store = Store::new();
    store.ok(&[
        "append",
        "order-1",
        "--type",
        "OrderPlaced",
        "--schema-version",
        "1",
        "--data",
        r#"{"customer":"Alice","total":12.5}"#,
    ]);
    store.ok(&[
        "append",
        "order-1",
        "--type",
        "OrderPlaced",
        "--schema-version",
        "2",
        "--data",
        r#"{"customer_name":"Bob","total_cents":300}"#,
    ]);
    store.ok(&[
        "append",
        "order-1",
        "--type",
        "OrderShipped",
        "--data",
        r#"{"carrier":"UPS"}"#,
    ]);

    let report = store.ok(&[
        "migrate-stream",
        "order-1",
        "order-1-v3",
        "--schema",
        "order",
    ]);
    assert_eq!(
        report,
        vec![json!({
            "from": "order-1", "to": "order-1-v3", "schema": "order",
            "copied": 3, "skipped": 0, "last_revision": 2,
        })]
    );
    let copies = store.ok(&["read", "order-1-v3"]);
    let versions: Vec<u64> = copies
        .iter()
        .map(|event| event["schema_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 3, 1]);
    assert_eq!(
        copies[0]["data"],
        json!({"customer_name": "Alice", "total_cents": 1250, "currency": "USD"})
    );
    assert_eq!(
        copies[1]["data"],
        json!({"customer_name": "Bob", "total_cents": 300, "currency": "USD"})
    );
    assert_eq!(copies[2]["data"], json!({"carrier": "UPS"}));
    assert_eq!(
        copies[0]["metadata"]["migratedFrom"],
        json!({"stream": "order-1", "revision": 0})
    );
    // The source is left as it was.
    let source = store.ok(&["read", "order-1"]);
    assert_eq!(source[0]["schema_version"], 1);

    // --resume recognises the copies already written and writes nothing new.
    let resumed = store.ok(&["migrate-stream", "order-1", "order-1-v3", "--resume"]);
    assert_eq!(resumed[0]["copied"], 3);
    assert_eq!(store.ok(&["read", "order-1-v3"]).len(), 3);
}

/// `migrate-stream` refuses clearly: an existing target, a missing source, an unknown schema.
#[test]
fn migrate_stream_errors_are_clear() {
    let store = Store::new();
    store.ok(&[
        "append",
        "order-1",
        "--type",
        "OrderShipped",
        "--data",
        r#"{"carrier":"UPS"}"#,
    ]);
    store.ok(&[
        "append",
        "order-2",
        "--type",
        "OrderShipped",
        "--data",
        r#"{"carrier":"DHL"}"#,
    ]);

    let exists = store.fails(&["migrate-stream", "order-1", "order-2"], 1);
    assert!(exists.contains("order-2 already exists"), "{exists}");
    assert_eq!(store.ok(&["read", "order-2"]).len(), 1);

    let missing = store.fails(&["migrate-stream", "order-9", "order-9-v3"], 4);
    assert!(missing.contains("order-9"), "{missing}");

    let schema = store.fails(
        &[
            "migrate-stream",
            "order-1",
            "order-1-v3",
            "--schema",
            "bank",
        ],
        2,
    );
    assert!(schema.contains("order"), "{schema}");

    // An event the schema does not know stops the migration with its type and version.
    store.ok(&[
        "append",
        "order-3",
        "--type",
        "OrderLost",
        "--schema-version",
        "7",
        "--data",
        "{}",
    ]);
    let unknown = store.fails(&["migrate-stream", "order-3", "order-3-v3"], 1);
    assert!(
        unknown.contains("OrderLost") && unknown.contains('7'),
        "{unknown}"
    );
    store.fails(&["read", "order-3-v3"], 4);
}

/// The checkpoint a running `factum` has committed for `projection`, read straight from the
/// read-model file (WAL mode lets a reader in while the projection writes).
fn committed_checkpoint(store: &Store, projection: &str) -> Option<u64> {
    let path = store.data_dir.join("projections.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let connection = rusqlite::Connection::open_with_flags(path, flags).ok()?;
    connection
        .query_row(
            "SELECT position FROM factum_projection_checkpoints WHERE projection = ?1",
            [projection],
            |row| row.get::<_, i64>(0),
        )
        .ok()
        .map(|position| position as u64)
}

/// A rebuild killed with SIGKILL half-way resumes from its checkpoint with `run` and ends with
/// the read model of an uninterrupted run: each batch committed with its checkpoint, once.
#[test]
fn a_rebuild_killed_midway_resumes_from_its_checkpoint() {
    const ACCOUNTS: u64 = 5;
    const APPENDS: u64 = 10;
    const PER_APPEND: u64 = 1_000;
    let store = Store::new();
    let deposits: Vec<String> = (0..PER_APPEND)
        .map(|i| json!({"type": "MoneyDeposited", "data": {"amount_cents": i % 7 + 1}}).to_string())
        .collect();
    let deposits = deposits.join("\n");
    for account in 0..ACCOUNTS {
        let stream = format!("account-{account}");
        let owner = format!("Owner {account}");
        store.append(
            &stream,
            &[(
                "AccountOpened",
                json!({"owner": owner, "initial_balance_cents": account}),
            )],
        );
        for _ in 0..APPENDS {
            store.ok_full(&["append", &stream, "--jsonl", "-"], &deposits);
        }
    }
    let head = ACCOUNTS * (1 + APPENDS * PER_APPEND);
    let per_append: u64 = (0..PER_APPEND).map(|i| i % 7 + 1).sum();
    let expected: Vec<Value> = (0..ACCOUNTS)
        .map(|account| {
            json!({
                "account_id": account.to_string(),
                "owner": format!("Owner {account}"),
                "balance_cents": account + APPENDS * per_append,
            })
        })
        .collect();

    // Kill it once some batches, but not all, are committed. A machine fast enough to finish
    // between two polls gets another try.
    let mut killed_at = None;
    for _attempt in 0..5 {
        store.ok(&["projections", "reset", "account_summary"]);
        let child = store
            .command(&["projections", "rebuild", "account_summary", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut guard = KillOnDrop(child);
        let deadline = Instant::now() + PATIENCE;
        let reached = loop {
            let position = committed_checkpoint(&store, "account_summary").unwrap_or(0);
            if position > 0 || guard.0.try_wait().unwrap().is_some() {
                break position;
            }
            assert!(Instant::now() < deadline, "the rebuild made no progress");
            std::thread::sleep(Duration::from_millis(1));
        };
        guard.0.kill().unwrap();
        guard.0.wait().unwrap();
        let position = committed_checkpoint(&store, "account_summary").unwrap_or(0);
        if reached > 0 && position < head {
            killed_at = Some(position);
            break;
        }
    }
    let killed_at = killed_at.expect("the rebuild was never caught half-way");

    let status = store.status_of("account_summary");
    assert_eq!(status["state"], "behind", "{status}");
    assert_eq!(status["checkpoint"], killed_at);
    let processed_before = status["processed_events"].as_u64().unwrap();
    // The checkpoint and the changes committed together: as many events applied as passed.
    assert_eq!(processed_before, killed_at);

    let resumed = store.ok(&["projections", "run", "account_summary", "--quiet"]);
    assert_eq!(resumed[0]["events_behind"], 0);
    assert_eq!(resumed[0]["checkpoint"], head);
    assert_eq!(resumed[0]["processed_events"], head);
    assert_eq!(
        store.ok(&["projections", "query", "account_summary"]),
        expected
    );

    // An uninterrupted rebuild gives the same rows.
    store.ok(&["projections", "rebuild", "account_summary", "--quiet"]);
    assert_eq!(
        store.ok(&["projections", "query", "account_summary"]),
        expected
    );
}
