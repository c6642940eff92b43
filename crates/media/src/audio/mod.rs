//! Audio devices through cpal: listing, a microphone that yields 20 ms frames
//! of 48 kHz mono, and a speaker that plays the engine's decoded audio.
//!
//! cpal picks the backend per OS: ALSA on Linux (which reaches PulseAudio or
//! PipeWire through their ALSA plugins), WASAPI on Windows and CoreAudio on
//! macOS. Each open stream lives on its own thread because cpal streams are not
//! `Send` on every OS. The devices change the samples only by mixing,
//! resampling and framing; [`AudioProcessor`] cancels echo, suppresses noise
//! and controls the gain between the [`Microphone`] and the encoder, with an
//! [`EchoReference`] from the [`Speaker`] as the far end.

mod apm;
mod error;
mod follow;
mod microphone;
mod mix;
mod processing;
mod resample;
mod speaker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cpal::traits::{DeviceTrait, HostTrait};

pub use error::{AudioError, DeviceKind};
pub use follow::{CallDevices, CurrentDevices, DEVICE_POLL_INTERVAL, choose_device};
pub use microphone::{InputLevel, Microphone, SILENCE_DBFS};
pub use mix::{MAX_QUEUED_SAMPLES, StreamMixer};
pub use processing::{
    AudioProcessor, CHUNK_SAMPLES, EchoSuppression, MutedTalkDetector, NoiseSuppression,
    ProcessingConfig, ProcessingError,
};
pub use speaker::{EchoReference, Speaker};

/// An audio device as a settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AudioDevice {
    /// Stable identifier to store in settings and pass to `start`: the host
    /// and the device's name on it, for example `alsa:default` or
    /// `pulseaudio:alsa_input.usb-046d_HD_Webcam-02.mono-fallback`.
    pub id: String,
    /// Name for people, for example the ALSA description or the product name.
    pub name: String,
    /// Whether the system uses this device when none is chosen.
    pub is_default: bool,
}

/// Something that happened to an open device after it started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The device disappeared or stopped delivering audio, so the stream is
    /// dead. Drop it and start again, with no device for the system default.
    Lost {
        kind: DeviceKind,
        device: String,
        detail: String,
    },
    /// The backend reported an error that did not stop the stream.
    Error {
        kind: DeviceKind,
        device: String,
        detail: String,
    },
}

/// Lists the devices that can record.
pub fn list_microphones() -> Result<Vec<AudioDevice>, AudioError> {
    list(DeviceKind::Microphone)
}

/// Lists the devices that can play.
pub fn list_speakers() -> Result<Vec<AudioDevice>, AudioError> {
    list(DeviceKind::Speaker)
}

fn list(kind: DeviceKind) -> Result<Vec<AudioDevice>, AudioError> {
    list_on(&cpal::default_host(), kind)
}

/// Lists the devices of `kind` on `host`, marking the host's default.
fn list_on(host: &cpal::Host, kind: DeviceKind) -> Result<Vec<AudioDevice>, AudioError> {
    let default_id = default_device(host, kind).and_then(|device| device.id().ok());
    let devices = devices(host, kind)?
        .into_iter()
        .filter_map(|device| {
            let id = device.id().ok()?;
            Some(AudioDevice {
                id: id.to_string(),
                name: device_name(&device),
                is_default: Some(&id) == default_id.as_ref(),
            })
        })
        .collect();
    Ok(devices)
}

fn devices(host: &cpal::Host, kind: DeviceKind) -> Result<Vec<cpal::Device>, AudioError> {
    let list_failed = |err: cpal::Error| AudioError::ListFailed {
        detail: err.to_string(),
    };
    let devices = match kind {
        DeviceKind::Microphone => host.input_devices().map_err(list_failed)?.collect(),
        DeviceKind::Speaker => host.output_devices().map_err(list_failed)?.collect(),
    };
    Ok(devices)
}

fn default_device(host: &cpal::Host, kind: DeviceKind) -> Option<cpal::Device> {
    match kind {
        DeviceKind::Microphone => host.default_input_device(),
        DeviceKind::Speaker => host.default_output_device(),
    }
}

fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(description) => description.name().to_owned(),
        Err(_) => device.to_string(),
    }
}

// NOTE: the `pulseaudio` crate 0.3.2 that cpal's PulseAudio host uses looks
// for the server under PULSE_RUNTIME_PATH/pulse/native, one folder too deep,
// and stops there. With PULSE_RUNTIME_PATH set (and no PULSE_SERVER), cpal
// falls back to ALSA, whose lists do not show PulseAudio's devices.

/// Finds the device whose id or name is `requested`, or the default device.
/// An id names its host (`alsa:default`, `pulseaudio:NAME`), so it opens on
/// that host even when another one is the default.
fn find_device(kind: DeviceKind, requested: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = requested
        .and_then(host_of_id)
        .unwrap_or_else(cpal::default_host);
    let Some(requested) = requested else {
        return default_device(&host, kind).ok_or(AudioError::NoDevice { kind });
    };

    let candidates = devices(&host, kind)?;
    let found = candidates.iter().find(|device| {
        let id = device.id().map(|id| id.to_string()).ok();
        id.as_deref() == Some(requested) || device_name(device) == requested
    });
    match found {
        Some(device) => Ok(device.clone()),
        None if candidates.is_empty() => Err(AudioError::NoDevice { kind }),
        None => Err(AudioError::DeviceNotFound {
            kind,
            requested: requested.to_owned(),
            available: candidates.iter().map(device_name).collect(),
        }),
    }
}

/// Returns the host that the device id `requested` names, when it names one
/// that is compiled in and reachable.
fn host_of_id(requested: &str) -> Option<cpal::Host> {
    let id: cpal::DeviceId = requested.parse().ok()?;
    cpal::host_from_id(id.host()).ok()
}

/// Names a device in errors and events: its id, or its name when it has none.
fn device_label(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.to_string())
        .unwrap_or_else(|_| device_name(device))
}

/// Picks a fixed callback size of about 10 ms when the device supports one,
/// so that few samples wait in the backend.
fn stream_config(supported: &cpal::SupportedStreamConfig) -> cpal::StreamConfig {
    let mut config = supported.config();
    let target = supported.sample_rate() / 100;
    if let cpal::SupportedBufferSize::Range { min, max } = *supported.buffer_size() {
        config.buffer_size = cpal::BufferSize::Fixed(target.clamp(min, max));
    }
    config
}

/// Backend errors in a row after which a stream counts as lost. ALSA's pulse
/// plugin reports EIO on every poll once its PulseAudio device is gone.
const LOST_AFTER_ERRORS: u64 = 20;

/// Turns a running stream's errors other than xruns into events: the first
/// becomes [`DeviceEvent::Error`], and a fatal or persistent one becomes
/// [`DeviceEvent::Lost`], sent once.
struct StreamErrors {
    kind: DeviceKind,
    device: String,
    events: tokio::sync::mpsc::UnboundedSender<DeviceEvent>,
    errors: AtomicU64,
    lost: AtomicBool,
}

impl StreamErrors {
    fn new(
        kind: DeviceKind,
        device: &str,
        events: tokio::sync::mpsc::UnboundedSender<DeviceEvent>,
    ) -> Self {
        Self {
            kind,
            device: device.to_owned(),
            events,
            errors: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        }
    }

    fn report(&self, error: &cpal::Error) {
        let fatal = matches!(
            error.kind(),
            cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::StreamInvalidated
        );
        let count = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if fatal || count >= LOST_AFTER_ERRORS {
            self.report_lost(error.to_string());
        } else if count == 1 {
            tracing::warn!(device = %self.device, error = %error, "{} stream error", self.kind);
            let _ = self.events.send(DeviceEvent::Error {
                kind: self.kind,
                device: self.device.clone(),
                detail: error.to_string(),
            });
        }
    }

    /// Sends [`DeviceEvent::Lost`] unless it was sent already.
    fn report_lost(&self, detail: String) {
        if self.lost.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(device = %self.device, detail = %detail, "{} lost", self.kind);
        let _ = self.events.send(DeviceEvent::Lost {
            kind: self.kind,
            device: self.device.clone(),
            detail,
        });
    }
}
