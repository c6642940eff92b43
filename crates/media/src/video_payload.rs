//! RTP payload formats of the video codecs: H.264 (RFC 6184) and VP8
//! (RFC 7741). H.264 packetizing and all depacketizing use the `rtc` crate.
//! VP8 frames are packetized here, because the descriptor must carry the
//! temporal layer fields that `rtc`'s VP8 payloader does not write.

use bytes::Bytes;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::{Depacketizer, Payloader};

use crate::codec::vp8;
use crate::codec::{EncodedFrame, TemporalLayer, VideoCodec};
use crate::source::annexb;

/// Splits encoded frames of one codec into RTP payloads.
pub enum FramePayloader {
    H264(H264Payloader),
    Vp8(Vp8Payloader),
}

impl FramePayloader {
    pub fn new(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::H264 => Self::H264(H264Payloader::default()),
            VideoCodec::Vp8 => Self::Vp8(Vp8Payloader::default()),
        }
    }

    /// Returns the payloads of one frame, none longer than `mtu` bytes.
    pub fn payload(
        &mut self,
        mtu: usize,
        frame: &EncodedFrame,
    ) -> crate::error::Result<Vec<Bytes>> {
        match self {
            Self::H264(payloader) => Ok(payloader.payload(mtu, &Bytes::from(frame.data.clone()))?),
            Self::Vp8(payloader) => Ok(payloader.payload(mtu, &frame.data, frame.temporal)),
        }
    }
}

/// Splits VP8 frames into RTP payloads. Every descriptor carries a 15-bit
/// picture ID, as browsers send it, so that a receiver can tell frames apart
/// across a loss. A frame with a temporal layer also carries TL0PICIDX, the
/// layer id, the sync bit and the discardable bit, which an SFU reads to
/// drop upper-layer frames.
#[derive(Debug, Default)]
pub struct Vp8Payloader {
    picture_id: u16,
}

/// The descriptor's M bit: the picture ID takes 15 bits.
const PICTURE_ID_15_BIT: u8 = 0x80;

impl Vp8Payloader {
    /// Returns the payloads of one VP8 frame, none longer than `mtu` bytes.
    /// An empty frame, or an `mtu` too small for a descriptor and one byte,
    /// gives no payloads.
    pub fn payload(
        &mut self,
        mtu: usize,
        frame: &[u8],
        temporal: Option<TemporalLayer>,
    ) -> Vec<Bytes> {
        let mut descriptor = vec![0x80, 0x80];
        if let Some(layer) = temporal {
            descriptor[1] |= 0x40 | 0x20;
            if layer.discardable {
                descriptor[0] |= 0x20;
            }
        }
        descriptor.push(PICTURE_ID_15_BIT | (self.picture_id >> 8) as u8 & 0x7f);
        descriptor.push(self.picture_id as u8);
        if let Some(layer) = temporal {
            descriptor.push(layer.base_index);
            descriptor.push((layer.id & 0x03) << 6 | u8::from(layer.sync) << 5);
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;

        let room = mtu.saturating_sub(descriptor.len());
        if frame.is_empty() || room == 0 {
            return Vec::new();
        }
        frame
            .chunks(room)
            .enumerate()
            .map(|(index, chunk)| {
                let mut payload = Vec::with_capacity(descriptor.len() + chunk.len());
                payload.extend_from_slice(&descriptor);
                if index == 0 {
                    // S: the first packet starts partition 0.
                    payload[0] |= 0x10;
                }
                payload.extend_from_slice(chunk);
                Bytes::from(payload)
            })
            .collect()
    }
}

/// An encoded frame joined from the RTP payloads of one RTP timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepacketizedFrame {
    /// An Annex B access unit for H.264, a VP8 frame for VP8.
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Failure to join a frame's RTP payloads into an encoded frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DepacketizeError {
    #[error("malformed {codec} RTP payload {index}: {reason}")]
    Malformed {
        codec: VideoCodec,
        index: usize,
        reason: String,
    },
    #[error("the first packet of the {codec} frame is missing")]
    MissingStart { codec: VideoCodec },
    #[error("the {codec} frame has no payload data")]
    Empty { codec: VideoCodec },
}

/// Joins the RTP payloads of one frame, in sequence order, into the encoded frame.
pub fn depacketize(
    codec: VideoCodec,
    payloads: &[Bytes],
) -> Result<DepacketizedFrame, DepacketizeError> {
    match codec {
        VideoCodec::H264 => depacketize_h264(payloads),
        VideoCodec::Vp8 => depacketize_vp8(payloads),
    }
}

/// Joins single NAL unit, STAP-A and FU-A payloads into an Annex B access unit.
fn depacketize_h264(payloads: &[Bytes]) -> Result<DepacketizedFrame, DepacketizeError> {
    let codec = VideoCodec::H264;
    let mut depacketizer = H264Packet::default();
    let mut access_unit = Vec::new();
    for (index, payload) in payloads.iter().enumerate() {
        let nal_units =
            depacketizer
                .depacketize(payload)
                .map_err(|err| DepacketizeError::Malformed {
                    codec,
                    index,
                    reason: err.to_string(),
                })?;
        access_unit.extend_from_slice(&nal_units);
    }
    if access_unit.is_empty() {
        return Err(DepacketizeError::Empty { codec });
    }
    let keyframe = annexb::contains_idr(&access_unit);
    Ok(DepacketizedFrame {
        data: access_unit,
        keyframe,
    })
}

/// Strips the payload descriptors and joins the VP8 data. The first payload
/// must start partition 0, or the start of the frame was lost.
fn depacketize_vp8(payloads: &[Bytes]) -> Result<DepacketizedFrame, DepacketizeError> {
    let codec = VideoCodec::Vp8;
    let first = payloads.first().ok_or(DepacketizeError::Empty { codec })?;
    let starts_frame =
        vp8::parse_payload_descriptor(first).is_some_and(|descriptor| descriptor.starts_frame());
    if !starts_frame {
        return Err(DepacketizeError::MissingStart { codec });
    }
    let keyframe = vp8::payload_starts_keyframe(first);

    let mut frame = Vec::with_capacity(payloads.iter().map(Bytes::len).sum());
    for (index, payload) in payloads.iter().enumerate() {
        let data = vp8_payload_data(payload).map_err(|reason| DepacketizeError::Malformed {
            codec,
            index,
            reason,
        })?;
        frame.extend_from_slice(&data);
    }
    Ok(DepacketizedFrame {
        data: frame,
        keyframe,
    })
}

/// Returns the VP8 data after the payload descriptor.
fn vp8_payload_data(payload: &Bytes) -> Result<Bytes, String> {
    match Vp8Packet::default().depacketize(payload) {
        Ok(data) => Ok(data),
        // NOTE: `rtc` 0.21 rejects every payload shorter than 4 bytes. A
        // sender without picture IDs may end a frame with a 2- or 3-byte
        // packet (a 1-byte descriptor and the frame's last bytes), which
        // RFC 7741 allows, so those are parsed here instead.
        Err(err) if payload.len() < 4 => match vp8::parse_payload_descriptor(payload) {
            Some(descriptor) => Ok(payload.slice(descriptor.len..)),
            None => Err(err.to_string()),
        },
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(data: Vec<u8>, temporal: Option<TemporalLayer>) -> EncodedFrame {
        EncodedFrame {
            data,
            keyframe: false,
            temporal,
        }
    }

    #[test]
    fn vp8_descriptor_carries_the_temporal_layer() {
        let mut payloader = Vp8Payloader::default();
        let upper = TemporalLayer {
            id: 1,
            sync: true,
            discardable: true,
            base_index: 200,
        };
        let frame: Vec<u8> = (0..2500u32).map(|index| (index % 7) as u8 | 0x01).collect();
        let first = payloader.payload(1000, &frame, None);
        let second = payloader.payload(1000, &frame, Some(upper));
        assert_eq!(first.len(), 3);
        assert_eq!(second.len(), 3);
        assert!(second.iter().all(|payload| payload.len() <= 1000));

        let plain = vp8::parse_payload_descriptor(&first[0]).unwrap();
        assert_eq!(
            (plain.len, plain.picture_id, plain.temporal),
            (4, Some(0), None)
        );
        let layered = vp8::parse_payload_descriptor(&second[0]).unwrap();
        assert_eq!(layered.len, 6);
        assert_eq!(layered.picture_id, Some(1));
        assert_eq!(layered.temporal, Some(upper));
        assert!(layered.starts_frame());
        let continuation = vp8::parse_payload_descriptor(&second[1]).unwrap();
        assert!(!continuation.starts_frame());
        assert_eq!(continuation.temporal, Some(upper));

        // The picture ID wraps at 15 bits.
        payloader.picture_id = 0x7fff;
        payloader.payload(1000, &frame, None);
        let wrapped = payloader.payload(1000, &frame, None);
        assert_eq!(
            vp8::parse_payload_descriptor(&wrapped[0])
                .unwrap()
                .picture_id,
            Some(0)
        );
        assert!(payloader.payload(1000, &[], None).is_empty());
        assert!(payloader.payload(6, &frame, Some(upper)).is_empty());
    }

    #[test]
    fn vp8_frame_round_trips_through_payloads() {
        let mut frame = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        frame.extend((0..5000u32).map(|index| (index % 251) as u8));
        let mut payloader = FramePayloader::new(VideoCodec::Vp8);
        let payloads = payloader
            .payload(1150, &encoded(frame.clone(), None))
            .unwrap();
        assert!(payloads.len() >= 5);
        assert!(payloads.iter().all(|payload| payload.len() <= 1150));

        let joined = depacketize(VideoCodec::Vp8, &payloads).unwrap();
        assert_eq!(joined.data, frame);
        assert!(joined.keyframe);
    }

    #[test]
    fn vp8_frame_without_its_start_is_rejected() {
        let frame: Vec<u8> = (0..3000u32).map(|index| (index % 7) as u8 | 0x01).collect();
        let payloads = FramePayloader::new(VideoCodec::Vp8)
            .payload(1150, &encoded(frame, None))
            .unwrap();
        assert_eq!(
            depacketize(VideoCodec::Vp8, &payloads[1..]),
            Err(DepacketizeError::MissingStart {
                codec: VideoCodec::Vp8
            })
        );
        assert!(!depacketize(VideoCodec::Vp8, &payloads).unwrap().keyframe);
    }

    #[test]
    fn short_vp8_payloads_are_accepted() {
        // A 1-byte descriptor frame start with one data byte, then a
        // continuation with one data byte.
        let payloads = [
            Bytes::from_static(&[0x10, 0x51]),
            Bytes::from_static(&[0x00, 0x07]),
        ];
        let joined = depacketize(VideoCodec::Vp8, &payloads).unwrap();
        assert_eq!(joined.data, vec![0x51, 0x07]);
        assert!(!joined.keyframe);
    }

    #[test]
    fn empty_frames_are_rejected() {
        assert!(depacketize(VideoCodec::Vp8, &[]).is_err());
        assert!(depacketize(VideoCodec::H264, &[]).is_err());
    }
}
