//! `factum serve` child processes on a free port (plain text, or over TLS with users), and
//! gRPC helpers, for the server's tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use factum_proto::shared::{self, Empty};
use factum_proto::streams::batch_append_req::{self, options::ExpectedStreamPosition};
use factum_proto::streams::read_req::{self, options};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{BatchAppendReq, BatchAppendResp, ReadReq};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// `factum serve` on a data directory, listening on `127.0.0.1:<free port>`; killed on drop.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_factum"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start factum serve");
        let address = listening_address(&mut child);
        Server { child, address }
    }

    /// A field of the server's `/proc/PID/status`, in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in the server's status"))
    }

    /// A new HTTP/2 connection to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connect to factum serve")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first admin's password, given to a secure server through its environment.
pub const ADMIN_PASSWORD: &str = "changeit";

/// `factum dev-cert --out OUT`: a development CA (`ca.pem`) and server pair.
pub fn dev_cert(out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["dev-cert", "--out"])
        .arg(out)
        .output()
        .expect("run factum dev-cert")
}

/// `factum serve` with extra arguments; stderr lines arrive on the receiver.
pub struct Served {
    pub child: Child,
    pub address: String,
    stderr: mpsc::Receiver<String>,
}

impl Served {
    /// `factum serve` over `data_dir` with `args`, the first admin's password
    /// [`ADMIN_PASSWORD`] in its environment.
    pub fn start(data_dir: &Path, args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_factum"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .env("FACTUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start factum serve");
        let stderr = super::line_channel(child.stderr.take().unwrap());
        let address = listening_address(&mut child);
        Served {
            child,
            address,
            stderr,
        }
    }

    /// Waits for a line of the server's log containing `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {text:?} within 30 s"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// `factum dev-cert` into `dir/certs`, then a server over TLS with that pair on
    /// `127.0.0.1:<free port>`, its data in `dir/data`; and the path of the CA (`ca.pem`) that
    /// clients trust.
    pub fn start_tls(dir: &Path) -> (Served, PathBuf) {
        let certs = dir.join("certs");
        let output = dev_cert(&certs);
        assert!(output.status.success(), "{output:?}");
        let served = Served::start(
            &dir.join("data"),
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                certs.join("server.pem").to_str().unwrap(),
                "--tls-key",
                certs.join("server.key").to_str().unwrap(),
            ],
        );
        (served, certs.join("ca.pem"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A BatchAppend request of `events` new events of `event_type`, expecting any revision.
pub fn append_request(stream: &str, events: usize, event_type: &str) -> BatchAppendReq {
    BatchAppendReq {
        correlation_id: Some(shared::Uuid {
            value: Some(shared::uuid::Value::String(
                uuid::Uuid::new_v4().to_string(),
            )),
        }),
        options: Some(batch_append_req::Options {
            stream_identifier: Some(shared::StreamIdentifier {
                stream_name: stream.as_bytes().to_vec().into(),
            }),
            expected_stream_position: Some(ExpectedStreamPosition::Any(())),
            deadline_option: None,
        }),
        proposed_messages: (0..events)
            .map(|_| batch_append_req::ProposedMessage {
                id: Some(shared::Uuid {
                    value: Some(shared::uuid::Value::String(
                        uuid::Uuid::new_v4().to_string(),
                    )),
                }),
                metadata: [
                    ("type".to_owned(), event_type.to_owned()),
                    ("content-type".to_owned(), "application/json".to_owned()),
                ]
                .into(),
                custom_metadata: Default::default(),
                data: format!("{{\"amount_cents\":1000,\"note\":\"{}\"}}", "x".repeat(160))
                    .into_bytes()
                    .into(),
            })
            .collect(),
        is_final: true,
    }
}

/// Appends through BatchAppend and checks it succeeded.
pub async fn append(channel: &Channel, stream: &str, events: usize, event_type: &str) {
    let mut client = StreamsClient::new(channel.clone());
    let mut replies = client
        .batch_append(tokio_stream::iter([append_request(
            stream, events, event_type,
        )]))
        .await
        .unwrap()
        .into_inner();
    let reply: BatchAppendResp = replies.next().await.unwrap().unwrap();
    assert!(
        matches!(
            reply.result,
            Some(factum_proto::streams::batch_append_resp::Result::Success(_))
        ),
        "{reply:?}"
    );
}

/// A subscription to `$all` from the start, ids as strings.
pub fn subscribe_to_all() -> ReadReq {
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(options::StreamOption::All(options::AllOptions {
                all_option: Some(options::all_options::AllOption::Start(Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(options::CountOption::Subscription(
                options::SubscriptionOptions {},
            )),
            filter_option: Some(options::FilterOption::NoFilter(Empty {})),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(Empty {})),
            }),
            control_option: None,
        }),
    }
}

/// The address a `factum serve` child prints first (`listening on ADDRESS`).
pub fn listening_address(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}
