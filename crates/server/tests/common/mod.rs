//! A real server on 127.0.0.1 with a temporary data directory, plus HTTP and
//! WebSocket clients that trust its self-signed certificate.

#![allow(dead_code)]

pub mod browser;
pub mod chat;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hearth_proto::oauth::TokenResponse;
use hearth_proto::{ClientFrame, ClientMessage, ServerFrame, ServerMessage};
use hearth_server::{Config, RunningServer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PASSWORD: &str = "correct horse battery staple";

/// How long a test waits for a frame that should arrive.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on an ephemeral port with users `alice`, `bob` and `carol`.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        hearth_server::install_crypto_provider();
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: data_dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        adjust(&mut config);
        let server = hearth_server::start(config).await.unwrap();
        for name in ["alice", "bob", "carol"] {
            server.add_user(name, PASSWORD).await.unwrap();
        }

        let tls = Arc::new(client_tls_config(server.certificate_pem()));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .unwrap();
        Self {
            server,
            http,
            tls,
            _data_dir: data_dir,
        }
    }

    /// Returns the server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Posts a form to the token endpoint.
    pub async fn post_token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(hearth_proto::TOKEN_PATH))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in with the password grant and returns the tokens.
    pub async fn sign_in(&self, user: &str) -> TokenResponse {
        let form = [
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
        ];
        let response = self.post_token(&form).await;
        assert_eq!(response.status(), 200, "password grant for {user} failed");
        response.json().await.unwrap()
    }

    /// Opens the signalling WebSocket with `access_token`.
    pub async fn connect_with_token(
        &self,
        access_token: &str,
    ) -> Result<Socket, tungstenite::Error> {
        let url = self
            .url(hearth_proto::SIGNAL_PATH)
            .replacen("https", "wss", 1);
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {access_token}").parse().unwrap(),
        );
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
                .await?;
        Ok(Socket {
            stream,
            pending: VecDeque::new(),
        })
    }

    /// Opens a WebSocket at `path` with a `Sec-WebSocket-Protocol` header, as
    /// a browser sends it.
    pub async fn connect_with_protocols(
        &self,
        path: &str,
        protocols: &str,
    ) -> Result<Socket, tungstenite::Error> {
        let url = self.url(path).replacen("https", "wss", 1);
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let (stream, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
                .await?;
        Ok(Socket {
            stream,
            pending: VecDeque::new(),
        })
    }

    /// Signs in as `user`, opens the signalling WebSocket and reads `hello`.
    pub async fn connect(&self, user: &str) -> Socket {
        let tokens = self.sign_in(user).await;
        let mut socket = self.connect_with_token(&tokens.access_token).await.unwrap();
        let hello = socket.receive().await;
        assert!(
            matches!(hello, ServerMessage::Hello { .. }),
            "expected hello, got {hello:?}"
        );
        socket
    }
}

fn client_tls_config(certificate_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certificate_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames that a `receive_until` skipped, returned first by later reads.
    pending: VecDeque<ServerMessage>,
}

impl Socket {
    pub async fn send(&mut self, message: ClientMessage) {
        let text = serde_json::to_string(&ClientFrame::from(message)).unwrap();
        self.send_text(&text).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream.send(Message::binary(bytes)).await.unwrap();
    }

    /// Returns the next server message: a frame that an earlier
    /// `receive_until` skipped, or else the next from the connection, failing
    /// the test after 5 seconds.
    pub async fn receive(&mut self) -> ServerMessage {
        if let Some(message) = self.pending.pop_front() {
            return message;
        }
        self.receive_new().await
    }

    /// Reads the next frame from the connection, ignoring skipped ones.
    pub async fn receive_new(&mut self) -> ServerMessage {
        loop {
            let next = tokio::time::timeout(RECEIVE_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a server frame")
                .expect("connection closed")
                .expect("WebSocket read failed");
            match next {
                Message::Text(text) => {
                    let frame: ServerFrame = serde_json::from_str(text.as_str()).unwrap();
                    return frame.message;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected WebSocket message {other:?}"),
            }
        }
    }

    /// Reads the next server message that is not a chat push. Accepted and
    /// missed calls are recorded in the callers' direct conversation, so chat
    /// events and presence changes arrive between the call frames.
    pub async fn receive_call(&mut self) -> ServerMessage {
        loop {
            match self.receive().await {
                ServerMessage::Event { .. }
                | ServerMessage::Presence { .. }
                | ServerMessage::ConversationChanged { .. }
                | ServerMessage::ConversationRemoved { .. }
                | ServerMessage::ReadState { .. } => continue,
                other => return other,
            }
        }
    }

    /// Sends a ping and checks that the pong comes back, proving the connection
    /// still works. Other frames that arrive first stay queued.
    pub async fn assert_alive(&mut self) {
        self.send(ClientMessage::Ping { nonce: 42 }).await;
        let pong = self
            .receive_until(|message| match message {
                ServerMessage::Pong { .. } => Some(message.clone()),
                _ => None,
            })
            .await;
        assert_eq!(pong, ServerMessage::Pong { nonce: 42 });
    }

    /// Returns the underlying WebSocket, for tests that send raw frames.
    pub fn into_stream(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }

    pub async fn close(mut self) {
        self.stream.close(None).await.unwrap();
    }
}

/// Returns the error code of an `error` message.
pub fn error_code(message: &ServerMessage) -> Option<hearth_proto::ErrorCode> {
    match message {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}
