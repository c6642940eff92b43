//! Tables of conversations, members, events, read state, attachments and the
//! search index (migration 2).
//!
//! Conversation ids, attachment ids and client message ids are stored as
//! hyphenated lowercase UUID text, and users by name, as on the wire.
//!
//! `events` is the append-only log of every conversation. Its `body` column contains
//! the `EventBody` JSON as sent to clients. Message rows also carry the message's
//! current state for server-side queries: `text` after the latest edit, and
//! `deleted`. Deleting a message blanks the text in the message's own body and in
//! the bodies of its edits, so the deleted text is no longer served to anyone.
//! `target` is the message that an edit or delete refers to.
//!
//! `message_search` is an FTS5 table whose rowid is `events.id`. It contains
//! `hearth_proto::search::index_text` of each message's current text and loses
//! the row when the message is deleted.

pub const CHAT_TABLES: &str = "CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
        name TEXT,
        direct_key TEXT UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE members (
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        user TEXT NOT NULL REFERENCES users(name),
        role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        joined_at_ms INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, user)
    );
    CREATE INDEX members_user ON members(user);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        client_id TEXT,
        text TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        target INTEGER,
        UNIQUE (conversation_id, seq),
        UNIQUE (conversation_id, sender, client_id)
    );
    CREATE INDEX events_target ON events(conversation_id, target) WHERE target IS NOT NULL;
    CREATE TABLE read_state (
        user TEXT NOT NULL REFERENCES users(name),
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        last_read_seq INTEGER NOT NULL,
        PRIMARY KEY (user, conversation_id)
    );
    CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        uploader TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        path TEXT NOT NULL,
        message_seq INTEGER,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX attachments_message ON attachments(conversation_id, message_seq);
    CREATE VIRTUAL TABLE message_search USING fts5(
        body,
        tokenize = 'unicode61 remove_diacritics 2'
    );";
