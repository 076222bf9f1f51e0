//! `factum status --server URL`: a running server's health for a person. Scrapes the
//! server's Prometheus metrics (`GET /metrics`) over HTTP or HTTPS (with the server URL's TLS
//! settings and credentials, as the other commands use them), optionally twice to compute
//! rates, and prints a short summary (or, with `--json`, one JSON object).
//!
//! The HTTP client is a few lines of HTTP/1.0 (one request, the body read until the server
//! closes), over tokio-rustls for TLS: enough for one scrape without an HTTP client crate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of a `/metrics` answer read.
const SCRAPE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// `factum status`'s options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Prints one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,

    /// Scrapes twice, this many seconds apart, to show append and event rates; 0 scrapes once.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
}

/// One sample of the exposition: a metric name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Default)]
struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    /// The value of each sample named `name`, by the value of its label `label`.
    fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        for sample in self.samples.iter().filter(|sample| sample.name == name) {
            if let Some(key) = sample.labels.get(label) {
                *values.entry(key.clone()).or_insert(0.0) += sample.value;
            }
        }
        values
    }

    /// Whether any sample is named `name`.
    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|sample| sample.name == name)
    }

    /// The `quantile` (0 to 1) of histogram `name`, interpolating inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` when it has no observations.
    fn quantile(&self, name: &str, quantile: f64) -> Option<f64> {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|sample| sample.name == bucket_name)
            .filter_map(|sample| {
                let bound = sample.labels.get("le")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                Some((bound, sample.value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = quantile * total;
        let mut lower = (0.0, 0.0);
        for &(bound, cumulative) in &buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    // Above every bound: the largest finite bound is all that is known.
                    return Some(lower.0);
                }
                let in_bucket = cumulative - lower.1;
                let fraction = if in_bucket > 0.0 {
                    (rank - lower.1) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (bound, cumulative);
        }
        None
    }
}

/// Parses Prometheus' text exposition format (comments skipped; no timestamps expected).
fn parse_exposition(text: &str) -> anyhow::Result<Scrape> {
    let mut scrape = Scrape::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("a metrics line without a value: {line:?}"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            value => value
                .parse()
                .with_context(|| format!("a metrics line with a bad value: {line:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .with_context(|| format!("unterminated labels: {line:?}"))?;
                (name.to_owned(), parse_labels(body)?)
            }
        };
        scrape.samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    Ok(scrape)
}

/// `key="value",key="value"` (values may escape `\"`, `\\` and `\n`).
fn parse_labels(body: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    // Bounded: each turn consumes at least `key="` from `rest`.
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .with_context(|| format!("bad labels {body:?}"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((index, char)) = chars.next() {
            match char {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => bail!("bad labels {body:?}"),
                },
                '"' => {
                    end = Some(index);
                    break;
                }
                other => value.push(other),
            }
        }
        let end = end.with_context(|| format!("unterminated label value in {body:?}"))?;
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

/// Where and how to scrape: the server's address, TLS and credentials, as the server URL (and
/// `FACTUM_USERNAME`, `FACTUM_PASSWORD`) say.
struct ScrapeTarget {
    /// `HOST:PORT` (an IPv6 host in brackets): where to connect, and the `Host` header.
    authority: String,
    /// The host alone: the name the server's certificate must carry.
    host: String,
    /// With TLS, the connector that trusts the server as the URL says.
    tls: Option<TlsConnector>,
    /// The `Authorization` header's value, with credentials.
    authorization: Option<String>,
}

impl ScrapeTarget {
    /// The target of a server URL: any URL `--server` takes (`https://…?tlsCaFile=PATH`,
    /// `kurrentdb://…`), or a bare `HOST[:PORT]` for plain HTTP; `env` reads the environment.
    fn of(url: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<ScrapeTarget> {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let settings = crate::commands::server_settings(&url, env)?;
        let authority = settings
            .endpoint
            .split_once("://")
            .map_or(settings.endpoint.as_str(), |(_, authority)| authority)
            .to_owned();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match &settings.tls {
            None => None,
            Some(trust) => {
                let mut config = trust.rustls_config()?;
                // The scrape is HTTP/1.
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(TlsConnector::from(Arc::new(config)))
            }
        };
        Ok(ScrapeTarget {
            authority,
            host,
            tls,
            authorization: settings
                .credentials
                .as_ref()
                .map(|credentials| credentials.authorization()),
        })
    }

    /// One `GET /metrics` request and its whole answer (the server closes the connection after
    /// an HTTP/1.0 answer).
    async fn exchange(&self) -> anyhow::Result<Vec<u8>> {
        let authority = &self.authority;
        let connection = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to {authority}"))?;
        let authorization = self
            .authorization
            .as_ref()
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /metrics HTTP/1.0\r\nHost: {authority}\r\n{authorization}\
             Accept: text/plain\r\nUser-Agent: factum-status\r\n\r\n"
        );
        let Some(connector) = &self.tls else {
            return request_answer(connection, &request).await;
        };
        let name = ServerName::try_from(self.host.clone())
            .with_context(|| format!("{:?} is no host name for TLS", self.host))?;
        let connection = connector.connect(name, connection).await.with_context(|| {
            format!(
                "the TLS handshake with {authority} failed: check that the server serves TLS, \
                 that tlsCaFile is the certificate authority that signed its certificate, and \
                 that the certificate names the host of the URL"
            )
        })?;
        request_answer(connection, &request).await
    }
}

/// Sends `request` on `connection` and reads the answer until the server closes it.
async fn request_answer(
    mut connection: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> anyhow::Result<Vec<u8>> {
    connection.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    match (&mut connection)
        .take(SCRAPE_BYTES_MAX)
        .read_to_end(&mut answer)
        .await
    {
        Ok(_) => Ok(answer),
        // A TLS peer that closes without a close_notify: the answer is what came.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {
            Ok(answer)
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /metrics` on the target, the body as text.
async fn fetch_metrics(target: &ScrapeTarget) -> anyhow::Result<String> {
    let authority = &target.authority;
    let answer = tokio::time::timeout(SCRAPE_TIMEOUT, target.exchange())
        .await
        .with_context(|| format!("{authority} did not answer /metrics in time"))??;
    let answer = String::from_utf8(answer).context("the /metrics answer is not UTF-8")?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("the /metrics answer is not HTTP")?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    match status {
        "200" => Ok(body.to_owned()),
        "401" if target.authorization.is_some() => bail!(
            "{authority} refused the credentials ({status_line:?}): check the user name and \
             password"
        ),
        "401" => bail!(
            "{authority} wants credentials ({status_line:?}): set FACTUM_USERNAME and \
             FACTUM_PASSWORD"
        ),
        "403" => bail!("{authority} does not let this user read /metrics ({status_line:?})"),
        _ => bail!("{authority} answered /metrics with {status_line:?}: is it a factum server?"),
    }
}

/// Runs `factum status` against the server `server` names.
pub async fn run(server: Option<&str>, args: StatusArgs) -> anyhow::Result<()> {
    let Some(url) = server else {
        bail!("`factum status` needs a server: give --server URL (or FACTUM_SERVER)");
    };
    if !args.interval.is_finite() || args.interval < 0.0 {
        bail!("--interval must be zero or a positive number of seconds");
    }
    let target = ScrapeTarget::of(url, |name| std::env::var(name).ok())?;
    let first = parse_exposition(&fetch_metrics(&target).await?)?;
    let mut rates = None;
    let mut last = first;
    if args.interval > 0.0 {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
        let second = parse_exposition(&fetch_metrics(&target).await?)?;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = |name: &str| (second.sum(name, &[]) - last.sum(name, &[])).max(0.0) / elapsed;
        rates = Some((
            rate("factum_appends_total"),
            rate("factum_appended_events_total"),
        ));
        last = second;
    }
    let summary = summarize(&factum_client::redact_password(url), &last, rates);
    if args.json {
        crate::commands::print_line(&summary.to_string())
    } else {
        crate::commands::print_line(&human(&summary))
    }
}

/// The figures of a scrape, as the JSON object `--json` prints.
fn summarize(url: &str, scrape: &Scrape, rates: Option<(f64, f64)>) -> serde_json::Value {
    let count = |value: f64| value.round() as u64;
    let appends = scrape.by_label("factum_appends_total", "outcome");
    let errors: BTreeMap<String, u64> = scrape
        .by_label("factum_errors_total", "kind")
        .into_iter()
        .filter(|(_, value)| *value > 0.0)
        .map(|(kind, value)| (kind, count(value)))
        .collect();
    let engine = scrape.has("factum_fsync_duration_seconds_count").then(|| {
        let fsyncs = scrape.sum("factum_fsync_duration_seconds_count", &[]);
        let per_fsync = |name: &str| {
            let total = scrape.sum(&format!("{name}_count"), &[]);
            (total > 0.0).then(|| scrape.sum(&format!("{name}_sum"), &[]) / total)
        };
        json!({
            "fsyncs": count(fsyncs),
            "fsync_p50_seconds": scrape.quantile("factum_fsync_duration_seconds", 0.5),
            "fsync_p99_seconds": scrape.quantile("factum_fsync_duration_seconds", 0.99),
            "events_per_fsync": per_fsync("factum_group_commit_events"),
            "writes_per_fsync": per_fsync("factum_group_commit_writes"),
        })
    });
    json!({
        "server": url,
        "head_position": count(scrape.sum("factum_head_position", &[])),
        "appends": appends.iter().map(|(outcome, value)| (outcome.clone(), count(*value))).collect::<BTreeMap<_, _>>(),
        "events_written": count(scrape.sum("factum_appended_events_total", &[])),
        "bytes_written": count(scrape.sum("factum_appended_bytes_total", &[])),
        "appends_per_second": rates.map(|(appends, _)| appends),
        "events_per_second": rates.map(|(_, events)| events),
        "reads": {
            "stream": count(scrape.sum("factum_reads_total", &[("target", "stream")])),
            "all": count(scrape.sum("factum_reads_total", &[("target", "all")])),
            "events": count(scrape.sum("factum_read_events_total", &[])),
        },
        "subscriptions_active": count(scrape.sum("factum_subscriptions_active", &[])),
        "subscription_lag_max": count(scrape.sum("factum_subscription_lag_max", &[])),
        "errors": errors,
        "engine": engine,
    })
}

/// The summary for a person, a few aligned lines.
fn human(summary: &serde_json::Value) -> String {
    let number = |value: &serde_json::Value| value.as_u64().unwrap_or(0);
    let mut lines = vec![
        format!(
            "server          {}",
            summary["server"].as_str().unwrap_or("")
        ),
        format!(
            "events stored   {} (head position)",
            number(&summary["head_position"])
        ),
    ];
    let appends = &summary["appends"];
    let mut append_line = format!(
        "appends         {} written, {} empty, {} wrong expected revision, {} failed",
        number(&appends["written"]),
        number(&appends["empty"]),
        number(&appends["wrong_expected_revision"]),
        number(&appends["error"]),
    );
    if let Some(rate) = summary["appends_per_second"].as_f64() {
        append_line.push_str(&format!(" ({rate:.1}/s)"));
    }
    lines.push(append_line);
    let mut events_line = format!(
        "events written  {} ({} bytes)",
        number(&summary["events_written"]),
        number(&summary["bytes_written"])
    );
    if let Some(rate) = summary["events_per_second"].as_f64() {
        events_line.push_str(&format!(", {rate:.1}/s"));
    }
    lines.push(events_line);
    let reads = &summary["reads"];
    lines.push(format!(
        "reads           {} of streams, {} of $all, {} events sent",
        number(&reads["stream"]),
        number(&reads["all"]),
        number(&reads["events"])
    ));
    let engine = &summary["engine"];
    if engine.is_object() {
        let millis = |value: &serde_json::Value| {
            value
                .as_f64()
                .map_or("-".to_owned(), |seconds| format!("{:.2} ms", seconds * 1e3))
        };
        let per = |value: &serde_json::Value| {
            value
                .as_f64()
                .map_or("-".to_owned(), |value| format!("{value:.1}"))
        };
        lines.push(format!(
            "fsync           {} calls, p50 {}, p99 {}; {} events and {} writes per fsync",
            number(&engine["fsyncs"]),
            millis(&engine["fsync_p50_seconds"]),
            millis(&engine["fsync_p99_seconds"]),
            per(&engine["events_per_fsync"]),
            per(&engine["writes_per_fsync"]),
        ));
    }
    lines.push(format!(
        "subscriptions   {} active, worst lag {} positions",
        number(&summary["subscriptions_active"]),
        number(&summary["subscription_lag_max"])
    ));
    let errors = summary["errors"].as_object().cloned().unwrap_or_default();
    let total: u64 = errors.values().map(number).sum();
    let detail: Vec<String> = errors
        .iter()
        .map(|(kind, value)| format!("{kind} {}", number(value)))
        .collect();
    lines.push(if detail.is_empty() {
        "errors          0".to_owned()
    } else {
        format!("errors          {total} ({})", detail.join(", "))
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# HELP factum_appends_total Appends.
# TYPE factum_appends_total counter
factum_appends_total{outcome=\"written\"} 3
factum_appends_total{outcome=\"error\"} 1
factum_errors_total{kind=\"stream_deleted\"} 2
factum_errors_total{kind=\"other\"} 0
factum_fsync_duration_seconds_bucket{le=\"0.001\"} 50
factum_fsync_duration_seconds_bucket{le=\"0.002\"} 100
factum_fsync_duration_seconds_bucket{le=\"+Inf\"} 100
factum_fsync_duration_seconds_sum 0.1
factum_fsync_duration_seconds_count 100
odd{a=\"x\\\"y,z\",b=\"\"} 1.5
";

    #[test]
    fn the_exposition_parses_into_samples_with_labels() {
        let scrape = parse_exposition(EXPOSITION).unwrap();
        assert_eq!(scrape.sum("factum_appends_total", &[]), 4.0);
        assert_eq!(
            scrape.sum("factum_appends_total", &[("outcome", "written")]),
            3.0
        );
        let odd = scrape
            .samples
            .iter()
            .find(|sample| sample.name == "odd")
            .unwrap();
        assert_eq!(odd.labels["a"], "x\"y,z");
        assert_eq!(odd.labels["b"], "");
        assert!(parse_exposition("no_value").is_err());
        assert!(parse_exposition("x{a=\"1\" 2").is_err());
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let scrape = parse_exposition(EXPOSITION).unwrap();
        let p50 = scrape
            .quantile("factum_fsync_duration_seconds", 0.5)
            .unwrap();
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let p99 = scrape
            .quantile("factum_fsync_duration_seconds", 0.99)
            .unwrap();
        assert!((p99 - 0.00198).abs() < 1e-9, "{p99}");
        assert_eq!(scrape.quantile("missing", 0.5), None);
    }

    #[test]
    fn the_summary_lists_errors_that_happened() {
        let scrape = parse_exposition(EXPOSITION).unwrap();
        let summary = summarize("http://h:1", &scrape, None);
        assert_eq!(summary["errors"], json!({"stream_deleted": 2}));
        assert_eq!(summary["engine"]["fsyncs"], 100);
        let text = human(&summary);
        assert!(
            text.contains("errors          2 (stream_deleted 2)"),
            "{text}"
        );
        assert!(
            text.contains("appends         3 written, 0 empty"),
            "{text}"
        );
    }

    #[test]
    fn server_urls_name_a_host_a_port_tls_and_credentials() {
        let no_env = |_: &str| None;
        let target = |url: &str| ScrapeTarget::of(url, no_env).unwrap();
        let plain = target("http://127.0.0.1:2113");
        assert_eq!(plain.authority, "127.0.0.1:2113");
        assert!(plain.tls.is_none());
        assert!(plain.authorization.is_none());
        let with_user = target("kurrentdb://admin:x@db:3000?tls=false");
        assert_eq!(with_user.authority, "db:3000");
        assert_eq!(
            with_user.authorization.as_deref(),
            Some("Basic YWRtaW46eA==")
        );
        assert_eq!(target("localhost").authority, "localhost:2113");
        let v6 = target("kurrentdb://[::1]:7?tlsVerifyCert=false");
        assert_eq!(v6.authority, "[::1]:7");
        assert_eq!(v6.host, "::1");
        assert!(v6.tls.is_some());
        let from_env = ScrapeTarget::of("http://h:1", |name| {
            Some(
                if name == "FACTUM_USERNAME" {
                    "admin"
                } else {
                    "x"
                }
                .to_owned(),
            )
        })
        .unwrap();
        assert_eq!(
            from_env.authorization.as_deref(),
            Some("Basic YWRtaW46eA==")
        );
        // TLS needs a CA file to trust, and one that is there.
        let error = ScrapeTarget::of("kurrentdb://db:2113", no_env)
            .err()
            .unwrap();
        assert!(error.to_string().contains("tlsCaFile"), "{error}");
        let error = ScrapeTarget::of("https://db:2113?tlsCaFile=/nonexistent/ca.pem", no_env)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("cannot read tlsCaFile"),
            "{error}"
        );
    }
}
