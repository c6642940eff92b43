//! The error every command returns: a stable code the UI translates, and a
//! detail (an address, a file, a device) that the translation names.

use hearth_client::ClientError;
use hearth_media::MediaError;
use hearth_proto::ErrorCode as ServerCode;
use serde::{Deserialize, Serialize};

/// What went wrong, as the UI matches on it. Never match on `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    InvalidAddress,
    Unreachable,
    UntrustedCertificate,
    WrongPassword,
    NotSignedIn,
    ServerFailed,
    CameraMissing,
    CameraBusy,
    NoMicrophone,
    AudioDeviceFailed,
    VideoFileUnreadable,
    CallFailed,
    Declined,
    NoAnswer,
    Busy,
    NotFound,
    InvalidInput,
    KeyringUnavailable,
    /// Not a member of the conversation, so its group call rejects a join.
    NotMember,
    /// The media connection to the server's SFU did not come up.
    MediaUnreachable,
    /// Screens and windows cannot be captured, as in a Wayland session
    /// without XWayland.
    ScreenCaptureUnavailable,
    Internal,
}

/// A command's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{code:?}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct UiError {
    pub code: ErrorCode,
    /// The value the message names, for example the address or the file.
    pub detail: Option<String>,
}

impl UiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: Some(detail.into()),
        }
    }

    pub fn code(code: ErrorCode) -> Self {
        Self { code, detail: None }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, err.to_string())
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// Whether a connection error text comes from a rejected server certificate.
pub fn is_certificate_error(text: &str) -> bool {
    text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
}

impl From<ClientError> for UiError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::InvalidServerUrl { url, .. } => Self::new(ErrorCode::InvalidAddress, url),
            ClientError::Unreachable { url, detail } if is_certificate_error(&detail) => {
                Self::new(ErrorCode::UntrustedCertificate, url)
            }
            ClientError::Unreachable { url, .. } => Self::new(ErrorCode::Unreachable, url),
            ClientError::SignInRejected { .. } => Self::code(ErrorCode::WrongPassword),
            ClientError::Unauthorized => Self::code(ErrorCode::NotSignedIn),
            ClientError::Declined { callee, .. } => Self::new(ErrorCode::Declined, callee),
            ClientError::Timeout { what, .. } => Self::new(ErrorCode::NoAnswer, what),
            ClientError::Disconnected | ClientError::NotConnected { .. } => {
                Self::code(ErrorCode::Unreachable)
            }
            ClientError::Keyring(detail) => Self::new(ErrorCode::KeyringUnavailable, detail),
            ClientError::InvalidInput { what, detail } => {
                Self::new(ErrorCode::InvalidInput, format!("{what}: {detail}"))
            }
            ClientError::Server { code, message } => match code {
                ServerCode::UserNotFound
                | ServerCode::ConversationNotFound
                | ServerCode::MessageNotFound => Self::new(ErrorCode::NotFound, message),
                ServerCode::UserOffline => Self::new(ErrorCode::NoAnswer, message),
                ServerCode::UserBusy | ServerCode::DuplicateCall => {
                    Self::new(ErrorCode::Busy, message)
                }
                ServerCode::InvalidText | ServerCode::InvalidRequest | ServerCode::SelfCall => {
                    Self::new(ErrorCode::InvalidInput, message)
                }
                ServerCode::NotMember | ServerCode::Forbidden => {
                    Self::new(ErrorCode::NotMember, message)
                }
                _ => Self::new(ErrorCode::ServerFailed, message),
            },
            ClientError::Media(err) => err.into(),
            other => Self::internal(other),
        }
    }
}

impl From<hearth_media::ScreenError> for UiError {
    fn from(err: hearth_media::ScreenError) -> Self {
        use hearth_media::ScreenError;
        tracing::warn!(error = %err, "screen capture error");
        match err {
            // The translated message explains these; the English reason is logged.
            ScreenError::NoDisplay | ScreenError::Unsupported { .. } => {
                Self::code(ErrorCode::ScreenCaptureUnavailable)
            }
            ScreenError::Connect { display, .. } => {
                Self::new(ErrorCode::ScreenCaptureUnavailable, display)
            }
            ScreenError::Capture { id, .. } => Self::new(ErrorCode::ScreenCaptureUnavailable, id),
            ScreenError::InvalidSourceId { id } | ScreenError::SourceNotFound { id } => {
                Self::new(ErrorCode::NotFound, id)
            }
            other => Self::new(ErrorCode::ScreenCaptureUnavailable, other.to_string()),
        }
    }
}

impl From<MediaError> for UiError {
    fn from(err: MediaError) -> Self {
        Self::new(ErrorCode::CallFailed, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use hearth_media::ScreenError;

    use super::*;

    #[test]
    fn wayland_without_capture_is_unavailable() {
        let err = UiError::from(ScreenError::Unsupported {
            reason: "native Wayland capture is not implemented".into(),
        });
        assert_eq!(err.code, ErrorCode::ScreenCaptureUnavailable);
        assert_eq!(err.detail, None);
    }

    #[test]
    fn missing_display_is_unavailable() {
        let err = UiError::from(ScreenError::NoDisplay);
        assert_eq!(err.code, ErrorCode::ScreenCaptureUnavailable);
    }

    #[test]
    fn unknown_source_is_not_found() {
        let err = UiError::from(ScreenError::SourceNotFound {
            id: "window:0x42".into(),
        });
        assert_eq!(err.code, ErrorCode::NotFound);
        assert_eq!(err.detail.as_deref(), Some("window:0x42"));
    }
}
