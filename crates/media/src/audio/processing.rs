//! Capture processing between the microphone and the encoder, without I/O:
//! the far-end audio that the speaker played and the microphone's samples go
//! in, processed samples and a voice probability come out.
//!
//! The chain runs on 10 ms chunks of 48 kHz mono. First come a high-pass
//! filter and echo cancellation (the WebRTC audio processing module 0.3),
//! then noise suppression (RNNoise through nnnoiseless, or the module's own).
//! Automatic gain control comes last, in a second instance of the module, so
//! that it works on the denoised signal. RNNoise also runs when its output is
//! not used, because its voice probability drives the "talking while muted"
//! hint.

use super::apm;

/// Samples in one processing chunk: 10 ms at 48 kHz.
pub const CHUNK_SAMPLES: usize = 480;
/// RNNoise takes samples in the range of 16-bit integers.
const RNNOISE_SCALE: f32 = 32_768.0;

/// The noise suppressor of the capture processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseSuppression {
    Off,
    /// RNNoise, a recurrent network trained on speech and noise.
    #[default]
    Rnnoise,
    /// The audio processing module's spectral suppressor at its high level.
    Apm,
}

/// Strength of the echo canceller's non-linear stage, which suppresses what
/// the linear filter left. A higher level removes more residual echo but also more of
/// the near end while both sides talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoSuppression {
    Low,
    #[default]
    Moderate,
    High,
}

/// Settings of the capture processing. Every field can change during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ProcessingConfig {
    pub echo_cancellation: bool,
    pub echo_suppression: EchoSuppression,
    pub noise_suppression: NoiseSuppression,
    pub gain_control: bool,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            echo_suppression: EchoSuppression::Moderate,
            noise_suppression: NoiseSuppression::Rnnoise,
            gain_control: true,
        }
    }
}

impl ProcessingConfig {
    /// Returns a configuration with every stage off, which leaves the
    /// samples unchanged apart from RNNoise's voice detection.
    pub fn bypass() -> Self {
        Self {
            echo_cancellation: false,
            echo_suppression: EchoSuppression::Moderate,
            noise_suppression: NoiseSuppression::Off,
            gain_control: false,
        }
    }
}

/// Failure of the audio processing module.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessingError {
    #[error("the audio processing module failed to start (error code {code})")]
    Create { code: String },
    #[error("the audio processing module rejected a chunk: {detail}")]
    Process { detail: String },
}

/// The capture processing chain of one call.
pub struct AudioProcessor {
    config: ProcessingConfig,
    /// High-pass filter, echo cancellation and the module's own noise suppression.
    echo: apm::Module,
    /// Gain control after noise suppression.
    gain: apm::Module,
    denoise: Box<nnnoiseless::DenoiseState<'static>>,
    far_end: Vec<f32>,
    capture: Vec<f32>,
    chunk: Vec<f32>,
    scaled: Vec<f32>,
    denoised: Vec<f32>,
    /// RNNoise's voice probability of each chunk of the last capture call.
    voice_probabilities: Vec<f32>,
}

impl AudioProcessor {
    pub fn new(config: ProcessingConfig) -> Result<Self, ProcessingError> {
        if !apm::AVAILABLE && (config.echo_cancellation || config.gain_control) {
            // NOTE: without the module (Windows) there is no echo
            // cancellation and no gain control, only RNNoise.
            tracing::warn!("echo cancellation and gain control are not available on this OS");
        }
        let mut processor = Self {
            config,
            echo: apm::Module::new()?,
            gain: apm::Module::new()?,
            denoise: nnnoiseless::DenoiseState::new(),
            far_end: Vec::new(),
            capture: Vec::new(),
            chunk: vec![0.0; CHUNK_SAMPLES],
            scaled: vec![0.0; CHUNK_SAMPLES],
            denoised: vec![0.0; CHUNK_SAMPLES],
            voice_probabilities: Vec::new(),
        };
        processor.apply_config();
        Ok(processor)
    }

    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// Changes the processing from the next chunk on, without a gap.
    pub fn set_config(&mut self, config: ProcessingConfig) {
        if config != self.config {
            tracing::debug!(?config, "audio processing changed");
            self.config = config;
            self.apply_config();
        }
    }

    fn apply_config(&mut self) {
        self.echo.configure_echo(
            self.config
                .echo_cancellation
                .then_some(self.config.echo_suppression),
            self.config.noise_suppression == NoiseSuppression::Apm,
        );
        self.gain.configure_gain(self.config.gain_control);
    }

    /// Adds far-end audio exactly as the speaker played it, 48 kHz mono in
    /// [-1, 1], as the echo canceller's reference. Call it before the
    /// capture that may contain its echo.
    pub fn push_far_end(&mut self, samples: &[f32]) -> Result<(), ProcessingError> {
        self.far_end.extend_from_slice(samples);
        let whole = self.far_end.len() / CHUNK_SAMPLES * CHUNK_SAMPLES;
        if self.config.echo_cancellation {
            for chunk in self.far_end[..whole].chunks_exact(CHUNK_SAMPLES) {
                self.chunk.copy_from_slice(chunk);
                self.echo.process_render(&mut self.chunk)?;
            }
        }
        // Less than one chunk stays for the next call.
        self.far_end.drain(..whole);
        Ok(())
    }

    /// Processes microphone samples, 48 kHz mono in [-1, 1], and appends
    /// every completed 10 ms chunk to `output`. A partial chunk waits for
    /// the next call. RNNoise delays its output by one chunk, so switching it
    /// on or off repeats or skips 10 ms once.
    pub fn process_capture(
        &mut self,
        samples: &[f32],
        output: &mut Vec<f32>,
    ) -> Result<(), ProcessingError> {
        self.capture.extend_from_slice(samples);
        self.voice_probabilities.clear();
        let whole = self.capture.len() / CHUNK_SAMPLES * CHUNK_SAMPLES;
        for start in (0..whole).step_by(CHUNK_SAMPLES) {
            self.chunk
                .copy_from_slice(&self.capture[start..start + CHUNK_SAMPLES]);
            self.process_chunk()?;
            output.extend_from_slice(&self.chunk);
        }
        self.capture.drain(..whole);
        Ok(())
    }

    fn process_chunk(&mut self) -> Result<(), ProcessingError> {
        // The module splits 48 kHz into three bands and back even when only
        // its high-pass filter runs, which delays the signal by about 1 ms
        // and changes its waveform, so it is skipped when it has no work.
        if self.config.echo_cancellation || self.config.noise_suppression == NoiseSuppression::Apm {
            self.echo.process_capture(&mut self.chunk)?;
        }

        for (scaled, sample) in self.scaled.iter_mut().zip(&self.chunk) {
            *scaled = sample * RNNOISE_SCALE;
        }
        let probability = self.denoise.process_frame(&mut self.denoised, &self.scaled);
        self.voice_probabilities.push(probability);
        if self.config.noise_suppression == NoiseSuppression::Rnnoise {
            for (sample, denoised) in self.chunk.iter_mut().zip(&self.denoised) {
                *sample = denoised / RNNOISE_SCALE;
            }
        }

        if self.config.gain_control {
            self.gain.process_capture(&mut self.chunk)?;
        }
        Ok(())
    }

    /// Returns RNNoise's probability, from 0 to 1, that each 10 ms chunk of
    /// the last [`process_capture`](Self::process_capture) call contained voice.
    pub fn chunk_voice_probabilities(&self) -> &[f32] {
        &self.voice_probabilities
    }

    /// Returns the echo canceller's own echo return loss enhancement of the
    /// last chunks in dB, when it has measured one.
    pub fn echo_return_loss_enhancement_db(&self) -> Option<f64> {
        self.echo.echo_return_loss_enhancement_db()
    }
}

/// Voice probability above which a chunk counts as speech.
const SPEECH_PROBABILITY: f32 = 0.8;
/// Speech chunks within the recent window that make the user count as talking.
const TALKING_CHUNKS: u32 = 20;
/// The recent window: 50 chunks, 500 ms.
const WINDOW_CHUNKS: usize = 50;
/// Chunks without speech after which the hint clears: 1.5 s.
const QUIET_CHUNKS: u32 = 150;

/// Decides from per-chunk voice probabilities whether someone is talking
/// into a muted microphone, without I/O. It raises the hint after 200 ms of
/// speech within half a second and clears it after 1.5 s without speech or
/// at once on unmute, so a cough or a door does not trigger it.
#[derive(Debug, Clone)]
pub struct MutedTalkDetector {
    recent: std::collections::VecDeque<bool>,
    speech_in_window: u32,
    quiet_for: u32,
    talking: bool,
}

impl Default for MutedTalkDetector {
    fn default() -> Self {
        Self {
            recent: std::collections::VecDeque::with_capacity(WINDOW_CHUNKS),
            speech_in_window: 0,
            quiet_for: 0,
            talking: false,
        }
    }
}

impl MutedTalkDetector {
    /// Takes the voice probability of one 10 ms chunk and whether the
    /// microphone is muted, and returns whether the hint should show.
    pub fn update(&mut self, voice_probability: f32, muted: bool) -> bool {
        if !muted {
            *self = Self::default();
            return false;
        }
        let speech = voice_probability >= SPEECH_PROBABILITY;
        self.recent.push_back(speech);
        self.speech_in_window += u32::from(speech);
        if self.recent.len() > WINDOW_CHUNKS && self.recent.pop_front() == Some(true) {
            self.speech_in_window -= 1;
        }
        self.quiet_for = if speech { 0 } else { self.quiet_for + 1 };
        if self.speech_in_window >= TALKING_CHUNKS {
            self.talking = true;
        } else if self.quiet_for >= QUIET_CHUNKS {
            self.talking = false;
        }
        self.talking
    }

    pub fn is_talking(&self) -> bool {
        self.talking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, amplitude: f32) -> Vec<f32> {
        // A fixed linear congruential generator keeps the test repeatable.
        let mut state = 12_345u32;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                amplitude * ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn bypass_keeps_the_samples() {
        let mut processor = AudioProcessor::new(ProcessingConfig::bypass()).unwrap();
        let input = noise(4_900, 0.1);
        let mut output = Vec::new();
        for block in input.chunks(700) {
            processor.process_capture(block, &mut output).unwrap();
        }
        assert_eq!(output.len(), 4_800, "the last partial chunk waits");
        assert_eq!(output, input[..4_800]);
    }

    #[test]
    fn rnnoise_removes_steady_noise() {
        let mut processor = AudioProcessor::new(ProcessingConfig {
            noise_suppression: NoiseSuppression::Rnnoise,
            gain_control: false,
            ..ProcessingConfig::bypass()
        })
        .unwrap();
        let input = noise(48_000, 0.05);
        let mut output = Vec::new();
        processor.process_capture(&input, &mut output).unwrap();
        let power = |s: &[f32]| s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32;
        let reduction_db = 10.0 * (power(&input[24_000..]) / power(&output[24_000..])).log10();
        // White noise is harder for RNNoise than the noises it was trained
        // on; the bench measures real kitchen and machine noise.
        assert!(reduction_db > 4.0, "noise reduced by {reduction_db:.1} dB");
        let last = *processor.chunk_voice_probabilities().last().unwrap();
        assert!(last < 0.5, "voice probability {last} for noise");
    }

    #[test]
    fn noise_suppression_switches_during_processing() {
        let mut processor = AudioProcessor::new(ProcessingConfig::bypass()).unwrap();
        let input = noise(48_000, 0.05);
        let power = |s: &[f32]| s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32;
        let mut off = Vec::new();
        processor
            .process_capture(&input[..24_000], &mut off)
            .unwrap();
        processor.set_config(ProcessingConfig {
            noise_suppression: NoiseSuppression::Rnnoise,
            ..ProcessingConfig::bypass()
        });
        let mut on = Vec::new();
        processor
            .process_capture(&input[24_000..], &mut on)
            .unwrap();
        assert!(power(&on[4_800..]) * 2.0 < power(&off[4_800..]));
    }

    #[test]
    fn muted_talk_needs_sustained_speech() {
        let mut detector = MutedTalkDetector::default();
        for _ in 0..10 {
            assert!(
                !detector.update(0.95, true),
                "a 100 ms cough is not talking"
            );
        }
        for _ in 0..50 {
            detector.update(0.1, true);
        }
        assert!(!detector.is_talking());
        let raised = (0..30).position(|_| detector.update(0.95, true));
        assert_eq!(raised, Some(19), "raised after 200 ms of speech");
        for _ in 0..149 {
            assert!(detector.update(0.1, true));
        }
        assert!(!detector.update(0.1, true), "cleared after 1.5 s of quiet");
    }

    #[test]
    fn unmute_clears_the_hint() {
        let mut detector = MutedTalkDetector::default();
        for _ in 0..30 {
            detector.update(0.95, true);
        }
        assert!(detector.is_talking());
        assert!(!detector.update(0.95, false));
        assert!(!detector.is_talking());
    }
}
