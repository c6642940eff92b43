//! Streaming mono resampling between a device's rate and the engine's 48 kHz.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::AudioError;

/// Mono resampler for audio that arrives in blocks of any size. With equal
/// rates it copies the samples through.
pub(crate) struct StreamResampler {
    fft: Option<Fft<f32>>,
    from_hz: u32,
    to_hz: u32,
    pending: Vec<f32>,
    chunk_out: Vec<f32>,
}

impl StreamResampler {
    /// Creates a resampler that consumes 10 ms of input per FFT chunk, which
    /// keeps its delay to a few milliseconds.
    pub(crate) fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let error = |detail: String| AudioError::Resample {
            from_hz,
            to_hz,
            detail,
        };
        let fft = if from_hz == to_hz {
            None
        } else {
            let chunk = (from_hz / 100).max(1) as usize;
            let fft = Fft::<f32>::new(from_hz as usize, to_hz as usize, chunk, 1, FixedSync::Input)
                .map_err(|err| error(err.to_string()))?;
            Some(fft)
        };
        let chunk_out = vec![0.0; fft.as_ref().map_or(0, |fft| fft.output_frames_max())];
        Ok(Self {
            fft,
            from_hz,
            to_hz,
            pending: Vec::new(),
            chunk_out,
        })
    }

    /// Resamples `input` and appends every completed output sample to `output`.
    /// Input shorter than a chunk waits for the next call.
    pub(crate) fn push(&mut self, input: &[f32], output: &mut Vec<f32>) -> Result<(), AudioError> {
        let Some(fft) = &mut self.fft else {
            output.extend_from_slice(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);

        let mut consumed = 0;
        while self.pending.len() - consumed >= fft.input_frames_next() {
            let needed = fft.input_frames_next();
            let chunk = &self.pending[consumed..consumed + needed];
            let frames_out = self.chunk_out.len();
            let (read, written) = {
                let error = |detail: String| AudioError::Resample {
                    from_hz: self.from_hz,
                    to_hz: self.to_hz,
                    detail,
                };
                let input = InterleavedSlice::new(chunk, 1, needed)
                    .map_err(|err| error(err.to_string()))?;
                let mut out = InterleavedSlice::new_mut(&mut self.chunk_out, 1, frames_out)
                    .map_err(|err| error(err.to_string()))?;
                fft.process_into_buffer(&input, &mut out, None)
                    .map_err(|err| error(err.to_string()))?
            };
            output.extend_from_slice(&self.chunk_out[..written]);
            consumed += read;
        }
        self.pending.drain(..consumed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, seconds: f32) -> Vec<f32> {
        let len = (rate as f32 * seconds) as usize;
        (0..len)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn equal_rates_copy_through() {
        let mut resampler = StreamResampler::new(48_000, 48_000).unwrap();
        let mut output = Vec::new();
        resampler.push(&[0.1, 0.2, 0.3], &mut output).unwrap();
        assert_eq!(output, vec![0.1, 0.2, 0.3]);
    }

    #[test]
    fn odd_blocks_keep_the_rate() {
        let input = tone(44_100, 440.0, 1.0);
        let mut resampler = StreamResampler::new(44_100, 48_000).unwrap();
        let mut output = Vec::new();
        for block in input.chunks(333) {
            resampler.push(block, &mut output).unwrap();
        }
        // Everything but the last partial chunk comes out, at the new rate.
        let expected = 48_000;
        assert!(
            output.len() <= expected && output.len() >= expected - 2 * 480,
            "got {} samples for 1 s at 48 kHz",
            output.len()
        );
        let peak = output[4_800..]
            .iter()
            .fold(0.0f32, |max, s| max.max(s.abs()));
        assert!(
            (peak - 0.5).abs() < 0.02,
            "peak {peak} after resampling a 0.5 tone"
        );
    }
}
