//! Events of each conversation, with each message in its current state, and
//! the full-text index over message text.
//!
//! Edits and deletions arrive as events of their own, possibly before the
//! message they change (history pages backward, sync forward), so storing
//! either side applies whatever the other side already stored.

use hearth_proto::chat::{ConversationId, Event, EventBody, Seq};
use hearth_proto::search::{index_text, match_query};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, json_column, to_json, uuid_column};
use crate::error::{ClientError, Result};

/// An event as stored. A message's body has the text of its newest edit, and
/// no text and no attachments once deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event: Event,
    /// Sequence number of the edit whose text the message shows.
    pub edited_seq: Option<Seq>,
    /// Sequence number of the event that deleted the message.
    pub deleted_seq: Option<Seq>,
}

const COLUMNS: &str = "conversation_id, seq, sender, at_ms, body, edited_seq, deleted_seq";

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        event: Event {
            conversation_id: uuid_column(row, 0)?,
            seq: row.get(1)?,
            sender: row.get(2)?,
            at_ms: row.get(3)?,
            body: json_column(row, 4)?,
        },
        edited_seq: row.get(5)?,
        deleted_seq: row.get(6)?,
    })
}

fn kind_and_target(body: &EventBody) -> (&'static str, Option<Seq>) {
    match body {
        EventBody::Message { .. } => ("message", None),
        EventBody::Edited { target, .. } => ("edited", Some(*target)),
        EventBody::Deleted { target } => ("deleted", Some(*target)),
        EventBody::MemberAdded { .. } => ("member_added", None),
        EventBody::MemberRemoved { .. } => ("member_removed", None),
        EventBody::Renamed { .. } => ("renamed", None),
        EventBody::Call { .. } => ("call", None),
    }
}

impl Store {
    /// Stores an event and applies it to the message it edits or deletes.
    /// Returns false when the event was already stored.
    pub fn insert_event(&mut self, event: &Event) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let conversation = event.conversation_id.to_string();
        let (kind, target) = kind_and_target(&event.body);
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO events (conversation_id, seq, sender, at_ms, kind, body, target)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                conversation,
                event.seq,
                event.sender,
                event.at_ms,
                kind,
                to_json(&event.body),
                target
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        let row_id = tx.last_insert_rowid();

        match &event.body {
            EventBody::Message { text, .. } => {
                index_message(&tx, row_id, text)?;
                apply_stored_changes(&tx, &conversation, event.seq)?;
            }
            EventBody::Edited { target, text } => {
                if is_deleted(&tx, &conversation, *target)? {
                    blank_edit(&tx, row_id, *target)?;
                } else {
                    apply_edit(&tx, &conversation, *target, event.seq, text)?;
                }
            }
            EventBody::Deleted { target } => apply_delete(&tx, &conversation, *target, event.seq)?,
            _ => {}
        }

        tx.execute(
            "UPDATE conversations SET last_seq = max(last_seq, ?2) WHERE id = ?1",
            params![conversation, event.seq],
        )?;
        advance_synced(&tx, &conversation)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records that every event above `floor` is stored, after a history page.
    pub fn lower_floor(&mut self, id: ConversationId, floor: Seq) -> Result<()> {
        self.conn.execute(
            "UPDATE conversations SET floor_seq = min(floor_seq, ?2) WHERE id = ?1",
            params![id.to_string(), floor],
        )?;
        Ok(())
    }

    /// Returns up to `limit` stored events before `before`, oldest first,
    /// without the edit and delete events that the messages already reflect.
    pub fn events_before(
        &self,
        id: ConversationId,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM events
             WHERE conversation_id = ?1 AND seq < ?2 AND kind NOT IN ('edited', 'deleted')
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let mut events = statement
            .query_map(params![id.to_string(), before, limit], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    /// Returns the stored event `seq` of a conversation.
    pub fn event(&self, id: ConversationId, seq: Seq) -> Result<Option<StoredEvent>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM events WHERE conversation_id = ?1 AND seq = ?2"),
                params![id.to_string(), seq],
                read_row,
            )
            .optional()?)
    }

    /// Returns the lowest sequence number stored for a conversation.
    pub fn oldest_seq(&self, id: ConversationId) -> Result<Option<Seq>> {
        Ok(self.conn.query_row(
            "SELECT min(seq) FROM events WHERE conversation_id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )?)
    }

    /// Finds messages whose current text contains every word of `query`,
    /// newest first. Chinese, Japanese and Korean words match inside longer
    /// runs of text; other words match as prefixes.
    pub fn search(
        &self,
        query: &str,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let Some(expression) = match_query(query) else {
            return Err(ClientError::InvalidInput {
                what: "search query".into(),
                detail: format!("{query:?} contains no letters or digits; search for a word"),
            });
        };
        let columns = COLUMNS
            .split(", ")
            .map(|column| format!("e.{column}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut statement = self.conn.prepare(&format!(
            "SELECT {columns} FROM message_fts JOIN events e ON e.id = message_fts.rowid
             WHERE message_fts MATCH ?1 AND (?2 IS NULL OR e.conversation_id = ?2)
             ORDER BY e.at_ms DESC, e.seq DESC LIMIT ?3"
        ))?;
        let hits = statement
            .query_map(
                params![expression, conversation.map(|id| id.to_string()), limit],
                read_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(hits)
    }

    /// Counts the messages from other members after `last_read_seq` that are
    /// stored and not deleted.
    pub(super) fn count_unread(&self, id: ConversationId, last_read_seq: Seq) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM events
             WHERE conversation_id = ?1 AND kind = 'message' AND deleted_seq IS NULL
               AND sender != ?2 AND seq > ?3",
            params![id.to_string(), self.user, last_read_seq],
            |row| row.get(0),
        )?)
    }
}

fn index_message(tx: &Transaction<'_>, row_id: i64, text: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO message_fts (rowid, text) VALUES (?1, ?2)",
        params![row_id, index_text(text)],
    )?;
    Ok(())
}

fn unindex_message(tx: &Transaction<'_>, row_id: i64) -> Result<()> {
    tx.execute("DELETE FROM message_fts WHERE rowid = ?1", [row_id])?;
    Ok(())
}

/// Applies the newest stored deletion or edit of the message `seq`.
fn apply_stored_changes(tx: &Transaction<'_>, conversation: &str, seq: Seq) -> Result<()> {
    let deletion: Option<Seq> = tx
        .query_row(
            "SELECT max(seq) FROM events WHERE conversation_id = ?1 AND target = ?2 AND kind = 'deleted'",
            params![conversation, seq],
            |row| row.get(0),
        )?;
    if let Some(deleted_seq) = deletion {
        return apply_delete(tx, conversation, seq, deleted_seq);
    }
    let edit: Option<(Seq, EventBody)> = tx
        .query_row(
            "SELECT seq, body FROM events
             WHERE conversation_id = ?1 AND target = ?2 AND kind = 'edited'
             ORDER BY seq DESC LIMIT 1",
            params![conversation, seq],
            |row| Ok((row.get(0)?, json_column(row, 1)?)),
        )
        .optional()?;
    if let Some((edit_seq, EventBody::Edited { text, .. })) = edit {
        apply_edit(tx, conversation, seq, edit_seq, &text)?;
    }
    Ok(())
}

/// Loads the stored, not deleted message `seq` as its row id and body.
fn live_message(
    tx: &Transaction<'_>,
    conversation: &str,
    seq: Seq,
) -> Result<Option<(i64, Option<Seq>, EventBody)>> {
    Ok(tx
        .query_row(
            "SELECT id, edited_seq, body FROM events
             WHERE conversation_id = ?1 AND seq = ?2 AND kind = 'message' AND deleted_seq IS NULL",
            params![conversation, seq],
            |row| Ok((row.get(0)?, row.get(1)?, json_column(row, 2)?)),
        )
        .optional()?)
}

/// Replaces the text of message `target` unless a newer edit already did.
fn apply_edit(
    tx: &Transaction<'_>,
    conversation: &str,
    target: Seq,
    edit_seq: Seq,
    new_text: &str,
) -> Result<()> {
    let Some((row_id, edited_seq, mut body)) = live_message(tx, conversation, target)? else {
        return Ok(());
    };
    if edited_seq.is_some_and(|applied| applied >= edit_seq) {
        return Ok(());
    }
    if let EventBody::Message { text, .. } = &mut body {
        *text = new_text.to_owned();
    }
    tx.execute(
        "UPDATE events SET body = ?2, edited_seq = ?3 WHERE id = ?1",
        params![row_id, to_json(&body), edit_seq],
    )?;
    unindex_message(tx, row_id)?;
    index_message(tx, row_id, new_text)
}

/// Drops the text and attachments of message `target` and of its edits.
fn apply_delete(
    tx: &Transaction<'_>,
    conversation: &str,
    target: Seq,
    deleted_seq: Seq,
) -> Result<()> {
    if let Some((row_id, _, mut body)) = live_message(tx, conversation, target)? {
        if let EventBody::Message {
            text, attachments, ..
        } = &mut body
        {
            text.clear();
            attachments.clear();
        }
        tx.execute(
            "UPDATE events SET body = ?2, deleted_seq = ?3 WHERE id = ?1",
            params![row_id, to_json(&body), deleted_seq],
        )?;
        unindex_message(tx, row_id)?;
    }
    let mut statement = tx.prepare(
        "SELECT id FROM events WHERE conversation_id = ?1 AND target = ?2 AND kind = 'edited'",
    )?;
    let edits = statement
        .query_map(params![conversation, target], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for edit in edits {
        blank_edit(tx, edit, target)?;
    }
    Ok(())
}

fn blank_edit(tx: &Transaction<'_>, row_id: i64, target: Seq) -> Result<()> {
    let body = EventBody::Edited {
        target,
        text: String::new(),
    };
    tx.execute(
        "UPDATE events SET body = ?2 WHERE id = ?1",
        params![row_id, to_json(&body)],
    )?;
    Ok(())
}

fn is_deleted(tx: &Transaction<'_>, conversation: &str, target: Seq) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM events WHERE conversation_id = ?1 AND target = ?2 AND kind = 'deleted'",
            params![conversation, target],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Moves `synced_seq` up over every event now stored without a gap.
fn advance_synced(tx: &Transaction<'_>, conversation: &str) -> Result<()> {
    let Some(synced): Option<Seq> = tx
        .query_row(
            "SELECT synced_seq FROM conversations WHERE id = ?1",
            [conversation],
            |row| row.get(0),
        )
        .optional()?
    else {
        return Ok(());
    };
    let mut statement =
        tx.prepare("SELECT seq FROM events WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let mut rows = statement.query(params![conversation, synced])?;
    let mut next = synced;
    while let Some(row) = rows.next()? {
        let seq: Seq = row.get(0)?;
        if seq != next + 1 {
            break;
        }
        next = seq;
    }
    if next != synced {
        tx.execute(
            "UPDATE conversations SET synced_seq = ?2 WHERE id = ?1",
            params![conversation, next],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hearth_proto::chat::{
        Attachment, ClientMessageId, Conversation, ConversationKind, Member, Role,
    };

    use super::*;

    fn conversation(store: &mut Store) -> ConversationId {
        let id = ConversationId::new_v4();
        store
            .upsert_conversation(&Conversation {
                id,
                kind: ConversationKind::Group,
                name: Some("team".into()),
                members: vec![
                    Member {
                        user: "alice".into(),
                        role: Role::Owner,
                    },
                    Member {
                        user: "bob".into(),
                        role: Role::Member,
                    },
                ],
                last_seq: 0,
                last_read_seq: 0,
                unread: 0,
                created_at_ms: 1,
            })
            .unwrap();
        id
    }

    fn event(id: ConversationId, seq: Seq, sender: &str, body: EventBody) -> Event {
        Event {
            conversation_id: id,
            seq,
            sender: sender.into(),
            at_ms: seq as i64 * 1000,
            body,
        }
    }

    fn message(id: ConversationId, seq: Seq, sender: &str, text: &str) -> Event {
        event(
            id,
            seq,
            sender,
            EventBody::Message {
                client_id: ClientMessageId::new_v4(),
                text: text.into(),
                reply_to: None,
                attachments: vec![Attachment {
                    id: uuid::Uuid::new_v4(),
                    name: "a.txt".into(),
                    content_type: "text/plain".into(),
                    size_bytes: 1,
                }],
            },
        )
    }

    fn text_of(store: &Store, id: ConversationId, seq: Seq) -> String {
        match store.event(id, seq).unwrap().unwrap().event.body {
            EventBody::Message { text, .. } => text,
            other => panic!("event {seq} is not a message: {other:?}"),
        }
    }

    #[test]
    fn duplicate_event_is_ignored() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        let first = message(id, 1, "bob", "hello");
        assert!(store.insert_event(&first).unwrap());
        assert!(!store.insert_event(&first).unwrap());
    }

    #[test]
    fn edit_replaces_text_and_index() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store
            .insert_event(&message(id, 1, "bob", "lunch at noon"))
            .unwrap();
        store
            .insert_event(&event(
                id,
                2,
                "bob",
                EventBody::Edited {
                    target: 1,
                    text: "dinner at eight".into(),
                },
            ))
            .unwrap();

        assert_eq!(text_of(&store, id, 1), "dinner at eight");
        assert!(store.search("lunch", None, 10).unwrap().is_empty());
        assert_eq!(store.search("dinn", None, 10).unwrap().len(), 1);
    }

    #[test]
    fn edit_before_message_applies() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store
            .insert_event(&event(
                id,
                5,
                "bob",
                EventBody::Edited {
                    target: 2,
                    text: "second".into(),
                },
            ))
            .unwrap();
        store
            .insert_event(&event(
                id,
                3,
                "bob",
                EventBody::Edited {
                    target: 2,
                    text: "first".into(),
                },
            ))
            .unwrap();
        store
            .insert_event(&message(id, 2, "bob", "original"))
            .unwrap();

        let stored = store.event(id, 2).unwrap().unwrap();
        assert_eq!(text_of(&store, id, 2), "second");
        assert_eq!(stored.edited_seq, Some(5));
    }

    #[test]
    fn delete_drops_text_everywhere() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store
            .insert_event(&message(id, 1, "bob", "secret plan"))
            .unwrap();
        store
            .insert_event(&event(
                id,
                2,
                "bob",
                EventBody::Edited {
                    target: 1,
                    text: "secret plan b".into(),
                },
            ))
            .unwrap();
        store
            .insert_event(&event(id, 3, "bob", EventBody::Deleted { target: 1 }))
            .unwrap();

        let stored = store.event(id, 1).unwrap().unwrap();
        assert_eq!(stored.deleted_seq, Some(3));
        let EventBody::Message {
            text, attachments, ..
        } = stored.event.body
        else {
            panic!("not a message");
        };
        assert_eq!(text, "");
        assert!(attachments.is_empty());
        let EventBody::Edited { text, .. } = store.event(id, 2).unwrap().unwrap().event.body else {
            panic!("not an edit");
        };
        assert_eq!(text, "");
        assert!(store.search("secret", None, 10).unwrap().is_empty());
    }

    #[test]
    fn delete_before_message_applies() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store
            .insert_event(&event(id, 4, "bob", EventBody::Deleted { target: 1 }))
            .unwrap();
        store
            .insert_event(&message(id, 1, "bob", "gone soon"))
            .unwrap();
        assert_eq!(text_of(&store, id, 1), "");
        assert!(store.search("gone", None, 10).unwrap().is_empty());
    }

    #[test]
    fn search_finds_chinese_word() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store
            .insert_event(&message(id, 1, "bob", "明天在会议室开会"))
            .unwrap();
        store
            .insert_event(&message(id, 2, "bob", "会议取消了"))
            .unwrap();

        let hits = store.search("会议室", None, 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].event.seq, 1);
        assert_eq!(store.search("会议", None, 10).unwrap().len(), 2);
        assert!(store.search("议会", None, 10).unwrap().is_empty());
    }

    #[test]
    fn empty_query_is_rejected() {
        let store = Store::open_in_memory("alice").unwrap();
        let err = store.search(" ?! ", None, 10).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }

    #[test]
    fn synced_seq_skips_gaps() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store.insert_event(&message(id, 1, "bob", "one")).unwrap();
        store.insert_event(&message(id, 3, "bob", "three")).unwrap();
        let state = store.sync_state(id).unwrap().unwrap();
        assert_eq!(state.synced_seq, 1);
        assert_eq!(state.last_seq, 3);

        store.insert_event(&message(id, 2, "bob", "two")).unwrap();
        assert_eq!(store.sync_state(id).unwrap().unwrap().synced_seq, 3);
    }

    #[test]
    fn unread_counts_others_messages() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store.insert_event(&message(id, 1, "bob", "one")).unwrap();
        store
            .insert_event(&message(id, 2, "alice", "mine"))
            .unwrap();
        store.insert_event(&message(id, 3, "bob", "three")).unwrap();
        store.insert_event(&message(id, 4, "bob", "four")).unwrap();
        store
            .insert_event(&event(id, 5, "bob", EventBody::Deleted { target: 4 }))
            .unwrap();
        assert_eq!(store.conversation(id).unwrap().unwrap().unread, 2);

        assert!(store.set_read_locally(id, 1).unwrap());
        assert_eq!(store.conversation(id).unwrap().unwrap().unread, 1);
        assert_eq!(store.unsent_reads().unwrap(), vec![(id, 1)]);
        store.mark_read_sent(id, 1).unwrap();
        assert!(store.unsent_reads().unwrap().is_empty());
    }

    #[test]
    fn history_hides_edit_events() {
        let mut store = Store::open_in_memory("alice").unwrap();
        let id = conversation(&mut store);
        store.insert_event(&message(id, 1, "bob", "one")).unwrap();
        store
            .insert_event(&event(
                id,
                2,
                "bob",
                EventBody::Edited {
                    target: 1,
                    text: "uno".into(),
                },
            ))
            .unwrap();
        store.insert_event(&message(id, 3, "bob", "three")).unwrap();

        let page = store.events_before(id, 10, 10).unwrap();
        let seqs: Vec<Seq> = page.iter().map(|stored| stored.event.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        let older = store.events_before(id, 3, 1).unwrap();
        assert_eq!(older.len(), 1);
        assert_eq!(older[0].event.seq, 1);
    }
}
