//! `factum dev-cert` and `factum serve` over TLS as processes: the development pair works, plain
//! text beyond loopback needs `--insecure`, SIGHUP reloads the certificate, and the command
//! line works on the secure server as its users (and refuses wrong credentials, writing
//! nothing).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use factum_proto::streams::read_resp;
use factum_proto::streams::streams_client::StreamsClient;
use support::server::{ADMIN_PASSWORD, Served, append_request, dev_cert};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

type Interceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A client that sends `admin:changeit` (or, with `Some`, other credentials) with every call.
fn client_as(
    channel: Channel,
    credentials: Interceptor,
) -> StreamsClient<InterceptedService<Channel, Interceptor>> {
    StreamsClient::with_interceptor(channel, credentials)
}

fn admin_credentials(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    // base64("admin:changeit")
    request.metadata_mut().insert(
        "authorization",
        "Basic YWRtaW46Y2hhbmdlaXQ=".parse().unwrap(),
    );
    Ok(request)
}

fn wrong_credentials(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    // base64("admin:wrong")
    request
        .metadata_mut()
        .insert("authorization", "Basic YWRtaW46d3Jvbmc=".parse().unwrap());
    Ok(request)
}

fn no_credentials(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    Ok(request)
}

/// Appends `events` events as admin and checks they were written.
async fn append(channel: &Channel, stream: &str, events: usize, event_type: &str) {
    let request = append_request(stream, events, event_type);
    let reply = client_as(channel.clone(), admin_credentials)
        .batch_append(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            reply.result,
            Some(factum_proto::streams::batch_append_resp::Result::Success(_))
        ),
        "{reply:?}"
    );
}

fn factum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(args)
        .output()
        .expect("run factum")
}

fn pem_certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

/// The certificate a new TLS connection to 127.0.0.1:`port` is served, trusting `cas`.
async fn served_certificate(port: u16, cas: &[PathBuf]) -> CertificateDer<'static> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(pem_certificate(ca)).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn tls_channel(port: u16, ca: &Path) -> Channel {
    Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap())),
        )
        .unwrap()
        .connect()
        .await
        .expect("connect over TLS with the development CA")
}

async fn count_events(channel: Channel, stream: &str) -> usize {
    let mut request = support::server::subscribe_to_all();
    use factum_proto::streams::read_req::options;
    let options = request.options.as_mut().unwrap();
    options.stream_option = Some(options::StreamOption::Stream(options::StreamOptions {
        stream_identifier: Some(factum_proto::shared::StreamIdentifier {
            stream_name: stream.as_bytes().to_vec().into(),
        }),
        revision_option: Some(options::stream_options::RevisionOption::Start(
            factum_proto::shared::Empty {},
        )),
    }));
    options.count_option = Some(options::CountOption::Count(u64::MAX));
    let mut messages = client_as(channel, admin_credentials)
        .read(request)
        .await
        .unwrap()
        .into_inner();
    let mut events = 0;
    while let Some(message) = messages.next().await {
        if let Some(read_resp::Content::Event(_)) = message.unwrap().content {
            events += 1;
        }
    }
    events
}

#[test]
fn dev_cert_writes_a_ca_and_a_server_pair_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let output = dev_cert(&out);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("--tls-cert"), "{printed}");
    assert!(printed.contains("tlsCaFile="), "{printed}");
    for name in ["ca.pem", "server.pem", "server.key"] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    // The pair loads as the server loads it.
    factum_server::TlsConfig::load(factum_server::TlsSettings {
        certificate_chain: out.join("server.pem"),
        private_key: out.join("server.key"),
    })
    .unwrap();

    let ca_before = std::fs::read(out.join("ca.pem")).unwrap();
    let again = dev_cert(&out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), ca_before);
}

#[test]
fn plain_text_beyond_loopback_is_refused_without_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = factum(&[
        "--data-dir",
        data.to_str().unwrap(),
        "serve",
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--insecure"), "{error}");
    assert!(error.contains("--tls-cert"), "{error}");
}

#[test]
fn insecure_serves_plain_text_beyond_loopback_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        &dir.path().join("data"),
        &["--listen", "0.0.0.0:0", "--insecure"],
    );
    assert!(served.address.starts_with("0.0.0.0:"));
    let warning = served.wait_for_log("--insecure");
    assert!(warning.contains("WARN"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_with_the_dev_cert_and_sighup_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    assert!(dev_cert(&first).status.success());
    assert!(dev_cert(&second).status.success());
    // The server reads its pair from paths the test rewrites.
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for name in ["server.pem", "server.key"] {
        std::fs::copy(first.join(name), live.join(name)).unwrap();
    }
    let served = Served::start(
        &dir.path().join("data"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            live.join("server.pem").to_str().unwrap(),
            "--tls-key",
            live.join("server.key").to_str().unwrap(),
        ],
    );
    let port = served.port();

    let channel = tls_channel(port, &first.join("ca.pem")).await;
    append(&channel, "over-tls", 3, "Deposited").await;
    assert_eq!(count_events(channel.clone(), "over-tls").await, 3);
    // Secure means authenticated: no or wrong credentials are refused with one message.
    for credentials in [no_credentials as Interceptor, wrong_credentials] {
        let status = client_as(channel.clone(), credentials)
            .batch_append(tokio_stream::iter([append_request("over-tls", 1, "X")]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), "Bad credentials: authentication required");
    }
    assert_eq!(count_events(channel, "over-tls").await, 3);
    let both_cas = [first.join("ca.pem"), second.join("ca.pem")];
    assert_eq!(
        served_certificate(port, &both_cas).await,
        pem_certificate(&first.join("server.pem"))
    );

    for name in ["server.pem", "server.key"] {
        std::fs::copy(second.join(name), live.join(name)).unwrap();
    }
    let hangup = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    served.wait_for_log("TLS certificate reloaded");
    assert_eq!(
        served_certificate(port, &both_cas).await,
        pem_certificate(&second.join("server.pem"))
    );
    let renewed = tls_channel(port, &second.join("ca.pem")).await;
    assert_eq!(count_events(renewed, "over-tls").await, 3);
}

#[test]
fn a_first_secure_start_without_an_admin_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(dev_cert(&certs).status.success());
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(certs.join("server.pem"))
        .arg("--tls-key")
        .arg(certs.join("server.key"))
        .env_remove("FACTUM_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--admin-password-file"), "{error}");
    assert!(output.stdout.is_empty(), "it never listened");
}

/// `factum --server URL ARGS` as the user `credentials` names (`(name, password)`, through
/// FACTUM_USERNAME and FACTUM_PASSWORD), with `input` on standard input.
fn remote(url: &str, credentials: Option<(&str, &str)>, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factum"));
    command
        .args(["--server", url])
        .args(args)
        .env_remove("FACTUM_SERVER")
        .env_remove("FACTUM_USERNAME")
        .env_remove("FACTUM_PASSWORD");
    if let Some((name, password)) = credentials {
        command
            .env("FACTUM_USERNAME", name)
            .env("FACTUM_PASSWORD", password);
    }
    support::run_with_input(command, input)
}

/// The output lines of a command that must succeed.
fn succeeds(output: Output, what: &str) -> Vec<String> {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The one line of standard error of a command that must fail with exit code 1.
fn fails(output: Output, what: &str) -> String {
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert!(output.stdout.is_empty(), "{what} printed output");
    assert_eq!(stderr.lines().count(), 1, "{what}: not one line: {stderr}");
    stderr
}

#[test]
fn the_command_line_works_on_a_secure_server_as_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let (served, ca) = Served::start_tls(dir.path());
    let url = format!(
        "kurrentdb://localhost:{}?tlsCaFile={}",
        served.port(),
        ca.display()
    );
    let admin = Some(("admin", ADMIN_PASSWORD));
    let alice = Some(("alice", "alice pw"));

    // The admin adds a user through the server.
    let added = succeeds(
        remote(&url, admin, &["user", "add", "alice"], "alice pw\n"),
        "user add",
    );
    assert_eq!(added, [r#"{"created":"alice"}"#]);
    let listed = succeeds(remote(&url, admin, &["user", "list"], ""), "user list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|line| line.contains(r#""name":"alice""#)));

    // Alice appends and reads as herself.
    let append = [
        "append",
        "orders",
        "--type",
        "Placed",
        "--data",
        r#"{"n":1}"#,
    ];
    succeeds(remote(&url, alice, &append, ""), "append as alice");
    let read = ["read", "orders"];
    let events = succeeds(remote(&url, alice, &read, ""), "read as alice");
    assert_eq!(events.len(), 1);
    assert!(events[0].contains(r#""data":{"n":1}"#), "{events:?}");
    // Credentials in an https:// URL work too (percent-encoded).
    let https = format!(
        "https://alice:alice%20pw@localhost:{}?tlsCaFile={}",
        served.port(),
        ca.display()
    );
    assert_eq!(
        succeeds(remote(&https, None, &read, ""), "read by URL").len(),
        1
    );

    // A wrong password, an unknown user and no credentials: one clear error, nothing written.
    for (credentials, what) in [
        (Some(("alice", "wrong")), "a wrong password"),
        (Some(("mallory", "alice pw")), "an unknown user"),
        (None, "no credentials"),
    ] {
        let error = fails(remote(&url, credentials, &append, ""), what);
        assert!(error.contains("not authenticated"), "{what}: {error}");
        assert!(error.contains("user name and password"), "{what}: {error}");
        assert!(!error.contains("alice pw"), "{what}: {error}");
    }
    let wrong_url = https.replace("alice%20pw", "wrong");
    let error = fails(
        remote(&wrong_url, None, &append, ""),
        "a wrong password in the URL",
    );
    assert!(error.contains("not authenticated"), "{error}");
    assert!(
        !error.contains("wrong"),
        "the password is not repeated: {error}"
    );
    assert_eq!(
        succeeds(remote(&url, alice, &read, ""), "read after refusals").len(),
        1,
        "the refused appends wrote nothing"
    );

    // The admin changes alice's password, disables her and enables her again.
    let new_alice = Some(("alice", "new pw"));
    succeeds(
        remote(&url, admin, &["user", "passwd", "alice"], "new pw\n"),
        "user passwd",
    );
    fails(remote(&url, alice, &read, ""), "the old password");
    succeeds(remote(&url, new_alice, &read, ""), "the new password");
    succeeds(
        remote(&url, admin, &["user", "disable", "alice"], ""),
        "user disable",
    );
    let error = fails(remote(&url, new_alice, &read, ""), "a disabled user");
    assert!(error.contains("not authenticated"), "{error}");
    succeeds(
        remote(&url, admin, &["user", "enable", "alice"], ""),
        "user enable",
    );
    succeeds(remote(&url, new_alice, &read, ""), "an enabled user");
    let alice = new_alice;

    // Users are for admins: alice may not add one.
    let error = fails(
        remote(&url, alice, &["user", "add", "bob"], "bob pw\n"),
        "user add as alice",
    );
    assert!(error.contains("administrator"), "{error}");
    let listed = succeeds(remote(&url, admin, &["user", "list"], ""), "user list");
    assert_eq!(listed.len(), 2, "no bob: {listed:?}");

    // A CA that did not sign the server's certificate: a TLS error, not a hang or a panic.
    let other = dir.path().join("other");
    assert!(dev_cert(&other).status.success());
    let untrusted = format!(
        "kurrentdb://localhost:{}?tlsCaFile={}",
        served.port(),
        other.join("ca.pem").display()
    );
    let error = fails(remote(&untrusted, alice, &read, ""), "an untrusted server");
    assert!(error.contains("TLS handshake"), "{error}");
}
