//! A real `hearth-server` on loopback for the client tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_client::ServerEndpoint;
use hearth_client::session::{ConnectionState, Credentials, Session, SessionConfig};
use hearth_client::signal::SignalConnection;
use hearth_media::PeerConfig;
use hearth_proto::chat::{ConversationId, EventBody};
use hearth_proto::oauth::TokenResponse;
use hearth_server::RunningServer;

pub struct TestServer {
    pub server: RunningServer,
    pub endpoint: ServerEndpoint,
    _data_dir: tempfile::TempDir,
}

pub async fn start_server() -> TestServer {
    // Logs go to the test's captured output, shown when it fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "hearth_client=debug".into()))
        .with_test_writer()
        .try_init();
    let data_dir = tempfile::tempdir().unwrap();
    let server = hearth_server::start(hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let endpoint = ServerEndpoint::new(&server.base_url(), Some(server.certificate_pem())).unwrap();
    TestServer {
        server,
        endpoint,
        _data_dir: data_dir,
    }
}

impl TestServer {
    /// Creates a user and opens its signalling connection.
    pub async fn connect(&self, user: &str) -> SignalConnection {
        let password = format!("{user}-password");
        self.server.add_user(user, &password).await.unwrap();
        let tokens = hearth_client::auth::sign_in_with_password(&self.endpoint, user, &password)
            .await
            .unwrap();
        SignalConnection::connect(&self.endpoint, &tokens.access_token)
            .await
            .unwrap()
    }
}

pub fn loopback_peer() -> PeerConfig {
    PeerConfig {
        udp_addrs: vec!["127.0.0.1:0".parse().unwrap()],
        ..Default::default()
    }
}

pub fn media(relative: &str) -> PathBuf {
    let dir = std::env::var_os("HEARTH_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/media"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "test media {} is missing; set HEARTH_MEDIA_DIR",
        path.display()
    );
    path
}

impl TestServer {
    /// Creates `user` with the password `<user>-password`.
    pub async fn add_user(&self, user: &str) {
        self.server
            .add_user(user, &format!("{user}-password"))
            .await
            .unwrap();
    }

    /// Signs `user` in and returns fresh tokens.
    pub async fn sign_in(&self, user: &str) -> TokenResponse {
        hearth_client::auth::sign_in_with_password(
            &self.endpoint,
            user,
            &format!("{user}-password"),
        )
        .await
        .unwrap()
    }

    /// Returns an endpoint for `addr` that trusts this server's certificate,
    /// for reaching it through a [`Proxy`] or for a port without a listener.
    pub fn endpoint_at(&self, addr: SocketAddr) -> ServerEndpoint {
        ServerEndpoint::new(
            &format!("https://{addr}"),
            Some(self.server.certificate_pem()),
        )
        .unwrap()
    }

    /// Signs `user` in and starts a session through `endpoint` on `database`.
    pub async fn session_via(
        &self,
        endpoint: ServerEndpoint,
        user: &str,
        database: &Path,
    ) -> Session {
        let tokens = self.sign_in(user).await;
        Session::start(SessionConfig {
            server: endpoint,
            user: user.to_owned(),
            credentials: Credentials::Tokens(tokens),
            keyring: None,
            database: database.to_owned(),
        })
        .unwrap()
    }

    /// Signs `user` in and starts a session connected directly to the server,
    /// waiting until it is online.
    pub async fn online_session(&self, user: &str, database: &Path) -> Session {
        let session = self
            .session_via(self.endpoint.clone(), user, database)
            .await;
        wait_online(&session).await;
        session
    }
}

/// Waits up to 10 s for a session to be online.
pub async fn wait_online(session: &Session) {
    let mut state = session.watch_state();
    let online = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|state| *state == ConnectionState::Online),
    )
    .await;
    assert!(
        matches!(online, Ok(Ok(_))),
        "{} is not online: {:?}",
        session.user(),
        session.state()
    );
}

/// Waits up to 10 s for `condition` to hold, checking every 50 ms.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the texts of a conversation's messages as `user`'s session has
/// them stored, oldest first.
pub async fn message_texts(session: &Session, id: ConversationId) -> Vec<String> {
    let page = session.history(id, None, 500).await.unwrap();
    page.events
        .into_iter()
        .filter_map(|stored| match stored.event.body {
            EventBody::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Forward,
    /// Close new connections at once, as if the server were down.
    Refuse,
    /// Forward what the client sends but drop the server's responses.
    DropReplies,
}

/// A TCP forwarder on loopback between a client and the server. It passes
/// TLS through untouched and can cut connections, refuse new ones or drop
/// the server's responses, to stage network failures.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    cut: tokio::sync::watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(ProxyMode::Forward));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let accept = tokio::spawn({
            let mode = Arc::clone(&mode);
            let cut = cut.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if *mode.lock().unwrap() == ProxyMode::Refuse {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        continue;
                    };
                    tokio::spawn(forward(client, server, Arc::clone(&mode), cut.subscribe()));
                }
            }
        });
        Self {
            addr,
            mode,
            cut,
            accept,
        }
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Closes every open connection.
    pub fn cut_all(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

async fn forward(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    mode: Arc<Mutex<ProxyMode>>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = server_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            if *mode.lock().unwrap() == ProxyMode::DropReplies {
                continue;
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = cut.changed() => {}
    }
}
