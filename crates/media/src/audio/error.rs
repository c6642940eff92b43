//! Errors of the audio device layer.

use std::fmt;

/// Which side of the audio path a device serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Microphone,
    Speaker,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Microphone => "microphone",
            Self::Speaker => "speaker",
        })
    }
}

/// Failures to list, find or open an audio device. A device that fails after it
/// opened is reported as a [`DeviceEvent`](super::DeviceEvent) instead.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    #[error(
        "no {kind} found; connect one, or check that the sound server (PulseAudio, \
         PipeWire, WASAPI or CoreAudio) is running"
    )]
    NoDevice { kind: DeviceKind },

    #[error(
        "{kind} {requested:?} not found; choose one of {available:?}, or no device for the \
         system default"
    )]
    DeviceNotFound {
        kind: DeviceKind,
        requested: String,
        available: Vec<String>,
    },

    #[error("{kind} {device:?} is busy; close the other application that uses it and try again")]
    DeviceBusy { kind: DeviceKind, device: String },

    #[error(
        "access to {kind} {device:?} was denied; allow the app to use the {kind} in the \
         system's privacy settings"
    )]
    PermissionDenied { kind: DeviceKind, device: String },

    #[error("cannot open {kind} {device:?}: {detail}; choose another device or the default")]
    OpenFailed {
        kind: DeviceKind,
        device: String,
        detail: String,
    },

    #[error("cannot list audio devices: {detail}; check that the sound server is running")]
    ListFailed { detail: String },

    #[error("resampling from {from_hz} Hz to {to_hz} Hz failed: {detail}")]
    Resample {
        from_hz: u32,
        to_hz: u32,
        detail: String,
    },
}

impl AudioError {
    /// Maps a cpal error from opening or starting a stream on `device`.
    pub(crate) fn open(kind: DeviceKind, device: &str, error: &cpal::Error) -> Self {
        let device = device.to_owned();
        match error.kind() {
            cpal::ErrorKind::DeviceBusy => Self::DeviceBusy { kind, device },
            cpal::ErrorKind::PermissionDenied => Self::PermissionDenied { kind, device },
            _ => Self::OpenFailed {
                kind,
                device,
                detail: error.to_string(),
            },
        }
    }
}
