//! Bytes from the network or from files never panic the parsers: random and
//! mutated input goes through the Annex B parser, the H.264 decoder, the
//! reorder buffer and the SDP answerer. The generator is seeded, so a failure
//! reproduces.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_media::codec::h264::H264Decoder;
use hearth_media::jitter::{Framing, JitterBuffer, RtpPacket};
use hearth_media::source::annexb;

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

/// Flips, inserts and deletes a few bytes of a valid stream.
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

#[test]
fn annexb_parser_accepts_any_bytes() {
    let mut random = Random(0x5eed);
    for _ in 0..2000 {
        let len = random.below(512) as usize;
        let mut input = random.bytes(len);
        // Plant start codes so that the NAL unit paths run too.
        for _ in 0..random.below(4) {
            if input.len() > 4 {
                let at = random.below(input.len() as u64 - 3) as usize;
                input[at..at + 3].copy_from_slice(&[0, 0, 1]);
            }
        }
        let units = annexb::split_nal_units(&input);
        for unit in &units {
            let _ = annexb::parse_slice_header(unit);
        }
        let access_units = annexb::group_access_units(&units);
        let total: usize = access_units.iter().map(Vec::len).sum();
        assert_eq!(total, units.len(), "grouping lost or invented NAL units");
    }
}

#[test]
fn h264_decoder_survives_corrupt_frames() {
    let stream = std::fs::read(common::media("video/BA1_FT_C.264")).unwrap();
    let units = annexb::split_nal_units(&stream);
    let access_units = annexb::group_access_units(&units);
    let mut random = Random(0xdec0de);
    let mut decoder = H264Decoder::new().unwrap();
    let mut decoded = 0;

    // The first pictures stay intact, so the decoder has decoded something
    // before the corrupt input starts.
    for (index, access_unit) in access_units.iter().take(120).enumerate() {
        let data = annexb::join_annexb(access_unit);
        let input = if index >= 10 && random.below(3) == 0 {
            mutate(&mut random, &data)
        } else {
            data
        };
        if let Ok(Some(frame)) = decoder.decode(&input) {
            assert_eq!((frame.width, frame.height), (352, 288));
            decoded += 1;
        }
    }
    assert!(
        decoded >= 10,
        "decoded {decoded} frames, expected at least the 10 intact ones"
    );
}

#[test]
fn jitter_buffer_accepts_any_packet_order() {
    let mut random = Random(0x7177e4);
    for framing in [Framing::Marker, Framing::SinglePacket] {
        let mut buffer = JitterBuffer::new(framing, Duration::from_millis(50));
        let start = Instant::now();
        let mut released = 0usize;
        for step in 0..20_000u64 {
            let payload_len = random.below(4) as usize;
            let packet = RtpPacket {
                sequence_number: random.next() as u16,
                timestamp: random.below(8) as u32 * 3000,
                marker: random.below(4) == 0,
                payload: Bytes::from(random.bytes(payload_len)),
            };
            let now = start + Duration::from_millis(step);
            buffer.push(packet, now);
            while let Some(frame) = buffer.pop(now) {
                assert!(
                    !frame.payloads.is_empty(),
                    "a released frame has no payload"
                );
                released += 1;
            }
        }
        assert!(released > 0, "{framing:?}: nothing was released");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answerer_rejects_mutated_offers_without_panic() {
    let dir = std::env::var_os("HEARTH_SDP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/sdp")
        });
    let offer = std::fs::read_to_string(dir.join("01_chromium120_offer.sdp")).unwrap();
    let mut random = Random(0x5d9);

    for _ in 0..40 {
        let mutated = mutate(&mut random, offer.as_bytes());
        let text = String::from_utf8_lossy(&mutated).into_owned();
        let peer = common::peer(Default::default(), Default::default()).await;
        // Either outcome is fine; the process must not panic.
        let _ = peer.accept_offer(&text).await;
        peer.close().await;
    }
}
