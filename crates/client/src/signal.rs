//! The signalling WebSocket: JSON frames to and from the server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_proto::{ClientFrame, ClientMessage, ServerFrame, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::auth::error_chain;
use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;

/// An open signalling connection. Dropping it closes the WebSocket.
pub struct SignalConnection {
    user: String,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    incoming: mpsc::UnboundedReceiver<ServerMessage>,
}

impl SignalConnection {
    /// Opens the WebSocket with the access token and waits for the server's hello.
    pub async fn connect(server: &ServerEndpoint, access_token: &str) -> Result<Self> {
        let socket = open(server, access_token).await?;
        tracing::debug!(user = %socket.user, "signalling connected");
        Ok(Self::from_parts(
            socket.user,
            socket.outgoing,
            socket.incoming,
        ))
    }

    /// Wraps the channels of a connection that another task routes frames through.
    pub(crate) fn from_parts(
        user: String,
        outgoing: mpsc::UnboundedSender<ClientMessage>,
        incoming: mpsc::UnboundedReceiver<ServerMessage>,
    ) -> Self {
        Self {
            user,
            outgoing,
            incoming,
        }
    }

    /// Name of the signed-in user, as the server reported it.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn send(&self, message: ClientMessage) -> Result<()> {
        self.outgoing
            .send(message)
            .map_err(|_| ClientError::Disconnected)
    }

    /// Waits for the next frame from the server; `None` once the connection closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        self.incoming.recv().await
    }

    /// Splits the connection in two that send through the same socket: the
    /// first receives the frames that `select` picks, the second the rest.
    /// Once either is dropped, the other receives every frame, so a frame is
    /// lost only when both are gone.
    pub(crate) fn split(
        self,
        select: impl Fn(&ServerMessage) -> bool + Send + 'static,
    ) -> (SignalConnection, SignalConnection) {
        let (selected_tx, selected_rx) = mpsc::unbounded_channel();
        let (rest_tx, rest_rx) = mpsc::unbounded_channel();
        let selected = Self::from_parts(self.user.clone(), self.outgoing.clone(), selected_rx);
        let rest = Self::from_parts(self.user.clone(), self.outgoing.clone(), rest_rx);
        let mut incoming = self.incoming;
        tokio::spawn(async move {
            while let Some(frame) = incoming.recv().await {
                let (first, second) = if select(&frame) {
                    (&selected_tx, &rest_tx)
                } else {
                    (&rest_tx, &selected_tx)
                };
                if let Err(mpsc::error::SendError(frame)) = first.send(frame)
                    && second.send(frame).is_err()
                {
                    return;
                }
            }
        });
        (selected, rest)
    }
}

/// An open WebSocket after the server's hello: frames go out through
/// `outgoing` and come in through `incoming`, which ends when the socket closes.
pub(crate) struct Socket {
    pub user: String,
    pub outgoing: mpsc::UnboundedSender<ClientMessage>,
    pub incoming: mpsc::UnboundedReceiver<ServerMessage>,
}

/// Time for the connection, the TLS handshake, the WebSocket upgrade and the
/// server's hello together. Without a limit a stalled attempt never retries.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the session WebSocket with the access token and waits for the hello.
/// The socket closes once every clone of `outgoing` is dropped. An attempt
/// that takes longer than `OPEN_TIMEOUT` fails as unreachable.
pub(crate) async fn open(server: &ServerEndpoint, access_token: &str) -> Result<Socket> {
    let url = server.websocket_url(hearth_proto::SIGNAL_PATH);
    tokio::time::timeout(
        OPEN_TIMEOUT,
        open_without_timeout(server, &url, access_token),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ClientError::Unreachable {
            url,
            detail: format!("timed out after {} s", OPEN_TIMEOUT.as_secs()),
        })
    })
}

async fn open_without_timeout(
    server: &ServerEndpoint,
    url: &str,
    access_token: &str,
) -> Result<Socket> {
    let mut request = url
        .into_client_request()
        .map_err(|err| ClientError::InvalidServerUrl {
            url: url.to_owned(),
            detail: err.to_string(),
        })?;
    let bearer = HeaderValue::from_str(&format!("Bearer {access_token}"))
        .map_err(|_| ClientError::Unauthorized)?;
    request.headers_mut().insert("Authorization", bearer);

    let connector = tokio_tungstenite::Connector::Rustls(server.tls_config());
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        // Signalling frames are small and latency-bound: no Nagle delay.
        true,
        Some(connector),
    )
    .await
    .map_err(|err| match err {
        tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => {
            ClientError::Unauthorized
        }
        other => ClientError::Unreachable {
            url: url.to_owned(),
            detail: error_chain(&other),
        },
    })?;

    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (incoming_tx, mut incoming) = mpsc::unbounded_channel();

    tokio::spawn(async move {
        while let Some(message) = outgoing_rx.recv().await {
            let text = serde_json::to_string(&ClientFrame::from(message))
                .expect("client frames always serialise");
            if let Err(err) = sink.send(Message::text(text)).await {
                tracing::debug!(error = %err, "signalling send failed");
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            match serde_json::from_str::<ServerFrame>(&text) {
                Ok(frame) => {
                    if incoming_tx.send(frame.message).is_err() {
                        break;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "ignoring an unreadable server frame"),
            }
        }
    });

    let user = match incoming.recv().await {
        Some(ServerMessage::Hello { user, .. }) => user,
        Some(other) => {
            return Err(ClientError::Protocol(format!(
                "expected hello as the first frame, got {other:?}"
            )));
        }
        None => return Err(ClientError::Disconnected),
    };
    Ok(Socket {
        user,
        outgoing,
        incoming,
    })
}
