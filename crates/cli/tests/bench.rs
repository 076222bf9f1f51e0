//! End to end: `factum bench` with tiny settings, against this machine's PostgreSQL, checking
//! that every figure of issue 3 is reported and sane and that the bench cleans up after itself.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The PostgreSQL the bench's `pg_*` twin runs against (trust auth, database `test`).
const POSTGRES_URL: &str = "postgresql://postgres@127.0.0.1:5432/test";

/// Runs `factum ARGS` in `cwd`.
fn factum(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// Runs `body` on a fresh PostgreSQL client; panics, naming the URL, if there is no server.
fn with_postgres<T>(body: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "the bench test needs PostgreSQL at {POSTGRES_URL} (user postgres, trust \
                     auth, database test), and cannot connect: {error}"
                )
            });
        let driver = tokio::spawn(connection);
        let result = body(&client).await;
        drop(client);
        let _ = driver.await;
        result
    })
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("the report has no number {field}: {report}"))
}

#[test]
fn the_bench_reports_every_figure_and_cleans_up() {
    // Fail first, and clearly, if PostgreSQL is not there.
    with_postgres(async |client| client.simple_query("SELECT 1").await.unwrap());
    let cwd = tempfile::tempdir().unwrap();
    let output = factum(
        cwd.path(),
        &[
            "bench",
            "--json",
            "--events",
            "20000",
            "--seconds",
            "0.3",
            "--warmup-seconds",
            "0.1",
            "--fsync-probe-seconds",
            "0.2",
            "--postgres",
            POSTGRES_URL,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the bench failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();

    let rates = [
        "fsync_before_per_s",
        "fsync_after_per_s",
        "fsync_per_s",
        "append_1w_events_per_s",
        "append_8w_events_per_s",
        "append_64w_events_per_s",
        "append_batch100_events_per_s",
        "read_all_events_per_s",
        "pg_append_1w_events_per_s",
        "pg_append_8w_events_per_s",
        "pg_append_64w_events_per_s",
        "pg_append_batch100_events_per_s",
    ];
    for field in rates {
        assert!(number(&report, field) > 0.0, "{field} is not positive");
    }
    for prefix in ["", "pg_"] {
        let p50 = number(&report, &format!("{prefix}append_1w_p50_us"));
        let p99 = number(&report, &format!("{prefix}append_1w_p99_us"));
        assert!(p50 > 0.0, "{prefix}p50 is zero");
        assert!(p50 <= p99, "{prefix}p50 {p50} > p99 {p99}");
    }
    for workload in ["1w", "8w", "64w", "batch100"] {
        let field = format!("fdatasync_calls_{workload}");
        assert!(number(&report, &field) > 0.0, "{field} is zero");
    }
    // Group commit: 64 writers share fsyncs.
    assert!(
        number(&report, "fdatasync_calls_64w") < number(&report, "appends_64w"),
        "64 writers did not share fsyncs: {report}"
    );
    assert!(report["fsync_stable"].is_boolean());
    assert!(number(&report, "read_stream_10k_ms") > 0.0);
    assert!(number(&report, "reopen_ms") > 0.0);
    let rss = number(&report, "rss_mib_after_reopen");
    assert!(rss > 0.0 && rss < 1024.0, "rss {rss} MiB");
    assert!(number(&report, "events") >= 20_000.0);
    assert_eq!(report["read_all_checksum_ok"], Value::Bool(true));
    assert!(report["read_all_checksum"].is_string());
    for setting in ["pg_fsync", "pg_synchronous_commit"] {
        let value = report[setting].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{setting} is missing");
    }

    // The temporary store is gone, and the default store was never touched.
    let data_dir = report["data_dir"].as_str().unwrap();
    assert!(!Path::new(data_dir).exists(), "{data_dir} was left behind");
    assert!(!cwd.path().join("factum-data").exists());

    // The PostgreSQL schema is gone.
    let schema = report["pg_schema"].as_str().unwrap().to_owned();
    assert!(schema.starts_with("factum_bench_"));
    let left = with_postgres(async |client| {
        client
            .query(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .len()
    });
    assert_eq!(left, 0, "the schema {schema} was not dropped");
}

#[test]
fn the_bench_refuses_a_data_directory_that_is_not_empty() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("precious"), "keep me").unwrap();
    let dir = cwd.path().to_str().unwrap();
    let output = factum(cwd.path(), &["bench", "--json", "--data-dir", dir]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("precious")).unwrap(),
        "keep me"
    );
}
