//! `factum --server URL …`: the commands on a running `factum serve` instead of a data
//! directory. Each test starts the real binary as a server on a free port and runs the real
//! binary against it; where it can, it runs the same commands on a local data directory too and
//! checks that both print the same JSON (recorded times and store-made ids aside).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a test waits for a spawned `factum` before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(20);

/// The environment variable that names a server.
const SERVER_ENV: &str = "FACTUM_SERVER";

/// A `factum` process whose standard output lines arrive through a channel; killed on drop.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = support::line_channel(child.stdout.take().unwrap());
        Running { child, lines }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("the process printed its next line in time")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `factum serve` on a fresh data directory and a free port.
struct Server {
    _temp: TempDir,
    url: String,
    _process: Running,
}

impl Server {
    fn start() -> Server {
        let temp = tempfile::tempdir().unwrap();
        let mut command = factum();
        command
            .arg("--data-dir")
            .arg(temp.path().join("data"))
            .args(["serve", "--listen", "127.0.0.1:0"]);
        let process = Running::spawn(command);
        let line = process.next_line();
        let address = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("not the listening line: {line}"));
        Server {
            _temp: temp,
            url: format!("http://{address}"),
            _process: process,
        }
    }
}

/// The binary, with no server named by the environment.
fn factum() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factum"));
    command.env_remove(SERVER_ENV);
    command
}

/// Where commands run: a local data directory, or a server.
enum Target<'a> {
    Local(&'a Path),
    Remote(&'a str),
}

impl Target<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = factum();
        match self {
            Target::Local(dir) => command.arg("--data-dir").arg(dir),
            Target::Remote(url) => command.args(["--server", url]),
        };
        command.args(args);
        command
    }

    fn run(&self, args: &[&str], input: &str) -> Output {
        run(self.command(args), input)
    }

    /// Runs a command that must succeed; its output lines as JSON.
    fn ok(&self, args: &[&str], input: &str) -> Vec<Value> {
        let output = self.run(args, input);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?} failed: {stderr}");
        assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
        json_lines(&output.stdout)
    }

    /// Runs a command that must fail with `code` and one line on standard error; that line.
    fn fails(&self, args: &[&str], code: i32) -> String {
        failure(self.run(args, ""), args, code)
    }
}

fn run(command: Command, input: &str) -> Output {
    support::run_with_input(command, input)
}

fn failure(output: Output, args: &[&str], code: i32) -> String {
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed output");
    assert!(stderr.starts_with("factum: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    stderr.trim_end().to_owned()
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

/// An output line without what differs between two stores given the same commands: recorded
/// times, and the ids of the events the store makes itself (`$`-typed).
fn comparable(mut line: Value) -> Value {
    if let Some(object) = line.as_object_mut() {
        object.remove("recorded_at");
        let made_by_the_store = object
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|event_type| event_type.starts_with('$'));
        if made_by_the_store {
            object.remove("id");
        }
    }
    line
}

/// A data directory for the local side of a comparison.
fn local_dir(temp: &TempDir) -> PathBuf {
    temp.path().join("local")
}

#[test]
fn every_command_prints_on_a_server_what_it_prints_locally() {
    let server = Server::start();
    let temp = tempfile::tempdir().unwrap();
    let dir = local_dir(&temp);
    let local = Target::Local(&dir);
    let remote = Target::Remote(&server.url);

    let jsonl = concat!(
        r#"{"type":"Deposited","data":{"amount":5},"id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","schema_version":3}"#,
        "\n",
        r#"{"type":"Blob","data_base64":"AP8=","metadata":{"m":1},"id":"0190a1b2-c3d4-7e5f-8a9b-000000000003"}"#,
        "\n",
    );
    // (arguments, standard input) of each step, in order.
    let steps: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "append",
                "account-1",
                "--type",
                "Opened",
                "--data",
                r#"{"owner": "alice"}"#,
                "--metadata",
                r#"{"$correlationId":"c-1"}"#,
                "--id",
                "0190a1b2-c3d4-7e5f-8a9b-000000000001",
                "--schema-version",
                "2",
                "--expected-revision",
                "no-stream",
            ],
            "",
        ),
        (
            vec![
                "append",
                "account-1",
                "--jsonl",
                "-",
                "--expected-revision",
                "0",
            ],
            jsonl,
        ),
        (
            vec![
                "append",
                "order-1",
                "--type",
                "Placed",
                "--data",
                "1",
                "--id",
                "0190a1b2-c3d4-7e5f-8a9b-000000000004",
            ],
            "",
        ),
        (vec!["read", "account-1"], ""),
        (vec!["read", "account-1", "--backwards", "--limit", "2"], ""),
        (vec!["read", "account-1", "--from", "1", "--limit", "1"], ""),
        (vec!["read-all"], ""),
        (vec!["read-all", "--backwards", "--limit", "2"], ""),
        (vec!["read-all", "--from", "2", "--limit", "1"], ""),
        (vec!["read-all", "--stream-prefix", "order-"], ""),
        (vec!["read-all", "--type-regex", "^(Opened|Placed)$"], ""),
        (vec!["metadata", "account-1"], ""),
        (
            vec![
                "metadata",
                "account-1",
                "--set",
                r#"{"$maxCount":2,"owner":"x"}"#,
            ],
            "",
        ),
        (vec!["metadata", "account-1"], ""),
        (vec!["read", "account-1"], ""),
        (vec!["delete", "order-1"], ""),
        (vec!["read-all", "--include-system"], ""),
        (vec!["delete", "account-1", "--tombstone"], ""),
        (
            vec![
                "read-all",
                "--include-system",
                "--backwards",
                "--limit",
                "1",
            ],
            "",
        ),
    ];
    for (args, input) in &steps {
        let here: Vec<Value> = local.ok(args, input).into_iter().map(comparable).collect();
        let there: Vec<Value> = remote.ok(args, input).into_iter().map(comparable).collect();
        assert_eq!(there, here, "factum {args:?}");
    }
    // A spot check that the comparison compares something.
    let events = remote.ok(&["read-all", "--stream-prefix", "account-"], "");
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["schema_version"], 3);
    assert_eq!(events[2]["data_base64"], "AP8=");
    assert_eq!(events[2]["metadata"], json!({"m": 1}));

    // Failures: the same exit codes and one-line messages.
    for (args, code) in [
        (vec!["read", "order-1"], 4),
        (vec!["read", "account-1"], 4),
        (
            vec![
                "append",
                "order-1",
                "--type",
                "T",
                "--data",
                "1",
                "--expected-revision",
                "5",
            ],
            3,
        ),
        (vec!["delete", "never-written"], 4),
    ] {
        local.fails(&args, code);
        remote.fails(&args, code);
    }
}

#[test]
fn the_server_can_be_named_by_the_environment() {
    let server = Server::start();
    let mut append = factum();
    append
        .env(SERVER_ENV, &server.url)
        .args(["append", "s", "--type", "T", "--data", "{}"]);
    let output = run(append, "");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        json_lines(&output.stdout),
        vec![json!({"position": 1, "revision": 0})]
    );
    let events = Target::Remote(&server.url).ok(&["read", "s"], "");
    assert_eq!(events.len(), 1);
}

#[test]
fn tail_follows_a_stream_and_the_log_on_a_server() {
    let server = Server::start();
    let remote = Target::Remote(&server.url);
    remote.ok(&["append", "s", "--type", "Before", "--data", "1"], "");
    let stream_tail = Running::spawn(remote.command(&["tail", "s"]));
    let all_tail = Running::spawn(remote.command(&["tail", "--all", "--type-prefix", "After"]));
    let history: Value = serde_json::from_str(&stream_tail.next_line()).unwrap();
    assert_eq!(history["type"], "Before");

    remote.ok(&["append", "s", "--type", "After", "--data", "2"], "");
    let live: Value = serde_json::from_str(&stream_tail.next_line()).unwrap();
    assert_eq!(live["type"], "After");
    assert_eq!(live["revision"], 1);
    let filtered: Value = serde_json::from_str(&all_tail.next_line()).unwrap();
    assert_eq!(
        filtered, live,
        "tail --all prints the same line as tail of the stream"
    );
}

#[test]
fn commands_that_need_a_data_directory_refuse_a_server() {
    let url = "http://127.0.0.1:1";
    for args in [
        vec!["serve"],
        vec!["bench", "--json"],
        vec!["projections", "list"],
        vec!["demo", "bank"],
        vec!["migrate-stream", "a", "b"],
    ] {
        let mut command = factum();
        command.args(["--server", url]).args(&args);
        let error = failure(run(command, ""), &args, 1);
        assert!(error.contains("data directory"), "{args:?}: {error}");
    }
    // From the environment too, and saying so (without the URL's password).
    let mut command = factum();
    command
        .env(SERVER_ENV, "http://admin:s3cret@127.0.0.1:1")
        .arg("serve");
    let error = failure(run(command, ""), &["serve"], 1);
    assert!(error.contains(SERVER_ENV), "{error}");
    assert!(error.contains("admin:***@"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");

    let temp = tempfile::tempdir().unwrap();
    let mut command = factum();
    command
        .args(["--server", url, "--data-dir"])
        .arg(temp.path())
        .args(["read", "s"]);
    let error = failure(run(command, ""), &["read"], 1);
    assert!(error.contains("--data-dir"), "{error}");
}

#[test]
fn a_server_that_is_not_there_or_a_bad_url_is_a_clear_error() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{address}");
    let error = Target::Remote(&url).fails(&["read", "s"], 1);
    assert!(error.contains(&address.to_string()), "{error}");

    let error = Target::Remote("kurrentdb://localhost:2113").fails(&["read", "s"], 1);
    assert!(error.contains("tlsCaFile"), "{error}");
    assert!(error.contains("tls=false"), "{error}");

    // Half the credentials in the environment.
    let mut command = Target::Remote(&url).command(&["read", "s"]);
    command
        .env("FACTUM_USERNAME", "alice")
        .env_remove("FACTUM_PASSWORD");
    let error = failure(run(command, ""), &["read"], 1);
    assert!(error.contains("FACTUM_PASSWORD"), "{error}");
}
