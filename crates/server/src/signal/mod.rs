//! Signalling over WebSocket: a thin tokio layer around [`machine::Signalling`].

pub mod frame;
pub mod machine;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use hearth_proto::{CallId, ClientMessage, ErrorCode, ServerFrame, ServerMessage};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use crate::accounts::Accounts;
use machine::{ConnId, Directory, Outgoing, Signalling};

/// Messages queued per connection before new ones are dropped.
const OUTBOX_CAPACITY: usize = 256;

/// Shared signalling state of the server: the state machine and one outbox per
/// open connection.
pub struct Hub {
    state: Mutex<HubState>,
    next_conn: AtomicU64,
    shutdown: watch::Sender<bool>,
}

struct HubState {
    machine: Signalling,
    outboxes: HashMap<ConnId, mpsc::Sender<ServerMessage>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(HubState {
                machine: Signalling::new(),
                outboxes: HashMap::new(),
            }),
            next_conn: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Asks every open connection to close.
    pub fn close_all(&self) {
        self.shutdown.send_replace(true);
    }

    fn register(&self, user: &str) -> (ConnId, mpsc::Receiver<ServerMessage>) {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let mut state = self.lock();
        state.outboxes.insert(conn, sender);
        let out = state.machine.connect(conn, user);
        state.deliver(out);
        (conn, receiver)
    }

    fn unregister(&self, conn: ConnId) {
        let mut state = self.lock();
        state.outboxes.remove(&conn);
        let out = state.machine.disconnect(conn);
        for outgoing in &out {
            tracing::debug!(to = %outgoing.to, kind = server_kind(&outgoing.message), "ended call of closed connection");
        }
        state.deliver(out);
    }

    fn handle(&self, conn: ConnId, message: ClientMessage, directory: &dyn Directory) {
        let (kind, call_id) = client_kind(&message);
        tracing::debug!(kind, call_id = ?call_id, "received frame");
        let mut state = self.lock();
        let out = state.machine.handle(conn, message, directory);
        for outgoing in &out {
            if let ServerMessage::Error {
                code,
                message,
                call_id,
                ..
            } = &outgoing.message
            {
                tracing::warn!(%code, call_id = ?call_id, reason = %message, "rejected {kind}");
            }
        }
        state.deliver(out);
    }

    fn reply(&self, conn: ConnId, message: ServerMessage) {
        self.lock().deliver(vec![Outgoing { to: conn, message }]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while the lock was held can only come from a bug in the state
        // machine. Keep serving the other connections with the state as it is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HubState {
    fn deliver(&self, out: Vec<Outgoing>) {
        for Outgoing { to, message } in out {
            let Some(outbox) = self.outboxes.get(&to) else {
                continue;
            };
            // NOTE: a client that stops reading loses messages once its outbox is
            // full, and its calls can then get stuck until it disconnects.
            if let Err(error) = outbox.try_send(message) {
                tracing::warn!(conn = %to, %error, "dropped signalling message for a slow connection");
            }
        }
    }
}

/// The existence of the one user an `invite` names, looked up before the state
/// machine runs because the lookup needs the database.
struct KnownUser {
    name: String,
    exists: bool,
}

impl Directory for KnownUser {
    fn user_exists(&self, name: &str) -> bool {
        self.exists && self.name == name
    }
}

/// How often an open connection checks that its session was not revoked and
/// its account not disabled.
const SESSION_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The access token that opened a connection, rechecked while it stays open.
pub struct Session {
    pub tokens: crate::tokens::Tokens,
    pub access_token: crate::Secret,
}

/// Returns whether the connection's session has ended. A database error
/// keeps the connection open.
async fn session_revoked(session: &Session) -> bool {
    match session.tokens.session_active(&session.access_token).await {
        Ok(active) => {
            if !active {
                tracing::info!("session revoked or account disabled; closing");
            }
            !active
        }
        Err(error) => {
            tracing::warn!(%error, "failed to recheck the session");
            false
        }
    }
}

/// Serves one authenticated WebSocket connection until either side closes it,
/// or until its session is revoked or its account disabled.
pub async fn serve_connection(
    socket: WebSocket,
    hub: Arc<Hub>,
    accounts: Accounts,
    user: String,
    session: Session,
) {
    let (conn, outbox) = hub.register(&user);
    let span = tracing::info_span!("signal", user = %user, conn = %conn);
    async move {
        tracing::info!("connected");
        let (sink, mut stream) = socket.split();
        let writer = tokio::spawn(write_frames(sink, outbox).in_current_span());
        let mut shutdown = hub.shutdown.subscribe();
        let mut session_check = tokio::time::interval(SESSION_CHECK_INTERVAL);
        let mut rejected = RejectedFrames::default();

        loop {
            let event = tokio::select! {
                received = stream.next() => Some(received),
                _ = shutdown.wait_for(|closing| *closing) => break,
                _ = session_check.tick() => None,
            };
            // The session check runs outside `select!`, whose shutdown branch
            // holds a lock guard that must not live across an await.
            let Some(received) = event else {
                if session_revoked(&session).await {
                    let message =
                        "the session was revoked or the account disabled; sign in again".to_owned();
                    hub.reply(conn, error_message(ErrorCode::SessionRevoked, message));
                    break;
                }
                continue;
            };
            match received {
                Some(Ok(Message::Text(text))) => {
                    on_text(&hub, &accounts, conn, text.as_str(), &mut rejected).await
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if rejected.count() {
                        tracing::warn!(
                            len = bytes.len(),
                            rejected_so_far = rejected.0,
                            "rejected binary frame"
                        );
                    }
                    let message =
                        "binary frames are not supported; send JSON text frames".to_owned();
                    hub.reply(conn, error_message(ErrorCode::InvalidFrame, message));
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "WebSocket read failed");
                    break;
                }
            }
        }

        hub.unregister(conn);
        // Unregistering dropped the outbox sender, so the writer sends what is
        // queued and then closes the socket.
        if let Err(error) = writer.await {
            tracing::warn!(%error, "WebSocket writer task failed");
        }
        tracing::info!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Counts the frames a connection sent that could not be decoded, so that a
/// client sending garbage in a loop cannot flood the log: the first
/// `LOGGED_REJECTS` are logged, then one in every `REJECT_LOG_INTERVAL`.
#[derive(Default)]
struct RejectedFrames(u64);

const LOGGED_REJECTS: u64 = 10;
const REJECT_LOG_INTERVAL: u64 = 1000;

impl RejectedFrames {
    /// Counts one rejected frame and returns whether to log it.
    fn count(&mut self) -> bool {
        self.0 += 1;
        self.0 <= LOGGED_REJECTS || self.0.is_multiple_of(REJECT_LOG_INTERVAL)
    }
}

async fn on_text(
    hub: &Hub,
    accounts: &Accounts,
    conn: ConnId,
    text: &str,
    rejected: &mut RejectedFrames,
) {
    let message = match frame::decode(text) {
        Ok(message) => message,
        Err(error) => {
            if rejected.count() {
                tracing::warn!(
                    code = %error.code,
                    reason = %error.message,
                    rejected_so_far = rejected.0,
                    "rejected frame"
                );
            }
            hub.reply(conn, error_message(error.code, error.message));
            return;
        }
    };

    let directory = match &message {
        ClientMessage::Invite { callee, .. } => {
            let exists = match accounts.user_exists(callee).await {
                Ok(exists) => exists,
                Err(error) => {
                    tracing::error!(%error, "failed to look up callee");
                    let message = "failed to look up the callee; try again".to_owned();
                    hub.reply(conn, error_message(ErrorCode::Internal, message));
                    return;
                }
            };
            KnownUser {
                name: callee.clone(),
                exists,
            }
        }
        _ => KnownUser {
            name: String::new(),
            exists: false,
        },
    };
    hub.handle(conn, message, &directory);
}

async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<ServerMessage>,
) {
    while let Some(message) = outbox.recv().await {
        let text = match serde_json::to_string(&ServerFrame::from(message)) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "failed to encode server frame");
                continue;
            }
        };
        if let Err(error) = sink.send(Message::Text(text.into())).await {
            tracing::debug!(%error, "WebSocket write failed");
            return;
        }
    }
    let _ = sink.close().await;
}

fn error_message(code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error {
        code,
        message,
        call_id: None,
        conversation_id: None,
        client_id: None,
    }
}

/// Returns the wire `type` and call id of a client message, for logs that must
/// not contain SDP bodies.
fn client_kind(message: &ClientMessage) -> (&'static str, Option<CallId>) {
    match message {
        ClientMessage::Invite { call_id, .. } => ("invite", Some(*call_id)),
        ClientMessage::Ringing { call_id } => ("ringing", Some(*call_id)),
        ClientMessage::Accept { call_id } => ("accept", Some(*call_id)),
        ClientMessage::Decline { call_id, .. } => ("decline", Some(*call_id)),
        ClientMessage::Cancel { call_id } => ("cancel", Some(*call_id)),
        ClientMessage::HangUp { call_id } => ("hang_up", Some(*call_id)),
        ClientMessage::Offer { call_id, .. } => ("offer", Some(*call_id)),
        ClientMessage::Answer { call_id, .. } => ("answer", Some(*call_id)),
        ClientMessage::Candidate { call_id, .. } => ("candidate", Some(*call_id)),
        ClientMessage::Ping { .. } => ("ping", None),
        ClientMessage::SendMessage { .. } => ("send_message", None),
        ClientMessage::EditMessage { .. } => ("edit_message", None),
        ClientMessage::DeleteMessage { .. } => ("delete_message", None),
        ClientMessage::Sync { .. } => ("sync", None),
        ClientMessage::History { .. } => ("history", None),
        ClientMessage::MarkRead { .. } => ("mark_read", None),
        ClientMessage::SetPresence { .. } => ("set_presence", None),
    }
}

fn server_kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Hello { .. } => "hello",
        ServerMessage::Incoming { .. } => "incoming",
        ServerMessage::Ringing { .. } => "ringing",
        ServerMessage::Accepted { .. } => "accepted",
        ServerMessage::Declined { .. } => "declined",
        ServerMessage::Cancelled { .. } => "cancelled",
        ServerMessage::HungUp { .. } => "hung_up",
        ServerMessage::Offer { .. } => "offer",
        ServerMessage::Answer { .. } => "answer",
        ServerMessage::Candidate { .. } => "candidate",
        ServerMessage::Pong { .. } => "pong",
        ServerMessage::Event { .. } => "event",
        ServerMessage::MessageAck { .. } => "message_ack",
        ServerMessage::SyncBatch { .. } => "sync_batch",
        ServerMessage::HistoryPage { .. } => "history_page",
        ServerMessage::ReadState { .. } => "read_state",
        ServerMessage::Presence { .. } => "presence",
        ServerMessage::ConversationChanged { .. } => "conversation_changed",
        ServerMessage::ConversationRemoved { .. } => "conversation_removed",
        ServerMessage::Error { .. } => "error",
    }
}

#[cfg(test)]
mod rejected_frames_tests {
    use super::*;

    #[test]
    fn logs_first_rejects_then_one_in_interval() {
        let mut rejected = RejectedFrames::default();
        let logged: Vec<u64> = (1..=3000).filter(|_| rejected.count()).collect();
        let mut expected: Vec<u64> = (1..=LOGGED_REJECTS).collect();
        expected.extend([1000, 2000, 3000]);
        assert_eq!(logged, expected);
    }
}
