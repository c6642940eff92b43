//! The single writer of chat state, with group commit.
//!
//! Every change that appends events (messages, edits, deletes, membership,
//! renames, call records) and every read-position update goes through one
//! thread. The thread takes all requests that are waiting, up to `MAX_BATCH`,
//! applies them in one SQLite transaction, each inside its own savepoint so a
//! failing request does not undo the others, and commits once. Only after the
//! commit does it push the new events to the members' connections, in sequence
//! order, and reply to the requests. One fsync then covers a whole batch, and a
//! single thread allocating sequence numbers keeps each conversation's pushes
//! in order.
//!
//! The thread uses rusqlite on a connection of its own rather than sqlx. sqlx
//! runs every statement on a worker thread and hands the result back through a
//! channel. At about six statements per message, those hand-offs limited the
//! message rate more than SQLite itself did. Checkpoints of the write-ahead log run on
//! a pooled connection in the background ([`run_checkpoints`]), so the writer's
//! commits do not pay for them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_proto::chat::{ConversationId, CreateConversation, Role, Seq};
use hearth_proto::{ErrorCode, ServerMessage};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::error::ChatError;
use super::ops::{self, Applied};
use crate::signal::{CallLog, Hub};

/// Maximum number of requests applied in one transaction.
const MAX_BATCH: usize = 512;

/// Requests waiting for the writer before senders have to wait.
pub const QUEUE_CAPACITY: usize = 4096;

/// Destination of a request's outcome.
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
    /// No caller waits for the outcome, so failures are only logged.
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
    pub fn get(
        &mut self,
        conn: &Connection,
        id: ConversationId,
    ) -> rusqlite::Result<&[(String, Role)]> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.members.entry(id) {
            entry.insert(super::queries::members(conn, id)?);
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

/// How long the writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the background task checkpoints the write-ahead log.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the writer's connection to the database at `path`, which the
/// migrations have created, and starts the writer thread. Call records from
/// `call_logs` are written in the order they arrive. Returns the sender of
/// requests; the thread stops once every sender is dropped.
pub fn start(
    path: &Path,
    hub: Arc<Hub>,
    attachments_dir: PathBuf,
    call_logs: mpsc::UnboundedReceiver<CallLog>,
) -> anyhow::Result<mpsc::Sender<Request>> {
    use anyhow::Context as _;

    let conn = open(path).with_context(|| {
        format!(
            "failed to open database {} for the chat writer",
            path.display()
        )
    })?;
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    std::thread::Builder::new()
        .name("chat-writer".to_owned())
        .spawn(move || run(conn, &hub, &attachments_dir, receiver))
        .context("failed to start the chat writer thread")?;
    tokio::spawn(forward_call_logs(call_logs, sender.clone()));
    Ok(sender)
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL makes each commit wait for the write-ahead log to reach the disk,
    // so an acknowledged message survives a power failure.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// Passes call records from signalling, which cannot wait for room in the
/// writer's bounded queue, on to the writer in order.
async fn forward_call_logs(
    mut call_logs: mpsc::UnboundedReceiver<CallLog>,
    writer: mpsc::Sender<Request>,
) {
    while let Some(log) = call_logs.recv().await {
        let request = Request {
            change: Change::Call(log),
            reply: Reply::None,
        };
        if writer.send(request).await.is_err() {
            return;
        }
    }
}

/// Checkpoints the write-ahead log into the database file every second. The
/// PASSIVE mode copies what it can without waiting for the writer (SQLite's
/// `wal_checkpoint` documentation). Runs until the pool closes.
pub async fn run_checkpoints(pool: sqlx::SqlitePool) {
    let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
    loop {
        interval.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(%error, "failed to checkpoint the write-ahead log");
        }
    }
}

/// Runs the writer until every sender is gone.
fn run(
    mut conn: Connection,
    hub: &Hub,
    attachments_dir: &Path,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, hub, attachments_dir, &mut batch);
        batch.clear();
    }
    tracing::debug!("chat writer stopped");
}

/// Applies, commits and delivers one batch.
fn commit_batch(
    conn: &mut Connection,
    hub: &Hub,
    attachments_dir: &Path,
    batch: &mut Vec<Request>,
) {
    let started = std::time::Instant::now();
    let mut cache = MemberCache::default();
    let mut outcomes: Vec<Result<Applied, ChatError>> = Vec::with_capacity(batch.len());

    let mut applied_at = started;
    let committed = (|| {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for request in batch.iter() {
            outcomes.push(apply_one(&mut tx, &mut cache, &request.change));
        }
        applied_at = std::time::Instant::now();
        tx.commit()
    })();

    if let Err(error) = committed {
        let failure = ChatError::internal("failed to commit chat changes", &error);
        outcomes = batch.iter().map(|_| Err(failure.clone())).collect();
    }
    tracing::trace!(
        requests = batch.len(),
        apply_micros = (applied_at - started).as_micros(),
        micros = started.elapsed().as_micros(),
        "committed chat batch"
    );

    for (request, outcome) in batch.drain(..).zip(outcomes) {
        deliver(hub, attachments_dir, request, outcome);
    }
}

/// Applies one change inside a savepoint, which is released on success and
/// rolled back on failure.
fn apply_one(
    tx: &mut rusqlite::Transaction<'_>,
    cache: &mut MemberCache,
    change: &Change,
) -> Result<Applied, ChatError> {
    let savepoint = tx.savepoint()?;
    match ops::apply(&savepoint, cache, change) {
        Ok(applied) => {
            savepoint.commit()?;
            Ok(applied)
        }
        Err(error) => {
            // The failed change may have loaded or changed members before it
            // failed; reload them for the next change.
            cache.clear();
            savepoint.finish()?;
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
