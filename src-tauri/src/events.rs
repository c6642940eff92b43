//! Events the UI listens to, and the task that turns session updates into them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hearth_client::session::{ChatUpdate, Session};
use hearth_proto::chat::EventBody;
use serde::{Deserialize, Serialize};
use tauri::AppHandle;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::app::connection_view;
use crate::views::{CallState, ChatMessage, Connection, RoomSummary};

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ConnectionChanged(pub Connection);

/// The conversation list changed: a new conversation, a rename, read state
/// or presence.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct ConversationsChanged;

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct MessageReceived {
    pub conversation_id: String,
    pub message: ChatMessage,
}

/// A message in a conversation changed after it was shown: an edit or a
/// deletion. The UI reloads that conversation.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct ConversationUpdated {
    pub conversation_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct CallChanged(pub CallState);

/// A change of the people in a conversation's group call. Empty `users`
/// means the call ended.
#[derive(Debug, Clone, Serialize, Deserialize, specta::Type, tauri_specta::Event)]
pub struct RoomChanged(pub RoomSummary);

/// The group calls in progress in the user's conversations, as the server
/// last reported them, by conversation id.
///
/// NOTE: the server reports a room when someone joins, leaves or changes
/// media, so a call that started before this session connected and has not
/// changed since is missing until its next change.
#[derive(Debug, Clone, Default)]
pub struct RoomDirectory(Arc<Mutex<HashMap<String, RoomSummary>>>);

impl RoomDirectory {
    pub fn list(&self) -> Vec<RoomSummary> {
        let rooms = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rooms.values().cloned().collect()
    }

    fn update(&self, summary: &RoomSummary) {
        let mut rooms = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if summary.users.is_empty() {
            rooms.remove(&summary.conversation_id);
        } else {
            rooms.insert(summary.conversation_id.clone(), summary.clone());
        }
    }

    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Forwards one session's updates to the UI until dropped.
pub struct Forwarder {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Forwarder {
    pub fn start(handle: AppHandle, session: Session, rooms: RoomDirectory) -> Self {
        let updates = tokio::spawn(forward_updates(handle.clone(), session.clone(), rooms));
        let state = tokio::spawn(forward_state(handle, session));
        Self {
            tasks: vec![updates, state],
        }
    }
}

async fn forward_state(handle: AppHandle, session: Session) {
    let mut state = session.watch_state();
    loop {
        let view = connection_view(&state.borrow_and_update());
        crate::notify::set_tray_status(&handle, tray_status(view));
        emit(&handle, ConnectionChanged(view));
        if view == Connection::Online {
            emit(&handle, ConversationsChanged);
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

async fn forward_updates(handle: AppHandle, session: Session, rooms: RoomDirectory) {
    let mut updates = session.subscribe();
    loop {
        match updates.recv().await {
            Ok(ChatUpdate::Event(event)) => {
                let conversation_id = event.conversation_id.to_string();
                match &event.body {
                    EventBody::Edited { .. } | EventBody::Deleted { .. } => {
                        emit(&handle, ConversationUpdated { conversation_id });
                    }
                    _ => {
                        let stored = hearth_client::store::StoredEvent {
                            event: event.clone(),
                            edited_seq: None,
                            deleted_seq: None,
                        };
                        if let Some(message) = ChatMessage::from_stored(&stored) {
                            if event.sender != session.user() {
                                crate::notify::new_message(&handle, &event.sender, &message);
                            }
                            emit(
                                &handle,
                                MessageReceived {
                                    conversation_id,
                                    message,
                                },
                            );
                        }
                    }
                }
                emit(&handle, ConversationsChanged);
            }
            Ok(ChatUpdate::RoomChanged {
                conversation_id,
                participants,
                ..
            }) => {
                let summary = RoomSummary {
                    conversation_id: conversation_id.to_string(),
                    users: participants.into_iter().map(|p| p.user).collect(),
                };
                rooms.update(&summary);
                emit(&handle, RoomChanged(summary));
            }
            Ok(_) => emit(&handle, ConversationsChanged),
            // Missed updates: the UI reloads what it shows.
            Err(RecvError::Lagged(_)) => emit(&handle, ConversationsChanged),
            Err(RecvError::Closed) => return,
        }
    }
}

pub fn emit<E: tauri_specta::Event + Serialize + Clone>(handle: &AppHandle, event: E) {
    if let Err(err) = event.emit(handle) {
        tracing::warn!(error = %err, "cannot emit an event to the UI");
    }
}

fn tray_status(connection: Connection) -> &'static str {
    match connection {
        Connection::Online => "online / 在线",
        Connection::Connecting => "connecting / 正在连接",
        Connection::Offline => "offline / 离线",
        Connection::SignedOut => "signed out / 未登录",
        Connection::UntrustedCertificate => "untrusted certificate / 证书不受信任",
    }
}
