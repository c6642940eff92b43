//! WAV reader that returns 48 kHz mono samples.

use std::path::Path;

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use crate::error::{MediaError, Result};
use crate::frame::AUDIO_RATE;
use crate::source::open;

/// Lowest and highest input sample rates accepted, in Hz.
const MIN_RATE: u32 = 8_000;
const MAX_RATE: u32 = 192_000;

/// Speech as 48 kHz mono samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct AudioClip {
    pub samples: Vec<f32>,
    /// Sample rate of the file before resampling.
    pub source_rate: u32,
}

/// Reads a PCM or float WAV file of any channel count, mixes it to mono and
/// resamples it to 48 kHz.
pub fn load(path: &Path) -> Result<AudioClip> {
    let reader =
        hound::WavReader::new(std::io::BufReader::new(open(path)?)).map_err(|err| match err {
            hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                MediaError::Truncated {
                    path: path.to_owned(),
                    detail: "the WAV header is incomplete".into(),
                }
            }
            other => MediaError::InvalidFile {
                path: path.to_owned(),
                detail: format!("not a readable WAV file ({other})"),
            },
        })?;
    let spec = reader.spec();
    if !(MIN_RATE..=MAX_RATE).contains(&spec.sample_rate) {
        return Err(MediaError::UnsupportedFormat {
            path: path.to_owned(),
            detail: format!(
                "sample rate {} Hz is outside {MIN_RATE}..={MAX_RATE} Hz",
                spec.sample_rate
            ),
        });
    }

    let declared = reader.len() as usize;
    let interleaved = read_samples(path, reader, spec)?;
    if interleaved.len() < declared {
        return Err(MediaError::Truncated {
            path: path.to_owned(),
            detail: format!(
                "the data chunk declares {declared} samples but only {} are present",
                interleaved.len()
            ),
        });
    }
    if interleaved.is_empty() {
        return Err(MediaError::InvalidFile {
            path: path.to_owned(),
            detail: "the file contains no samples".into(),
        });
    }

    let channels = usize::from(spec.channels.max(1));
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    let samples = resample(&mono, spec.sample_rate, AUDIO_RATE)?;
    Ok(AudioClip {
        samples,
        source_rate: spec.sample_rate,
    })
}

/// Reads all samples as f32, stopping at the first read error (a truncated
/// data chunk ends in one).
fn read_samples<R: std::io::Read>(
    path: &Path,
    mut reader: hound::WavReader<R>,
    spec: hound::WavSpec,
) -> Result<Vec<f32>> {
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            Ok(reader.samples::<f32>().map_while(|s| s.ok()).collect())
        }
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            Ok(reader
                .samples::<i32>()
                .map_while(|s| s.ok())
                .map(|s| s as f32 * scale)
                .collect())
        }
        (format, bits) => Err(MediaError::UnsupportedFormat {
            path: path.to_owned(),
            detail: format!("{bits}-bit {format:?} samples; use 16-bit PCM or 32-bit float"),
        }),
    }
}

/// Resamples mono audio with rubato's FFT resampler.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    if from_hz == to_hz {
        return Ok(samples.to_vec());
    }
    let error = |detail: String| MediaError::Resample {
        from_hz,
        to_hz,
        detail,
    };
    let mut resampler =
        Fft::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Input)
            .map_err(|err| error(err.to_string()))?;
    let channels = vec![samples.to_vec()];
    let input = SequentialSliceOfVecs::new(&channels, 1, samples.len())
        .map_err(|err| error(err.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|err| error(err.to_string()))?;
    Ok(output.take_data())
}
