//! TLS for `factum serve`: rustls (with the `ring` provider) over every accepted connection.
//!
//! [`TlsConfig`] holds the certificate chain and private key read from PEM files, and the
//! rustls configuration built from them. [`TlsConfig::reload`] reads the files again: new
//! connections get the new certificate, connections already open keep theirs, and files that
//! cannot be read or do not match keep the configuration in force. `factum serve` calls it on
//! SIGHUP (the library installs no signal handler).
//!
//! The server offers ALPN `h2` (gRPC) then `http/1.1`. Handshakes run concurrently, at most
//! [`MAX_HANDSHAKES`] at a time and each within [`HANDSHAKE_TIMEOUT`]: a slow or hostile client
//! delays no one, and a failed handshake only drops its own connection.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// The most TLS handshakes in progress at once; past it the server stops accepting until one
/// ends (the kernel's backlog holds the rest).
pub const MAX_HANDSHAKES: usize = 256;

/// How long a client has to complete its TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN protocols offered, in the server's order of preference.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the certificate chain and the private key are, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate first, then any intermediates.
    pub certificate_chain: PathBuf,
    /// The private key of the server's certificate (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not valid PEM, or holds nothing of the kind expected.
    #[error("invalid {what} in {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the file should hold: `certificate` or `private key`.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the pair, e.g. a key that does not match the certificate.
    #[error("unusable certificate and key ({certificate} and {key}): {source}")]
    Rustls {
        /// The certificate chain file.
        certificate: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// rustls's reason.
        source: tokio_rustls::rustls::Error,
    },
}

/// The server's TLS configuration, shared by every listener and reloadable; cloning shares it.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the certificate chain and key that `settings` name.
    pub fn load(settings: TlsSettings) -> Result<TlsConfig, TlsError> {
        let config = build(&settings)?;
        Ok(TlsConfig {
            inner: Arc::new(Inner {
                settings,
                current: RwLock::new(Arc::new(config)),
            }),
        })
    }

    /// Where the certificate chain and key are read from.
    pub fn settings(&self) -> &TlsSettings {
        &self.inner.settings
    }

    /// Reads the files again. On success new connections get the new certificate; on failure
    /// the configuration in force stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.inner.settings)?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// [`TlsConfig::reload`], logging the outcome.
    pub fn reload_and_log(&self) {
        match self.reload() {
            Ok(()) => tracing::info!(
                certificate = %self.inner.settings.certificate_chain.display(),
                "TLS certificate reloaded"
            ),
            Err(error) => tracing::error!(
                %error,
                "TLS certificate not reloaded; the previous one stays in use"
            ),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        TlsAcceptor::from(Arc::clone(&current))
    }
}

fn build(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(&settings.certificate_chain)?;
    let key = read_key(&settings.private_key)?;
    let rustls_error = |source| TlsError::Rustls {
        certificate: settings.certificate_chain.clone(),
        key: settings.private_key.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_error)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |message: String| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error("no CERTIFICATE section".to_owned()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|error| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        message: error.to_string(),
    })
}

/// An accepted connection: plain TCP, or TLS over TCP.
pub enum Connection {
    /// Plain text.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connection {
    /// The client's address.
    pub(crate) fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        let tcp = match self {
            Connection::Plain(tcp) => tcp,
            Connection::Tls(tls) => tls.get_ref().0,
        };
        tcp.peer_addr().ok()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(tcp) => tcp.is_write_vectored(),
            Connection::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections accepted on `listeners`: plain, or through a TLS handshake when `tls` is
/// set. Accepting stops, and the listeners close, when the stream is dropped.
pub(crate) fn incoming(
    listeners: Vec<TcpListener>,
    tls: Option<TlsConfig>,
) -> BoxStream<'static, io::Result<Connection>> {
    let accepted = futures_util::stream::select_all(
        listeners.into_iter().map(TcpListenerStream::new),
    )
    .map(|connection| {
        let connection = connection?;
        // Small replies (an append's answer) must not wait for Nagle's algorithm.
        connection.set_nodelay(true)?;
        Ok::<_, io::Error>(connection)
    });
    let Some(tls) = tls else {
        return accepted.map(|tcp| tcp.map(Connection::Plain)).boxed();
    };
    let (sender, receiver) = mpsc::channel(MAX_HANDSHAKES);
    tokio::spawn(handshake_loop(accepted.boxed(), tls, sender));
    ReceiverStream::new(receiver).boxed()
}

/// Accepts connections and hands each to its own handshake task, until the server drops the
/// stream of connections.
async fn handshake_loop(
    mut accepted: BoxStream<'static, io::Result<TcpStream>>,
    tls: TlsConfig,
    sender: mpsc::Sender<io::Result<Connection>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = sender.closed() => return,
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let tcp = tokio::select! {
            _ = sender.closed() => return,
            next = accepted.next() => match next {
                None => return,
                Some(Ok(tcp)) => tcp,
                Some(Err(error)) => {
                    // The server goes on accepting, as it does for plain connections.
                    if sender.send(Err(error)).await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let acceptor = tls.acceptor();
        let sender = sender.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = tcp.peer_addr().ok();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send(Ok(Connection::Tls(Box::new(stream)))).await;
                }
                Ok(Err(error)) => {
                    tracing::info!(?peer, %error, "TLS handshake failed; connection dropped");
                }
                Err(_) => {
                    tracing::info!(?peer, "TLS handshake timed out; connection dropped");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "factum-tls-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_that_does_not_match_or_a_missing_file_is_refused_and_reload_keeps_the_old_one() {
        let dir = temp_dir("load");
        let (cert_a, key_a) = write_pair(&dir, "a");
        let (_, key_b) = write_pair(&dir, "b");
        let mismatched = TlsConfig::load(TlsSettings {
            certificate_chain: cert_a.clone(),
            private_key: key_b,
        });
        assert!(matches!(mismatched, Err(TlsError::Rustls { .. })));
        let missing = TlsConfig::load(TlsSettings {
            certificate_chain: dir.join("missing.pem"),
            private_key: key_a.clone(),
        });
        assert!(matches!(missing, Err(TlsError::Read { .. })));
        let not_pem = TlsConfig::load(TlsSettings {
            certificate_chain: key_a.clone(),
            private_key: key_a.clone(),
        });
        assert!(matches!(not_pem, Err(TlsError::Pem { .. })));

        let config = TlsConfig::load(TlsSettings {
            certificate_chain: cert_a.clone(),
            private_key: key_a,
        })
        .unwrap();
        let before = Arc::as_ptr(&config.acceptor().config().clone());
        std::fs::write(&cert_a, "garbage").unwrap();
        assert!(config.reload().is_err());
        let after = Arc::as_ptr(&config.acceptor().config().clone());
        assert_eq!(before, after, "a failed reload keeps the configuration");
        assert_eq!(
            config.acceptor().config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
