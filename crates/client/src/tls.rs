//! TLS for connections to a server: the certificate authorities of a `tlsCaFile`, the rustls
//! configuration a [`TlsTrust`] stands for, and the verifier of `tlsVerifyCert=false`.

use std::path::Path;
use std::sync::Arc;

use factum_core::Error;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::url::TlsTrust;

impl TlsTrust {
    /// A rustls client configuration that trusts the server as this says, without ALPN
    /// protocols (the caller sets those it speaks): for other connections to the same server
    /// than the gRPC one, such as `factum status`' HTTP/1.1 scrape.
    ///
    /// Errors: [`Error::InvalidRequest`] for a CA file that cannot be read or holds no
    /// certificate.
    pub fn rustls_config(&self) -> Result<ClientConfig, Error> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let config = match self {
            TlsTrust::CaFile(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in ca_certificates(path)? {
                    roots.add(certificate).map_err(|error| {
                        Error::invalid_request(format!(
                            "tlsCaFile {}: a certificate that cannot be a trust root: {error}",
                            path.display()
                        ))
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            TlsTrust::AnyCertificate => builder
                .dangerous()
                .with_custom_certificate_verifier(any_certificate()),
        };
        Ok(config.with_no_client_auth())
    }
}

/// The process' default crypto provider if one is installed, ring's otherwise (as tonic does).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(crypto::ring::default_provider()))
}

/// The PEM text of a `tlsCaFile`, checked to hold at least one certificate: a wrong file
/// would otherwise only show as every server being untrusted.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, Error> {
    let pem = std::fs::read(path).map_err(|error| {
        Error::invalid_request(format!("cannot read tlsCaFile {}: {error}", path.display()))
    })?;
    parse_certificates(&pem, path)?;
    Ok(pem)
}

/// The certificates of a `tlsCaFile`.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    parse_certificates(&read_ca_file(path)?, path)
}

fn parse_certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            Error::invalid_request(format!("tlsCaFile {}: {error}", path.display()))
        })?;
    if certificates.is_empty() {
        return Err(Error::invalid_request(format!(
            "tlsCaFile {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The verifier of `tlsVerifyCert=false`: any certificate is accepted as the server's. The
/// handshake's signatures are still checked (the server holds the key of the certificate it
/// sent), which keeps the connection encrypted to whoever answered, but nothing says who that
/// is.
pub fn any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(AnyCertificate(provider()))
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
