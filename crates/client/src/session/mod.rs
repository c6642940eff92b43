//! A signed-in session: one WebSocket to the server that carries both chat
//! and call signalling, the local store, and the chat engine that keeps them
//! in step.
//!
//! A background task owns the connection. On every (re)connect it fetches the
//! conversation list over REST, syncs each conversation from the newest event
//! stored here until the server reports `complete`, sends read positions set
//! while offline, and then sends the outbox in order. An outbox row is
//! deleted only when its `message_ack` arrives. The server deduplicates by
//! client id, so resending after a lost acknowledgement stores the message
//! once. A dropped connection is retried with exponential backoff and jitter,
//! and an expired access token is refreshed first.
//!
//! Call frames go to the [`SignalConnection`] that [`Session::call_signal`]
//! hands out, chat frames to the engine. Errors are routed by their
//! `call_id`, `conversation_id` and `client_id`, so a rejected chat request
//! never ends a call.

mod backoff;
mod connection;
mod rest;
mod tokens;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hearth_proto::chat::{
    AddMember, Attachment, AttachmentId, ClientMessageId, Conversation, ConversationId,
    ConversationKind, CreateConversation, Event, MAX_NAME_BYTES, MAX_PAGE_EVENTS, MAX_TEXT_BYTES,
    Presence, RenameConversation, Role, SEARCH_PATH, SearchHit, Seq, USERS_PATH, UserEntry,
};
use hearth_proto::{ClientMessage, ErrorCode};
use reqwest::Method;
use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::credentials::Account;
use crate::error::{ClientError, Result};
use crate::server::ServerEndpoint;
use crate::signal::SignalConnection;
use crate::store::{OutboxAttachment, OutboxEntry, OutboxMessage, Recovery, Store, StoredEvent};
use connection::Link;
use rest::Rest;
use tokens::TokenSource;

pub use tokens::Credentials;

/// How long a request over the WebSocket (history, edit, delete) waits for
/// the server's response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How many send outcomes are remembered for [`Session::wait_sent`].
const REMEMBERED_OUTCOMES: usize = 4096;

/// Settings of a session.
pub struct SessionConfig {
    pub server: ServerEndpoint,
    /// The signed-in user's name.
    pub user: String,
    /// Source of the session's access tokens.
    pub credentials: Credentials,
    /// Keyring entry that receives each rotated refresh token; `None` keeps
    /// the refresh token in memory only, as for a password sign-in in a script.
    pub keyring: Option<Account>,
    /// The local database file, for example from [`crate::store::account_dir`].
    pub database: PathBuf,
}

/// State of the session's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    Connecting,
    /// Connected and catching up with the server.
    Syncing,
    /// Connected, synced, and the outbox was sent.
    Online,
    /// Not connected; the next attempt starts after `retry_in`.
    Offline {
        code: &'static str,
        error: String,
        retry_in: Duration,
    },
    /// The server rejected the session's tokens; sign in again.
    SignedOut {
        error: String,
    },
    /// [`Session::close`] was called.
    Closed,
}

impl ConnectionState {
    /// Returns whether the state is final for a connection attempt: online,
    /// offline after a failure, signed out or closed.
    pub fn is_settled(&self) -> bool {
        !matches!(self, Self::Connecting | Self::Syncing)
    }
}

/// A change that UIs show, sent to every [`Session::subscribe`] receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatUpdate {
    /// An event stored for the first time, pushed live or fetched by sync.
    Event(Event),
    /// The server stored an outbox message as `seq`.
    MessageSent {
        conversation_id: ConversationId,
        client_id: ClientMessageId,
        seq: Seq,
    },
    /// The server rejected an outbox message for good; it left the outbox.
    MessageFailed {
        conversation_id: ConversationId,
        client_id: ClientMessageId,
        code: ErrorCode,
        message: String,
    },
    ReadState {
        conversation_id: ConversationId,
        last_read_seq: Seq,
        unread: u64,
    },
    Presence {
        user: String,
        presence: Presence,
    },
    /// A conversation was added, renamed or its members changed.
    ConversationChanged(ConversationId),
    /// This user left or was removed; the local copy is gone.
    ConversationRemoved(ConversationId),
    Connection(ConnectionState),
    /// Who is in a conversation's group call; an empty list means it ended.
    RoomChanged {
        conversation_id: ConversationId,
        participants: Vec<hearth_proto::RoomParticipant>,
        active_speaker: Option<hearth_proto::RoomParticipantId>,
    },
}

/// Result of a message given to [`Session::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server stored it as `seq`.
    Sent { seq: Seq },
    /// It waits in the outbox for the next connection.
    Queued,
}

/// One page of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub events: Vec<StoredEvent>,
    /// Whether older events exist, here or on the server.
    pub has_more: bool,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    pub text: String,
    pub reply_to: Option<Seq>,
    /// Local files to attach.
    pub files: Vec<PathBuf>,
}

/// A handle to a running session. Clones share the same connection and store,
/// and dropping the last clone stops the connection task as
/// [`close`](Session::close) does, without waiting for it.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    _stop_on_drop: Arc<StopOnDrop>,
}

/// Stops the connection task when the last [`Session`] clone is dropped. The
/// task holds its own reference to [`Shared`], so that alone would not end it.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.send_replace(true);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.shared.user)
            .field("server", &self.shared.server.base_url())
            .finish_non_exhaustive()
    }
}

/// An API call waiting for the connection task to pass on the server's response.
enum Waiter {
    History(oneshot::Sender<Result<()>>),
    Change {
        target: Seq,
        done: oneshot::Sender<Result<Seq>>,
    },
}

enum Outcome {
    Sent(Seq),
    Failed(ErrorCode, String),
}

pub(crate) struct Shared {
    server: ServerEndpoint,
    user: String,
    store: Mutex<Store>,
    recovery: Option<Recovery>,
    tokens: TokenSource,
    rest: Rest,
    updates: broadcast::Sender<ChatUpdate>,
    state: watch::Sender<ConnectionState>,
    link: Mutex<Option<Link>>,
    waiters: Mutex<HashMap<ConversationId, VecDeque<Waiter>>>,
    presence: Mutex<HashMap<String, Presence>>,
    own_presence: Mutex<Option<Presence>>,
    outcomes: Mutex<HashMap<ClientMessageId, Outcome>>,
    /// Wakes the connection task to send new outbox rows.
    flush: Notify,
    /// Wakes the connection task to reconnect without waiting out the backoff.
    reconnect: Notify,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Locks a mutex, taking over the data of a holder that panicked: every
/// critical section leaves the data consistent before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Session {
    /// Opens the local store and starts connecting in the background.
    pub fn start(config: SessionConfig) -> Result<Self> {
        let (store, recovery) = Store::open(&config.database, &config.user)?;
        let (updates, _) = broadcast::channel(1024);
        let (state, _) = watch::channel(ConnectionState::Connecting);
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            rest: Rest::new(config.server.clone())?,
            tokens: TokenSource::new(
                config.server.clone(),
                &config.user,
                config.credentials,
                config.keyring,
            ),
            server: config.server,
            user: config.user,
            store: Mutex::new(store),
            recovery,
            updates,
            state,
            link: Mutex::new(None),
            waiters: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            own_presence: Mutex::new(None),
            outcomes: Mutex::new(HashMap::new()),
            flush: Notify::new(),
            reconnect: Notify::new(),
            stop,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(connection::run(Arc::clone(&shared), stop_rx));
        *lock(&shared.task) = Some(task);
        Ok(Self {
            _stop_on_drop: Arc::new(StopOnDrop(Arc::clone(&shared))),
            shared,
        })
    }

    /// Closes the connection and stops reconnecting.
    pub async fn close(&self) {
        self.shared.stop.send_replace(true);
        let task = lock(&self.shared.task).take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::warn!(error = %err, "the session task failed");
        }
    }

    pub fn user(&self) -> &str {
        &self.shared.user
    }

    pub fn server(&self) -> &ServerEndpoint {
        &self.shared.server
    }

    /// Returns what [`Store::open`] did with a corrupt database, if it found one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.shared.recovery.as_ref()
    }

    pub fn state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// Returns a receiver of every change from now on. A receiver that falls
    /// more than 1024 updates behind loses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<ChatUpdate> {
        self.shared.updates.subscribe()
    }

    /// Waits until the connection attempt in progress settles (see
    /// [`ConnectionState::is_settled`]) and returns the state, or returns the
    /// current state after `timeout`.
    pub async fn wait_settled(&self, timeout: Duration) -> ConnectionState {
        let mut state = self.watch_state();
        let settled = tokio::time::timeout(timeout, state.wait_for(ConnectionState::is_settled));
        match settled.await {
            Ok(Ok(state)) => state.clone(),
            _ => self.state(),
        }
    }

    /// Skips the remaining backoff delay and reconnects now when offline.
    pub fn reconnect_now(&self) {
        self.shared.reconnect.notify_one();
    }

    /// Returns the signalling connection for calls on the current WebSocket:
    /// it receives every call frame and sends through the same socket. Only
    /// one exists at a time; once it is dropped, the next call gets a new one.
    /// It closes when the WebSocket does, which ends a call in progress.
    pub fn call_signal(&self) -> Result<SignalConnection> {
        let mut link = lock(&self.shared.link);
        let link = link.as_mut().ok_or_else(|| self.shared.not_connected())?;
        link.calls.take().ok_or_else(|| ClientError::InvalidInput {
            what: "call".into(),
            detail: "another call is using the connection; end it first".into(),
        })
    }

    /// Returns the stored conversations, the most recently active first.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        self.shared.store().conversations()
    }

    /// Returns one stored conversation.
    pub fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        self.shared
            .store()
            .conversation(id)?
            .ok_or_else(|| conversation_not_found(&id.to_string()))
    }

    /// Finds a stored conversation by id, group name or the user name of a
    /// direct conversation, without creating anything.
    pub async fn resolve_conversation(&self, name: &str) -> Result<ConversationId> {
        self.resolve(name, false).await
    }

    /// Like [`resolve_conversation`](Self::resolve_conversation), but when
    /// only a user of that name exists and the session is connected, opens
    /// the direct conversation with them. For sending, not for reading.
    pub async fn resolve_or_open_direct(&self, name: &str) -> Result<ConversationId> {
        self.resolve(name, true).await
    }

    async fn resolve(&self, name: &str, open_direct: bool) -> Result<ConversationId> {
        if let Ok(id) = ConversationId::parse_str(name) {
            self.conversation(id)?;
            return Ok(id);
        }
        let groups = self.shared.store().groups_named(name)?;
        match groups.as_slice() {
            [id] => {
                // A group named like a user must not catch messages meant for
                // the direct conversation with that user.
                if self.is_user(name).await? {
                    return Err(ClientError::InvalidInput {
                        what: "conversation".into(),
                        detail: format!(
                            "{name:?} is both a group and a user; give the group's id {id} \
                             or open the direct conversation with `hearth chat dm {name}` and use its id"
                        ),
                    });
                }
                return Ok(*id);
            }
            [] => {}
            several => {
                let ids: Vec<String> = several.iter().map(ToString::to_string).collect();
                return Err(ClientError::InvalidInput {
                    what: "conversation".into(),
                    detail: format!(
                        "{} groups are named {name:?}; give one of their ids instead: {}",
                        several.len(),
                        ids.join(", ")
                    ),
                });
            }
        }
        if let Some(id) = self.shared.store().direct_with(name)? {
            return Ok(id);
        }
        if !open_direct || self.state() != ConnectionState::Online {
            return Err(conversation_not_found(name));
        }
        match self.open_direct(name).await {
            Ok(conversation) => Ok(conversation.id),
            Err(ClientError::Server {
                code: ErrorCode::UserNotFound,
                ..
            }) => Err(conversation_not_found(name)),
            Err(err) => Err(err),
        }
    }

    /// Returns whether `name` is a user with a stored direct conversation or,
    /// when connected, a user in the server's directory.
    async fn is_user(&self, name: &str) -> Result<bool> {
        if self.shared.store().direct_with(name)?.is_some() {
            return Ok(true);
        }
        if self.state() != ConnectionState::Online {
            return Ok(false);
        }
        Ok(self.users().await?.iter().any(|user| user.name == name))
    }

    /// Returns up to `limit` events before `before` (or the newest ones),
    /// oldest first. Stored events come first; when they run out, older
    /// pages are fetched from the server if connected.
    pub async fn history(
        &self,
        id: ConversationId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<HistoryPage> {
        let limit = limit.clamp(1, MAX_PAGE_EVENTS);
        let before = before.unwrap_or(i64::MAX as Seq);
        // Each round fetches at least one older page; a page of only edits
        // and deletions adds no visible event, hence more than one round.
        for _ in 0..8 {
            let (events, floor) = {
                let store = self.shared.store();
                let state = store
                    .sync_state(id)?
                    .ok_or_else(|| conversation_not_found(&id.to_string()))?;
                (store.events_before(id, before, limit)?, state.floor_seq)
            };
            if events.len() >= limit as usize || floor == 0 {
                return self.history_page(id, events, floor);
            }
            match self.fetch_history(id, before.min(floor + 1), limit).await {
                Ok(()) => {}
                Err(ClientError::NotConnected { .. }) => {
                    return self.history_page(id, events, floor);
                }
                Err(err) => return Err(err),
            }
        }
        let events = self.shared.store().events_before(id, before, limit)?;
        let floor = self
            .shared
            .store()
            .sync_state(id)?
            .map_or(0, |state| state.floor_seq);
        self.history_page(id, events, floor)
    }

    fn history_page(
        &self,
        id: ConversationId,
        events: Vec<StoredEvent>,
        floor: Seq,
    ) -> Result<HistoryPage> {
        let older_here = match events.first() {
            Some(first) => !self
                .shared
                .store()
                .events_before(id, first.event.seq, 1)?
                .is_empty(),
            None => false,
        };
        Ok(HistoryPage {
            events,
            has_more: floor > 0 || older_here,
        })
    }

    async fn fetch_history(&self, id: ConversationId, before: Seq, limit: u32) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.shared.push_waiter(id, Waiter::History(done));
        let sent = self.shared.send_frame(ClientMessage::History {
            conversation_id: id,
            before,
            limit: Some(limit),
        });
        if let Err(err) = sent {
            self.shared.drop_waiters(id);
            return Err(err);
        }
        self.shared.await_answer(answer, "a history page").await
    }

    /// Puts a message in the outbox and wakes the connection to send it.
    /// Files are uploaded now when connected, or before sending otherwise.
    /// Follow up with [`wait_sent`](Self::wait_sent) to learn its sequence number.
    pub async fn send(&self, id: ConversationId, message: NewMessage) -> Result<OutboxEntry> {
        check_text(&message.text)?;
        self.conversation(id)?;
        let mut attachments = Vec::with_capacity(message.files.len());
        for path in &message.files {
            let path = check_file(path)?;
            let attachment = if self.state() == ConnectionState::Online {
                match self.upload(id, &path).await {
                    Ok(attachment) => OutboxAttachment::Uploaded { attachment },
                    Err(ClientError::Unreachable { .. } | ClientError::NotConnected { .. }) => {
                        OutboxAttachment::Pending { path }
                    }
                    Err(err) => return Err(err),
                }
            } else {
                OutboxAttachment::Pending { path }
            };
            attachments.push(attachment);
        }
        let entry = self.shared.store().push_outbox(OutboxMessage {
            conversation_id: id,
            text: message.text,
            reply_to: message.reply_to,
            attachments,
        })?;
        tracing::debug!(client_id = %entry.client_id, conversation_id = %id, "queued a message");
        self.shared.flush.notify_one();
        Ok(entry)
    }

    /// Waits until the server acknowledges the outbox message `client_id`,
    /// and returns [`SendOutcome::Queued`] when the session is not online or
    /// `timeout` passes first. A message the server rejected gives its error.
    pub async fn wait_sent(
        &self,
        client_id: ClientMessageId,
        timeout: Duration,
    ) -> Result<SendOutcome> {
        let mut updates = self.subscribe();
        let mut state = self.watch_state();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(outcome) = self.shared.outcome(client_id) {
                return outcome;
            }
            let current = state.borrow_and_update().clone();
            if matches!(
                current,
                ConnectionState::Offline { .. }
                    | ConnectionState::SignedOut { .. }
                    | ConnectionState::Closed
            ) {
                return Ok(SendOutcome::Queued);
            }
            tokio::select! {
                _ = updates.recv() => {}
                _ = state.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(SendOutcome::Queued),
            }
        }
    }

    /// Returns the unsent messages in sending order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.shared.store().outbox()
    }

    /// Waits until the outbox is empty; returns false after `timeout`.
    pub async fn wait_outbox_empty(&self, timeout: Duration) -> Result<bool> {
        let mut updates = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.store().outbox()?.is_empty() {
                return Ok(true);
            }
            tokio::select! {
                _ = updates.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    /// Replaces the text of this user's message `target` and returns the
    /// sequence number of the edit.
    pub async fn edit(&self, id: ConversationId, target: Seq, text: &str) -> Result<Seq> {
        check_text(text)?;
        self.change(
            id,
            target,
            ClientMessage::EditMessage {
                conversation_id: id,
                target,
                text: text.to_owned(),
            },
        )
        .await
    }

    /// Deletes message `target` and returns the sequence number of the deletion.
    pub async fn delete(&self, id: ConversationId, target: Seq) -> Result<Seq> {
        self.change(
            id,
            target,
            ClientMessage::DeleteMessage {
                conversation_id: id,
                target,
            },
        )
        .await
    }

    async fn change(&self, id: ConversationId, target: Seq, frame: ClientMessage) -> Result<Seq> {
        let (done, answer) = oneshot::channel();
        self.shared.push_waiter(id, Waiter::Change { target, done });
        if let Err(err) = self.shared.send_frame(frame) {
            self.shared.drop_waiters(id);
            return Err(err);
        }
        self.shared
            .await_answer(answer, "the server to confirm the change")
            .await
    }

    /// Marks everything up to `seq` (default: the newest event) as read.
    /// Works offline: the position is sent on the next connection.
    pub fn mark_read(&self, id: ConversationId, seq: Option<Seq>) -> Result<Seq> {
        let seq = {
            let mut store = self.shared.store();
            let state = store
                .sync_state(id)?
                .ok_or_else(|| conversation_not_found(&id.to_string()))?;
            let seq = seq.unwrap_or(state.last_seq);
            store.set_read_locally(id, seq)?;
            seq
        };
        // Offline, the connection task sends it after the next sync.
        let _ = self.shared.send_frame(ClientMessage::MarkRead {
            conversation_id: id,
            seq,
        });
        Ok(seq)
    }

    /// Searches the stored messages: every word of `query` must occur.
    pub fn search_local(
        &self,
        query: &str,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        self.shared.store().search(query, conversation, limit)
    }

    /// Searches every message on the server that this user may read.
    pub async fn search_server(
        &self,
        query: &str,
        conversation: Option<ConversationId>,
        limit: u32,
    ) -> Result<Vec<SearchHit>> {
        if hearth_proto::search::match_query(query).is_none() {
            return Err(ClientError::InvalidInput {
                what: "search query".into(),
                detail: format!("{query:?} contains no letters or digits; search for a word"),
            });
        }
        let mut params = vec![("q", query.to_owned()), ("limit", limit.to_string())];
        if let Some(id) = conversation {
            params.push(("conversation_id", id.to_string()));
        }
        self.shared
            .rest
            .json(&self.shared.tokens, Method::GET, SEARCH_PATH, |request| {
                request.query(&params)
            })
            .await
    }

    /// Creates a group with this user as owner.
    pub async fn create_group(&self, name: &str, members: &[String]) -> Result<Conversation> {
        check_name(name)?;
        self.create(CreateConversation {
            kind: ConversationKind::Group,
            name: Some(name.to_owned()),
            members: members.to_vec(),
        })
        .await
    }

    /// Opens the direct conversation with `user`, creating it if needed.
    pub async fn open_direct(&self, user: &str) -> Result<Conversation> {
        self.create(CreateConversation {
            kind: ConversationKind::Direct,
            name: None,
            members: vec![user.to_owned()],
        })
        .await
    }

    async fn create(&self, body: CreateConversation) -> Result<Conversation> {
        let conversation: Conversation = self
            .shared
            .rest
            .json(
                &self.shared.tokens,
                Method::POST,
                hearth_proto::chat::CONVERSATIONS_PATH,
                |request| request.json(&body),
            )
            .await?;
        self.shared.store_conversation(&conversation)?;
        Ok(conversation)
    }

    /// Renames a group (owners only).
    pub async fn rename(&self, id: ConversationId, name: &str) -> Result<()> {
        check_name(name)?;
        let body = RenameConversation {
            name: name.to_owned(),
        };
        self.update(
            Method::PATCH,
            &rest::conversation_path(id, ""),
            id,
            |request| request.json(&body),
        )
        .await
    }

    /// Adds a member to a group (owners only).
    pub async fn add_member(&self, id: ConversationId, user: &str, role: Role) -> Result<()> {
        let body = AddMember {
            user: user.to_owned(),
            role,
        };
        self.update(
            Method::POST,
            &rest::conversation_path(id, "/members"),
            id,
            |request| request.json(&body),
        )
        .await
    }

    /// Removes a member from a group (owners only, or anyone for themselves).
    pub async fn remove_member(&self, id: ConversationId, user: &str) -> Result<()> {
        let path = rest::conversation_path(id, &format!("/members/{}", rest::path_segment(user)));
        self.update(Method::DELETE, &path, id, |request| request)
            .await?;
        if user == self.shared.user {
            self.shared.forget_conversation(id)?;
        }
        Ok(())
    }

    /// Creates a guest invitation to the conversation's group call, valid for
    /// `ttl_secs` (the server's default when `None`). The returned page path
    /// contains the invitation secret; the server shows it only this once.
    pub async fn create_guest_invitation(
        &self,
        id: ConversationId,
        ttl_secs: Option<u64>,
    ) -> Result<hearth_proto::guest::GuestInvitation> {
        let body = hearth_proto::guest::CreateGuestInvitation { ttl_secs };
        self.shared
            .rest
            .json(
                &self.shared.tokens,
                Method::POST,
                &hearth_proto::guest::conversation_invitations_path(id),
                |request| request.json(&body),
            )
            .await
    }

    /// Revokes a guest invitation, which also ends the calls of the guests
    /// who joined through it.
    pub async fn revoke_guest_invitation(
        &self,
        id: hearth_proto::guest::GuestInvitationId,
    ) -> Result<()> {
        let path = format!("{}/{id}", hearth_proto::guest::GUEST_INVITATIONS_PATH);
        let _: Option<serde_json::Value> = self
            .shared
            .rest
            .optional_json(&self.shared.tokens, Method::DELETE, &path, |request| {
                request
            })
            .await?;
        Ok(())
    }

    /// Returns the address of a guest page from its path.
    pub fn guest_page_url(&self, page_path: &str) -> String {
        self.shared.rest.server().url(page_path)
    }

    /// Leaves a group and deletes its local copy.
    pub async fn leave(&self, id: ConversationId) -> Result<()> {
        let user = self.shared.user.clone();
        self.remove_member(id, &user).await
    }

    /// Sends a REST change to a conversation and stores the conversation it
    /// returns, or fetches it when the response has no body.
    async fn update(
        &self,
        method: Method,
        path: &str,
        id: ConversationId,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<()> {
        let returned: Option<Conversation> = self
            .shared
            .rest
            .optional_json(&self.shared.tokens, method, path, build)
            .await?;
        match returned {
            Some(conversation) if conversation.id == id => {
                self.shared.store_conversation(&conversation)?;
            }
            _ => {
                if let Err(err) = self.shared.refresh_conversation(id).await {
                    tracing::debug!(conversation_id = %id, error = %err, "cannot fetch the changed conversation");
                }
            }
        }
        Ok(())
    }

    /// Uploads a file to a conversation, for a message to refer to.
    pub async fn upload(&self, id: ConversationId, path: &Path) -> Result<Attachment> {
        let path = check_file(path)?;
        self.shared.upload(id, &path).await
    }

    /// Downloads an attachment into `output` and returns its size in bytes.
    /// The file is written under a temporary name and renamed when complete.
    pub async fn download(&self, attachment: AttachmentId, output: &Path) -> Result<u64> {
        let path = rest::attachment_path(attachment);
        let mut response = self
            .shared
            .rest
            .send(&self.shared.tokens, Method::GET, &path, |request| request)
            .await?;
        let partial = PathBuf::from(format!("{}.part", output.display()));
        let io_error = |what: &str, err: std::io::Error| ClientError::Io {
            what: format!("{what} {}", partial.display()),
            detail: err.to_string(),
        };
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|err| io_error("creating", err))?;
        let mut written = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|err| ClientError::Unreachable {
                    url: self.shared.server.url(&path),
                    detail: crate::auth::error_chain(&err),
                })?;
            let Some(chunk) = chunk else { break };
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|err| io_error("writing", err))?;
            written += chunk.len() as u64;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|err| io_error("writing", err))?;
        drop(file);
        tokio::fs::rename(&partial, output)
            .await
            .map_err(|err| ClientError::Io {
                what: format!("renaming {} to {}", partial.display(), output.display()),
                detail: err.to_string(),
            })?;
        Ok(written)
    }

    /// Returns the user directory with each user's presence.
    pub async fn users(&self) -> Result<Vec<UserEntry>> {
        self.shared
            .rest
            .json(&self.shared.tokens, Method::GET, USERS_PATH, |request| {
                request
            })
            .await
    }

    /// Returns the last presence pushed for `user` during this session.
    pub fn presence_of(&self, user: &str) -> Option<Presence> {
        lock(&self.shared.presence).get(user).copied()
    }

    /// Sets this user's presence to `online` or `away`, now and after every
    /// reconnect.
    pub fn set_presence(&self, presence: Presence) -> Result<()> {
        if !matches!(presence, Presence::Online | Presence::Away) {
            return Err(ClientError::InvalidInput {
                what: "presence".into(),
                detail: format!("{presence:?} is set by the server; choose online or away"),
            });
        }
        *lock(&self.shared.own_presence) = Some(presence);
        let _ = self
            .shared
            .send_frame(ClientMessage::SetPresence { presence });
        Ok(())
    }
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn not_connected(&self) -> ClientError {
        let detail = match &*self.state.borrow() {
            ConnectionState::Offline { error, .. } => Some(error.clone()),
            ConnectionState::SignedOut { error } => Some(format!("{error}; sign in again")),
            ConnectionState::Closed => Some("the session was closed".into()),
            _ => None,
        };
        ClientError::NotConnected { detail }
    }

    fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state.clone());
        let _ = self.updates.send(ChatUpdate::Connection(state));
    }

    fn publish(&self, update: ChatUpdate) {
        // No subscriber is fine.
        let _ = self.updates.send(update);
    }

    fn send_frame(&self, message: ClientMessage) -> Result<()> {
        let link = lock(&self.link);
        match link.as_ref() {
            Some(link) => link
                .outgoing
                .send(message)
                .map_err(|_| ClientError::NotConnected { detail: None }),
            None => Err(self.not_connected()),
        }
    }

    fn push_waiter(&self, id: ConversationId, waiter: Waiter) {
        lock(&self.waiters).entry(id).or_default().push_back(waiter);
    }

    /// Drops every waiter of a conversation, which fails their calls.
    fn drop_waiters(&self, id: ConversationId) {
        lock(&self.waiters).remove(&id);
    }

    async fn await_answer<T>(&self, answer: oneshot::Receiver<Result<T>>, what: &str) -> Result<T> {
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            // The connection closed and dropped the waiter.
            Ok(Err(_)) => Err(ClientError::NotConnected {
                detail: Some("the connection closed before the server answered".into()),
            }),
            Err(_) => Err(ClientError::Timeout {
                what: what.to_owned(),
                seconds: REQUEST_TIMEOUT.as_secs(),
            }),
        }
    }

    fn record_outcome(&self, client_id: ClientMessageId, outcome: Outcome) {
        let mut outcomes = lock(&self.outcomes);
        if outcomes.len() >= REMEMBERED_OUTCOMES {
            outcomes.clear();
        }
        outcomes.insert(client_id, outcome);
    }

    fn outcome(&self, client_id: ClientMessageId) -> Option<Result<SendOutcome>> {
        match lock(&self.outcomes).get(&client_id)? {
            Outcome::Sent(seq) => Some(Ok(SendOutcome::Sent { seq: *seq })),
            Outcome::Failed(code, message) => Some(Err(ClientError::Server {
                code: *code,
                message: message.clone(),
            })),
        }
    }

    /// Stores a conversation and publishes the change. Returns whether it is new.
    fn store_conversation(&self, conversation: &Conversation) -> Result<bool> {
        let new = self.store().upsert_conversation(conversation)?;
        self.publish(ChatUpdate::ConversationChanged(conversation.id));
        Ok(new)
    }

    /// Fetches one conversation over REST and stores it.
    async fn refresh_conversation(&self, id: ConversationId) -> Result<Conversation> {
        let conversation: Conversation = self
            .rest
            .json(
                &self.tokens,
                Method::GET,
                &rest::conversation_path(id, ""),
                |request| request,
            )
            .await?;
        self.store_conversation(&conversation)?;
        Ok(conversation)
    }

    fn forget_conversation(&self, id: ConversationId) -> Result<()> {
        if self.store().remove_conversation(id)? {
            self.publish(ChatUpdate::ConversationRemoved(id));
        }
        Ok(())
    }

    async fn upload(&self, id: ConversationId, path: &Path) -> Result<Attachment> {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        // NOTE: the whole file is read into memory; the server's attachment
        // size limit bounds it.
        let bytes = tokio::fs::read(path).await.map_err(|err| ClientError::Io {
            what: format!("reading {}", path.display()),
            detail: err.to_string(),
        })?;
        let content_type = rest::content_type_for(&name);
        let attachment: Attachment = self
            .rest
            .json(
                &self.tokens,
                Method::POST,
                &rest::conversation_path(id, "/attachments"),
                |request| {
                    request
                        .query(&[("name", name.as_str())])
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(bytes.clone())
                },
            )
            .await?;
        Ok(attachment)
    }
}

fn conversation_not_found(name: &str) -> ClientError {
    ClientError::Server {
        code: ErrorCode::ConversationNotFound,
        message: format!(
            "no conversation {name:?} is stored here; give a conversation id, a group name \
             or the user name of a direct conversation, and connect once to fetch new ones"
        ),
    }
}

fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(ClientError::InvalidInput {
            what: "message text".into(),
            detail: "the text is empty; write at least one character".into(),
        });
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ClientError::InvalidInput {
            what: "message text".into(),
            detail: format!(
                "the text is {} bytes, more than the maximum of {MAX_TEXT_BYTES}; split it or send a file",
                text.len()
            ),
        });
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ClientError::InvalidInput {
            what: "conversation name".into(),
            detail: format!(
                "{name:?} must have between 1 and {MAX_NAME_BYTES} bytes and not only spaces"
            ),
        });
    }
    Ok(())
}

/// Checks that `path` is a readable file and returns it as an absolute path,
/// so that a queued upload still finds it from another working directory.
fn check_file(path: &Path) -> Result<PathBuf> {
    let metadata = std::fs::metadata(path).map_err(|err| ClientError::InvalidInput {
        what: "attachment".into(),
        detail: format!("cannot read {}: {err}", path.display()),
    })?;
    if !metadata.is_file() {
        return Err(ClientError::InvalidInput {
            what: "attachment".into(),
            detail: format!("{} is not a file; attach a regular file", path.display()),
        });
    }
    Ok(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()))
}
