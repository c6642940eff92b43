//! H.264 encoding and decoding with OpenH264.
//!
//! The encoder produces Constrained Baseline (no B-frames, CAVLC), which is what
//! WebRTC negotiates as `profile-level-id=42e01f`.

use openh264::OpenH264API;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;

use super::{VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

pub use super::{DEFAULT_BITRATE_BPS, EncodedFrame};

/// Maximum size of one NAL unit in bytes. Slices are kept smaller than this,
/// so that most fit one RTP packet and need no fragmentation.
const MAX_SLICE_BYTES: u32 = 1100;

/// Settings of the H.264 encoder, the same as every video encoder's.
pub type H264EncoderConfig = VideoEncoderConfig;

/// Real-time H.264 encoder.
pub struct H264Encoder {
    encoder: Encoder,
    force_keyframe: bool,
}

impl H264Encoder {
    pub fn new(config: H264EncoderConfig) -> Result<Self> {
        let intra_period = if config.keyframe_interval == 0 {
            IntraFramePeriod::auto()
        } else {
            IntraFramePeriod::from_num_frames(config.keyframe_interval)
        };
        let usage = if config.screen_content {
            UsageType::ScreenContentRealTime
        } else {
            UsageType::CameraVideoRealTime
        };
        let encoder_config = EncoderConfig::new()
            .usage_type(usage)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.max_fps))
            .skip_frames(false)
            .intra_frame_period(intra_period)
            .max_slice_len(MAX_SLICE_BYTES)
            .num_threads(config.threads);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config)
            .map_err(|err| MediaError::H264Encode(err.to_string()))?;
        Ok(Self {
            encoder,
            force_keyframe: true,
        })
    }

    /// Makes the next encoded frame an IDR frame, as after a PLI or FIR.
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Encodes one frame. Returns `None` when the encoder skipped it.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>> {
        if std::mem::take(&mut self.force_keyframe) {
            self.encoder.force_intra_frame();
        }
        let bitstream = self
            .encoder
            .encode(frame)
            .map_err(|err| MediaError::H264Encode(err.to_string()))?;
        let frame_type = bitstream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: bitstream.to_vec(),
            keyframe: frame_type == FrameType::IDR,
            temporal: None,
        }))
    }
}

/// H.264 decoder that returns owned I420 frames.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|err| MediaError::H264Decode(err.to_string()))?;
        Ok(Self { decoder })
    }

    /// Decodes one access unit (Annex B). Returns `None` when the decoder needs
    /// more data before it can output a picture.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<VideoFrame>> {
        let decoded = self
            .decoder
            .decode(access_unit)
            .map_err(|err| MediaError::H264Decode(decode_error_text(&err)))?;
        Ok(decoded.map(|yuv| copy_decoded(&yuv)))
    }

    /// Returns the pictures the decoder still holds at the end of a stream.
    pub fn flush(&mut self) -> Result<Vec<VideoFrame>> {
        let remaining = self
            .decoder
            .flush_remaining()
            .map_err(|err| MediaError::H264Decode(err.to_string()))?;
        Ok(remaining.iter().map(copy_decoded).collect())
    }
}

/// Returns an OpenH264 error without the crate's trailing "Backtraces
/// enabled." notice, which means nothing to a user.
fn decode_error_text(err: &openh264::Error) -> String {
    let text = err.to_string();
    text.trim_end_matches(" Backtraces enabled.").to_owned()
}

fn copy_decoded(yuv: &DecodedYUV<'_>) -> VideoFrame {
    let (width, height) = yuv.dimensions();
    let (stride_y, stride_u, stride_v) = yuv.strides();
    VideoFrame::from_strided(
        width,
        height,
        [yuv.y(), yuv.u(), yuv.v()],
        [stride_y, stride_u, stride_v],
    )
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn request_keyframe(&mut self) {
        H264Encoder::request_keyframe(self);
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>> {
        H264Encoder::encode(self, frame)
    }
}

impl VideoDecoder for H264Decoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn decode(&mut self, frame: &[u8]) -> Result<Option<VideoFrame>> {
        H264Decoder::decode(self, frame)
    }
}
