//! Conversations, their members and this user's read position in each.

use hearth_proto::chat::{Conversation, ConversationId, ConversationKind, Member, Role, Seq};
use rusqlite::{OptionalExtension, params};

use super::{Store, uuid_column};
use crate::error::Result;

/// Number of newest events that the first sync of a conversation fetches.
/// Older events come through `history` when a UI scrolls back.
pub const INITIAL_SYNC_EVENTS: u64 = 200;

/// How far back the first sync reaches, at most, to include unread messages.
pub const INITIAL_SYNC_MAX_EVENTS: u64 = 1000;

/// Progress of the local copy of a conversation's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncState {
    /// Every event in `(floor_seq, synced_seq]` is stored.
    pub synced_seq: Seq,
    /// Events at or below this were never fetched.
    pub floor_seq: Seq,
    /// Newest sequence number known to exist on the server.
    pub last_seq: Seq,
}

fn kind_text(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    }
}

fn kind_from_text(text: &str) -> ConversationKind {
    match text {
        "direct" => ConversationKind::Direct,
        _ => ConversationKind::Group,
    }
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Member => "member",
    }
}

fn role_from_text(text: &str) -> Role {
    match text {
        "owner" => Role::Owner,
        _ => Role::Member,
    }
}

/// Returns the first event a new conversation syncs from: the newest
/// `INITIAL_SYNC_EVENTS`, or back to the read position if that is further,
/// but never more than `INITIAL_SYNC_MAX_EVENTS`.
fn initial_floor(last_seq: Seq, last_read_seq: Seq) -> Seq {
    let newest = last_seq.saturating_sub(INITIAL_SYNC_EVENTS);
    let limit = last_seq.saturating_sub(INITIAL_SYNC_MAX_EVENTS);
    newest.min(last_read_seq).max(limit)
}

impl Store {
    /// Stores a conversation as the server describes it. Returns true when it
    /// was not stored before.
    pub fn upsert_conversation(&mut self, conversation: &Conversation) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let id = conversation.id.to_string();
        let existed: bool = tx
            .query_row("SELECT 1 FROM conversations WHERE id = ?1", [&id], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if existed {
            tx.execute(
                "UPDATE conversations SET kind = ?2, name = ?3, created_at_ms = ?4,
                     last_seq = max(last_seq, ?5)
                 WHERE id = ?1",
                params![
                    id,
                    kind_text(conversation.kind),
                    conversation.name,
                    conversation.created_at_ms,
                    conversation.last_seq
                ],
            )?;
        } else {
            let floor = initial_floor(conversation.last_seq, conversation.last_read_seq);
            tx.execute(
                "INSERT INTO conversations (id, kind, name, created_at_ms, last_seq, synced_seq, floor_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    id,
                    kind_text(conversation.kind),
                    conversation.name,
                    conversation.created_at_ms,
                    conversation.last_seq,
                    floor
                ],
            )?;
        }
        tx.execute("DELETE FROM members WHERE conversation_id = ?1", [&id])?;
        for member in &conversation.members {
            tx.execute(
                "INSERT OR REPLACE INTO members (conversation_id, user, role) VALUES (?1, ?2, ?3)",
                params![id, member.user, role_text(member.role)],
            )?;
        }
        upsert_read_state(&tx, &id, conversation.last_read_seq, conversation.unread)?;
        tx.commit()?;
        Ok(!existed)
    }

    /// Returns every conversation, the most recently active first, with the
    /// read position and unread count stored on this device.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        let mut statement = self.conn.prepare(
            "SELECT c.id FROM conversations c
             ORDER BY coalesce((SELECT max(at_ms) FROM events e WHERE e.conversation_id = c.id),
                               c.created_at_ms) DESC, c.id",
        )?;
        let ids = statement
            .query_map([], |row| uuid_column(row, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut conversations = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(conversation) = self.conversation(id)? {
                conversations.push(conversation);
            }
        }
        Ok(conversations)
    }

    /// Returns one conversation, or `None` when it is not stored.
    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        let key = id.to_string();
        let row = self
            .conn
            .query_row(
                "SELECT c.kind, c.name, c.created_at_ms, c.last_seq, c.floor_seq,
                        coalesce(r.last_read_seq, 0), coalesce(r.server_unread, 0)
                 FROM conversations c LEFT JOIN read_state r ON r.conversation_id = c.id
                 WHERE c.id = ?1",
                [&key],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Seq>(3)?,
                        row.get::<_, Seq>(4)?,
                        row.get::<_, Seq>(5)?,
                        row.get::<_, u64>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((kind, name, created_at_ms, last_seq, floor_seq, last_read_seq, server_unread)) =
            row
        else {
            return Ok(None);
        };
        let unread = if last_read_seq >= floor_seq {
            self.count_unread(id, last_read_seq)?
        } else {
            // NOTE: the local events do not reach back to the read position, so
            // this is the server's count from the last conversation fetch or
            // read-state frame, which misses messages that arrived since.
            server_unread
        };
        Ok(Some(Conversation {
            id,
            kind: kind_from_text(&kind),
            name,
            members: self.members(&key)?,
            last_seq,
            last_read_seq,
            unread,
            created_at_ms,
        }))
    }

    fn members(&self, key: &str) -> Result<Vec<Member>> {
        let mut statement = self
            .conn
            .prepare("SELECT user, role FROM members WHERE conversation_id = ?1 ORDER BY user")?;
        let members = statement
            .query_map([key], |row| {
                Ok(Member {
                    user: row.get(0)?,
                    role: role_from_text(&row.get::<_, String>(1)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(members)
    }

    /// Deletes a conversation with its events, members and read state.
    /// Returns whether it was stored.
    pub fn remove_conversation(&mut self, id: ConversationId) -> Result<bool> {
        let key = id.to_string();
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM message_fts WHERE rowid IN (SELECT id FROM events WHERE conversation_id = ?1)",
            [&key],
        )?;
        tx.execute("DELETE FROM events WHERE conversation_id = ?1", [&key])?;
        let removed = tx.execute("DELETE FROM conversations WHERE id = ?1", [&key])?;
        tx.commit()?;
        Ok(removed > 0)
    }

    /// Returns the ids of every stored conversation.
    pub fn conversation_ids(&self) -> Result<Vec<ConversationId>> {
        let mut statement = self.conn.prepare("SELECT id FROM conversations")?;
        let ids = statement
            .query_map([], |row| uuid_column(row, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids)
    }

    /// Returns the progress of the local copy of a conversation.
    pub fn sync_state(&self, id: ConversationId) -> Result<Option<SyncState>> {
        Ok(self
            .conn
            .query_row(
                "SELECT synced_seq, floor_seq, last_seq FROM conversations WHERE id = ?1",
                [id.to_string()],
                |row| {
                    Ok(SyncState {
                        synced_seq: row.get(0)?,
                        floor_seq: row.get(1)?,
                        last_seq: row.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Moves this device's read position forward to `seq` and marks it for
    /// sending. Returns false when the position was already at or past `seq`.
    pub fn set_read_locally(&mut self, id: ConversationId, seq: Seq) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE read_state SET last_read_seq = ?2, unsent = 1
             WHERE conversation_id = ?1 AND last_read_seq < ?2",
            params![id.to_string(), seq],
        )?;
        Ok(changed > 0)
    }

    /// Applies a read position reported by the server.
    pub fn apply_read_state(
        &mut self,
        id: ConversationId,
        last_read_seq: Seq,
        unread: u64,
    ) -> Result<()> {
        upsert_read_state(&self.conn, &id.to_string(), last_read_seq, unread)
    }

    /// Returns the read positions set on this device but not sent yet.
    pub fn unsent_reads(&self) -> Result<Vec<(ConversationId, Seq)>> {
        let mut statement = self
            .conn
            .prepare("SELECT conversation_id, last_read_seq FROM read_state WHERE unsent = 1")?;
        let rows = statement
            .query_map([], |row| Ok((uuid_column(row, 0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records that the read position `seq` was sent.
    pub fn mark_read_sent(&mut self, id: ConversationId, seq: Seq) -> Result<()> {
        self.conn.execute(
            "UPDATE read_state SET unsent = 0 WHERE conversation_id = ?1 AND last_read_seq <= ?2",
            params![id.to_string(), seq],
        )?;
        Ok(())
    }

    /// Returns the group conversations named `name`.
    pub fn groups_named(&self, name: &str) -> Result<Vec<ConversationId>> {
        let mut statement = self.conn.prepare(
            "SELECT id FROM conversations WHERE kind = 'group' AND name = ?1 ORDER BY id",
        )?;
        let ids = statement
            .query_map([name], |row| uuid_column(row, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids)
    }

    /// Returns the direct conversation between this user and `user`.
    pub fn direct_with(&self, user: &str) -> Result<Option<ConversationId>> {
        let me = self.user.clone();
        Ok(self
            .conn
            .query_row(
                "SELECT c.id FROM conversations c
                 WHERE c.kind = 'direct'
                   AND EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user = ?1)
                   AND (?1 = ?2 OR EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user = ?2))",
                params![user, me],
                |row| uuid_column(row, 0),
            )
            .optional()?)
    }
}

/// Takes the server's read position unless this device has a newer one that
/// it has not sent yet.
fn upsert_read_state(
    conn: &rusqlite::Connection,
    key: &str,
    last_read_seq: Seq,
    unread: u64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO read_state (conversation_id, last_read_seq, server_unread, unsent)
         VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (conversation_id) DO UPDATE SET
             server_unread = excluded.server_unread,
             last_read_seq = CASE WHEN unsent = 1 AND last_read_seq > excluded.last_read_seq
                                  THEN last_read_seq ELSE excluded.last_read_seq END,
             unsent = CASE WHEN unsent = 1 AND last_read_seq > excluded.last_read_seq
                           THEN 1 ELSE 0 END",
        params![key, last_read_seq, unread],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_floor_covers_unread() {
        assert_eq!(initial_floor(50, 0), 0);
        assert_eq!(initial_floor(1000, 990), 800);
        assert_eq!(initial_floor(1000, 500), 500);
        assert_eq!(initial_floor(5000, 10), 4000);
    }
}
