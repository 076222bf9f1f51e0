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
