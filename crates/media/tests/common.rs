//! Helpers shared by the media tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use hearth_media::{MediaPeer, PeerConfig, PeerEvent, RemoteSinks, SendMedia};

/// Folder with the real recordings: `HEARTH_MEDIA_DIR`, or `shared/media` beside the repository.
pub fn media_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_MEDIA_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/media")
}

pub fn media(relative: &str) -> PathBuf {
    let path = media_dir().join(relative);
    assert!(
        path.exists(),
        "test media {} is missing; set HEARTH_MEDIA_DIR to the folder with the recordings",
        path.display()
    );
    path
}

pub fn loopback_config() -> PeerConfig {
    PeerConfig {
        udp_addrs: vec!["127.0.0.1:0".parse().unwrap()],
        ..PeerConfig::default()
    }
}

/// Runs offer/answer between two peers and forwards candidates until both are
/// connected or one fails. Returns the events that ended the wait on each side.
pub async fn connect(caller: &mut MediaPeer, callee: &mut MediaPeer) -> (PeerEvent, PeerEvent) {
    let offer = caller.create_offer().await.expect("offer");
    let answer = callee.accept_offer(&offer).await.expect("answer");
    caller.set_answer(&answer).await.expect("set answer");

    let mut caller_state = None;
    let mut callee_state = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while caller_state.is_none() || callee_state.is_none() {
        tokio::select! {
            event = caller.next_event() => match event.expect("caller events") {
                PeerEvent::LocalCandidate(candidate) => {
                    callee.add_remote_candidate(candidate).await.expect("callee candidate");
                }
                state @ (PeerEvent::Connected | PeerEvent::Failed) => caller_state = Some(state),
                _ => {}
            },
            event = callee.next_event() => match event.expect("callee events") {
                PeerEvent::LocalCandidate(candidate) => {
                    caller.add_remote_candidate(candidate).await.expect("caller candidate");
                }
                state @ (PeerEvent::Connected | PeerEvent::Failed) => callee_state = Some(state),
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    (
        caller_state.unwrap_or(PeerEvent::Disconnected),
        callee_state.unwrap_or(PeerEvent::Disconnected),
    )
}

pub async fn peer(send: SendMedia, sinks: RemoteSinks) -> MediaPeer {
    MediaPeer::new(&loopback_config(), send, sinks)
        .await
        .expect("peer")
}
