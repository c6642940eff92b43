//! Live media for calls that last until hang-up. The local picture comes from
//! a camera or a looping video file, the local sound from a microphone or a
//! looping WAV file. Sending follows mute, camera off and source changes
//! without renegotiation.
//!
//! Video moves as the latest frame on a [`tokio::sync::watch`] channel
//! ([`VideoFeed`]), so the self view and the encoder each take the newest
//! picture and a slow reader skips frames instead of queueing them. Audio moves
//! as 48 kHz mono f32 samples on a bounded channel ([`AudioFeed`]), normally in
//! 20 ms frames of [`AUDIO_FRAME_SAMPLES`](crate::frame::AUDIO_FRAME_SAMPLES).

mod audio_feed;
mod camera;
// Only the camera backend converts pixel formats.
#[cfg_attr(
    not(all(
        feature = "camera",
        any(target_os = "linux", target_os = "windows", target_os = "macos")
    )),
    allow(dead_code)
)]
mod convert;
mod local_video;
mod send;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::frame::VideoFrame;

pub use audio_feed::{AUDIO_FEED_CAPACITY, audio_channel, loop_audio_clip, loop_wav};
pub use camera::{DeviceInfo, list_cameras};
pub use local_video::{LocalVideo, VideoSource};
pub use send::{
    DEFAULT_SCREEN_BITRATE_BPS, DEFAULT_SCREEN_FPS, LiveControls, LiveSend, ScreenControls,
    ScreenSendConfig,
};
pub(crate) use send::{VideoTrack, spawn_live, spawn_screen};

/// The latest local video frame; `None` until the source delivered its first.
pub type VideoFeed = watch::Receiver<Option<Arc<VideoFrame>>>;

/// 48 kHz mono f32 samples in [-1, 1]. Each message is normally one 20 ms
/// frame of 960 samples, but the sender regroups messages of any length. The
/// producer sets the pace, because each complete frame is sent at once.
pub type AudioFeed = mpsc::Receiver<Vec<f32>>;
