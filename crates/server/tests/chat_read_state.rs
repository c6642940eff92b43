//! Read positions shared across a user's devices.

mod common;

use common::TestServer;
use common::chat::conversation_path;
use hearth_proto::chat::{Conversation, ConversationId, Seq};
use hearth_proto::{ClientMessage, ServerMessage};

async fn read_state(socket: &mut common::Socket, id: ConversationId) -> (Seq, u64) {
    socket
        .receive_until(|message| match message {
            ServerMessage::ReadState {
                conversation_id,
                last_read_seq,
                unread,
            } if *conversation_id == id => Some((*last_read_seq, *unread)),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn mark_read_reaches_all_connections_of_the_user() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let mut bob_laptop = test.another_socket(&bob).await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let first = alice.socket.send_acked(group.id, "one").await;
    alice.socket.send_acked(group.id, "two").await;
    alice.socket.send_acked(group.id, "three").await;

    bob.socket
        .send(ClientMessage::MarkRead {
            conversation_id: group.id,
            seq: first,
        })
        .await;
    assert_eq!(read_state(&mut bob.socket, group.id).await, (first, 2));
    assert_eq!(read_state(&mut bob_laptop, group.id).await, (first, 2));

    // Alice's read position is her own.
    let own: Conversation = test
        .get(&alice.token, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own.last_read_seq, 0);
}

#[tokio::test]
async fn read_position_never_moves_back() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let first = alice.socket.send_acked(group.id, "one").await;
    let second = alice.socket.send_acked(group.id, "two").await;

    bob.socket
        .send(ClientMessage::MarkRead {
            conversation_id: group.id,
            seq: second,
        })
        .await;
    assert_eq!(read_state(&mut bob.socket, group.id).await, (second, 0));
    bob.socket
        .send(ClientMessage::MarkRead {
            conversation_id: group.id,
            seq: first,
        })
        .await;
    assert_eq!(read_state(&mut bob.socket, group.id).await, (second, 0));
}

#[tokio::test]
async fn read_position_is_capped_at_newest_event() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let last = alice.socket.send_acked(group.id, "one").await;

    bob.socket
        .send(ClientMessage::MarkRead {
            conversation_id: group.id,
            seq: 1_000,
        })
        .await;
    assert_eq!(read_state(&mut bob.socket, group.id).await, (last, 0));

    // A message that arrives later is unread.
    alice.socket.send_acked(group.id, "two").await;
    let conversation: Conversation = test
        .get(&bob.token, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conversation.last_read_seq, last);
    assert_eq!(conversation.unread, 1);
}

#[tokio::test]
async fn deleted_messages_are_not_unread() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let bob = test.token("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = alice.socket.send_acked(group.id, "regret").await;
    alice.socket.send_acked(group.id, "keep").await;
    alice
        .socket
        .send(ClientMessage::DeleteMessage {
            conversation_id: group.id,
            target: seq,
        })
        .await;
    alice.socket.event_with_seq(group.id, seq + 2).await;

    let conversation: Conversation = test
        .get(&bob, &conversation_path(group.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(conversation.unread, 1);
}
