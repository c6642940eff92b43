//! One-to-one calls between two clients through the real server on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hearth_client::ClientError;
use hearth_client::call::{self, CallEnd, CallOptions};
use hearth_media::{RemoteSinks, SendMedia};
use hearth_proto::ErrorCode;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_delivers_video_and_audio() {
    let server = common::start_server().await;
    let alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let clip =
        Arc::new(hearth_media::source::load_video(&common::media("video/BA1_FT_C.264")).unwrap());
    let speech = Arc::new(
        hearth_media::source::wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );

    let (video_tx, mut video_rx) = mpsc::channel(256);
    let (audio_tx, mut audio_rx) = mpsc::channel(1024);
    let callee = tokio::spawn(async move {
        let incoming = call::wait_for_incoming(&mut bob).await.unwrap();
        assert_eq!(incoming.caller, "alice");
        let options = CallOptions {
            peer: common::loopback_peer(),
            sinks: RemoteSinks {
                video: Some(video_tx),
                audio: Some(audio_tx),
                streams: None,
            },
            ..Default::default()
        };
        let mut active = call::answer_call(bob, &incoming, options).await.unwrap();
        let end = active.ended().await;
        let stats = active.peer.stats();
        active.peer.close().await;
        (end, stats)
    });

    let options = CallOptions {
        peer: common::loopback_peer(),
        send: SendMedia {
            video: true,
            audio: true,
        },
        ..Default::default()
    };
    let mut active = call::place_call(alice, "bob", options).await.unwrap();
    assert_eq!(active.remote_user, "bob");
    active.peer.start_video(clip, 2.0, 800_000).await.unwrap();
    active.peer.start_audio(speech, 2.0).await.unwrap();
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
    let mut samples = 0;
    while let Ok(chunk) = audio_rx.try_recv() {
        samples += chunk.samples.len();
    }
    assert!(samples >= 90_000, "delivered {samples} audio samples");
}

#[tokio::test]
async fn declined_call_reports_reason() {
    let server = common::start_server().await;
    let alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let callee = tokio::spawn(async move {
        let incoming = call::wait_for_incoming(&mut bob).await.unwrap();
        call::decline(&bob, &incoming, Some("in a meeting".into())).unwrap();
        bob
    });

    let result = call::place_call(alice, "bob", CallOptions::default()).await;
    let _bob = callee.await.unwrap();
    match result {
        Err(ClientError::Declined { callee, reason }) => {
            assert_eq!(callee, "bob");
            assert_eq!(reason.as_deref(), Some("in a meeting"));
        }
        Err(other) => panic!("expected Declined, got {other}"),
        Ok(_) => panic!("expected Declined, the call connected"),
    }
}

#[tokio::test]
async fn calling_offline_user_fails() {
    let server = common::start_server().await;
    let alice = server.connect("alice").await;
    server
        .server
        .add_user("carol", "carol-password")
        .await
        .unwrap();

    let result = call::place_call(alice, "carol", CallOptions::default()).await;
    let Err(ClientError::Server { code, message }) = result else {
        panic!("expected a server error");
    };
    assert_eq!(code, ErrorCode::UserOffline);
    assert!(message.contains("carol"), "message: {message}");
}

#[tokio::test]
async fn calling_unknown_user_fails() {
    let server = common::start_server().await;
    let alice = server.connect("alice").await;

    let result = call::place_call(alice, "nobody", CallOptions::default()).await;
    let Err(err) = result else {
        panic!("expected an error");
    };
    assert_eq!(err.code(), "user_not_found");
}

#[tokio::test]
async fn wrong_password_is_rejected() {
    let server = common::start_server().await;
    server
        .server
        .add_user("alice", "right-password")
        .await
        .unwrap();

    let result =
        hearth_client::auth::sign_in_with_password(&server.endpoint, "alice", "wrong-password")
            .await;
    let Err(ClientError::SignInRejected { error, .. }) = result else {
        panic!("expected SignInRejected");
    };
    assert_eq!(error, "invalid_grant");
}

#[tokio::test]
async fn untrusted_certificate_is_rejected() {
    let server = common::start_server().await;
    let endpoint = hearth_client::ServerEndpoint::new(&server.server.base_url(), None).unwrap();

    let result = hearth_client::auth::sign_in_with_password(&endpoint, "alice", "password").await;
    let Err(ClientError::Unreachable { detail, .. }) = result else {
        panic!("expected Unreachable");
    };
    assert!(
        detail.to_lowercase().contains("certificate"),
        "detail: {detail}"
    );
}

#[tokio::test]
async fn refresh_rotates_tokens() {
    let server = common::start_server().await;
    server
        .server
        .add_user("alice", "alice-password")
        .await
        .unwrap();
    let first =
        hearth_client::auth::sign_in_with_password(&server.endpoint, "alice", "alice-password")
            .await
            .unwrap();

    let second = hearth_client::auth::refresh(&server.endpoint, &first.refresh_token)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let replay = hearth_client::auth::refresh(&server.endpoint, &first.refresh_token).await;
    assert!(matches!(replay, Err(ClientError::SignInRejected { .. })));
}
