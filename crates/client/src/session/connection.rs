//! The task that owns the session's WebSocket: connect, sync, send the
//! outbox, route frames, and reconnect after a failure.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hearth_proto::chat::{ClientMessageId, Conversation, ConversationId, Event, EventBody, Seq};
use hearth_proto::{ClientMessage, ErrorCode, ServerMessage};
use reqwest::Method;
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::{ChatUpdate, ConnectionState, Outcome, Shared, Waiter, lock, tokens};
use crate::error::{ClientError, Result};
use crate::signal::{self, SignalConnection, Socket};
use crate::store::OutboxAttachment;

/// The open WebSocket, shared with API calls that send frames.
pub(crate) struct Link {
    pub outgoing: mpsc::UnboundedSender<ClientMessage>,
    pub calls: CallRoute,
}

/// Delivers call frames to the one [`SignalConnection`] that call code uses.
/// Frames that arrive while no call code has taken it wait in its channel, so an
/// incoming call is not lost before the UI asks for the connection.
pub(crate) struct CallRoute {
    user: String,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    frames: mpsc::UnboundedSender<ServerMessage>,
    parked: Option<SignalConnection>,
}

impl CallRoute {
    fn new(user: String, outgoing: mpsc::UnboundedSender<ClientMessage>) -> Self {
        let (frames, parked) = Self::channel(&user, &outgoing);
        Self {
            user,
            outgoing,
            frames,
            parked: Some(parked),
        }
    }

    fn channel(
        user: &str,
        outgoing: &mpsc::UnboundedSender<ClientMessage>,
    ) -> (mpsc::UnboundedSender<ServerMessage>, SignalConnection) {
        let (frames, incoming) = mpsc::unbounded_channel();
        let connection = SignalConnection::from_parts(user.to_owned(), outgoing.clone(), incoming);
        (frames, connection)
    }

    fn reopen(&mut self) {
        let (frames, parked) = Self::channel(&self.user, &self.outgoing);
        self.frames = frames;
        self.parked = Some(parked);
    }

    fn route(&mut self, message: ServerMessage) {
        if let Err(mpsc::error::SendError(message)) = self.frames.send(message) {
            // The last holder dropped its connection: start a new one.
            self.reopen();
            let _ = self.frames.send(message);
        }
    }

    /// Hands out the connection, or `None` while a holder still has it.
    pub fn take(&mut self) -> Option<SignalConnection> {
        if self.parked.is_none() && self.frames.is_closed() {
            self.reopen();
        }
        self.parked.take()
    }
}

/// Reason one connection ended.
enum End {
    Stopped,
    Lost(ClientError),
}

/// Connects, serves and reconnects until the session is closed or signed out.
pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::default();
    loop {
        if *stop.borrow() {
            break;
        }
        shared.set_state(ConnectionState::Connecting);
        let connected = tokio::select! {
            result = connect(&shared) => result,
            () = stopped(&mut stop) => break,
        };
        let error = match connected {
            Ok(socket) => match serve(&shared, socket, &mut stop, &mut backoff).await {
                End::Stopped => break,
                End::Lost(err) => err,
            },
            Err(err) => err,
        };
        if tokens::needs_sign_in(&error) {
            tracing::warn!(error = %error, "the server rejected the session; sign in again");
            shared.set_state(ConnectionState::SignedOut {
                error: error.to_string(),
            });
            return;
        }
        let retry_in = backoff.next_delay();
        tracing::info!(
            error = %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "not connected to the server; retrying"
        );
        shared.set_state(ConnectionState::Offline {
            code: error.code(),
            error: error.to_string(),
            retry_in,
        });
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = shared.reconnect.notified() => {}
            () = stopped(&mut stop) => break,
        }
    }
    shared.set_state(ConnectionState::Closed);
}

/// Waits until the session is closed.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the session was dropped, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Opens the WebSocket, refreshing the access token once if the server
/// rejects it.
async fn connect(shared: &Shared) -> Result<Socket> {
    let token = shared.tokens.access_token().await?;
    match signal::open(&shared.server, &token).await {
        Err(ClientError::Unauthorized) => {
            shared.tokens.reject(&token).await;
            let token = shared.tokens.access_token().await?;
            signal::open(&shared.server, &token).await
        }
        other => other,
    }
}

/// Per-connection progress of the chat engine.
#[derive(Default)]
struct Progress {
    /// Conversations with a `sync` in flight, and the `after` it asked from.
    syncing: HashMap<ConversationId, Seq>,
    /// Outbox rows sent on this connection and not acknowledged yet.
    in_flight: HashSet<ClientMessageId>,
    /// Set once the first sync finished and the outbox was sent.
    online: bool,
    /// Receives the ids of conversations fetched over REST in the background.
    fetched: Option<mpsc::UnboundedSender<ConversationId>>,
}

async fn serve(
    shared: &Arc<Shared>,
    socket: Socket,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> End {
    let Socket {
        user,
        outgoing,
        mut incoming,
    } = socket;
    if user != shared.user {
        tracing::warn!(expected = %shared.user, got = %user, "the server greeted another user");
    }
    *lock(&shared.link) = Some(Link {
        outgoing: outgoing.clone(),
        calls: CallRoute::new(user, outgoing.clone()),
    });
    shared.set_state(ConnectionState::Syncing);
    tracing::info!(user = %shared.user, "connected; syncing");

    let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
    let mut progress = Progress {
        fetched: Some(fetched_tx),
        ..Progress::default()
    };
    let end = match start_sync(shared, &mut progress).await {
        Ok(()) => {
            if let Some(presence) = *lock(&shared.own_presence) {
                let _ = outgoing.send(ClientMessage::SetPresence { presence });
            }
            if go_online_if_synced(shared, &mut progress).await {
                backoff.reset();
            }
            serve_frames(
                shared,
                &mut progress,
                &mut incoming,
                &mut fetched,
                stop,
                backoff,
            )
            .await
        }
        Err(err) => End::Lost(err),
    };

    *lock(&shared.link) = None;
    // Dropping the waiters fails the API calls that wait for a response.
    lock(&shared.waiters).clear();
    end
}

async fn serve_frames(
    shared: &Arc<Shared>,
    progress: &mut Progress,
    incoming: &mut mpsc::UnboundedReceiver<ServerMessage>,
    fetched: &mut mpsc::UnboundedReceiver<ConversationId>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> End {
    loop {
        tokio::select! {
            message = incoming.recv() => {
                let Some(message) = message else {
                    return End::Lost(ClientError::Disconnected);
                };
                let was_online = progress.online;
                if let Err(err) = handle(shared, progress, message).await {
                    tracing::warn!(error = %err, "failed to apply a server frame");
                    if matches!(err, ClientError::Sqlite(_) | ClientError::Store(_)) {
                        return End::Lost(err);
                    }
                }
                if !was_online && progress.online {
                    backoff.reset();
                }
            }
            Some(id) = fetched.recv() => {
                if let Err(err) = request_sync(shared, progress, id) {
                    tracing::debug!(conversation_id = %id, error = %err, "cannot sync a fetched conversation");
                }
            }
            () = shared.flush.notified() => {
                if progress.online {
                    flush_outbox(shared, progress).await;
                }
            }
            () = stopped(stop) => return End::Stopped,
        }
    }
}

/// Fetches the conversation list, drops the conversations this user no
/// longer belongs to, and requests sync of every conversation with new events.
async fn start_sync(shared: &Shared, progress: &mut Progress) -> Result<()> {
    let conversations: Vec<Conversation> = shared
        .rest
        .json(
            &shared.tokens,
            Method::GET,
            hearth_proto::chat::CONVERSATIONS_PATH,
            |request| request,
        )
        .await?;
    let listed: HashSet<ConversationId> = conversations.iter().map(|c| c.id).collect();
    let stored = shared.store().conversation_ids()?;
    for id in stored.into_iter().filter(|id| !listed.contains(id)) {
        shared.forget_conversation(id)?;
    }
    for conversation in &conversations {
        shared.store().upsert_conversation(conversation)?;
        request_sync(shared, progress, conversation.id)?;
    }
    tracing::debug!(
        conversations = conversations.len(),
        syncing = progress.syncing.len(),
        "fetched the conversation list"
    );
    Ok(())
}

/// Sends `sync` for a conversation with events newer than those stored,
/// unless one is in flight already.
fn request_sync(shared: &Shared, progress: &mut Progress, id: ConversationId) -> Result<()> {
    if progress.syncing.contains_key(&id) {
        return Ok(());
    }
    let Some(state) = shared.store().sync_state(id)? else {
        return Ok(());
    };
    if state.synced_seq >= state.last_seq {
        return Ok(());
    }
    shared.send_frame(ClientMessage::Sync {
        conversation_id: id,
        after: state.synced_seq,
        limit: None,
    })?;
    progress.syncing.insert(id, state.synced_seq);
    Ok(())
}

/// Once nothing is syncing, sends unsent read positions and the outbox.
/// Returns whether the session went online now.
async fn go_online_if_synced(shared: &Shared, progress: &mut Progress) -> bool {
    if progress.online || !progress.syncing.is_empty() {
        return false;
    }
    progress.online = true;
    let unsent_reads = shared.store().unsent_reads();
    match unsent_reads {
        Ok(reads) => {
            for (conversation_id, seq) in reads {
                let _ = shared.send_frame(ClientMessage::MarkRead {
                    conversation_id,
                    seq,
                });
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read the unsent read positions"),
    }
    flush_outbox(shared, progress).await;
    shared.set_state(ConnectionState::Online);
    tracing::info!(user = %shared.user, "synced and online");
    true
}

/// Sends the outbox rows not sent on this connection yet, in order. Stops at
/// a row whose files cannot be uploaded for now, so later rows do not
/// overtake it.
async fn flush_outbox(shared: &Shared, progress: &mut Progress) {
    let entries = match shared.store().outbox() {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the outbox");
            return;
        }
    };
    for entry in entries {
        if progress.in_flight.contains(&entry.client_id) {
            continue;
        }
        let attachments = match upload_pending(shared, entry.conversation_id, &entry.attachments)
            .await
        {
            Ok(attachments) => attachments,
            Err(err) if is_transient(&err) => {
                tracing::info!(client_id = %entry.client_id, error = %err, "cannot upload an attachment yet; will retry");
                return;
            }
            Err(err) => {
                fail_outbox_entry(
                    shared,
                    progress,
                    entry.conversation_id,
                    entry.client_id,
                    &err,
                );
                continue;
            }
        };
        if attachments != entry.attachments
            && let Err(err) = shared
                .store()
                .set_outbox_attachments(entry.client_id, &attachments)
        {
            tracing::warn!(error = %err, "cannot record the uploaded attachments");
        }
        let ids = attachments
            .iter()
            .filter_map(|attachment| match attachment {
                OutboxAttachment::Uploaded { attachment } => Some(attachment.id),
                OutboxAttachment::Pending { .. } => None,
            })
            .collect();
        let frame = ClientMessage::SendMessage {
            conversation_id: entry.conversation_id,
            client_id: entry.client_id,
            text: entry.text,
            reply_to: entry.reply_to,
            attachments: ids,
        };
        if shared.send_frame(frame).is_err() {
            return;
        }
        tracing::debug!(client_id = %entry.client_id, "sent an outbox message");
        progress.in_flight.insert(entry.client_id);
    }
}

/// Uploads the pending files of an outbox row.
// NOTE: this runs inside the connection task, so frames wait while a file
// queued offline uploads; files attached while online are uploaded by `send`.
async fn upload_pending(
    shared: &Shared,
    id: ConversationId,
    attachments: &[OutboxAttachment],
) -> Result<Vec<OutboxAttachment>> {
    let mut done = Vec::with_capacity(attachments.len());
    for attachment in attachments {
        match attachment {
            OutboxAttachment::Pending { path } => {
                let attachment = shared.upload(id, path).await?;
                done.push(OutboxAttachment::Uploaded { attachment });
            }
            uploaded => done.push(uploaded.clone()),
        }
    }
    Ok(done)
}

/// Returns whether a later attempt may succeed where this one failed.
fn is_transient(err: &ClientError) -> bool {
    match err {
        ClientError::Server { code, .. } => *code == ErrorCode::Internal,
        ClientError::Unreachable { .. }
        | ClientError::NotConnected { .. }
        | ClientError::Disconnected
        | ClientError::Timeout { .. }
        | ClientError::Protocol(_) => true,
        _ => false,
    }
}

fn fail_outbox_entry(
    shared: &Shared,
    progress: &mut Progress,
    conversation_id: ConversationId,
    client_id: ClientMessageId,
    err: &ClientError,
) {
    let code = match err {
        ClientError::Server { code, .. } => *code,
        _ => ErrorCode::InvalidRequest,
    };
    tracing::warn!(%client_id, %conversation_id, %code, error = %err, "the server rejected an outbox message; dropping it");
    progress.in_flight.remove(&client_id);
    if let Err(store_err) = shared.store().remove_outbox(client_id) {
        tracing::warn!(error = %store_err, "cannot remove a rejected outbox message");
    }
    let message = match err {
        ClientError::Server { message, .. } => message.clone(),
        other => other.to_string(),
    };
    shared.record_outcome(client_id, Outcome::Failed(code, message.clone()));
    shared.publish(ChatUpdate::MessageFailed {
        conversation_id,
        client_id,
        code,
        message,
    });
}

/// Returns whether a frame belongs to call signalling.
fn is_call_frame(message: &ServerMessage) -> bool {
    match message {
        ServerMessage::Incoming { .. }
        | ServerMessage::Ringing { .. }
        | ServerMessage::Accepted { .. }
        | ServerMessage::Declined { .. }
        | ServerMessage::Cancelled { .. }
        | ServerMessage::HungUp { .. }
        | ServerMessage::Offer { .. }
        | ServerMessage::Answer { .. }
        | ServerMessage::Candidate { .. }
        | ServerMessage::CallMoving { .. }
        | ServerMessage::CallSwitched { .. }
        | ServerMessage::RoomJoined { .. }
        | ServerMessage::RoomOffer { .. }
        | ServerMessage::RoomLeft { .. }
        | ServerMessage::Pong { .. } => true,
        ServerMessage::Error { call_id, .. } => call_id.is_some(),
        _ => false,
    }
}

async fn handle(
    shared: &Arc<Shared>,
    progress: &mut Progress,
    message: ServerMessage,
) -> Result<()> {
    // Everyone in the conversation hears who is in its group call; the
    // device in the call also needs it on its call connection.
    if let ServerMessage::RoomState {
        conversation_id,
        participants,
        active_speaker,
        ..
    } = &message
    {
        shared.publish(ChatUpdate::RoomChanged {
            conversation_id: *conversation_id,
            participants: participants.clone(),
            active_speaker: *active_speaker,
        });
        if let Some(link) = lock(&shared.link).as_mut() {
            link.calls.route(message);
        }
        return Ok(());
    }
    // A rejected `join_room` comes back as an error about the conversation.
    if let ServerMessage::Error {
        conversation_id: Some(_),
        client_id: None,
        call_id: None,
        ..
    } = &message
        && let Some(link) = lock(&shared.link).as_mut()
    {
        link.calls.route(message.clone());
    }
    if is_call_frame(&message) {
        if let Some(link) = lock(&shared.link).as_mut() {
            link.calls.route(message);
        }
        return Ok(());
    }
    match message {
        ServerMessage::Event { event } => receive_event(shared, progress, event).await,
        ServerMessage::MessageAck {
            conversation_id,
            client_id,
            seq,
        } => {
            progress.in_flight.remove(&client_id);
            shared.store().remove_outbox(client_id)?;
            tracing::debug!(%client_id, seq, "the server acknowledged an outbox message");
            shared.record_outcome(client_id, Outcome::Sent(seq));
            shared.publish(ChatUpdate::MessageSent {
                conversation_id,
                client_id,
                seq,
            });
            Ok(())
        }
        ServerMessage::SyncBatch {
            conversation_id,
            events,
            complete,
        } => receive_sync_batch(shared, progress, conversation_id, events, complete).await,
        ServerMessage::HistoryPage {
            conversation_id,
            events,
            has_more,
        } => receive_history_page(shared, conversation_id, events, has_more),
        ServerMessage::ReadState {
            conversation_id,
            last_read_seq,
            unread,
        } => {
            shared
                .store()
                .apply_read_state(conversation_id, last_read_seq, unread)?;
            let conversation = shared.store().conversation(conversation_id)?;
            if let Some(conversation) = conversation {
                shared.publish(ChatUpdate::ReadState {
                    conversation_id,
                    last_read_seq: conversation.last_read_seq,
                    unread: conversation.unread,
                });
            }
            Ok(())
        }
        ServerMessage::Presence { user, presence } => {
            lock(&shared.presence).insert(user.clone(), presence);
            shared.publish(ChatUpdate::Presence { user, presence });
            Ok(())
        }
        ServerMessage::ConversationChanged { conversation_id } => {
            fetch_conversation(shared, progress, conversation_id);
            Ok(())
        }
        ServerMessage::ConversationRemoved { conversation_id } => {
            progress.syncing.remove(&conversation_id);
            shared.drop_waiters(conversation_id);
            shared.forget_conversation(conversation_id)?;
            go_online_if_synced(shared, progress).await;
            Ok(())
        }
        ServerMessage::Error {
            code,
            message,
            conversation_id,
            client_id,
            ..
        } => {
            receive_error(shared, progress, code, message, conversation_id, client_id).await;
            Ok(())
        }
        ServerMessage::Hello { .. } => Ok(()),
        other => {
            tracing::debug!(?other, "ignoring a frame");
            Ok(())
        }
    }
}

/// Stores a pushed event. An event of an unknown conversation fetches the
/// conversation, and an event past a gap requests sync of the missing ones.
async fn receive_event(shared: &Arc<Shared>, progress: &mut Progress, event: Event) -> Result<()> {
    let id = event.conversation_id;
    let known = shared.store().sync_state(id)?.is_some();
    store_event(shared, &event)?;
    complete_change(shared, &event);
    if known {
        request_sync(shared, progress, id)
    } else {
        fetch_conversation(shared, progress, id);
        Ok(())
    }
}

/// Fetches a conversation over REST in the background, so that a slow
/// request does not hold up the frames behind it, then syncs it.
fn fetch_conversation(shared: &Arc<Shared>, progress: &Progress, id: ConversationId) {
    let shared = Arc::clone(shared);
    let fetched = progress.fetched.clone();
    tokio::spawn(async move {
        match shared.refresh_conversation(id).await {
            Ok(_) => {
                if let Some(fetched) = fetched {
                    let _ = fetched.send(id);
                }
            }
            Err(err) => {
                tracing::warn!(conversation_id = %id, error = %err, "cannot fetch a changed conversation");
            }
        }
    });
}

/// Stores an event and publishes it to subscribers when it is new.
fn store_event(shared: &Shared, event: &Event) -> Result<()> {
    if shared.store().insert_event(event)? {
        shared.publish(ChatUpdate::Event(event.clone()));
    }
    Ok(())
}

/// Completes an `edit` or `delete` call waiting for this user's event.
fn complete_change(shared: &Shared, event: &Event) {
    if event.sender != shared.user {
        return;
    }
    let target = match &event.body {
        EventBody::Edited { target, .. } | EventBody::Deleted { target } => *target,
        _ => return,
    };
    let mut waiters = lock(&shared.waiters);
    let Some(queue) = waiters.get_mut(&event.conversation_id) else {
        return;
    };
    let position = queue
        .iter()
        .position(|waiter| matches!(waiter, Waiter::Change { target: t, .. } if *t == target));
    if let Some(Waiter::Change { done, .. }) = position.and_then(|index| queue.remove(index)) {
        let _ = done.send(Ok(event.seq));
    }
}

async fn receive_sync_batch(
    shared: &Shared,
    progress: &mut Progress,
    id: ConversationId,
    events: Vec<Event>,
    complete: bool,
) -> Result<()> {
    for event in &events {
        store_event(shared, event)?;
    }
    if !complete {
        return Ok(());
    }
    let asked_after = progress.syncing.remove(&id);
    // A gap left after a complete response (events pushed past it while
    // syncing) gets another sync, as long as the last one made progress.
    let state = shared.store().sync_state(id)?;
    if let (Some(asked_after), Some(state)) = (asked_after, state)
        && state.synced_seq > asked_after
    {
        request_sync(shared, progress, id)?;
    }
    go_online_if_synced(shared, progress).await;
    Ok(())
}

fn receive_history_page(
    shared: &Shared,
    id: ConversationId,
    events: Vec<Event>,
    has_more: bool,
) -> Result<()> {
    {
        let mut store = shared.store();
        for event in &events {
            store.insert_event(event)?;
        }
        let floor = match events.iter().map(|event| event.seq).min() {
            Some(oldest) if has_more => oldest - 1,
            Some(_) => 0,
            None if has_more => return Ok(()),
            None => 0,
        };
        store.lower_floor(id, floor)?;
    }
    let mut waiters = lock(&shared.waiters);
    if let Some(queue) = waiters.get_mut(&id) {
        let position = queue
            .iter()
            .position(|waiter| matches!(waiter, Waiter::History(_)));
        if let Some(Waiter::History(done)) = position.and_then(|index| queue.remove(index)) {
            let _ = done.send(Ok(()));
        }
    }
    Ok(())
}

async fn receive_error(
    shared: &Shared,
    progress: &mut Progress,
    code: ErrorCode,
    message: String,
    conversation_id: Option<ConversationId>,
    client_id: Option<ClientMessageId>,
) {
    if let Some(client_id) = client_id {
        if code == ErrorCode::Internal {
            tracing::warn!(%client_id, %code, "the server failed to store a message; resending after reconnecting");
            return;
        }
        let conversation = conversation_id
            .or_else(|| {
                shared
                    .store()
                    .outbox_entry(client_id)
                    .ok()
                    .flatten()
                    .map(|entry| entry.conversation_id)
            })
            .unwrap_or_default();
        fail_outbox_entry(
            shared,
            progress,
            conversation,
            client_id,
            &ClientError::Server { code, message },
        );
        return;
    }
    let Some(id) = conversation_id else {
        tracing::warn!(%code, reason = %message, "the server reported an error");
        return;
    };
    if progress.syncing.remove(&id).is_some() {
        tracing::warn!(conversation_id = %id, %code, reason = %message, "sync failed");
        go_online_if_synced(shared, progress).await;
        return;
    }
    // The error belongs to the oldest request waiting in this conversation.
    let waiter = lock(&shared.waiters)
        .get_mut(&id)
        .and_then(|queue| queue.pop_front());
    let error = ClientError::Server { code, message };
    match waiter {
        Some(Waiter::History(done)) => {
            let _ = done.send(Err(error));
        }
        Some(Waiter::Change { done, .. }) => {
            let _ = done.send(Err(error));
        }
        None => {
            tracing::warn!(conversation_id = %id, %code, error = %error, "the server rejected a request")
        }
    }
}
