//! Presence through the session: a user's change reaches the people who
//! share a conversation with them, and only `online` and `away` can be set.

mod common;

use std::time::Duration;

use hearth_client::session::ChatUpdate;
use hearth_proto::chat::Presence;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_reaches_contacts() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let bob = server
        .online_session("bob", &folder.path().join("bob.sqlite3"))
        .await;
    alice.open_direct("bob").await.unwrap();
    let mut updates = bob.subscribe();

    alice.set_presence(Presence::Away).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ChatUpdate::Presence { user, presence }) = updates.recv().await
                && user == "alice"
                && presence == Presence::Away
            {
                return;
            }
        }
    })
    .await
    .expect("bob learns that alice is away");
    assert_eq!(bob.presence_of("alice"), Some(Presence::Away));

    let users = bob.users().await.unwrap();
    let entry = users.iter().find(|user| user.name == "alice").unwrap();
    assert_eq!(entry.presence, Presence::Away);

    let err = alice.set_presence(Presence::Offline).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    alice.close().await;
    bob.close().await;
}
