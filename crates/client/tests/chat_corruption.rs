//! A corrupt local database: the damaged file is moved aside, its outbox is
//! kept, and the next sync fetches the rest from the real server.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use common::message_texts;
use hearth_client::session::NewMessage;
use hearth_client::store::{OutboxMessage, Store};

/// Overwrites the pages of `table`'s b-tree root and the pages after it with
/// garbage, leaving the file header and the schema page intact.
fn corrupt_table(path: &Path, table: &str) {
    let (page_size, root): (u64, u64) = {
        let conn = rusqlite::Connection::open(path).unwrap();
        // Copies the WAL into the file first: a background task of the closed
        // session can still hold a connection, and while any connection is
        // open SQLite keeps the WAL, whose copy of the page would hide the damage.
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .unwrap();
        assert_eq!(busy, 0, "the WAL checkpoint was blocked by a reader");
        let page_size = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [table],
                |row| row.get(0),
            )
            .unwrap();
        (page_size, root)
    };
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start((root - 1) * page_size)).unwrap();
    file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    file.sync_all().unwrap();
}

fn moved_files(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".corrupt-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_database_is_rebuilt() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("alice.sqlite3");

    let alice = server.online_session("alice", &path).await;
    let direct = alice.open_direct("bob").await.unwrap();
    for text in ["synced one", "synced two"] {
        let entry = alice
            .send(
                direct.id,
                NewMessage {
                    text: text.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        alice
            .wait_sent(entry.client_id, Duration::from_secs(10))
            .await
            .unwrap();
    }
    alice.close().await;
    // Dropping the handle closes the session's connection, unless a
    // background fetch still holds it (`corrupt_table` checkpoints the WAL).
    drop(alice);

    // Two messages written while offline wait in the outbox.
    {
        let (mut store, recovery) = Store::open(&path, "alice").unwrap();
        assert!(recovery.is_none());
        for text in ["queued one", "queued two"] {
            store
                .push_outbox(OutboxMessage {
                    conversation_id: direct.id,
                    text: text.into(),
                    reply_to: None,
                    attachments: Vec::new(),
                })
                .unwrap();
        }
    }
    corrupt_table(&path, "events");

    let alice = server.online_session("alice", &path).await;
    let recovery = alice.recovery().expect("the damage is detected").clone();
    assert_eq!(recovery.outbox_kept, 2);
    assert!(recovery.moved_to.exists());
    assert!(
        recovery
            .moved_to
            .to_string_lossy()
            .contains("alice.sqlite3.corrupt-"),
        "{}",
        recovery.moved_to.display()
    );
    assert!(
        alice
            .wait_outbox_empty(Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert_eq!(
        message_texts(&alice, direct.id).await,
        vec!["synced one", "synced two", "queued one", "queued two"]
    );
    alice.close().await;
}

#[test]
fn garbage_file_is_replaced() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("chat.sqlite3");
    std::fs::write(&path, vec![0x5A; 8192]).unwrap();
    std::fs::write(folder.path().join("chat.sqlite3-wal"), b"not a wal").unwrap();

    let (store, recovery) = Store::open(&path, "alice").unwrap();
    let recovery = recovery.expect("a garbage file is detected");
    assert_eq!(recovery.outbox_kept, 0);
    assert!(
        recovery.reason.contains("not a database"),
        "{}",
        recovery.reason
    );
    assert!(store.outbox().unwrap().is_empty());
    let moved = moved_files(folder.path());
    assert!(
        moved.iter().any(|name| name.ends_with("-wal")),
        "the WAL was not moved: {moved:?}"
    );
    drop(store);

    let (_, again) = Store::open(&path, "alice").unwrap();
    assert!(again.is_none(), "the new database is intact");
}
