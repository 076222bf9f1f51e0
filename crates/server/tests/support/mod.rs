//! An in-process server on a free port, and the wire helpers the tests share.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use factum_core::EventStore;
use factum_proto::shared::{self, StreamIdentifier, uuid};
use factum_proto::streams::streams_client::StreamsClient;
use factum_proto::streams::{ReadReq, read_req};
use factum_server::{ServerError, ServerOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A server serving a store on `127.0.0.1:<free port>`.
pub struct TestServer {
    pub address: String,
    pub store: Arc<dyn EventStore>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    pub async fn start(store: Arc<dyn EventStore>) -> TestServer {
        TestServer::start_with(store, ServerOptions::default()).await
    }

    pub async fn start_with(store: Arc<dyn EventStore>, options: ServerOptions) -> TestServer {
        let listeners = factum_server::bind(&["127.0.0.1:0".to_owned()])
            .await
            .expect("bind a free port");
        let address = listeners[0].local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(factum_server::serve(
            store.clone(),
            listeners,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            address,
            store,
            stop: Some(stop),
            task,
        }
    }

    /// A client on its own HTTP/2 connection.
    pub async fn client(&self) -> StreamsClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connect to the test server");
        StreamsClient::new(channel)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connect to the test server")
    }

    /// Shuts down gracefully and waits for `serve` to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .expect("serve returns Ok");
    }
}

pub fn stream_id(name: &str) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: name.as_bytes().to_vec().into(),
    }
}

pub fn string_uuid(id: ::uuid::Uuid) -> shared::Uuid {
    shared::Uuid {
        value: Some(uuid::Value::String(id.to_string())),
    }
}

pub fn event_metadata(event_type: &str) -> HashMap<String, String> {
    HashMap::from([
        ("type".to_owned(), event_type.to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ])
}

/// A forwards read of a whole stream, ids as strings.
pub fn read_stream_request(name: &str) -> ReadReq {
    use read_req::options::{self, stream_options};
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(options::StreamOption::Stream(options::StreamOptions {
                stream_identifier: Some(stream_id(name)),
                revision_option: Some(stream_options::RevisionOption::Start(shared::Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(options::CountOption::Count(u64::MAX)),
            filter_option: Some(options::FilterOption::NoFilter(shared::Empty {})),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(shared::Empty {})),
            }),
            control_option: None,
        }),
    }
}

/// A subscription to a stream from its start, ids as strings.
pub fn subscribe_stream_request(name: &str) -> ReadReq {
    let mut request = read_stream_request(name);
    let options = request.options.as_mut().unwrap();
    options.count_option = Some(read_req::options::CountOption::Subscription(
        read_req::options::SubscriptionOptions {},
    ));
    request
}

/// A subscription to `$all` from the start, optionally filtered.
pub fn subscribe_all_request(filter: Option<read_req::options::FilterOptions>) -> ReadReq {
    use read_req::options;
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(options::StreamOption::All(options::AllOptions {
                all_option: Some(options::all_options::AllOption::Start(shared::Empty {})),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(options::CountOption::Subscription(
                options::SubscriptionOptions {},
            )),
            filter_option: Some(match filter {
                Some(filter) => options::FilterOption::Filter(filter),
                None => options::FilterOption::NoFilter(shared::Empty {}),
            }),
            uuid_option: Some(options::UuidOption {
                content: Some(options::uuid_option::Content::String(shared::Empty {})),
            }),
            control_option: None,
        }),
    }
}

/// Waits until the runtime runs at most `tasks` tasks: the way to see that a call's tasks ended.
pub async fn wait_for_alive_tasks_at_most(tasks: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.num_alive_tasks() > tasks {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks still alive, expected at most {tasks}",
            metrics.num_alive_tasks()
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `Authorization` header value of HTTP basic credentials.
pub fn basic_auth(name: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Basic {encoded}")
}

/// Sends one `authorization` value with every call (see [`streams_client_as`]).
#[derive(Clone)]
pub struct Authorize(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Authorize {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A Streams client on `channel` whose calls carry `authorization` (see [`basic_auth`]).
pub fn streams_client_as(
    channel: Channel,
    authorization: &str,
) -> StreamsClient<tonic::service::interceptor::InterceptedService<Channel, Authorize>> {
    StreamsClient::with_interceptor(channel, Authorize(authorization.parse().unwrap()))
}

/// An HTTP answer: status, content type and body.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: bytes::Bytes,
}

impl HttpReply {
    /// Asserts a JSON error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/json", "{self:?}");
        assert_eq!(self.json()["error"]["code"], code, "{self:?}");
        assert!(self.json()["error"]["message"].is_string(), "{self:?}");
    }

    /// The body as JSON (panics, with the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Opens an HTTP/1.1 connection and sends one request; the connection's task comes back with
/// the response head, so the caller may read the body as it comes (server-sent events).
pub async fn http_open(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (hyper::Response<hyper::body::Incoming>, JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
        .await
        .expect("a response");
    (response, task)
}

/// One HTTP/1.1 request on its own connection; the whole answer.
pub async fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpReply {
    let (response, task) = http_open(address, method, path, headers, body).await;
    let reply = http_reply(response).await;
    task.abort();
    reply
}

/// The whole answer of a response whose head has come.
pub async fn http_reply(response: hyper::Response<hyper::body::Incoming>) -> HttpReply {
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole body")
        .to_bytes();
    HttpReply {
        status,
        content_type,
        body,
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// The server-sent events of a response body, one at a time.
pub struct SseStream {
    body: hyper::body::Incoming,
    buffer: String,
    connection: JoinHandle<()>,
}

impl SseStream {
    /// Subscribes with `GET path` (resuming after `last_event_id` when given); the answer must
    /// be an event stream.
    pub async fn open(address: &str, path: &str, last_event_id: Option<&str>) -> SseStream {
        let mut headers = vec![("accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            headers.push(("last-event-id", id));
        }
        let (response, connection) = http_open(address, "GET", path, &headers, Vec::new()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseStream::new(response, connection)
    }

    /// The next event that is not `caught_up` or `checkpoint`.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if event.event != "caught_up" && event.event != "checkpoint" {
                return event;
            }
        }
    }

    /// The events of `response` (an event stream), read over `connection`.
    pub fn new(
        response: hyper::Response<hyper::body::Incoming>,
        connection: JoinHandle<()>,
    ) -> Self {
        SseStream {
            body: response.into_body(),
            buffer: String::new(),
            connection,
        }
    }

    /// The next event (keep-alive comments skipped), `None` when the stream ends; fails the
    /// test if none comes within 10 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use http_body_util::BodyExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".to_owned(),
                    data: String::new(),
                };
                let mut is_comment = true;
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => continue,
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = value.to_owned(),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                        }
                        _ => {}
                    }
                    is_comment = false;
                }
                if is_comment {
                    continue;
                }
                return Some(event);
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s")?
                .expect("a body frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

impl Drop for SseStream {
    // The connection goes with the stream.
    fn drop(&mut self) {
        self.connection.abort();
    }
}
