//! The guest WebSocket: a connection that may only take part in one
//! conversation's group call.
//!
//! A guest connection carries `join_room`, `room_answer`, `leave_room`,
//! `set_room_media`, `set_room_views` for its credential's conversation, and
//! `ping`. Every other frame gets a `forbidden` error and nothing else: no
//! chat, no history, no calls, no other conversations.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use hearth_proto::guest::GUEST_WEBSOCKET_PROTOCOL;
use hearth_proto::{ClientMessage, ErrorCode, ServerFrame};
use tracing::Instrument as _;

use super::machine::ConnId;
use super::{error_message, frame, room_conversation, room_update_command, write_frames};
use crate::chat::{Chat, ChatError};
use crate::guest::{GuestError, GuestSession, GuestStore};
use crate::http::AppState;
use crate::secret::Secret;
use crate::sfu::{Command as SfuCommand, Sfu};

/// How often an open guest connection checks that its invitation is still
/// valid.
const CREDENTIAL_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Largest WebSocket message a guest may send. An SDP answer from a browser
/// with several forwarded streams stays well below it.
const MAX_GUEST_MESSAGE_BYTES: usize = 256 * 1024;

/// Returns the guest credential from `Sec-WebSocket-Protocol: hearth-guest,
/// <credential>`.
fn credential_from_protocols(headers: &HeaderMap) -> Option<Secret> {
    let value = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let mut entries = value.split(',').map(str::trim);
    if entries.next()? != GUEST_WEBSOCKET_PROTOCOL {
        return None;
    }
    entries
        .next()
        .filter(|credential| !credential.is_empty())
        .map(Secret::new)
}

/// Upgrades a guest's request. A request without a credential gets 401; one
/// with an invalid credential is upgraded and then gets an `error` frame with
/// the reason and is closed, because a browser cannot read the body of a
/// failed upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(credential) = credential_from_protocols(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            format!(
                "missing guest credential; open the WebSocket with the protocols \
                 [\"{GUEST_WEBSOCKET_PROTOCOL}\", <credential>]"
            ),
        )
            .into_response();
    };
    let authenticated = state.guests.authenticate(&credential).await;
    let chat = state.chat.clone();
    let sfu = state.sfu.clone();
    let guests = state.guests.clone();
    upgrade
        .protocols([GUEST_WEBSOCKET_PROTOCOL])
        .max_message_size(MAX_GUEST_MESSAGE_BYTES)
        .max_frame_size(MAX_GUEST_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            match authenticated {
                Ok(session) => {
                    let guest = Guest {
                        chat,
                        sfu,
                        guests,
                        credential,
                        session,
                    };
                    serve(socket, guest).await;
                }
                Err(error) => reject(socket, error).await,
            }
        })
}

/// Sends the reason a credential was rejected and closes the socket. The
/// connection never reaches the hub, so it gets no `hello`.
async fn reject(mut socket: WebSocket, error: GuestError) {
    tracing::info!(reason = %error, "rejected a guest connection");
    let error = ChatError::from(error);
    let frame = ServerFrame::from(error_message(error.code, error.message));
    match serde_json::to_string(&frame) {
        Ok(text) => {
            let _ = socket.send(Message::Text(text.into())).await;
        }
        Err(error) => tracing::error!(%error, "failed to encode an error frame"),
    }
    let _ = socket.close().await;
}

enum Event {
    Received(Option<Result<Message, axum::Error>>),
    Check,
}

/// One guest connection's services and credential.
struct Guest {
    chat: Arc<Chat>,
    sfu: Sfu,
    guests: GuestStore,
    credential: Secret,
    session: GuestSession,
}

async fn serve(socket: WebSocket, guest: Guest) {
    let hub = guest.chat.hub().clone();
    let registration = hub.register(&guest.session.user);
    let conn = registration.conn;
    let span = tracing::info_span!(
        "guest",
        guest = %guest.session.user,
        conversation = %guest.session.conversation_id,
        invitation = %guest.session.invitation_id,
        conn = %conn
    );
    async move {
        tracing::info!("guest connected");
        let (sink, mut stream) = socket.split();
        let close_frame = Arc::new(std::sync::Mutex::new(None));
        let writer = tokio::spawn(
            write_frames(sink, registration.outbox, close_frame).in_current_span(),
        );
        let mut shutdown = hub.shutdown.subscribe();
        let mut check = tokio::time::interval(CREDENTIAL_CHECK_INTERVAL);
        loop {
            // Frames and checks are handled outside `select!`, whose shutdown
            // branch holds a lock guard that must not live across an await.
            let event = tokio::select! {
                received = stream.next() => Event::Received(received),
                _ = shutdown.wait_for(|closing| *closing) => break,
                () = registration.overflowed.notified() => break,
                _ = check.tick() => Event::Check,
            };
            match event {
                Event::Received(Some(Ok(Message::Text(text)))) => {
                    on_text(&guest, conn, text.as_str()).await;
                }
                Event::Received(Some(Ok(Message::Binary(_)))) => hub.reply(
                    conn,
                    error_message(
                        ErrorCode::InvalidFrame,
                        "binary frames are not supported; send JSON text frames".to_owned(),
                    ),
                ),
                Event::Received(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Event::Received(Some(Ok(Message::Close(_)) | Err(_)) | None) => break,
                Event::Check => match guest.guests.authenticate(&guest.credential).await {
                    Ok(_) => {}
                    Err(GuestError::Database(error)) => {
                        tracing::warn!(%error, "failed to recheck a guest credential");
                    }
                    Err(error) => {
                        tracing::info!(reason = %error, "guest credential no longer valid; closing");
                        let error = ChatError::from(error);
                        hub.reply(conn, error_message(error.code, error.message));
                        break;
                    }
                },
            }
        }
        hub.unregister(conn);
        guest.sfu.send(SfuCommand::Disconnected { conn });
        if tokio::time::timeout(super::CLOSE_GRACE, writer).await.is_err() {
            tracing::info!("guest did not read its last frames in time");
        }
        tracing::info!("guest disconnected");
    }
    .instrument(span)
    .await;
}

async fn on_text(guest: &Guest, conn: ConnId, text: &str) {
    let hub = guest.chat.hub();
    let message = match frame::decode(text) {
        Ok(message) => message,
        Err(error) => {
            hub.reply(conn, error_message(error.code, error.message));
            return;
        }
    };
    let allowed = guest.session.conversation_id;
    match room_conversation(&message) {
        Some(conversation_id) if conversation_id == allowed => {}
        Some(conversation_id) => {
            let message = format!(
                "this guest credential is for the call of conversation {allowed}, not \
                 {conversation_id}; ask a member of that conversation for an invitation"
            );
            hub.reply(conn, error_message(ErrorCode::Forbidden, message));
            return;
        }
        None if matches!(message, ClientMessage::Ping { .. }) => {
            hub.handle(conn, message, &super::KnownUser::none());
            return;
        }
        None => {
            let (kind, _) = super::client_kind(&message);
            tracing::info!(kind, "rejected a frame that guests may not send");
            let message = format!(
                "guests may not send {kind}: a guest credential allows only join_room, \
                 room_answer, leave_room, set_room_media, set_room_views and ping in the call \
                 of conversation {allowed}; sign in with an account for anything else"
            );
            hub.reply(conn, error_message(ErrorCode::Forbidden, message));
            return;
        }
    }
    let command = match message {
        // Guests cannot share a screen (`set_room_screen` is not theirs to
        // send), so a reserved screen section is ignored.
        ClientMessage::JoinRoom {
            conversation_id,
            sdp,
            screen_mid: _,
        } => match guest.chat.call_members(conversation_id).await {
            Ok(members) => SfuCommand::Join {
                conn,
                user: guest.session.user.clone(),
                conversation_id,
                members,
                offer: sdp,
                screen_mid: None,
            },
            Err(error) => {
                hub.reply(conn, error_message(error.code, error.message));
                return;
            }
        },
        other => match room_update_command(conn, other) {
            Ok(command) => command,
            Err(_) => return,
        },
    };
    guest.sfu.send(command);
}
