//! Starting and stopping an embedded server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;

use crate::accounts::{AccountError, Accounts};
use crate::authorize::Authorizer;
use crate::authorize::store::AuthorizationStore;
use crate::chat::Chat;
use crate::config::Config;
use crate::http::{AppState, router};
use crate::secret::Secret;
use crate::signal::Hub;
use crate::tokens::Tokens;

/// How long `shutdown` waits for open HTTP requests to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Installs ring as the process-wide rustls crypto provider, unless a provider is
/// already installed. Clients in the same process (tests, the CLI's demo) that
/// build rustls configurations without naming a provider then agree with the
/// server.
pub fn install_crypto_provider() {
    // An error only means that some provider is installed already, which is fine:
    // the server names ring explicitly for its own configuration.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    local_addr: SocketAddr,
    certificate_pem: String,
    accounts: Accounts,
    hub: Arc<Hub>,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

/// Opens the database, loads or generates the TLS certificate, binds the listen
/// address and starts serving. Returns once the socket is bound.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    install_crypto_provider();
    let pool = crate::db::open(&config.data_dir).await?;
    let tls = crate::tls::load_or_generate(&config)?;

    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    listener
        .set_nonblocking(true)
        .context("failed to make the listening socket non-blocking")?;
    let local_addr = listener
        .local_addr()
        .context("failed to read the bound address")?;

    let federation = match &config.oidc {
        Some(oidc) => Some(crate::oidc::Federation::new(oidc)?),
        None => None,
    };
    let authorizer = Arc::new(Authorizer {
        store: AuthorizationStore::new(pool.clone()),
        attempts: Default::default(),
        federation,
    });
    let accounts = Accounts::new(pool.clone());
    let tokens = Tokens::new(
        pool.clone(),
        config.access_token_ttl_secs,
        config.refresh_token_ttl_secs,
    );
    let hub = Arc::new(Hub::with_ring_timeout(Duration::from_secs(
        config.ring_timeout_secs,
    )));
    let sfu = crate::sfu::Sfu::start(
        &crate::sfu::media_ips(local_addr.ip()),
        config.listen.port(),
        hub.clone(),
        config.room_video_codecs.clone(),
    )
    .await?;
    let guests = crate::guest::GuestStore::new(pool.clone());
    let chat = Chat::start(
        pool,
        hub.clone(),
        &config.data_dir,
        config.max_attachment_bytes,
    )
    .await?;
    let app = router(AppState {
        accounts: accounts.clone(),
        tokens,
        chat,
        authorizer,
        sfu,
        guests,
    });

    let handle = axum_server::Handle::new();
    // Signalling frames are small and latency-bound, so Nagle's algorithm
    // (with delayed ACKs, up to 40 ms per frame) must be off.
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(tls.server_config))
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener)
        .context("failed to set up the TLS listener")?
        .acceptor(acceptor)
        .handle(handle.clone());
    let task = tokio::spawn(async move {
        if let Err(error) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(%error, "server stopped with an error");
        }
    });

    tracing::info!(
        cert = %tls.cert_path.display(),
        sha256 = %tls.fingerprint,
        "TLS certificate"
    );
    tracing::info!("listening on https://{local_addr}");
    Ok(RunningServer {
        local_addr,
        certificate_pem: tls.cert_pem,
        accounts,
        hub,
        handle,
        task,
    })
}

impl RunningServer {
    /// Returns the bound address, with the real port when the config asked for 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the URL clients use, such as `https://127.0.0.1:7443`. A server
    /// listening on all interfaces is reached through loopback.
    pub fn base_url(&self) -> String {
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("https://{}", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// Returns the PEM of the server's certificate chain, for clients to trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Creates an account.
    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), AccountError> {
        self.accounts.add_user(name, &Secret::new(password)).await
    }

    /// Returns the account storage of this server.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Closes all signalling connections, stops accepting connections, waits up
    /// to 5 seconds for open requests and stops.
    pub async fn shutdown(self) {
        self.hub.close_all();
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "server task failed");
        }
        tracing::info!("server stopped");
    }
}
