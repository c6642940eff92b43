//! A screen share through the real server's SFU, captured from a real X
//! server: Xvfb shows a window with text, one participant shares the window
//! and then the whole screen, and the other decodes the share. Each decoded
//! picture is compared with a capture of the same source taken when it
//! arrived (the text is static, so the two show the same content), by SSIM
//! and PSNR of the luma plane.
//!
//! Runs without the test harness, because screen capture reads `DISPLAY`
//! from the environment, which may only be changed while a single thread
//! runs.

#![allow(unsafe_code)]

mod common;
#[path = "../../media/tests/xvfb/mod.rs"]
mod xvfb;

use std::time::Duration;

use hearth_client::room::{self, RoomCall, RoomOptions, Roster};
use hearth_media::quality::{psnr_luma, ssim_luma_detailed};
use hearth_media::receive::DecodedVideo;
use hearth_media::screen::{self, ScreenCapture, SourceId, X11Transfer};
use hearth_media::{PeerConfig, RemoteSinks, ScreenSendConfig, StreamSinks, VideoFrame};
use hearth_proto::RoomParticipantId;
use tokio::sync::mpsc;

const SCREEN: (u32, u32) = (1280, 720);
/// An odd size, which the capture crops to 960x540.
const PICTURE: (u32, u32) = (961, 541);
/// Frames decoded before a picture is measured, so that the measured one is
/// not the first keyframe alone: 3 s at the default 10 fps.
const FRAMES_BEFORE_MEASURING: usize = 30;
/// The lowest luma SSIM, over the 8x8 blocks that contain text, at which
/// 13-pixel text stays readable. The same text sent at half size, as a
/// simulcast middle layer would be, measures well below it (checked below).
const MIN_SSIM: f64 = 0.95;
/// The luma variance from which a block counts as containing text; plain
/// paper has none.
const TEXT_VARIANCE: f64 = 100.0;
/// The lowest luma PSNR, in dB.
const MIN_PSNR: f64 = 35.0;

fn main() {
    let server = xvfb::Xvfb::start(SCREEN.0, SCREEN.1);
    // SAFETY: no other thread runs yet.
    unsafe {
        std::env::remove_var("WAYLAND_DISPLAY");
        std::env::set_var("DISPLAY", &server.display);
    }
    let dir = xvfb::picture_dir("screen-share");
    let picture = dir.join("text.png");
    let lines = [
        "Quarterly report, draft 3 (do not forward)",
        "Revenue: 1,234,567.89   Costs: 987,654.32   Margin: 19.98%",
        "fn share(window: SourceId) -> Result<ScreenCapture, ScreenError>",
        "The quick brown fox jumps over the lazy dog. 0123456789",
        "il1| O0o ,.;: -_=+ ()[]{} <> /\\ \"' `~ !? @#$%^&*",
        "Screen sharing sends full resolution at a low frame rate.",
        "Small text is the hardest case for a video encoder.",
    ];
    xvfb::draw_text_picture(&picture, PICTURE.0, PICTURE.1, &lines, 13);
    let window = xvfb::PictureWindow::show(&server.display, &picture, "hearth share test", 40, 30);
    let window_id = xvfb::wait_for(Duration::from_secs(10), || {
        screen::list_sources()
            .ok()?
            .into_iter()
            .find(|source| source.title == window.title)
            .map(|source| source.id)
    })
    .expect("the picture window never appeared in the source list");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = std::panic::catch_unwind(|| runtime.block_on(share_window_then_screen(window_id)));
    drop(runtime);
    // `exit` below skips destructors, so the X server and its window stop here.
    drop(window);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => println!("test share_window_then_screen ... ok\n1 passed, 0 failed"),
        Err(_) => {
            println!("test share_window_then_screen ... FAILED\n0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

/// Decoded screen share pictures, tagged with the sender's participant id.
type ScreenFrames = mpsc::Receiver<(String, DecodedVideo)>;

async fn share_window_then_screen(window_id: SourceId) {
    let server = common::start_server().await;
    let folder = tempfile::tempdir().unwrap();
    let mut sessions = Vec::new();
    for name in ["alice", "bob"] {
        server.add_user(name).await;
        let database = folder.path().join(format!("{name}.sqlite3"));
        sessions.push(server.online_session(name, &database).await);
    }
    let group = sessions[0]
        .create_group("design review", &["bob".to_owned()])
        .await
        .unwrap();
    common::eventually("bob to see the group", || {
        sessions[1].conversation(group.id).is_ok()
    })
    .await;

    let (mut alice, _alice_camera, _alice_screen) = join(&sessions[0], group.id).await;
    let (bob, mut bob_camera, mut bob_screen) = join(&sessions[1], group.id).await;
    let mut roster = bob.roster();
    wait_roster(&mut roster, "both in the call", |r| {
        r.participants.len() == 2
    })
    .await;
    let alice_id = alice.participant_id;

    // The window: 961x541 on screen, sent cropped to 960x540.
    let capture = ScreenCapture::start(window_id, 10.0).unwrap();
    alice
        .start_screen_share(capture.frames(), ScreenSendConfig::default())
        .await
        .unwrap();
    wait_roster(&mut roster, "alice to share", |r| sharing(r, alice_id)).await;
    let (decoded, reference) = measure(&mut bob_screen, alice_id, window_id, (960, 540)).await;
    let (ssim, psnr) = quality(&reference, &decoded);
    println!("window share 960x540: luma SSIM {ssim:.4}, PSNR {psnr:.2} dB");
    assert!(ssim >= MIN_SSIM, "window share SSIM {ssim:.4} < {MIN_SSIM}");
    assert!(
        psnr >= MIN_PSNR,
        "window share PSNR {psnr:.2} dB < {MIN_PSNR}"
    );

    // The threshold rejects the text sent at half size and scaled back up.
    let (half_ssim, _) = quality(&reference, &double(&reference.half()));
    println!("the same picture through half size: luma SSIM {half_ssim:.4}");
    assert!(
        half_ssim < MIN_SSIM,
        "half-size SSIM {half_ssim:.4} passes the threshold"
    );

    // The share arrives on the screen channel only, never as a camera.
    if let Ok((stream, _)) = bob_camera.try_recv() {
        panic!("stream {stream} arrived as a camera");
    }

    alice.stop_screen_share().unwrap();
    drop(capture);
    wait_roster(&mut roster, "alice to stop sharing", |r| {
        !sharing(r, alice_id)
    })
    .await;

    // The same track again, now with the whole screen at 1280x720.
    let whole: SourceId = "screen:0".parse().unwrap();
    let capture = ScreenCapture::start(whole, 10.0).unwrap();
    alice
        .start_screen_share(capture.frames(), ScreenSendConfig::default())
        .await
        .unwrap();
    wait_roster(&mut roster, "alice to share again", |r| {
        sharing(r, alice_id)
    })
    .await;
    let size = (SCREEN.0 as usize, SCREEN.1 as usize);
    let (decoded, reference) = measure(&mut bob_screen, alice_id, whole, size).await;
    let (ssim, psnr) = quality(&reference, &decoded);
    println!("screen share 1280x720: luma SSIM {ssim:.4}, PSNR {psnr:.2} dB");
    assert!(ssim >= MIN_SSIM, "screen share SSIM {ssim:.4} < {MIN_SSIM}");
    assert!(
        psnr >= MIN_PSNR,
        "screen share PSNR {psnr:.2} dB < {MIN_PSNR}"
    );

    let stats = alice.peer.stats();
    println!(
        "alice sent {} screen frames, {} keyframes, {} kB",
        stats.video_frames_sent,
        stats.video_keyframes_sent,
        stats.video_bytes_sent / 1000
    );
    drop(capture);
    bob.leave().await;
    alice.leave().await;
}

/// Joins with a reserved screen track and no camera or microphone.
async fn join(
    session: &hearth_client::session::Session,
    conversation_id: hearth_proto::chat::ConversationId,
) -> (RoomCall, ScreenFrames, ScreenFrames) {
    let (camera_tx, camera_rx) = mpsc::channel(64);
    let (audio_tx, _audio_rx) = mpsc::channel(64);
    let (screen_tx, screen_rx) = mpsc::channel(256);
    let options = RoomOptions {
        peer: PeerConfig {
            screen_track: true,
            ..common::loopback_peer()
        },
        sinks: RemoteSinks {
            streams: Some(StreamSinks {
                video: camera_tx,
                audio: audio_tx,
                screen: Some(screen_tx),
            }),
            ..RemoteSinks::default()
        },
        ..RoomOptions::default()
    };
    let call = room::join_room(session.call_signal().unwrap(), conversation_id, options)
        .await
        .unwrap();
    (call, camera_rx, screen_rx)
}

fn sharing(roster: &Roster, id: RoomParticipantId) -> bool {
    roster
        .participants
        .iter()
        .any(|p| p.id == id && p.screen_sharing)
}

async fn wait_roster(
    roster: &mut tokio::sync::watch::Receiver<Roster>,
    what: &str,
    condition: impl FnMut(&Roster) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), roster.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out after 10 s waiting for {what}"))
        .unwrap();
}

/// Waits for `FRAMES_BEFORE_MEASURING` pictures of `size` from `sender`,
/// then returns the last one with a capture of `source` taken at once.
async fn measure(
    frames: &mut ScreenFrames,
    sender: RoomParticipantId,
    source: SourceId,
    size: (usize, usize),
) -> (VideoFrame, VideoFrame) {
    let sender = sender.to_string();
    let mut counted = 0;
    let deadline = Duration::from_secs(30);
    let last = tokio::time::timeout(deadline, async {
        loop {
            let (stream, decoded) = frames.recv().await.expect("the screen channel closed");
            assert_eq!(stream, sender, "a share from an unexpected participant");
            if (decoded.frame.width, decoded.frame.height) != size {
                continue;
            }
            counted += 1;
            if counted >= FRAMES_BEFORE_MEASURING {
                break decoded.frame;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("only {counted} of {FRAMES_BEFORE_MEASURING} {size:?} pictures arrived in 30 s")
    });
    let reference =
        tokio::task::spawn_blocking(move || screen::grab_once(source, X11Transfer::Auto))
            .await
            .unwrap()
            .unwrap();
    (last, reference)
}

fn quality(reference: &VideoFrame, decoded: &VideoFrame) -> (f64, f64) {
    assert_eq!(
        (decoded.width, decoded.height),
        (reference.width, reference.height),
        "the share is not sent at full resolution"
    );
    (
        ssim_luma_detailed(reference, decoded, TEXT_VARIANCE).expect("the picture shows text"),
        psnr_luma(reference, decoded).unwrap(),
    )
}

/// Scales a picture up to twice its width and height by repeating pixels.
fn double(frame: &VideoFrame) -> VideoFrame {
    let (width, height) = (frame.width * 2, frame.height * 2);
    let (y, u, v) = frame.planes();
    let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
    for (plane, plane_width, plane_height) in [
        (y, frame.width, frame.height),
        (u, frame.chroma_width(), frame.chroma_height()),
        (v, frame.chroma_width(), frame.chroma_height()),
    ] {
        for row in 0..plane_height * 2 {
            for column in 0..plane_width * 2 {
                data.push(plane[(row / 2) * plane_width + column / 2]);
            }
        }
    }
    VideoFrame {
        width,
        height,
        data,
    }
}
