//! Presence: pushed to users who share a conversation, and listed by
//! `GET /api/v1/users`.

mod common;

use std::time::Duration;

use common::TestServer;
use hearth_proto::chat::{Presence, UserEntry};
use hearth_proto::{CallId, CallMedia, ClientMessage, ErrorCode, ServerMessage};

async fn presence_of(socket: &mut common::Socket, user: &str) -> Presence {
    socket
        .receive_until(|message| match message {
            ServerMessage::Presence {
                user: changed,
                presence,
            } if changed == user => Some(*presence),
            _ => None,
        })
        .await
}

async fn directory(test: &TestServer, token: &str) -> Vec<UserEntry> {
    let response = test.get(token, hearth_proto::chat::USERS_PATH).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls the directory until `user` shows `expected`, for up to 5 seconds.
async fn wait_for_directory(test: &TestServer, token: &str, user: &str, expected: Presence) {
    for _ in 0..100 {
        let entries = directory(test, token).await;
        if entries
            .iter()
            .any(|entry| entry.name == user && entry.presence == expected)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{user} never showed as {expected:?}");
}

#[tokio::test]
async fn directory_lists_users_with_presence() {
    let test = TestServer::start().await;
    let alice = test.chat_user("alice").await;
    let entries = directory(&test, &alice.token).await;
    let names: Vec<_> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert_eq!(entries[0].presence, Presence::Online);
    assert_eq!(entries[1].presence, Presence::Offline);
}

#[tokio::test]
async fn directory_hides_disabled_users() {
    let test = TestServer::start().await;
    let token = test.token("alice").await;
    test.server.accounts().disable_user("carol").await.unwrap();
    let names: Vec<_> = directory(&test, &token)
        .await
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

#[tokio::test]
async fn co_member_sees_online_and_offline() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    test.create_group(&alice.token, "team", &["bob"]).await;

    let bob = test.chat_user("bob").await;
    assert_eq!(
        presence_of(&mut alice.socket, "bob").await,
        Presence::Online
    );
    bob.socket.close().await;
    assert_eq!(
        presence_of(&mut alice.socket, "bob").await,
        Presence::Offline
    );
}

#[tokio::test]
async fn user_without_shared_conversation_sees_nothing() {
    let test = TestServer::start().await;
    let mut carol = test.chat_user("carol").await;
    let alice = test.token("alice").await;
    test.create_group(&alice, "team", &["bob"]).await;

    let bob = test.chat_user("bob").await;
    carol.socket.assert_quiet(Duration::from_millis(500)).await;
    // The presence still shows in the directory.
    wait_for_directory(&test, &carol.token, "bob", Presence::Online).await;
    drop(bob);
}

#[tokio::test]
async fn away_needs_every_connection_idle() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut bob_phone = test.another_socket(&bob).await;
    test.create_group(&alice.token, "team", &["bob"]).await;

    bob.socket
        .send(ClientMessage::SetPresence {
            presence: Presence::Away,
        })
        .await;
    // The phone is still active, so bob stays online.
    wait_for_directory(&test, &alice.token, "bob", Presence::Online).await;
    bob_phone
        .send(ClientMessage::SetPresence {
            presence: Presence::Away,
        })
        .await;
    // Bob's presence as a new contact of alice's may still be on its way.
    let mut presence = presence_of(&mut alice.socket, "bob").await;
    while presence == Presence::Online {
        presence = presence_of(&mut alice.socket, "bob").await;
    }
    assert_eq!(presence, Presence::Away);
    wait_for_directory(&test, &alice.token, "bob", Presence::Away).await;

    bob_phone
        .send(ClientMessage::SetPresence {
            presence: Presence::Online,
        })
        .await;
    assert_eq!(
        presence_of(&mut alice.socket, "bob").await,
        Presence::Online
    );
}

#[tokio::test]
async fn client_cannot_set_in_call_or_offline() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    for presence in [Presence::InCall, Presence::Offline] {
        alice
            .socket
            .send(ClientMessage::SetPresence { presence })
            .await;
        assert_eq!(alice.socket.next_error().await.0, ErrorCode::InvalidRequest);
    }
}

#[tokio::test]
async fn accepted_call_shows_in_call() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut carol = test.chat_user("carol").await;
    test.create_group(&carol.token, "team", &["alice", "bob"])
        .await;

    let call_id = CallId::new_v4();
    alice
        .socket
        .send(ClientMessage::Invite {
            call_id,
            callee: "bob".into(),
            media: CallMedia::Audio,
        })
        .await;
    bob.socket.receive_call().await;
    bob.socket.send(ClientMessage::Accept { call_id }).await;

    assert_eq!(
        presence_of(&mut carol.socket, "alice").await,
        Presence::InCall
    );
    assert_eq!(
        presence_of(&mut carol.socket, "bob").await,
        Presence::InCall
    );
    wait_for_directory(&test, &carol.token, "alice", Presence::InCall).await;

    alice.socket.send(ClientMessage::HangUp { call_id }).await;
    assert_eq!(
        presence_of(&mut carol.socket, "alice").await,
        Presence::Online
    );
    assert_eq!(
        presence_of(&mut carol.socket, "bob").await,
        Presence::Online
    );
}
