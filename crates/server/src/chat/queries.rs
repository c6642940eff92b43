//! Lookups that the writer thread runs inside its transaction, over rusqlite.
//!
//! Statements go through `prepare_cached`, so each is parsed once per
//! connection.

use hearth_proto::ErrorCode;
use hearth_proto::chat::{ConversationId, Role, Seq};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::error::ChatError;
use super::store::{self, ConversationRow, seq_to_sql, sql_to_u64};

pub fn conversation_row(
    conn: &Connection,
    id: ConversationId,
) -> rusqlite::Result<Option<ConversationRow>> {
    conn.prepare_cached(store::CONVERSATION_ROW_SQL)?
        .query_row(params![id.to_string()], |row| {
            let kind: String = row.get(0)?;
            Ok(ConversationRow {
                kind: store::kind_from_sql(&kind),
                name: row.get(1)?,
                last_seq: sql_to_u64(row.get(2)?),
                created_at_ms: row.get(3)?,
            })
        })
        .optional()
}

/// Returns the members with their roles, in the order they joined.
pub fn members(conn: &Connection, id: ConversationId) -> rusqlite::Result<Vec<(String, Role)>> {
    let mut statement = conn.prepare_cached(store::MEMBERS_SQL)?;
    let rows = statement.query_map(params![id.to_string()], |row| {
        let role: String = row.get(1)?;
        Ok((row.get(0)?, store::role_from_sql(&role)))
    })?;
    rows.collect()
}

/// Counts the messages from members other than `user` after `after` that are
/// not deleted.
pub fn unread_count(
    conn: &Connection,
    id: ConversationId,
    user: &str,
    after: Seq,
) -> rusqlite::Result<u64> {
    let count: i64 = conn
        .prepare_cached(store::UNREAD_COUNT_SQL)?
        .query_row(params![id.to_string(), seq_to_sql(after), user], |row| {
            row.get(0)
        })?;
    Ok(sql_to_u64(count))
}

/// Returns whether an account named `name` exists.
pub fn user_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM users WHERE name = ?")?
        .query_row(params![name], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
}

/// The state of one message, for edits, deletes and replies.
pub struct MessageRow {
    /// Row id in `events`, which is also the row id in `message_search`.
    pub id: i64,
    pub sender: String,
    pub deleted: bool,
}

/// Looks up the message with sequence number `seq`. Returns `None` when no
/// event has that number or the event is not a message.
pub fn message(
    conn: &Connection,
    id: ConversationId,
    seq: Seq,
) -> rusqlite::Result<Option<MessageRow>> {
    conn.prepare_cached(store::MESSAGE_SQL)?
        .query_row(params![id.to_string(), seq_to_sql(seq)], |row| {
            Ok(MessageRow {
                id: row.get(0)?,
                sender: row.get(1)?,
                deleted: row.get(2)?,
            })
        })
        .optional()
}

/// Looks up a message that exists and is not deleted, or fails with
/// `message_not_found`.
pub fn live_message(
    conn: &Connection,
    id: ConversationId,
    seq: Seq,
) -> Result<MessageRow, ChatError> {
    match message(conn, id, seq)? {
        Some(row) if !row.deleted => Ok(row),
        Some(_) => Err(ChatError::new(
            ErrorCode::MessageNotFound,
            format!("message {seq} in conversation {id} was deleted"),
        )),
        None => Err(ChatError::new(
            ErrorCode::MessageNotFound,
            format!("conversation {id} has no message with seq {seq}"),
        )),
    }
}
