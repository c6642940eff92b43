//! Signalling over WebSocket: a thin tokio layer around [`machine::Signalling`].
//!
//! One WebSocket per signed-in device carries both call signalling, which goes
//! through the state machine, and chat, which goes to [`crate::chat::Chat`].

pub mod frame;
pub mod guest;
mod hub;
pub mod machine;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{SinkExt as _, StreamExt as _};
use hearth_proto::chat::ConversationId;
use hearth_proto::{CallId, ClientMessage, ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::accounts::Accounts;
use crate::chat::{Chat, ConnectionContext};
use crate::sfu::{Command as SfuCommand, Sfu};
pub use hub::{CallLog, DEFAULT_RING_TIMEOUT, Hub, OUTBOX_CAPACITY, Outbound};
use machine::{CallState, ConnId, Directory};

/// How long a closing connection may take to write its queued frames before
/// the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Database facts about one frame, looked up before the state machine runs:
/// whether the user an `invite` names exists, and the members of the
/// conversation a `move_call` names.
#[derive(Default)]
struct KnownUser {
    name: String,
    exists: bool,
    members: Option<(ConversationId, Vec<String>)>,
}

impl KnownUser {
    /// A directory in which no user exists and no conversation has members,
    /// for frames that name neither.
    fn none() -> Self {
        Self::default()
    }
}

impl Directory for KnownUser {
    fn user_exists(&self, name: &str) -> bool {
        self.exists && self.name == name
    }

    fn is_member(&self, conversation_id: ConversationId, user: &str) -> bool {
        self.members.as_ref().is_some_and(|(id, members)| {
            *id == conversation_id && members.iter().any(|member| member == user)
        })
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
/// until its session is revoked or its account disabled, or until it falls so
/// far behind that its outbound queue overflows.
pub async fn serve_connection(
    socket: WebSocket,
    chat: Arc<Chat>,
    accounts: Accounts,
    sfu: Sfu,
    user: String,
    session: Session,
) {
    let hub = chat.hub().clone();
    let registration = hub.register(&user);
    let conn = registration.conn;
    let context = ConnectionContext {
        conn,
        user: user.clone(),
        sync_slots: registration.sync_slots,
    };
    let span = tracing::info_span!("signal", user = %user, conn = %conn);
    async move {
        let services = Services {
            chat: &chat,
            accounts: &accounts,
            sfu: &sfu,
        };
        tracing::info!("connected");
        let (sink, mut stream) = socket.split();
        let close_frame = Arc::new(std::sync::Mutex::new(None));
        let mut writer = tokio::spawn(
            write_frames(sink, registration.outbox, close_frame.clone()).in_current_span(),
        );
        let overflowed = registration.overflowed;
        let mut shutdown = hub.shutdown.subscribe();
        let mut session_check = tokio::time::interval(SESSION_CHECK_INTERVAL);
        let mut rejected = RejectedFrames::default();
        let mut fell_behind = false;

        loop {
            let event = tokio::select! {
                received = stream.next() => Some(received),
                _ = shutdown.wait_for(|closing| *closing) => break,
                () = overflowed.notified() => {
                    fell_behind = true;
                    break;
                }
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
                    // Handling a frame can wait: a long `sync` waits for the
                    // client to read earlier batches. Overflow and shutdown
                    // must still end the connection meanwhile.
                    tokio::select! {
                        () = on_text(&services, &context, text.as_str(), &mut rejected) => {}
                        () = overflowed.notified() => {
                            fell_behind = true;
                            break;
                        }
                        _ = shutdown.wait_for(|closing| *closing) => break,
                    }
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
                    tracing::info!(%error, "WebSocket read failed; closing");
                    *close_frame
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                        Some(read_error_close_frame(&error));
                    break;
                }
            }
        }

        hub.unregister(conn);
        sfu.send(SfuCommand::Disconnected { conn });
        if fell_behind {
            // The client stopped reading, so waiting for the writer could take
            // forever. Dropping the socket closes the TCP connection, and the
            // client reconnects and resyncs.
            writer.abort();
            tracing::info!("closed a connection that fell behind");
            return;
        }
        // Unregistering dropped the outbox sender, so the writer sends what is
        // queued and then closes the socket.
        match tokio::time::timeout(CLOSE_GRACE, &mut writer).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "WebSocket writer task failed"),
            Err(_) => {
                writer.abort();
                tracing::info!("client did not read its last frames in time");
            }
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

/// The services a connection's frames go to.
struct Services<'a> {
    chat: &'a Chat,
    accounts: &'a Accounts,
    sfu: &'a Sfu,
}

async fn on_text(
    services: &Services<'_>,
    context: &ConnectionContext,
    text: &str,
    rejected: &mut RejectedFrames,
) {
    let Services {
        chat,
        accounts,
        sfu,
    } = *services;
    let hub = chat.hub();
    let conn = context.conn;
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
    if crate::chat::is_chat_message(&message) {
        chat.handle_frame(context, message).await;
        return;
    }
    let message = match room_command(chat, context, message).await {
        Ok(Some(command)) => {
            sfu.send(command);
            return;
        }
        Ok(None) => return,
        Err(message) => message,
    };

    let invited = match &message {
        ClientMessage::Invite { call_id, .. } => Some(*call_id),
        _ => None,
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
                members: None,
            }
        }
        ClientMessage::MoveCall {
            call_id,
            conversation_id,
        } => match chat.room_members(*conversation_id, &context.user).await {
            Ok(members) => KnownUser {
                members: Some((*conversation_id, members)),
                ..KnownUser::none()
            },
            Err(error) => {
                hub.reply(
                    conn,
                    ServerMessage::Error {
                        code: error.code,
                        message: error.message,
                        call_id: Some(*call_id),
                        conversation_id: Some(*conversation_id),
                        client_id: None,
                    },
                );
                return;
            }
        },
        _ => KnownUser::none(),
    };
    hub.handle(conn, message, &directory);
    if let Some(call_id) = invited
        && hub.call_state(call_id) == Some(CallState::Inviting)
    {
        schedule_ring_timeout(hub.clone(), call_id);
    }
}

/// Turns a room frame into a command for the SFU, checking membership on
/// `join_room`. Returns `Ok(None)` when the frame was answered with an
/// error, and gives back any frame that is not about rooms.
async fn room_command(
    chat: &Chat,
    context: &ConnectionContext,
    message: ClientMessage,
) -> Result<Option<SfuCommand>, ClientMessage> {
    let conn = context.conn;
    let command = match message {
        ClientMessage::JoinRoom {
            conversation_id,
            sdp,
            screen_mid,
        } => match chat.room_members(conversation_id, &context.user).await {
            Ok(members) => SfuCommand::Join {
                conn,
                user: context.user.clone(),
                conversation_id,
                members,
                offer: sdp,
                screen_mid,
            },
            Err(error) => {
                tracing::info!(
                    %conversation_id,
                    code = %error.code,
                    "rejected a room join"
                );
                chat.hub().reply(
                    conn,
                    ServerMessage::Error {
                        code: error.code,
                        message: error.message,
                        call_id: None,
                        conversation_id: Some(conversation_id),
                        client_id: None,
                    },
                );
                return Ok(None);
            }
        },
        other => return room_update_command(conn, other).map(Some),
    };
    Ok(Some(command))
}

/// Turns a room frame other than `join_room` into a command for the SFU, and
/// gives back any other frame.
fn room_update_command(conn: ConnId, message: ClientMessage) -> Result<SfuCommand, ClientMessage> {
    let command = match message {
        ClientMessage::RoomAnswer {
            conversation_id,
            sdp,
        } => SfuCommand::Answer {
            conn,
            conversation_id,
            sdp,
        },
        ClientMessage::LeaveRoom { conversation_id } => SfuCommand::Leave {
            conn,
            conversation_id,
        },
        ClientMessage::SetRoomMedia {
            conversation_id,
            audio_muted,
            video_off,
            video_width,
            video_height,
        } => SfuCommand::Media {
            conn,
            conversation_id,
            audio_muted,
            video_off,
            video_size: (video_width > 0 && video_height > 0)
                .then_some((video_width, video_height)),
        },
        ClientMessage::SetRoomViews {
            conversation_id,
            views,
            max_video_bps,
        } => SfuCommand::Views {
            conn,
            conversation_id,
            views: views
                .iter()
                .map(|view| (view.participant_id, (view.width, view.height)))
                .collect(),
            max_video_bps: max_video_bps.filter(|bps| *bps > 0).map(u64::from),
        },
        ClientMessage::SetRoomScreen {
            conversation_id,
            sharing,
        } => SfuCommand::Screen {
            conn,
            conversation_id,
            sharing,
        },
        other => return Err(other),
    };
    Ok(command)
}

/// Returns the conversation of a room frame, or `None` for other frames.
fn room_conversation(message: &ClientMessage) -> Option<ConversationId> {
    match message {
        ClientMessage::JoinRoom {
            conversation_id, ..
        }
        | ClientMessage::RoomAnswer {
            conversation_id, ..
        }
        | ClientMessage::LeaveRoom { conversation_id }
        | ClientMessage::SetRoomMedia {
            conversation_id, ..
        }
        | ClientMessage::SetRoomViews {
            conversation_id, ..
        } => Some(*conversation_id),
        _ => None,
    }
}

/// Cancels the call if it still rings after the hub's ring timeout.
fn schedule_ring_timeout(hub: Arc<Hub>, call_id: CallId) {
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            tokio::time::sleep(hub.ring_timeout()).await;
            hub.expire_ringing(call_id);
        }
        .instrument(span),
    );
}

/// Returns the close frame for a connection whose incoming data broke the
/// WebSocket protocol: 1007 for a text frame that is not UTF-8 (RFC 6455
/// section 8.1), 1002 for anything else.
fn read_error_close_frame(error: &axum::Error) -> CloseFrame {
    // axum hides tungstenite's error type, so its message is all there is to
    // tell the cases apart.
    let text = error.to_string();
    let (code, reason) = if text.contains("UTF-8") {
        (close_code::INVALID, "text frame is not valid UTF-8")
    } else {
        (close_code::PROTOCOL, "WebSocket protocol error")
    };
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Writes queued frames to the socket. Frames that are already queued go out
/// with one flush, so a burst of pushed events costs few TLS records. Ends
/// with `close_frame` when the reader set one.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Outbound>,
    close_frame: Arc<std::sync::Mutex<Option<CloseFrame>>>,
) {
    while let Some(frame) = outbox.recv().await {
        if let Err(error) = sink.feed(Message::Text(frame.text)).await {
            tracing::debug!(%error, "WebSocket write failed");
            return;
        }
        drop(frame.permit);
        while let Ok(frame) = outbox.try_recv() {
            if let Err(error) = sink.feed(Message::Text(frame.text)).await {
                tracing::debug!(%error, "WebSocket write failed");
                return;
            }
            drop(frame.permit);
        }
        if let Err(error) = sink.flush().await {
            tracing::debug!(%error, "WebSocket write failed");
            return;
        }
    }
    let close_frame = close_frame
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(frame) = close_frame {
        let _ = sink.send(Message::Close(Some(frame))).await;
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
pub(crate) fn client_kind(message: &ClientMessage) -> (&'static str, Option<CallId>) {
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
        ClientMessage::MoveCall { call_id, .. } => ("move_call", Some(*call_id)),
        ClientMessage::CallSwitched { call_id } => ("call_switched", Some(*call_id)),
        ClientMessage::Ping { .. } => ("ping", None),
        ClientMessage::SendMessage { .. } => ("send_message", None),
        ClientMessage::EditMessage { .. } => ("edit_message", None),
        ClientMessage::DeleteMessage { .. } => ("delete_message", None),
        ClientMessage::Sync { .. } => ("sync", None),
        ClientMessage::History { .. } => ("history", None),
        ClientMessage::MarkRead { .. } => ("mark_read", None),
        ClientMessage::SetPresence { .. } => ("set_presence", None),
        ClientMessage::JoinRoom { .. } => ("join_room", None),
        ClientMessage::RoomAnswer { .. } => ("room_answer", None),
        ClientMessage::LeaveRoom { .. } => ("leave_room", None),
        ClientMessage::SetRoomMedia { .. } => ("set_room_media", None),
        ClientMessage::SetRoomViews { .. } => ("set_room_views", None),
        ClientMessage::SetRoomScreen { .. } => ("set_room_screen", None),
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
        ServerMessage::CallMoving { .. } => "call_moving",
        ServerMessage::CallSwitched { .. } => "call_switched",
        ServerMessage::Pong { .. } => "pong",
        ServerMessage::Event { .. } => "event",
        ServerMessage::MessageAck { .. } => "message_ack",
        ServerMessage::SyncBatch { .. } => "sync_batch",
        ServerMessage::HistoryPage { .. } => "history_page",
        ServerMessage::ReadState { .. } => "read_state",
        ServerMessage::Presence { .. } => "presence",
        ServerMessage::ConversationChanged { .. } => "conversation_changed",
        ServerMessage::ConversationRemoved { .. } => "conversation_removed",
        ServerMessage::RoomJoined { .. } => "room_joined",
        ServerMessage::RoomOffer { .. } => "room_offer",
        ServerMessage::RoomState { .. } => "room_state",
        ServerMessage::RoomLeft { .. } => "room_left",
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
