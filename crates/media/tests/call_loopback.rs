//! Two peers on loopback: real H.264 and Opus from the recorded clips.

mod common;

use std::sync::Arc;

use hearth_media::PeerEvent;
use hearth_media::peer::{RemoteSinks, SendMedia};
use hearth_media::quality::psnr_luma;
use hearth_media::source::{load_video, wav};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreman_call_decodes_and_matches() {
    let clip = Arc::new(load_video(&common::media("video/BA1_FT_C.264")).unwrap());
    let speech = Arc::new(
        wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );

    let (video_tx, mut video_rx) = mpsc::channel(512);
    let (audio_tx, mut audio_rx) = mpsc::channel(1024);
    let mut caller = common::peer(
        SendMedia {
            video: true,
            audio: true,
        },
        RemoteSinks::default(),
    )
    .await;
    let mut callee = common::peer(
        SendMedia::default(),
        RemoteSinks {
            video: Some(video_tx),
            audio: Some(audio_tx),
        },
    )
    .await;

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

    let stats = callee.stats();
    assert!(
        psnr.len() as f64 >= 0.95 * info.frame_count as f64,
        "decoded {} of {}",
        psnr.len(),
        info.frame_count
    );
    let mean = psnr.iter().sum::<f64>() / psnr.len() as f64;
    assert!(mean >= 32.0, "mean PSNR {mean:.2} dB");
    assert!(
        audio_samples >= 48_000 * 2,
        "received {audio_samples} audio samples"
    );
    assert_eq!(stats.video_decode_errors, 0);
    caller.close().await;
    callee.close().await;
}
