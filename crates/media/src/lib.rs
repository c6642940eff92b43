//! Hearth's native media engine: file sources, H.264, VP8 and Opus codecs, peer
//! connections with the `webrtc` crate, receive paths, sinks and statistics.
//! It has no notion of chat or the server, so signalling is the caller's job.

pub mod audio;
pub mod audio_jitter;
pub mod codec;
pub mod error;
pub mod fec;
pub mod frame;
pub mod jitter;
mod keyframe_forwarder;
pub mod live;
pub mod negotiate;
pub mod peer;
pub mod quality;
pub mod receive;
pub mod record;
pub mod screen;
pub mod send;
pub mod sink;
pub mod source;
pub mod stats;
pub mod video_payload;

pub use codec::VideoCodec;
pub use error::{MediaError, Result};
pub use frame::VideoFrame;
pub use live::{
    AudioFeed, DeviceInfo, LiveControls, LiveSend, LocalVideo, ScreenControls, ScreenSendConfig,
    VideoFeed, VideoSource, list_cameras,
};
pub use peer::{
    Answerer, Candidate, MediaPeer, PeerConfig, PeerEvent, RemoteSinks, SCREEN_TRACK_SUFFIX,
    SendMedia, StreamSinks,
};
pub use screen::{ScreenCapture, ScreenError, ScreenSource, SourceId, list_sources};
pub use send::VideoCodecSwitch;
