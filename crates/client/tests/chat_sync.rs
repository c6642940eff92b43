//! Sync against the real server: a client that was cut off catches up after
//! it reconnects by itself, edits and deletions included, and history pages
//! back to events it never synced.

mod common;

use std::time::Duration;

use common::{Proxy, ProxyMode, eventually, message_texts, wait_online};
use hearth_client::session::{ChatUpdate, ConnectionState, NewMessage, SendOutcome, Session};
use hearth_proto::chat::{ConversationId, EventBody, Seq};

async fn send(session: &Session, id: ConversationId, text: &str) -> Seq {
    let entry = session
        .send(
            id,
            NewMessage {
                text: text.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match session
        .wait_sent(entry.client_id, Duration::from_secs(10))
        .await
        .unwrap()
    {
        SendOutcome::Sent { seq } => seq,
        SendOutcome::Queued => panic!("{text:?} was not sent"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_fills_gap() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(server.server.local_addr()).await;
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let bob = server
        .session_via(
            server.endpoint_at(proxy.addr),
            "bob",
            &folder.path().join("bob.sqlite3"),
        )
        .await;
    wait_online(&bob).await;

    let group = alice
        .create_group("planning", &["bob".to_owned()])
        .await
        .unwrap();
    let before = send(&alice, group.id, "before the cut").await;
    let edited = send(&alice, group.id, "meet at 9").await;
    let deleted = send(&alice, group.id, "wrong room").await;
    eventually("bob to get the first messages", || {
        bob.conversation(group.id)
            .is_ok_and(|conversation| conversation.last_seq >= deleted)
    })
    .await;

    // Bob is cut off and cannot come back until the proxy lets him.
    proxy.set_mode(ProxyMode::Refuse);
    proxy.cut_all();
    let mut state = bob.watch_state();
    state
        .wait_for(|state| matches!(state, ConnectionState::Offline { .. }))
        .await
        .unwrap();

    let mut missed = Vec::new();
    for index in 0..5 {
        missed.push(send(&alice, group.id, &format!("missed {index}")).await);
    }
    let edit_seq = alice.edit(group.id, edited, "meet at 10").await.unwrap();
    let delete_seq = alice.delete(group.id, deleted).await.unwrap();
    assert!(delete_seq > edit_seq);

    let mut updates = bob.subscribe();
    proxy.set_mode(ProxyMode::Forward);
    bob.reconnect_now();
    wait_online(&bob).await;

    let texts = message_texts(&bob, group.id).await;
    assert_eq!(
        texts,
        vec![
            "before the cut",
            "meet at 10",
            "",
            "missed 0",
            "missed 1",
            "missed 2",
            "missed 3",
            "missed 4"
        ]
    );
    let conversation = bob.conversation(group.id).unwrap();
    assert_eq!(conversation.last_seq, delete_seq);
    assert!(
        bob.search_local("wrong", Some(group.id), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(bob.search_local("10", None, 10).unwrap().len(), 1);

    // Every event bob missed reached subscribers once, in order.
    let mut seen = Vec::new();
    while let Ok(update) = updates.try_recv() {
        if let ChatUpdate::Event(event) = update {
            seen.push(event.seq);
        }
    }
    let mut expected = missed.clone();
    expected.extend([edit_seq, delete_seq]);
    assert_eq!(seen, expected);
    assert!(before < edited);
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_from_server() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let direct = alice.open_direct("bob").await.unwrap();
    // More than the 200 newest events that a first sync fetches.
    let total = 230;
    let mut last = 0;
    for index in 0..total {
        last = send(&alice, direct.id, &format!("note {index}")).await;
    }
    let target = send(&alice, direct.id, "fix the typo").await;
    alice.edit(direct.id, target, "fixed").await.unwrap();

    let bob = server
        .online_session("bob", &folder.path().join("bob.sqlite3"))
        .await;
    let newest = bob.history(direct.id, None, 20).await.unwrap();
    assert!(newest.has_more);
    let texts: Vec<String> = newest
        .events
        .iter()
        .filter_map(|stored| match &stored.event.body {
            EventBody::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts.last().map(String::as_str), Some("fixed"));

    let all = message_texts(&bob, direct.id).await;
    assert_eq!(all.len(), total + 1);
    assert_eq!(all[0], "note 0");
    assert_eq!(all[total - 1], format!("note {}", total - 1));
    let oldest = bob.history(direct.id, Some(2), 10).await.unwrap();
    assert!(!oldest.has_more);
    assert!(last > 200);
    alice.close().await;
    bob.close().await;
}
