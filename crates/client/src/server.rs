//! The server's address and the TLS trust used for every connection to it.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{ClientError, Result};

/// Server address and the certificates the client trusts for it.
#[derive(Clone)]
pub struct ServerEndpoint {
    base_url: String,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEndpoint")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ServerEndpoint {
    /// Creates an endpoint for `base_url` (`https://host:port`). The client
    /// trusts the operating system's roots plus `extra_ca_pem`, which is how a
    /// server with a private CA or a self-signed certificate is trusted.
    pub fn new(base_url: &str, extra_ca_pem: Option<&str>) -> Result<Self> {
        let trimmed = checked_base_url(base_url)?;
        install_crypto_provider();

        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A broken system certificate must not stop the client from starting.
            let _ = roots.add(cert);
        }
        if let Some(pem) = extra_ca_pem {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|err| {
                        ClientError::InvalidCertificate(format!("not a PEM certificate: {err}"))
                    })?;
            if certs.is_empty() {
                return Err(ClientError::InvalidCertificate(
                    "the file contains no PEM certificate".into(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|err| ClientError::InvalidCertificate(err.to_string()))?;
            }
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            base_url: trimmed.to_owned(),
            tls: Arc::new(tls),
        })
    }

    /// Creates an endpoint that trusts the operating system's roots and the
    /// one certificate whose SHA-256 fingerprint is `fingerprint`: a server
    /// with a private CA or a self-signed certificate that the user confirmed.
    pub fn with_pinned_certificate(base_url: &str, fingerprint: &str) -> Result<Self> {
        let trimmed = checked_base_url(base_url)?;
        install_crypto_provider();
        let tls = crate::trust::pinned_config(fingerprint)?;
        Ok(Self {
            base_url: trimmed.to_owned(),
            tls: Arc::new(tls),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Returns the URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Returns the WebSocket URL of `path` on this server.
    pub fn websocket_url(&self, path: &str) -> String {
        format!("wss://{}{path}", &self.base_url["https://".len()..])
    }

    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }

    pub(crate) fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|err| ClientError::Protocol(format!("cannot build the HTTP client: {err}")))
    }
}

fn checked_base_url(base_url: &str) -> Result<&str> {
    let trimmed = base_url.trim_end_matches('/');
    let valid = trimmed
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && url::Url::parse(trimmed).is_ok());
    if !valid {
        return Err(ClientError::InvalidServerUrl {
            url: base_url.to_owned(),
            detail: "expected an https:// address such as https://chat.example.org:7443".into(),
        });
    }
    Ok(trimmed)
}

/// Installs ring as the process-wide rustls provider unless one is installed.
pub fn install_crypto_provider() {
    // An error only means another part of the process installed a provider first.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
