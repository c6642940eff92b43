//! Conversations, messages, read state and presence.
//!
//! A conversation is an append-only log of events on the server. Each event gets
//! the next sequence number of its conversation, starting at 1, and is never
//! renumbered: a message, an edit or delete of an earlier message, a membership
//! change, a rename or a call record. A client that has stored every event up
//! to `seq` requests the ones after it (`sync`), so it receives the edits and
//! deletes made while it was away. `history` pages backward.
//!
//! Real-time traffic (sending, pushed events, sync, read state, presence) uses the
//! session WebSocket. Conversation management, attachments, user lists and search
//! use the REST endpoints under `/api/v1`, which return errors as [`ApiError`].

use serde::{Deserialize, Serialize};

use crate::signal::{CallId, CallMedia};

/// Identifier of a conversation, chosen by the server.
pub type ConversationId = uuid::Uuid;

/// Per-conversation sequence number of an event. The first event is 1; 0 means
/// "before the first event".
pub type Seq = u64;

/// Identifier of an uploaded attachment, chosen by the server.
pub type AttachmentId = uuid::Uuid;

/// Identifier that the sending client gives a message. The server stores it, so a
/// `send_message` retried with the same id after a lost acknowledgement gets the
/// original sequence number instead of a second copy.
pub type ClientMessageId = uuid::Uuid;

/// Maximum size in bytes of a message's UTF-8 text.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Maximum number of events in one `sync_batch` or `history_page`.
pub const MAX_PAGE_EVENTS: u32 = 500;

/// Maximum length in bytes of a group conversation's name.
pub const MAX_NAME_BYTES: usize = 200;

/// Path of the conversation list (`GET`) and of conversation creation (`POST`).
pub const CONVERSATIONS_PATH: &str = "/api/v1/conversations";

/// Path of the user directory (`GET`), with each user's presence.
pub const USERS_PATH: &str = "/api/v1/users";

/// Path of server-side search (`GET ?q=…`).
pub const SEARCH_PATH: &str = "/api/v1/search";

/// Path prefix of attachment downloads: `GET /api/v1/attachments/{id}`.
pub const ATTACHMENTS_PATH: &str = "/api/v1/attachments";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two members, no owner, no name; at most one per pair of users.
    Direct,
    /// Any number of members with one or more owners.
    Group,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May rename the conversation and add or remove members.
    Owner,
    Member,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    pub user: String,
    pub role: Role,
}

/// A conversation from one member's point of view, with that member's read state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// Name of a group; `None` for direct conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub members: Vec<Member>,
    /// Sequence number of the newest event.
    pub last_seq: Seq,
    /// Newest event this user has read, on any of their devices.
    pub last_read_seq: Seq,
    /// Messages from other members after `last_read_seq` that are not deleted.
    pub unread: u64,
    /// Creation time in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// Body of `POST /api/v1/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateConversation {
    pub kind: ConversationKind,
    /// Required for a group, absent for a direct conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The other members by user name; the creator is added as owner. A direct
    /// conversation names exactly one other user, and creating one that exists
    /// returns the existing one.
    pub members: Vec<String>,
}

/// Body of `PATCH /api/v1/conversations/{id}` (owners only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenameConversation {
    pub name: String,
}

/// Body of `POST /api/v1/conversations/{id}/members` (owners only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddMember {
    pub user: String,
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::Member
}

/// An uploaded file that a message refers to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    pub id: AttachmentId,
    /// File name as the uploader gave it, without any directory part.
    pub name: String,
    pub content_type: String,
    pub size_bytes: u64,
}

/// One entry of a conversation's log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    /// User who caused the event; for call records, the caller.
    pub sender: String,
    /// Server time in milliseconds since the Unix epoch.
    pub at_ms: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Message {
        client_id: ClientMessageId,
        text: String,
        /// Sequence number of the message this one replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Seq>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// The sender replaced the text of their message `target`.
    Edited {
        target: Seq,
        text: String,
    },
    /// The sender deleted their message `target`; clients drop its text and attachments.
    Deleted {
        target: Seq,
    },
    MemberAdded {
        user: String,
        role: Role,
    },
    /// `user` was removed by `sender`, or left when `user == sender`.
    MemberRemoved {
        user: String,
    },
    Renamed {
        name: String,
    },
    Call {
        call_id: CallId,
        media: CallMedia,
        outcome: CallOutcome,
    },
}

/// Outcome of a call, recorded in the direct conversation of caller and callee.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallOutcome {
    /// The callee accepted.
    Started,
    /// An accepted call ended after `duration_ms`.
    Ended {
        duration_ms: u64,
    },
    /// The caller cancelled, the ring timed out or the callee was unreachable.
    Missed,
    Declined,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Connected and active.
    Online,
    /// Connected but idle, as the client reports.
    Away,
    /// In a call on at least one device.
    InCall,
    /// No open session.
    #[default]
    Offline,
}

/// A user in the directory (`GET /api/v1/users`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub presence: Presence,
}

/// One result of `GET /api/v1/search?q=…[&conversation_id=…][&limit=…]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SearchHit {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender: String,
    pub at_ms: i64,
    /// Current text of the message, after any edit.
    pub text: String,
}

/// Error body of every REST endpoint under `/api/v1`, sent with a 4xx or 5xx status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    pub code: crate::ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_flattens_kind() {
        let event = Event {
            conversation_id: ConversationId::nil(),
            seq: 7,
            sender: "alice".into(),
            at_ms: 1,
            body: EventBody::Message {
                client_id: ClientMessageId::nil(),
                text: "你好 👋".into(),
                reply_to: Some(3),
                attachments: Vec::new(),
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "message");
        assert_eq!(json["reply_to"], 3);
        assert_eq!(json["text"], "你好 👋");
        let parsed: Event = serde_json::from_value(json).unwrap();
        assert_eq!(parsed, event);
    }

    #[test]
    fn call_event_round_trips() {
        let event = Event {
            conversation_id: ConversationId::nil(),
            seq: 2,
            sender: "bob".into(),
            at_ms: 5,
            body: EventBody::Call {
                call_id: CallId::nil(),
                media: CallMedia::Audio,
                outcome: CallOutcome::Ended {
                    duration_ms: 61_000,
                },
            },
        };
        let text = serde_json::to_string(&event).unwrap();
        let parsed: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, event);
    }
}
