//! End-to-end tests of the `factum` binary: each runs the real executable on a fresh temporary
//! data directory and checks its JSON output, its one-line errors and its exit codes.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a test waits for a spawned `factum` before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh data directory (inside a temporary directory, so tests can see whether it was made).
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

    /// Runs `factum ARGS` with `input` on its standard input.
    fn run(&self, args: &[&str], input: &str) -> Output {
        support::run_with_input(self.command(args), input)
    }

    /// Runs a command that must succeed, and returns its output lines as JSON.
    fn ok(&self, args: &[&str]) -> Vec<Value> {
        self.ok_with_input(args, "")
    }

    fn ok_with_input(&self, args: &[&str], input: &str) -> Vec<Value> {
        let output = self.run(args, input);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} failed: {stderr}");
        assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
        json_lines(&output.stdout)
    }

    /// Runs a command that must fail with `code`, print nothing, and explain itself in one
    /// line; returns that line.
    fn fails(&self, args: &[&str], code: i32) -> String {
        self.fails_with_input(args, "", code)
    }

    fn fails_with_input(&self, args: &[&str], input: &str, code: i32) -> String {
        let output = self.run(args, input);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed output");
        assert!(stderr.starts_with("factum: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
        stderr.trim_end().to_owned()
    }

    /// Appends one JSON event and returns `(position, revision)`.
    fn append(&self, stream: &str, event_type: &str, data: &str) -> (u64, u64) {
        let result = self.ok(&["append", stream, "--type", event_type, "--data", data]);
        assert_eq!(result.len(), 1);
        let position = result[0]["position"].as_u64().unwrap();
        let revision = result[0]["revision"].as_u64().unwrap();
        (position, revision)
    }

    /// The event types `factum ARGS` prints, in order.
    fn types(&self, args: &[&str]) -> Vec<String> {
        self.ok(args)
            .iter()
            .map(|event| event["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

/// A spawned long-running `factum` (a `tail`), killed if the test ends early, with its output
/// lines delivered through a channel so a test can wait for them with a timeout.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(store: &Store, args: &[&str]) -> Running {
        let mut child = store
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = support::line_channel(child.stdout.take().unwrap());
        Running { child, lines }
    }

    /// The next `count` output lines as JSON, or a panic after `PATIENCE`.
    fn next_lines(&self, count: usize) -> Vec<Value> {
        (0..count)
            .map(|index| {
                let line = self
                    .lines
                    .recv_timeout(PATIENCE)
                    .unwrap_or_else(|_| panic!("line {index} did not come"));
                serde_json::from_str(&line).unwrap()
            })
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn append_then_read_round_trips_every_field() {
    let store = Store::new();
    let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let appended = store.ok(&[
        "append",
        "account-1",
        "--type",
        "Opened",
        "--data",
        r#"{"owner": "alice", "limit": 10}"#,
        "--metadata",
        r#"{"$correlationId":"c-1"}"#,
        "--id",
        id,
        "--schema-version",
        "2",
        "--tag",
        "eu",
    ]);
    assert_eq!(appended, vec![json!({"position": 1, "revision": 0})]);

    let events = store.ok(&["read", "account-1"]);
    assert_eq!(events.len(), 1);
    let mut event = events[0].clone();
    let recorded_at = event
        .as_object_mut()
        .unwrap()
        .remove("recorded_at")
        .unwrap();
    assert_eq!(
        event,
        json!({
            "id": id,
            "stream": "account-1",
            "revision": 0,
            "position": 1,
            "type": "Opened",
            "schema_version": 2,
            "content_type": "application/json",
            "data": {"owner": "alice", "limit": 10},
            "metadata": {"$correlationId": "c-1"},
            "tags": ["eu"],
        })
    );
    // RFC 3339 in UTC with microseconds: 2026-11-26T05:33:46.123456Z.
    let recorded_at = recorded_at.as_str().unwrap();
    assert_eq!(recorded_at.len(), 27, "{recorded_at}");
    assert!(recorded_at.ends_with('Z'), "{recorded_at}");
    assert_eq!(&recorded_at[10..11], "T", "{recorded_at}");
}

#[test]
fn read_walks_a_stream_both_ways_with_from_and_limit() {
    let store = Store::new();
    for event_type in ["A", "B", "C", "D"] {
        store.append("s", event_type, "{}");
    }
    assert_eq!(store.types(&["read", "s"]), ["A", "B", "C", "D"]);
    assert_eq!(
        store.types(&["read", "s", "--from", "1", "--limit", "2"]),
        ["B", "C"]
    );
    assert_eq!(
        store.types(&["read", "s", "--backwards", "--limit", "3"]),
        ["D", "C", "B"]
    );
    assert_eq!(
        store.types(&["read", "s", "--backwards", "--from", "1"]),
        ["B", "A"]
    );
}

#[test]
fn retrying_an_append_with_the_same_id_writes_once() {
    let store = Store::new();
    let args = [
        "append",
        "s",
        "--type",
        "T",
        "--data",
        "1",
        "--id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    ];
    let first = store.ok(&args);
    let second = store.ok(&args);
    assert_eq!(first, second);
    assert_eq!(store.types(&["read", "s"]), ["T"]);
}

#[test]
fn jsonl_appends_all_lines_as_one_append() {
    let store = Store::new();
    let input = concat!(
        r#"{"type":"A","data":{"n":1}}"#,
        "\n\n",
        r#"{"type":"B","data":2,"metadata":{"m":1},"schema_version":3}"#,
        "\n",
        r#"{"type":"C","data":"three","tags":["x"]}"#,
        "\n",
    );
    let appended = store.ok_with_input(&["append", "s", "--jsonl", "-"], input);
    assert_eq!(appended, vec![json!({"position": 3, "revision": 2})]);
    let events = store.ok(&["read", "s"]);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["schema_version"], 3);
    assert_eq!(events[1]["metadata"], json!({"m": 1}));
    assert_eq!(events[2]["data"], "three");
    assert_eq!(events[2]["tags"], json!(["x"]));
    // One append: one recorded time for all of its events.
    assert_eq!(events[0]["recorded_at"], events[2]["recorded_at"]);
}

#[test]
fn a_bad_jsonl_line_fails_the_whole_append() {
    let store = Store::new();
    store.append("s", "First", "{}");

    // A line that is not a valid event, in the middle.
    let input =
        "{\"type\":\"A\",\"data\":1}\n{\"type\":\"B\",\"data\":}\n{\"type\":\"C\",\"data\":3}\n";
    let error = store.fails_with_input(&["append", "s", "--jsonl", "-"], input, 1);
    assert!(error.contains("line 2"), "{error}");

    // A line the store refuses (a reserved type), after valid ones.
    let input = "{\"type\":\"A\",\"data\":1}\n{\"type\":\"$B\",\"data\":2}\n";
    let error = store.fails_with_input(&["append", "s", "--jsonl", "-"], input, 1);
    assert!(error.contains("index 1"), "{error}");

    let error = store.fails_with_input(&["append", "s", "--jsonl", "-"], "\n", 1);
    assert!(error.contains("no events"), "{error}");

    assert_eq!(store.types(&["read", "s"]), ["First"]);
    assert_eq!(store.types(&["read-all"]), ["First"]);
}

#[test]
fn a_wrong_expected_revision_fails_with_code_3_and_writes_nothing() {
    let store = Store::new();
    let create = [
        "append",
        "s",
        "--type",
        "Created",
        "--data",
        "{}",
        "--expected-revision",
        "no-stream",
    ];
    store.ok(&create);
    let error = store.fails(&create, 3);
    assert!(error.contains("wrong expected revision"), "{error}");
    let stale = [
        "append",
        "s",
        "--type",
        "Next",
        "--data",
        "{}",
        "--expected-revision",
        "5",
    ];
    store.fails(&stale, 3);
    let exact = [
        "append",
        "s",
        "--type",
        "Next",
        "--data",
        "{}",
        "--expected-revision",
        "0",
    ];
    assert_eq!(
        store.ok(&exact),
        vec![json!({"position": 2, "revision": 1})]
    );
    assert_eq!(store.types(&["read", "s"]), ["Created", "Next"]);
}

#[test]
fn invalid_input_is_a_clear_error_that_changes_nothing() {
    let store = Store::new();
    let error = store.fails(&["append", "s", "--type", "T", "--data", "{oops"], 1);
    assert!(
        error.starts_with("factum: --data is not valid JSON"),
        "{error}"
    );
    assert!(
        !store.data_dir.exists(),
        "a refused append created the data directory"
    );

    let error = store.fails(
        &[
            "append",
            "s",
            "--type",
            "T",
            "--data",
            "1",
            "--metadata",
            "x",
        ],
        1,
    );
    assert!(error.contains("--metadata is not valid JSON"), "{error}");
    let error = store.fails(
        &["append", "s", "--type", "T", "--data", "1", "--id", "x"],
        1,
    );
    assert!(error.contains("not a UUID"), "{error}");
    let error = store.fails(&["append", "$all", "--type", "T", "--data", "1"], 1);
    assert!(error.contains("invalid stream name"), "{error}");
    let error = store.fails(&["read", "s"], 1);
    assert!(error.contains("does not exist"), "{error}");

    // Malformed option values are usage errors, reported by the argument parser.
    let usage = store.run(
        &[
            "append",
            "s",
            "--type",
            "T",
            "--data",
            "1",
            "--expected-revision",
            "soon",
        ],
        "",
    );
    assert_eq!(usage.status.code(), Some(2));
    assert!(!store.data_dir.exists());
}

#[test]
fn read_all_filters_by_stream_type_and_system() {
    let store = Store::new();
    store.append("order-1", "OrderPlaced", "{}");
    store.append("account-1", "AccountOpened", "{}");
    store.append("order-2", "OrderPlaced", "{}");
    store.append("account-1", "MoneyDeposited", "{}");
    store.ok(&["metadata", "account-1", "--set", r#"{"owner":"x"}"#]);

    assert_eq!(
        store.types(&["read-all"]),
        [
            "OrderPlaced",
            "AccountOpened",
            "OrderPlaced",
            "MoneyDeposited"
        ]
    );
    assert_eq!(
        store.types(&["read-all", "--stream-prefix", "account-"]),
        ["AccountOpened", "MoneyDeposited"]
    );
    assert_eq!(
        store.types(&[
            "read-all",
            "--type-prefix",
            "Order",
            "--type-prefix",
            "Money"
        ]),
        ["OrderPlaced", "OrderPlaced", "MoneyDeposited"]
    );
    assert_eq!(
        store.types(&["read-all", "--stream-regex", "^order-2$"]),
        ["OrderPlaced"]
    );
    assert_eq!(
        store.types(&["read-all", "--backwards", "--limit", "2"]),
        ["MoneyDeposited", "OrderPlaced"]
    );
    assert_eq!(
        store.types(&["read-all", "--from", "3"]),
        ["OrderPlaced", "MoneyDeposited"]
    );
    let with_system = store.ok(&["read-all", "--include-system", "--from", "5"]);
    assert_eq!(with_system.len(), 1);
    assert_eq!(with_system[0]["stream"], "$$account-1");
    assert_eq!(with_system[0]["type"], "$metadata");
    let error = store.fails(&["read-all", "--stream-regex", "(unclosed"], 1);
    assert!(error.contains("invalid filter regex"), "{error}");
}

#[test]
fn metadata_is_set_and_read_back_and_honoured() {
    let store = Store::new();
    for event_type in ["A", "B", "C"] {
        store.append("s", event_type, "{}");
    }
    assert_eq!(
        store.ok(&["metadata", "s"]),
        vec![json!({"metadata": {}, "revision": null})]
    );
    store.ok(&[
        "metadata",
        "s",
        "--set",
        r#"{"$maxCount": 2, "owner": "team-a"}"#,
    ]);
    assert_eq!(
        store.ok(&["metadata", "s"]),
        vec![json!({"metadata": {"$maxCount": 2, "owner": "team-a"}, "revision": 0})]
    );
    assert_eq!(store.types(&["read", "s"]), ["B", "C"]);

    // A stale expected revision and invalid metadata change nothing.
    store.fails(
        &[
            "metadata",
            "s",
            "--set",
            "{}",
            "--expected-revision",
            "no-stream",
        ],
        3,
    );
    let error = store.fails(&["metadata", "s", "--set", r#"{"$maxCount":"two"}"#], 1);
    assert!(error.contains("$maxCount"), "{error}");
    let error = store.fails(&["metadata", "s", "--set", "{"], 1);
    assert!(error.contains("--set is not valid JSON"), "{error}");
    store.ok(&["metadata", "s", "--set", "{}", "--expected-revision", "0"]);
    assert_eq!(
        store.ok(&["metadata", "s"]),
        vec![json!({"metadata": {}, "revision": 1})]
    );
}

#[test]
fn delete_hides_a_stream_until_recreated_and_a_tombstone_is_for_ever() {
    let store = Store::new();
    store.append("s", "A", "{}");
    store.append("s", "B", "{}");
    assert_eq!(store.ok(&["delete", "s"]).len(), 1);
    let error = store.fails(&["read", "s"], 4);
    assert!(error.contains("not found"), "{error}");
    store.fails(&["delete", "s", "--expected-revision", "0"], 3);

    // Appending brings it back, revisions continued.
    assert_eq!(store.append("s", "C", "{}").1, 2);
    assert_eq!(store.types(&["read", "s"]), ["C"]);

    store.ok(&["delete", "s", "--tombstone"]);
    let error = store.fails(&["read", "s"], 4);
    assert!(error.contains("deleted"), "{error}");
    store.fails(&["append", "s", "--type", "D", "--data", "{}"], 4);
    store.fails(&["metadata", "s"], 4);
    let system = store.ok(&[
        "read-all",
        "--include-system",
        "--type-prefix",
        "$streamDeleted",
    ]);
    assert_eq!(system.len(), 1);
    assert_eq!(system[0]["stream"], "s");
}

#[test]
fn binary_data_round_trips_as_base64() {
    let store = Store::new();
    let input = "{\"type\":\"Blob\",\"data_base64\":\"AJ//\",\"metadata_base64\":\"/w==\"}\n";
    store.ok_with_input(&["append", "b", "--jsonl", "-"], input);
    store.ok(&["append", "b", "--type", "Blob", "--data-base64", "aGk="]);
    let events = store.ok(&["read", "b"]);
    assert_eq!(events[0]["content_type"], "application/octet-stream");
    assert_eq!(events[0]["data_base64"], "AJ//");
    assert_eq!(events[0]["metadata_base64"], "/w==");
    assert!(events[0].get("data").is_none());
    assert_eq!(events[1]["data_base64"], "aGk=");
    let error = store.fails(&["append", "b", "--type", "Blob", "--data-base64", "%%"], 1);
    assert!(error.contains("base64"), "{error}");
}

#[test]
fn tail_all_prints_history_without_system_events_and_stops_on_sigterm() {
    let store = Store::new();
    store.append("s-1", "First", "{}");
    store.ok(&["metadata", "s-1", "--set", r#"{"owner":"x"}"#]);
    store.append("s-2", "Second", "{}");

    let mut tail = Running::spawn(&store, &["tail", "--all"]);
    let lines = tail.next_lines(2);
    assert_eq!(lines[0]["type"], "First");
    assert_eq!(lines[1]["type"], "Second");
    assert_eq!(lines[1]["stream"], "s-2");
    assert!(tail.terminate(), "tail did not exit cleanly on SIGTERM");
}

#[test]
fn tail_of_a_stream_starts_at_the_revision_asked() {
    let store = Store::new();
    for event_type in ["A", "B", "C"] {
        store.append("s", event_type, "{}");
    }
    store.append("other", "X", "{}");
    let tail = Running::spawn(&store, &["tail", "s", "--from", "1"]);
    let lines = tail.next_lines(2);
    assert_eq!(lines[0]["type"], "B");
    assert_eq!(lines[1]["type"], "C");
}

#[test]
fn a_second_process_is_refused_naming_the_one_holding_the_directory() {
    let store = Store::new();
    store.append("s", "A", "{}");
    let tail = Running::spawn(&store, &["tail", "s"]);
    // Once tail prints, it holds the store.
    tail.next_lines(1);
    let error = store.fails(&["append", "s", "--type", "B", "--data", "{}"], 1);
    let pid = tail.child.id().to_string();
    assert!(error.contains(&format!("process {pid}")), "{error}");
    drop(tail);
    assert_eq!(store.types(&["read", "s"]), ["A"]);
}
