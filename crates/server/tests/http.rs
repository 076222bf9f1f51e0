//! The HTTP/JSON API end to end: an in-process server over the in-memory store on a free
//! port, talked to with a small HTTP/1.1 client (one connection per request), as curl would.

mod support;

use std::sync::Arc;

use factum_core::{EventStore, Position};
use factum_memory::MemoryStore;
use factum_server::ServerOptions;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{HttpReply, SseStream, TestServer, http_open, http_request};
use tokio::net::TcpStream;

async fn get(address: &str, path: &str) -> HttpReply {
    http_request(address, "GET", path, &[], Vec::new()).await
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn append(address: &str, stream: &str, expected: &str, events: Value) -> HttpReply {
    http_request(
        address,
        "POST",
        &format!("/streams/{stream}"),
        &[JSON, ("expected-revision", expected)],
        events.to_string().into_bytes(),
    )
    .await
}

fn event(event_type: &str, data: Value) -> Value {
    json!({ "type": event_type, "data": data })
}

async fn server() -> TestServer {
    TestServer::start(Arc::new(MemoryStore::new())).await
}

#[tokio::test]
async fn health_and_the_openapi_document() {
    let server = server().await;
    let live = get(&server.address, "/health/live").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "live");
    let ready = get(&server.address, "/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["head"], 0);

    let document = get(&server.address, "/openapi.json").await;
    assert_eq!(document.status, 200);
    assert_eq!(document.content_type, "application/json");
    let document = document.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    // Every documented operation is routed: no "no route" or "method not allowed" answer.
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method == "parameters" {
                continue;
            }
            let concrete = path.replace("{stream}", "openapi-check");
            // Subscriptions never end: only their status and headers are read.
            let (response, connection) = http_open(
                &server.address,
                &method.to_uppercase(),
                &format!("{concrete}?from=end"),
                &[],
                Vec::new(),
            )
            .await;
            assert_ne!(response.status(), 405, "{method} {path}");
            if response.status() == 404 {
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_ne!(body["error"]["code"], "not_found", "{method} {path}");
            }
            connection.abort();
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn append_then_read_a_stream_both_ways_in_pages() {
    let server = server().await;
    let address = &server.address;
    let reply = append(
        address,
        "order-1",
        "no-stream",
        json!([
            event("Placed", json!({"total": 1.50, "items": ["a"]})),
            {"type": "Blob", "data_base64": "AAEC", "metadata": {"by": "me"}, "tags": ["t"]},
            event("Shipped", json!(null)),
        ]),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["revision"], 2);
    let position = reply.json()["position"].as_u64().unwrap();

    let read = get(address, "/streams/order-1").await;
    assert_eq!(read.status, 200);
    let events = read.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["type"], "Placed");
    assert_eq!(events[0]["data"], json!({"total": 1.50, "items": ["a"]}));
    // Data comes back as written: key order and the number's text survive.
    let raw = br#"[{"type":"Raw","data":{"z":1.50,"a":[1]}}]"#.to_vec();
    let written = http_request(address, "POST", "/streams/raw", &[JSON], raw).await;
    assert_eq!(written.status, 200);
    let text = String::from_utf8(get(address, "/streams/raw").await.body.to_vec()).unwrap();
    assert!(text.contains(r#""data":{"z":1.50,"a":[1]}"#), "{text}");
    assert_eq!(events[0]["content_type"], "application/json");
    assert_eq!(events[1]["data_base64"], "AAEC");
    assert_eq!(events[1]["content_type"], "application/octet-stream");
    assert_eq!(events[1]["metadata"], json!({"by": "me"}));
    assert_eq!(events[1]["tags"], json!(["t"]));
    assert_eq!(events[2]["data"], Value::Null);
    assert_eq!(events[2]["position"], position);
    assert_eq!(read.json()["next"], Value::Null);

    let page = get(address, "/streams/order-1?direction=backwards&limit=2").await;
    let revisions: Vec<_> = page.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [2, 1]);
    assert_eq!(page.json()["next"], 0);
    let rest = get(address, "/streams/order-1?direction=backwards&from=0").await;
    assert_eq!(rest.json()["events"][0]["revision"], 0);

    let from_one = get(address, "/streams/order-1?from=1&limit=1").await;
    assert_eq!(from_one.json()["events"][0]["revision"], 1);
    assert_eq!(from_one.json()["next"], 2);

    // A name with a slash travels percent-encoded, as one path segment.
    let slash = append(
        address,
        "tenant%2Forder-9",
        "no-stream",
        json!([event("A", json!(1))]),
    )
    .await;
    assert_eq!(slash.status, 200, "{slash:?}");
    let read = get(address, "/streams/tenant%2Forder-9").await;
    assert_eq!(read.json()["events"][0]["stream"], "tenant/order-9");

    get(address, "/streams/nothing-here")
        .await
        .assert_error(404, "stream_not_found");
    server.stop().await;
}

#[tokio::test]
async fn expected_revisions_and_idempotent_ids() {
    let server = server().await;
    let address = &server.address;
    let id = "0190a9b0-0000-7000-8000-000000000001";
    let events = json!([{"id": id, "type": "A", "data": {}}]);
    let first = append(address, "s", "no-stream", events.clone()).await;
    assert_eq!(first.status, 200);
    // The same ids with the same expectation: a retry, answered as the first time.
    let retry = append(address, "s", "no-stream", events).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.json(), first.json());
    let head = server.store.head().await.unwrap();

    append(address, "s", "no-stream", json!([event("B", json!(1))]))
        .await
        .assert_error(409, "wrong_expected_revision");
    append(address, "s", "5", json!([event("B", json!(1))]))
        .await
        .assert_error(409, "wrong_expected_revision");
    append(address, "s", "maybe", json!([event("B", json!(1))]))
        .await
        .assert_error(400, "invalid_expected_revision");
    assert_eq!(server.store.head().await.unwrap(), head);

    let next = append(address, "s", "0", json!([event("B", json!(1))])).await;
    assert_eq!(next.json()["revision"], 1);
    let exists = append(address, "s", "stream-exists", json!([event("C", json!(1))])).await;
    assert_eq!(exists.json()["revision"], 2);
    let any = http_request(
        address,
        "POST",
        "/streams/s",
        &[JSON],
        json!([event("D", json!(1))]).to_string().into_bytes(),
    )
    .await;
    assert_eq!(any.json()["revision"], 3);
    server.stop().await;
}

#[tokio::test]
async fn read_all_with_filters_and_pages() {
    let server = server().await;
    let address = &server.address;
    for (stream, event_type) in [
        ("order-1", "Placed"),
        ("user-1", "Registered"),
        ("order-2", "Placed"),
        ("order-1", "Shipped"),
    ] {
        let reply = append(
            address,
            stream,
            "any",
            json!([event(event_type, json!({}))]),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let streams_of = |reply: &HttpReply| -> Vec<String> {
        reply.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| {
                format!(
                    "{}/{}",
                    event["stream"].as_str().unwrap(),
                    event["type"].as_str().unwrap()
                )
            })
            .collect()
    };
    let all = get(address, "/all").await;
    assert_eq!(all.status, 200);
    assert_eq!(
        streams_of(&all),
        [
            "order-1/Placed",
            "user-1/Registered",
            "order-2/Placed",
            "order-1/Shipped"
        ]
    );
    assert_eq!(all.json()["end_of_log"], true);

    let orders = get(address, "/all?stream_prefix=order-").await;
    assert_eq!(streams_of(&orders).len(), 3);
    let two = get(address, "/all?stream_prefix=user-&stream_prefix=order-2").await;
    assert_eq!(streams_of(&two), ["user-1/Registered", "order-2/Placed"]);
    let placed = get(address, "/all?event_type_prefix=Pla").await;
    assert_eq!(streams_of(&placed), ["order-1/Placed", "order-2/Placed"]);
    let regex = get(address, "/all?stream_regex=%5Euser-%5Cd%2B%24").await;
    assert_eq!(streams_of(&regex), ["user-1/Registered"]);
    let shipped = get(address, "/all?event_type_regex=ipp").await;
    assert_eq!(streams_of(&shipped), ["order-1/Shipped"]);
    get(address, "/all?stream_regex=(")
        .await
        .assert_error(400, "invalid_filter");
    get(address, "/all?stream_regex=a&event_type_prefix=b")
        .await
        .assert_error(400, "invalid_filter");

    // Pages forwards, then backwards from the end.
    let first = get(address, "/all?limit=3").await;
    assert_eq!(streams_of(&first).len(), 3);
    assert_eq!(first.json()["end_of_log"], false);
    let next = first.json()["next"].as_u64().unwrap();
    let second = get(address, &format!("/all?limit=3&from={next}")).await;
    assert_eq!(streams_of(&second), ["order-1/Shipped"]);
    let backwards = get(address, "/all?direction=backwards&limit=2").await;
    assert_eq!(
        streams_of(&backwards),
        ["order-1/Shipped", "order-2/Placed"]
    );
    let before = backwards.json()["next"].as_u64().unwrap();
    let earlier = get(address, &format!("/all?direction=backwards&from={before}")).await;
    assert_eq!(
        streams_of(&earlier),
        ["user-1/Registered", "order-1/Placed"]
    );

    // System events only when asked for.
    let metadata = http_request(
        address,
        "PUT",
        "/streams/order-1/metadata",
        &[JSON],
        br#"{"$maxCount": 10}"#.to_vec(),
    )
    .await;
    assert_eq!(metadata.status, 200);
    assert_eq!(streams_of(&get(address, "/all").await).len(), 4);
    assert_eq!(
        streams_of(&get(address, "/all?include_system=true").await).len(),
        5
    );
    server.stop().await;
}

#[tokio::test]
async fn metadata_deletes_and_tombstones() {
    let server = server().await;
    let address = &server.address;
    let none = get(address, "/streams/s/metadata").await;
    assert_eq!(none.status, 200);
    assert_eq!(none.json(), json!({"metadata": {}, "revision": null}));

    append(
        address,
        "s",
        "any",
        json!([
            event("A", json!(1)),
            event("B", json!(2)),
            event("C", json!(3))
        ]),
    )
    .await;
    let set = http_request(
        address,
        "PUT",
        "/streams/s/metadata",
        &[JSON, ("expected-revision", "no-stream")],
        br#"{"$maxCount": 2, "owner": "ops"}"#.to_vec(),
    )
    .await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.json()["revision"], 0);
    let read = get(address, "/streams/s/metadata").await;
    assert_eq!(
        read.json(),
        json!({"metadata": {"$maxCount": 2, "owner": "ops"}, "revision": 0})
    );
    assert_eq!(
        get(address, "/streams/s").await.json()["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    http_request(
        address,
        "PUT",
        "/streams/s/metadata",
        &[JSON, ("expected-revision", "no-stream")],
        br#"{}"#.to_vec(),
    )
    .await
    .assert_error(409, "wrong_expected_revision");
    http_request(
        address,
        "PUT",
        "/streams/s/metadata",
        &[JSON],
        br#"{"$maxCount": "two"}"#.to_vec(),
    )
    .await
    .assert_error(400, "invalid_metadata");

    // Soft delete: the stream reads as not found, and can be written again.
    http_request(
        address,
        "DELETE",
        "/streams/s",
        &[("expected-revision", "0")],
        Vec::new(),
    )
    .await
    .assert_error(409, "wrong_expected_revision");
    let deleted = http_request(
        address,
        "DELETE",
        "/streams/s",
        &[("expected-revision", "2")],
        Vec::new(),
    )
    .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(deleted.json()["position"].as_u64().unwrap() > 0);
    get(address, "/streams/s")
        .await
        .assert_error(404, "stream_not_found");
    let again = append(address, "s", "any", json!([event("D", json!(4))])).await;
    assert_eq!(again.json()["revision"], 3);

    // Tombstone: gone for good.
    let tombstone = http_request(address, "DELETE", "/streams/s?hard=true", &[], Vec::new()).await;
    assert_eq!(tombstone.status, 200, "{tombstone:?}");
    get(address, "/streams/s")
        .await
        .assert_error(410, "stream_deleted");
    append(address, "s", "any", json!([event("E", json!(5))]))
        .await
        .assert_error(410, "stream_deleted");
    get(address, "/streams/s/metadata")
        .await
        .assert_error(410, "stream_deleted");
    http_request(address, "DELETE", "/streams/s?hard=true", &[], Vec::new())
        .await
        .assert_error(410, "stream_deleted");
    http_request(address, "DELETE", "/streams/never", &[], Vec::new())
        .await
        .assert_error(404, "stream_not_found");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clean_errors_and_write_nothing() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let options = ServerOptions {
        max_append_bytes: Some(64 * 1024),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(store, options).await;
    let address = &server.address;
    let body = json!([event("A", json!(1))]).to_string().into_bytes();
    let post = |path: &'static str, headers: Vec<(&'static str, &'static str)>, body: Vec<u8>| async move {
        http_request(address, "POST", path, &headers, body).await
    };
    post("/streams/s", vec![], body.clone())
        .await
        .assert_error(415, "unsupported_media_type");
    post(
        "/streams/s",
        vec![("content-type", "text/plain")],
        body.clone(),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    post("/streams/s", vec![JSON], b"[{".to_vec())
        .await
        .assert_error(400, "invalid_json");
    post("/streams/s", vec![JSON], b"[{\"type\": \"A\"}]".to_vec())
        .await
        .assert_error(400, "invalid_event");
    post("/streams/s", vec![JSON], vec![0xff, 0xfe])
        .await
        .assert_error(400, "invalid_json");
    post("/streams/%FF", vec![JSON], body.clone())
        .await
        .assert_error(400, "invalid_stream_name");
    post("/streams/%24all", vec![JSON], body.clone())
        .await
        .assert_error(400, "invalid_stream_name");
    post("/streams/a%0Ab", vec![JSON], body.clone())
        .await
        .assert_error(400, "invalid_stream_name");
    post("/streams/s?nope=1", vec![JSON], body.clone())
        .await
        .assert_error(400, "invalid_query");
    // Over the append limit but within the body limit: the store's limit, as 413.
    let big = json!([event("A", json!("x".repeat(70 * 1024)))])
        .to_string()
        .into_bytes();
    post("/streams/s", vec![JSON], big)
        .await
        .assert_error(413, "append_too_large");
    // Over the body limit, with a length and without one.
    let huge = vec![b' '; 2 * 1024 * 1024];
    post("/streams/s", vec![JSON], huge.clone())
        .await
        .assert_error(413, "body_too_large");
    let chunked = chunked_request(address, "/streams/s", &huge).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("body_too_large"), "{chunked}");

    get(address, "/nowhere")
        .await
        .assert_error(404, "not_found");
    // A gRPC call no service takes is gRPC's UNIMPLEMENTED, not a JSON 404.
    let (grpc, connection) = http_open(
        address,
        "POST",
        "/no.such.Service/Call",
        &[("content-type", "application/grpc")],
        Vec::new(),
    )
    .await;
    assert_eq!(grpc.headers()["grpc-status"], "12");
    connection.abort();
    http_request(address, "PATCH", "/streams/s", &[], Vec::new())
        .await
        .assert_error(405, "method_not_allowed");
    get(address, "/streams/s?limit=0")
        .await
        .assert_error(400, "invalid_query");
    get(address, "/streams/s?from=-3")
        .await
        .assert_error(400, "invalid_query");
    get(address, "/streams/s?direction=up")
        .await
        .assert_error(400, "invalid_query");
    get(address, "/all?limit=100000")
        .await
        .assert_error(400, "invalid_query");
    get(address, "/all?stream_prefix=%FF")
        .await
        .assert_error(400, "invalid_query");
    let subscribe = http_request(
        address,
        "GET",
        "/streams/s/subscribe",
        &[("last-event-id", "not-a-number")],
        Vec::new(),
    )
    .await;
    subscribe.assert_error(400, "invalid_last_event_id");

    assert_eq!(server.store.head().await.unwrap(), Position(0));
    server.stop().await;
}

/// Sends a body with chunked transfer encoding (no length declared) over a raw connection and
/// returns the whole answer as text.
async fn chunked_request(address: &str, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    };
    let mut answer = Vec::new();
    let read = reader.read_to_end(&mut answer);
    let (_, read) = tokio::join!(write, read);
    read.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_stream_subscription_resumes_from_last_event_id_without_gaps_or_duplicates() {
    let server = server().await;
    let address = &server.address;
    append(
        address,
        "sub",
        "any",
        json!([
            event("A", json!(0)),
            event("A", json!(1)),
            event("A", json!(2))
        ]),
    )
    .await;
    let mut sse = SseStream::open(address, "/streams/sub/subscribe", None).await;
    let mut seen = Vec::new();
    for expected in 0..3u64 {
        let event = sse.next().await.unwrap();
        assert_eq!(event.event, "event");
        assert_eq!(event.id.as_deref(), Some(expected.to_string().as_str()));
        let body: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(body["revision"], expected);
        assert_eq!(body["data"], expected);
        seen.push(expected);
    }
    assert_eq!(sse.next().await.unwrap().event, "caught_up");
    append(address, "sub", "any", json!([event("A", json!(3))])).await;
    let live = sse.next_event().await;
    assert_eq!(live.id.as_deref(), Some("3"));
    seen.push(3);
    let last_id = live.id.clone().unwrap();
    drop(sse);

    // Written while nobody listens.
    append(
        address,
        "sub",
        "any",
        json!([event("A", json!(4)), event("A", json!(5))]),
    )
    .await;
    let mut resumed = SseStream::open(address, "/streams/sub/subscribe", Some(&last_id)).await;
    for _ in 0..2 {
        let event = resumed.next_event().await;
        seen.push(event.id.unwrap().parse().unwrap());
    }
    append(address, "sub", "any", json!([event("A", json!(6))])).await;
    seen.push(resumed.next_event().await.id.unwrap().parse().unwrap());
    assert_eq!(seen, (0..7).collect::<Vec<u64>>());

    // `from` is exclusive, like Last-Event-ID; `end` is only what comes next.
    let mut after = SseStream::open(address, "/streams/sub/subscribe?from=5", None).await;
    assert_eq!(after.next_event().await.id.as_deref(), Some("6"));
    let mut end = SseStream::open(address, "/streams/sub/subscribe?from=end", None).await;
    assert_eq!(end.next().await.unwrap().event, "caught_up");
    append(address, "sub", "any", json!([event("A", json!(7))])).await;
    assert_eq!(end.next_event().await.id.as_deref(), Some("7"));
    server.stop().await;
}

#[tokio::test]
async fn an_all_subscription_resumes_by_position_with_its_filter() {
    let server = server().await;
    let address = &server.address;
    let mut expected = Vec::new();
    for index in 0..6 {
        let stream = if index % 2 == 0 { "keep-1" } else { "skip-1" };
        let reply = append(address, stream, "any", json!([event("E", json!(index))])).await;
        if index % 2 == 0 {
            expected.push(reply.json()["position"].as_u64().unwrap());
        }
    }
    let path = "/all/subscribe?stream_prefix=keep-";
    let mut sse = SseStream::open(address, path, None).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = sse.next_event().await;
        let body: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(body["stream"], "keep-1");
        assert_eq!(event.id.as_deref().unwrap(), body["position"].to_string());
        seen.push(body["position"].as_u64().unwrap());
    }
    let last_id = seen.last().unwrap().to_string();
    drop(sse);
    for index in 6..10 {
        let stream = if index % 2 == 0 { "keep-1" } else { "skip-1" };
        let reply = append(address, stream, "any", json!([event("E", json!(index))])).await;
        if index % 2 == 0 {
            expected.push(reply.json()["position"].as_u64().unwrap());
        }
    }
    let mut resumed = SseStream::open(address, path, Some(&last_id)).await;
    for _ in 0..3 {
        let event = resumed.next_event().await;
        seen.push(event.id.unwrap().parse().unwrap());
    }
    assert_eq!(seen, expected);
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_end_when_the_server_shuts_down() {
    let server = server().await;
    let address = server.address.clone();
    let mut stream = SseStream::open(&address, "/streams/s/subscribe", None).await;
    assert_eq!(stream.next().await.unwrap().event, "caught_up");
    let mut all = SseStream::open(&address, "/all/subscribe?from=end", None).await;
    assert_eq!(all.next().await.unwrap().event, "caught_up");
    let stopping = tokio::spawn(server.stop());
    for reader in [&mut stream, &mut all] {
        let last = reader.next().await.unwrap();
        assert_eq!(last.event, "error");
        let body: Value = serde_json::from_str(&last.data).unwrap();
        assert_eq!(body["error"]["code"], "shutting_down");
        assert_eq!(reader.next().await, None);
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn subscribing_to_a_tombstoned_stream_is_gone() {
    let server = server().await;
    let address = &server.address;
    append(address, "t", "any", json!([event("A", json!(1))])).await;
    http_request(address, "DELETE", "/streams/t?hard=true", &[], Vec::new()).await;
    get(address, "/streams/t/subscribe")
        .await
        .assert_error(410, "stream_deleted");
    server.stop().await;
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A request the API must refuse cleanly.
    #[derive(Debug, Clone)]
    enum BadRequest {
        /// Bytes that are not a JSON array.
        Body(Vec<u8>),
        /// An array with an event that has no data.
        Event(String),
        /// A valid body under a content type that is not JSON.
        ContentType(String),
        /// A stream name from arbitrary bytes, percent-encoded.
        StreamName(Vec<u8>),
        /// A body past the limit.
        Huge(usize),
    }

    fn bad_request() -> impl Strategy<Value = BadRequest> {
        let json_like = prop::collection::vec(
            prop::sample::select(vec![
                "[",
                "]",
                "{",
                "}",
                ",",
                ":",
                "\"type\"",
                "\"data\"",
                "\"A\"",
                "1",
                "null",
                "\"data_base64\"",
                "\"!!\"",
                "\"id\"",
                "\"x\"",
                "true",
                "\\",
                "\u{0}",
            ]),
            0..24,
        )
        .prop_map(|tokens| tokens.concat().into_bytes());
        let not_an_array = |bytes: &Vec<u8>| {
            serde_json::from_slice::<Value>(bytes).map_or(true, |value| !value.is_array())
        };
        prop_oneof![
            json_like
                .prop_filter("not a JSON array", not_an_array)
                .prop_map(BadRequest::Body),
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_filter("not a JSON array", not_an_array)
                .prop_map(BadRequest::Body),
            any::<String>().prop_map(BadRequest::Event),
            "[a-z/+.;= -]{0,30}"
                .prop_filter("not JSON", |content_type| {
                    !content_type
                        .split(';')
                        .next()
                        .unwrap()
                        .trim()
                        .eq_ignore_ascii_case("application/json")
                })
                .prop_map(BadRequest::ContentType),
            prop::collection::vec(any::<u8>(), 0..300)
                .prop_filter("not a valid name", |bytes| {
                    match std::str::from_utf8(bytes) {
                        Ok(name) => !name.is_empty() && factum_core::StreamName::new(name).is_err(),
                        Err(_) => true,
                    }
                })
                .prop_map(BadRequest::StreamName),
            (1_200_000usize..1_400_000).prop_map(BadRequest::Huge),
        ]
    }

    fn percent_encode(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("%{byte:02X}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn bad_input_gets_a_clean_json_error_and_writes_nothing(requests in prop::collection::vec(bad_request(), 1..4)) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let options = ServerOptions {
                    max_append_bytes: Some(64 * 1024),
                    ..ServerOptions::default()
                };
                let server = TestServer::start_with(Arc::new(MemoryStore::new()), options).await;
                let address = &server.address;
                let valid = json!([event("A", json!(1))]).to_string().into_bytes();
                for request in requests {
                    let (path, headers, body, status) = match &request {
                        BadRequest::Body(body) => ("/streams/s".to_owned(), vec![JSON], body.clone(), 400),
                        BadRequest::Event(event_type) => (
                            "/streams/s".to_owned(),
                            vec![JSON],
                            json!([{ "type": event_type }]).to_string().into_bytes(),
                            400,
                        ),
                        BadRequest::ContentType(content_type) => (
                            "/streams/s".to_owned(),
                            vec![("content-type", content_type.as_str())],
                            valid.clone(),
                            415,
                        ),
                        BadRequest::StreamName(name) => (
                            format!("/streams/{}", percent_encode(name)),
                            vec![JSON],
                            valid.clone(),
                            400,
                        ),
                        BadRequest::Huge(size) => ("/streams/s".to_owned(), vec![JSON], vec![b'['; *size], 413),
                    };
                    let reply = http_request(address, "POST", &path, &headers, body).await;
                    assert_eq!(reply.status, status, "{request:?}: {reply:?}");
                    assert_eq!(reply.content_type, "application/json", "{request:?}");
                    assert!(reply.json()["error"]["code"].is_string(), "{request:?}");
                    // Reads of the same names are refused as cleanly.
                    if let BadRequest::StreamName(_) = request {
                        get(address, &path).await.assert_error(400, "invalid_stream_name");
                    }
                }
                assert_eq!(server.store.head().await.unwrap(), Position(0));
                server.stop().await;
            });
        }
    }
}
