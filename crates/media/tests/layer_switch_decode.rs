//! A receiver of an SFU sees the picture size change whenever the SFU
//! switches it to another simulcast layer: the first frame of the new layer
//! is a keyframe of another size. Each decoder must follow such a switch
//! without errors, in both directions.

mod common;

use hearth_media::VideoCodec;
use hearth_media::codec::{VideoEncoderConfig, new_video_decoder, new_video_encoder};
use hearth_media::source::load_video;

fn decoder_follows_size_changes(codec: VideoCodec) {
    let clip = load_video(&common::media("video/BA1_FT_C.264")).unwrap();
    let full = &clip.frames[..30];
    let config = VideoEncoderConfig {
        bitrate_bps: 300_000,
        max_fps: 25.0,
        keyframe_interval: 0,
        threads: 0,
        ..VideoEncoderConfig::default()
    };
    let mut top = new_video_encoder(codec, config).unwrap();
    let mut quarter = new_video_encoder(codec, config).unwrap();
    let mut decoder = new_video_decoder(codec).unwrap();
    // Ten frames of each layer in turn, as a receiver gets them when the SFU
    // moves it down and up again; each run starts with that layer's keyframe.
    for (run, frames) in full.chunks(10).enumerate() {
        let use_quarter = run % 2 == 1;
        let encoder = if use_quarter { &mut quarter } else { &mut top };
        encoder.request_keyframe();
        for (index, frame) in frames.iter().enumerate() {
            let input = if use_quarter {
                frame.half().half()
            } else {
                frame.clone()
            };
            let Some(encoded) = encoder.encode(&input).unwrap() else {
                continue;
            };
            assert_eq!(
                encoded.keyframe,
                index == 0,
                "{codec}: run {run} frame {index} keyframe flag"
            );
            let decoded = decoder
                .decode(&encoded.data)
                .unwrap_or_else(|err| panic!("{codec}: run {run} frame {index}: {err}"))
                .unwrap_or_else(|| panic!("{codec}: run {run} frame {index} gave no picture"));
            assert_eq!(
                (decoded.width, decoded.height),
                (input.width, input.height),
                "{codec}: run {run} frame {index}"
            );
        }
    }
}

#[test]
fn h264_decoder_follows_layer_switches() {
    decoder_follows_size_changes(VideoCodec::H264);
}

#[test]
fn vp8_decoder_follows_layer_switches() {
    decoder_follows_size_changes(VideoCodec::Vp8);
}
