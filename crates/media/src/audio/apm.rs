//! The WebRTC audio processing module 0.3 behind the few calls that
//! [`AudioProcessor`](super::AudioProcessor) makes.
//!
//! `webrtc-audio-processing-sys` 0.5 builds the module with autotools, and
//! its `config.sub` rejects Rust's Windows target triples. So on Windows the
//! module is not built, and a stand-in passes audio through unchanged.

use super::{EchoSuppression, ProcessingError};

/// Whether echo cancellation, the module's noise suppression and gain
/// control are available on this OS.
pub const AVAILABLE: bool = cfg!(not(target_os = "windows"));

#[cfg(not(target_os = "windows"))]
mod imp {
    use webrtc_audio_processing as apm;

    use super::{EchoSuppression, ProcessingError};

    /// One instance of the module for 48 kHz mono.
    pub struct Module {
        processor: apm::Processor,
    }

    impl Module {
        pub fn new() -> Result<Self, ProcessingError> {
            let init = apm::InitializationConfig {
                num_capture_channels: 1,
                num_render_channels: 1,
                ..apm::InitializationConfig::default()
            };
            let processor = apm::Processor::new(&init).map_err(|err| ProcessingError::Create {
                code: err.to_string(),
            })?;
            Ok(Self { processor })
        }

        /// Sets up the high-pass filter, echo cancellation and the module's
        /// noise suppression.
        pub fn configure_echo(
            &mut self,
            echo_cancellation: Option<EchoSuppression>,
            noise_suppression: bool,
        ) {
            let echo_cancellation = echo_cancellation.map(|level| apm::EchoCancellation {
                suppression_level: match level {
                    EchoSuppression::Low => apm::EchoCancellationSuppressionLevel::Low,
                    EchoSuppression::Moderate => apm::EchoCancellationSuppressionLevel::Moderate,
                    EchoSuppression::High => apm::EchoCancellationSuppressionLevel::High,
                },
                // The device latencies between playing and capturing are
                // unknown, so the module estimates the delay itself.
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            });
            let noise_suppression = noise_suppression.then_some(apm::NoiseSuppression {
                suppression_level: apm::NoiseSuppressionLevel::High,
            });
            self.processor.set_config(apm::Config {
                echo_cancellation,
                noise_suppression,
                enable_high_pass_filter: true,
                ..apm::Config::default()
            });
        }

        /// Sets up adaptive digital gain control with the values of WebRTC's
        /// default: -3 dBFS target, up to 9 dB of gain, with a limiter.
        pub fn configure_gain(&mut self, gain_control: bool) {
            let gain_control = gain_control.then_some(apm::GainControl {
                mode: apm::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            });
            self.processor.set_config(apm::Config {
                gain_control,
                ..apm::Config::default()
            });
        }

        pub fn process_capture(&mut self, chunk: &mut [f32]) -> Result<(), ProcessingError> {
            self.processor
                .process_capture_frame(chunk)
                .map_err(process_error)
        }

        pub fn process_render(&mut self, chunk: &mut [f32]) -> Result<(), ProcessingError> {
            self.processor
                .process_render_frame(chunk)
                .map_err(process_error)
        }

        pub fn echo_return_loss_enhancement_db(&self) -> Option<f64> {
            self.processor.get_stats().echo_return_loss_enhancement
        }
    }

    fn process_error(err: apm::Error) -> ProcessingError {
        ProcessingError::Process {
            detail: err.to_string(),
        }
    }
}

#[cfg(target_os = "windows")]
mod imp {
    use super::{EchoSuppression, ProcessingError};

    /// Stand-in that leaves the audio unchanged.
    pub struct Module;

    impl Module {
        pub fn new() -> Result<Self, ProcessingError> {
            Ok(Self)
        }

        pub fn configure_echo(
            &mut self,
            _echo_cancellation: Option<EchoSuppression>,
            _noise_suppression: bool,
        ) {
        }

        pub fn configure_gain(&mut self, _gain_control: bool) {}

        pub fn process_capture(&mut self, _chunk: &mut [f32]) -> Result<(), ProcessingError> {
            Ok(())
        }

        pub fn process_render(&mut self, _chunk: &mut [f32]) -> Result<(), ProcessingError> {
            Ok(())
        }

        pub fn echo_return_loss_enhancement_db(&self) -> Option<f64> {
            None
        }
    }
}

pub use imp::Module;
