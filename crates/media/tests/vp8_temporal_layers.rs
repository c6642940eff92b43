//! VP8 with two temporal layers on the foreman clip. The frames alternate
//! between the base layer and the upper layer, the RTP payload descriptors
//! carry each frame's layer, and the base layer alone decodes without
//! corruption at half the frame rate, as an SFU that drops the upper layer
//! forwards it.

mod common;

use hearth_media::VideoCodec;
use hearth_media::codec::vp8::{self, Vp8Decoder, Vp8Encoder};
use hearth_media::codec::{EncodedFrame, VideoEncoderConfig};
use hearth_media::frame::VideoFrame;
use hearth_media::quality::psnr_luma;
use hearth_media::source::load_video;
use hearth_media::video_payload::{self, FramePayloader};

const FRAMES: usize = 150;
const BITRATE_BPS: u32 = 1_000_000;
/// A keyframe requested at an upper-layer position restarts the pattern.
const REQUESTED_KEYFRAME: usize = 75;

fn encode(clip: &[VideoFrame], temporal_layers: u8) -> Vec<EncodedFrame> {
    let mut encoder = Vp8Encoder::new(VideoEncoderConfig {
        bitrate_bps: BITRATE_BPS,
        max_fps: 25.0,
        threads: 1,
        temporal_layers,
        ..VideoEncoderConfig::default()
    })
    .unwrap();
    clip.iter()
        .take(FRAMES)
        .enumerate()
        .map(|(index, frame)| {
            if index == REQUESTED_KEYFRAME {
                encoder.request_keyframe();
            }
            encoder.encode(frame).unwrap().expect("no frame is dropped")
        })
        .collect()
}

/// Decodes the frames that `keep` selects and returns the mean luma PSNR
/// against the clip. Every kept frame must decode intact.
fn decode_kept(
    clip: &[VideoFrame],
    frames: &[EncodedFrame],
    keep: impl Fn(&EncodedFrame) -> bool,
) -> (usize, f64) {
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut psnr_sum = 0.0;
    let mut decoded = 0;
    for (index, frame) in frames.iter().enumerate().filter(|(_, f)| keep(f)) {
        let picture = decoder
            .decode(&frame.data)
            .unwrap_or_else(|err| panic!("frame {index} does not decode: {err}"))
            .expect("a picture");
        psnr_sum += psnr_luma(&clip[index], &picture).unwrap();
        decoded += 1;
    }
    (decoded, psnr_sum / decoded as f64)
}

#[test]
fn vp8_base_layer_decodes_alone() {
    let clip = load_video(&common::media("video/BA1_FT_C.264")).unwrap();
    let frames = encode(&clip.frames, 2);

    // The pattern: base, upper, base, upper, restarted by each keyframe.
    let mut since_keyframe = 0;
    let mut last_base_index = None;
    for (index, frame) in frames.iter().enumerate() {
        if frame.keyframe {
            since_keyframe = 0;
        }
        let layer = frame.temporal.expect("every frame has a temporal layer");
        let base = since_keyframe % 2 == 0;
        assert_eq!(layer.id, u8::from(!base), "frame {index}");
        assert_eq!(layer.discardable, !base, "frame {index}");
        assert!(layer.sync, "frame {index}");
        if base {
            if let Some(last) = last_base_index {
                assert_eq!(layer.base_index, u8::wrapping_add(last, 1), "frame {index}");
            }
            last_base_index = Some(layer.base_index);
        } else {
            assert_eq!(Some(layer.base_index), last_base_index, "frame {index}");
        }
        since_keyframe += 1;
    }
    assert!(frames[0].keyframe);
    assert!(frames[REQUESTED_KEYFRAME].keyframe);
    assert_eq!(frames[REQUESTED_KEYFRAME].temporal.unwrap().id, 0);

    // The RTP payloads carry the same layer fields, on every packet.
    let mut payloader = FramePayloader::new(VideoCodec::Vp8);
    for (index, frame) in frames.iter().enumerate() {
        let payloads = payloader.payload(1150, frame).unwrap();
        for payload in &payloads {
            let descriptor = vp8::parse_payload_descriptor(payload).unwrap();
            assert_eq!(descriptor.temporal, frame.temporal, "frame {index}");
        }
        let joined = video_payload::depacketize(VideoCodec::Vp8, &payloads).unwrap();
        assert_eq!(joined.data, frame.data, "frame {index}");
    }

    let (all_count, all_psnr) = decode_kept(&clip.frames, &frames, |_| true);
    let (base_count, base_psnr) =
        decode_kept(&clip.frames, &frames, |f| f.temporal.unwrap().id == 0);
    let single = encode(&clip.frames, 1);
    assert!(single.iter().all(|f| f.temporal.is_none()));
    let (_, single_psnr) = decode_kept(&clip.frames, &single, |_| true);

    let bytes = |keep: &dyn Fn(&EncodedFrame) -> bool| -> usize {
        frames
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.data.len())
            .sum()
    };
    let base_share = bytes(&|f| f.temporal.unwrap().id == 0) as f64 / bytes(&|_| true) as f64;
    println!(
        "two layers: {all_count} frames at {all_psnr:.2} dB; base layer alone: \
         {base_count} frames at {base_psnr:.2} dB, {:.0} % of the bytes; \
         one layer: {single_psnr:.2} dB",
        base_share * 100.0
    );
    assert_eq!(all_count, FRAMES);
    assert_eq!(
        base_count,
        FRAMES / 2 + 1,
        "the requested keyframe shifts the pattern by one"
    );
    assert!(base_psnr > 32.0, "base layer PSNR {base_psnr:.2} dB");
    assert!(all_psnr > 32.0, "two-layer PSNR {all_psnr:.2} dB");
    assert!(
        single_psnr - all_psnr < 2.0,
        "two layers cost {:.2} dB against one",
        single_psnr - all_psnr
    );
    assert!(
        (0.45..0.85).contains(&base_share),
        "the base layer has {:.0} % of the bytes",
        base_share * 100.0
    );
}
