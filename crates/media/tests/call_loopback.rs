//! Two peers on loopback: real H.264 or VP8 and Opus from the recorded clips,
//! with the video codec chosen by negotiation.

mod common;

use std::sync::Arc;

use hearth_media::peer::{RemoteSinks, SendMedia};
use hearth_media::quality::psnr_luma;
use hearth_media::source::{load_video, wav};
use hearth_media::stats::CallStats;
use hearth_media::{MediaPeer, PeerConfig, PeerEvent, VideoCodec};
use tokio::sync::mpsc;

/// What the callee received in a 3-second call.
struct CallResult {
    codec: VideoCodec,
    frames_sent: usize,
    psnr: Vec<f64>,
    audio_samples: usize,
    callee: CallStats,
    caller: CallStats,
}

fn config(video_codecs: &[VideoCodec]) -> PeerConfig {
    PeerConfig {
        video_codecs: video_codecs.to_vec(),
        ..common::loopback_config()
    }
}

/// Calls from a peer with `caller_codecs` to one with `callee_codecs` and
/// sends the foreman clip and speech for 3 seconds at 1 Mbit/s.
async fn foreman_call(caller_codecs: &[VideoCodec], callee_codecs: &[VideoCodec]) -> CallResult {
    let clip = Arc::new(load_video(&common::media("video/BA1_FT_C.264")).unwrap());
    let speech = Arc::new(
        wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );

    let (video_tx, mut video_rx) = mpsc::channel(512);
    let (audio_tx, mut audio_rx) = mpsc::channel(1024);
    let send = SendMedia {
        video: true,
        audio: true,
    };
    let mut caller = MediaPeer::new(&config(caller_codecs), send, RemoteSinks::default())
        .await
        .expect("caller");
    let sinks = RemoteSinks {
        video: Some(video_tx),
        audio: Some(audio_tx),
        streams: None,
    };
    let mut callee = MediaPeer::new(&config(callee_codecs), SendMedia::default(), sinks)
        .await
        .expect("callee");

    let (caller_state, callee_state) = common::connect(&mut caller, &mut callee).await;
    assert_eq!(caller_state, PeerEvent::Connected);
    assert_eq!(callee_state, PeerEvent::Connected);

    let info = caller
        .start_video(Arc::clone(&clip), 3.0, 1_000_000)
        .await
        .unwrap();
    caller.start_audio(Arc::clone(&speech), 3.0).await.unwrap();
    caller.wait_sent().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let mut psnr = Vec::new();
    while let Ok(decoded) = video_rx.try_recv() {
        let index = info.frame_index(decoded.rtp_timestamp);
        let sent = &clip.frames[index % clip.frames.len()];
        psnr.push(psnr_luma(sent, &decoded.frame).unwrap());
    }
    let mut audio_samples = 0;
    while let Ok(decoded) = audio_rx.try_recv() {
        audio_samples += decoded.samples.len();
    }
    let result = CallResult {
        codec: info.codec,
        frames_sent: info.frame_count,
        psnr,
        audio_samples,
        callee: callee.stats(),
        caller: caller.stats(),
    };
    caller.close().await;
    callee.close().await;
    result
}

/// Checks the targets: 95 % of frames decoded, mean PSNR of 32 dB, two
/// seconds of speech and no decode error.
fn assert_call_quality(result: &CallResult) {
    assert!(
        result.psnr.len() as f64 >= 0.95 * result.frames_sent as f64,
        "{}: decoded {} of {}",
        result.codec,
        result.psnr.len(),
        result.frames_sent
    );
    let mean = result.psnr.iter().sum::<f64>() / result.psnr.len() as f64;
    assert!(mean >= 32.0, "{}: mean PSNR {mean:.2} dB", result.codec);
    assert!(
        result.audio_samples >= 48_000 * 2,
        "received {} audio samples",
        result.audio_samples
    );
    assert_eq!(result.callee.video_decode_errors, 0);
    assert_eq!(
        result.callee.video_frames_decoded as usize,
        result.psnr.len()
    );
    assert!(result.caller.video_keyframes_sent >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreman_call_decodes_and_matches() {
    let result = foreman_call(&VideoCodec::ALL, &VideoCodec::ALL).await;
    assert_eq!(result.codec, VideoCodec::H264);
    assert_call_quality(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreman_call_over_vp8() {
    let vp8_first = [VideoCodec::Vp8, VideoCodec::H264];
    let result = foreman_call(&vp8_first, &vp8_first).await;
    assert_eq!(result.codec, VideoCodec::Vp8);
    assert_call_quality(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_without_vp8_gets_h264() {
    let result = foreman_call(&[VideoCodec::Vp8, VideoCodec::H264], &[VideoCodec::H264]).await;
    assert_eq!(result.codec, VideoCodec::H264);
    assert_call_quality(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_only_peers_use_vp8() {
    let result = foreman_call(&[VideoCodec::Vp8], &[VideoCodec::Vp8]).await;
    assert_eq!(result.codec, VideoCodec::Vp8);
    assert_call_quality(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_loopback_lowers_audio_fec() {
    let speech = Arc::new(
        wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );
    let send = SendMedia {
        video: false,
        audio: true,
    };
    let mut caller = MediaPeer::new(&config(&VideoCodec::ALL), send, RemoteSinks::default())
        .await
        .expect("caller");
    let (audio_tx, mut audio_rx) = mpsc::channel(1024);
    let sinks = RemoteSinks {
        audio: Some(audio_tx),
        ..RemoteSinks::default()
    };
    let mut callee = MediaPeer::new(&config(&VideoCodec::ALL), SendMedia::default(), sinks)
        .await
        .expect("callee");
    let (caller_state, callee_state) = common::connect(&mut caller, &mut callee).await;
    assert_eq!(caller_state, PeerEvent::Connected);
    assert_eq!(callee_state, PeerEvent::Connected);
    let drain = tokio::spawn(async move { while audio_rx.recv().await.is_some() {} });

    caller.start_audio(speech, 6.0).await.unwrap();
    let at_start = caller.stats().audio_expected_loss_percent;
    caller.wait_sent().await;
    let at_end = caller.stats().audio_expected_loss_percent;
    caller.close().await;
    callee.close().await;
    drain.abort();

    // FEC starts planned for the default loss and follows the receiver's
    // reports of no loss down.
    assert_eq!(
        at_start,
        hearth_media::codec::opus::DEFAULT_EXPECTED_LOSS_PERCENT as u64
    );
    assert!(
        at_end < at_start,
        "expected loss stayed at {at_end} % after 6 s without loss"
    );
    assert!(
        at_end >= hearth_media::fec::MIN_EXPECTED_LOSS_PERCENT as u64,
        "expected loss fell to {at_end} %"
    );
}
