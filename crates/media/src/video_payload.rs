//! RTP payload formats of the video codecs: H.264 (RFC 6184) and VP8
//! (RFC 7741). Packetizing and depacketizing use the `rtc` crate; this
//! module picks the format by codec and adds keyframe detection.

use bytes::Bytes;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::codec::vp8::{Vp8Packet, Vp8Payloader};
use rtc::rtp::packetizer::{Depacketizer, Payloader};

use crate::codec::VideoCodec;
use crate::codec::vp8;
use crate::source::annexb;

/// Returns a payloader that splits encoded frames of `codec` into RTP payloads.
///
/// VP8 payloads carry a picture ID (RFC 7741 section 4.2), as browsers send
/// them, so a receiver can tell frames apart across a loss.
pub(crate) fn payloader(codec: VideoCodec) -> Box<dyn Payloader> {
    match codec {
        VideoCodec::H264 => Box::new(H264Payloader::default()),
        VideoCodec::Vp8 => {
            let mut payloader = Vp8Payloader::default();
            payloader.enable_picture_id = true;
            Box::new(payloader)
        }
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

    #[test]
    fn vp8_frame_round_trips_through_payloads() {
        let mut frame = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        frame.extend((0..5000u32).map(|index| (index % 251) as u8));
        let mut payloader = payloader(VideoCodec::Vp8);
        let payloads = payloader
            .payload(1150, &Bytes::from(frame.clone()))
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
        let payloads = payloader(VideoCodec::Vp8)
            .payload(1150, &Bytes::from(frame))
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
