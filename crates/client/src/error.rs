//! Errors of the client core.

use hearth_proto::ErrorCode;

/// Failures a client operation can end with. `code()` gives a stable string
/// for UIs to match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("invalid server address {url:?}: {detail}")]
    InvalidServerUrl { url: String, detail: String },

    #[error("invalid CA certificate: {0}")]
    InvalidCertificate(String),

    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },

    #[error("sign-in failed: {description}")]
    SignInRejected { error: String, description: String },

    #[error("the server rejected the access token; sign in again")]
    Unauthorized,

    #[error("unexpected response from the server: {0}")]
    Protocol(String),

    #[error("{message}")]
    Server { code: ErrorCode, message: String },

    #[error("{callee} declined the call{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Declined {
        callee: String,
        reason: Option<String>,
    },

    #[error("the call ended: {0}")]
    CallEnded(String),

    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },

    #[error("the signalling connection closed")]
    Disconnected,

    #[error("the OS keyring is unavailable: {0}")]
    Keyring(String),

    #[error("cannot receive the browser's redirect: {0}")]
    Loopback(String),

    #[error(
        "signed out on this device, but the server did not revoke the session: {detail}; \
         it ends when its refresh token expires"
    )]
    RevokeFailed { detail: String },

    #[error(transparent)]
    Media(#[from] hearth_media::MediaError),

    #[error("local database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("local database: {0}")]
    Store(String),

    #[error("invalid {what}: {detail}")]
    InvalidInput { what: String, detail: String },

    #[error("not connected to the server{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    NotConnected { detail: Option<String> },

    #[error("{what} failed: {detail}")]
    Io { what: String, detail: String },
}

impl ClientError {
    /// Returns a stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidServerUrl { .. } => "invalid_server_url",
            Self::InvalidCertificate(_) => "invalid_certificate",
            Self::Unreachable { .. } => "unreachable",
            Self::SignInRejected { .. } => "sign_in_rejected",
            Self::Unauthorized => "unauthorized",
            Self::Protocol(_) => "protocol",
            Self::Server { code, .. } => code.as_str(),
            Self::Declined { .. } => "declined",
            Self::CallEnded(_) => "call_ended",
            Self::Timeout { .. } => "timeout",
            Self::Disconnected => "disconnected",
            Self::Keyring(_) => "keyring",
            Self::Loopback(_) => "loopback",
            Self::RevokeFailed { .. } => "revoke_failed",
            Self::Media(_) => "media",
            Self::Sqlite(_) | Self::Store(_) => "local_store",
            Self::InvalidInput { .. } => "invalid_input",
            Self::NotConnected { .. } => "not_connected",
            Self::Io { .. } => "io",
        }
    }
}

/// Joins an error's message with those of its sources, skipping a source
/// whose text the message before it already contains (many errors repeat
/// their source's text in their own message).
pub fn join_sources(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
