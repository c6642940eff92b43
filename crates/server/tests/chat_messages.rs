//! Sending, editing and deleting messages over the session WebSocket.

mod common;

use std::time::Duration;

use common::TestServer;
use common::chat::message_text;
use hearth_proto::chat::{ClientMessageId, EventBody, MAX_TEXT_BYTES, Role};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};

#[tokio::test]
async fn message_reaches_every_member_connection() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut bob_phone = test.another_socket(&bob).await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let seq = alice.socket.send_acked(group.id, "hello team").await;

    for socket in [&mut alice.socket, &mut bob.socket, &mut bob_phone] {
        let event = socket.event_with_seq(group.id, seq).await;
        assert_eq!(event.sender, "alice");
        assert_eq!(message_text(&event), "hello team");
    }
}

#[tokio::test]
async fn ack_carries_client_id_and_seq() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "solo", &[]).await;
    // Creating the group appended one member_added event.
    assert_eq!(group.last_seq, 1);

    let client_id = alice.socket.say(group.id, "first").await;
    let ack = alice
        .socket
        .receive_until(|message| match message {
            ServerMessage::MessageAck { .. } => Some(message.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        ack,
        ServerMessage::MessageAck {
            conversation_id: group.id,
            client_id,
            seq: 2
        }
    );
}

#[tokio::test]
async fn retry_with_same_client_id_returns_original_seq() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let client_id = ClientMessageId::new_v4();
    alice.socket.send_message(group.id, client_id, "once").await;
    let first = alice.socket.ack_of(client_id).await;
    alice.socket.send_message(group.id, client_id, "once").await;
    let second = alice.socket.ack_of(client_id).await;
    assert_eq!(first, second);

    // Bob sees the message once and nothing for the retry.
    let event = bob.socket.event_with_seq(group.id, first).await;
    assert_eq!(message_text(&event), "once");
    bob.socket.assert_quiet(Duration::from_millis(300)).await;
    let conversation: hearth_proto::chat::Conversation = test
        .get(&bob.token, &common::chat::conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conversation.last_seq, first);
}

#[tokio::test]
async fn retry_from_another_connection_is_deduplicated() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let client_id = ClientMessageId::new_v4();
    alice
        .socket
        .send_message(group.id, client_id, "sent before a reconnect")
        .await;
    let first = alice.socket.ack_of(client_id).await;

    let mut reconnected = test.another_socket(&alice).await;
    reconnected
        .send_message(group.id, client_id, "sent before a reconnect")
        .await;
    assert_eq!(reconnected.ack_of(client_id).await, first);
}

#[tokio::test]
async fn pipelined_messages_keep_send_order() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;

    let mut client_ids = Vec::new();
    for index in 0..200 {
        client_ids.push(alice.socket.say(group.id, &format!("m{index}")).await);
    }
    let mut acked = Vec::new();
    for client_id in &client_ids {
        acked.push(alice.socket.ack_of(*client_id).await);
    }
    let expected: Vec<u64> = (group.last_seq + 1..=group.last_seq + 200).collect();
    assert_eq!(acked, expected);

    for (index, seq) in expected.iter().enumerate() {
        let event = bob.socket.next_message(group.id).await;
        assert_eq!(event.seq, *seq);
        assert_eq!(message_text(&event), format!("m{index}"));
    }
}

#[tokio::test]
async fn two_senders_get_distinct_ordered_seqs() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut carol = test.chat_user("carol").await;
    let group = test
        .create_group(&alice.token, "team", &["bob", "carol"])
        .await;

    for index in 0..50 {
        alice.socket.say(group.id, &format!("a{index}")).await;
        bob.socket.say(group.id, &format!("b{index}")).await;
    }
    let mut seqs = Vec::new();
    let mut alice_next = 0;
    let mut bob_next = 0;
    for _ in 0..100 {
        let event = carol.socket.next_message(group.id).await;
        seqs.push(event.seq);
        // Each sender's messages keep their order within the shared log.
        let text = message_text(&event).to_owned();
        if event.sender == "alice" {
            assert_eq!(text, format!("a{alice_next}"));
            alice_next += 1;
        } else {
            assert_eq!(text, format!("b{bob_next}"));
            bob_next += 1;
        }
    }
    let expected: Vec<u64> = (group.last_seq + 1..=group.last_seq + 100).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn empty_text_is_invalid_text() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    for text in ["", "  \n\t"] {
        let client_id = alice.socket.say(group.id, text).await;
        let (code, error) = alice.socket.next_error().await;
        assert_eq!(code, ErrorCode::InvalidText);
        let ServerMessage::Error {
            conversation_id,
            client_id: failed,
            ..
        } = error
        else {
            unreachable!()
        };
        assert_eq!(conversation_id, Some(group.id));
        assert_eq!(failed, Some(client_id));
    }
    alice.socket.assert_alive().await;
}

#[tokio::test]
async fn oversized_text_is_invalid_text() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice
        .socket
        .say(group.id, &"x".repeat(MAX_TEXT_BYTES + 1))
        .await;
    let (code, error) = alice.socket.next_error().await;
    assert_eq!(code, ErrorCode::InvalidText);
    let ServerMessage::Error { message, .. } = error else {
        unreachable!()
    };
    assert!(message.contains(&MAX_TEXT_BYTES.to_string()), "{message}");

    // Exactly the limit is accepted.
    alice
        .socket
        .send_acked(group.id, &"y".repeat(MAX_TEXT_BYTES))
        .await;
}

#[tokio::test]
async fn reply_to_missing_message_fails() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let client_id = ClientMessageId::new_v4();
    alice
        .socket
        .send(ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id,
            text: "answer".into(),
            reply_to: Some(99),
            attachments: Vec::new(),
        })
        .await;
    assert_eq!(
        alice.socket.next_error().await.0,
        ErrorCode::MessageNotFound
    );

    // A member_added event is not a message either.
    alice
        .socket
        .send(ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id,
            text: "answer".into(),
            reply_to: Some(1),
            attachments: Vec::new(),
        })
        .await;
    assert_eq!(
        alice.socket.next_error().await.0,
        ErrorCode::MessageNotFound
    );
}

#[tokio::test]
async fn reply_to_existing_message_is_kept() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let question = alice.socket.send_acked(group.id, "question?").await;
    let client_id = ClientMessageId::new_v4();
    alice
        .socket
        .send(ClientMessage::SendMessage {
            conversation_id: group.id,
            client_id,
            text: "answer".into(),
            reply_to: Some(question),
            attachments: Vec::new(),
        })
        .await;
    let seq = alice.socket.ack_of(client_id).await;
    let event = alice.socket.event_with_seq(group.id, seq).await;
    let EventBody::Message { reply_to, .. } = event.body else {
        panic!("expected a message")
    };
    assert_eq!(reply_to, Some(question));
}

#[tokio::test]
async fn unknown_conversation_is_conversation_not_found() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let missing = hearth_proto::chat::ConversationId::new_v4();
    alice.socket.say(missing, "hello?").await;
    let (code, error) = alice.socket.next_error().await;
    assert_eq!(code, ErrorCode::ConversationNotFound);
    let ServerMessage::Error {
        conversation_id, ..
    } = error
    else {
        unreachable!()
    };
    assert_eq!(conversation_id, Some(missing));
}

#[tokio::test]
async fn edit_is_pushed_to_other_members() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = alice.socket.send_acked(group.id, "helo").await;
    alice
        .socket
        .send(ClientMessage::EditMessage {
            conversation_id: group.id,
            target: seq,
            text: "hello".into(),
        })
        .await;

    bob.socket.event_with_seq(group.id, seq).await;
    let edit = bob.socket.event_with_seq(group.id, seq + 1).await;
    assert_eq!(edit.seq, seq + 1);
    assert_eq!(edit.sender, "alice");
    assert_eq!(
        edit.body,
        EventBody::Edited {
            target: seq,
            text: "hello".into()
        }
    );
}

#[tokio::test]
async fn editing_another_users_message_is_forbidden() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = bob.socket.send_acked(group.id, "bob's words").await;

    // Not even the owner may change someone else's text.
    alice
        .socket
        .send(ClientMessage::EditMessage {
            conversation_id: group.id,
            target: seq,
            text: "alice's words".into(),
        })
        .await;
    assert_eq!(alice.socket.next_error().await.0, ErrorCode::Forbidden);
}

#[tokio::test]
async fn member_cannot_delete_others_message() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = alice.socket.send_acked(group.id, "owner's message").await;

    bob.socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: seq,
        })
        .await;
    assert_eq!(bob.socket.next_error().await.0, ErrorCode::Forbidden);
}

#[tokio::test]
async fn owner_deletes_members_message() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    assert_eq!(group.members[0].role, Role::Owner);
    let seq = bob.socket.send_acked(group.id, "spam").await;

    alice
        .socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: seq,
        })
        .await;
    let deleted = bob.socket.event_with_seq(group.id, seq + 1).await;
    assert_eq!(deleted.sender, "alice");
    assert_eq!(deleted.body, EventBody::Deleted { target: seq });
}

#[tokio::test]
async fn deleted_message_cannot_be_edited_or_deleted_again() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let seq = alice.socket.send_acked(group.id, "oops").await;
    let delete = ClientMessage::DeleteMessage {
        conversation_id: group.id,
        target: seq,
    };
    alice.socket.send(delete.clone()).await;
    alice.socket.event_with_seq(group.id, seq + 1).await;

    alice
        .socket
        .send(ClientMessage::EditMessage {
            conversation_id: group.id,
            target: seq,
            text: "fixed".into(),
        })
        .await;
    assert_eq!(
        alice.socket.next_error().await.0,
        ErrorCode::MessageNotFound
    );
    alice.socket.send(delete).await;
    assert_eq!(
        alice.socket.next_error().await.0,
        ErrorCode::MessageNotFound
    );
}

#[tokio::test]
async fn edit_and_delete_appear_in_sync() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let kept = alice.socket.send_acked(group.id, "draft").await;
    let removed = alice.socket.send_acked(group.id, "secret").await;
    alice
        .socket
        .send(ClientMessage::EditMessage {
            conversation_id: group.id,
            target: kept,
            text: "final".into(),
        })
        .await;
    alice
        .socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: removed,
        })
        .await;
    alice.socket.event_with_seq(group.id, removed + 2).await;

    // Bob's second device was offline and catches up.
    let mut later = test.another_socket(&bob).await;
    let (batches, complete) = later.sync_all(group.id, kept - 1, None).await;
    assert!(complete);
    let events: Vec<_> = batches.into_iter().flatten().collect();
    let bodies: Vec<_> = events.iter().map(|event| event.body.clone()).collect();
    assert_eq!(events.len(), 4);
    assert_eq!(message_text(&events[0]), "draft");
    assert_eq!(
        bodies[2],
        EventBody::Edited {
            target: kept,
            text: "final".into()
        }
    );
    assert_eq!(bodies[3], EventBody::Deleted { target: removed });
    // The deleted text is no longer served.
    assert_eq!(message_text(&events[1]), "");
}

#[tokio::test]
async fn chat_error_does_not_close_connection() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let missing = hearth_proto::chat::ConversationId::new_v4();
    for _ in 0..20 {
        alice.socket.say(missing, "x").await;
    }
    for _ in 0..20 {
        alice.socket.next_error().await;
    }
    alice.socket.assert_alive().await;
}
