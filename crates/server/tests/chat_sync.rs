//! Catching up with `sync` and paging back with `history`.

mod common;

use common::TestServer;
use common::chat::message_text;
use hearth_proto::chat::{EventBody, MAX_PAGE_EVENTS};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};

#[tokio::test]
async fn sync_after_gap_returns_missed_events() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let mut bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seen = alice.socket.send_acked(group.id, "before the gap").await;
    bob.socket.event_with_seq(group.id, seen).await;
    let bob_token = bob.token.clone();
    bob.socket.close().await;

    for index in 0..5 {
        alice
            .socket
            .send_acked(group.id, &format!("missed {index}"))
            .await;
    }

    let mut bob = test.connect_with_token(&bob_token).await.unwrap();
    bob.receive().await;
    let (batches, complete) = bob.sync_all(group.id, seen, None).await;
    assert!(complete);
    assert_eq!(batches.len(), 1);
    let texts: Vec<_> = batches[0].iter().map(message_text).collect();
    assert_eq!(
        texts,
        ["missed 0", "missed 1", "missed 2", "missed 3", "missed 4"]
    );
    let seqs: Vec<_> = batches[0].iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (seen + 1..=seen + 5).collect::<Vec<_>>());
}

#[tokio::test]
async fn sync_from_zero_returns_whole_log() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let seq = alice.socket.send_acked(group.id, "hi").await;
    let (batches, complete) = alice.socket.sync_all(group.id, 0, None).await;
    assert!(complete);
    let events: Vec<_> = batches.concat();
    assert_eq!(events.len() as u64, seq);
    assert!(matches!(
        events[0].body,
        EventBody::MemberAdded { ref user, .. } if user == "alice"
    ));
    assert_eq!(message_text(&events[2]), "hi");
}

#[tokio::test]
async fn up_to_date_sync_is_empty_and_complete() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let (batches, complete) = alice.socket.sync_all(group.id, group.last_seq, None).await;
    assert!(complete);
    assert_eq!(batches, vec![Vec::new()]);
}

#[tokio::test]
async fn long_sync_splits_into_page_batches() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let count = MAX_PAGE_EVENTS as usize + 150;
    let mut client_ids = Vec::new();
    for index in 0..count {
        client_ids.push(alice.socket.say(group.id, &format!("n{index}")).await);
    }
    let last = alice.socket.ack_of(*client_ids.last().unwrap()).await;

    let mut reader = test.another_socket(&alice).await;
    let (batches, complete) = reader.sync_all(group.id, group.last_seq, None).await;
    assert!(complete);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].len(), MAX_PAGE_EVENTS as usize);
    assert_eq!(batches[1].len(), 150);
    let seqs: Vec<_> = batches.concat().iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (group.last_seq + 1..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn only_last_batch_is_complete() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let count = MAX_PAGE_EVENTS as usize + 1;
    let mut last = None;
    for index in 0..count {
        last = Some(alice.socket.say(group.id, &format!("n{index}")).await);
    }
    alice.socket.ack_of(last.unwrap()).await;

    let mut reader = test.another_socket(&alice).await;
    reader
        .send(ClientMessage::Sync {
            conversation_id: group.id,
            after: 0,
            limit: None,
        })
        .await;
    let mut flags = Vec::new();
    loop {
        let complete = reader
            .receive_until(|message| match message {
                ServerMessage::SyncBatch { complete, .. } => Some(*complete),
                _ => None,
            })
            .await;
        flags.push(complete);
        if complete {
            break;
        }
    }
    assert_eq!(flags, [false, true]);
}

#[tokio::test]
async fn sync_with_limit_stops_incomplete() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    for index in 0..10 {
        alice
            .socket
            .send_acked(group.id, &format!("n{index}"))
            .await;
    }
    let (batches, complete) = alice
        .socket
        .sync_all(group.id, group.last_seq, Some(4))
        .await;
    assert!(!complete);
    let events = batches.concat();
    assert_eq!(events.len(), 4);
    assert_eq!(message_text(&events[3]), "n3");

    // Continuing from the last event held reaches the end.
    let (rest, complete) = alice.socket.sync_all(group.id, events[3].seq, None).await;
    assert!(complete);
    assert_eq!(rest.concat().len(), 6);
}

#[tokio::test]
async fn large_messages_split_sync_into_smaller_frames() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let big = "z".repeat(hearth_proto::chat::MAX_TEXT_BYTES);
    // 100 messages of 16 KiB are 1.6 MiB of text, more than one frame carries.
    let mut last = None;
    for _ in 0..100 {
        last = Some(alice.socket.say(group.id, &big).await);
    }
    alice.socket.ack_of(last.unwrap()).await;

    let mut reader = test.another_socket(&alice).await;
    let (batches, complete) = reader.sync_all(group.id, group.last_seq, None).await;
    assert!(complete);
    assert!(batches.len() >= 2, "got {} batches", batches.len());
    assert_eq!(batches.concat().len(), 100);
}

#[tokio::test]
async fn zero_limit_is_invalid_request() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    alice
        .socket
        .send(ClientMessage::Sync {
            conversation_id: group.id,
            after: 0,
            limit: Some(0),
        })
        .await;
    let (code, error) = alice.socket.next_error().await;
    assert_eq!(code, ErrorCode::InvalidRequest);
    let ServerMessage::Error {
        conversation_id, ..
    } = error
    else {
        unreachable!()
    };
    assert_eq!(conversation_id, Some(group.id));
}

/// Sends `history` and returns the page.
async fn history(
    socket: &mut common::Socket,
    conversation_id: hearth_proto::chat::ConversationId,
    before: u64,
    limit: Option<u32>,
) -> (Vec<hearth_proto::chat::Event>, bool) {
    socket
        .send(ClientMessage::History {
            conversation_id,
            before,
            limit,
        })
        .await;
    socket
        .receive_until(|message| match message {
            ServerMessage::HistoryPage {
                events, has_more, ..
            } => Some((events.clone(), *has_more)),
            ServerMessage::Error { code, message, .. } => {
                panic!("history failed: {code}: {message}")
            }
            _ => None,
        })
        .await
}

#[tokio::test]
async fn history_pages_backward_newest_first() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let mut last = 0;
    for index in 0..25 {
        last = alice
            .socket
            .send_acked(group.id, &format!("n{index}"))
            .await;
    }

    let (page, has_more) = history(&mut alice.socket, group.id, u64::MAX, Some(10)).await;
    assert!(has_more);
    let seqs: Vec<_> = page.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (last - 9..=last).rev().collect::<Vec<_>>());
    assert_eq!(message_text(&page[0]), "n24");

    let (page, has_more) = history(&mut alice.socket, group.id, last - 9, Some(10)).await;
    assert!(has_more);
    assert_eq!(page[0].seq, last - 10);

    // The last page reaches the first event, the group's member_added.
    let (page, has_more) = history(&mut alice.socket, group.id, last - 19, Some(10)).await;
    assert!(!has_more);
    assert_eq!(page.len(), 6);
    assert_eq!(page.last().unwrap().seq, 1);
}

#[tokio::test]
async fn history_without_limit_uses_default() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let mut last = None;
    for index in 0..60 {
        last = Some(alice.socket.say(group.id, &format!("n{index}")).await);
    }
    alice.socket.ack_of(last.unwrap()).await;
    let (page, has_more) = history(&mut alice.socket, group.id, u64::MAX, None).await;
    assert_eq!(page.len(), 50);
    assert!(has_more);
}

#[tokio::test]
async fn history_before_first_event_is_empty() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let group = test.create_group(&alice.token, "team", &[]).await;
    let (page, has_more) = history(&mut alice.socket, group.id, 1, None).await;
    assert!(page.is_empty());
    assert!(!has_more);
}
