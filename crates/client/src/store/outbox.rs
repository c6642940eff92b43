//! The outbox: messages written on this device that the server has not
//! acknowledged yet, in the order they were written.

use std::path::PathBuf;

use hearth_proto::chat::{Attachment, ClientMessageId, ConversationId, Seq};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, json_column, now_ms, to_json, uuid_column};
use crate::error::Result;

/// A file of an outbox message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxAttachment {
    /// Uploaded to the message's conversation.
    Uploaded { attachment: Attachment },
    /// A local file to upload before the message is sent, because the message
    /// was written while the server was unreachable.
    Pending { path: PathBuf },
}

/// A message to add to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub conversation_id: ConversationId,
    pub text: String,
    pub reply_to: Option<Seq>,
    pub attachments: Vec<OutboxAttachment>,
}

/// One unsent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in sending order.
    pub position: i64,
    pub client_id: ClientMessageId,
    pub conversation_id: ConversationId,
    pub text: String,
    pub reply_to: Option<Seq>,
    pub attachments: Vec<OutboxAttachment>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

const COLUMNS: &str =
    "position, client_id, conversation_id, text, reply_to, attachments, created_at_ms";

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        position: row.get(0)?,
        client_id: uuid_column(row, 1)?,
        conversation_id: uuid_column(row, 2)?,
        text: row.get(3)?,
        reply_to: row.get(4)?,
        attachments: json_column(row, 5)?,
        created_at_ms: row.get(6)?,
    })
}

impl Store {
    /// Appends a message to the outbox under a new client id.
    pub fn push_outbox(&mut self, message: OutboxMessage) -> Result<OutboxEntry> {
        let client_id = ClientMessageId::new_v4();
        let created_at_ms = now_ms();
        self.conn.execute(
            "INSERT INTO outbox (client_id, conversation_id, text, reply_to, attachments, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                client_id.to_string(),
                message.conversation_id.to_string(),
                message.text,
                message.reply_to,
                to_json(&message.attachments),
                created_at_ms
            ],
        )?;
        Ok(OutboxEntry {
            position: self.conn.last_insert_rowid(),
            client_id,
            conversation_id: message.conversation_id,
            text: message.text,
            reply_to: message.reply_to,
            attachments: message.attachments,
            created_at_ms,
        })
    }

    /// Returns every outbox entry in sending order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM outbox ORDER BY position"))?;
        let rows = statement
            .query_map([], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Returns the outbox entry with `client_id`, if it is still unsent.
    pub fn outbox_entry(&self, client_id: ClientMessageId) -> Result<Option<OutboxEntry>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox WHERE client_id = ?1"),
                [client_id.to_string()],
                read_row,
            )
            .optional()?)
    }

    /// Removes an entry, once the server acknowledged it or rejected it for
    /// good. Returns whether it existed.
    pub fn remove_outbox(&mut self, client_id: ClientMessageId) -> Result<bool> {
        let removed = self.conn.execute(
            "DELETE FROM outbox WHERE client_id = ?1",
            [client_id.to_string()],
        )?;
        Ok(removed > 0)
    }

    /// Replaces the attachments of an entry, after uploading pending files.
    pub fn set_outbox_attachments(
        &mut self,
        client_id: ClientMessageId,
        attachments: &[OutboxAttachment],
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET attachments = ?1 WHERE client_id = ?2",
            params![to_json(&attachments), client_id.to_string()],
        )?;
        Ok(())
    }
}

/// Reads outbox rows in order until the end or the first error, and returns
/// the rows read plus that error.
pub(super) fn read_until_error(conn: &Connection) -> (Vec<OutboxEntry>, Option<rusqlite::Error>) {
    let mut rows = Vec::new();
    let mut statement =
        match conn.prepare(&format!("SELECT {COLUMNS} FROM outbox ORDER BY position")) {
            Ok(statement) => statement,
            Err(err) => return (rows, Some(err)),
        };
    let mut cursor = match statement.query([]) {
        Ok(cursor) => cursor,
        Err(err) => return (rows, Some(err)),
    };
    loop {
        match cursor.next() {
            Ok(Some(row)) => match read_row(row) {
                Ok(entry) => rows.push(entry),
                Err(err) => return (rows, Some(err)),
            },
            Ok(None) => return (rows, None),
            Err(err) => return (rows, Some(err)),
        }
    }
}

/// Writes salvaged rows into a new database, keeping their order, client ids
/// and creation times.
pub(super) fn restore(conn: &mut Connection, entries: &[OutboxEntry]) -> Result<()> {
    let tx = conn.transaction()?;
    for entry in entries {
        tx.execute(
            "INSERT OR IGNORE INTO outbox (client_id, conversation_id, text, reply_to, attachments, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                entry.client_id.to_string(),
                entry.conversation_id.to_string(),
                entry.text,
                entry.reply_to,
                to_json(&entry.attachments),
                entry.created_at_ms
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> OutboxMessage {
        OutboxMessage {
            conversation_id: ConversationId::new_v4(),
            text: text.into(),
            reply_to: Some(3),
            attachments: vec![OutboxAttachment::Pending {
                path: PathBuf::from("/tmp/report.pdf"),
            }],
        }
    }

    #[test]
    fn outbox_keeps_order() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let first = store.push_outbox(message("one")).unwrap();
        let second = store.push_outbox(message("two")).unwrap();
        let third = store.push_outbox(message("three")).unwrap();

        assert!(store.remove_outbox(second.client_id).unwrap());
        assert!(!store.remove_outbox(second.client_id).unwrap());
        let left = store.outbox().unwrap();
        assert_eq!(left, vec![first, third]);
    }

    #[test]
    fn attachments_round_trip() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let entry = store.push_outbox(message("with file")).unwrap();
        let uploaded = vec![OutboxAttachment::Uploaded {
            attachment: Attachment {
                id: uuid::Uuid::new_v4(),
                name: "report.pdf".into(),
                content_type: "application/pdf".into(),
                size_bytes: 10,
            },
        }];
        store
            .set_outbox_attachments(entry.client_id, &uploaded)
            .unwrap();
        let stored = store.outbox_entry(entry.client_id).unwrap().unwrap();
        assert_eq!(stored.attachments, uploaded);
    }
}
