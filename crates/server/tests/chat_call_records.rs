//! Calls leave a record in the direct conversation of caller and callee.

mod common;

use std::time::Duration;

use common::TestServer;
use hearth_proto::chat::{CallOutcome, Conversation, ConversationKind, Event, EventBody};
use hearth_proto::{CallId, CallMedia, ClientMessage, ErrorCode, ServerMessage};

/// Waits for the next call record pushed to `socket` and returns its event.
async fn next_call_record(socket: &mut common::Socket) -> Event {
    socket
        .receive_until(|message| match message {
            ServerMessage::Event { event } if matches!(event.body, EventBody::Call { .. }) => {
                Some(event.clone())
            }
            _ => None,
        })
        .await
}

fn outcome(event: &Event) -> (CallId, CallMedia, CallOutcome) {
    match event.body {
        EventBody::Call {
            call_id,
            media,
            outcome,
        } => (call_id, media, outcome),
        ref other => panic!("expected a call record, got {other:?}"),
    }
}

async fn invite(socket: &mut common::Socket, callee: &str, media: CallMedia) -> CallId {
    let call_id = CallId::new_v4();
    socket
        .send(ClientMessage::Invite {
            call_id,
            callee: callee.into(),
            media,
        })
        .await;
    call_id
}

#[tokio::test]
async fn accepted_and_ended_call_is_recorded_with_duration() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Video).await;
    bob.socket.receive_call().await;
    bob.socket.send(ClientMessage::Accept { call_id }).await;

    let started = next_call_record(&mut bob.socket).await;
    assert_eq!(started.sender, "alice");
    assert_eq!(
        outcome(&started),
        (call_id, CallMedia::Video, CallOutcome::Started)
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.socket.send(ClientMessage::HangUp { call_id }).await;
    assert_eq!(next_call_record(&mut alice.socket).await, started);
    let ended = next_call_record(&mut alice.socket).await;
    assert_eq!(ended.seq, started.seq + 1);
    let (ended_call, _, CallOutcome::Ended { duration_ms }) = outcome(&ended) else {
        panic!("expected ended, got {ended:?}");
    };
    assert_eq!(ended_call, call_id);
    assert!(
        (300..5_000).contains(&duration_ms),
        "duration {duration_ms} ms"
    );

    // The records live in the direct conversation, which the call created.
    let list: Vec<Conversation> = test
        .get(&alice.token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, ConversationKind::Direct);
    assert_eq!(list[0].id, started.conversation_id);
}

#[tokio::test]
async fn record_goes_to_existing_direct_conversation() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let direct = test.create_direct(&bob.token, "alice").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Audio).await;
    bob.socket.receive_call().await;
    bob.socket
        .send(ClientMessage::Decline {
            call_id,
            reason: Some("busy".into()),
        })
        .await;

    let record = next_call_record(&mut alice.socket).await;
    assert_eq!(record.conversation_id, direct.id);
    assert_eq!(
        outcome(&record),
        (call_id, CallMedia::Audio, CallOutcome::Declined)
    );
}

#[tokio::test]
async fn cancelled_call_is_missed() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Video).await;
    bob.socket.receive_call().await;
    alice.socket.send(ClientMessage::Cancel { call_id }).await;

    let record = next_call_record(&mut bob.socket).await;
    assert_eq!(outcome(&record).2, CallOutcome::Missed);
    assert_eq!(record.sender, "alice");
}

#[tokio::test]
async fn call_to_offline_user_is_missed() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let bob = test.token("bob").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Video).await;
    assert_eq!(alice.socket.next_error().await.0, ErrorCode::UserOffline);
    let record = next_call_record(&mut alice.socket).await;
    assert_eq!(
        outcome(&record),
        (call_id, CallMedia::Video, CallOutcome::Missed)
    );

    // Bob finds it when he comes back.
    let list: Vec<Conversation> = test
        .get(&bob, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].unread, 0, "call records are not unread messages");
    let mut bob_socket = test.connect_with_token(&bob).await.unwrap();
    bob_socket.receive().await;
    let (batches, _) = bob_socket.sync_all(list[0].id, 0, None).await;
    let events = batches.concat();
    assert_eq!(events.last().unwrap().body, record.body);
}

#[tokio::test]
async fn call_to_unknown_user_leaves_no_record() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    invite(&mut alice.socket, "mallory", CallMedia::Video).await;
    assert_eq!(alice.socket.next_error().await.0, ErrorCode::UserNotFound);
    alice.socket.assert_quiet(Duration::from_millis(300)).await;
    let list: Vec<Conversation> = test
        .get(&alice.token, hearth_proto::chat::CONVERSATIONS_PATH)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn unanswered_call_times_out_as_missed() {
    let test = TestServer::start_with(|config| config.ring_timeout_secs = 1).await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Video).await;
    bob.socket.receive_call().await;
    bob.socket.send(ClientMessage::Ringing { call_id }).await;

    // Both sides learn that the call is over.
    assert_eq!(
        bob.socket.receive_call().await,
        ServerMessage::Cancelled { call_id }
    );
    let caller_frames = [
        alice.socket.receive_call().await,
        alice.socket.receive_call().await,
    ];
    assert_eq!(
        caller_frames,
        [
            ServerMessage::Ringing { call_id },
            ServerMessage::Cancelled { call_id }
        ]
    );
    let record = next_call_record(&mut bob.socket).await;
    assert_eq!(outcome(&record).2, CallOutcome::Missed);

    // The call is gone, so answering now fails.
    bob.socket.send(ClientMessage::Accept { call_id }).await;
    assert_eq!(bob.socket.next_error().await.0, ErrorCode::CallNotFound);
}

#[tokio::test]
async fn accepted_call_does_not_time_out() {
    let test = TestServer::start_with(|config| config.ring_timeout_secs = 1).await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;

    let call_id = invite(&mut alice.socket, "bob", CallMedia::Video).await;
    bob.socket.receive_call().await;
    bob.socket.send(ClientMessage::Accept { call_id }).await;
    assert_eq!(
        alice.socket.receive_call().await,
        ServerMessage::Accepted { call_id }
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    alice
        .socket
        .send(ClientMessage::Offer {
            call_id,
            sdp: "v=0".into(),
        })
        .await;
    assert_eq!(
        bob.socket.receive_call().await,
        ServerMessage::Offer {
            call_id,
            sdp: "v=0".into()
        }
    );
}
