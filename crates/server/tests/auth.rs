//! Authentication on every entry point when the server has users: gRPC and HTTP calls without
//! valid credentials are refused with one message, health checks and the calls clients make
//! before they log in stay open, and a valid user gets through.

mod support;

use std::sync::Arc;

use factum_core::EventStore;
use factum_memory::MemoryStore;
use factum_proto::server_features::server_features_client::ServerFeaturesClient;
use factum_proto::shared::Empty;
use factum_proto::streams::streams_client::StreamsClient;
use factum_server::ServerOptions;
use factum_server::auth::users::UserStore;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::Code;

async fn secure_server() -> TestServer {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let users = UserStore::new(store.clone());
    users.create("alice", "", &[], "right").await.unwrap();
    let options = ServerOptions {
        users: Some(Arc::new(users)),
        ..ServerOptions::default()
    };
    TestServer::start_with(store, options).await
}

fn with_basic(
    credentials: &'static str,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request| {
        if !credentials.is_empty() {
            request
                .metadata_mut()
                .insert("authorization", credentials.parse().unwrap());
        }
        Ok(request)
    }
}

/// One HTTP/1.1 request; the status line and the whole response.
async fn http_get(address: &str, path: &str, authorization: Option<&str>) -> String {
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let authorization = authorization
        .map(|value| format!("authorization: {value}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {address}\r\n{authorization}connection: close\r\n\r\n"
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    connection.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_need_valid_credentials_and_get_one_message_whatever_was_wrong() {
    let server = secure_server().await;
    let channel = server.channel().await;
    // base64 of "alice:wrong", "bob:right", "alice:right".
    for credentials in [
        "",
        "Basic YWxpY2U6d3Jvbmc=",
        "Basic Ym9iOnJpZ2h0",
        "Bearer x",
    ] {
        let mut client = StreamsClient::with_interceptor(channel.clone(), with_basic(credentials));
        let outcome = client.read(read_stream_request("account-1")).await;
        let status = match outcome {
            Err(status) => status,
            Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
        };
        assert_eq!(status.code(), Code::Unauthenticated, "{credentials}");
        assert_eq!(status.message(), "Bad credentials: authentication required");
    }
    let mut alice =
        StreamsClient::with_interceptor(channel.clone(), with_basic("Basic YWxpY2U6cmlnaHQ="));
    let mut messages = alice
        .read(read_stream_request("account-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        messages.next().await.unwrap().is_ok(),
        "alice gets an answer"
    );
    // What clients ask before they log in stays open.
    ServerFeaturesClient::new(channel)
        .get_supported_methods(Empty {})
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_need_valid_credentials_and_health_checks_do_not() {
    let server = secure_server().await;
    let refused = http_get(&server.address, "/streams/account-1", None).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused.to_lowercase().contains("www-authenticate: basic"),
        "{refused}"
    );
    assert!(
        refused.contains("\"code\":\"unauthenticated\""),
        "{refused}"
    );
    let wrong = http_get(
        &server.address,
        "/streams/account-1",
        Some("Basic YWxpY2U6d3Jvbmc="),
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let alice = http_get(
        &server.address,
        "/streams/account-1",
        Some("Basic YWxpY2U6cmlnaHQ="),
    )
    .await;
    assert!(
        alice.starts_with("HTTP/1.1 404"),
        "alice reads: not found, {alice}"
    );
    let health = http_get(&server.address, "/health/live", None).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    server.stop().await;
}
