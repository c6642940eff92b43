//! Calls and chat on one session WebSocket: a call set up through
//! `Session::call_signal` delivers its media while messages flow both ways
//! and the server rejects a chat request in the middle of it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hearth_client::call::{self, CallEnd, CallOptions};
use hearth_client::session::{ChatUpdate, NewMessage, SendOutcome};
use hearth_media::{RemoteSinks, SendMedia};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_survives_chat_traffic() {
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
    let direct = alice.open_direct("bob").await.unwrap();
    let clip =
        Arc::new(hearth_media::source::load_video(&common::media("video/BA1_FT_C.264")).unwrap());

    let mut bob_signal = bob.call_signal().unwrap();
    assert!(
        bob.call_signal().is_err(),
        "only one call connection at a time"
    );
    let (video_tx, mut video_rx) = mpsc::channel(256);
    let callee = tokio::spawn(async move {
        let incoming = call::wait_for_incoming(&mut bob_signal).await.unwrap();
        let options = CallOptions {
            peer: common::loopback_peer(),
            sinks: RemoteSinks {
                video: Some(video_tx),
                audio: None,
                streams: None,
            },
            ..Default::default()
        };
        let mut active = call::answer_call(bob_signal, &incoming, options)
            .await
            .unwrap();
        let end = active.ended().await;
        let stats = active.peer.stats();
        active.peer.close().await;
        (end, stats)
    });

    let options = CallOptions {
        peer: common::loopback_peer(),
        send: SendMedia {
            video: true,
            audio: false,
        },
        ..Default::default()
    };
    let mut active = call::place_call(alice.call_signal().unwrap(), "bob", options)
        .await
        .unwrap();
    active.peer.start_video(clip, 2.0, 800_000).await.unwrap();

    // Chat during the call, including a request the server rejects.
    let mut bob_updates = bob.subscribe();
    let rejected = alice.edit(direct.id, 999, "no such message").await;
    let err = rejected.expect_err("editing a missing message fails");
    assert_eq!(err.code(), "message_not_found", "{err}");
    for index in 0..10 {
        let entry = alice
            .send(
                direct.id,
                NewMessage {
                    text: format!("during the call {index}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let outcome = alice
            .wait_sent(entry.client_id, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(matches!(outcome, SendOutcome::Sent { .. }));
    }
    let mut received = 0;
    while received < 10 {
        let update = tokio::time::timeout(Duration::from_secs(10), bob_updates.recv())
            .await
            .expect("bob gets every message")
            .unwrap();
        if matches!(update, ChatUpdate::Event(_)) {
            received += 1;
        }
    }
    assert_eq!(active.end_state(), None, "the call is still up");

    active.peer.wait_sent().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    active.hang_up().await.unwrap();
    let (end, stats) = tokio::time::timeout(Duration::from_secs(10), callee)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, CallEnd::RemoteHangUp);
    assert!(
        stats.video_frames_decoded >= 47,
        "decoded {} of 50 frames",
        stats.video_frames_decoded
    );
    let mut frames = 0;
    while video_rx.try_recv().is_ok() {
        frames += 1;
    }
    assert!(frames >= 47, "delivered {frames} frames");

    // After the call, the next one gets a fresh call connection.
    assert!(alice.call_signal().is_ok());
    alice.close().await;
    bob.close().await;
}
