//! Wire types between Hearth clients and `hearth-server`.
//!
//! Signalling travels as JSON text frames over a WebSocket. Every frame carries the
//! protocol version in `v` and its kind in `type`, for example
//! `{"v":1,"type":"invite","call_id":"…","callee":"bob"}`. The HTTP token endpoint
//! follows OAuth 2.0 (RFC 6749). `docs/protocol.md` describes the exchange.

pub mod chat;
pub mod guest;
pub mod oauth;
pub mod search;
pub mod signal;

pub use signal::{
    CallId, ClientFrame, ClientMessage, ErrorCode, IceCandidate, RoomParticipant,
    RoomParticipantId, RoomView, ServerFrame, ServerMessage,
};

/// Version of the signalling protocol that this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Maximum size in bytes of one signalling frame. An SDP offer with many
/// candidates stays well below it.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Path of the OAuth 2.0 token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";

/// Path of the OAuth 2.0 authorization endpoint (RFC 6749 section 3.1). It shows
/// the sign-in page and redirects to the client's loopback address with a code.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// Path of the OAuth 2.0 token revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/revoke";

/// Path where the organisation's OpenID Connect provider returns the browser
/// after a federated sign-in.
pub const OIDC_CALLBACK_PATH: &str = "/oauth/oidc/callback";

/// Path of the signalling WebSocket. It takes the access token as a bearer token
/// in the `Authorization` header.
pub const SIGNAL_PATH: &str = "/api/v1/signal";

/// Path of the health check, which returns `200 OK` with no authentication.
pub const HEALTH_PATH: &str = "/healthz";
pub use signal::CallMedia;
