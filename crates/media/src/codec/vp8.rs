//! VP8 encoding and decoding with libvpx, and the few VP8 bitstream fields
//! the RTP path reads (RFC 6386 section 9.1, RFC 7741 section 4).
//!
//! The encoder runs as WebRTC senders do: one pass, CBR, error resilient, no
//! lag, and a keyframe only at the start, after a size change or on request.

use super::vpx::{self, EncoderSettings};
use super::{
    EncodedFrame, TemporalLayer, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig,
    threads_per_core,
};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// libvpx speed preset (`cpu-used`) for calls. With the real-time deadline
/// libvpx's VP8 encoder runs a negative value `-n` at the fixed speed level
/// `n` (0 slowest, 16 fastest), and a value of 0 or more picks the level
/// itself from the time each frame took. -6 was chosen by measuring -4 to
/// -12 on the foreman and 720p clips with `hearth-codec-bench --vp8-speeds`
/// (docs/benchmarks.md). Faster presets gained little at 720p and lost
/// up to 3.8 dB.
pub const DEFAULT_CPU_USED: i32 = -6;

/// Largest width or height a VP8 frame header can carry (14 bits).
pub const MAX_DIMENSION: usize = 16_383;

/// Maximum encoder threads; VP8 gains little beyond this at call resolutions.
const MAX_THREADS: usize = 4;

/// Real-time VP8 encoder. It creates the libvpx encoder at the first frame
/// and again whenever the frame size changes.
pub struct Vp8Encoder {
    config: VideoEncoderConfig,
    cpu_used: i32,
    encoder: Option<vpx::Encoder>,
    force_keyframe: bool,
    /// Frames since the last keyframe, which picks each frame's temporal layer.
    frames_since_keyframe: u64,
    /// Base-layer frames since the stream started, wrapping (TL0PICIDX).
    base_index: u8,
}

impl Vp8Encoder {
    pub fn new(config: VideoEncoderConfig) -> Result<Self> {
        Self::with_speed(config, DEFAULT_CPU_USED)
    }

    /// Creates an encoder with libvpx speed preset `cpu_used` (-16 to 16).
    pub fn with_speed(config: VideoEncoderConfig, cpu_used: i32) -> Result<Self> {
        if !(-16..=16).contains(&cpu_used) {
            return Err(MediaError::Vp8Encode(format!(
                "cpu-used {cpu_used} is out of range; use -16 to 16"
            )));
        }
        Ok(Self {
            config,
            cpu_used,
            encoder: None,
            force_keyframe: true,
            frames_since_keyframe: 0,
            base_index: 0,
        })
    }

    /// Makes the next encoded frame a keyframe, as after a PLI or FIR.
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Encodes one frame. Returns `None` when the encoder dropped it.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>> {
        check_frame(frame)?;
        let size = (frame.width as u32, frame.height as u32);
        if self
            .encoder
            .as_ref()
            .is_none_or(|encoder| encoder.size() != size)
        {
            tracing::debug!(
                width = size.0,
                height = size.1,
                cpu_used = self.cpu_used,
                "creating the VP8 encoder"
            );
            let settings = self.settings(size);
            let encoder = vpx::Encoder::new(&settings)
                .map_err(|err| MediaError::Vp8Encode(err.to_string()))?;
            self.encoder = Some(encoder);
            self.force_keyframe = true;
        }
        let force_keyframe = std::mem::take(&mut self.force_keyframe);
        if force_keyframe {
            self.frames_since_keyframe = 0;
        }
        let encoder = self
            .encoder
            .as_mut()
            .expect("the encoder was created above");
        let layers = encoder.temporal_layers();
        let layer = (self.frames_since_keyframe % u64::from(layers)) as u32;
        let encoded = encoder
            .encode(frame, force_keyframe, layer)
            .map_err(|err| MediaError::Vp8Encode(err.to_string()))?;
        let Some(encoded) = encoded else {
            return Ok(None);
        };
        // A keyframe the encoder chose itself also restarts the pattern.
        if encoded.keyframe {
            self.frames_since_keyframe = 0;
        }
        let temporal = (layers > 1).then(|| {
            let base = self.frames_since_keyframe.is_multiple_of(2);
            if base {
                self.base_index = self.base_index.wrapping_add(1);
            }
            TemporalLayer {
                id: u8::from(!base),
                sync: true,
                discardable: !base,
                base_index: self.base_index,
            }
        });
        self.frames_since_keyframe += 1;
        Ok(Some(EncodedFrame {
            data: encoded.data,
            keyframe: encoded.keyframe,
            temporal,
        }))
    }

    fn settings(&self, (width, height): (u32, u32)) -> EncoderSettings {
        let threads = match self.config.threads {
            0 => threads_per_core(MAX_THREADS),
            threads => usize::from(threads),
        };
        EncoderSettings {
            width,
            height,
            bitrate_kbps: self.config.bitrate_bps.div_ceil(1000),
            fps: self.config.max_fps,
            threads: threads as u32,
            keyframe_interval: self.config.keyframe_interval,
            cpu_used: self.cpu_used,
            screen_content: self.config.screen_content,
            temporal_layers: u32::from(self.config.temporal_layers.clamp(1, 2)),
        }
    }
}

fn check_frame(frame: &VideoFrame) -> Result<()> {
    if frame.width == 0
        || frame.height == 0
        || frame.data.len() < VideoFrame::i420_len(frame.width, frame.height)
    {
        return Err(MediaError::Vp8Encode(format!(
            "a {}x{} frame of {} bytes is not a complete I420 picture",
            frame.width,
            frame.height,
            frame.data.len()
        )));
    }
    if frame.width > MAX_DIMENSION || frame.height > MAX_DIMENSION {
        return Err(MediaError::Vp8Encode(format!(
            "a {}x{} frame is larger than VP8's maximum of {MAX_DIMENSION} pixels a side",
            frame.width, frame.height
        )));
    }
    Ok(())
}

/// VP8 decoder that returns owned I420 frames.
pub struct Vp8Decoder {
    decoder: vpx::Decoder,
}

impl Vp8Decoder {
    pub fn new() -> Result<Self> {
        let decoder = vpx::Decoder::new().map_err(|err| MediaError::Vp8Decode(err.to_string()))?;
        Ok(Self { decoder })
    }

    /// Decodes one VP8 frame. A frame that does not parse, and a frame that
    /// libvpx decodes but marks corrupt because it refers to a lost or broken
    /// frame, are errors: the caller should keep showing the last good
    /// picture and request a keyframe.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<VideoFrame>> {
        let decoded = self
            .decoder
            .decode(frame)
            .map_err(|err| MediaError::Vp8Decode(err.to_string()))?;
        match decoded {
            Some(decoded) if decoded.corrupt => Err(MediaError::Vp8Decode(
                "the frame is corrupt because a frame it refers to was lost or broken".into(),
            )),
            Some(decoded) => Ok(Some(decoded.frame)),
            None => Ok(None),
        }
    }
}

impl VideoEncoder for Vp8Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Vp8
    }

    fn request_keyframe(&mut self) {
        Vp8Encoder::request_keyframe(self);
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>> {
        Vp8Encoder::encode(self, frame)
    }
}

impl VideoDecoder for Vp8Decoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Vp8
    }

    fn decode(&mut self, frame: &[u8]) -> Result<Option<VideoFrame>> {
        Vp8Decoder::decode(self, frame)
    }
}

/// Returns whether a VP8 frame is a keyframe: the frame tag's inverse
/// keyframe bit is 0 and the start code 9d 01 2a follows (RFC 6386 section 9.1).
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 0x01 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

/// Returns the width and height of a VP8 keyframe, without the scaling bits.
pub fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if !is_keyframe(frame) {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// Fields of the VP8 RTP payload descriptor (RFC 7741 section 4.2) that
/// frame assembly needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadDescriptor {
    /// Length of the descriptor in bytes; the VP8 data follows it.
    pub len: usize,
    /// S bit: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// Partition index (PID).
    pub partition_index: u8,
    pub picture_id: Option<u16>,
    /// The temporal layer fields, when the descriptor has TL0PICIDX and TID.
    pub temporal: Option<TemporalLayer>,
}

impl PayloadDescriptor {
    /// Returns whether this packet starts a frame: S set in partition 0.
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

/// Parses the payload descriptor at the start of a VP8 RTP payload. Returns
/// `None` when it is truncated or no VP8 data follows it.
pub fn parse_payload_descriptor(payload: &[u8]) -> Option<PayloadDescriptor> {
    let first = *payload.first()?;
    let mut len = 1;
    let mut picture_id = None;
    let mut temporal = None;
    if first & 0x80 != 0 {
        let extension = *payload.get(len)?;
        len += 1;
        if extension & 0x80 != 0 {
            let high = *payload.get(len)?;
            len += 1;
            if high & 0x80 != 0 {
                let low = *payload.get(len)?;
                len += 1;
                picture_id = Some(u16::from(high & 0x7f) << 8 | u16::from(low));
            } else {
                picture_id = Some(u16::from(high));
            }
        }
        // L: TL0PICIDX, then one byte shared by T and K.
        let mut base_index = None;
        if extension & 0x40 != 0 {
            base_index = Some(*payload.get(len)?);
            len += 1;
        }
        if extension & 0x30 != 0 {
            let layer = *payload.get(len)?;
            len += 1;
            if extension & 0x20 != 0 {
                temporal = Some(TemporalLayer {
                    id: layer >> 6,
                    sync: layer & 0x20 != 0,
                    discardable: first & 0x20 != 0,
                    base_index: base_index.unwrap_or(0),
                });
            }
        }
    }
    (payload.len() > len).then_some(PayloadDescriptor {
        len,
        start_of_partition: first & 0x10 != 0,
        partition_index: first & 0x07,
        picture_id,
        temporal,
    })
}

/// Returns whether an RTP payload starts a VP8 keyframe, from its payload
/// descriptor and the first byte of the VP8 payload header (RFC 7741
/// section 4.3): only the first packet of a frame carries that header.
pub fn payload_starts_keyframe(payload: &[u8]) -> bool {
    let Some(descriptor) = parse_payload_descriptor(payload) else {
        return false;
    };
    descriptor.starts_frame() && payload[descriptor.len] & 0x01 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize, shift: usize) -> VideoFrame {
        let mut data = vec![128u8; VideoFrame::i420_len(width, height)];
        for row in 0..height {
            for column in 0..width {
                data[row * width + column] = ((row + column + shift) % 256) as u8;
            }
        }
        VideoFrame {
            width,
            height,
            data,
        }
    }

    #[test]
    fn round_trip_keeps_size_and_content() {
        let mut encoder = Vp8Encoder::new(VideoEncoderConfig::default()).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        for index in 0..5 {
            let frame = gradient(176, 144, index * 2);
            let encoded = encoder.encode(&frame).unwrap().expect("a frame");
            assert_eq!(encoded.keyframe, index == 0, "frame {index}");
            assert_eq!(is_keyframe(&encoded.data), index == 0, "frame {index}");
            let decoded = decoder.decode(&encoded.data).unwrap().expect("a picture");
            assert_eq!((decoded.width, decoded.height), (176, 144));
            let psnr = crate::quality::psnr_luma(&frame, &decoded).unwrap();
            assert!(psnr > 30.0, "frame {index}: PSNR {psnr:.1} dB");
        }
    }

    #[test]
    fn odd_size_round_trips() {
        let mut encoder = Vp8Encoder::new(VideoEncoderConfig::default()).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let frame = gradient(33, 17, 0);
        let encoded = encoder.encode(&frame).unwrap().expect("a frame");
        assert_eq!(keyframe_size(&encoded.data), Some((33, 17)));
        let decoded = decoder.decode(&encoded.data).unwrap().expect("a picture");
        assert_eq!((decoded.width, decoded.height), (33, 17));
        assert_eq!(decoded.data.len(), VideoFrame::i420_len(33, 17));
    }

    #[test]
    fn keyframe_on_request_and_size_change() {
        let mut encoder = Vp8Encoder::new(VideoEncoderConfig::default()).unwrap();
        let first = encoder.encode(&gradient(64, 48, 0)).unwrap().unwrap();
        let second = encoder.encode(&gradient(64, 48, 1)).unwrap().unwrap();
        encoder.request_keyframe();
        let requested = encoder.encode(&gradient(64, 48, 2)).unwrap().unwrap();
        let resized = encoder.encode(&gradient(96, 64, 3)).unwrap().unwrap();
        assert!(first.keyframe);
        assert!(!second.keyframe);
        assert!(requested.keyframe);
        assert!(resized.keyframe);
        assert_eq!(keyframe_size(&resized.data), Some((96, 64)));
    }

    #[test]
    fn incomplete_frame_is_an_error() {
        let mut encoder = Vp8Encoder::new(VideoEncoderConfig::default()).unwrap();
        let frame = VideoFrame {
            width: 64,
            height: 48,
            data: vec![0; 100],
        };
        assert!(matches!(
            encoder.encode(&frame),
            Err(MediaError::Vp8Encode(_))
        ));
        assert!(Vp8Encoder::with_speed(VideoEncoderConfig::default(), 17).is_err());
    }

    #[test]
    fn empty_and_garbage_input_are_errors() {
        let mut decoder = Vp8Decoder::new().unwrap();
        assert!(decoder.decode(&[]).is_err());
        assert!(decoder.decode(&[0xff; 3]).is_err());
    }

    #[test]
    fn payload_descriptor_forms() {
        // Minimal descriptor, start of partition 0, then a keyframe tag.
        let minimal = [0x10, 0x50, 0x01];
        let descriptor = parse_payload_descriptor(&minimal).unwrap();
        assert_eq!(descriptor.len, 1);
        assert!(descriptor.starts_frame());
        assert!(payload_starts_keyframe(&minimal));

        // X, I with a 15-bit picture ID, L and T/K bytes, inter frame.
        let extended = [0x90, 0xf0, 0x81, 0x23, 0x07, 0x40, 0x01];
        let descriptor = parse_payload_descriptor(&extended).unwrap();
        assert_eq!(descriptor.len, 6);
        assert_eq!(descriptor.picture_id, Some(0x0123));
        assert!(!payload_starts_keyframe(&extended));

        // A continuation packet never starts a keyframe.
        assert!(!payload_starts_keyframe(&[0x00, 0x50]));
        // Truncated descriptors and descriptors with no data are rejected.
        assert_eq!(parse_payload_descriptor(&[0x90, 0x80]), None);
        assert_eq!(parse_payload_descriptor(&[0x10]), None);
        assert_eq!(parse_payload_descriptor(&[]), None);
    }
}
