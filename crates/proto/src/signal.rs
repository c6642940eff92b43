//! Frames of the session WebSocket: call signalling and chat.
//!
//! A call goes `invite` → `ringing` → `accept` (or `decline`, `cancel`), then the
//! caller sends the SDP `offer`, the callee the `answer`, both trickle
//! `candidate`s, and either side ends it with `hang_up`. The server forwards each
//! frame to the other participant after checking that the sender is in the call
//! and that the call is in a state where the frame makes sense.

use serde::{Deserialize, Serialize};

use crate::chat::{ClientMessageId, ConversationId, Event, Presence, Seq};

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

/// One device in a group call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomParticipant {
    /// The device's id in the room. Its streams carry it, in decimal, as
    /// their SDP stream id.
    pub id: RoomParticipantId,
    pub user: String,
    pub audio_muted: bool,
    pub video_off: bool,
    /// Whether the device shares a screen, which arrives as a video stream
    /// with the track id `ID-screen`; receivers show it large.
    #[serde(default)]
    pub screen_sharing: bool,
}

/// The size at which a device shows one participant's video, in pixels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomView {
    pub participant_id: RoomParticipantId,
    pub width: u32,
    pub height: u32,
}

/// A participant id as `room_joined` and `room_state` give it.
pub type RoomParticipantId = u64;

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
    /// Moves an accepted call into the group call of a conversation of which
    /// both participants are members, so that more people can join it. Both
    /// participants get `call_moving`; they then join the room and keep
    /// the call's own media until the room carries the other's media.
    MoveCall {
        call_id: CallId,
        conversation_id: ConversationId,
    },
    /// This participant of a moving call now receives the other's media
    /// through the room. The other gets `call_switched`; whichever of the two
    /// switches last ends the call with `hang_up`.
    CallSwitched {
        call_id: CallId,
    },
    Ping {
        nonce: u64,
    },
    /// Appends a message. The server sends `message_ack` once the message is
    /// stored, and pushes it to every member as an `event`.
    SendMessage {
        conversation_id: ConversationId,
        client_id: ClientMessageId,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Seq>,
        /// Attachments uploaded to this conversation before sending.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::chat::AttachmentId>,
    },
    /// Replaces the text of one of the sender's own messages.
    EditMessage {
        conversation_id: ConversationId,
        target: Seq,
        text: String,
    },
    /// Deletes one of the sender's own messages (owners may delete any message).
    DeleteMessage {
        conversation_id: ConversationId,
        target: Seq,
    },
    /// Requests the events after `after`, oldest first, as `sync_batch` frames.
    Sync {
        conversation_id: ConversationId,
        after: Seq,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Requests the events before `before`, newest first, as one `history_page`.
    History {
        conversation_id: ConversationId,
        before: Seq,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Marks every event up to `seq` as read on all of the user's devices.
    MarkRead {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// Sets the user's presence to `online` or `away`; the server sets `in_call`
    /// and `offline` itself.
    SetPresence {
        presence: Presence,
    },
    /// Joins the group call of a conversation, starting it if nobody is in
    /// it, with an SDP offer that sends this device's microphone and camera.
    /// The server's SFU answers with `room_joined`. Only members may join.
    JoinRoom {
        conversation_id: ConversationId,
        sdp: String,
        /// The mid of the offer's video section reserved for screen
        /// sharing, which sends nothing until the device shares. The SFU
        /// forwards it to the others with the track id `ID-screen`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen_mid: Option<String>,
    },
    /// Answers a `room_offer`, which the SFU sends whenever the streams this
    /// device receives change.
    RoomAnswer {
        conversation_id: ConversationId,
        sdp: String,
    },
    LeaveRoom {
        conversation_id: ConversationId,
    },
    /// Tells the other participants whether this device's microphone is muted
    /// and its camera off.
    SetRoomMedia {
        conversation_id: ConversationId,
        audio_muted: bool,
        video_off: bool,
        /// The size of the camera picture sent, 0 when unknown. The SFU
        /// derives the sizes of the lower simulcast layers from it.
        #[serde(default)]
        video_width: u32,
        #[serde(default)]
        video_height: u32,
    },
    /// The size at which this device shows each other participant, so that
    /// the SFU forwards no larger video layer than is shown. A participant
    /// missing from `views` is shown at full size.
    SetRoomViews {
        conversation_id: ConversationId,
        views: Vec<RoomView>,
        /// The maximum video bitrate this device accepts, all streams
        /// together, in bit/s, as on a metered link. The SFU then forwards
        /// lower layers or frame rates, as when the bandwidth estimate is
        /// low. Missing or 0: no limit but the estimate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_video_bps: Option<u32>,
    },
    /// Tells the other participants that this device started or stopped
    /// sharing its screen on the section named by `join_room`'s
    /// `screen_mid`.
    SetRoomScreen {
        conversation_id: ConversationId,
        sharing: bool,
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
    /// A participant moves the call into the group call of
    /// `conversation_id`; join it there.
    CallMoving {
        call_id: CallId,
        conversation_id: ConversationId,
    },
    /// The other participant of a moving call receives this side's media
    /// through the room.
    CallSwitched {
        call_id: CallId,
    },
    Pong {
        nonce: u64,
    },
    /// A new event in one of the user's conversations.
    Event {
        event: Event,
    },
    /// The message with `client_id` is stored as `seq`. Sent again with the same
    /// `seq` when a retry repeats the `client_id`.
    MessageAck {
        conversation_id: ConversationId,
        client_id: ClientMessageId,
        seq: Seq,
    },
    /// Events requested by `sync`, oldest first. `complete` is true on the last
    /// batch of the reply, after which the client has every event up to the
    /// conversation's newest one at the time of the request.
    SyncBatch {
        conversation_id: ConversationId,
        events: Vec<Event>,
        complete: bool,
    },
    /// Events requested by `history`, newest first.
    HistoryPage {
        conversation_id: ConversationId,
        events: Vec<Event>,
        /// Whether older events exist.
        has_more: bool,
    },
    /// The user's read position changed, on this or another device.
    ReadState {
        conversation_id: ConversationId,
        last_read_seq: Seq,
        unread: u64,
    },
    /// A user who shares a conversation with this user changed presence.
    Presence {
        user: String,
        presence: Presence,
    },
    /// The user was added to a conversation, or its name or members changed.
    /// Clients fetch it with `GET /api/v1/conversations/{id}`.
    ConversationChanged {
        conversation_id: ConversationId,
    },
    /// The user left or was removed from the conversation.
    ConversationRemoved {
        conversation_id: ConversationId,
    },
    /// The SFU's answer to `join_room`. `participant_id` is this device's id
    /// in the room; streams from others carry theirs as the SDP stream id.
    RoomJoined {
        conversation_id: ConversationId,
        participant_id: RoomParticipantId,
        sdp: String,
    },
    /// A new offer from the SFU that adds or removes streams of other
    /// participants; the client replies with `room_answer`.
    RoomOffer {
        conversation_id: ConversationId,
        sdp: String,
    },
    /// Who is in the conversation's group call, sent to every member of the
    /// conversation whenever it changes. An empty list means the call ended.
    RoomState {
        conversation_id: ConversationId,
        participants: Vec<RoomParticipant>,
        /// The participant heard loudest in the last second, if anyone spoke.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_speaker: Option<RoomParticipantId>,
        /// The video codec participants send in, by its SDP encoding name
        /// (`H264`, `VP8`): the first of the SFU's order that every
        /// participant can receive. Absent when they share none, in which
        /// case each sends what it negotiated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_codec: Option<String>,
    },
    /// This device is no longer in the room, for example because its media
    /// connection failed. `reason` is for people.
    RoomLeft {
        conversation_id: ConversationId,
        reason: String,
    },
    /// A request failed. The connection stays open, except after `session_revoked`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<ConversationId>,
        /// The `client_id` of the `send_message` that failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientMessageId>,
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
    /// No conversation has this id.
    ConversationNotFound,
    /// The user is not a member of the conversation.
    NotMember,
    /// The action needs the owner role, or acts on another user's message.
    Forbidden,
    /// No message with this sequence number exists, or it was deleted.
    MessageNotFound,
    /// A message text is empty or larger than `MAX_TEXT_BYTES`.
    InvalidText,
    /// A request field is missing or invalid; the message names it.
    InvalidRequest,
    /// An upload exceeds the server's attachment size limit.
    AttachmentTooLarge,
    AttachmentNotFound,
    /// The bearer token is missing, unknown, expired or revoked.
    Unauthorized,
    /// No guest invitation has this id or secret.
    InvitationNotFound,
    /// The guest invitation is past its expiry time.
    InvitationExpired,
    /// A member revoked the guest invitation.
    InvitationRevoked,
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
            Self::ConversationNotFound => "conversation_not_found",
            Self::NotMember => "not_member",
            Self::Forbidden => "forbidden",
            Self::MessageNotFound => "message_not_found",
            Self::InvalidText => "invalid_text",
            Self::InvalidRequest => "invalid_request",
            Self::AttachmentTooLarge => "attachment_too_large",
            Self::AttachmentNotFound => "attachment_not_found",
            Self::Unauthorized => "unauthorized",
            Self::InvitationNotFound => "invitation_not_found",
            Self::InvitationExpired => "invitation_expired",
            Self::InvitationRevoked => "invitation_revoked",
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
    fn join_room_without_screen_mid_parses() {
        let conversation_id = ConversationId::nil();
        let text = format!(
            r#"{{"v":1,"type":"join_room","conversation_id":"{conversation_id}","sdp":"v=0"}}"#
        );
        let frame: ClientFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(
            frame.message,
            ClientMessage::JoinRoom {
                conversation_id,
                sdp: "v=0".into(),
                screen_mid: None,
            }
        );
    }

    #[test]
    fn room_participant_defaults_to_not_sharing() {
        let participant: RoomParticipant =
            serde_json::from_str(r#"{"id":3,"user":"alice","audio_muted":false,"video_off":true}"#)
                .unwrap();
        assert!(!participant.screen_sharing);
    }

    #[test]
    fn set_room_screen_has_its_wire_name() {
        let frame = ClientFrame::from(ClientMessage::SetRoomScreen {
            conversation_id: ConversationId::nil(),
            sharing: true,
        });
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["type"], "set_room_screen");
        assert_eq!(json["sharing"], true);
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
