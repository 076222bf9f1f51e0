//! `factum bench`: the figures issue 3 sets targets for, measured the same way every time.
//!
//! The run, in order:
//! 1. an fsync probe on a fresh file in the data directory (`fsync_before_per_s`);
//! 2. the append workloads on the embedded store, each a warm-up then a measured window: one
//!    writer, 8, 64, and one writer appending 100 events at a time; writer i of w appends to
//!    `bench-{w}-{i}` with exact revisions, ~200-byte JSON payloads;
//! 3. with `--postgres`, the same workloads on a plain PostgreSQL events table (`pg_*`);
//! 4. a bulk load up to `--events` in a CHILD process, killed with SIGKILL once its last append
//!    was acknowledged, so the store is left as a crash leaves it (not closed);
//! 5. a second child opens that store, reads, appends, and reports the time and its VmRSS;
//! 6. this process reopens the store and reads the whole log (`read_all_events_per_s`, with a
//!    checksum of the ids read checked against the ids written) and one 10,000-event stream;
//! 7. the fsync probe again (`fsync_after_per_s`).
//!
//! The children are this same executable, run as `<exe> __bench-child load|reopen ...`: the CLI
//! routes that hidden command to [`run_child`].

mod drive;
mod embedded;
mod postgres;
mod probe;
mod server;
mod toolkit;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use factum_log::EmbeddedStore;
use serde_json::{Map, Value, json};

use crate::drive::{Measured, Timing, drive};
use crate::embedded::StoreWriter;

pub use crate::server::{ServerBenchConfig, run_server};
pub use crate::toolkit::{ToolkitConfig, run_toolkit};

/// The hidden command of the CLI that runs [`run_child`].
pub const CHILD_COMMAND: &str = "__bench-child";

/// How a bench run is set up.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The store's size for the read and reopen figures: the bulk load tops the store up to
    /// this many events (the append workloads' events count too).
    pub events: u64,
    /// Where the store goes. It must be missing or empty, and is kept afterwards. `None`: a
    /// fresh temporary directory, removed at the end.
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL URL for the `pg_*` twin workloads.
    pub postgres: Option<String>,
    /// The measured window of each append workload (the method says 10 s).
    pub seconds: f64,
    /// The warm-up before each append workload's window (the method says 1 s).
    pub warmup_seconds: f64,
    /// The length of each fsync probe (the method says 3 s).
    pub fsync_probe_seconds: f64,
    /// The executable to run as [`CHILD_COMMAND`] for the load and reopen children: the CLI
    /// itself.
    pub child_exe: PathBuf,
    /// Whether to report progress on standard error.
    pub progress: bool,
}

impl BenchConfig {
    /// The method's defaults: a million events, 10 s windows after 1 s warm-ups, 3 s probes.
    pub fn new(child_exe: PathBuf) -> BenchConfig {
        BenchConfig {
            events: 1_000_000,
            data_dir: None,
            postgres: None,
            seconds: 10.0,
            warmup_seconds: 1.0,
            fsync_probe_seconds: 3.0,
            child_exe,
            progress: true,
        }
    }
}

/// Runs the bench and returns its one JSON object (see the crate's documentation for the
/// steps and `docs` of issue 3 for the fields).
pub async fn run(config: BenchConfig) -> anyhow::Result<Value> {
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
                .prefix("factum-bench-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            temp.path().to_owned()
        }
    };
    let progress = |step: &str| {
        if config.progress {
            eprintln!("factum bench: {step}");
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

    if let Some(url) = &config.postgres {
        // An unreachable server fails the run now, not after a minute of embedded workloads.
        drop(postgres::connect(url).await?);
    }

    progress("fsync probe (before)");
    let fsync_before = probe::fsync_per_s(&dir, "fsync-probe-before", probe).await?;

    // Every event written is tallied, so the read of the whole log can be checked against it.
    let mut written = 0u64;
    let mut id_sum = 0u128;
    // As a server runs it: appends come from workers of a multi-threaded runtime, and an idle
    // writer commits on the caller's thread.
    let options = factum_log::Options {
        commit_on_caller_thread: true,
        ..factum_log::Options::default()
    };
    let store = Arc::new(EmbeddedStore::open_with(&dir, options)?);
    for (name, writers, batch) in [
        ("1w", 1, 1),
        ("8w", 8, 1),
        ("64w", 64, 1),
        ("batch100", 1, 100),
    ] {
        progress(&format!("append {name}"));
        let mut connected = Vec::with_capacity(writers);
        for writer in 0..writers {
            connected.push(StoreWriter::new(store.clone(), writers, writer).await?);
        }
        let counter = store.clone();
        let measured = drive(connected, batch, timing, move || counter.fsync_count()).await?;
        written += measured.events_written;
        id_sum = id_sum.wrapping_add(measured.id_sum);
        report_workload(&mut out, "", name, &measured);
        out.insert(format!("fdatasync_calls_{name}"), json!(measured.fsyncs));
        out.insert(format!("appends_{name}"), json!(measured.appends));
    }
    match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(_) => bail!("a writer still holds the store"),
    }

    if let Some(url) = &config.postgres {
        let pg = postgres::run(url, timing, &progress).await?;
        report_workload(&mut out, "pg_", "1w", &pg.one_writer);
        report_workload(&mut out, "pg_", "8w", &pg.eight_writers);
        report_workload(&mut out, "pg_", "64w", &pg.sixty_four_writers);
        report_workload(&mut out, "pg_", "batch100", &pg.batch100);
        out.insert("pg_fsync".into(), json!(pg.fsync));
        out.insert("pg_synchronous_commit".into(), json!(pg.synchronous_commit));
        out.insert("pg_schema".into(), json!(pg.schema));
    }

    let to_load = config.events.saturating_sub(written);
    progress(&format!(
        "bulk load of {} events in a child process, then SIGKILL",
        to_load.max(embedded::READ_STREAM_EVENTS)
    ));
    let exe = config.child_exe.clone();
    let load_dir = dir.clone();
    let loaded =
        tokio::task::spawn_blocking(move || load_and_kill(&exe, &load_dir, to_load)).await??;
    written += loaded.events;
    id_sum = id_sum.wrapping_add(loaded.id_sum);
    out.insert(
        "load_events_per_s".into(),
        json!(rounded(loaded.events as f64 / loaded.seconds.max(1e-9))),
    );

    progress("reopen after the crash, in a child process");
    let exe = config.child_exe.clone();
    let reopen_dir = dir.clone();
    let reopened =
        tokio::task::spawn_blocking(move || run_reopen_child(&exe, &reopen_dir)).await??;
    written += 1;
    id_sum = id_sum.wrapping_add(hex_u128(&reopened["id_sum"])?);
    for (from, to) in [
        ("reopen_ms", "reopen_ms"),
        ("open_ms", "reopen_open_ms"),
        ("rss_mib", "rss_mib_after_reopen"),
        ("rss_peak_mib", "rss_peak_mib_after_reopen"),
    ] {
        out.insert(to.into(), reopened[from].clone());
    }

    progress("read the whole log, and one stream of 10,000 events");
    let store = EmbeddedStore::open(&dir)?;
    let read = embedded::read_all(&store).await?;
    let stream_reads = embedded::read_stream_10k(&store, 5).await?;
    store.close();
    out.insert(
        "read_all_events_per_s".into(),
        json!(rounded(
            read.events as f64 / read.elapsed.as_secs_f64().max(1e-9)
        )),
    );
    out.insert(
        "read_all_checksum".into(),
        json!(format!("{:032x}", read.id_sum)),
    );
    let checksum_ok = read.id_sum == id_sum && read.events == written;
    out.insert("read_all_checksum_ok".into(), json!(checksum_ok));
    out.insert("events".into(), json!(read.events));
    out.insert(
        "read_stream_10k_first_ms".into(),
        json!(millis(stream_reads[0])),
    );
    let mut sorted = stream_reads.clone();
    sorted.sort_unstable();
    out.insert(
        "read_stream_10k_ms".into(),
        json!(millis(sorted[sorted.len() / 2])),
    );

    progress("fsync probe (after)");
    let fsync_after = probe::fsync_per_s(&dir, "fsync-probe-after", probe).await?;
    out.insert("fsync_before_per_s".into(), json!(rounded(fsync_before)));
    out.insert("fsync_after_per_s".into(), json!(rounded(fsync_after)));
    out.insert(
        "fsync_per_s".into(),
        json!(rounded((fsync_before + fsync_after) / 2.0)),
    );
    out.insert(
        "fsync_stable".into(),
        json!(probe::stable(fsync_before, fsync_after)),
    );
    if !checksum_ok {
        bail!(
            "the whole log read back {} events with checksum {:032x}, but {written} events with \
             checksum {id_sum:032x} were written: {}",
            read.events,
            read.id_sum,
            Value::Object(out)
        );
    }
    Ok(Value::Object(out))
}

/// Puts a workload's rate (and, for one writer, its latencies) into the output.
fn report_workload(out: &mut Map<String, Value>, prefix: &str, name: &str, measured: &Measured) {
    out.insert(
        format!("{prefix}append_{name}_events_per_s"),
        json!(rounded(measured.events_per_s())),
    );
    if name == "1w" {
        out.insert(
            format!("{prefix}append_1w_p50_us"),
            json!(measured.latency_us(0.5)),
        );
        out.insert(
            format!("{prefix}append_1w_p99_us"),
            json!(measured.latency_us(0.99)),
        );
    }
}

/// A rate rounded to a whole number.
fn rounded(value: f64) -> u64 {
    value.round() as u64
}

/// A duration in milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} must be a duration"))
}

fn hex_u128(value: &Value) -> anyhow::Result<u128> {
    let text = value.as_str().context("expected a hexadecimal string")?;
    Ok(u128::from_str_radix(text, 16)?)
}

/// A child process that is killed (SIGKILL) if it is still running when dropped, so an error
/// in the bench leaves no orphan holding the data directory.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the load child reported.
struct LoadReport {
    events: u64,
    id_sum: u128,
    seconds: f64,
}

/// Runs the load child, waits for the line saying its last append was acknowledged, and
/// kills it with SIGKILL: the store is left unclosed, as after a crash.
fn load_and_kill(exe: &Path, dir: &Path, events: u64) -> anyhow::Result<LoadReport> {
    let child = Command::new(exe)
        .arg(CHILD_COMMAND)
        .arg("load")
        .arg("--dir")
        .arg(dir)
        .arg("--events")
        .arg(events.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let mut child = KillOnDrop(child);
    let stdout = child
        .0
        .stdout
        .take()
        .context("the load child has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let report: Value = serde_json::from_str(line.trim())
        .with_context(|| format!("the load child failed (it printed {:?})", line.trim()))?;
    if report["acked"] != json!(true) {
        bail!("the load child did not acknowledge its appends: {report}");
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no clean close.
    child.0.kill()?;
    child.0.wait()?;
    Ok(LoadReport {
        events: report["events"].as_u64().context("no event count")?,
        id_sum: hex_u128(&report["id_sum"])?,
        seconds: report["seconds"].as_f64().context("no duration")?,
    })
}

/// Runs the reopen child to its end and returns what it printed.
fn run_reopen_child(exe: &Path, dir: &Path) -> anyhow::Result<Value> {
    let output = Command::new(exe)
        .arg(CHILD_COMMAND)
        .arg("reopen")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !output.status.success() {
        bail!("the reopen child failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("the reopen child printed {:?}", text.trim()))
}

/// The entry of the children: `load --dir D --events N`, `reopen --dir D` or `read --dir D`
/// (the arguments after [`CHILD_COMMAND`]). Each prints one JSON line on standard output.
pub async fn run_child(args: &[String]) -> anyhow::Result<()> {
    let (role, rest) = args.split_first().context("expected `load` or `reopen`")?;
    let mut dir = None;
    let mut events = None;
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--events" => events = Some(value.parse::<u64>()?),
            other => bail!("unknown option {other}"),
        }
    }
    let dir = dir.context("--dir is required")?;
    match role.as_str() {
        "load" => load_child(&dir, events.context("--events is required")?).await,
        "reopen" => reopen_child(&dir).await,
        "read" => read_child(&dir).await,
        other => bail!("unknown role {other}"),
    }
}

async fn load_child(dir: &Path, events: u64) -> anyhow::Result<()> {
    let store = Arc::new(EmbeddedStore::open(dir)?);
    let loaded = embedded::load(store.clone(), events).await?;
    let report = json!({
        "acked": true,
        "events": loaded.events,
        "id_sum": format!("{:032x}", loaded.id_sum),
        "seconds": loaded.elapsed.as_secs_f64(),
    });
    println!("{report}");
    // Wait, with the store open, for the SIGKILL. Should the parent die first, standard input
    // closes and the child leaves without closing the store either.
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    std::process::exit(0);
}

async fn reopen_child(dir: &Path) -> anyhow::Result<()> {
    let (store, reopened) = embedded::reopen(dir).await?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let report = json!({
        "reopen_ms": millis(reopened.total),
        "open_ms": millis(reopened.open),
        "rss_mib": status_mib(&status, "VmRSS:")?,
        "rss_peak_mib": status_mib(&status, "VmHWM:")?,
        "id_sum": format!("{:032x}", reopened.id_sum),
    });
    store.close();
    println!("{report}");
    Ok(())
}

/// Only the reads of an existing bench store, for profiling them on their own (`perf record
/// factum __bench-child read --dir D`): the bench itself does not use this role.
async fn read_child(dir: &Path) -> anyhow::Result<()> {
    let store = EmbeddedStore::open(dir)?;
    let read = embedded::read_all(&store).await?;
    let stream_reads = embedded::read_stream_10k(&store, 5).await?;
    store.close();
    let report = json!({
        "events": read.events,
        "read_all_events_per_s": rounded(read.events as f64 / read.elapsed.as_secs_f64().max(1e-9)),
        "read_all_checksum": format!("{:032x}", read.id_sum),
        "read_stream_10k_ms": stream_reads.iter().copied().map(millis).collect::<Vec<_>>(),
    });
    println!("{report}");
    Ok(())
}

/// A `kB` line of `/proc/self/status`, in MiB to a tenth.
fn status_mib(status: &str, key: &str) -> anyhow::Result<f64> {
    let line = status
        .lines()
        .find(|line| line.starts_with(key))
        .with_context(|| format!("no {key} in /proc/self/status"))?;
    let kib: f64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok((kib / 1024.0 * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_lines_of_proc_status() {
        let status = "Name:\tfactum\nVmHWM:\t   20480 kB\nVmRSS:\t   10752 kB\n";
        assert_eq!(status_mib(status, "VmRSS:").unwrap(), 10.5);
        assert_eq!(status_mib(status, "VmHWM:").unwrap(), 20.0);
        assert!(status_mib(status, "VmSwap:").is_err());
    }

    #[test]
    fn hex_checksums_round_trip() {
        let value = json!(format!("{:032x}", u128::MAX - 5));
        assert_eq!(hex_u128(&value).unwrap(), u128::MAX - 5);
        assert!(hex_u128(&json!(7)).is_err());
    }
}
