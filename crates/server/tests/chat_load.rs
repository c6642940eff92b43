//! Many connections at once, and a connection that stops reading.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{PASSWORD, Socket, TestServer};
use futures_util::StreamExt as _;
use hearth_proto::chat::{ClientMessageId, ConversationId, EventBody, MAX_TEXT_BYTES};
use hearth_proto::{ServerFrame, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

const USERS: usize = 40;
const CONNECTIONS_PER_USER: usize = 5;
const GROUP_SIZE: usize = 5;
const MESSAGES_PER_CONNECTION: usize = 5;

/// Reads frames until this connection has seen `expected` messages of its
/// group, checking that sequence numbers only grow, and acknowledgements for
/// all of `sent`. Returns the message sequence numbers seen.
async fn collect(
    mut socket: Socket,
    group: ConversationId,
    expected: usize,
    mut sent: Vec<ClientMessageId>,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < expected || !sent.is_empty() {
        match socket.receive().await {
            ServerMessage::Event { event } if event.conversation_id == group => {
                if let Some(last) = seqs.last() {
                    assert!(event.seq > *last, "seq {} after {last}", event.seq);
                }
                if matches!(event.body, EventBody::Message { .. }) {
                    seqs.push(event.seq);
                }
            }
            ServerMessage::MessageAck { client_id, .. } => {
                sent.retain(|id| *id != client_id);
            }
            ServerMessage::Error { code, message, .. } => panic!("error {code}: {message}"),
            _ => {}
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_get_every_message_in_order() {
    let test = TestServer::start().await;
    let names: Vec<String> = (0..USERS).map(|index| format!("user{index:02}")).collect();
    for name in &names {
        test.server.add_user(name, PASSWORD).await.unwrap();
    }
    let mut tokens = HashMap::new();
    for name in &names {
        tokens.insert(name.clone(), test.token(name).await);
    }

    // Groups of GROUP_SIZE users, each user with CONNECTIONS_PER_USER sockets.
    let mut sockets: Vec<(ConversationId, Socket)> = Vec::new();
    for members in names.chunks(GROUP_SIZE) {
        let others: Vec<&str> = members[1..].iter().map(String::as_str).collect();
        let group = test
            .create_group(&tokens[&members[0]], "load", &others)
            .await;
        for member in members {
            for _ in 0..CONNECTIONS_PER_USER {
                let mut socket = test.connect_with_token(&tokens[member]).await.unwrap();
                socket.receive().await;
                sockets.push((group.id, socket));
            }
        }
    }
    assert_eq!(sockets.len(), USERS * CONNECTIONS_PER_USER);

    let started = Instant::now();
    let per_group = GROUP_SIZE * CONNECTIONS_PER_USER * MESSAGES_PER_CONNECTION;
    let mut readers = Vec::new();
    for (group, mut socket) in sockets {
        let mut sent = Vec::new();
        for index in 0..MESSAGES_PER_CONNECTION {
            sent.push(socket.say(group, &format!("load message {index}")).await);
        }
        readers.push(tokio::spawn(collect(socket, group, per_group, sent)));
    }

    let mut by_group: HashMap<usize, Vec<u64>> = HashMap::new();
    for (index, reader) in readers.into_iter().enumerate() {
        let seqs = reader.await.unwrap();
        assert_eq!(seqs.len(), per_group, "connection {index}");
        // Every connection of a group receives the same sequence.
        let group_index = index / (GROUP_SIZE * CONNECTIONS_PER_USER);
        match by_group.get(&group_index) {
            Some(first) => assert_eq!(&seqs, first, "connection {index}"),
            None => {
                by_group.insert(group_index, seqs);
            }
        }
    }
    let total = USERS * CONNECTIONS_PER_USER * MESSAGES_PER_CONNECTION;
    let elapsed = started.elapsed();
    println!(
        "{total} messages to {} connections in {elapsed:?}",
        USERS * CONNECTIONS_PER_USER
    );
    for seqs in by_group.values() {
        // The group's log has no gaps: member_added events, then messages.
        let first = seqs[0];
        assert_eq!(*seqs, (first..first + per_group as u64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_that_stops_reading_is_closed() {
    let test = TestServer::start().await;
    let mut alice = test.chat_user("alice").await;
    let bob = test.chat_user("bob").await;
    let group = test.create_group(&alice.token, "team", &["bob"]).await;
    let bob_token = bob.token.clone();
    // Bob's socket is kept open but never read from.
    let stalled = bob.socket.into_stream();

    // Loopback TCP buffers take a few megabytes before the server's queue for
    // bob starts to fill; 3000 messages of 16 KiB are far more than both.
    let text = "x".repeat(MAX_TEXT_BYTES);
    let count = 3000;
    let chunk = 100;
    let mut last_seq = 0;
    let started = Instant::now();
    for _ in 0..count / chunk {
        let mut last = None;
        for _ in 0..chunk {
            last = Some(alice.socket.say(group.id, &text).await);
        }
        // Alice reads everything up to the chunk's last acknowledgement, so
        // that only bob falls behind.
        let last = last.unwrap();
        last_seq = loop {
            if let ServerMessage::MessageAck { client_id, seq, .. } =
                alice.socket.receive_new().await
                && client_id == last
            {
                break seq;
            }
        };
    }
    println!("sent {count} messages in {:?}", started.elapsed());

    // The server gave up on bob: after the buffered frames his stream ends.
    let mut stalled = stalled;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        let mut frames = 0u64;
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let _: ServerFrame = serde_json::from_str(text.as_str()).unwrap();
                    frames += 1;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        frames
    })
    .await
    .expect("the stalled connection was not closed");
    assert!(ended < count, "received {ended} frames, all of them");

    // Bob reconnects and catches up with sync.
    let mut bob = test.connect_with_token(&bob_token).await.unwrap();
    bob.receive().await;
    let (batches, complete) = bob.sync_all(group.id, 0, None).await;
    assert!(complete);
    assert_eq!(batches.concat().last().unwrap().seq, last_seq);
    alice.socket.assert_alive().await;
}
