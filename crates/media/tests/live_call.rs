//! Live calls over two peers on loopback: a looping video file as the camera,
//! a looping WAV file as the microphone, and the controls of a running call.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_media::live::{
    LiveControls, LiveSend, LocalVideo, VideoSource, audio_channel, loop_wav,
};
use hearth_media::source::load_video;
use hearth_media::{
    MediaError, MediaPeer, PeerConfig, PeerEvent, RemoteSinks, SendMedia, VideoCodec, VideoFrame,
};
use tokio::sync::mpsc;

const SMALL_CLIP: &str = "video/CiscoVT2people_320x192_12fps.y4m";
const OTHER_CLIP: &str = "video/BA1_FT_C.264";
const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";

/// Time for a control change to take effect: one video frame or 20 ms of
/// audio already being encoded may still leave, plus the loopback delay.
const SETTLE: Duration = Duration::from_millis(300);

/// A connected call where the caller sends live media to the callee.
struct LiveCall {
    caller: MediaPeer,
    callee: MediaPeer,
    controls: LiveControls,
    /// Width and height of every frame the callee decoded, in order.
    decoded_sizes: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl LiveCall {
    async fn start(send: LiveSend) -> Self {
        Self::start_with_codecs(send, &VideoCodec::ALL).await
    }

    /// Starts a call between two peers that both list `video_codecs`.
    async fn start_with_codecs(send: LiveSend, video_codecs: &[VideoCodec]) -> Self {
        let (video_tx, mut video_rx) = mpsc::channel(64);
        let (audio_tx, mut audio_rx) = mpsc::channel(256);
        let config = PeerConfig {
            video_codecs: video_codecs.to_vec(),
            ..common::loopback_config()
        };
        let caller_media = SendMedia {
            video: true,
            audio: true,
        };
        let mut caller = MediaPeer::new(&config, caller_media, RemoteSinks::default())
            .await
            .expect("caller");
        let callee_sinks = RemoteSinks {
            video: Some(video_tx),
            audio: Some(audio_tx),
            streams: None,
        };
        let mut callee = MediaPeer::new(&config, SendMedia::default(), callee_sinks)
            .await
            .expect("callee");
        let (caller_state, callee_state) = common::connect(&mut caller, &mut callee).await;
        assert_eq!(caller_state, PeerEvent::Connected);
        assert_eq!(callee_state, PeerEvent::Connected);

        let decoded_sizes = Arc::new(Mutex::new(Vec::new()));
        let sizes = Arc::clone(&decoded_sizes);
        tokio::spawn(async move {
            while let Some(decoded) = video_rx.recv().await {
                let size = (decoded.frame.width, decoded.frame.height);
                sizes.lock().unwrap().push(size);
            }
        });
        tokio::spawn(async move { while audio_rx.recv().await.is_some() {} });

        let controls = caller.start_live(send).await.expect("start live");
        Self {
            caller,
            callee,
            controls,
            decoded_sizes,
        }
    }

    fn decoded_sizes(&self) -> Vec<(usize, usize)> {
        self.decoded_sizes.lock().unwrap().clone()
    }

    async fn close(self) {
        self.caller.close().await;
        self.callee.close().await;
    }
}

fn file_camera(relative: &str) -> LocalVideo {
    LocalVideo::start(&VideoSource::File(common::media(relative))).expect("file camera")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_camera_loops_past_clip_end() {
    let clip = load_video(&common::media(SMALL_CLIP)).unwrap();
    let clip_seconds = clip.frames.len() as f64 / clip.fps;
    let camera = file_camera(SMALL_CLIP);
    let call = LiveCall::start(LiveSend {
        video: Some(camera.frames()),
        audio: Some(loop_wav(&common::media(SPEECH)).unwrap()),
        ..LiveSend::default()
    })
    .await;

    let run = Duration::from_secs_f64(clip_seconds * 2.0 + 1.5);
    tokio::time::sleep(run).await;

    let sent = call.caller.stats();
    let received = call.callee.stats();
    let sizes = call.decoded_sizes();
    let expected_frames = run.as_secs_f64() * clip.fps;
    assert!(
        sent.video_frames_sent as f64 >= 0.8 * expected_frames,
        "sent {} frames in {run:?}, expected about {expected_frames:.0}",
        sent.video_frames_sent
    );
    assert!(
        sizes.len() > 2 * clip.frames.len(),
        "decoded {} frames of a {}-frame clip",
        sizes.len(),
        clip.frames.len()
    );
    assert!(
        sizes
            .iter()
            .all(|&size| size == (clip.width(), clip.height())),
        "decoded sizes {sizes:?}"
    );
    assert_eq!(received.video_decode_errors, 0);
    assert!(
        received.audio_packets_received as f64 >= 0.8 * run.as_secs_f64() * 50.0,
        "received {} audio packets in {run:?}",
        received.audio_packets_received
    );
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_stops_audio_packets() {
    let call = LiveCall::start(LiveSend {
        audio: Some(loop_wav(&common::media(SPEECH)).unwrap()),
        ..LiveSend::default()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(call.caller.stats().audio_packets_sent >= 30);

    call.controls.set_muted(true);
    assert!(call.controls.is_muted());
    tokio::time::sleep(SETTLE).await;
    let sent_at_mute = call.caller.stats().audio_packets_sent;
    let received_at_mute = call.callee.stats().audio_packets_received;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(call.caller.stats().audio_packets_sent, sent_at_mute);
    assert_eq!(call.callee.stats().audio_packets_received, received_at_mute);

    call.controls.set_muted(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = call.caller.stats().audio_packets_sent - sent_at_mute;
    assert!(resumed >= 30, "{resumed} audio packets in 1 s after unmute");
    let received = call.callee.stats().audio_packets_received - received_at_mute;
    assert!(
        received >= 30,
        "{received} audio packets received after unmute"
    );
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_off_stops_video_frames() {
    let camera = file_camera(SMALL_CLIP);
    let call = LiveCall::start(LiveSend {
        video: Some(camera.frames()),
        ..LiveSend::default()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(call.caller.stats().video_frames_sent >= 6);

    call.controls.set_video_enabled(false);
    assert!(!call.controls.is_video_enabled());
    tokio::time::sleep(SETTLE).await;
    let sent_at_off = call.caller.stats().video_frames_sent;
    let packets_at_off = call.caller.stats().video_packets_sent;
    let decoded_at_off = call.decoded_sizes().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(call.caller.stats().video_frames_sent, sent_at_off);
    assert_eq!(call.caller.stats().video_packets_sent, packets_at_off);
    assert_eq!(call.decoded_sizes().len(), decoded_at_off);

    call.controls.set_video_enabled(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = call.decoded_sizes().len() - decoded_at_off;
    assert!(
        resumed >= 6,
        "{resumed} frames decoded in 1 s after camera on"
    );
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_video_changes_decoded_size() {
    replace_video_over(&VideoCodec::ALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_replace_video_changes_decoded_size() {
    replace_video_over(&[VideoCodec::Vp8]).await;
}

/// Switches the live video between clips of two sizes in a call over
/// `video_codecs`, and checks that the callee decodes the new size after a keyframe.
async fn replace_video_over(video_codecs: &[VideoCodec]) {
    let first = file_camera(SMALL_CLIP);
    let second = file_camera(OTHER_CLIP);
    let first_size = {
        let frame = first.latest().expect("first frame");
        (frame.width, frame.height)
    };
    let second_size = {
        let frame = second.latest().expect("first frame");
        (frame.width, frame.height)
    };
    assert_ne!(first_size, second_size, "the test needs clips of two sizes");

    let send = LiveSend {
        video: Some(first.frames()),
        ..LiveSend::default()
    };
    let call = LiveCall::start_with_codecs(send, video_codecs).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(call.decoded_sizes().last(), Some(&first_size));
    let keyframes_before = call.caller.stats().video_keyframes_sent;

    call.controls.replace_video(Some(second.frames())).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sizes = call.decoded_sizes();
    assert_eq!(sizes.last(), Some(&second_size));
    let switched = sizes.iter().filter(|&&size| size == second_size).count();
    assert!(switched >= 10, "{switched} frames decoded at the new size");
    assert!(call.caller.stats().video_keyframes_sent > keyframes_before);
    assert_eq!(call.callee.stats().video_decode_errors, 0);
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_audio_switches_and_stops() {
    let call = LiveCall::start(LiveSend {
        audio: Some(loop_wav(&common::media(SPEECH)).unwrap()),
        ..LiveSend::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    call.controls.replace_audio(None).unwrap();
    tokio::time::sleep(SETTLE).await;
    let sent_without_source = call.caller.stats().audio_packets_sent;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(call.caller.stats().audio_packets_sent, sent_without_source);

    let noise = loop_wav(&common::media("noise/speechcommands_exercise_bike_10s.wav")).unwrap();
    call.controls.replace_audio(Some(noise)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed = call.caller.stats().audio_packets_sent - sent_without_source;
    assert!(
        resumed >= 30,
        "{resumed} audio packets after the new source"
    );
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_sized_audio_chunks_are_regrouped() {
    const CHUNK: usize = 441;
    const CHUNKS: usize = 218;
    let (samples, feed) = audio_channel();
    let call = LiveCall::start(LiveSend {
        audio: Some(feed),
        ..LiveSend::default()
    })
    .await;

    // 218 chunks of 441 samples are 96 138 samples: 100 full 20 ms frames
    // and 138 samples that wait for more.
    for chunk in 0..CHUNKS {
        let value = (chunk as f32 * 0.01).sin() * 0.5;
        samples.send(vec![value; CHUNK]).await.unwrap();
    }
    tokio::time::sleep(SETTLE).await;
    assert_eq!(call.caller.stats().audio_packets_sent, 100);
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_frame_is_skipped() {
    let clip = load_video(&common::media(SMALL_CLIP)).unwrap();
    let (frames, feed) = tokio::sync::watch::channel(None);
    let call = LiveCall::start(LiveSend {
        video: Some(feed),
        ..LiveSend::default()
    })
    .await;

    let incomplete = VideoFrame {
        width: 64,
        height: 64,
        data: vec![0; 100],
    };
    frames.send_replace(Some(Arc::new(incomplete)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(call.caller.stats().video_frames_sent, 0);

    for frame in clip.frames.iter().cycle().take(24) {
        frames.send_replace(Some(Arc::new(frame.clone())));
        tokio::time::sleep(Duration::from_secs_f64(1.0 / clip.fps)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let decoded = call.decoded_sizes().len();
    assert!(
        decoded >= 12,
        "{decoded} of 24 frames decoded after an incomplete one"
    );
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_live_rejects_second_start_and_missing_track() {
    let mut audio_only = common::peer(
        SendMedia {
            video: false,
            audio: true,
        },
        RemoteSinks::default(),
    )
    .await;
    let mut callee = common::peer(SendMedia::default(), RemoteSinks::default()).await;
    common::connect(&mut audio_only, &mut callee).await;

    let camera = file_camera(SMALL_CLIP);
    let err = audio_only
        .start_live(LiveSend {
            video: Some(camera.frames()),
            ..LiveSend::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, MediaError::NotSending { kind: "video" }),
        "{err}"
    );

    let controls = audio_only.start_live(LiveSend::default()).await.unwrap();
    let err = controls.replace_video(Some(camera.frames())).unwrap_err();
    assert!(
        matches!(err, MediaError::NotSending { kind: "video" }),
        "{err}"
    );
    let err = audio_only
        .start_live(LiveSend::default())
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::LiveAlreadyStarted), "{err}");

    audio_only.close().await;
    callee.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_while_muted_is_detected() {
    let call = LiveCall::start(LiveSend {
        audio: Some(loop_wav(&common::media(SPEECH)).unwrap()),
        audio_processing: Some(hearth_media::audio::ProcessingConfig::default()),
        ..LiveSend::default()
    })
    .await;
    let mut talking = call.controls.talking_while_muted();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!*talking.borrow(), "no hint while unmuted");

    call.controls.set_muted(true);
    tokio::time::timeout(Duration::from_secs(3), talking.wait_for(|talking| *talking))
        .await
        .expect("the hint shows within 3 s of speech into a muted microphone")
        .expect("the sender is running");

    call.controls.set_muted(false);
    tokio::time::timeout(
        Duration::from_secs(1),
        talking.wait_for(|talking| !*talking),
    )
    .await
    .expect("unmuting clears the hint")
    .expect("the sender is running");
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_suppression_switches_during_call() {
    use hearth_media::audio::{NoiseSuppression, ProcessingConfig};

    let call = LiveCall::start(LiveSend {
        audio: Some(loop_wav(&common::media(SPEECH)).unwrap()),
        ..LiveSend::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for noise_suppression in [
        NoiseSuppression::Rnnoise,
        NoiseSuppression::Apm,
        NoiseSuppression::Off,
    ] {
        call.controls
            .set_audio_processing(ProcessingConfig {
                noise_suppression,
                ..ProcessingConfig::default()
            })
            .unwrap();
        let before = call.callee.stats().audio_packets_received;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let received = call.callee.stats().audio_packets_received - before;
        assert!(
            received >= 15,
            "{received} packets in 600 ms with {noise_suppression:?}"
        );
    }
    call.close().await;
}
