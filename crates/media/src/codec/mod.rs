//! Codecs: H.264 through OpenH264, VP8 through libvpx and Opus through libopus.
//!
//! The video codecs share one interface, [`VideoEncoder`] and [`VideoDecoder`],
//! so the send and receive paths handle whichever codec a call negotiated.

pub mod h264;
pub mod opus;
pub mod vp8;
#[allow(unsafe_code)]
mod vpx;

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
use crate::frame::VideoFrame;

/// Default video bitrate in bits per second.
pub const DEFAULT_BITRATE_BPS: u32 = 1_000_000;

/// A video codec that the engine encodes, decodes and negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl VideoCodec {
    /// Every video codec, in the engine's default order of preference.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// Returns the MIME type used in SDP and by the `webrtc` crate, such as `video/VP8`.
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::Vp8 => "video/VP8",
        }
    }

    /// Returns the encoding name of an `a=rtpmap` line, such as `VP8`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H264",
            VideoCodec::Vp8 => "VP8",
        }
    }

    /// Returns the codec with this MIME type (`video/VP8`) or encoding name
    /// (`VP8`), compared case-insensitively.
    pub fn from_mime_type(mime_type: &str) -> Option<Self> {
        let name = mime_type
            .strip_prefix("video/")
            .or_else(|| mime_type.strip_prefix("VIDEO/"))
            .unwrap_or(mime_type);
        Self::ALL
            .into_iter()
            .find(|codec| codec.encoding_name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Vp8 => "VP8",
        })
    }
}

/// Error of parsing a codec name that is neither `h264` nor `vp8`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown video codec {0:?}; expected h264 or vp8")]
pub struct UnknownVideoCodec(pub String);

impl FromStr for VideoCodec {
    type Err = UnknownVideoCodec;

    /// Parses `h264` (also `H.264`) or `vp8`, in any case.
    fn from_str(name: &str) -> std::result::Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "h264" | "h.264" => Ok(VideoCodec::H264),
            "vp8" => Ok(VideoCodec::Vp8),
            _ => Err(UnknownVideoCodec(name.to_owned())),
        }
    }
}

/// Settings of a real-time video encoder.
#[derive(Debug, Clone, Copy)]
pub struct VideoEncoderConfig {
    pub bitrate_bps: u32,
    pub max_fps: f32,
    /// Frames between forced keyframes; 0 sends keyframes only on request.
    pub keyframe_interval: u32,
    /// Encoder threads; 0 starts one per CPU core.
    pub threads: u16,
    /// Turns on the encoder's screen content mode: OpenH264's
    /// `SCREEN_CONTENT_REAL_TIME` usage, libvpx's `VP8E_SET_SCREEN_CONTENT_MODE`.
    /// Screen shares leave it off, because on scrolling text
    /// `hearth-screen-bench` measured OpenH264's mode at 38 dB luma PSNR
    /// against 47 dB without it for a 2.5 Mbit/s target (it spends only
    /// about 0.7 Mbit/s), and libvpx's mode made no difference.
    pub screen_content: bool,
    /// Number of temporal layers, 1 or 2; only the VP8 encoder makes more
    /// than one. With 2, every other frame is a base-layer frame and the
    /// frames between are referenced by no other frame, so an SFU can halve
    /// the frame rate for a receiver by dropping them.
    pub temporal_layers: u8,
}

impl Default for VideoEncoderConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: DEFAULT_BITRATE_BPS,
            max_fps: 30.0,
            keyframe_interval: 0,
            threads: 0,
            screen_content: false,
            temporal_layers: 1,
        }
    }
}

/// One encoded picture: an Annex B access unit for H.264, a VP8 frame for VP8.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// The frame's temporal layer when the encoder makes more than one.
    pub temporal: Option<TemporalLayer>,
}

/// Where one frame sits in a stream with temporal layers (RFC 7741
/// section 4.2): its layer, and the base-layer frame index it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalLayer {
    /// Temporal layer id (TID); 0 is the base layer.
    pub id: u8,
    /// Layer sync (Y): the frame refers to base-layer frames only, so a
    /// receiver can start taking this layer at it.
    pub sync: bool,
    /// Whether no other frame refers to this one (N).
    pub discardable: bool,
    /// Index of the latest base-layer frame, counted from the stream's
    /// start and wrapping at 256 (TL0PICIDX).
    pub base_index: u8,
}

/// A real-time video encoder. The first frame, and the first after a size
/// change, is a keyframe.
pub trait VideoEncoder: Send {
    fn codec(&self) -> VideoCodec;

    /// Makes the next encoded frame a keyframe, as after a PLI or FIR.
    fn request_keyframe(&mut self);

    /// Encodes one frame. Returns `None` when the encoder skipped it.
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>>;
}

/// A video decoder that returns owned I420 frames.
pub trait VideoDecoder: Send {
    fn codec(&self) -> VideoCodec;

    /// Decodes one encoded picture. Returns `None` when the decoder needs more
    /// data before it can output a picture. A corrupt or undecodable picture
    /// is an error, after which the caller should wait for a keyframe.
    fn decode(&mut self, frame: &[u8]) -> Result<Option<VideoFrame>>;
}

/// Creates an encoder for `codec`.
pub fn new_video_encoder(
    codec: VideoCodec,
    config: VideoEncoderConfig,
) -> Result<Box<dyn VideoEncoder>> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(h264::H264Encoder::new(config)?),
        VideoCodec::Vp8 => Box::new(vp8::Vp8Encoder::new(config)?),
    })
}

/// Creates a decoder for `codec`.
pub fn new_video_decoder(codec: VideoCodec) -> Result<Box<dyn VideoDecoder>> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(h264::H264Decoder::new()?),
        VideoCodec::Vp8 => Box::new(vp8::Vp8Decoder::new()?),
    })
}

/// Returns the number of encoder threads that `threads: 0` stands for: one
/// per CPU core, at most `max`.
pub(crate) fn threads_per_core(max: usize) -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, max)
}
