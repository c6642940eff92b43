//! Errors of the media engine.

use std::path::PathBuf;

/// Failures of the media engine. Bad input files and bad remote SDP are errors,
/// never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("cannot open media file {path}: {source}; check the path and the file permissions")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("media file {path} is truncated: {detail}; re-export or re-copy the file")]
    Truncated { path: PathBuf, detail: String },

    #[error("media file {path} is invalid: {detail}")]
    InvalidFile { path: PathBuf, detail: String },

    #[error(
        "Y4M file {path} uses colour space {colorspace}, which is not supported; \
         convert it to 4:2:0, for example with `ffmpeg -i IN -pix_fmt yuv420p OUT.y4m`"
    )]
    UnsupportedColorSpace { path: PathBuf, colorspace: String },

    #[error(
        "H.264 file {path} contains B-frames (first at frame {frame}); WebRTC needs \
         Constrained Baseline without B-frames, so re-encode it, for example with \
         `ffmpeg -i IN -c:v libx264 -profile:v baseline -bf 0 OUT.264`"
    )]
    BFrames { path: PathBuf, frame: usize },

    #[error("unsupported media file {path}: {detail}")]
    UnsupportedFormat { path: PathBuf, detail: String },

    #[error("H.264 encoder failed: {0}")]
    H264Encode(String),

    #[error("H.264 decoder failed: {0}")]
    H264Decode(String),

    #[error("VP8 encoder failed: {0}")]
    Vp8Encode(String),

    #[error("VP8 decoder failed: {0}")]
    Vp8Decode(String),

    #[error("Opus codec failed: {0}")]
    Opus(#[from] opus::Error),

    #[error("resampling from {from_hz} Hz to {to_hz} Hz failed: {detail}")]
    Resample {
        from_hz: u32,
        to_hz: u32,
        detail: String,
    },

    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),

    #[error(transparent)]
    Screen(#[from] crate::screen::ScreenError),

    #[error(transparent)]
    AudioProcessing(#[from] crate::audio::ProcessingError),

    #[error("invalid peer configuration: {0}")]
    InvalidConfig(String),

    #[error("invalid SDP: {0}")]
    InvalidSdp(String),

    #[error("no common codec: {0}")]
    NoCommonCodec(String),

    #[error("peer connection failed: {0}")]
    Peer(#[from] webrtc::error::Error),

    #[error("camera {id} not found; choose one from the camera list or reconnect it")]
    CameraMissing { id: String },

    #[error(
        "camera {id} is busy because another application is using it; close that application and try again"
    )]
    CameraBusy { id: String },

    #[error("camera {id} failed: {reason}")]
    CameraFailed { id: String, reason: String },

    #[error("listing cameras failed: {reason}")]
    CameraList { reason: String },

    #[error("this peer does not send {kind}; create it with `SendMedia {{ {kind}: true, .. }}`")]
    NotSending { kind: &'static str },

    #[error(
        "live sending has already started on this peer; use its `LiveControls` to change sources"
    )]
    LiveAlreadyStarted,

    #[error(
        "the screen share has already started on this peer; use its `ScreenControls` to \
         change or stop the source"
    )]
    ScreenAlreadyStarted,

    #[error("{kind} sending has stopped because the peer connection closed")]
    SendingStopped { kind: &'static str },

    #[error("cannot start the {name} thread: {source}")]
    ThreadSpawn {
        name: &'static str,
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = MediaError> = std::result::Result<T, E>;
