//! Proof with the real clients: the official KurrentDB clients, installed from their package
//! registries, run scenario scripts against a `factum serve` that each test starts on a fresh
//! data directory and a free port.
//!
//! - Python: `kurrentdbclient` and `eventsourcing-kurrentdb`, pinned in
//!   `tests/clients/python/requirements.txt`, installed into a virtual environment.
//! - Node: `@kurrent/kurrentdb-client`, pinned in `tests/clients/node/package.json` and its
//!   lock file, installed with `npm ci`.
//!
//! Both are installed once into a cache under the target directory and reinstalled only when
//! the pinned requirements (or the interpreter) change. A failed install fails every test with
//! the installer's output: the tests never pass without having run the clients.
//!
//! Each scenario script gets the server's URI as its argument, prints each check it makes and
//! exits non-zero on the first failure; the harness shows that output and the server's log
//! when it does. After each scenario the server must shut down cleanly on SIGTERM.

mod support;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the server may take to print its `listening on` line, or to exit after SIGTERM.
const SERVER_PATIENCE: Duration = Duration::from_secs(30);

/// How long one scenario script may run before the test calls it stuck and kills it.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(180);

/// How many acknowledged appends the SIGKILL test waits for before killing the server.
const ACKS_BEFORE_KILL: usize = 200;

/// How much of a server's log the harness keeps for failure reports (the end of it).
const SERVER_LOG_BYTES_MAX: usize = 64 * 1024;

/// The scenario directories in the source tree.
fn scenarios_dir(client: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(client)
}

/// The cache of installed clients, under the target directory.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("kurrentdb-clients")
}

// ------------------------------------------------------------------------------------------
// Installing the clients
// ------------------------------------------------------------------------------------------

/// The Python interpreter of the virtual environment holding the pinned Python clients.
fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(install_python) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// The directory holding the Node scenarios next to their installed `node_modules`.
fn node_dir() -> &'static Path {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match NODE.get_or_init(install_node) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// Holds an exclusive lock on the cache while installing, so that two test processes sharing
/// a target directory never install into the same place at once.
fn lock_cache() -> Result<File, String> {
    let dir = cache_dir();
    fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let path = dir.join("install.lock");
    let file = File::create(&path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    file.lock()
        .map_err(|error| format!("cannot lock {}: {error}", path.display()))?;
    Ok(file)
}

/// What an installation was made from: when it changes, the installation is redone.
fn stamp(inputs: &[&Path], tool_version: &str) -> Result<String, String> {
    let mut stamp = format!("{tool_version}\n");
    for input in inputs {
        let text = fs::read_to_string(input)
            .map_err(|error| format!("cannot read {}: {error}", input.display()))?;
        stamp.push_str(&text);
    }
    Ok(stamp)
}

/// Runs an installer step, turning a failure into a message that says what to check.
fn install_step(command: &mut Command, what: &str) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what}: cannot run {shown}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({status}); the client tests need the package registry to install \
         the pinned clients, so check that it is reachable.\ncommand: {shown}\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        status = output.status,
        stdout = String::from_utf8_lossy(&output.stdout),
        stderr = String::from_utf8_lossy(&output.stderr),
    ))
}

/// The first line a tool prints for `--version`, or an error saying the tool is missing.
fn tool_version(program: &str, needed_for: &str) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|error| format!("`{program}` is needed for {needed_for}: {error}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

fn install_python() -> Result<PathBuf, String> {
    let _lock = lock_cache()?;
    let dir = cache_dir().join("python");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let requirements = scenarios_dir("python").join("requirements.txt");
    let wanted = stamp(
        &[&requirements],
        &tool_version("python3", "the Python client tests")?,
    )?;
    let stamp_path = dir.join("installed-from.txt");
    if python.exists() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!("installing the Python clients into {}", venv.display());
    let _ = fs::remove_file(&stamp_path);
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .map_err(|error| format!("cannot remove {}: {error}", venv.display()))?;
    }
    fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    install_step(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating the Python virtual environment",
    )?;
    install_step(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--retries", "2", "--timeout", "60", "-r"])
            .arg(&requirements),
        "installing the Python clients from PyPI (pip install -r requirements.txt)",
    )?;
    fs::write(&stamp_path, wanted)
        .map_err(|error| format!("cannot write {}: {error}", stamp_path.display()))?;
    Ok(python)
}

fn install_node() -> Result<PathBuf, String> {
    let _lock = lock_cache()?;
    let dir = cache_dir().join("node");
    let source = scenarios_dir("node");
    let manifest = source.join("package.json");
    let lock = source.join("package-lock.json");
    let wanted = stamp(
        &[&manifest, &lock],
        &tool_version("node", "the Node client tests")?,
    )?;
    let stamp_path = dir.join("installed-from.txt");
    let installed = dir.join("node_modules/@kurrent/kurrentdb-client/package.json");
    if !(installed.exists()
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(wanted.as_str()))
    {
        eprintln!("installing the Node client into {}", dir.display());
        let _ = fs::remove_file(&stamp_path);
        fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        for file in [&manifest, &lock] {
            let target = dir.join(file.file_name().unwrap());
            fs::copy(file, &target)
                .map_err(|error| format!("cannot copy {}: {error}", file.display()))?;
        }
        install_step(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--fetch-retries", "2"])
                .current_dir(&dir),
            "installing the Node client from npm (npm ci)",
        )?;
        fs::write(&stamp_path, wanted)
            .map_err(|error| format!("cannot write {}: {error}", stamp_path.display()))?;
    }
    // The scripts run from beside `node_modules`, where their imports resolve; copied on every
    // run, so an edited scenario is the one that runs.
    let entries = fs::read_dir(&source)
        .map_err(|error| format!("cannot list {}: {error}", source.display()))?;
    for entry in entries {
        let path = entry.map_err(|error| error.to_string())?.path();
        if path.extension().is_some_and(|extension| extension == "mjs") {
            let target = dir.join(path.file_name().unwrap());
            fs::copy(&path, &target)
                .map_err(|error| format!("cannot copy {}: {error}", path.display()))?;
        }
    }
    Ok(dir)
}

// ------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------

/// A `factum serve` child process, killed if a test ends early.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    /// The thread collecting the log; it ends when the server closes its stderr.
    log_thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `factum serve` on `data_dir` and a free port; returns once it is listening.
    fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// [`Server::start`] with more options for `factum serve`.
    fn start_with(data_dir: &Path, options: &[OsString]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_factum"))
            // A TLS server is authenticated: its first admin is the user the scenarios log in
            // as (`admin:changeit`). Plain-text servers ignore it.
            .env("FACTUM_ADMIN_PASSWORD", "changeit")
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start `factum serve`");
        let log = Arc::new(Mutex::new(String::new()));
        let log_thread = collect_log(child.stderr.take().unwrap(), Arc::clone(&log));
        let lines = support::line_channel(child.stdout.take().unwrap());
        let deadline = Instant::now() + SERVER_PATIENCE;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = listening_port(&line) {
                        break port;
                    }
                }
                Err(error) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let _ = log_thread.join();
                    panic!(
                        "`factum serve` printed no `listening on 127.0.0.1:PORT` line \
                         ({error:?}, exit status {status:?}); its log:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        };
        // Keep draining stdout so that the server never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        Server {
            child,
            port,
            log,
            log_thread: Some(log_thread),
        }
    }

    /// The URI as the Python client spells it.
    fn python_uri(&self) -> String {
        format!("kurrentdb://127.0.0.1:{}?Tls=false", self.port)
    }

    /// The URI as the Node client spells it.
    fn node_uri(&self) -> String {
        format!("kurrentdb://127.0.0.1:{}?tls=false", self.port)
    }

    /// The end of the server's log so far.
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the log.
    fn terminate(mut self) -> (ExitStatus, String) {
        signal(self.child.id(), "TERM");
        let status = wait_for(&mut self.child, SERVER_PATIENCE).unwrap_or_else(|| {
            panic!(
                "`factum serve` did not exit within {SERVER_PATIENCE:?} of SIGTERM; its log:\n{}",
                self.log()
            )
        });
        if let Some(log_thread) = self.log_thread.take() {
            let _ = log_thread.join();
        }
        (status, self.log())
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it to be gone.
    fn kill(mut self) {
        self.child.kill().expect("cannot SIGKILL the server");
        self.child.wait().expect("cannot reap the killed server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port of a `listening on 127.0.0.1:PORT` line.
fn listening_port(line: &str) -> Option<u16> {
    let address = line.trim().strip_prefix("listening on ")?;
    address.rsplit_once(':')?.1.parse().ok()
}

/// Sends a signal (`TERM`, `KILL`) to a process.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run `kill`");
    assert!(status.success(), "`kill -{name} {pid}` failed");
}

/// Waits for a child to exit, at most `patience`; if it has not by then, kills it (SIGKILL)
/// and returns `None`. A scoped thread waits on the child, so the exit is awaited, not polled.
fn wait_for(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(move || {
            let _ = sender.send(child.wait().expect("cannot wait for a child"));
        });
        match receiver.recv_timeout(patience) {
            Ok(status) => Some(status),
            Err(_) => {
                // The waiting thread returns once the kill is done, before the scope ends.
                signal(pid, "KILL");
                None
            }
        }
    })
}

/// Appends what a pipe delivers to `log`, keeping only its last `SERVER_LOG_BYTES_MAX` bytes.
fn collect_log(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
            if log.len() > SERVER_LOG_BYTES_MAX {
                let mut cut = log.len() - SERVER_LOG_BYTES_MAX / 2;
                while !log.is_char_boundary(cut) {
                    cut += 1;
                }
                log.replace_range(..cut, "[...]\n");
            }
        }
    })
}

// ------------------------------------------------------------------------------------------
// Running the scenarios
// ------------------------------------------------------------------------------------------

/// What a scenario script did.
struct Outcome {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    fn describe(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {SCRIPT_PATIENCE:?} without finishing"),
        };
        format!(
            "status: {status}\n--- script stdout ---\n{}\n--- script stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs a script to its end (or kills it after `SCRIPT_PATIENCE`), capturing its output.
fn run_script(program: &Path, args: &[OsString], current_dir: &Path) -> Outcome {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(current_dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    let stdout = read_all_of(child.stdout.take().unwrap());
    let stderr = read_all_of(child.stderr.take().unwrap());
    let status = wait_for(&mut child, SCRIPT_PATIENCE);
    Outcome {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Reads a pipe to its end on a thread.
fn read_all_of(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A fresh data directory inside a temporary directory.
fn data_dir() -> (TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    (temp, data_dir)
}

/// Runs one scenario against its own server, then stops the server with SIGTERM.
fn scenario(program: &Path, script: PathBuf, uri: impl FnOnce(&Server) -> String, cwd: &Path) {
    scenario_with(program, script, &[], uri, cwd);
}

/// [`scenario`] against a server started with more options.
fn scenario_with(
    program: &Path,
    script: PathBuf,
    server_options: &[OsString],
    uri: impl FnOnce(&Server) -> String,
    cwd: &Path,
) {
    assert!(script.exists(), "no scenario {}", script.display());
    let (_temp, data_dir) = data_dir();
    let server = Server::start_with(&data_dir, server_options);
    let args = [script.clone().into_os_string(), uri(&server).into()];
    let outcome = run_script(program, &args, cwd);
    let (status, log) = server.terminate();
    assert!(
        outcome.passed(),
        "scenario {} failed\n{}\n--- server log ---\n{log}",
        script.display(),
        outcome.describe()
    );
    assert!(
        status.success(),
        "`factum serve` did not exit cleanly on SIGTERM ({status})\n--- server log ---\n{log}"
    );
    println!("{}", outcome.stdout);
}

fn python_scenario(file: &str) {
    let python = python();
    let dir = scenarios_dir("python");
    scenario(python, dir.join(file), Server::python_uri, &dir);
}

fn node_scenario(file: &str) {
    let dir = node_dir();
    scenario(Path::new("node"), dir.join(file), Server::node_uri, dir);
}

/// A `factum dev-cert` pair in `dir`: the server's TLS options, and the CA file for clients.
fn dev_cert(dir: &Path) -> (Vec<OsString>, PathBuf) {
    let out = dir.join("certs");
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("dev-cert")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("cannot run `factum dev-cert`");
    assert!(
        output.status.success(),
        "`factum dev-cert` failed: {output:?}"
    );
    let options = vec![
        "--tls-cert".into(),
        out.join("server.pem").into_os_string(),
        "--tls-key".into(),
        out.join("server.key").into_os_string(),
    ];
    (options, out.join("ca.pem"))
}

/// A scenario against a server serving TLS with a development pair; `uri` gets the port and
/// the CA file. Until the server has users, any credentials are accepted.
fn tls_scenario(
    program: &Path,
    script: PathBuf,
    uri: impl FnOnce(u16, &Path) -> String,
    cwd: &Path,
) {
    let certs = tempfile::tempdir().unwrap();
    let (options, ca) = dev_cert(certs.path());
    scenario_with(
        program,
        script,
        &options,
        |server| uri(server.port, &ca),
        cwd,
    );
}

/// Every scenario file, so that a new one without a test is noticed.
const PYTHON_SCENARIOS: &[&str] = &[
    "appends.py",
    "reads.py",
    "read_all.py",
    "subscriptions.py",
    "deletes.py",
    "metadata.py",
    "round_trip_10k.py",
    "eventsourcing_app.py",
    "kill_during_appends.py",
    "tls.py",
];
const NODE_SCENARIOS: &[&str] = &[
    "appends.mjs",
    "reads.mjs",
    "subscriptions.mjs",
    "deletes_metadata.mjs",
    "tls.mjs",
];
/// Files in the scenario directories that are not scenarios.
const NOT_SCENARIOS: &[&str] = &[
    "support.py",
    "requirements.txt",
    "support.mjs",
    "package.json",
    "package-lock.json",
];

#[test]
fn every_scenario_file_has_a_test() {
    for (client, scenarios) in [("python", PYTHON_SCENARIOS), ("node", NODE_SCENARIOS)] {
        for entry in fs::read_dir(scenarios_dir(client)).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                scenarios.contains(&name.as_str()) || NOT_SCENARIOS.contains(&name.as_str()),
                "tests/clients/{client}/{name} is not run by any test in this file"
            );
        }
    }
}

#[test]
fn python_appends() {
    python_scenario("appends.py");
}

#[test]
fn python_reads() {
    python_scenario("reads.py");
}

#[test]
fn python_read_all() {
    python_scenario("read_all.py");
}

#[test]
fn python_subscriptions() {
    python_scenario("subscriptions.py");
}

#[test]
fn python_deletes() {
    python_scenario("deletes.py");
}

#[test]
fn python_metadata() {
    python_scenario("metadata.py");
}

#[test]
fn python_round_trip_10k() {
    python_scenario("round_trip_10k.py");
}

#[test]
fn python_eventsourcing_app() {
    python_scenario("eventsourcing_app.py");
}

#[test]
fn python_tls() {
    let dir = scenarios_dir("python");
    tls_scenario(
        python(),
        dir.join("tls.py"),
        |port, ca| {
            format!(
                "kurrentdb://admin:changeit@localhost:{port}?tls=true&tlsCaFile={}",
                ca.display()
            )
        },
        &dir,
    );
}

#[test]
fn node_appends() {
    node_scenario("appends.mjs");
}

#[test]
fn node_reads() {
    node_scenario("reads.mjs");
}

#[test]
fn node_subscriptions() {
    node_scenario("subscriptions.mjs");
}

#[test]
fn node_deletes_metadata() {
    node_scenario("deletes_metadata.mjs");
}

#[test]
fn node_tls() {
    let dir = node_dir();
    tls_scenario(
        Path::new("node"),
        dir.join("tls.mjs"),
        |port, ca| {
            format!(
                "kurrentdb://admin:changeit@localhost:{port}?tls=true&tlsCAFile={}",
                ca.display()
            )
        },
        dir,
    );
}

/// The server killed with SIGKILL while the Python client appends loses no acknowledged
/// event: the client journals each acknowledgement, the test kills the server after
/// `ACKS_BEFORE_KILL` of them, restarts it on the same data directory, and a second run of
/// the script finds every journaled event at its revision and position.
#[test]
fn python_kill_during_appends_loses_no_acknowledged_event() {
    let python = python();
    let dir = scenarios_dir("python");
    let script = dir.join("kill_during_appends.py");
    let (temp, data_dir) = data_dir();
    let journal = temp.path().join("journal.jsonl");

    let server = Server::start(&data_dir);
    let mut appender = Command::new(python)
        .arg(&script)
        .arg("append")
        .arg(server.python_uri())
        .arg(&journal)
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the appending script");
    let lines = support::line_channel(appender.stdout.take().unwrap());
    let stderr = read_all_of(appender.stderr.take().unwrap());
    let mut seen = Vec::new();
    let deadline = Instant::now() + SCRIPT_PATIENCE;
    let mut acks = 0;
    while acks < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if line.starts_with("ack ") {
                    acks += 1;
                }
                seen.push(line);
            }
            Err(error) => {
                let _ = appender.kill();
                let _ = appender.wait();
                let log = server.log();
                panic!(
                    "the appender stopped after {acks} acknowledgements ({}):\n{}\n\
                     --- stderr ---\n{}\n--- server log ---\n{log}",
                    match error {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "exited",
                    },
                    seen.join("\n"),
                    stderr.join().unwrap(),
                );
            }
        }
    }
    server.kill();

    // With the server gone every append fails and the script ends by itself.
    let status = wait_for(&mut appender, SCRIPT_PATIENCE);
    seen.extend(lines.try_iter());
    let appender_stderr = stderr.join().unwrap();
    let appender_output = format!(
        "status: {status:?}\n{}\n--- stderr ---\n{appender_stderr}",
        seen.join("\n")
    );
    assert!(
        status.is_some_and(|status| status.success()),
        "the appending script did not stop cleanly after the kill:\n{appender_output}"
    );

    let server = Server::start(&data_dir);
    let args = [
        script.clone().into_os_string(),
        "verify".into(),
        server.python_uri().into(),
        journal.into_os_string(),
    ];
    let outcome = run_script(python, &args, &dir);
    let (status, log) = server.terminate();
    assert!(
        outcome.passed(),
        "acknowledged events did not survive the SIGKILL\n{}\n--- appender ---\n\
         {appender_output}\n--- server log after the restart ---\n{log}",
        outcome.describe()
    );
    assert!(
        status.success(),
        "`factum serve` did not exit cleanly on SIGTERM ({status})\n--- server log ---\n{log}"
    );
    println!("{}", outcome.stdout);
}
