//! The registry of open session connections: their bounded outbound queues, the
//! call state machine, presence and call records.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use hearth_proto::chat::{CallOutcome, Presence};
use hearth_proto::{CallId, CallMedia, ClientMessage, ServerFrame, ServerMessage};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::machine::{CallRecordKind, CallState, ConnId, Directory, Outgoing, Signalling};

/// Frames queued per connection. A connection whose queue is full when the
/// server pushes another frame is closed, and its client resyncs after
/// reconnecting, so one slow reader cannot make the server buffer without limit.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Frames of one `sync` answer that may wait in a connection's queue at once.
/// Keeps a long sync from filling the queue that pushed events also need.
const SYNC_FRAMES_IN_FLIGHT: usize = 2;

/// Default time a call may ring before the server cancels it. A little longer
/// than the client's own 60 s ring timeout, so that a client that gives up
/// first sends `cancel` itself.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(65);

/// A frame encoded once and queued for one connection. The permit, held by
/// `sync` batches, is released when the frame is written.
pub struct Outbound {
    pub text: Utf8Bytes,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// A call outcome to append to the direct conversation of caller and callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLog {
    pub call_id: CallId,
    pub caller: String,
    pub callee: String,
    pub media: CallMedia,
    pub outcome: CallOutcome,
}

/// What a newly registered connection needs.
pub struct Registration {
    pub conn: ConnId,
    pub outbox: mpsc::Receiver<Outbound>,
    /// Notified when the server gives up on the connection because its queue
    /// overflowed.
    pub overflowed: Arc<Notify>,
    /// Slots for queued `sync` batches.
    pub sync_slots: Arc<Semaphore>,
}

/// Shared state of all session connections.
pub struct Hub {
    state: Mutex<HubState>,
    next_conn: AtomicU64,
    pub(super) shutdown: watch::Sender<bool>,
    ring_timeout: Duration,
    presence_changed: Notify,
    call_logs: mpsc::UnboundedSender<CallLog>,
    call_logs_receiver: Mutex<Option<mpsc::UnboundedReceiver<CallLog>>>,
}

struct Connection {
    user: String,
    outbox: mpsc::Sender<Outbound>,
    overflowed: Arc<Notify>,
    /// Set once the queue overflowed; nothing more is queued after that.
    dropped: bool,
    /// The client reported its user as idle with `set_presence`.
    away: bool,
}

struct HubState {
    machine: Signalling,
    connections: HashMap<ConnId, Connection>,
    by_user: HashMap<String, Vec<ConnId>>,
    /// When each accepted call was accepted, for the duration in its record.
    call_started: HashMap<CallId, Instant>,
    /// Users whose presence may have changed since the presence task last ran.
    presence_dirty: HashSet<String>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::with_ring_timeout(DEFAULT_RING_TIMEOUT)
    }

    pub fn with_ring_timeout(ring_timeout: Duration) -> Self {
        let (call_logs, call_logs_receiver) = mpsc::unbounded_channel();
        Self {
            state: Mutex::new(HubState {
                machine: Signalling::new(),
                connections: HashMap::new(),
                by_user: HashMap::new(),
                call_started: HashMap::new(),
                presence_dirty: HashSet::new(),
            }),
            next_conn: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            ring_timeout,
            presence_changed: Notify::new(),
            call_logs,
            call_logs_receiver: Mutex::new(Some(call_logs_receiver)),
        }
    }

    /// Asks every open connection to close.
    pub fn close_all(&self) {
        self.shutdown.send_replace(true);
    }

    /// Returns how long a call may ring before the server cancels it.
    pub fn ring_timeout(&self) -> Duration {
        self.ring_timeout
    }

    /// Hands out the receiver of call outcomes, once. The chat service stores
    /// them.
    pub fn take_call_logs(&self) -> Option<mpsc::UnboundedReceiver<CallLog>> {
        lock(&self.call_logs_receiver).take()
    }

    pub(super) fn register(&self, user: &str) -> Registration {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let overflowed = Arc::new(Notify::new());
        let mut state = self.lock();
        state.connections.insert(
            conn,
            Connection {
                user: user.to_owned(),
                outbox: sender,
                overflowed: overflowed.clone(),
                dropped: false,
                away: false,
            },
        );
        state.by_user.entry(user.to_owned()).or_default().push(conn);
        let out = state.machine.connect(conn, user);
        state.deliver(out);
        state.presence_dirty.insert(user.to_owned());
        drop(state);
        self.presence_changed.notify_one();
        Registration {
            conn,
            outbox: receiver,
            overflowed,
            sync_slots: Arc::new(Semaphore::new(SYNC_FRAMES_IN_FLIGHT)),
        }
    }

    pub(super) fn unregister(&self, conn: ConnId) {
        let mut state = self.lock();
        if let Some(connection) = state.connections.remove(&conn) {
            if let Some(conns) = state.by_user.get_mut(&connection.user) {
                conns.retain(|other| *other != conn);
                if conns.is_empty() {
                    state.by_user.remove(&connection.user);
                }
            }
            state.presence_dirty.insert(connection.user);
        }
        let out = state.machine.disconnect(conn);
        for outgoing in &out {
            tracing::debug!(to = %outgoing.to, kind = super::server_kind(&outgoing.message), "ended call of closed connection");
        }
        state.deliver(out);
        self.collect_call_records(&mut state);
        drop(state);
        self.presence_changed.notify_one();
    }

    /// Runs one call signalling message through the state machine.
    pub(super) fn handle(&self, conn: ConnId, message: ClientMessage, directory: &dyn Directory) {
        let (kind, call_id) = super::client_kind(&message);
        tracing::debug!(kind, call_id = ?call_id, "received frame");
        let mut state = self.lock();
        let out = state.machine.handle(conn, message, directory);
        for outgoing in &out {
            if let ServerMessage::Error {
                code,
                message,
                call_id,
                ..
            } = &outgoing.message
            {
                tracing::warn!(%code, call_id = ?call_id, reason = %message, "rejected {kind}");
            }
        }
        state.deliver(out);
        self.collect_call_records(&mut state);
    }

    /// Returns the state of a call, or `None` if it does not exist.
    pub(super) fn call_state(&self, call_id: CallId) -> Option<CallState> {
        self.lock().machine.call_state(call_id)
    }

    /// Cancels a call that is still ringing after the ring timeout.
    pub(super) fn expire_ringing(&self, call_id: CallId) {
        let mut state = self.lock();
        let out = state.machine.ring_timeout(call_id);
        if !out.is_empty() {
            tracing::info!(%call_id, "call rang too long; cancelled it");
        }
        state.deliver(out);
        self.collect_call_records(&mut state);
    }

    /// Queues one message for one connection.
    pub fn reply(&self, conn: ConnId, message: ServerMessage) {
        self.lock().deliver(vec![Outgoing { to: conn, message }]);
    }

    /// Queues a `sync` batch for one connection once fewer than
    /// `SYNC_FRAMES_IN_FLIGHT` of its earlier batches wait unwritten. Returns
    /// false when the connection is gone.
    pub async fn reply_paced(
        &self,
        conn: ConnId,
        slots: &Arc<Semaphore>,
        message: ServerMessage,
    ) -> bool {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return false;
        };
        let Some(text) = encode(message) else {
            return true;
        };
        self.lock().push(
            conn,
            Outbound {
                text,
                permit: Some(permit),
            },
        )
    }

    /// Queues one message for every open connection of each of `users`,
    /// encoding it once.
    pub fn push_to_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
        message: ServerMessage,
    ) {
        let Some(text) = encode(message) else {
            return;
        };
        let mut state = self.lock();
        for user in users {
            state.push_to_user(user, &text);
        }
    }

    /// Queues several messages, each for its own users, under one lock so that
    /// no other push interleaves with them.
    pub fn push_all(&self, pushes: Vec<(Vec<String>, ServerMessage)>) {
        let encoded: Vec<(Vec<String>, Utf8Bytes)> = pushes
            .into_iter()
            .filter_map(|(users, message)| Some((users, encode(message)?)))
            .collect();
        let mut state = self.lock();
        for (users, text) in &encoded {
            for user in users {
                state.push_to_user(user, text);
            }
        }
    }

    /// Records whether the client of `conn` reports its user as idle.
    pub fn set_away(&self, conn: ConnId, away: bool) {
        let mut state = self.lock();
        let Some(connection) = state.connections.get_mut(&conn) else {
            return;
        };
        if connection.away == away {
            return;
        }
        connection.away = away;
        let user = connection.user.clone();
        state.presence_dirty.insert(user);
        drop(state);
        self.presence_changed.notify_one();
    }

    /// Returns the presence of `user` as other users should see it: `in_call`
    /// during an accepted call, `offline` without connections, `away` when every
    /// connection reported idle, and `online` otherwise.
    pub fn presence(&self, user: &str) -> Presence {
        self.lock().presence(user)
    }

    /// Waits until some user's presence may have changed and returns those
    /// users with their current presence.
    pub async fn presence_changes(&self) -> Vec<(String, Presence)> {
        loop {
            {
                let mut state = self.lock();
                let dirty = std::mem::take(&mut state.presence_dirty);
                if !dirty.is_empty() {
                    return dirty
                        .into_iter()
                        .map(|user| {
                            let presence = state.presence(&user);
                            (user, presence)
                        })
                        .collect();
                }
            }
            self.presence_changed.notified().await;
        }
    }

    /// Moves the call records the machine noted to the chat service, adding the
    /// duration of ended calls, and marks the users whose presence changed.
    fn collect_call_records(&self, state: &mut HubState) {
        let records = state.machine.take_call_records();
        if records.is_empty() {
            return;
        }
        for record in records {
            let outcome = match record.kind {
                CallRecordKind::Started => {
                    state.call_started.insert(record.call_id, Instant::now());
                    CallOutcome::Started
                }
                CallRecordKind::Ended => {
                    let duration = state
                        .call_started
                        .remove(&record.call_id)
                        .map_or(Duration::ZERO, |started| started.elapsed());
                    CallOutcome::Ended {
                        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                    }
                }
                CallRecordKind::Missed => CallOutcome::Missed,
                CallRecordKind::Declined => CallOutcome::Declined,
            };
            if matches!(outcome, CallOutcome::Started | CallOutcome::Ended { .. }) {
                state.presence_dirty.insert(record.caller.clone());
                state.presence_dirty.insert(record.callee.clone());
                self.presence_changed.notify_one();
            }
            let log = CallLog {
                call_id: record.call_id,
                caller: record.caller,
                callee: record.callee,
                media: record.media,
                outcome,
            };
            // The receiver lives as long as the chat service; without it there
            // is nowhere to store the record.
            if self.call_logs.send(log).is_err() {
                tracing::debug!("no chat service to record the call");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        lock(&self.state)
    }
}

/// Locks a mutex, ignoring poisoning. A panic while the lock was held can only
/// come from a bug; the other connections keep being served with the state as
/// it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Encodes a server message as a text frame.
fn encode(message: ServerMessage) -> Option<Utf8Bytes> {
    match serde_json::to_string(&ServerFrame::from(message)) {
        Ok(text) => Some(text.into()),
        Err(error) => {
            tracing::error!(%error, "failed to encode server frame");
            None
        }
    }
}

impl HubState {
    fn deliver(&mut self, out: Vec<Outgoing>) {
        for Outgoing { to, message } in out {
            if let Some(text) = encode(message) {
                self.push(to, Outbound { text, permit: None });
            }
        }
    }

    fn push_to_user(&mut self, user: &str, text: &Utf8Bytes) {
        let Some(conns) = self.by_user.get(user) else {
            return;
        };
        for conn in conns.clone() {
            let frame = Outbound {
                text: text.clone(),
                permit: None,
            };
            self.push(conn, frame);
        }
    }

    /// Queues a frame. A full queue marks the connection dropped and wakes its
    /// task, which closes it. Returns false when the frame was not queued.
    fn push(&mut self, conn: ConnId, frame: Outbound) -> bool {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return false;
        };
        if connection.dropped {
            return false;
        }
        match connection.outbox.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    %conn,
                    user = %connection.user,
                    capacity = OUTBOX_CAPACITY,
                    "outbound queue full; closing the connection so the client resyncs"
                );
                connection.dropped = true;
                connection.overflowed.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn presence(&self, user: &str) -> Presence {
        if self.machine.user_in_active_call(user) {
            return Presence::InCall;
        }
        let Some(conns) = self.by_user.get(user) else {
            return Presence::Offline;
        };
        let all_away = conns.iter().all(|conn| {
            self.connections
                .get(conn)
                .is_some_and(|connection| connection.away)
        });
        if all_away {
            Presence::Away
        } else {
            Presence::Online
        }
    }
}
