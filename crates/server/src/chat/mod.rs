//! Chat: conversations, messages, sync, read state, presence, attachments,
//! call records and search.
//!
//! Requests arrive as frames on the session WebSocket ([`Chat::handle_frame`])
//! and as REST calls under `/api/v1` ([`rest`]). Reads run on the connection
//! pool. Every write goes through the single [`writer`] thread, which batches
//! writes into one transaction per batch, allocates sequence numbers, and
//! pushes committed events to the members' connections through the
//! [`Hub`](crate::signal::Hub).

mod attachments;
mod error;
mod ops;
mod presence;
mod queries;
pub mod rest;
pub mod schema;
mod store;
mod writer;
mod ws;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use hearth_proto::ClientMessage;
use sqlx::SqlitePool;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use attachments::DEFAULT_MAX_ATTACHMENT_BYTES;
pub use error::ChatError;
pub use store::now_ms;

use crate::signal::Hub;
use crate::signal::machine::ConnId;
use writer::{Change, Committed, Reply, Request};

/// The chat service of one server.
pub struct Chat {
    pool: SqlitePool,
    hub: Arc<Hub>,
    writer: mpsc::Sender<Request>,
    attachments: attachments::AttachmentStore,
}

/// The connection a chat frame arrived on.
pub struct ConnectionContext {
    pub conn: ConnId,
    pub user: String,
    /// Slots that pace this connection's `sync` batches.
    pub sync_slots: Arc<Semaphore>,
}

/// Returns whether a client message is a chat frame rather than call signalling.
pub fn is_chat_message(message: &ClientMessage) -> bool {
    matches!(
        message,
        ClientMessage::SendMessage { .. }
            | ClientMessage::EditMessage { .. }
            | ClientMessage::DeleteMessage { .. }
            | ClientMessage::Sync { .. }
            | ClientMessage::History { .. }
            | ClientMessage::MarkRead { .. }
            | ClientMessage::SetPresence { .. }
    )
}

impl Chat {
    /// Starts the writer and presence tasks. Attachments live under
    /// `data_dir/attachments`.
    pub async fn start(
        pool: SqlitePool,
        hub: Arc<Hub>,
        data_dir: &Path,
        max_attachment_bytes: u64,
    ) -> anyhow::Result<Arc<Self>> {
        let attachments = attachments::AttachmentStore::open(
            &data_dir.join(attachments::DIRECTORY),
            max_attachment_bytes,
        )?;
        let call_logs = hub
            .take_call_logs()
            .context("the signalling hub already has a chat service")?;
        let sender = writer::start(
            &data_dir.join(crate::db::DATABASE_FILE),
            hub.clone(),
            attachments.dir().to_owned(),
            call_logs,
        )?;
        tokio::spawn(writer::run_checkpoints(pool.clone()));
        tokio::spawn(presence::run(pool.clone(), hub.clone()));
        Ok(Arc::new(Self {
            pool,
            hub,
            writer: sender,
            attachments,
        }))
    }

    /// Checks that `user` is a member of the conversation and returns every
    /// member, for a group call.
    pub async fn room_members(
        &self,
        conversation_id: hearth_proto::chat::ConversationId,
        user: &str,
    ) -> Result<Vec<String>, ChatError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|error| ChatError::internal("failed to open the database", &error))?;
        store::require_member(&mut conn, conversation_id, user).await?;
        let members = store::members(&mut conn, conversation_id)
            .await
            .map_err(|error| ChatError::internal("failed to read the members", &error))?;
        Ok(members.into_iter().map(|member| member.user).collect())
    }

    /// Returns every member of a conversation, for a guest's group call, in
    /// which the guest is no member.
    pub async fn call_members(
        &self,
        conversation_id: hearth_proto::chat::ConversationId,
    ) -> Result<Vec<String>, ChatError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|error| ChatError::internal("failed to open the database", &error))?;
        let members = store::members(&mut conn, conversation_id)
            .await
            .map_err(|error| ChatError::internal("failed to read the members", &error))?;
        if members.is_empty() {
            return Err(ChatError::conversation_not_found(conversation_id));
        }
        Ok(members.into_iter().map(|member| member.user).collect())
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Queues a change for the writer. Waits while the writer's queue is full,
    /// which slows down the clients that write the most.
    async fn enqueue(&self, change: Change, reply: Reply) -> Result<(), ChatError> {
        self.writer
            .send(Request { change, reply })
            .await
            .map_err(|_| ChatError::internal("chat writer stopped", &"channel closed"))
    }

    /// Applies a change and waits until it is committed.
    async fn apply(&self, change: Change) -> Result<Committed, ChatError> {
        let (sender, receiver) = oneshot::channel();
        self.enqueue(change, Reply::Channel(sender)).await?;
        receiver
            .await
            .map_err(|_| ChatError::internal("chat writer dropped a request", &"no reply"))?
    }
}
