//! Opus encoding and decoding at 48 kHz mono, 20 ms frames.

use crate::error::Result;
use crate::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};

/// Default Opus bitrate in bits per second.
pub const DEFAULT_OPUS_BITRATE_BPS: i32 = 32_000;

/// Largest Opus packet the encoder may produce (RFC 6716 section 3.4).
const MAX_PACKET_BYTES: usize = 1275;

/// Opus encoder for speech, with in-band FEC on.
pub struct OpusEncoder {
    encoder: opus::Encoder,
}

impl OpusEncoder {
    pub fn new(bitrate_bps: i32) -> Result<Self> {
        let mut encoder =
            opus::Encoder::new(AUDIO_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate_bps))?;
        encoder.set_inband_fec(true)?;
        encoder.set_packet_loss_perc(5)?;
        Ok(Self { encoder })
    }

    /// Encodes one 20 ms frame of `AUDIO_FRAME_SAMPLES` samples in [-1, 1].
    pub fn encode(&mut self, samples: &[f32]) -> Result<Vec<u8>> {
        debug_assert_eq!(samples.len(), AUDIO_FRAME_SAMPLES);
        Ok(self.encoder.encode_vec_float(samples, MAX_PACKET_BYTES)?)
    }
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

    /// Conceals one lost 20 ms frame.
    pub fn conceal(&mut self) -> Result<Vec<f32>> {
        let mut output = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        let count = self.decoder.decode_float(&[], &mut output, false)?;
        output.truncate(count);
        Ok(output)
    }
}
