//! Decoding of client text frames, with the size and version checks.

use hearth_proto::{ClientFrame, ClientMessage, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// Reason a frame was rejected, sent back as `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

impl FrameError {
    fn new(code: ErrorCode, message: String) -> Self {
        Self { code, message }
    }
}

/// Decodes one text frame. Checks the size first, then the version, then the
/// message, so that a client speaking a newer protocol gets `unsupported_version`
/// and not a parse error.
pub fn decode(text: &str) -> Result<ClientMessage, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame is {} bytes, larger than the limit of {MAX_FRAME_BYTES} bytes",
                text.len()
            ),
        ));
    }

    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| {
        FrameError::new(ErrorCode::InvalidFrame, format!("invalid JSON: {error}"))
    })?;
    let version = value.get("v").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(FrameError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported; this server speaks version {PROTOCOL_VERSION}"
                ),
            ));
        }
        None => {
            return Err(FrameError::new(
                ErrorCode::InvalidFrame,
                "missing or invalid field \"v\": expected the protocol version as a number"
                    .to_owned(),
            ));
        }
    }

    let frame: ClientFrame = serde_json::from_value(value).map_err(|error| {
        FrameError::new(ErrorCode::InvalidFrame, format!("invalid frame: {error}"))
    })?;
    Ok(frame.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ping() {
        let message = decode(r#"{"v":1,"type":"ping","nonce":3}"#);
        assert_eq!(message, Ok(ClientMessage::Ping { nonce: 3 }));
    }

    #[test]
    fn rejects_oversized_frame() {
        let text = format!(
            r#"{{"v":1,"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(decode(&text).unwrap_err().code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn rejects_invalid_json() {
        assert_eq!(
            decode("{not json").unwrap_err().code,
            ErrorCode::InvalidFrame
        );
    }

    #[test]
    fn rejects_unknown_type() {
        let error = decode(r#"{"v":1,"type":"teleport"}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidFrame);
    }

    #[test]
    fn rejects_other_version() {
        let error = decode(r#"{"v":2,"type":"ping","nonce":1}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn rejects_missing_version() {
        let error = decode(r#"{"type":"ping","nonce":1}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidFrame);
    }
}
