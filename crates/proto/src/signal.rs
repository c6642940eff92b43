//! Signalling frames for one-to-one calls.
//!
//! A call goes `invite` → `ringing` → `accept` (or `decline`, `cancel`), then the
//! caller sends the SDP `offer`, the callee the `answer`, both trickle
//! `candidate`s, and either side ends it with `hang_up`. The server forwards each
//! frame to the other participant after checking that the sender is in the call
//! and that the call is in a state where the frame makes sense.

use serde::{Deserialize, Serialize};

/// Identifier of a call, chosen by the caller.
pub type CallId = uuid::Uuid;

/// Media kind the caller intends to send.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallMedia {
    #[default]
    Video,
    Audio,
}

/// One ICE candidate as `RTCIceCandidateInit` carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceCandidate {
    /// The `candidate:` attribute value, or an empty string for end of candidates.
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// A frame from a client to the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientFrame {
    /// Protocol version; the server rejects frames with another value.
    pub v: u32,
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// A frame from the server to a client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerFrame {
    pub v: u32,
    #[serde(flatten)]
    pub message: ServerMessage,
}

impl From<ClientMessage> for ClientFrame {
    fn from(message: ClientMessage) -> Self {
        Self {
            v: crate::PROTOCOL_VERSION,
            message,
        }
    }
}

impl From<ServerMessage> for ServerFrame {
    fn from(message: ServerMessage) -> Self {
        Self {
            v: crate::PROTOCOL_VERSION,
            message,
        }
    }
}

/// Messages a client sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Starts a call to `callee` (a user name).
    Invite {
        call_id: CallId,
        callee: String,
        #[serde(default)]
        media: CallMedia,
    },
    /// The callee's device is alerting its user.
    Ringing {
        call_id: CallId,
    },
    Accept {
        call_id: CallId,
    },
    Decline {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The caller gives up before the callee accepted.
    Cancel {
        call_id: CallId,
    },
    HangUp {
        call_id: CallId,
    },
    Offer {
        call_id: CallId,
        sdp: String,
    },
    Answer {
        call_id: CallId,
        sdp: String,
    },
    Candidate {
        call_id: CallId,
        candidate: IceCandidate,
    },
    Ping {
        nonce: u64,
    },
}

/// Messages the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First frame after the WebSocket opens.
    Hello {
        user: String,
        protocol_version: u32,
    },
    /// Someone calls this user.
    Incoming {
        call_id: CallId,
        caller: String,
        media: CallMedia,
    },
    Ringing {
        call_id: CallId,
    },
    Accepted {
        call_id: CallId,
    },
    Declined {
        call_id: CallId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Cancelled {
        call_id: CallId,
    },
    /// The other participant hung up or disconnected.
    HungUp {
        call_id: CallId,
    },
    Offer {
        call_id: CallId,
        sdp: String,
    },
    Answer {
        call_id: CallId,
        sdp: String,
    },
    Candidate {
        call_id: CallId,
        candidate: IceCandidate,
    },
    Pong {
        nonce: u64,
    },
    /// A request failed. The connection stays open, except after `session_revoked`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
    },
}

/// Stable error codes that clients match on; the message is for people.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON or not a known message.
    InvalidFrame,
    /// The frame is larger than `MAX_FRAME_BYTES`.
    FrameTooLarge,
    UnsupportedVersion,
    UserNotFound,
    UserOffline,
    /// The callee is already in another call.
    UserBusy,
    /// A user cannot call themselves.
    SelfCall,
    CallNotFound,
    /// The sender is not a participant of this call.
    NotInCall,
    /// The message does not fit the call's current state, for example an
    /// `answer` before `accept`.
    InvalidState,
    /// A call with this id already exists.
    DuplicateCall,
    /// The session was revoked or the account disabled. The server closes
    /// the connection after this error.
    SessionRevoked,
    Internal,
}

impl ErrorCode {
    /// Returns the snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFrame => "invalid_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::UserNotFound => "user_not_found",
            Self::UserOffline => "user_offline",
            Self::UserBusy => "user_busy",
            Self::SelfCall => "self_call",
            Self::CallNotFound => "call_not_found",
            Self::NotInCall => "not_in_call",
            Self::InvalidState => "invalid_state",
            Self::DuplicateCall => "duplicate_call",
            Self::SessionRevoked => "session_revoked",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_carries_version_and_type() {
        let call_id = CallId::nil();
        let frame = ClientFrame::from(ClientMessage::Accept { call_id });
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["type"], "accept");
        assert_eq!(json["call_id"], call_id.to_string());
    }

    #[test]
    fn frame_round_trips() {
        let frame = ServerFrame::from(ServerMessage::Candidate {
            call_id: CallId::new_v4(),
            candidate: IceCandidate {
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
        });
        let text = serde_json::to_string(&frame).unwrap();
        let parsed: ServerFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, frame);
    }

    #[test]
    fn unknown_type_is_rejected() {
        let parsed = serde_json::from_str::<ClientFrame>(r#"{"v":1,"type":"teleport"}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn error_code_wire_name_matches_serde() {
        let json = serde_json::to_value(ErrorCode::UserOffline).unwrap();
        assert_eq!(json, ErrorCode::UserOffline.as_str());
    }
}
