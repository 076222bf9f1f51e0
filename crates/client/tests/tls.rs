//! [`RemoteStore`] on a secure server: over TLS, trusting the server's certificate authority,
//! with a user's credentials on every call. Refused credentials are `Unauthenticated` and write
//! nothing, a stream the user may not touch is `AccessDenied`, and TLS failures say so.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use factum_client::{ConnectionSettings, Credentials, RemoteStore};
use factum_core::{
    Error, EventStore, ExpectedRevision, ProposedEvent, ReadAllOptions, ReadStreamOptions,
    StreamName,
};
use factum_memory::MemoryStore;
use factum_server::auth::users::UserStore;
use factum_server::{ServerOptions, TlsConfig, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::Server;

/// Writes a new certificate authority into `dir` as `{name}.pem`, and, when `server` is set, a
/// certificate for `localhost` and 127.0.0.1 it signed (`server.pem`, `server.key`). Returns
/// the CA's path.
fn write_pki(dir: &Path, name: &str, server: bool) -> PathBuf {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join(format!("{name}.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    if server {
        let issuer = Issuer::new(params, ca_key);
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    }
    ca_path
}

/// A TLS server with users `alice` (password `right`) and the admin `root` (password `root
/// pass`), and the CA that signed its certificate.
struct Secure {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: Server,
}

impl Secure {
    async fn start() -> Secure {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_pki(dir.path(), "ca", true);
        let tls = TlsConfig::load(TlsSettings {
            certificate_chain: dir.path().join("server.pem"),
            private_key: dir.path().join("server.key"),
        })
        .unwrap();
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let users = UserStore::new(store.clone());
        users.create("alice", "", &[], "right").await.unwrap();
        let admins = ["$admins".to_owned()];
        users
            .create("root", "", &admins, "root pass")
            .await
            .unwrap();
        let options = ServerOptions {
            tls: Some(tls),
            users: Some(Arc::new(users)),
            ..ServerOptions::default()
        };
        let server = Server::start_on(store, options).await;
        Secure {
            _dir: dir,
            ca,
            server,
        }
    }

    /// `kurrentdb://USER_INFO@localhost:PORT?tlsCaFile=CA` (no user part when empty).
    fn url(&self, user_info: &str) -> String {
        let user_info = if user_info.is_empty() {
            String::new()
        } else {
            format!("{user_info}@")
        };
        format!(
            "kurrentdb://{user_info}localhost:{}?tlsCaFile={}",
            self.server.address.port(),
            self.ca.display()
        )
    }

    async fn connect(&self, user_info: &str) -> RemoteStore {
        RemoteStore::connect(&self.url(user_info))
            .await
            .unwrap_or_else(|error| panic!("connect as {user_info:?}: {error}"))
    }
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

fn event() -> ProposedEvent {
    ProposedEvent::bytes("Placed", vec![1, 2, 3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_appends_and_reads_over_tls() {
    let secure = Secure::start().await;
    let alice = secure.connect("alice:right").await;
    assert!(alice.endpoint().starts_with("https://localhost:"));
    let orders = stream("orders");
    let written = alice
        .append(&orders, ExpectedRevision::NoStream, vec![event()])
        .await
        .unwrap();
    let read = alice
        .read_stream(&orders, ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].position, written.position);

    // The same, with the password outside the URL, on an https:// URL.
    let mut settings = ConnectionSettings::parse(&format!(
        "https://localhost:{}?tlsCaFile={}",
        secure.server.address.port(),
        secure.ca.display()
    ))
    .unwrap();
    settings.credentials = Some(Credentials::new("root", "root pass").unwrap());
    let root = RemoteStore::connect_with(settings).await.unwrap();
    let all = root.read_all(ReadAllOptions::forwards()).await.unwrap();
    assert!(all.events.iter().any(|e| e.position == written.position));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_unauthenticated_and_write_nothing() {
    let secure = Secure::start().await;
    let orders = stream("orders");
    // A wrong password, an unknown user, no credentials: one error, whatever was wrong.
    for user_info in ["alice:wrong", "nobody:right", "", "alice:right%20"] {
        let store = secure.connect(user_info).await;
        let append = store
            .append(&orders, ExpectedRevision::Any, vec![event()])
            .await;
        assert!(
            matches!(&append, Err(Error::Unauthenticated { reason })
                if reason.contains("user name and password")),
            "{user_info}: {append:?}"
        );
        let read = store
            .read_stream(&orders, ReadStreamOptions::forwards())
            .await;
        assert!(
            matches!(read, Err(Error::Unauthenticated { .. })),
            "{user_info}: {read:?}"
        );
    }
    let root = secure.connect("root:root%20pass").await;
    let read = root
        .read_stream(&orders, ReadStreamOptions::forwards())
        .await;
    assert!(
        matches!(read, Err(Error::StreamNotFound { .. })),
        "nothing was written: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_user_may_not_touch_is_access_denied() {
    let secure = Secure::start().await;
    let alice = secure.connect("alice:right").await;
    // The users' streams (password hashes) are for admins.
    let append = alice
        .append(&stream("$user-root"), ExpectedRevision::Any, vec![event()])
        .await;
    assert!(
        matches!(&append, Err(Error::AccessDenied { target, .. }) if target == "$user-root"),
        "{append:?}"
    );
    let read = alice
        .read_stream(&stream("$users"), ReadStreamOptions::forwards())
        .await;
    assert!(
        matches!(&read, Err(Error::AccessDenied { target, .. }) if target == "$users"),
        "{read:?}"
    );
    let all = alice.read_all(ReadAllOptions::forwards()).await;
    assert!(matches!(all, Err(Error::AccessDenied { .. })), "{all:?}");
    // Nothing was written to root's stream: it still authenticates with its password.
    let root = secure.connect("root:root%20pass").await;
    let events = root
        .read_stream(&stream("$user-root"), ReadStreamOptions::forwards())
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.event_type != "Placed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_clear_errors() {
    let secure = Secure::start().await;
    let port = secure.server.address.port();
    // A CA that did not sign the server's certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = write_pki(other_dir.path(), "other", false);
    let untrusted = RemoteStore::connect(&format!(
        "kurrentdb://alice:right@localhost:{port}?tlsCaFile={}",
        other_ca.display()
    ))
    .await
    .err()
    .expect("an untrusted certificate is refused");
    assert!(
        matches!(&untrusted, Error::Unavailable { reason }
            if reason.contains("TLS handshake") && reason.contains("tlsCaFile")),
        "{untrusted:?}"
    );
    // A file that is no CA.
    let not_pem = other_dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for ca in [not_pem, other_dir.path().join("missing.pem")] {
        let url = format!("kurrentdb://localhost:{port}?tlsCaFile={}", ca.display());
        let error = RemoteStore::connect(&url).await.err().expect("refused");
        assert!(
            matches!(&error, Error::InvalidRequest { reason } if reason.contains("tlsCaFile")),
            "{error:?}"
        );
    }
    // TLS to a plain-text server.
    let plain = Server::start().await;
    let url = format!(
        "kurrentdb://localhost:{}?tlsCaFile={}",
        plain.address.port(),
        secure.ca.display()
    );
    let error = RemoteStore::connect(&url)
        .await
        .err()
        .expect("no TLS there");
    assert!(
        matches!(&error, Error::Unavailable { reason } if reason.contains("TLS handshake")),
        "{error:?}"
    );
    // tlsVerifyCert=false takes any certificate (and still sends the credentials).
    let any = RemoteStore::connect(&format!(
        "kurrentdb://alice:right@localhost:{port}?tlsVerifyCert=false"
    ))
    .await
    .unwrap();
    any.append(&stream("orders"), ExpectedRevision::Any, vec![event()])
        .await
        .unwrap();
}
