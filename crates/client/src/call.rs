//! Call control for one-to-one calls: invite, ring, accept or decline, the SDP
//! exchange with trickled candidates, and hang-up.
//!
//! Setup runs inline until the peer connection is up. Afterwards a background
//! task owns the signalling connection: it keeps applying trickled candidates
//! and reports how the call ended.
//!
//! A connected call can move into the group call of a conversation of which
//! both participants are members, so that more people can join: see
//! [`ActiveCall::move_to_room`] and [`crate::moving`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_media::peer::RemoteCandidates;
use hearth_media::{Candidate, MediaPeer, PeerConfig, PeerEvent, RemoteSinks, SendMedia};
use hearth_proto::chat::ConversationId;
use hearth_proto::signal::CallMedia;
use hearth_proto::{CallId, ClientMessage, IceCandidate, ServerMessage};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{ClientError, Result};
use crate::signal::SignalConnection;

/// How long a caller waits for the callee to answer.
pub const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long both sides wait for ICE and DTLS once the call was accepted.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to respond to `move_call`.
const MOVE_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of one side of a call: the peer connection, the media it sends
/// and the channels that receive the decoded remote media.
#[derive(Debug, Default)]
pub struct CallOptions {
    pub peer: PeerConfig,
    pub send: SendMedia,
    pub sinks: RemoteSinks,
}

/// A call offered to this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_id: CallId,
    pub caller: String,
    pub media: CallMedia,
}

/// Reason a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// The other participant hung up.
    RemoteHangUp,
    /// This side hung up.
    LocalHangUp,
    /// The media path failed (ICE or DTLS).
    MediaFailed,
    /// The signalling connection closed.
    SignalLost,
}

impl std::fmt::Display for CallEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::RemoteHangUp => "the other side hung up",
            Self::LocalHangUp => "hung up",
            Self::MediaFailed => "the media connection failed",
            Self::SignalLost => "the connection to the server was lost",
        })
    }
}

/// A connected call.
pub struct ActiveCall {
    pub call_id: CallId,
    pub remote_user: String,
    pub peer: MediaPeer,
    /// When the callee accepted: sent by this side, or received from the other.
    pub accepted_at: Instant,
    pub connected_at: Instant,
    commands: mpsc::UnboundedSender<Command>,
    ended: watch::Receiver<Option<CallEnd>>,
    pump: JoinHandle<SignalConnection>,
    pub(crate) moves: MoveState,
}

/// State of a move into a group call, kept up to date by the signalling task.
#[derive(Clone)]
pub(crate) struct MoveState {
    /// The conversation the call moves into, once the server agreed.
    pub moving: watch::Receiver<Option<ConversationId>>,
    /// Whether the other participant receives this side's media through
    /// the room.
    pub peer_switched: watch::Receiver<bool>,
    /// The signalling for the room: every frame that is not about this call,
    /// split off when the move began.
    pub room_signal: Arc<Mutex<Option<SignalConnection>>>,
}

/// Requests to the signalling task.
pub(crate) enum Command {
    HangUp,
    /// Sends a frame about the call.
    Send(ClientMessage),
    /// Sends `move_call` and reports the server's response.
    Move {
        conversation_id: ConversationId,
        answer: oneshot::Sender<Result<()>>,
    },
}

/// Waits for the end of a call from another task or a `select!` branch.
pub struct EndWatcher(watch::Receiver<Option<CallEnd>>);

impl EndWatcher {
    pub async fn wait(&mut self) -> CallEnd {
        loop {
            if let Some(end) = self.0.borrow().clone() {
                return end;
            }
            if self.0.changed().await.is_err() {
                return CallEnd::SignalLost;
            }
        }
    }
}

impl ActiveCall {
    /// Waits until the call ends by the other side or a failure.
    pub async fn ended(&mut self) -> CallEnd {
        self.end_watcher().wait().await
    }

    pub fn end_watcher(&self) -> EndWatcher {
        EndWatcher(self.ended.clone())
    }

    /// Returns how the call ended, or `None` while it goes on.
    pub fn end_state(&self) -> Option<CallEnd> {
        self.ended.borrow().clone()
    }

    /// Asks the server to move this call into the group call of
    /// `conversation_id`, of which both participants must be members, so that
    /// more people can join it. Returns once the server agreed; the other
    /// participant then finds the conversation in [`ActiveCall::moving`]. Both
    /// go on with [`ActiveCall::join_moved_room`].
    pub async fn move_to_room(&self, conversation_id: ConversationId) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        self.commands
            .send(Command::Move {
                conversation_id,
                answer,
            })
            .map_err(|_| ClientError::CallEnded("the call already ended".into()))?;
        tokio::time::timeout(MOVE_ANSWER_TIMEOUT, answered)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "the server's answer to moving the call".into(),
                seconds: MOVE_ANSWER_TIMEOUT.as_secs(),
            })?
            .map_err(|_| ClientError::CallEnded("the call ended while moving".into()))?
    }

    /// Follows the conversation whose group call this call moves into:
    /// `None` until either participant moved it.
    pub fn moving(&self) -> watch::Receiver<Option<ConversationId>> {
        self.moves.moving.clone()
    }

    pub(crate) fn send_frame(&self, message: ClientMessage) {
        // A closed channel means the call ended, which `ended` reports.
        let _ = self.commands.send(Command::Send(message));
    }

    /// Hangs up, closes the media and returns the signalling connection, or,
    /// once the call moved into a group call, the part of it that carries
    /// this call's frames.
    pub async fn hang_up(self) -> Result<SignalConnection> {
        // The pump may already have ended; the hang-up is then moot.
        let _ = self.commands.send(Command::HangUp);
        self.peer.close().await;
        let pump = self.pump;
        tokio::time::timeout(Duration::from_secs(5), pump)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "the signalling task to stop".into(),
                seconds: 5,
            })?
            .map_err(|err| ClientError::Protocol(format!("signalling task failed: {err}")))
    }
}

/// Calls `callee` and returns once media flows, or with the reason it did not.
pub async fn place_call(
    mut signal: SignalConnection,
    callee: &str,
    options: CallOptions,
) -> Result<ActiveCall> {
    let call_id = CallId::new_v4();
    let media = if options.send.video {
        CallMedia::Video
    } else {
        CallMedia::Audio
    };
    tracing::info!(%call_id, callee, "calling");
    signal.send(ClientMessage::Invite {
        call_id,
        callee: callee.to_owned(),
        media,
    })?;

    let deadline = tokio::time::Instant::now() + RING_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, signal.recv())
            .await
            .map_err(|_| {
                let _ = signal.send(ClientMessage::Cancel { call_id });
                ClientError::Timeout {
                    what: format!("{callee} to answer"),
                    seconds: RING_TIMEOUT.as_secs(),
                }
            })?
            .ok_or(ClientError::Disconnected)?;
        match message {
            ServerMessage::Ringing { call_id: id } if id == call_id => {
                tracing::info!(%call_id, "ringing");
            }
            ServerMessage::Accepted { call_id: id } if id == call_id => break,
            ServerMessage::Declined {
                call_id: id,
                reason,
            } if id == call_id => {
                return Err(ClientError::Declined {
                    callee: callee.to_owned(),
                    reason,
                });
            }
            // Errors about chat or another call share this connection.
            ServerMessage::Error {
                code,
                message,
                call_id: Some(id),
                ..
            } if id == call_id => {
                return Err(ClientError::Server { code, message });
            }
            other => tracing::debug!(?other, "ignoring a frame while ringing"),
        }
    }
    let accepted_at = Instant::now();
    tracing::info!(%call_id, "accepted");

    let mut peer = MediaPeer::new(&options.peer, options.send, options.sinks).await?;
    let offer = peer.create_offer().await?;
    signal.send(ClientMessage::Offer {
        call_id,
        sdp: offer,
    })?;
    establish(&mut signal, &mut peer, call_id, Role::Caller).await?;
    Ok(start_pump(
        signal,
        peer,
        call_id,
        callee.to_owned(),
        accepted_at,
    ))
}

/// Waits until someone calls this user.
pub async fn wait_for_incoming(signal: &mut SignalConnection) -> Result<IncomingCall> {
    loop {
        match signal.recv().await.ok_or(ClientError::Disconnected)? {
            ServerMessage::Incoming {
                call_id,
                caller,
                media,
            } => {
                return Ok(IncomingCall {
                    call_id,
                    caller,
                    media,
                });
            }
            other => tracing::debug!(?other, "ignoring a frame while waiting for a call"),
        }
    }
}

/// Declines an incoming call.
pub fn decline(
    signal: &SignalConnection,
    call: &IncomingCall,
    reason: Option<String>,
) -> Result<()> {
    signal.send(ClientMessage::Decline {
        call_id: call.call_id,
        reason,
    })
}

/// Accepts an incoming call and returns once media flows.
pub async fn answer_call(
    mut signal: SignalConnection,
    call: &IncomingCall,
    options: CallOptions,
) -> Result<ActiveCall> {
    let call_id = call.call_id;
    signal.send(ClientMessage::Ringing { call_id })?;
    let mut peer = MediaPeer::new(&options.peer, options.send, options.sinks).await?;
    signal.send(ClientMessage::Accept { call_id })?;
    let accepted_at = Instant::now();
    tracing::info!(%call_id, caller = %call.caller, "accepted");

    establish(&mut signal, &mut peer, call_id, Role::Callee).await?;
    Ok(start_pump(
        signal,
        peer,
        call_id,
        call.caller.clone(),
        accepted_at,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

/// Runs the SDP and candidate exchange until the peer connection is up.
async fn establish(
    signal: &mut SignalConnection,
    peer: &mut MediaPeer,
    call_id: CallId,
    role: Role,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut remote_description_set = false;
    let mut early_candidates = Vec::new();

    loop {
        tokio::select! {
            message = signal.recv() => {
                let message = message.ok_or(ClientError::Disconnected)?;
                match message {
                    ServerMessage::Offer { call_id: id, sdp } if id == call_id && role == Role::Callee => {
                        let answer = match peer.accept_offer(&sdp).await {
                            Ok(answer) => answer,
                            Err(err) => {
                                let _ = signal.send(ClientMessage::HangUp { call_id });
                                return Err(err.into());
                            }
                        };
                        signal.send(ClientMessage::Answer { call_id, sdp: answer })?;
                        remote_description_set = true;
                    }
                    ServerMessage::Answer { call_id: id, sdp } if id == call_id && role == Role::Caller => {
                        if let Err(err) = peer.set_answer(&sdp).await {
                            let _ = signal.send(ClientMessage::HangUp { call_id });
                            return Err(err.into());
                        }
                        remote_description_set = true;
                    }
                    ServerMessage::Candidate { call_id: id, candidate } if id == call_id => {
                        early_candidates.push(from_wire(candidate));
                    }
                    ServerMessage::HungUp { call_id: id } | ServerMessage::Cancelled { call_id: id }
                        if id == call_id =>
                    {
                        return Err(ClientError::CallEnded("the other side hung up during setup".into()));
                    }
                    ServerMessage::Error { code, message, call_id: Some(id), .. } if id == call_id => {
                        return Err(ClientError::Server { code, message });
                    }
                    other => tracing::debug!(?other, "ignoring a frame during call setup"),
                }
                if remote_description_set {
                    for candidate in early_candidates.drain(..) {
                        peer.add_remote_candidate(candidate).await?;
                    }
                }
            }
            event = peer.next_event() => {
                match event.ok_or(ClientError::CallEnded("the peer connection closed".into()))? {
                    PeerEvent::LocalCandidate(candidate) => {
                        signal.send(ClientMessage::Candidate { call_id, candidate: to_wire(candidate) })?;
                    }
                    PeerEvent::Connected => {
                        tracing::info!(%call_id, "media connected");
                        return Ok(());
                    }
                    PeerEvent::Failed => {
                        let _ = signal.send(ClientMessage::HangUp { call_id });
                        return Err(ClientError::CallEnded(
                            "the media connection failed (ICE or DTLS-SRTP negotiation)".into(),
                        ));
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let _ = signal.send(ClientMessage::HangUp { call_id });
                return Err(ClientError::Timeout {
                    what: "the media connection".into(),
                    seconds: CONNECT_TIMEOUT.as_secs(),
                });
            }
        }
    }
}

fn start_pump(
    signal: SignalConnection,
    mut peer: MediaPeer,
    call_id: CallId,
    remote_user: String,
    accepted_at: Instant,
) -> ActiveCall {
    let (ended_tx, ended) = watch::channel(None);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (moving_tx, moving) = watch::channel(None);
    let (peer_switched_tx, peer_switched) = watch::channel(false);
    let moves = MoveState {
        moving,
        peer_switched,
        room_signal: Arc::new(Mutex::new(None)),
    };
    let tracker = MoveTracker {
        call_id,
        moving: moving_tx,
        peer_switched: peer_switched_tx,
        room_signal: moves.room_signal.clone(),
        answer: None,
    };
    let events = peer.take_events();
    let candidates = peer.remote_candidates();
    let pump = tokio::spawn(pump(
        signal,
        events,
        candidates,
        commands_rx,
        ended_tx,
        tracker,
    ));
    ActiveCall {
        call_id,
        remote_user,
        peer,
        accepted_at,
        connected_at: Instant::now(),
        commands,
        ended,
        pump,
        moves,
    }
}

/// The signalling task's side of a move into a group call.
struct MoveTracker {
    call_id: CallId,
    moving: watch::Sender<Option<ConversationId>>,
    peer_switched: watch::Sender<bool>,
    room_signal: Arc<Mutex<Option<SignalConnection>>>,
    /// Sender of the server's response to this side's `move_call`.
    answer: Option<oneshot::Sender<Result<()>>>,
}

impl MoveTracker {
    /// Handles a frame about a move; gives back any other frame.
    fn handle(
        &mut self,
        signal: &mut Option<SignalConnection>,
        message: ServerMessage,
    ) -> Option<ServerMessage> {
        let call_id = self.call_id;
        match message {
            ServerMessage::CallMoving {
                call_id: id,
                conversation_id,
            } if id == call_id => {
                if self.moving.borrow().is_none() {
                    let whole = signal.take().expect("the pump holds its connection");
                    let (call, room) =
                        whole.split(move |frame| frame_call_id(frame) == Some(call_id));
                    *signal = Some(call);
                    *self
                        .room_signal
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(room);
                    tracing::info!(%call_id, %conversation_id, "the call moves into a group call");
                    self.moving.send_replace(Some(conversation_id));
                }
                if let Some(answer) = self.answer.take() {
                    let _ = answer.send(Ok(()));
                }
                None
            }
            ServerMessage::CallSwitched { call_id: id } if id == call_id => {
                tracing::info!(%call_id, "the other side receives media through the group call");
                self.peer_switched.send_replace(true);
                None
            }
            ServerMessage::Error {
                code,
                message,
                call_id: Some(id),
                ..
            } if id == call_id && self.answer.is_some() => {
                let answer = self.answer.take().expect("checked above");
                let _ = answer.send(Err(ClientError::Server { code, message }));
                None
            }
            other => Some(other),
        }
    }
}

/// Returns the call a frame is about, if any.
fn frame_call_id(frame: &ServerMessage) -> Option<CallId> {
    match frame {
        ServerMessage::Incoming { call_id, .. }
        | ServerMessage::Ringing { call_id }
        | ServerMessage::Accepted { call_id }
        | ServerMessage::Declined { call_id, .. }
        | ServerMessage::Cancelled { call_id }
        | ServerMessage::HungUp { call_id }
        | ServerMessage::Offer { call_id, .. }
        | ServerMessage::Answer { call_id, .. }
        | ServerMessage::Candidate { call_id, .. }
        | ServerMessage::CallMoving { call_id, .. }
        | ServerMessage::CallSwitched { call_id } => Some(*call_id),
        ServerMessage::Error { call_id, .. } => *call_id,
        _ => None,
    }
}

/// Forwards candidates both ways after setup, follows a move into a group
/// call and records how the call ends.
async fn pump(
    signal: SignalConnection,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    candidates: RemoteCandidates,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ended: watch::Sender<Option<CallEnd>>,
    mut moves: MoveTracker,
) -> SignalConnection {
    let call_id = moves.call_id;
    // Only a move replaces the connection, by the part of it that carries
    // this call's frames.
    let mut signal = Some(signal);
    let mut events = Some(events);
    loop {
        let signal_now = signal.as_mut().expect("the pump holds its connection");
        let next_event = async {
            match events.as_mut() {
                Some(events) => events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::HangUp) => {
                    let _ = signal_now.send(ClientMessage::HangUp { call_id });
                    ended.send_replace(Some(CallEnd::LocalHangUp));
                    break;
                }
                Some(Command::Send(message)) => { let _ = signal_now.send(message); }
                Some(Command::Move { conversation_id, answer }) => {
                    match signal_now.send(ClientMessage::MoveCall { call_id, conversation_id }) {
                        Ok(()) => moves.answer = Some(answer),
                        Err(error) => { let _ = answer.send(Err(error)); }
                    }
                }
                None => break,
            },
            message = signal_now.recv() => match message.map(|message| moves.handle(&mut signal, message)) {
                Some(None) => {}
                Some(Some(ServerMessage::Candidate { call_id: id, candidate })) if id == call_id => {
                    if let Err(err) = candidates.add(from_wire(candidate)).await {
                        tracing::debug!(error = %err, "ignoring a remote candidate");
                    }
                }
                Some(Some(ServerMessage::HungUp { call_id: id })) if id == call_id => {
                    tracing::info!(%call_id, "the other side hung up");
                    ended.send_replace(Some(CallEnd::RemoteHangUp));
                    break;
                }
                Some(Some(other)) => tracing::debug!(?other, "ignoring a frame during the call"),
                None => {
                    ended.send_replace(Some(CallEnd::SignalLost));
                    break;
                }
            },
            event = next_event => match event {
                Some(PeerEvent::LocalCandidate(candidate)) => {
                    let _ = signal_now.send(ClientMessage::Candidate { call_id, candidate: to_wire(candidate) });
                }
                Some(PeerEvent::Failed) => {
                    tracing::warn!(%call_id, "media connection failed");
                    let _ = signal_now.send(ClientMessage::HangUp { call_id });
                    ended.send_replace(Some(CallEnd::MediaFailed));
                    break;
                }
                Some(_) => {}
                // The peer connection is closed; keep serving hang-up requests.
                None => events = None,
            },
        }
    }
    signal.expect("the pump holds its connection")
}

fn to_wire(candidate: Candidate) -> IceCandidate {
    IceCandidate {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_mline_index,
    }
}

fn from_wire(candidate: IceCandidate) -> Candidate {
    Candidate {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_mline_index: candidate.sdp_mline_index,
    }
}
