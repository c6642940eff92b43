//! Opus encoding and decoding at 48 kHz mono, 20 ms frames.

use crate::error::Result;
use crate::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};

/// Default Opus bitrate in bits per second.
pub const DEFAULT_OPUS_BITRATE_BPS: i32 = 32_000;

/// Packet loss the encoder plans its in-band FEC for, in percent. libopus
/// adds the redundant copy of the previous frame (LBRR) only when this is
/// above zero, and spends more bits on it the higher it is.
pub const DEFAULT_EXPECTED_LOSS_PERCENT: i32 = 10;

/// Largest Opus packet the encoder may produce (RFC 6716 section 3.4).
const MAX_PACKET_BYTES: usize = 1275;

/// Maximum size of a packet that carries no audio: with DTX on, libopus returns packets
/// of at most 2 bytes during silence, which a sender does not transmit
/// (RFC 7587 section 3.1.3).
const MAX_DTX_PACKET_BYTES: usize = 2;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    pub bitrate_bps: i32,
    /// In-band forward error correction: each packet also carries the
    /// previous frame at a lower bitrate.
    pub inband_fec: bool,
    pub expected_loss_percent: i32,
    /// Discontinuous transmission: during silence the encoder emits a
    /// comfort-noise update about every 400 ms instead of every frame.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: DEFAULT_OPUS_BITRATE_BPS,
            inband_fec: true,
            expected_loss_percent: DEFAULT_EXPECTED_LOSS_PERCENT,
            dtx: true,
        }
    }
}

/// Opus encoder for speech, by default with in-band FEC and DTX on.
pub struct OpusEncoder {
    encoder: opus::Encoder,
}

impl OpusEncoder {
    /// Creates an encoder with FEC and DTX at `bitrate_bps`.
    pub fn new(bitrate_bps: i32) -> Result<Self> {
        Self::with_config(OpusConfig {
            bitrate_bps,
            ..OpusConfig::default()
        })
    }

    pub fn with_config(config: OpusConfig) -> Result<Self> {
        let mut encoder =
            opus::Encoder::new(AUDIO_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(config.bitrate_bps))?;
        encoder.set_inband_fec(config.inband_fec)?;
        encoder.set_packet_loss_perc(if config.inband_fec {
            config.expected_loss_percent
        } else {
            0
        })?;
        encoder.set_dtx(config.dtx)?;
        Ok(Self { encoder })
    }

    /// Plans in-band FEC for `percent` packet loss from the next frame on.
    /// Values outside 0 to 100 are clamped.
    pub fn set_expected_loss(&mut self, percent: i32) -> Result<()> {
        self.encoder.set_packet_loss_perc(percent.clamp(0, 100))?;
        Ok(())
    }

    /// Encodes one 20 ms frame of `AUDIO_FRAME_SAMPLES` samples in [-1, 1].
    /// With DTX, a silent frame may come back as a packet that
    /// [`is_dtx_packet`] recognises and that need not be sent.
    pub fn encode(&mut self, samples: &[f32]) -> Result<Vec<u8>> {
        debug_assert_eq!(samples.len(), AUDIO_FRAME_SAMPLES);
        Ok(self.encoder.encode_vec_float(samples, MAX_PACKET_BYTES)?)
    }
}

/// Returns whether an encoded packet is a DTX frame without audio, which a
/// sender skips while still advancing the RTP timestamp.
pub fn is_dtx_packet(packet: &[u8]) -> bool {
    packet.len() <= MAX_DTX_PACKET_BYTES
}

/// Opus decoder producing 48 kHz mono.
pub struct OpusDecoder {
    decoder: opus::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self> {
        Ok(Self {
            decoder: opus::Decoder::new(AUDIO_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet into samples in [-1, 1].
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
        // 120 ms is the longest Opus packet.
        let mut output = vec![0.0f32; AUDIO_RATE as usize * 120 / 1000];
        let count = self.decoder.decode_float(packet, &mut output, false)?;
        output.truncate(count);
        Ok(output)
    }

    /// Recovers the lost 20 ms frame before `next_packet` from the
    /// redundant copy that in-band FEC put into `next_packet`. A packet
    /// without FEC data yields the same as [`conceal`](Self::conceal).
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Result<Vec<f32>> {
        let mut output = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        let count = self.decoder.decode_float(next_packet, &mut output, true)?;
        output.truncate(count);
        Ok(output)
    }

    /// Conceals one lost 20 ms frame, or plays comfort noise after a DTX
    /// update.
    pub fn conceal(&mut self) -> Result<Vec<f32>> {
        let mut output = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        let count = self.decoder.decode_float(&[], &mut output, false)?;
        output.truncate(count);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize) -> Vec<f32> {
        (0..frames * AUDIO_FRAME_SAMPLES)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn silence_becomes_dtx_packets() {
        let mut encoder = OpusEncoder::new(DEFAULT_OPUS_BITRATE_BPS).unwrap();
        let silence = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        let dtx = (0..50)
            .map(|_| encoder.encode(&silence).unwrap())
            .filter(|packet| is_dtx_packet(packet))
            .count();
        assert!(dtx > 30, "{dtx} of 50 silent frames were DTX packets");
    }

    #[test]
    fn fec_recovers_a_lost_frame() {
        let input = tone(20);
        let mut encoder = OpusEncoder::new(DEFAULT_OPUS_BITRATE_BPS).unwrap();
        let packets: Vec<Vec<u8>> = input
            .chunks(AUDIO_FRAME_SAMPLES)
            .map(|frame| encoder.encode(frame).unwrap())
            .collect();

        let mut decoder = OpusDecoder::new().unwrap();
        for packet in &packets[..10] {
            decoder.decode(packet).unwrap();
        }
        // Packet 10 is lost; packet 11 carries its FEC copy.
        let recovered = decoder.decode_fec(&packets[11]).unwrap();
        assert_eq!(recovered.len(), AUDIO_FRAME_SAMPLES);
        let energy: f32 = recovered.iter().map(|s| s * s).sum::<f32>() / recovered.len() as f32;
        // A 0.3 sine has a mean power of 0.045; FEC keeps most of it.
        assert!(energy > 0.02, "recovered power {energy}");
    }
}
