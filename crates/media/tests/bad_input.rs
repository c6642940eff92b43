//! Bad media files and bad SDP return typed errors that name the input and state
//! what to do, never a panic. The good recordings load with the expected size.

mod common;

use std::path::{Path, PathBuf};

use hearth_media::MediaError;
use hearth_media::peer::{RemoteSinks, SendMedia};
use hearth_media::source::{load_video, wav};
use tempfile::TempDir;

const Y4M_CLIP: &str = "video/CiscoVT2people_320x192_12fps.y4m";
const H264_CLIP: &str = "video/BA1_FT_C.264";
const B_FRAME_CLIP: &str = "video/Cisco_Men_whisper_640x320_CAVLC_Bframe_9.264";
const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";

/// Writes `bytes` to `name` in a new temporary folder.
fn temp_file(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temporary file");
    (dir, path)
}

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(common::media(relative)).expect("read test media")
}

fn assert_names_file(err: &MediaError, path: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the message does not name {}: {message}",
        path.display()
    );
}

fn assert_mentions(err: &MediaError, hint: &str) {
    let message = err.to_string();
    assert!(
        message.contains(hint),
        "the message does not say {hint:?}: {message}"
    );
}

#[test]
fn y4m_clip_loads() {
    let clip = load_video(&common::media(Y4M_CLIP)).expect("load");
    assert_eq!(clip.frames.len(), 9);
    assert_eq!(clip.width(), 320);
    assert_eq!(clip.height(), 192);
    assert_eq!(clip.fps, 12.0);
}

#[test]
fn h264_clip_loads() {
    let clip = load_video(&common::media(H264_CLIP)).expect("load");
    assert_eq!(clip.frames.len(), 299);
    assert_eq!(clip.width(), 352);
    assert_eq!(clip.height(), 288);
}

#[test]
fn wav_resampled_to_48_khz() {
    let clip = wav::load(&common::media(SPEECH)).expect("load");
    let seconds = clip.samples.len() as f64 / 48_000.0;
    assert_eq!(clip.source_rate, 16_000);
    assert!((seconds - 7.1).abs() <= 0.071, "{seconds:.3} s");
}

#[test]
fn missing_file_is_open_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("absent.y4m");
    let err = load_video(&path).unwrap_err();

    assert!(matches!(err, MediaError::Open { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "check the path");
}

#[test]
fn truncated_y4m_is_truncated() {
    let bytes = read(Y4M_CLIP);
    let frame_len = 320 * 192 * 3 / 2;
    // Cut in the middle of the luma plane of the fourth frame.
    let header_len = bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .expect("header line")
        + 1;
    let frame_start = header_len + 3 * (b"FRAME\n".len() + frame_len);
    let (_dir, path) = temp_file("cut.y4m", &bytes[..frame_start + 100 + frame_len / 3]);

    let err = load_video(&path).unwrap_err();
    assert!(matches!(err, MediaError::Truncated { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "frame 3");
    assert_mentions(&err, "re-export or re-copy");
}

#[test]
fn y4m_444_is_unsupported_colour_space() {
    let mut bytes = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C444\nFRAME\n".to_vec();
    bytes.extend(std::iter::repeat_n(128u8, 4 * 2 * 3));
    let (_dir, path) = temp_file("full_chroma.y4m", &bytes);

    let err = load_video(&path).unwrap_err();
    assert!(
        matches!(err, MediaError::UnsupportedColorSpace { .. }),
        "{err:?}"
    );
    assert_names_file(&err, &path);
    assert_mentions(&err, "C444");
    assert_mentions(&err, "-pix_fmt yuv420p");
}

#[test]
fn b_frames_are_rejected() {
    let path = common::media(B_FRAME_CLIP);
    let err = load_video(&path).unwrap_err();

    assert!(matches!(err, MediaError::BFrames { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "-bf 0");
}

/// A stream cut inside a picture is an error, not a shorter clip, so that a
/// damaged copy is noticed. A cut exactly between pictures still loads,
/// because an Annex B stream declares no length to check against.
#[test]
fn truncated_h264_is_truncated() {
    let bytes = read(H264_CLIP);
    let (_dir, path) = temp_file("cut.264", &bytes[..bytes.len() / 2]);

    let err = load_video(&path).unwrap_err();
    assert!(matches!(err, MediaError::Truncated { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "last picture");
    assert_mentions(&err, "re-export or re-copy");
}

#[test]
fn truncated_wav_is_truncated() {
    let bytes = read(SPEECH);
    let (_dir, path) = temp_file("cut.wav", &bytes[..bytes.len() / 2]);

    let err = wav::load(&path).unwrap_err();
    assert!(matches!(err, MediaError::Truncated { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "re-export or re-copy");
}

#[test]
fn text_file_named_264_is_invalid() {
    let (_dir, path) = temp_file("notes.264", b"This is a text file, not H.264.\n");

    let err = load_video(&path).unwrap_err();
    assert!(matches!(err, MediaError::InvalidFile { .. }), "{err:?}");
    assert_names_file(&err, &path);
    assert_mentions(&err, "Annex B");
}

#[tokio::test]
async fn unparsable_sdp_is_invalid_sdp() {
    let peer = common::peer(
        SendMedia {
            video: true,
            audio: true,
        },
        RemoteSinks::default(),
    )
    .await;
    let err = peer.accept_offer("this is not SDP\r\n").await.unwrap_err();
    peer.close().await;

    assert!(matches!(err, MediaError::InvalidSdp(_)), "{err:?}");
    assert_mentions(&err, "SdpInvalidSyntax");
    assert_mentions(&err, "pass on the SDP exactly");
}
