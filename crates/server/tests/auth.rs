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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_enforced_on_grpc_and_http_and_admins_pass() {
    use factum_proto::streams::batch_append_resp;
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let users = UserStore::new(store.clone());
    users.create("alice", "", &[], "right").await.unwrap();
    users
        .create("root", "", &["$admins".to_owned()], "right")
        .await
        .unwrap();
    let options = ServerOptions {
        users: Some(Arc::new(users)),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(store, options).await;
    let channel = server.channel().await;
    // base64 of "alice:right" and "root:right".
    let alice = "Basic YWxpY2U6cmlnaHQ=";
    let root = "Basic cm9vdDpyaWdodA==";
    let batch = |credentials: &'static str, stream: &'static str| {
        let channel = channel.clone();
        async move {
            let mut client = StreamsClient::with_interceptor(channel, with_basic(credentials));
            let request = factum_proto::streams::BatchAppendReq {
                correlation_id: Some(string_uuid(uuid::Uuid::new_v4())),
                options: Some(factum_proto::streams::batch_append_req::Options {
                    stream_identifier: Some(stream_id(stream)),
                    expected_stream_position: Some(
                        factum_proto::streams::batch_append_req::options::ExpectedStreamPosition::Any(()),
                    ),
                    deadline_option: None,
                }),
                proposed_messages: vec![factum_proto::streams::batch_append_req::ProposedMessage {
                    id: Some(string_uuid(uuid::Uuid::new_v4())),
                    metadata: event_metadata("Changed"),
                    custom_metadata: Default::default(),
                    data: b"{}".to_vec().into(),
                }],
                is_final: true,
            };
            client
                .batch_append(tokio_stream::iter([request]))
                .await
                .unwrap()
                .into_inner()
                .next()
                .await
                .unwrap()
                .unwrap()
                .result
        }
    };
    // Alice writes her streams, not the users' streams (which hold password hashes).
    assert!(matches!(
        batch(alice, "orders").await,
        Some(batch_append_resp::Result::Success(_))
    ));
    let Some(batch_append_resp::Result::Error(status)) = batch(alice, "$user-root").await else {
        panic!("alice may not write $user-root");
    };
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/event_store.client.AccessDenied"
    );
    assert!(matches!(
        batch(root, "$settings").await,
        Some(batch_append_resp::Result::Success(_))
    ));

    // Reading `$all` (every stream, hashes included) is for admins.
    let read_all = |credentials: &'static str| {
        let channel = channel.clone();
        async move {
            let mut client = StreamsClient::with_interceptor(channel, with_basic(credentials));
            match client.read(subscribe_all_request(None)).await {
                Err(status) => Err(status),
                Ok(response) => {
                    let mut messages = response.into_inner();
                    loop {
                        match messages.next().await {
                            Some(Ok(message)) => {
                                if let Some(factum_proto::streams::read_resp::Content::Event(_)) =
                                    message.content
                                {
                                    return Ok(());
                                }
                            }
                            Some(Err(status)) => return Err(status),
                            None => return Ok(()),
                        }
                    }
                }
            }
        }
    };
    let status = read_all(alice).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "Access Denied");
    read_all(root).await.unwrap();

    // HTTP: the same rules.
    let denied = http_get(&server.address, "/streams/$users", Some(alice)).await;
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.contains("\"code\":\"access_denied\""), "{denied}");
    let allowed = http_get(&server.address, "/streams/orders", Some(alice)).await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    let admin = http_get(&server.address, "/streams/$users", Some(root)).await;
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    let all = http_get(&server.address, "/all", Some(alice)).await;
    assert!(all.starts_with("HTTP/1.1 403"), "{all}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_whose_stream_does_not_decode_is_refused_like_bad_credentials() {
    use factum_core::{ExpectedRevision, ProposedEvent, StreamName};
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let users = UserStore::new(store.clone());
    for name in ["alice", "bob"] {
        users.create(name, "", &[], "right").await.unwrap();
    }
    store
        .append(
            &StreamName::new("$user-bob").unwrap(),
            ExpectedRevision::Any,
            vec![ProposedEvent::bytes("PasswordChanged", "not json")],
        )
        .await
        .unwrap();
    let options = ServerOptions {
        users: Some(Arc::new(users)),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(store, options).await;
    let bob = basic_auth("bob", "right");
    let mut client = streams_client_as(server.channel().await, &bob);
    let status = match client.read(read_stream_request("account-1")).await {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "Bad credentials: authentication required");
    let refused = http_get(&server.address, "/streams/account-1", Some(&bob)).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // Nobody else is affected.
    let alice = basic_auth("alice", "right");
    let allowed = http_get(&server.address, "/streams/account-1", Some(&alice)).await;
    assert!(allowed.starts_with("HTTP/1.1 404"), "{allowed}");
    server.stop().await;
}
