//! Broken VP8 from the network never panics: random and mutated frames go
//! through the libvpx decoder, random and mutated RTP payloads through the
//! depacketizer, and a corrupt frame in a real stream is concealed until a
//! keyframe arrives. The generator is seeded, so a failure reproduces.

mod common;

use bytes::Bytes;
use hearth_media::VideoCodec;
use hearth_media::codec::vp8::{Vp8Decoder, Vp8Encoder};
use hearth_media::codec::{EncodedFrame, VideoEncoderConfig};
use hearth_media::jitter::AssembledFrame;
use hearth_media::receive::{FrameOutcome, VideoReceiver};
use hearth_media::source::load_video;
use hearth_media::video_payload;
use hearth_media::video_payload::FramePayloader;

/// xorshift64*: small, deterministic and good enough to spread test input.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Flips, inserts and deletes a few bytes.
fn mutate(random: &mut Random, input: &[u8]) -> Vec<u8> {
    let mut output = input.to_vec();
    for _ in 0..1 + random.below(8) {
        if output.is_empty() {
            break;
        }
        let at = random.below(output.len() as u64) as usize;
        match random.below(3) {
            0 => output[at] ^= 1 << random.below(8),
            1 => output.insert(at, random.next() as u8),
            _ => {
                output.remove(at);
            }
        }
    }
    output
}

/// Encodes the first `count` frames of the foreman clip at 1 Mbit/s, with a
/// keyframe at each index in `keyframes` besides the first frame.
fn foreman_vp8(count: usize, keyframes: &[usize]) -> Vec<EncodedFrame> {
    let clip = load_video(&common::media("video/BA1_FT_C.264")).unwrap();
    let mut encoder = Vp8Encoder::new(VideoEncoderConfig {
        max_fps: 25.0,
        threads: 1,
        ..VideoEncoderConfig::default()
    })
    .unwrap();
    let mut frames = Vec::with_capacity(count);
    for (index, frame) in clip.frames.iter().take(count).enumerate() {
        if keyframes.contains(&index) {
            encoder.request_keyframe();
        }
        frames.push(encoder.encode(frame).unwrap().expect("no frame is dropped"));
    }
    frames
}

fn packetize(frame: &EncodedFrame) -> Vec<Bytes> {
    FramePayloader::new(VideoCodec::Vp8)
        .payload(1150, frame)
        .unwrap()
}

fn assembled(timestamp: u32, payloads: Vec<Bytes>) -> AssembledFrame {
    AssembledFrame {
        timestamp,
        payloads,
        lost_before: 0,
    }
}

#[test]
fn vp8_decoder_survives_random_bytes() {
    let mut random = Random(0x0b8d);
    let mut decoder = Vp8Decoder::new().unwrap();
    for _ in 0..2000 {
        let len = random.below(2048) as usize;
        let mut input = random.bytes(len);
        // Plant a keyframe tag and start code in some inputs, so that the
        // header and partition parsers run rather than the first check.
        if input.len() >= 10 && random.below(2) == 0 {
            input[0] &= 0xfe;
            input[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            input[6..8].copy_from_slice(&(1 + random.below(640) as u16).to_le_bytes());
            input[8..10].copy_from_slice(&(1 + random.below(480) as u16).to_le_bytes());
        }
        if let Ok(Some(frame)) = decoder.decode(&input) {
            assert!(frame.width > 0);
            assert!(frame.height > 0);
            assert_eq!(
                frame.data.len(),
                hearth_media::VideoFrame::i420_len(frame.width, frame.height)
            );
        }
    }
}

#[test]
fn vp8_decoder_survives_mutated_frames() {
    let frames = foreman_vp8(90, &[40, 70]);
    let mut random = Random(0xdec0de);
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut decoded = 0;
    let mut errors = 0;

    // The first pictures stay intact, so the decoder has decoded something
    // before the corrupt input starts.
    for (index, frame) in frames.iter().enumerate() {
        let input = if index >= 10 && random.below(3) == 0 {
            mutate(&mut random, &frame.data)
        } else {
            frame.data.clone()
        };
        match decoder.decode(&input) {
            Ok(Some(picture)) => {
                assert_eq!((picture.width, picture.height), (352, 288));
                decoded += 1;
            }
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(
        decoded >= 10,
        "decoded {decoded} frames, expected at least the 10 intact ones"
    );
    assert!(errors > 0, "no mutated frame was reported as broken");
}

#[test]
fn vp8_depacketizer_survives_random_payloads() {
    let mut random = Random(0x7177e4);
    for _ in 0..5000 {
        let count = 1 + random.below(4) as usize;
        let payloads: Vec<Bytes> = (0..count)
            .map(|_| {
                let len = random.below(16) as usize;
                Bytes::from(random.bytes(len))
            })
            .collect();
        if let Ok(frame) = video_payload::depacketize(VideoCodec::Vp8, &payloads) {
            let total: usize = payloads.iter().map(Bytes::len).sum();
            assert!(frame.data.len() < total, "descriptors were not removed");
        }
    }
}

#[test]
fn vp8_depacketizer_survives_mutated_payloads() {
    let frames = foreman_vp8(20, &[]);
    let mut random = Random(0x9a1d);
    for frame in &frames {
        let payloads = packetize(frame);
        let intact = video_payload::depacketize(VideoCodec::Vp8, &payloads).unwrap();
        assert_eq!(intact.data, frame.data);
        assert_eq!(intact.keyframe, frame.keyframe);

        for _ in 0..20 {
            let mutated: Vec<Bytes> = payloads
                .iter()
                .map(|payload| {
                    if random.below(2) == 0 {
                        Bytes::from(mutate(&mut random, payload))
                    } else {
                        payload.clone()
                    }
                })
                .collect();
            // Either outcome is fine; the depacketizer must not panic.
            let _ = video_payload::depacketize(VideoCodec::Vp8, &mutated);
        }
    }
}

#[test]
fn corrupt_frame_concealed_until_keyframe() {
    // The keyframe requested for frame 20 plays the part of the sender's
    // reply to the receiver's PLI.
    let frames = foreman_vp8(30, &[20]);
    let mut receiver = VideoReceiver::new(VideoCodec::Vp8).unwrap();
    let mut outcomes = Vec::new();
    for (index, frame) in frames.iter().enumerate() {
        let mut payloads = packetize(frame);
        if index == 12 {
            // Cut the frame short, as a sender bug or a broken middlebox would.
            let half = frame.data.len() / 2;
            payloads = packetize(&EncodedFrame {
                data: frame.data[..half].to_vec(),
                keyframe: false,
                temporal: None,
            });
        }
        let outcome = receiver.handle_frame(&assembled(index as u32 * 3600, payloads));
        outcomes.push((outcome, receiver.needs_keyframe()));
    }

    for (index, (outcome, needs_keyframe)) in outcomes.iter().enumerate() {
        match index {
            0..=11 | 20..=29 => {
                assert!(
                    matches!(outcome, FrameOutcome::Decoded(_)),
                    "frame {index}: {outcome:?}"
                );
                assert!(!needs_keyframe, "frame {index} still waits for a keyframe");
            }
            12 => {
                assert!(
                    matches!(outcome, FrameOutcome::Concealed(_)),
                    "frame {index}: {outcome:?}"
                );
                assert!(
                    needs_keyframe,
                    "no keyframe is requested after the corrupt frame"
                );
            }
            _ => {
                assert!(
                    matches!(outcome, FrameOutcome::Skipped),
                    "frame {index}: {outcome:?}"
                );
                assert!(
                    needs_keyframe,
                    "frame {index} stopped waiting for a keyframe"
                );
            }
        }
    }
}

#[test]
fn frame_after_loss_waits_for_keyframe() {
    let frames = foreman_vp8(12, &[8]);
    let mut receiver = VideoReceiver::new(VideoCodec::Vp8).unwrap();
    for (index, frame) in frames.iter().enumerate() {
        if index == 4 {
            continue;
        }
        let mut assembled = assembled(index as u32 * 3600, packetize(frame));
        if index == 5 {
            assembled.lost_before = 3;
        }
        let outcome = receiver.handle_frame(&assembled);
        let decoded = matches!(outcome, FrameOutcome::Decoded(_));
        assert_eq!(
            decoded,
            !(5..8).contains(&index),
            "frame {index}: {outcome:?}"
        );
    }
}
