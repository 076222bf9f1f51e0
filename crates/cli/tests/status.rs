//! Operations: `factum serve` counts what it does in Prometheus metrics at `GET /metrics`, and
//! `factum status` summarises them. The test drives a server child through appends, a failed
//! append, reads, a bad request and a subscription, then parses the exposition and checks the
//! numbers exactly.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use factum_proto::shared::{self, Empty};
use factum_proto::streams::batch_append_req::options::ExpectedStreamPosition;
use factum_proto::streams::read_req::{self, options};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{ReadReq, batch_append_resp, read_resp};
use support::server::{ADMIN_PASSWORD, Served, Server, append, append_request, subscribe_to_all};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

const APPENDS: usize = 3;
const EVENTS_PER_APPEND: usize = 4;

/// One scrape: every sample by its series as written (`name{labels}`), and the metric types.
struct Exposition {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
    content_type: String,
}

impl Exposition {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in the exposition"))
    }
}

/// Parses the text format: `# TYPE name kind` lines, and `series value` lines whose series
/// belongs to a declared metric (a histogram's `_bucket`, `_sum` and `_count` included).
fn parse(content_type: String, text: &str) -> Exposition {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type in {line:?}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "{line:?} has no # TYPE before it"
        );
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    Exposition {
        samples,
        types,
        content_type,
    }
}

/// `GET /metrics` over HTTP/1.0, as a scraper does.
async fn scrape(address: &str) -> Exposition {
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    connection
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .expect("a content type");
    parse(content_type, body)
}

/// Scrapes until `holds` accepts a scrape: the server updates some figures just after it
/// answers (a subscription's state, once the client's next read reaches it).
async fn scrape_until(address: &str, what: &str, holds: impl Fn(&Exposition) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if holds(&scrape(address).await) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stream_read(stream: &str) -> ReadReq {
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(options::StreamOption::Stream(options::StreamOptions {
                stream_identifier: Some(shared::StreamIdentifier {
                    stream_name: stream.as_bytes().to_vec().into(),
                }),
                revision_option: Some(options::stream_options::RevisionOption::Start(Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(options::CountOption::Count(1000)),
            filter_option: Some(options::FilterOption::NoFilter(Empty {})),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(Empty {})),
            }),
            control_option: None,
        }),
    }
}

fn factum_status(address: &str, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["--server", &format!("http://{address}"), "status"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_server_did_and_status_summarises_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let channel = server.channel().await;
    let mut client = StreamsClient::new(channel.clone());

    for _ in 0..APPENDS {
        append(&channel, "account-1", EVENTS_PER_APPEND, "Deposited").await;
    }
    // A wrong expected revision: answered in-band, nothing written.
    let mut refused = append_request("account-1", 1, "Deposited");
    refused.options.as_mut().unwrap().expected_stream_position =
        Some(ExpectedStreamPosition::StreamPosition(99));
    let reply = client
        .batch_append(tokio_stream::iter([refused]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        reply.result,
        Some(batch_append_resp::Result::Error(_))
    ));
    // A read of the stream, and a malformed read (no options).
    let events = client
        .read(stream_read("account-1"))
        .await
        .unwrap()
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(events.len(), APPENDS * EVENTS_PER_APPEND);
    let malformed = client.read(ReadReq { options: None }).await.unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);

    // A subscription to $all, read until it caught up.
    let mut subscriber = StreamsClient::new(server.channel().await);
    let mut subscription = subscriber
        .read(subscribe_to_all())
        .await
        .unwrap()
        .into_inner();
    let mut delivered = 0;
    loop {
        match subscription.next().await.unwrap().unwrap().content {
            Some(read_resp::Content::Event(_)) => delivered += 1,
            Some(read_resp::Content::CaughtUp(_)) => break,
            _ => {}
        }
    }
    assert_eq!(delivered, APPENDS * EVENTS_PER_APPEND);

    let address = server.address.clone();
    // Caught up and waiting for new events: active, with no lag.
    scrape_until(&address, "an active subscription without lag", |metrics| {
        metrics.value("factum_subscriptions_active") == 1.0
            && metrics.value("factum_subscription_lag_max") == 0.0
    })
    .await;

    let metrics = scrape(&address).await;
    assert_eq!(
        metrics.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let events_written = (APPENDS * EVENTS_PER_APPEND) as f64;
    for (series, expected) in [
        ("factum_head_position", events_written),
        ("factum_appends_total{outcome=\"written\"}", APPENDS as f64),
        (
            "factum_appends_total{outcome=\"wrong_expected_revision\"}",
            1.0,
        ),
        ("factum_appends_total{outcome=\"error\"}", 0.0),
        ("factum_appended_events_total", events_written),
        ("factum_reads_total{target=\"stream\"}", 1.0),
        ("factum_reads_total{target=\"all\"}", 0.0),
        (
            "factum_read_events_total{target=\"stream\"}",
            events_written,
        ),
        ("factum_subscriptions_started_total{target=\"all\"}", 1.0),
        ("factum_subscription_events_total", events_written),
        ("factum_errors_total{kind=\"wrong_expected_revision\"}", 1.0),
        ("factum_errors_total{kind=\"invalid_argument\"}", 1.0),
        ("factum_errors_total{kind=\"stream_not_found\"}", 0.0),
        (
            "factum_grpc_calls_total{method=\"BatchAppend\",code=\"OK\"}",
            (APPENDS + 1) as f64,
        ),
        ("factum_grpc_calls_total{method=\"Read\",code=\"OK\"}", 2.0),
        (
            "factum_grpc_calls_total{method=\"Read\",code=\"INVALID_ARGUMENT\"}",
            1.0,
        ),
        // Every written event was made durable by some group commit's fsync.
        ("factum_group_commit_events_sum", events_written),
        (
            "factum_group_commit_events_bucket{le=\"+Inf\"}",
            metrics.value("factum_fsync_duration_seconds_count"),
        ),
    ] {
        assert_eq!(metrics.value(series), expected, "{series}");
    }
    assert!(metrics.value("factum_appended_bytes_total") > events_written * 100.0);
    let fsyncs = metrics.value("factum_fsync_duration_seconds_count");
    assert!((1.0..=APPENDS as f64).contains(&fsyncs), "{fsyncs} fsyncs");
    assert!(metrics.value("factum_fsync_duration_seconds_sum") > 0.0);
    assert_eq!(
        metrics.value("factum_fsync_duration_seconds_bucket{le=\"+Inf\"}"),
        fsyncs
    );
    assert_eq!(metrics.types["factum_fsync_duration_seconds"], "histogram");
    assert_eq!(metrics.types["factum_subscriptions_active"], "gauge");

    // `factum status` agrees, as JSON and for a person.
    let summary: serde_json::Value =
        serde_json::from_str(&factum_status(&address, &["--json", "--interval", "0"])).unwrap();
    assert_eq!(summary["appends"]["written"], APPENDS);
    assert_eq!(summary["events_written"], APPENDS * EVENTS_PER_APPEND);
    assert_eq!(summary["head_position"], APPENDS * EVENTS_PER_APPEND);
    assert_eq!(summary["subscriptions_active"], 1);
    assert_eq!(summary["subscription_lag_max"], 0);
    assert_eq!(
        summary["errors"],
        serde_json::json!({"invalid_argument": 1, "wrong_expected_revision": 1})
    );
    assert_eq!(summary["engine"]["fsyncs"].as_f64().unwrap(), fsyncs);
    assert!(summary["engine"]["fsync_p99_seconds"].as_f64().unwrap() > 0.0);
    let text = factum_status(&address, &["--interval", "0.1"]);
    assert!(
        text.contains("events stored   12 (head position)"),
        "{text}"
    );
    assert!(
        text.contains("appends         3 written, 0 empty, 1 wrong expected revision, 0 failed ("),
        "{text}"
    );
    assert!(
        text.contains("subscriptions   1 active, worst lag 0 positions"),
        "{text}"
    );
    assert!(
        text.contains("errors          2 (invalid_argument 1, wrong_expected_revision 1)"),
        "{text}"
    );
    assert!(text.contains("fsync           "), "{text}");

    // The subscriber leaves: the server drops its reply stream, and the gauge follows.
    drop(subscription);
    drop(subscriber);
    scrape_until(&address, "no active subscription", |metrics| {
        metrics.value("factum_subscriptions_active") == 0.0
    })
    .await;
}

/// `factum status` over TLS, as the admin (through FACTUM_USERNAME and FACTUM_PASSWORD) or with
/// `password`.
fn factum_status_tls(url: &str, password: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factum"));
    command
        .args(["--server", url, "status", "--interval", "0"])
        .env_remove("FACTUM_SERVER")
        .env_remove("FACTUM_USERNAME")
        .env_remove("FACTUM_PASSWORD");
    if let Some(password) = password {
        command
            .env("FACTUM_USERNAME", "admin")
            .env("FACTUM_PASSWORD", password);
    }
    command.output().unwrap()
}

#[test]
fn status_summarises_a_secure_server_over_tls_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (served, ca) = Served::start_tls(dir.path());
    for url in [
        format!(
            "https://localhost:{}?tlsCaFile={}",
            served.port(),
            ca.display()
        ),
        format!(
            "kurrentdb://localhost:{}?tls=true&tlsCaFile={}",
            served.port(),
            ca.display()
        ),
    ] {
        let output = factum_status_tls(&url, Some(ADMIN_PASSWORD));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains(&format!("server          {url}")), "{text}");
        assert!(text.contains("events stored   "), "{text}");
        assert!(text.contains("subscriptions   0 active"), "{text}");
    }
    // The password in the URL is not printed.
    let with_password = format!(
        "https://admin:{ADMIN_PASSWORD}@localhost:{}?tlsCaFile={}",
        served.port(),
        ca.display()
    );
    let output = factum_status_tls(&with_password, None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(text.contains("https://admin:***@localhost:"), "{text}");
    assert!(!text.contains(ADMIN_PASSWORD), "{text}");

    let url = format!(
        "https://localhost:{}?tlsCaFile={}",
        served.port(),
        ca.display()
    );
    for (password, expected) in [
        (Some("wrong"), "refused the credentials"),
        (None, "FACTUM_USERNAME"),
    ] {
        let output = factum_status_tls(&url, password);
        let error = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{error}");
        assert!(output.stdout.is_empty());
        assert!(error.contains(expected), "{error}");
    }
    // The plain path is refused by a TLS server with a clear error, not a hang.
    let plain = format!("http://localhost:{}", served.port());
    let output = factum_status_tls(&plain, Some(ADMIN_PASSWORD));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn status_needs_a_server() {
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("status")
        .env_remove("FACTUM_SERVER")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs a server"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `--log-format json` writes one JSON object a line, and `RUST_LOG=debug` logs each call.
#[test]
fn json_logs_are_one_object_a_line_with_each_call_at_debug_level() {
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info,factum_server=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = support::server::listening_address(&mut child);
    let appended = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["--server", &format!("http://{address}")])
        .args(["append", "log-1", "--type", "Noted", "--data", "{}"])
        .output()
        .unwrap();
    assert!(appended.status.success());
    // A graceful stop, so the logs end with the shutdown.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let logs: Vec<serde_json::Value> = String::from_utf8(output.stderr)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}")))
        .collect();
    assert!(
        logs.iter().any(
            |log| log["level"] == "INFO" && log["fields"]["message"] == "factum serve: stopped"
        ),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|log| log["level"] == "DEBUG"
            && log["fields"]["message"] == "grpc call"
            && log["fields"]["method"] == "BatchAppend"
            && log["fields"]["code"] == "OK"),
        "{logs:?}"
    );
}
