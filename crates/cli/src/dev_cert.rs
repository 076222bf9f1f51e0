//! `factum dev-cert`: a local certificate authority and a server certificate signed by it, for
//! running `factum serve` over TLS on a development machine.
//!
//! Writes `ca.pem` (the CA's certificate: clients trust it, e.g. `tlsCaFile=ca.pem`),
//! `server.pem` and `server.key` (for `--tls-cert` and `--tls-key`), valid for `localhost`,
//! `127.0.0.1` and `::1`. The CA's private key is not kept: that CA can sign nothing else. A
//! file already there is never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The directory `factum dev-cert` writes to when none is given.
pub const DEFAULT_OUT: &str = "factum-dev-cert";

/// The names the server certificate is valid for.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// `factum dev-cert`'s options.
#[derive(Debug, Args)]
pub struct DevCertArgs {
    /// The directory to write ca.pem, server.pem and server.key into (created if missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

/// Writes the CA and the server pair, then prints how to use them.
pub fn run(args: DevCertArgs) -> anyhow::Result<()> {
    let out = args.out;
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the directory {}", out.display()))?;
    let ca_path = out.join("ca.pem");
    let cert_path = out.join("server.pem");
    let key_path = out.join("server.key");
    for path in [&ca_path, &cert_path, &key_path] {
        anyhow::ensure!(
            !path.exists(),
            "{} already exists: remove it, or choose another directory with --out",
            path.display()
        );
    }

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Factum development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>(),
    )?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    write_new(&ca_path, ca_cert.pem().as_bytes(), false)?;
    write_new(&cert_path, server_cert.pem().as_bytes(), false)?;
    write_new(&key_path, server_key.serialize_pem().as_bytes(), true)?;

    let shown = |path: &Path| path.display().to_string();
    let lines = [
        format!(
            "wrote {} (the development CA), {} and {} (for localhost, 127.0.0.1 and ::1)",
            shown(&ca_path),
            shown(&cert_path),
            shown(&key_path)
        ),
        format!(
            "serve:   factum serve --tls-cert {} --tls-key {}",
            shown(&cert_path),
            shown(&key_path)
        ),
        format!(
            "connect: kurrentdb://USER:PASSWORD@localhost:2113?tls=true&tlsCaFile={}",
            shown(&ca_path)
        ),
        "for development only: clients must trust ca.pem, never a system-wide trust store"
            .to_owned(),
    ];
    for line in lines {
        crate::commands::print_line(&line)?;
    }
    Ok(())
}

/// Writes a file that must not exist yet; `private` makes it readable by its owner only.
fn write_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
