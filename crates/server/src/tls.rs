//! TLS certificate loading, and generation of a self-signed certificate when none
//! is configured.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The server's certificate and the rustls configuration built from it.
pub struct TlsIdentity {
    pub cert_path: PathBuf,
    /// PEM text of the certificate chain.
    pub cert_pem: String,
    /// SHA-256 of the leaf certificate's DER, as colon-separated uppercase hex.
    pub fingerprint: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Loads the configured certificate, or the generated one under
/// `data_dir/tls/`, generating it on first start.
pub fn load_or_generate(config: &Config) -> anyhow::Result<TlsIdentity> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => {
            let dir = config.data_dir.join("tls");
            let paths = (dir.join("cert.pem"), dir.join("key.pem"));
            if !paths.0.exists() || !paths.1.exists() {
                generate_self_signed(&dir, &paths.0, &paths.1, config.listen.ip())?;
            }
            paths
        }
        _ => anyhow::bail!("set both tls_cert and tls_key, or neither"),
    };
    load(&cert_path, &key_path)
}

fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsIdentity> {
    let cert_pem = std::fs::read_to_string(cert_path)
        .with_context(|| format!("failed to read TLS certificate {}", cert_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in TLS certificate {}", cert_path.display()))?;
    let Some(leaf) = chain.first() else {
        anyhow::bail!("no certificate found in {}", cert_path.display());
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("failed to read TLS private key {}", key_path.display()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("failed to select TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "TLS certificate {} does not match private key {}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsIdentity {
        cert_path: cert_path.to_owned(),
        cert_pem,
        fingerprint,
        server_config: Arc::new(server_config),
    })
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1`, `::1` and the
/// listen address (when it is a specific address) to `cert_path` and `key_path`.
fn generate_self_signed(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    listen_ip: IpAddr,
) -> anyhow::Result<()> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen_ip.is_unspecified() && !listen_ip.is_loopback() {
        names.push(listen_ip.to_string());
    }
    // NOTE: the certificate is generated once. If the listen address changes later,
    // delete `tls/` in the data directory to get a certificate for the new address.
    let certified = rcgen::generate_simple_self_signed(names.clone())
        .context("failed to generate a self-signed TLS certificate")?;

    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create directory {}", dir.display()))?;
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, certified.cert.pem())
        .with_context(|| format!("failed to write {}", cert_path.display()))?;
    tracing::info!(path = %cert_path.display(), ?names, "generated self-signed TLS certificate");
    Ok(())
}

/// Writes a file readable only by its owner (mode 0600 on Unix).
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("failed to write {}", path.display()))
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
