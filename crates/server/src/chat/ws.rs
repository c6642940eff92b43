//! Chat frames on the session WebSocket.
//!
//! Writes are checked for what can be checked without the database and then
//! queued for the writer, which replies to the connection after commit. The
//! connection does not wait for the commit, so a client may send many
//! messages before the first acknowledgement. `sync` and `history` read on a
//! pooled connection and reply at once.

use hearth_proto::chat::{
    ClientMessageId, ConversationId, MAX_PAGE_EVENTS, MAX_TEXT_BYTES, Presence, Seq,
};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};

use super::error::ChatError;
use super::store::{self, StoredEvent};
use super::writer::{Change, Reply};
use super::{Chat, ConnectionContext};

/// Events in a `history` page when the request gives no limit.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;

/// Size of the event bodies in one `sync_batch` or `history_page` after which
/// the server ends the frame early, so that frames of long messages stay far
/// below a client's WebSocket message limit. At least one event is always
/// sent.
const MAX_FRAME_EVENT_BYTES: usize = 1024 * 1024;

/// Checks a message text against the protocol's limits. Text that is empty or
/// only whitespace would show as an empty bubble, so it is rejected too.
pub fn validate_text(text: &str) -> Result<(), ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::new(
            ErrorCode::InvalidText,
            "message text is empty; send at least one visible character",
        ));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ChatError::new(
            ErrorCode::InvalidText,
            format!(
                "message text is {} bytes, more than the limit of {MAX_TEXT_BYTES} bytes; \
                 split it or send it as an attachment",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn validate_limit(limit: Option<u32>) -> Result<Option<u32>, ChatError> {
    match limit {
        Some(0) => Err(ChatError::invalid(
            "\"limit\" must be at least 1; leave it out for the default",
        )),
        other => Ok(other),
    }
}

impl Chat {
    /// Handles one chat frame from a connection. Failures go back to that
    /// connection as `error` frames; the connection stays open.
    pub async fn handle_frame(&self, context: &ConnectionContext, message: ClientMessage) {
        let (conversation_id, client_id) = request_ids(&message);
        if let Err(error) = self.dispatch(context, message).await {
            let ChatError { code, message } = error;
            tracing::info!(%code, reason = %message, conversation_id = ?conversation_id, "rejected chat frame");
            self.hub.reply(
                context.conn,
                ServerMessage::Error {
                    code,
                    message,
                    call_id: None,
                    conversation_id,
                    client_id,
                },
            );
        }
    }

    async fn dispatch(
        &self,
        context: &ConnectionContext,
        message: ClientMessage,
    ) -> Result<(), ChatError> {
        let user = context.user.clone();
        match message {
            ClientMessage::SendMessage {
                conversation_id,
                client_id,
                text,
                reply_to,
                attachments,
            } => {
                validate_text(&text)?;
                let change = Change::Send {
                    user,
                    conversation_id,
                    client_id,
                    text,
                    reply_to,
                    attachments,
                };
                let reply = Reply::Connection {
                    conn: context.conn,
                    conversation_id,
                    client_id: Some(client_id),
                };
                self.enqueue(change, reply).await
            }
            ClientMessage::EditMessage {
                conversation_id,
                target,
                text,
            } => {
                validate_text(&text)?;
                let change = Change::Edit {
                    user,
                    conversation_id,
                    target,
                    text,
                };
                self.enqueue(change, connection_reply(context, conversation_id))
                    .await
            }
            ClientMessage::DeleteMessage {
                conversation_id,
                target,
            } => {
                let change = Change::Delete {
                    user,
                    conversation_id,
                    target,
                };
                self.enqueue(change, connection_reply(context, conversation_id))
                    .await
            }
            ClientMessage::MarkRead {
                conversation_id,
                seq,
            } => {
                let change = Change::MarkRead {
                    user,
                    conversation_id,
                    seq,
                };
                self.enqueue(change, connection_reply(context, conversation_id))
                    .await
            }
            ClientMessage::Sync {
                conversation_id,
                after,
                limit,
            } => {
                let limit = validate_limit(limit)?;
                self.sync(context, conversation_id, after, limit).await
            }
            ClientMessage::History {
                conversation_id,
                before,
                limit,
            } => {
                let limit = validate_limit(limit)?.unwrap_or(DEFAULT_HISTORY_LIMIT);
                self.history(context, conversation_id, before, limit).await
            }
            ClientMessage::SetPresence { presence } => {
                let away = match presence {
                    Presence::Online => false,
                    Presence::Away => true,
                    Presence::InCall | Presence::Offline => {
                        return Err(ChatError::invalid(
                            "set_presence accepts \"online\" or \"away\"; the server sets \
                             \"in_call\" and \"offline\" itself",
                        ));
                    }
                };
                self.hub.set_away(context.conn, away);
                Ok(())
            }
            other => Err(ChatError::new(
                ErrorCode::InvalidFrame,
                format!(
                    "{} is a call signalling frame, not a chat frame",
                    crate::signal::client_kind(&other).0
                ),
            )),
        }
    }

    /// Sends the events after `after` as `sync_batch` frames, oldest first,
    /// paced so that the connection's queue keeps room for pushed events.
    async fn sync(
        &self,
        context: &ConnectionContext,
        id: ConversationId,
        after: Seq,
        limit: Option<u32>,
    ) -> Result<(), ChatError> {
        let target = {
            let mut conn = self.pool.acquire().await?;
            store::require_member(&mut conn, id, &context.user).await?;
            store::conversation_row(&mut conn, id)
                .await?
                .map_or(0, |row| row.last_seq)
        };

        let mut remaining = limit.map_or(u64::MAX, u64::from);
        let mut cursor = after;
        loop {
            let page_limit =
                u32::try_from(remaining.min(u64::from(MAX_PAGE_EVENTS))).unwrap_or(MAX_PAGE_EVENTS);
            // Each page takes a pooled connection only for its query, so a
            // client that reads slowly does not hold one while the server
            // waits for it.
            let page = {
                let mut conn = self.pool.acquire().await?;
                store::events_after(&mut conn, id, cursor, page_limit).await?
            };
            let exhausted = page.len() < page_limit as usize;
            remaining -= page.len() as u64;
            if let Some(last) = page.last() {
                cursor = last.event.seq;
            }
            let complete = exhausted || cursor >= target;
            let last_page = complete || remaining == 0;

            let frames = split_by_size(page);
            let frame_count = frames.len().max(1);
            let mut frames = frames.into_iter();
            for index in 0..frame_count {
                let events = frames.next().unwrap_or_default();
                let batch = ServerMessage::SyncBatch {
                    conversation_id: id,
                    events,
                    complete: last_page && complete && index + 1 == frame_count,
                };
                let sent = self
                    .hub
                    .reply_paced(context.conn, &context.sync_slots, batch)
                    .await;
                if !sent {
                    return Ok(());
                }
            }
            if last_page {
                return Ok(());
            }
        }
    }

    /// Sends up to `limit` events before `before`, newest first, as one
    /// `history_page`.
    async fn history(
        &self,
        context: &ConnectionContext,
        id: ConversationId,
        before: Seq,
        limit: u32,
    ) -> Result<(), ChatError> {
        let limit = limit.min(MAX_PAGE_EVENTS);
        let mut page = {
            let mut conn = self.pool.acquire().await?;
            store::require_member(&mut conn, id, &context.user).await?;
            // One event more than asked tells whether older ones exist.
            store::events_before(&mut conn, id, before, limit + 1).await?
        };
        let mut has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let mut frames = split_by_size(page).into_iter();
        let events = frames.next().unwrap_or_default();
        if frames.next().is_some() {
            has_more = true;
        }
        self.hub.reply(
            context.conn,
            ServerMessage::HistoryPage {
                conversation_id: id,
                events,
                has_more,
            },
        );
        Ok(())
    }
}

fn connection_reply(context: &ConnectionContext, conversation_id: ConversationId) -> Reply {
    Reply::Connection {
        conn: context.conn,
        conversation_id,
        client_id: None,
    }
}

/// Returns the ids an `error` frame for this request carries so the client can
/// match it.
fn request_ids(message: &ClientMessage) -> (Option<ConversationId>, Option<ClientMessageId>) {
    match message {
        ClientMessage::SendMessage {
            conversation_id,
            client_id,
            ..
        } => (Some(*conversation_id), Some(*client_id)),
        ClientMessage::EditMessage {
            conversation_id, ..
        }
        | ClientMessage::DeleteMessage {
            conversation_id, ..
        }
        | ClientMessage::Sync {
            conversation_id, ..
        }
        | ClientMessage::History {
            conversation_id, ..
        }
        | ClientMessage::MarkRead {
            conversation_id, ..
        } => (Some(*conversation_id), None),
        _ => (None, None),
    }
}

/// Splits events into frames whose bodies add up to at most
/// `MAX_FRAME_EVENT_BYTES`, each with at least one event.
fn split_by_size(events: Vec<StoredEvent>) -> Vec<Vec<hearth_proto::chat::Event>> {
    let mut frames: Vec<Vec<hearth_proto::chat::Event>> = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for stored in events {
        if !current.is_empty() && current_bytes + stored.body_bytes > MAX_FRAME_EVENT_BYTES {
            frames.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += stored.body_bytes;
        current.push(stored.event);
    }
    if !current.is_empty() {
        frames.push(current);
    }
    frames
}
