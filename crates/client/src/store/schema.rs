//! Forward-only schema migrations. Each entry of [`MIGRATIONS`] runs once, in
//! its own transaction, and `schema_version` records how many have run. A
//! released migration is never edited; a change of schema appends a new one.

use rusqlite::Connection;

use crate::error::{ClientError, Result};

/// Migration `i` brings the schema from version `i` to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT,
        created_at_ms INTEGER NOT NULL,
        -- Newest sequence number known to exist on the server.
        last_seq INTEGER NOT NULL,
        -- Every event in (floor_seq, synced_seq] is stored here.
        synced_seq INTEGER NOT NULL,
        -- Events at or below floor_seq were never fetched; `history` pages them in.
        floor_seq INTEGER NOT NULL
    );

    CREATE TABLE members (
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        PRIMARY KEY (conversation_id, user)
    );

    CREATE TABLE read_state (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        last_read_seq INTEGER NOT NULL,
        -- Unread count the server reported last; used only while the local
        -- events do not reach back to last_read_seq.
        server_unread INTEGER NOT NULL,
        -- 1 while a read position set here has not been sent to the server.
        unsent INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        -- JSON of the event body. For a message it is the current state: the
        -- text of the newest edit, or no text and no attachments once deleted.
        body TEXT NOT NULL,
        -- Target message of an `edited` or `deleted` event.
        target INTEGER,
        -- Sequence numbers of the edit applied to a message and of its deletion.
        edited_seq INTEGER,
        deleted_seq INTEGER,
        UNIQUE (conversation_id, seq)
    );
    CREATE INDEX events_target ON events (conversation_id, target) WHERE target IS NOT NULL;

    -- Message text rewritten by hearth_proto::search::index_text; rowid is events.id.
    CREATE VIRTUAL TABLE message_fts USING fts5(
        text,
        content = '',
        contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );

    CREATE TABLE outbox (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL UNIQUE,
        conversation_id TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to INTEGER,
        -- JSON list of store::OutboxAttachment.
        attachments TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    "#,
];

/// Returns the schema version that this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Runs the migrations that `conn` has not run yet.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )?;
    if current > latest_version() {
        return Err(ClientError::Store(format!(
            "the local database has schema version {current}, newer than version {} that this \
             Hearth build knows; update Hearth",
            latest_version()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        tx.commit()?;
        tracing::debug!(version, "migrated the local database");
    }
    Ok(())
}
