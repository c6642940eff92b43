//! Trusting a server whose certificate the operating system does not: the
//! user compares the certificate's SHA-256 fingerprint with the one their
//! administrator gave them, and the client then pins that certificate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::error::{ClientError, Result};

/// How long [`probe_certificate`] waits for the TCP connection and the handshake.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns the SHA-256 fingerprint of a DER certificate as colon-separated
/// uppercase hex, the form `hearth-server` prints at start.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    hex.join(":")
}

/// Normalises a fingerprint typed or pasted by a user: spaces, colons and
/// case do not matter. Returns `None` unless it has 64 hex digits.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let pairs: Vec<&str> = (0..32).map(|i| &digits[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

/// What a TLS handshake with a server showed about its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateProbe {
    /// Whether the operating system's roots trust the certificate for this host.
    pub trusted_by_system: bool,
    /// The server certificate's fingerprint, see [`certificate_fingerprint`].
    pub fingerprint: String,
    /// Why the system roots rejected it, when they did.
    pub rejection: Option<String>,
}

/// Connects to `base_url` (`https://host:port`) and reports whether the
/// system trusts its certificate, with the certificate's fingerprint. No
/// HTTP request is sent.
pub async fn probe_certificate(base_url: &str) -> Result<CertificateProbe> {
    let (host, port) = host_and_port(base_url)?;
    let server_name = ServerName::try_from(host.clone()).map_err(|_| invalid_url(base_url))?;
    crate::server::install_crypto_provider();

    let recorder = Arc::new(RecordingVerifier::new(system_verifier()));
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&recorder) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let unreachable = |detail: String| ClientError::Unreachable {
        url: base_url.to_owned(),
        detail,
    };
    let handshake = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|err| unreachable(format!("the TLS handshake failed: {err}")))
    };
    tokio::time::timeout(PROBE_TIMEOUT, handshake)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))??;

    let seen = recorder
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .ok_or_else(|| unreachable("the server sent no certificate".into()))?;
    Ok(seen)
}

/// Builds the rustls configuration for a server: the system roots, plus
/// the one certificate with fingerprint `pin` when given.
pub(crate) fn pinned_config(pin: &str) -> Result<rustls::ClientConfig> {
    let pin = normalize_fingerprint(pin).ok_or_else(|| ClientError::InvalidInput {
        what: "certificate fingerprint".into(),
        detail: format!("{pin:?} is not a SHA-256 fingerprint of 64 hex digits"),
    })?;
    let verifier = PinnedVerifier {
        system: system_verifier(),
        pin,
        provider: provider(),
    };
    Ok(rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The verifier of the operating system's roots, or `None` on a machine
/// without any, where only pinned certificates can be trusted.
fn system_verifier() -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken system certificate must not stop the client from starting.
        let _ = roots.add(cert);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .ok()
}

fn verify_with_system(
    system: Option<&WebPkiServerVerifier>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
    ocsp_response: &[u8],
    now: UnixTime,
) -> std::result::Result<ServerCertVerified, TlsError> {
    match system {
        Some(system) => {
            system.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        }
        None => Err(TlsError::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )),
    }
}

fn host_and_port(base_url: &str) -> Result<(String, u16)> {
    let url = url::Url::parse(base_url).map_err(|_| invalid_url(base_url))?;
    if url.scheme() != "https" {
        return Err(invalid_url(base_url));
    }
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(invalid_url(base_url)),
    };
    Ok((host, url.port_or_known_default().unwrap_or(443)))
}

fn invalid_url(url: &str) -> ClientError {
    ClientError::InvalidServerUrl {
        url: url.to_owned(),
        detail: "expected an https:// address such as https://chat.example.org:7443".into(),
    }
}

/// Accepts every certificate and records what the system verifier thought of it.
#[derive(Debug)]
struct RecordingVerifier {
    system: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<CertificateProbe>>,
}

impl RecordingVerifier {
    fn new(system: Option<Arc<WebPkiServerVerifier>>) -> Self {
        Self {
            system,
            provider: provider(),
            seen: Mutex::new(None),
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, TlsError> {
        let verdict = verify_with_system(
            self.system.as_deref(),
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CertificateProbe {
            trusted_by_system: verdict.is_ok(),
            fingerprint: certificate_fingerprint(end_entity),
            rejection: verdict.err().map(|err| err.to_string()),
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Trusts what the system trusts, and the one certificate the user confirmed.
#[derive(Debug)]
struct PinnedVerifier {
    system: Option<Arc<WebPkiServerVerifier>>,
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, TlsError> {
        if certificate_fingerprint(end_entity) == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        verify_with_system(
            self.system.as_deref(),
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
