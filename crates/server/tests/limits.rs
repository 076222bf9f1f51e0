//! What one client may take, over real connections: silent and trickling connections are
//! closed while live ones (a quiet gRPC subscription, a quiet server-sent-event stream) stay
//! open, subscriptions are limited per connection and in total, requests per client per
//! second, and the HTTP API is counted in `/metrics`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use factum_core::{EventStore, ExpectedRevision, ProposedEvent, StreamName};
use factum_memory::MemoryStore;
use factum_proto::streams::{ReadResp, read_resp};
use factum_server::{Limits, ServerOptions};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

async fn server_with(limits: Limits) -> TestServer {
    let options = ServerOptions {
        limits,
        ..ServerOptions::default()
    };
    TestServer::start_with(Arc::new(MemoryStore::new()), options).await
}

fn short_timeouts(milliseconds: u64) -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(milliseconds),
        first_request_timeout: Duration::from_millis(milliseconds),
        ..Limits::default()
    }
}

async fn append_one(store: &dyn EventStore, stream: &str) {
    store
        .append(
            &StreamName::new(stream).unwrap(),
            ExpectedRevision::Any,
            vec![ProposedEvent::json("Pinged", &serde_json::json!({})).unwrap()],
        )
        .await
        .unwrap();
}

/// Waits for the server to close `connection`: a read sees the end of the stream (or a reset).
async fn closed_by_the_server(connection: &mut TcpStream) {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, connection.read(&mut buffer))
            .await
            .expect("the server closes the connection within 10 s")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_are_closed() {
    let server = server_with(short_timeouts(1_000)).await;

    // Opened and never used.
    let mut silent = TcpStream::connect(&server.address).await.unwrap();
    closed_by_the_server(&mut silent).await;

    // A request that never ends, fed a byte at a time: the first-request deadline ends it,
    // although each byte is well within the idle timeout.
    let trickling = TcpStream::connect(&server.address).await.unwrap();
    let (mut reader, mut writer) = trickling.into_split();
    writer
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        loop {
            // The pace of the attack is the behaviour under test.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut buffer = [0u8; 1024];
    let answer = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer))
        .await
        .expect("the server closes the trickling connection within 10 s");
    assert!(
        matches!(answer, Ok(0) | Err(_)),
        "the server answered a request that never ended: {:?}",
        answer.map(|n| String::from_utf8_lossy(&buffer[..n]).into_owned())
    );
    trickle.abort();

    // A well-behaved client is served as before.
    let reply = http_request(&server.address, "GET", "/health/live", &[], Vec::new()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    server.stop().await;
}

/// Returns once the server has closed a connection that made one request and then went
/// quiet: a whole idle timeout has passed on this server.
async fn an_idle_timeout_passes(address: &str) {
    let mut quiet = TcpStream::connect(address).await.unwrap();
    quiet
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    closed_by_the_server(&mut quiet).await;
}

/// The next event a gRPC subscription delivers (confirmation, caught-up and checkpoints
/// skipped).
async fn next_grpc_event(subscription: &mut Streaming<ReadResp>) -> String {
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("a message within 10 s")
            .expect("the subscription goes on")
            .expect("no error");
        if let Some(read_resp::Content::Event(event)) = reply.content {
            let recorded = event.event.unwrap();
            return recorded.stream_identifier.map_or_else(String::new, |id| {
                String::from_utf8(id.stream_name.to_vec()).unwrap()
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_subscriptions_outlast_the_idle_timeout() {
    let server = server_with(short_timeouts(1_000)).await;
    let mut client = server.client().await;
    let mut grpc = client
        .read(subscribe_stream_request("quiet-grpc"))
        .await
        .unwrap()
        .into_inner();
    let (response, connection) = http_open(
        &server.address,
        "GET",
        "/streams/quiet-http/subscribe",
        &[("accept", "text/event-stream")],
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut sse = SseStream::new(response, connection);

    // Two idle timeouts with nothing to deliver, each seen to pass by the server closing a
    // quiet connection opened after the subscriptions: the server's HTTP/2 pings (answered by
    // the client) and its SSE comments keep the subscriptions' connections moving meanwhile.
    for _ in 0..2 {
        an_idle_timeout_passes(&server.address).await;
    }
    append_one(server.store.as_ref(), "quiet-grpc").await;
    append_one(server.store.as_ref(), "quiet-http").await;

    assert_eq!(next_grpc_event(&mut grpc).await, "quiet-grpc");
    let event = loop {
        let event = sse.next().await.expect("the event stream goes on");
        if event.event == "event" {
            break event;
        }
        assert_eq!(event.event, "caught_up", "{event:?}");
    };
    assert_eq!(event.id.as_deref(), Some("0"));
    drop(sse);
    drop(grpc);
    server.stop().await;
}

/// Starts a subscription to `$all` on `client`'s connection; its first reply (the
/// confirmation) has come when this returns `Ok`.
async fn subscribe(
    client: &mut factum_proto::streams::streams_client::StreamsClient<tonic::transport::Channel>,
) -> Result<Streaming<ReadResp>, tonic::Status> {
    let mut replies = client.read(subscribe_all_request(None)).await?.into_inner();
    let first = replies.next().await.expect("a first reply")?;
    assert!(
        matches!(first.content, Some(read_resp::Content::Confirmation(_))),
        "{first:?}"
    );
    Ok(replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_limited_per_connection_and_in_total() {
    let server = server_with(Limits {
        max_subscriptions_per_connection: 2,
        max_subscriptions: 3,
        ..Limits::default()
    })
    .await;
    let mut first = server.client().await;
    let mut second = server.client().await;

    let one = subscribe(&mut first).await.unwrap();
    let _two = subscribe(&mut first).await.unwrap();
    let refused = subscribe(&mut first).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "Too many subscriptions: at most 2 on one connection"
    );

    // Another connection has its own allowance, up to the server's total.
    let _three = subscribe(&mut second).await.unwrap();
    let refused = subscribe(&mut second).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "Too many subscriptions: the server serves at most 3"
    );
    // Server-sent events count too.
    let reply = http_request(
        &server.address,
        "GET",
        "/all/subscribe",
        &[("accept", "text/event-stream")],
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], "too_many_subscriptions");

    // A subscription that ends gives its place back (once the server sees the client leave).
    drop(one);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let _again = loop {
        match subscribe(&mut second).await {
            Ok(subscription) => break subscription,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the place of the ended subscription did not come back"
                );
                tokio::task::yield_now().await;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    };
    let metrics = scrape(&server.address).await;
    assert!(metric(&metrics, "factum_errors_total{kind=\"limit_exceeded\"}") >= 3.0);
    assert_eq!(metric(&metrics, "factum_subscriptions_active"), 3.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_has_a_request_rate() {
    let server = server_with(Limits {
        max_requests_per_second_per_client: Some(1),
        ..Limits::default()
    })
    .await;
    // One request a second, in bursts of one: of ten quick requests, at most one per second
    // taken (and the first) gets through.
    let started = tokio::time::Instant::now();
    let mut refused = Vec::new();
    let mut admitted = 0u64;
    for _ in 0..10 {
        let reply = http_request(&server.address, "GET", "/streams/some", &[], Vec::new()).await;
        if reply.status == 429 {
            refused.push(reply);
        } else {
            assert_eq!(reply.status, 404, "{reply:?}");
            admitted += 1;
        }
    }
    assert!(admitted >= 1);
    assert!(admitted <= 1 + started.elapsed().as_secs());
    let refusal = refused.first().expect("some requests were refused");
    assert_eq!(refusal.json()["error"]["code"], "too_many_requests");
    assert_eq!(
        refusal.json()["error"]["message"],
        "Too many requests: at most 1 a second from one client"
    );

    // gRPC calls from the same address share the allowance.
    let mut client = server.client().await;
    let mut status = None;
    for _ in 0..10 {
        if let Err(refusal) = client.read(read_stream_request("some")).await {
            status = Some(refusal);
            break;
        }
    }
    let status = status.expect("a gRPC call was refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Health checks are never limited.
    for _ in 0..5 {
        let reply = http_request(&server.address, "GET", "/health/ready", &[], Vec::new()).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    server.stop().await;
}

async fn scrape(address: &str) -> String {
    let reply = http_request(address, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, 200);
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// The value of the sample named exactly `series` (name and labels), 0 when absent.
fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_subscriptions_and_errors_are_in_the_metrics() {
    let server = server_with(Limits::default()).await;
    let append = http_request(
        &server.address,
        "POST",
        "/streams/counted",
        &[("content-type", "application/json")],
        br#"[{"type":"Counted","data":{}}]"#.to_vec(),
    )
    .await;
    assert_eq!(append.status, 200, "{append:?}");
    let missing = http_request(&server.address, "GET", "/streams/missing", &[], Vec::new()).await;
    assert_eq!(missing.status, 404);
    let nowhere = http_request(&server.address, "GET", "/nowhere", &[], Vec::new()).await;
    assert_eq!(nowhere.status, 404);
    let (response, connection) = http_open(
        &server.address,
        "GET",
        "/streams/counted/subscribe",
        &[("accept", "text/event-stream")],
        Vec::new(),
    )
    .await;
    let mut sse = SseStream::new(response, connection);
    assert_eq!(sse.next().await.unwrap().event, "event");

    let metrics = scrape(&server.address).await;
    let requests = |method: &str, route: &str, status: &str| {
        metric(
            &metrics,
            &format!(
                "factum_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(
        requests("POST", "/streams/{stream}", "2xx"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        requests("GET", "/streams/{stream}", "4xx"),
        1.0,
        "{metrics}"
    );
    assert_eq!(requests("any", "unmatched", "4xx"), 1.0, "{metrics}");
    assert_eq!(
        requests("GET", "/streams/{stream}/subscribe", "2xx"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "factum_errors_total{kind=\"stream_not_found\"}"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "factum_errors_total{kind=\"invalid_argument\"}"),
        1.0
    );
    // The HTTP API's appends and reads count with gRPC's.
    assert_eq!(
        metric(&metrics, "factum_appends_total{outcome=\"written\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "factum_appended_events_total"), 1.0);
    assert_eq!(
        metric(&metrics, "factum_reads_total{target=\"stream\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "factum_subscriptions_active"), 1.0);
    assert_eq!(
        metric(
            &metrics,
            "factum_subscriptions_started_total{target=\"stream\"}"
        ),
        1.0
    );

    // The subscription leaves the gauge when its client goes.
    drop(sse);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(
        &scrape(&server.address).await,
        "factum_subscriptions_active",
    ) != 0.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription stayed active after its client left"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}
