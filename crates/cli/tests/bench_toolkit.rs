//! End to end: `factum bench toolkit` with tiny settings reports every figure of issue 4, each
//! sane, and leaves the data directory it was given holding one store per phase.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `factum ARGS` in `cwd`.
fn factum(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("the report has no number {field}: {report}"))
}

#[test]
fn the_toolkit_bench_reports_every_figure() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("bench-data");
    let output = factum(
        cwd.path(),
        &[
            "bench",
            "toolkit",
            "--json",
            "--quiet",
            "--events",
            "3000",
            "--seconds",
            "0.3",
            "--warmup-seconds",
            "0.05",
            "--load-repeats",
            "3",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the toolkit bench failed: {stderr}"
    );
    assert!(stderr.is_empty(), "--quiet prints no progress: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();

    // Rates: something was done in every window and every phase.
    for field in [
        "append_1w_events_per_s",
        "append_64w_events_per_s",
        "command_1w_per_s",
        "command_64w_per_s",
        "rebuild_1m_events_per_s",
    ] {
        let rate = number(&report, field);
        assert!(rate > 0.0, "{field} is {rate}: {report}");
    }
    // Durable commands wait for fsyncs. (How their rate compares with plain appends is a
    // figure of the report, not something a test on a busy machine can assert.)
    assert!(
        number(&report, "command_1w_fdatasync_calls") >= 1.0,
        "{report}"
    );

    let plain = number(&report, "load_10k_no_snapshot_ms");
    let snapshot = number(&report, "load_10k_snapshot_ms");
    assert!(plain > 0.0 && snapshot > 0.0, "{report}");
    assert!(
        snapshot < plain,
        "a snapshot at the last revision must beat replaying 10,000 events: {report}"
    );
    assert_eq!(report["load_10k_snapshot_replayed"], 0, "{report}");

    let overhead = number(&report, "upcast_overhead_pct");
    assert!(
        overhead.is_finite() && overhead > -100.0,
        "upcast_overhead_pct is {overhead}: {report}"
    );
    assert!(number(&report, "upcast_v1_ms") > 0.0, "{report}");
    assert!(number(&report, "upcast_current_ms") > 0.0, "{report}");
    assert_eq!(report["events"], 3000, "{report}");

    // Every target is judged, true or false.
    let met = report["targets_met"].as_object().expect("targets_met");
    assert_eq!(met.len(), 7, "{report}");
    assert!(met.values().all(Value::is_boolean), "{report}");
    assert!(number(&report, "command_1w_vs_append_1w") > 0.0, "{report}");

    // The named directory is kept, one store per phase plus the read model.
    for phase in [
        "append",
        "commands",
        "load",
        "rebuild",
        "upcast-v1",
        "upcast-v3",
    ] {
        assert!(data.join(phase).is_dir(), "no {phase} store in {data:?}");
    }
    assert!(
        data.join("read-models")
            .join("account_summary.sqlite")
            .is_file()
    );
}
