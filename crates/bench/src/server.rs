//! `factum bench server`: the figures issue 5 sets targets for, `factum serve` over gRPC beside
//! the embedded engine in-process, measured in one run on one machine.
//!
//! The run, in order:
//! 1. the fsync probe in the data directory (`fsync_per_s`), as `factum bench` runs it;
//! 2. `factum serve` on `server-appends/` and a free loopback port, as a CHILD process (this
//!    same executable), so its resident memory is its own and the clients run in another
//!    process;
//! 3. the append workloads, each a warm-up then a measured window of the engine bench's
//!    harness; each in-process one runs right before the gRPC ones compared with it (the
//!    server idle meanwhile), because this kind of machine's fsync rate drifts over a run:
//!    - in-process, on an embedded store in `engine/` opened as `factum bench` opens it, with
//!      its writers: 64 writers appending one event at a time (`append_64w_events_per_s`);
//!    - over gRPC, 64 clients appending one event per `Streams.Append` call
//!      (`grpc_append_64c_events_per_s`), then one event per request on a long-lived
//!      `Streams.BatchAppend` call each (`grpc_batch_append_64c_events_per_s`, information: the
//!      Node and asyncio Python clients send single events that way);
//!    - in-process, one writer appending 100 events at a time (`append_batch100_events_per_s`);
//!    - over gRPC, 100-event requests on a long-lived `Streams.BatchAppend` call, one request
//!      in flight per client: one client (`grpc_append_batch100_1c_events_per_s`, like for
//!      like), then `--batch-clients` clients (`grpc_append_batch100_events_per_s`, default 8,
//!      the server's capacity);
//!    - over gRPC, one client, one event per Append call (`grpc_append_1c_events_per_s`).
//!
//!    Every gRPC client has its own HTTP/2 connection (a [`StreamsClient`] on its own channel)
//!    and its own stream, appends ~200-byte JSON events with exact expected revisions, and
//!    checks each acknowledgement. That server's VmRSS is reported (`serve_appends_rss_mib`,
//!    with `serve_appends_events` stored), then it is stopped with SIGTERM;
//! 4. a second `factum serve`, on `server/`, takes a bulk load of exactly `--events` events over
//!    BatchAppend (1,000-event requests from 4 clients, `grpc_load_events_per_s`), so the read
//!    and memory figures have the store size the targets name, whatever the append rates;
//! 5. one client reads its `$all` forwards from the start, unfiltered, in one `Streams.Read`
//!    call, decoding every `ReadResp` and parsing every event's id
//!    (`grpc_read_all_events_per_s`). The count and the sum of the ids read must equal those
//!    loaded: a checksum of the whole round trip;
//! 6. that server's VmRSS and VmHWM from `/proc/<pid>/status` (`serve_rss_mib`,
//!    `serve_rss_peak_mib`), then SIGTERM, and its exit is awaited (`serve_stopped_cleanly`
//!    covers both servers).
//!
//! Every gRPC phase also reports the CPU time the server and the clients spent per event
//! (`*_server_cpu_us_per_event`, `*_client_cpu_us_per_event`): where the machine is shared with
//! other work, rates move with it and these say what the phase costs.
//!
//! Which RPC carries an append is the official clients' choice: the Python client sends a single
//! event with `Streams.Append` (one call per append) and a list with `Streams.BatchAppend`; the
//! Node client keeps one BatchAppend call open per connection. The single-event workloads use
//! Append, the batch workloads BatchAppend on a long-lived call.
//!
//! Clients and server share the machine's cores: the figures include the clients' own work
//! (encoding, decoding, HTTP/2), as a benchmark on one machine must.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use bytes::Bytes;
use factum_core::{CONTENT_TYPE_JSON, ProposedEvent};
use factum_log::EmbeddedStore;
use factum_proto::shared::{self, StreamIdentifier};
use factum_proto::streams::append_req::options::ExpectedStreamRevision;
use factum_proto::streams::batch_append_req::options::ExpectedStreamPosition;
use factum_proto::streams::read_req::options::{
    AllOptions, ControlOption, CountOption, FilterOption, ReadDirection, StreamOption, UuidOption,
    all_options, uuid_option,
};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{
    AppendReq, BatchAppendReq, BatchAppendResp, ReadReq, append_req, append_resp, batch_append_req,
    batch_append_resp, read_req, read_resp,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::drive::{Measured, Timing, Writer, drive};
use crate::embedded::{EVENT_TYPE, StoreWriter, events};
use crate::{millis, rounded, seconds, status_mib};

/// Clients of the concurrent single-event workload.
const MANY_CLIENTS: usize = 64;

/// Events per append of the batch workloads, in-process and over gRPC.
const BATCH_EVENTS: usize = 100;

/// Events per BatchAppend request of the bulk load.
const LOAD_BATCH_EVENTS: u64 = 1_000;

/// Clients (connections) of the bulk load.
const LOAD_CLIENTS: u64 = 4;

/// Streams of the bulk load, a multiple of [`LOAD_CLIENTS`] so that each has one owner.
const LOAD_STREAMS: u64 = 1_000;

/// Requests a client queues on its BatchAppend call before waiting (it waits for each reply,
/// so at most one is ever queued).
const BATCH_CALL_QUEUE: usize = 2;

/// How long the server may take to print its address, and to exit after SIGTERM.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// The target of `grpc_append_64c` and `grpc_append_batch100`: this share of the in-process
/// figure.
const RATIO_TARGET: f64 = 0.5;

/// The target of `grpc_read_all_events_per_s`.
const READ_ALL_TARGET_PER_S: f64 = 500_000.0;

/// The target of `serve_rss_mib`.
const RSS_TARGET_MIB: f64 = 50.0;

/// How a server bench run is set up.
#[derive(Debug, Clone)]
pub struct ServerBenchConfig {
    /// The store size for the read and memory figures: the second server takes a bulk load of
    /// exactly this many events.
    pub events: u64,
    /// Where the stores go (`engine/`, `server-appends/` and `server/`). It must be missing or
    /// empty, and is kept afterwards. `None`: a fresh temporary directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// The measured window of each append workload.
    pub seconds: f64,
    /// The warm-up before each window.
    pub warmup_seconds: f64,
    /// The length of the fsync probe.
    pub fsync_probe_seconds: f64,
    /// Clients of the gRPC batch-100 workload.
    pub batch_clients: usize,
    /// The executable to run as `factum serve`: the CLI itself.
    pub exe: PathBuf,
    /// Whether to report progress on standard error.
    pub progress: bool,
}

impl ServerBenchConfig {
    /// The defaults: a million events, 8 s windows after 1 s warm-ups, a 3 s probe, 8 batch
    /// clients. A default run takes a little over a minute.
    pub fn new(exe: PathBuf) -> ServerBenchConfig {
        ServerBenchConfig {
            events: 1_000_000,
            data_dir: None,
            seconds: 8.0,
            warmup_seconds: 1.0,
            fsync_probe_seconds: 3.0,
            batch_clients: 8,
            exe,
            progress: true,
        }
    }
}

/// Runs the server bench and returns its one JSON object (see the module documentation).
pub async fn run_server(config: ServerBenchConfig) -> anyhow::Result<Value> {
    ensure!(
        config.batch_clients >= 1,
        "--batch-clients must be at least 1"
    );
    let temp;
    let dir = match &config.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "the bench needs an empty data directory, and {} is not empty",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("factum-bench-server-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            temp.path().to_owned()
        }
    };
    let progress = |step: &str| {
        if config.progress {
            eprintln!("factum bench server: {step}");
        }
    };
    let timing = Timing {
        warmup: seconds(config.warmup_seconds, "--warmup-seconds")?,
        measured: seconds(config.seconds, "--seconds")?,
    };
    let probe = seconds(config.fsync_probe_seconds, "--fsync-probe-seconds")?;
    let mut out = Map::new();
    out.insert("data_dir".into(), json!(dir.display().to_string()));
    out.insert("seconds".into(), json!(config.seconds));
    out.insert("warmup_seconds".into(), json!(config.warmup_seconds));
    out.insert(
        "fsync_probe_seconds".into(),
        json!(config.fsync_probe_seconds),
    );
    out.insert("payload_bytes".into(), json!(crate::drive::PAYLOAD_BYTES));
    out.insert("grpc_append_1c_clients".into(), json!(1));
    out.insert("grpc_append_64c_clients".into(), json!(MANY_CLIENTS));
    out.insert(
        "grpc_append_batch100_clients".into(),
        json!(config.batch_clients),
    );
    out.insert("grpc_load_clients".into(), json!(LOAD_CLIENTS));
    out.insert(
        "grpc_single_event_rpc".into(),
        json!("Streams.Append, one call per append"),
    );
    out.insert(
        "grpc_batch_rpc".into(),
        json!("Streams.BatchAppend, one long-lived call per client, one request in flight"),
    );

    progress("fsync probe");
    let fsync = crate::probe::fsync_per_s(&dir, "fsync-probe", probe).await?;
    out.insert("fsync_per_s".into(), json!(rounded(fsync)));

    // The append workloads, on a server of their own.
    progress("start `factum serve` for the append workloads");
    let mut server = ServerProcess::start(&config.exe, &dir.join("server-appends")).await?;
    let outcome = append_workloads(&config, timing, &dir, &server, &mut out, &progress).await;
    let memory = server.memory();
    let stopped = server.stop().await;
    outcome?;
    let (rss, _) = memory?;
    out.insert("serve_appends_rss_mib".into(), json!(rss));
    let mut stopped_cleanly = stopped?;

    // The read and the memory figure, on a server holding exactly `--events` events.
    progress("start `factum serve` for the load and the read");
    let mut server = ServerProcess::start(&config.exe, &dir.join("server")).await?;
    let outcome = load_and_read(&config, &server, &mut out, &progress).await;
    // Memory is read with the load and the read done, before the server stops.
    let memory = server.memory();
    progress("stop the server (SIGTERM)");
    let stopped = server.stop().await;
    let checksum_ok = outcome?;
    let (rss, peak) = memory?;
    out.insert("serve_rss_mib".into(), json!(rss));
    out.insert("serve_rss_peak_mib".into(), json!(peak));
    stopped_cleanly &= stopped?;
    out.insert("serve_stopped_cleanly".into(), json!(stopped_cleanly));
    targets(&mut out);
    if !checksum_ok {
        bail!(
            "reading $all over gRPC did not give back the events written: {}",
            Value::Object(out)
        );
    }
    Ok(Value::Object(out))
}

/// Step 3. Each in-process workload runs right before the gRPC workloads compared with it (the
/// server idle meanwhile), since this kind of machine's fsync rate drifts over a run.
async fn append_workloads(
    config: &ServerBenchConfig,
    timing: Timing,
    dir: &Path,
    server: &ServerProcess,
    out: &mut Map<String, Value>,
    progress: &impl Fn(&str),
) -> anyhow::Result<()> {
    let options = factum_log::Options {
        commit_on_caller_thread: true,
        ..factum_log::Options::default()
    };
    let engine = Arc::new(EmbeddedStore::open_with(dir.join("engine"), options)?);

    progress("in-process append 64w");
    in_process(&engine, out, "append_64w", MANY_CLIENTS, 1, timing).await?;
    let mut grpc = Grpc {
        server,
        timing,
        out: &mut *out,
        events: 0,
    };
    progress("gRPC append 64c (Streams.Append, one event each)");
    grpc.append("grpc_append_64c", MANY_CLIENTS).await?;
    progress("gRPC append 64c (Streams.BatchAppend, one event each)");
    grpc.batch("grpc_batch_append_64c", MANY_CLIENTS, 1).await?;
    let mut events = grpc.events;

    progress("in-process append batch100");
    in_process(&engine, out, "append_batch100", 1, BATCH_EVENTS, timing).await?;
    let mut grpc = Grpc {
        server,
        timing,
        out: &mut *out,
        events: 0,
    };
    progress("gRPC append batch100, 1 client (Streams.BatchAppend)");
    grpc.batch("grpc_append_batch100_1c", 1, BATCH_EVENTS)
        .await?;
    progress(&format!(
        "gRPC append batch100, {} clients (Streams.BatchAppend)",
        config.batch_clients
    ));
    let clients = config.batch_clients;
    grpc.batch("grpc_append_batch100", clients, BATCH_EVENTS)
        .await?;
    progress("gRPC append 1c (Streams.Append, one event each)");
    grpc.append("grpc_append_1c", 1).await?;
    events += grpc.events;
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.close(),
        Err(_) => bail!("a writer still holds the in-process store"),
    }
    out.insert("serve_appends_events".into(), json!(events));
    Ok(())
}

/// Steps 4 and 5 on a fresh server; returns whether `$all` gave back what was written.
async fn load_and_read(
    config: &ServerBenchConfig,
    server: &ServerProcess,
    out: &mut Map<String, Value>,
    progress: &impl Fn(&str),
) -> anyhow::Result<bool> {
    let address = server.address.as_str();
    progress(&format!(
        "gRPC bulk load of {} events (Streams.BatchAppend)",
        config.events
    ));
    let cpu = CpuClock::start(server)?;
    let loaded = load(address, config.events).await?;
    cpu.report(out, "grpc_load", loaded.events)?;
    out.insert(
        "grpc_load_events_per_s".into(),
        json!(rounded(
            loaded.events as f64 / loaded.elapsed.as_secs_f64().max(1e-9)
        )),
    );

    progress(&format!("gRPC read of $all ({} events)", loaded.events));
    let cpu = CpuClock::start(server)?;
    // On a worker of the runtime, beside the connection's task, not on the thread that
    // blocks on the whole bench: every HTTP/2 frame would cross threads.
    let read = tokio::spawn(read_all(address.to_owned())).await??;
    cpu.report(out, "grpc_read_all", read.events)?;
    out.insert(
        "grpc_read_all_events_per_s".into(),
        json!(rounded(
            read.events as f64 / read.elapsed.as_secs_f64().max(1e-9)
        )),
    );
    out.insert("grpc_read_all_ms".into(), json!(millis(read.elapsed)));
    out.insert("events".into(), json!(read.events));
    let checksum_ok = read.events == loaded.events && read.id_sum == loaded.id_sum;
    out.insert("grpc_read_all_checksum_ok".into(), json!(checksum_ok));
    if !checksum_ok {
        out.insert("events_written".into(), json!(loaded.events));
        out.insert(
            "grpc_read_all_checksum".into(),
            json!(format!("{:032x}", read.id_sum)),
        );
        out.insert(
            "grpc_written_checksum".into(),
            json!(format!("{:032x}", loaded.id_sum)),
        );
    }
    Ok(checksum_ok)
}

/// An in-process workload on `store`: `writers` writers appending `batch` events at a time,
/// with the engine bench's writers (its streams `bench-{writers}-{i}`) and harness.
async fn in_process(
    store: &Arc<EmbeddedStore>,
    out: &mut Map<String, Value>,
    stem: &str,
    writers: usize,
    batch: usize,
    timing: Timing,
) -> anyhow::Result<()> {
    let mut connected = Vec::with_capacity(writers);
    for writer in 0..writers {
        connected.push(StoreWriter::new(store.clone(), writers, writer).await?);
    }
    let counter = store.clone();
    let measured = drive(connected, batch, timing, move || counter.fsync_count()).await?;
    report(out, stem, &measured);
    out.insert(format!("{stem}_fdatasync_calls"), json!(measured.fsyncs));
    Ok(())
}

/// What every gRPC append workload needs: the server, the windows and the report; it counts
/// the events written.
struct Grpc<'a> {
    server: &'a ServerProcess,
    timing: Timing,
    out: &'a mut Map<String, Value>,
    /// Events the workloads wrote, warm-ups included.
    events: u64,
}

impl Grpc<'_> {
    /// `clients` clients, each on its own connection and stream, appending one event per
    /// `Streams.Append` call; reported under `stem`.
    async fn append(&mut self, stem: &str, clients: usize) -> anyhow::Result<()> {
        let mut writers = Vec::with_capacity(clients);
        for client in 0..clients {
            let stream = format!("{}-{client}", stem.replace('_', "-"));
            writers.push(AppendWriter::connect(&self.server.address, stream, client).await?);
        }
        self.run(stem, writers, 1).await
    }

    /// `clients` clients, each on its own connection, call and stream, sending `batch`-event
    /// requests on one long-lived `Streams.BatchAppend` call; reported under `stem`.
    async fn batch(&mut self, stem: &str, clients: usize, batch: usize) -> anyhow::Result<()> {
        let mut writers = Vec::with_capacity(clients);
        for client in 0..clients {
            let stream = format!("{}-{client}", stem.replace('_', "-"));
            writers.push(BatchWriter::connect(&self.server.address, stream, client).await?);
        }
        self.run(stem, writers, batch).await
    }

    async fn run<W: Writer>(
        &mut self,
        stem: &str,
        writers: Vec<W>,
        batch: usize,
    ) -> anyhow::Result<()> {
        let cpu = CpuClock::start(self.server)?;
        let measured = drive(writers, batch, self.timing, || 0).await?;
        cpu.report(self.out, stem, measured.events_written)?;
        self.events += measured.events_written;
        report(self.out, stem, &measured);
        Ok(())
    }
}

/// Puts a workload's rate under `{stem}_events_per_s`, with its latencies beside it.
fn report(out: &mut Map<String, Value>, stem: &str, measured: &Measured) {
    out.insert(
        format!("{stem}_events_per_s"),
        json!(rounded(measured.events_per_s())),
    );
    out.insert(format!("{stem}_p50_us"), json!(measured.latency_us(0.5)));
    out.insert(format!("{stem}_p99_us"), json!(measured.latency_us(0.99)));
}

/// The targets of issue 5, their thresholds in this run, and whether each was met.
fn targets(out: &mut Map<String, Value>) {
    let number = |field: &str| out.get(field).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let append_64w = number("append_64w_events_per_s");
    let append_batch100 = number("append_batch100_events_per_s");
    let ratio_64c = number("grpc_append_64c_events_per_s") / append_64w;
    let ratio_batch100 = number("grpc_append_batch100_events_per_s") / append_batch100;
    let read_all = number("grpc_read_all_events_per_s");
    let rss = number("serve_rss_mib");
    // Like for like: one client against the in-process single writer (information only).
    let ratio_batch100_1c = number("grpc_append_batch100_1c_events_per_s") / append_batch100;
    let targets = json!({
        "grpc_append_64c_events_per_s": {
            "at_least": rounded(RATIO_TARGET * append_64w),
            "rule": "0.5 x append_64w_events_per_s",
        },
        "grpc_append_batch100_events_per_s": {
            "at_least": rounded(RATIO_TARGET * append_batch100),
            "rule": "0.5 x append_batch100_events_per_s",
        },
        "grpc_read_all_events_per_s": { "at_least": READ_ALL_TARGET_PER_S },
        "serve_rss_mib": { "at_most": RSS_TARGET_MIB },
    });
    let met = json!({
        "grpc_append_64c_ge_0.5x_append_64w": ratio_64c >= RATIO_TARGET,
        "grpc_append_batch100_ge_0.5x_append_batch100": ratio_batch100 >= RATIO_TARGET,
        "grpc_read_all_ge_500k_per_s": read_all >= READ_ALL_TARGET_PER_S,
        "serve_rss_le_50_mib": rss <= RSS_TARGET_MIB,
    });
    out.insert(
        "grpc_append_64c_vs_append_64w".into(),
        json!((ratio_64c * 1000.0).round() / 1000.0),
    );
    out.insert(
        "grpc_append_batch100_vs_append_batch100".into(),
        json!((ratio_batch100 * 1000.0).round() / 1000.0),
    );
    out.insert(
        "grpc_append_batch100_1c_vs_append_batch100".into(),
        json!((ratio_batch100_1c * 1000.0).round() / 1000.0),
    );
    out.insert("targets".into(), targets);
    out.insert("targets_met".into(), met);
}

/// The CPU time the server and this process (the clients) used over one phase.
struct CpuClock {
    server_pid: u32,
    server: Duration,
    clients: Duration,
}

impl CpuClock {
    fn start(server: &ServerProcess) -> anyhow::Result<CpuClock> {
        let server_pid = server.child.id().context("the server has exited")?;
        Ok(CpuClock {
            server_pid,
            server: cpu_time(&server_pid.to_string())?,
            clients: cpu_time("self")?,
        })
    }

    /// Puts the CPU time per event of the server and of the clients under
    /// `{stem}_server_cpu_us_per_event` and `{stem}_client_cpu_us_per_event`: on a machine
    /// shared with other work these say what a phase costs where rates cannot.
    fn report(self, out: &mut Map<String, Value>, stem: &str, events: u64) -> anyhow::Result<()> {
        let server = cpu_time(&self.server_pid.to_string())?.saturating_sub(self.server);
        let clients = cpu_time("self")?.saturating_sub(self.clients);
        let per_event = |cpu: Duration| {
            let micros = cpu.as_secs_f64() * 1e6 / events.max(1) as f64;
            (micros * 100.0).round() / 100.0
        };
        out.insert(
            format!("{stem}_server_cpu_us_per_event"),
            json!(per_event(server)),
        );
        out.insert(
            format!("{stem}_client_cpu_us_per_event"),
            json!(per_event(clients)),
        );
        Ok(())
    }
}

/// The CPU time (user and system, all threads, finished ones included) process `pid` (or
/// `self`) has used: fields 14 and 15 of `/proc/PID/stat`, in ticks of 1/100 s (`USER_HZ`,
/// fixed by the kernel's ABI).
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    cpu_time_of(&stat).with_context(|| format!("cannot parse /proc/{pid}/stat: {stat:?}"))
}

fn cpu_time_of(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// `factum serve` running as a child process; killed (SIGKILL) if dropped while running.
struct ServerProcess {
    child: Child,
    /// The address it printed, `127.0.0.1:PORT`.
    address: String,
    /// Its standard output, kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts `exe --data-dir DIR serve --listen 127.0.0.1:0` and waits for its `listening on`
    /// line. Its log goes to this process's standard error, at `warn` unless `RUST_LOG` says
    /// otherwise.
    async fn start(exe: &Path, dir: &Path) -> anyhow::Result<ServerProcess> {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let mut child = tokio::process::Command::new(exe)
            .arg("--data-dir")
            .arg(dir)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("the server has no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        tokio::time::timeout(SERVER_TIMEOUT, stdout.read_line(&mut line))
            .await
            .context("the server did not say where it listens")??;
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("the server failed to start (it printed {line:?})"))?
            .to_owned();
        Ok(ServerProcess {
            child,
            address,
            _stdout: stdout,
        })
    }

    /// The server's VmRSS and VmHWM, in MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("cannot read the server's /proc status")?;
        Ok((
            status_mib(&status, "VmRSS:")?,
            status_mib(&status, "VmHWM:")?,
        ))
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully in time
    /// (otherwise it is killed).
    async fn stop(&mut self) -> anyhow::Result<bool> {
        let Some(pid) = self.child.id() else {
            return Ok(false);
        };
        // The `kill` command, as the CLI's tests use: no signal crate, no unsafe code.
        let sent = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .context("cannot run `kill`")?;
        if !sent.success() {
            bail!("`kill -TERM {pid}` failed");
        }
        match tokio::time::timeout(SERVER_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                self.child.kill().await?;
                Ok(false)
            }
        }
    }
}

/// A client on its own HTTP/2 connection.
async fn connect(address: &str) -> anyhow::Result<StreamsClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the server at {address}"))?;
    Ok(StreamsClient::new(channel))
}

/// The metadata map every proposed event carries.
fn wire_metadata() -> HashMap<String, String> {
    HashMap::from([
        ("type".to_owned(), EVENT_TYPE.to_owned()),
        ("content-type".to_owned(), CONTENT_TYPE_JSON.to_owned()),
    ])
}

/// An id in the string form the Python, Node and Rust clients send.
fn wire_id(id: Uuid) -> shared::Uuid {
    shared::Uuid {
        value: Some(shared::uuid::Value::String(id.hyphenated().to_string())),
    }
}

/// A writer of the single-event workloads: one `Streams.Append` call per append.
struct AppendWriter {
    client: StreamsClient<Channel>,
    stream: Bytes,
    /// The stream's last revision; `None` before its first append.
    revision: Option<u64>,
    writer: usize,
    sequence: u64,
}

impl AppendWriter {
    async fn connect(address: &str, stream: String, writer: usize) -> anyhow::Result<Self> {
        Ok(AppendWriter {
            client: connect(address).await?,
            stream: Bytes::from(stream),
            revision: None,
            writer,
            sequence: 0,
        })
    }
}

#[async_trait]
impl Writer for AppendWriter {
    async fn append(&mut self, count: usize) -> anyhow::Result<u128> {
        let (proposed, id_sum) = events(self.writer, self.sequence, count);
        self.sequence += count as u64;
        let expected = match self.revision {
            Some(revision) => ExpectedStreamRevision::Revision(revision),
            None => ExpectedStreamRevision::NoStream(shared::Empty {}),
        };
        let mut messages = Vec::with_capacity(count + 1);
        messages.push(AppendReq {
            content: Some(append_req::Content::Options(append_req::Options {
                stream_identifier: Some(StreamIdentifier {
                    stream_name: self.stream.clone(),
                }),
                expected_stream_revision: Some(expected),
            })),
        });
        messages.extend(proposed.into_iter().map(|event| AppendReq {
            content: Some(append_req::Content::ProposedMessage(
                append_req::ProposedMessage {
                    id: Some(wire_id(event.id.0)),
                    metadata: wire_metadata(),
                    custom_metadata: Bytes::new(),
                    data: event.data,
                },
            )),
        }));
        let reply = self
            .client
            .append(tokio_stream::iter(messages))
            .await?
            .into_inner();
        match reply.result {
            Some(append_resp::Result::Success(append_resp::Success {
                current_revision_option:
                    Some(append_resp::success::CurrentRevisionOption::CurrentRevision(revision)),
                ..
            })) => self.revision = Some(revision),
            other => bail!("an append was not acknowledged: {other:?}"),
        }
        Ok(id_sum)
    }
}

/// One long-lived `Streams.BatchAppend` call, one request in flight at a time.
struct BatchCall {
    requests: mpsc::Sender<BatchAppendReq>,
    replies: tonic::Streaming<BatchAppendResp>,
    /// The client whose connection carries the call.
    _client: StreamsClient<Channel>,
}

impl BatchCall {
    async fn open(address: &str) -> anyhow::Result<BatchCall> {
        let mut client = connect(address).await?;
        let (requests, receiver) = mpsc::channel(BATCH_CALL_QUEUE);
        let replies = client
            .batch_append(ReceiverStream::new(receiver))
            .await?
            .into_inner();
        Ok(BatchCall {
            requests,
            replies,
            _client: client,
        })
    }

    /// Appends `events` to `stream` at `revision` (`None`: a new stream) in one request, and
    /// returns the stream's new revision.
    async fn append(
        &mut self,
        stream: &Bytes,
        revision: Option<u64>,
        events: Vec<ProposedEvent>,
    ) -> anyhow::Result<u64> {
        let correlation_id = Uuid::new_v4();
        let expected = match revision {
            Some(revision) => ExpectedStreamPosition::StreamPosition(revision),
            None => ExpectedStreamPosition::NoStream(()),
        };
        let request = BatchAppendReq {
            correlation_id: Some(wire_id(correlation_id)),
            options: Some(batch_append_req::Options {
                stream_identifier: Some(StreamIdentifier {
                    stream_name: stream.clone(),
                }),
                expected_stream_position: Some(expected),
                deadline_option: None,
            }),
            proposed_messages: events
                .into_iter()
                .map(|event| batch_append_req::ProposedMessage {
                    id: Some(wire_id(event.id.0)),
                    metadata: wire_metadata(),
                    custom_metadata: Bytes::new(),
                    data: event.data,
                })
                .collect(),
            is_final: true,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| anyhow!("the BatchAppend call has ended"))?;
        let reply = self
            .replies
            .message()
            .await?
            .context("the server ended the BatchAppend call")?;
        if reply.correlation_id != Some(wire_id(correlation_id)) {
            bail!("a BatchAppend reply with another correlation id: {reply:?}");
        }
        match reply.result {
            Some(batch_append_resp::Result::Success(batch_append_resp::Success {
                current_revision_option:
                    Some(batch_append_resp::success::CurrentRevisionOption::CurrentRevision(revision)),
                ..
            })) => Ok(revision),
            other => bail!("a BatchAppend request was not acknowledged: {other:?}"),
        }
    }
}

/// A writer of the batch workload: its own connection, call and stream.
struct BatchWriter {
    call: BatchCall,
    stream: Bytes,
    revision: Option<u64>,
    writer: usize,
    sequence: u64,
}

impl BatchWriter {
    async fn connect(address: &str, stream: String, writer: usize) -> anyhow::Result<Self> {
        Ok(BatchWriter {
            call: BatchCall::open(address).await?,
            stream: Bytes::from(stream),
            revision: None,
            writer,
            sequence: 0,
        })
    }
}

#[async_trait]
impl Writer for BatchWriter {
    async fn append(&mut self, count: usize) -> anyhow::Result<u128> {
        let (proposed, id_sum) = events(self.writer, self.sequence, count);
        self.sequence += count as u64;
        let revision = self
            .call
            .append(&self.stream, self.revision, proposed)
            .await?;
        self.revision = Some(revision);
        Ok(id_sum)
    }
}

/// What the bulk load wrote.
struct Loaded {
    events: u64,
    id_sum: u128,
    elapsed: Duration,
}

/// Appends `events` events over BatchAppend, in 1,000-event requests to [`LOAD_STREAMS`]
/// streams from [`LOAD_CLIENTS`] clients, each on its own connection and call.
async fn load(address: &str, events: u64) -> anyhow::Result<Loaded> {
    let jobs = events.div_ceil(LOAD_BATCH_EVENTS);
    let mut calls = Vec::new();
    for _ in 0..LOAD_CLIENTS {
        calls.push(BatchCall::open(address).await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = calls
        .into_iter()
        .zip(0..LOAD_CLIENTS)
        .map(|(call, client)| tokio::spawn(load_client(call, client, jobs, events)))
        .collect();
    let mut loaded = Loaded {
        events: 0,
        id_sum: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (count, id_sum) = task.await??;
        loaded.events += count;
        loaded.id_sum = loaded.id_sum.wrapping_add(id_sum);
    }
    loaded.elapsed = start.elapsed();
    ensure!(
        loaded.events == events,
        "the load appended {} events instead of {events}",
        loaded.events
    );
    Ok(loaded)
}

/// One client of the load: jobs `client`, `client + LOAD_CLIENTS`, ... of `jobs`.
async fn load_client(
    mut call: BatchCall,
    client: u64,
    jobs: u64,
    events_total: u64,
) -> anyhow::Result<(u64, u128)> {
    let mut revisions: HashMap<u64, u64> = HashMap::new();
    let mut appended = 0u64;
    let mut id_sum = 0u128;
    // Payload writer numbers apart from the workloads' (any number makes a valid payload).
    let writer = 1_000 + usize::try_from(client)?;
    for job in (client..jobs).step_by(LOAD_CLIENTS as usize) {
        let number = job % LOAD_STREAMS;
        let stream = Bytes::from(format!("grpc-load-{number}"));
        let first = job * LOAD_BATCH_EVENTS;
        let count = LOAD_BATCH_EVENTS.min(events_total - first);
        let (batch, sum) = events(writer, first, usize::try_from(count)?);
        let revision = call
            .append(&stream, revisions.get(&number).copied(), batch)
            .await?;
        revisions.insert(number, revision);
        appended += count;
        id_sum = id_sum.wrapping_add(sum);
    }
    Ok((appended, id_sum))
}

/// What reading `$all` over gRPC found.
struct ReadAll {
    events: u64,
    id_sum: u128,
    elapsed: Duration,
}

/// Reads `$all` forwards from the start in one `Streams.Read` call, unfiltered, ids as strings
/// (as the Python, Node and Rust clients ask), parsing every event's id and touching its data.
async fn read_all(address: String) -> anyhow::Result<ReadAll> {
    let mut client = connect(&address).await?;
    let request = ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(StreamOption::All(AllOptions {
                all_option: Some(all_options::AllOption::Start(shared::Empty {})),
            })),
            read_direction: ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(CountOption::Count(u64::MAX)),
            filter_option: Some(FilterOption::NoFilter(shared::Empty {})),
            uuid_option: Some(UuidOption {
                content: Some(uuid_option::Content::String(shared::Empty {})),
            }),
            control_option: Some(ControlOption { compatibility: 1 }),
        }),
    };
    let start = Instant::now();
    let mut replies = client.read(request).await?.into_inner();
    let mut events = 0u64;
    let mut id_sum = 0u128;
    let mut data_bytes = 0u64;
    while let Some(reply) = replies.message().await? {
        let Some(read_resp::Content::Event(read)) = reply.content else {
            continue;
        };
        let event = read.event.context("a ReadResp event without its event")?;
        let id = match event.id.and_then(|id| id.value) {
            Some(shared::uuid::Value::String(text)) => Uuid::try_parse(&text)?,
            other => bail!("an event id not in the string form asked for: {other:?}"),
        };
        events += 1;
        id_sum = id_sum.wrapping_add(id.as_u128());
        data_bytes += event.data.len() as u64;
    }
    let elapsed = start.elapsed();
    // Every event of the bench carries a payload; an empty one would mean a decoding slip.
    ensure!(data_bytes >= events, "$all returned events without data");
    Ok(ReadAll {
        events,
        id_sum,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_grpc_with_the_in_process_figures() {
        let mut out = Map::new();
        for (field, value) in [
            ("append_64w_events_per_s", 10_000.0),
            ("append_batch100_events_per_s", 100_000.0),
            ("grpc_append_64c_events_per_s", 6_000.0),
            ("grpc_append_batch100_events_per_s", 40_000.0),
            ("grpc_read_all_events_per_s", 600_000.0),
            ("serve_rss_mib", 51.0),
        ] {
            out.insert(field.into(), json!(value));
        }
        targets(&mut out);
        let met = &out["targets_met"];
        assert_eq!(met["grpc_append_64c_ge_0.5x_append_64w"], json!(true));
        assert_eq!(
            met["grpc_append_batch100_ge_0.5x_append_batch100"],
            json!(false)
        );
        assert_eq!(met["grpc_read_all_ge_500k_per_s"], json!(true));
        assert_eq!(met["serve_rss_le_50_mib"], json!(false));
        assert_eq!(
            out["targets"]["grpc_append_64c_events_per_s"]["at_least"],
            json!(5_000)
        );
        assert_eq!(out["grpc_append_batch100_vs_append_batch100"], json!(0.4));
    }

    #[test]
    fn cpu_time_is_user_plus_system_ticks() {
        let stat = "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 3";
        assert_eq!(cpu_time_of(stat), Some(Duration::from_millis(3_800)));
        assert_eq!(cpu_time_of("4242 (factum"), None);
        assert!(cpu_time("self").unwrap() < Duration::from_secs(1_000_000));
    }

    #[test]
    fn ids_go_out_as_canonical_text() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let wire = wire_id(id);
        assert_eq!(
            wire.value,
            Some(shared::uuid::Value::String(
                "01234567-89ab-cdef-0123-456789abcdef".to_owned()
            ))
        );
    }
}
