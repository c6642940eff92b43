//! The outbox against the real server on loopback and a real SQLite file:
//! messages written offline survive a restart of the client and reach the
//! server in order, exactly once, even when an acknowledgement is lost.

mod common;

use std::time::Duration;

use common::{Proxy, ProxyMode, eventually, message_texts, wait_online};
use hearth_client::session::{ChatUpdate, ConnectionState, NewMessage, SendOutcome};

fn text(text: &str) -> NewMessage {
    NewMessage {
        text: text.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_restart() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let alice_db = folder.path().join("alice.sqlite3");
    let bob_db = folder.path().join("bob.sqlite3");

    let alice = server.online_session("alice", &alice_db).await;
    let direct = alice.open_direct("bob").await.unwrap();
    alice.close().await;

    // A port that refuses connections simulates a server that is down.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = server.endpoint_at(closed_port.local_addr().unwrap());
    drop(closed_port);
    let offline = server.session_via(down, "alice", &alice_db).await;
    let state = offline.wait_settled(Duration::from_secs(10)).await;
    assert!(
        matches!(state, ConnectionState::Offline { .. }),
        "expected offline, got {state:?}"
    );
    for line in ["first", "second", "third"] {
        let entry = offline.send(direct.id, text(line)).await.unwrap();
        let outcome = offline
            .wait_sent(entry.client_id, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(outcome, SendOutcome::Queued);
    }
    offline.close().await;

    let restarted = server.online_session("alice", &alice_db).await;
    assert!(
        restarted
            .wait_outbox_empty(Duration::from_secs(10))
            .await
            .unwrap(),
        "the outbox still has {:?}",
        restarted.outbox().unwrap()
    );

    let bob = server.online_session("bob", &bob_db).await;
    assert_eq!(
        message_texts(&bob, direct.id).await,
        vec!["first", "second", "third"]
    );
    assert_eq!(
        message_texts(&restarted, direct.id).await,
        vec!["first", "second", "third"]
    );
    restarted.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_is_resent_once() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let folder = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(server.server.local_addr()).await;

    let alice = server
        .session_via(
            server.endpoint_at(proxy.addr),
            "alice",
            &folder.path().join("alice.sqlite3"),
        )
        .await;
    wait_online(&alice).await;
    let bob = server
        .online_session("bob", &folder.path().join("bob.sqlite3"))
        .await;
    let direct = alice.open_direct("bob").await.unwrap();
    let mut bob_updates = bob.subscribe();

    // The server stores the message, but its acknowledgement never arrives.
    proxy.set_mode(ProxyMode::DropReplies);
    let entry = alice.send(direct.id, text("only once")).await.unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ChatUpdate::Event(event)) = bob_updates.recv().await
                && event.conversation_id == direct.id
            {
                return event.seq;
            }
        }
    })
    .await
    .expect("bob gets the message");
    assert_eq!(alice.outbox().unwrap().len(), 1, "the ack was dropped");

    // The connection drops; alice reconnects and resends the same client id.
    proxy.cut_all();
    proxy.set_mode(ProxyMode::Forward);
    let mut state = alice.watch_state();
    state
        .wait_for(|state| *state != ConnectionState::Online)
        .await
        .unwrap();
    alice.reconnect_now();
    wait_online(&alice).await;
    let outcome = alice
        .wait_sent(entry.client_id, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(outcome, SendOutcome::Sent { seq: delivered });
    assert!(alice.outbox().unwrap().is_empty());

    let texts = message_texts(&bob, direct.id).await;
    assert_eq!(texts, vec!["only once"]);
    eventually("alice to store her message once", || {
        alice
            .search_local("only", Some(direct.id), 10)
            .map(|hits| hits.len() == 1)
            .unwrap_or(false)
    })
    .await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_message_leaves_outbox() {
    let server = common::start_server().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    server.add_user("carol").await;
    let folder = tempfile::tempdir().unwrap();
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let carol = server
        .online_session("carol", &folder.path().join("carol.sqlite3"))
        .await;
    let group = alice
        .create_group("team", &["carol".to_owned()])
        .await
        .unwrap();
    eventually("carol to see the group", || {
        carol.conversation(group.id).is_ok()
    })
    .await;

    // Carol's message after alice removed her is rejected for good.
    alice.remove_member(group.id, "carol").await.unwrap();
    let entry = carol.send(group.id, text("too late")).await;
    match entry {
        Ok(entry) => {
            let outcome = carol
                .wait_sent(entry.client_id, Duration::from_secs(10))
                .await;
            let err = outcome.expect_err("the server rejects the message");
            assert_eq!(err.code(), "not_member", "{err}");
            assert!(carol.outbox().unwrap().is_empty());
        }
        // The removal reached carol first and dropped the conversation.
        Err(err) => assert_eq!(err.code(), "conversation_not_found", "{err}"),
    }
    alice.close().await;
    carol.close().await;
}
