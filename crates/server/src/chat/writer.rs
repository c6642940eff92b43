//! The single writer of chat state, with group commit.
//!
//! Every change that appends events (messages, edits, deletes, membership,
//! renames, call records) and every read-position update goes through one
//! task. The task takes all requests that are waiting, up to `MAX_BATCH`,
//! applies them in one SQLite transaction, each inside its own savepoint so a
//! failing request does not undo the others, and commits once. Only after the
//! commit does it push the new events to the members' connections, in sequence
//! order, and reply to the requests. One fsync then covers a whole batch, and a
//! single task allocating sequence numbers keeps each conversation's pushes in
//! order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hearth_proto::chat::{ConversationId, CreateConversation, Role, Seq};
use hearth_proto::{ErrorCode, ServerMessage};
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::error::ChatError;
use super::ops::{self, Applied};
use crate::signal::{CallLog, Hub};

/// Maximum number of requests applied in one transaction.
const MAX_BATCH: usize = 512;

/// Requests waiting for the writer before senders have to wait.
pub const QUEUE_CAPACITY: usize = 4096;

/// Where the outcome of a request goes.
pub enum Reply {
    /// A WebSocket request: errors go back as `error` frames with these ids,
    /// and the acknowledgement, if the request has one, as a frame too.
    Connection {
        conn: crate::signal::machine::ConnId,
        conversation_id: ConversationId,
        client_id: Option<hearth_proto::chat::ClientMessageId>,
    },
    /// A REST request waiting for the commit.
    Channel(oneshot::Sender<Result<Committed, ChatError>>),
    /// Nobody waits; failures are logged.
    None,
}

/// A change to chat state.
pub enum Change {
    Send {
        user: String,
        conversation_id: ConversationId,
        client_id: hearth_proto::chat::ClientMessageId,
        text: String,
        reply_to: Option<Seq>,
        attachments: Vec<hearth_proto::chat::AttachmentId>,
    },
    Edit {
        user: String,
        conversation_id: ConversationId,
        target: Seq,
        text: String,
    },
    Delete {
        user: String,
        conversation_id: ConversationId,
        target: Seq,
    },
    MarkRead {
        user: String,
        conversation_id: ConversationId,
        seq: Seq,
    },
    Create {
        user: String,
        request: CreateConversation,
    },
    Rename {
        user: String,
        conversation_id: ConversationId,
        name: String,
    },
    AddMember {
        user: String,
        conversation_id: ConversationId,
        member: String,
        role: Role,
    },
    RemoveMember {
        user: String,
        conversation_id: ConversationId,
        member: String,
    },
    Call(CallLog),
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send_message",
            Self::Edit { .. } => "edit_message",
            Self::Delete { .. } => "delete_message",
            Self::MarkRead { .. } => "mark_read",
            Self::Create { .. } => "create_conversation",
            Self::Rename { .. } => "rename_conversation",
            Self::AddMember { .. } => "add_member",
            Self::RemoveMember { .. } => "remove_member",
            Self::Call(_) => "call_record",
        }
    }
}

/// The outcome of a committed change, for REST requests.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub conversation_id: ConversationId,
    /// False when the change was already in effect, such as creating a direct
    /// conversation that exists or adding a member twice.
    pub changed: bool,
}

/// A change and where its outcome goes.
pub struct Request {
    pub change: Change,
    pub reply: Reply,
}

/// Members of the conversations a batch touched, loaded once per batch.
#[derive(Default)]
pub struct MemberCache {
    members: HashMap<ConversationId, Vec<(String, Role)>>,
}

impl MemberCache {
    /// Returns the members of a conversation, loading them on first use.
    pub async fn get(
        &mut self,
        conn: &mut SqliteConnection,
        id: ConversationId,
    ) -> Result<&[(String, Role)], sqlx::Error> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.members.entry(id) {
            let members = super::store::members(conn, id)
                .await?
                .into_iter()
                .map(|member| (member.user, member.role))
                .collect();
            entry.insert(members);
        }
        Ok(self.members.get(&id).map(Vec::as_slice).unwrap_or_default())
    }

    /// Forgets a conversation's members after its membership changed or a
    /// savepoint that may have changed it was rolled back.
    pub fn forget(&mut self, id: ConversationId) {
        self.members.remove(&id);
    }

    pub fn clear(&mut self) {
        self.members.clear();
    }
}

/// Runs the writer until every sender is gone. `conn` is a connection of its
/// own, outside the pool, so reads never make the writer wait for a connection.
pub async fn run(
    mut conn: SqliteConnection,
    hub: std::sync::Arc<Hub>,
    attachments_dir: PathBuf,
    mut requests: mpsc::Receiver<Request>,
    mut call_logs: mpsc::UnboundedReceiver<CallLog>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let mut call_logs_open = true;
    loop {
        // Call records come from signalling, which cannot wait, so they have
        // an unbounded channel of their own and go first.
        let first = tokio::select! {
            biased;
            log = call_logs.recv(), if call_logs_open => match log {
                Some(log) => Request { change: Change::Call(log), reply: Reply::None },
                None => {
                    call_logs_open = false;
                    continue;
                }
            },
            request = requests.recv() => match request {
                Some(request) => request,
                None => break,
            },
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            if let Ok(log) = call_logs.try_recv() {
                batch.push(Request {
                    change: Change::Call(log),
                    reply: Reply::None,
                });
                continue;
            }
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &hub, &attachments_dir, &mut batch).await;
        batch.clear();
    }
    tracing::debug!("chat writer stopped");
}

/// Applies, commits and delivers one batch.
async fn commit_batch(
    conn: &mut SqliteConnection,
    hub: &Hub,
    attachments_dir: &Path,
    batch: &mut Vec<Request>,
) {
    let started = std::time::Instant::now();
    let mut cache = MemberCache::default();
    let mut outcomes: Vec<Result<Applied, ChatError>> = Vec::with_capacity(batch.len());

    let committed = async {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for request in batch.iter() {
            outcomes.push(apply_one(&mut tx, &mut cache, &request.change).await);
        }
        tx.commit().await
    }
    .await;

    if let Err(error) = committed {
        let failure = ChatError::internal("failed to commit chat changes", &error);
        outcomes = batch.iter().map(|_| Err(failure.clone())).collect();
    }
    tracing::trace!(
        requests = batch.len(),
        micros = started.elapsed().as_micros(),
        "committed chat batch"
    );

    for (request, outcome) in batch.drain(..).zip(outcomes) {
        deliver(hub, attachments_dir, request, outcome);
    }
}

/// Applies one change inside a savepoint, which is released on success and
/// rolled back on failure.
async fn apply_one(
    tx: &mut SqliteConnection,
    cache: &mut MemberCache,
    change: &Change,
) -> Result<Applied, ChatError> {
    let mut savepoint = tx.begin().await?;
    match ops::apply(&mut savepoint, cache, change).await {
        Ok(applied) => {
            savepoint.commit().await?;
            Ok(applied)
        }
        Err(error) => {
            // The failed change may have loaded or changed members before it
            // failed; reload them for the next change.
            cache.clear();
            savepoint.rollback().await?;
            Err(error)
        }
    }
}

/// Pushes a committed change's events and replies to its request.
fn deliver(
    hub: &Hub,
    attachments_dir: &Path,
    request: Request,
    outcome: Result<Applied, ChatError>,
) {
    let kind = request.change.kind();
    match (outcome, request.reply) {
        (Ok(applied), reply) => {
            for file in &applied.removed_files {
                remove_file(&attachments_dir.join(file));
            }
            let changed = !applied.pushes.is_empty();
            hub.push_all(applied.pushes);
            match reply {
                Reply::Connection { conn, .. } => {
                    if let Some(ack) = applied.ack {
                        hub.reply(conn, ack);
                    }
                }
                Reply::Channel(sender) => {
                    let _ = sender.send(Ok(Committed {
                        conversation_id: applied.conversation_id,
                        changed,
                    }));
                }
                Reply::None => {}
            }
        }
        (
            Err(error),
            Reply::Connection {
                conn,
                conversation_id,
                client_id,
            },
        ) => {
            tracing::info!(%conn, %conversation_id, code = %error.code, reason = %error.message, "rejected {kind}");
            hub.reply(
                conn,
                ServerMessage::Error {
                    code: error.code,
                    message: error.message,
                    call_id: None,
                    conversation_id: Some(conversation_id),
                    client_id,
                },
            );
        }
        (Err(error), Reply::Channel(sender)) => {
            if error.code != ErrorCode::Internal {
                tracing::info!(code = %error.code, reason = %error.message, "rejected {kind}");
            }
            let _ = sender.send(Err(error));
        }
        (Err(error), Reply::None) => {
            tracing::warn!(code = %error.code, reason = %error.message, "failed to apply {kind}");
        }
    }
}

/// Removes an attachment file of a deleted message. A file that cannot be
/// removed stays on disk, unreachable, and is logged.
fn remove_file(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "failed to remove attachment file");
    }
}
