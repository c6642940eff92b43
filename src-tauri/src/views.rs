//! The shapes the UI receives: built from `hearth-client` types, flattened
//! to what a screen shows.

use hearth_client::store::StoredEvent;
use hearth_proto::chat::{CallOutcome, Conversation, ConversationKind, EventBody, Presence};
use hearth_proto::signal::CallMedia;
use serde::{Deserialize, Serialize};

use crate::profile::{Renderer, Settings};

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub server: String,
    pub user: String,
}

/// The server this app runs, and how colleagues reach it.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedServer {
    /// Addresses on this computer's network interfaces, LAN ones first.
    pub join_urls: Vec<String>,
    /// SHA-256 fingerprint of the server's self-signed certificate.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum Connection {
    Online,
    Connecting,
    Offline,
    SignedOut,
    /// The server's certificate is no longer the one the user trusted.
    UntrustedCertificate,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub account: Option<Account>,
    pub embedded: Option<EmbeddedServer>,
    pub connection: Connection,
    pub settings: Settings,
    /// The video renderers this system offers, the default first.
    pub renderers: Vec<Renderer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ServerCheck {
    pub url: String,
    pub trusted: bool,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum PresenceView {
    Online,
    Away,
    InCall,
    Offline,
}

impl From<Presence> for PresenceView {
    fn from(presence: Presence) -> Self {
        match presence {
            Presence::Online => Self::Online,
            Presence::Away => Self::Away,
            Presence::InCall => Self::InCall,
            _ => Self::Offline,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum ConversationKindView {
    Direct,
    Group,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    pub kind: ConversationKindView,
    pub unread: u32,
    pub members: Vec<String>,
    /// The other member of a direct conversation.
    pub peer: Option<String>,
    pub presence: Option<PresenceView>,
    pub last_seq: f64,
}

impl ConversationSummary {
    pub fn new(
        conversation: &Conversation,
        me: &str,
        presence_of: impl Fn(&str) -> Option<Presence>,
    ) -> Self {
        let members: Vec<String> = conversation
            .members
            .iter()
            .map(|member| member.user.clone())
            .collect();
        let peer = match conversation.kind {
            ConversationKind::Direct => members.iter().find(|user| *user != me).cloned(),
            _ => None,
        };
        let title = conversation
            .name
            .clone()
            .or_else(|| peer.clone())
            .unwrap_or_else(|| members.join(", "));
        Self {
            id: conversation.id.to_string(),
            kind: match conversation.kind {
                ConversationKind::Direct => ConversationKindView::Direct,
                _ => ConversationKindView::Group,
            },
            unread: u32::try_from(conversation.unread).unwrap_or(u32::MAX),
            presence: peer.as_deref().map(|peer| {
                presence_of(peer)
                    .map(PresenceView::from)
                    .unwrap_or(PresenceView::Offline)
            }),
            title,
            members,
            peer,
            last_seq: conversation.last_seq as f64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum CallOutcomeView {
    Started,
    Ended,
    Declined,
    Missed,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub outcome: CallOutcomeView,
    pub video: bool,
    pub duration_secs: Option<u32>,
}

/// One line of a conversation: a message, a call record or a membership change.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub seq: f64,
    pub sender: String,
    pub at_ms: f64,
    pub text: Option<String>,
    pub edited: bool,
    pub deleted: bool,
    pub call: Option<CallRecord>,
    /// A membership change or rename, for example `{"kind":"memberAdded","user":"bob"}`.
    pub notice: Option<Notice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Notice {
    MemberAdded { user: String },
    MemberRemoved { user: String },
    Renamed { name: String },
}

impl ChatMessage {
    /// Builds the view of a stored event; edits and deletions are applied to
    /// their targets by the store, so they show nothing of their own.
    pub fn from_stored(stored: &StoredEvent) -> Option<Self> {
        let event = &stored.event;
        let mut view = Self {
            seq: event.seq as f64,
            sender: event.sender.clone(),
            at_ms: event.at_ms as f64,
            text: None,
            edited: stored.edited_seq.is_some(),
            deleted: stored.deleted_seq.is_some(),
            call: None,
            notice: None,
        };
        match &event.body {
            EventBody::Message { text, .. } => {
                if !view.deleted {
                    view.text = Some(text.clone());
                }
            }
            EventBody::Call { media, outcome, .. } => {
                let (outcome, duration_secs) = match outcome {
                    CallOutcome::Started => (CallOutcomeView::Started, None),
                    CallOutcome::Ended { duration_ms } => (
                        CallOutcomeView::Ended,
                        Some(u32::try_from(duration_ms / 1000).unwrap_or(u32::MAX)),
                    ),
                    CallOutcome::Declined => (CallOutcomeView::Declined, None),
                    _ => (CallOutcomeView::Missed, None),
                };
                view.call = Some(CallRecord {
                    outcome,
                    video: *media == CallMedia::Video,
                    duration_secs,
                });
            }
            EventBody::MemberAdded { user, .. } => {
                view.notice = Some(Notice::MemberAdded { user: user.clone() });
            }
            EventBody::MemberRemoved { user } => {
                view.notice = Some(Notice::MemberRemoved { user: user.clone() });
            }
            EventBody::Renamed { name } => {
                view.notice = Some(Notice::Renamed { name: name.clone() });
            }
            _ => return None,
        }
        Some(view)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub name: String,
    pub presence: PresenceView,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct Devices {
    pub cameras: Vec<DeviceView>,
    pub microphones: Vec<DeviceView>,
    pub speakers: Vec<DeviceView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum Quality {
    Good,
    Fair,
    Poor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    RemoteHangUp,
    LocalHangUp,
    Declined,
    Missed,
    Failed,
    ConnectionLost,
}

/// The call as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum CallState {
    Idle,
    #[serde(rename_all = "camelCase")]
    Outgoing {
        peer: String,
        video: bool,
    },
    #[serde(rename_all = "camelCase")]
    Incoming {
        caller: String,
        video: bool,
    },
    #[serde(rename_all = "camelCase")]
    Connecting {
        peer: String,
        video: bool,
    },
    #[serde(rename_all = "camelCase")]
    Connected {
        peer: String,
        video: bool,
        started_at_ms: f64,
        muted: bool,
        camera_on: bool,
        quality: Quality,
        /// Voice activity detection hears speech while the microphone is muted.
        talking_while_muted: bool,
        /// A device that failed; the call goes on without it.
        warning: Option<crate::error::UiError>,
    },
    /// Joining a conversation's group call, until the SFU sends its SDP answer.
    #[serde(rename_all = "camelCase")]
    Joining {
        conversation_id: String,
        title: String,
        video: bool,
    },
    /// In a conversation's group call.
    #[serde(rename_all = "camelCase")]
    InRoom(RoomCallView),
    /// A call ended; for a group call `peer` is the conversation's title.
    #[serde(rename_all = "camelCase")]
    Ended {
        peer: String,
        reason: EndReason,
        detail: Option<String>,
    },
}

/// A group call this device takes part in, as the call view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct RoomCallView {
    pub conversation_id: String,
    pub title: String,
    pub video: bool,
    pub started_at_ms: f64,
    /// This device's participant id.
    pub self_id: String,
    /// Everyone in the call, this device included, in the order they joined.
    pub participants: Vec<RoomMemberView>,
    /// The participant who speaks loudest at the moment, by the SFU's
    /// reading of the audio levels.
    pub active_speaker: Option<String>,
    pub muted: bool,
    pub camera_on: bool,
    /// The screen or window this device shares, by source id.
    pub sharing: Option<String>,
    pub quality: Quality,
    pub talking_while_muted: bool,
    /// A device or a screen share that failed; the call goes on without it.
    pub warning: Option<crate::error::UiError>,
}

/// One participant of a group call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct RoomMemberView {
    /// The device's id in the call, which its video streams carry.
    pub id: String,
    pub user: String,
    pub audio_muted: bool,
    pub video_off: bool,
    pub screen_sharing: bool,
}

impl From<&hearth_proto::RoomParticipant> for RoomMemberView {
    fn from(participant: &hearth_proto::RoomParticipant) -> Self {
        Self {
            id: participant.id.to_string(),
            user: participant.user.clone(),
            audio_muted: participant.audio_muted,
            video_off: participant.video_off,
            screen_sharing: participant.screen_sharing,
        }
    }
}

/// Who is in a conversation's group call, for the conversation's banner.
/// An empty `users` means the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    pub conversation_id: String,
    /// The users in the call, one entry per device.
    pub users: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum ScreenSourceKind {
    Screen,
    Window,
}

/// A screen or window the share picker offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ScreenSourceView {
    /// The id to pass to `start_screen_share`, such as `screen:0`.
    pub id: String,
    pub kind: ScreenSourceKind,
    /// The monitor's name or the window's title; may be empty.
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub thumbnail: Option<ThumbnailView>,
}

/// A source's picture for the picker: packed 8-bit RGB in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailView {
    pub width: u32,
    pub height: u32,
    pub rgb_base64: String,
}

impl From<&hearth_media::ScreenSource> for ScreenSourceView {
    fn from(source: &hearth_media::ScreenSource) -> Self {
        use base64::Engine as _;
        Self {
            id: source.id.to_string(),
            kind: match source.kind {
                hearth_media::screen::SourceKind::Screen => ScreenSourceKind::Screen,
                hearth_media::screen::SourceKind::Window => ScreenSourceKind::Window,
            },
            title: source.title.clone(),
            width: source.width,
            height: source.height,
            thumbnail: source.thumbnail.as_ref().map(|thumbnail| ThumbnailView {
                width: thumbnail.width as u32,
                height: thumbnail.height as u32,
                rgb_base64: base64::engine::general_purpose::STANDARD.encode(&thumbnail.rgb),
            }),
        }
    }
}
