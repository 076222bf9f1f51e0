//! The server over TLS: a client that trusts the CA appends and reads, one that does not is
//! refused, a reload serves the new certificate to new connections, and clients that do not
//! speak TLS (or stall in the handshake) neither stop nor block the server.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use factum_memory::MemoryStore;
use factum_proto::streams::read_resp;
use factum_proto::streams::streams_client::StreamsClient;
use factum_server::{ServerOptions, TlsConfig, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::*;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A certificate authority that signs server certificates for `localhost`.
struct TestCa {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a server certificate named `common_name` and its key into `dir`; returns the
    /// certificate's DER.
    fn write_server_pair(
        &self,
        common_name: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> CertificateDer<'static> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(cert_path, cert.pem()).unwrap();
        std::fs::write(key_path, key.serialize_pem()).unwrap();
        cert.der().clone()
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("factum-tls-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TLS server on `127.0.0.1:<free port>` with a certificate signed by a fresh CA.
struct Fixture {
    _dir: TempDir,
    ca: TestCa,
    tls: TlsConfig,
    served: CertificateDer<'static>,
    server: TestServer,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = TempDir::new();
        let ca = TestCa::new("factum test CA");
        let settings = TlsSettings {
            certificate_chain: dir.0.join("server.pem"),
            private_key: dir.0.join("server.key"),
        };
        let served = ca.write_server_pair(
            "factum test server 1",
            &settings.certificate_chain,
            &settings.private_key,
        );
        let tls = TlsConfig::load(settings).unwrap();
        let options = ServerOptions {
            tls: Some(tls.clone()),
            ..ServerOptions::default()
        };
        let server = TestServer::start_with(Arc::new(MemoryStore::new()), options).await;
        Fixture {
            _dir: dir,
            ca,
            tls,
            served,
            server,
        }
    }

    fn endpoint(&self, ca_pem: &str) -> tonic::transport::Endpoint {
        Channel::from_shared(format!("https://{}", self.server.address))
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .tls_config(
                ClientTlsConfig::new()
                    .domain_name("localhost")
                    .ca_certificate(Certificate::from_pem(ca_pem)),
            )
            .unwrap()
    }

    async fn trusted_channel(&self) -> Channel {
        self.endpoint(&self.ca.pem)
            .connect()
            .await
            .expect("a client trusting the CA connects")
    }

    /// The certificate a new TLS connection is served.
    async fn served_certificate(&self) -> CertificateDer<'static> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der.clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(&self.server.address)
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake");
        let (_, session) = tls.get_ref();
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
        session.peer_certificates().unwrap()[0].clone()
    }
}

async fn append_and_read_back(channel: Channel, stream: &str) {
    let mut client = StreamsClient::new(channel);
    let mut replies = client
        .batch_append(tokio_stream::iter([batch_append_request(stream)]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    assert!(
        matches!(
            reply.result,
            Some(factum_proto::streams::batch_append_resp::Result::Success(_))
        ),
        "{reply:?}"
    );
    let mut messages = client
        .read(read_stream_request(stream))
        .await
        .unwrap()
        .into_inner();
    let mut events = 0;
    while let Some(message) = messages.next().await {
        if let Some(read_resp::Content::Event(_)) = message.unwrap().content {
            events += 1;
        }
    }
    assert_eq!(events, 1);
}

fn batch_append_request(stream: &str) -> factum_proto::streams::BatchAppendReq {
    use factum_proto::streams::batch_append_req::{self, options::ExpectedStreamPosition};
    factum_proto::streams::BatchAppendReq {
        correlation_id: Some(string_uuid(uuid::Uuid::new_v4())),
        options: Some(batch_append_req::Options {
            stream_identifier: Some(stream_id(stream)),
            expected_stream_position: Some(ExpectedStreamPosition::Any(())),
            deadline_option: None,
        }),
        proposed_messages: vec![batch_append_req::ProposedMessage {
            id: Some(string_uuid(uuid::Uuid::new_v4())),
            metadata: event_metadata("Opened"),
            custom_metadata: Default::default(),
            data: b"{}".to_vec().into(),
        }],
        is_final: true,
    }
}

#[tokio::test]
async fn a_client_trusting_the_ca_appends_and_reads_and_one_that_does_not_is_refused() {
    let fixture = Fixture::start().await;
    append_and_read_back(fixture.trusted_channel().await, "tls-account").await;

    let stranger = TestCa::new("another CA");
    let refused = fixture.endpoint(&stranger.pem).connect().await;
    assert!(
        refused.is_err(),
        "a client that does not trust the CA must not connect"
    );
    // The server goes on serving.
    append_and_read_back(fixture.trusted_channel().await, "tls-account-2").await;
    fixture.server.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_a_bad_file_keeps_the_old() {
    let fixture = Fixture::start().await;
    assert_eq!(fixture.served_certificate().await, fixture.served);
    let open_before = fixture.trusted_channel().await;

    let settings = fixture.tls.settings().clone();
    let renewed = fixture.ca.write_server_pair(
        "factum test server 2",
        &settings.certificate_chain,
        &settings.private_key,
    );
    assert_ne!(renewed, fixture.served);
    // Until the reload, the files changing changes nothing.
    assert_eq!(fixture.served_certificate().await, fixture.served);
    fixture.tls.reload().unwrap();
    assert_eq!(fixture.served_certificate().await, renewed);
    // A connection opened before the reload goes on working.
    append_and_read_back(open_before, "opened-before-reload").await;

    std::fs::write(&settings.private_key, "not a key").unwrap();
    assert!(fixture.tls.reload().is_err());
    assert_eq!(fixture.served_certificate().await, renewed);
    append_and_read_back(fixture.trusted_channel().await, "after-bad-reload").await;
    fixture.server.stop().await;
}

#[tokio::test]
async fn plain_text_and_stalled_clients_neither_stop_nor_block_the_server() {
    let fixture = Fixture::start().await;
    // A client that connects and never says a word holds a handshake slot, nothing more.
    let stalled = tokio::net::TcpStream::connect(&fixture.server.address)
        .await
        .unwrap();

    let plain = Channel::from_shared(format!("http://{}", fixture.server.address))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10));
    let outcome = match plain.connect().await {
        Err(error) => Err(error.to_string()),
        Ok(channel) => StreamsClient::new(channel)
            .batch_append(tokio_stream::iter([batch_append_request("plain")]))
            .await
            .map(|_| ())
            .map_err(|status| status.to_string()),
    };
    assert!(outcome.is_err(), "plain text must not reach a TLS port");

    append_and_read_back(fixture.trusted_channel().await, "after-plain-text").await;
    drop(stalled);
    fixture.server.stop().await;
}
