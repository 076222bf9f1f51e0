//! End to end: `factum bench server` with tiny settings starts `factum serve`, loads it over
//! gRPC, and reports every figure of issue 5 and its targets, each figure sane (no timing
//! assertions: this checks the shape, not the machine).

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
fn the_server_bench_reports_every_figure_and_its_targets() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("bench-data");
    let output = factum(
        cwd.path(),
        &[
            "bench",
            "server",
            "--json",
            "--quiet",
            "--events",
            "5000",
            "--seconds",
            "0.3",
            "--warmup-seconds",
            "0.05",
            "--fsync-probe-seconds",
            "0.05",
            "--batch-clients",
            "2",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the server bench failed: {stderr}");
    assert!(
        !stderr.contains("factum bench server:"),
        "--quiet prints no progress: {stderr}"
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();

    // Something was done in every window and every phase.
    for field in [
        "fsync_per_s",
        "append_64w_events_per_s",
        "append_batch100_events_per_s",
        "grpc_append_1c_events_per_s",
        "grpc_append_64c_events_per_s",
        "grpc_batch_append_64c_events_per_s",
        "grpc_append_batch100_1c_events_per_s",
        "grpc_append_batch100_events_per_s",
        "grpc_load_events_per_s",
        "grpc_read_all_events_per_s",
        "grpc_append_1c_p50_us",
        "grpc_append_64c_server_cpu_us_per_event",
        "grpc_read_all_client_cpu_us_per_event",
        "serve_rss_mib",
        "serve_rss_peak_mib",
        "serve_appends_rss_mib",
        "serve_appends_events",
    ] {
        let value = number(&report, field);
        assert!(value > 0.0, "{field} is {value}: {report}");
    }
    assert!(
        number(&report, "serve_rss_peak_mib") >= number(&report, "serve_rss_mib"),
        "{report}"
    );

    // The second server took exactly --events events, and $all over gRPC gave back exactly
    // what was written (the count and the sum of the ids).
    assert_eq!(report["events"], 5000, "{report}");
    assert_eq!(report["grpc_read_all_checksum_ok"], true, "{report}");
    assert_eq!(report["serve_stopped_cleanly"], true, "{report}");

    // The parameters are reported.
    assert_eq!(report["seconds"], 0.3, "{report}");
    assert_eq!(report["grpc_append_64c_clients"], 64, "{report}");
    assert_eq!(report["grpc_append_batch100_clients"], 2, "{report}");
    assert_eq!(report["payload_bytes"], 200, "{report}");

    // Every target has its threshold, and is judged true or false.
    let targets = report["targets"].as_object().expect("targets");
    assert_eq!(targets.len(), 4, "{report}");
    let met = report["targets_met"].as_object().expect("targets_met");
    assert_eq!(met.len(), 4, "{report}");
    assert!(met.values().all(Value::is_boolean), "{report}");
    assert!(
        number(&report, "grpc_append_64c_vs_append_64w") > 0.0,
        "{report}"
    );

    // The named directory is kept: the in-process store and the two servers'.
    for store in ["engine", "server-appends", "server"] {
        assert!(data.join(store).is_dir(), "no {store} store in {data:?}");
    }
}
