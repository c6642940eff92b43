//! Guest access to one conversation's group call from a browser.
//!
//! A member creates a guest invitation for a conversation. Its secret is part
//! of the invitation's page address (`/guest/{secret}`), shown once, and
//! stored only as a hash. The page exchanges the secret and a display name for
//! a guest credential, which opens the guest WebSocket. That connection
//! accepts only the room frames of the invitation's conversation.

use serde::{Deserialize, Serialize};

use crate::chat::ConversationId;

/// Identifier of a guest invitation, chosen by the server. It is not secret and
/// is what revocation takes.
pub type GuestInvitationId = uuid::Uuid;

/// Lifetime of an invitation when the request gives none, in seconds (24 h).
pub const DEFAULT_INVITATION_TTL_SECS: u64 = 24 * 60 * 60;

/// Maximum lifetime of an invitation, in seconds (7 days).
pub const MAX_INVITATION_TTL_SECS: u64 = 7 * 24 * 60 * 60;

/// Maximum length of a guest's display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Path prefix of the guest page: `GET /guest/{secret}`.
pub const GUEST_PAGE_PATH: &str = "/guest";

/// Path of invitation revocation: `DELETE /api/v1/guest-invitations/{id}`.
pub const GUEST_INVITATIONS_PATH: &str = "/api/v1/guest-invitations";

/// Path where the guest page exchanges an invitation secret and a display name
/// for a guest credential (`POST`).
pub const GUEST_CREDENTIALS_PATH: &str = "/api/v1/guest/credentials";

/// Path of the guest WebSocket. Browsers cannot set an `Authorization` header
/// on a WebSocket, so the credential travels as the second entry of the
/// `Sec-WebSocket-Protocol` list, after [`GUEST_WEBSOCKET_PROTOCOL`].
pub const GUEST_SIGNAL_PATH: &str = "/api/v1/guest/signal";

/// The WebSocket subprotocol that the server selects for guest connections.
pub const GUEST_WEBSOCKET_PROTOCOL: &str = "hearth-guest";

/// Returns the path of the invitations of one conversation
/// (`POST /api/v1/conversations/{id}/guest-invitations`).
pub fn conversation_invitations_path(conversation_id: ConversationId) -> String {
    format!("/api/v1/conversations/{conversation_id}/guest-invitations")
}

/// Body of an invitation request. Every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateGuestInvitation {
    /// Lifetime in seconds, 60 to [`MAX_INVITATION_TTL_SECS`]; defaults to
    /// [`DEFAULT_INVITATION_TTL_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// A created invitation. `page_path` contains the secret and is returned only
/// in the response that created it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestInvitation {
    pub id: GuestInvitationId,
    pub conversation_id: ConversationId,
    /// The guest page's path, `/guest/{secret}`, to append to the server's
    /// base URL.
    pub page_path: String,
    /// Unix time in milliseconds after which the invitation no longer works.
    pub expires_at_ms: u64,
}

/// Body of a credential request from the guest page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestCredentialRequest {
    /// The invitation secret from the page's address.
    pub invitation: String,
    pub display_name: String,
}

/// A guest credential. It is valid while its invitation is neither expired
/// nor revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestCredential {
    pub credential: String,
    pub conversation_id: ConversationId,
    /// The guest's name in `room_state`: `guest:<guest id>:<display name>`.
    /// Account names never contain `:`, so it cannot be mistaken for one.
    pub user: String,
    pub expires_at_ms: u64,
}
