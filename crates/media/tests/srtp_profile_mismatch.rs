//! Peers that share no DTLS-SRTP protection profile: the call fails cleanly
//! on both sides instead of hanging or panicking.

mod common;

use hearth_media::PeerEvent;
use hearth_media::peer::{MediaPeer, PeerConfig, RemoteSinks, SendMedia};
use webrtc::peer_connection::SrtpProtectionProfile;

async fn peer_with_profiles(profiles: Vec<SrtpProtectionProfile>) -> MediaPeer {
    let config = PeerConfig {
        srtp_profiles: Some(profiles),
        ..common::loopback_config()
    };
    MediaPeer::new(
        &config,
        SendMedia {
            video: true,
            audio: true,
        },
        RemoteSinks::default(),
    )
    .await
    .expect("peer")
}

// rtc 0.21.1 never reports a failed DTLS handshake itself; the engine's
// watchdog emits Failed a few seconds after ICE connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_srtp_profiles_fail() {
    let mut caller = peer_with_profiles(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]).await;
    let mut callee =
        peer_with_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]).await;

    let (caller_state, callee_state) = common::connect(&mut caller, &mut callee).await;

    assert_eq!(caller_state, PeerEvent::Failed);
    assert_eq!(callee_state, PeerEvent::Failed);
    caller.close().await;
    callee.close().await;
}
