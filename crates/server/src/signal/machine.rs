//! The signalling state machine for one-to-one calls, without I/O.
//!
//! [`Signalling`] takes events (a connection opened, a connection closed, a
//! connection sent a message) and returns the messages to deliver, each addressed
//! to one connection. It never blocks, spawns or reads the clock, so the socket
//! layer can drive it under a lock and the tests can drive it directly.
//!
//! # Connections and users
//!
//! A user may have several connections open at once. An `invite` goes to the
//! callee's most recently opened connection only, and from then on the call is
//! bound to one connection on each side: frames for the call must come from that
//! connection, and only that connection receives the other side's frames. A user
//! counts as busy while any of their connections is in a call.
//!
//! # Call states
//!
//! ```text
//!            invite                 ringing               accept
//!  (none) ──────────► Inviting ──────────────► Ringing ──────────► Active
//!                        │                        │                   │
//!                        └──── decline / cancel ──┴── (call ends)     └── hang_up (call ends)
//! ```
//!
//! - `invite` from the caller creates the call in `Inviting` and sends `incoming`
//!   to the callee. It fails with `user_not_found`, `user_offline`, `self_call`,
//!   `user_busy` (the callee is in a call), `invalid_state` (the caller is in a
//!   call) or `duplicate_call` (the call id is taken).
//! - `ringing` from the callee moves `Inviting` to `Ringing` and sends `ringing` to
//!   the caller.
//! - `accept` from the callee moves `Inviting` or `Ringing` to `Active` and sends
//!   `accepted` to the caller.
//! - `decline` from the callee before `accept` ends the call and sends `declined`
//!   to the caller. `cancel` from the caller before `accept` ends the call and
//!   sends `cancelled` to the callee.
//! - `offer`, `answer` and `candidate` from either participant in `Active` are
//!   forwarded to the other participant.
//! - `move_call` from either participant in `Active` names a conversation of
//!   which both are members, and sends `call_moving` to both. The call goes
//!   on while both join that conversation's group call. Once the room carries
//!   the other's media, each sends `call_switched`, which is forwarded to the
//!   other, and the participant that switches last hangs up. A conversation of
//!   which the other participant is no member fails with `not_member`, a second
//!   `move_call` with `invalid_state`.
//! - `hang_up` from either participant ends the call and sends `hung_up` to the
//!   other. Before `accept` it acts as `cancel` (from the caller) or `decline`
//!   (from the callee).
//! - When a participant's connection closes, the call ends and the other
//!   participant gets `hung_up`, or `cancelled` if the callee had not accepted yet.
//!
//! - [`Signalling::ring_timeout`], which the socket layer calls when a call has
//!   rung for too long, ends a call that is not accepted yet and sends
//!   `cancelled` to both participants.
//!
//! # Call records
//!
//! The machine notes what happened to each call as a [`CallRecord`], which the
//! socket layer collects with [`Signalling::take_call_records`] and stores in the
//! chat history: `started` on accept, `ended` when an accepted call ends,
//! `declined` when the callee declines, and `missed` when the caller cancels, the
//! ring times out, a participant disconnects before accept, or the invite fails
//! because the callee is offline or busy.
//!
//! A message for an unknown call id fails with `call_not_found`, from a connection
//! that is not bound to the call with `not_in_call`, and in a state where it does
//! not fit (for example an `offer` before `accept`, or an `accept` from the caller)
//! with `invalid_state`. Errors go back to the sender only and change no state.

use std::collections::HashMap;

use hearth_proto::chat::ConversationId;
use hearth_proto::{CallId, CallMedia, ClientMessage, ErrorCode, ServerMessage};

/// Identifier of one WebSocket connection, assigned by the socket layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message to deliver to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: ConnId,
    pub message: ServerMessage,
}

/// Lookups in the accounts and conversations: whether an account exists, so
/// that `invite` can tell `user_not_found` from `user_offline`, and who may
/// take part in the group call that `move_call` names.
pub trait Directory {
    fn user_exists(&self, name: &str) -> bool;
    fn is_member(&self, conversation_id: ConversationId, user: &str) -> bool;
}

/// Where a call is between `invite` and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// The callee got `incoming` and has not reported ringing yet.
    Inviting,
    /// The callee's device is alerting its user.
    Ringing,
    /// The callee accepted; media negotiation frames flow both ways.
    Active,
}

#[derive(Debug, Clone)]
struct Call {
    caller: ConnId,
    callee: ConnId,
    caller_user: String,
    callee_user: String,
    media: CallMedia,
    state: CallState,
    /// The conversation whose group call the call moves into, once a
    /// participant sent `move_call`.
    moving_to: Option<ConversationId>,
}

impl Call {
    fn peer_of(&self, conn: ConnId) -> ConnId {
        if conn == self.caller {
            self.callee
        } else {
            self.caller
        }
    }
}

#[derive(Debug, Clone)]
struct Connection {
    user: String,
    /// Order in which connections opened, to find a user's most recent one.
    opened: u64,
}

/// What happened to a call, noted for the call history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRecordKind {
    /// The callee accepted.
    Started,
    /// An accepted call ended.
    Ended,
    /// The call ended before accept without the callee declining.
    Missed,
    /// The callee declined.
    Declined,
}

/// One noted change of a call, between two user names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: CallId,
    pub caller: String,
    pub callee: String,
    pub media: CallMedia,
    pub kind: CallRecordKind,
}

/// Online connections and the calls between them.
#[derive(Debug, Default)]
pub struct Signalling {
    connections: HashMap<ConnId, Connection>,
    calls: HashMap<CallId, Call>,
    opened_count: u64,
    records: Vec<CallRecord>,
}

impl Signalling {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new connection of `user` and greets it with `hello`.
    pub fn connect(&mut self, conn: ConnId, user: &str) -> Vec<Outgoing> {
        self.opened_count += 1;
        let connection = Connection {
            user: user.to_owned(),
            opened: self.opened_count,
        };
        self.connections.insert(conn, connection);
        vec![Outgoing {
            to: conn,
            message: ServerMessage::Hello {
                user: user.to_owned(),
                protocol_version: hearth_proto::PROTOCOL_VERSION,
            },
        }]
    }

    /// Removes a connection and ends its calls, telling each peer.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Outgoing> {
        self.connections.remove(&conn);
        let ended: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, call)| call.caller == conn || call.callee == conn)
            .map(|(call_id, _)| *call_id)
            .collect();

        let mut out = Vec::new();
        for call_id in ended {
            let call = self
                .calls
                .remove(&call_id)
                .expect("id was collected from calls");
            let (message, kind) = if call.state == CallState::Active {
                (ServerMessage::HungUp { call_id }, CallRecordKind::Ended)
            } else {
                (ServerMessage::Cancelled { call_id }, CallRecordKind::Missed)
            };
            self.note(call_id, &call, kind);
            out.push(Outgoing {
                to: call.peer_of(conn),
                message,
            });
        }
        out
    }

    /// Handles one message from `from`. Returns the messages to deliver, or an
    /// `error` addressed to the sender.
    pub fn handle(
        &mut self,
        from: ConnId,
        message: ClientMessage,
        directory: &dyn Directory,
    ) -> Vec<Outgoing> {
        let result = match message {
            ClientMessage::Ping { nonce } => Ok(vec![Outgoing {
                to: from,
                message: ServerMessage::Pong { nonce },
            }]),
            ClientMessage::Invite {
                call_id,
                callee,
                media,
            } => self.invite(from, call_id, &callee, media, directory),
            ClientMessage::Ringing { call_id } => self.ringing(from, call_id),
            ClientMessage::Accept { call_id } => self.accept(from, call_id),
            ClientMessage::Decline { call_id, reason } => self.decline(from, call_id, reason),
            ClientMessage::Cancel { call_id } => self.cancel(from, call_id),
            ClientMessage::HangUp { call_id } => self.hang_up(from, call_id),
            ClientMessage::Offer { call_id, sdp } => {
                self.forward(from, call_id, ServerMessage::Offer { call_id, sdp })
            }
            ClientMessage::Answer { call_id, sdp } => {
                self.forward(from, call_id, ServerMessage::Answer { call_id, sdp })
            }
            ClientMessage::Candidate { call_id, candidate } => self.forward(
                from,
                call_id,
                ServerMessage::Candidate { call_id, candidate },
            ),
            ClientMessage::MoveCall {
                call_id,
                conversation_id,
            } => self.move_call(from, call_id, conversation_id, directory),
            ClientMessage::CallSwitched { call_id } => self.call_switched(from, call_id),
            // The socket layer hands chat frames to the chat service; they never
            // reach the call state machine in a running server.
            ClientMessage::SendMessage { .. }
            | ClientMessage::EditMessage { .. }
            | ClientMessage::DeleteMessage { .. }
            | ClientMessage::Sync { .. }
            | ClientMessage::History { .. }
            | ClientMessage::MarkRead { .. }
            | ClientMessage::SetPresence { .. }
            | ClientMessage::JoinRoom { .. }
            | ClientMessage::RoomAnswer { .. }
            | ClientMessage::LeaveRoom { .. }
            | ClientMessage::SetRoomMedia { .. }
            | ClientMessage::SetRoomViews { .. }
            | ClientMessage::SetRoomScreen { .. } => {
                return vec![Outgoing {
                    to: from,
                    message: ServerMessage::Error {
                        code: ErrorCode::InvalidFrame,
                        message: "chat and room frames are not call signalling frames".to_owned(),
                        call_id: None,
                        conversation_id: None,
                        client_id: None,
                    },
                }];
            }
        };
        result.unwrap_or_else(|rejection| {
            vec![Outgoing {
                to: from,
                message: rejection.into_message(),
            }]
        })
    }

    /// Returns the state of a call, or `None` if it does not exist.
    pub fn call_state(&self, call_id: CallId) -> Option<CallState> {
        self.calls.get(&call_id).map(|call| call.state)
    }

    /// Ends a call that is still waiting for accept, because it rang too long,
    /// and sends `cancelled` to both participants. Does nothing to an accepted
    /// or finished call.
    pub fn ring_timeout(&mut self, call_id: CallId) -> Vec<Outgoing> {
        let Some(call) = self.calls.get(&call_id) else {
            return Vec::new();
        };
        if call.state == CallState::Active {
            return Vec::new();
        }
        let call = self
            .calls
            .remove(&call_id)
            .expect("the call was found above");
        self.note(call_id, &call, CallRecordKind::Missed);
        [call.caller, call.callee]
            .into_iter()
            .map(|to| Outgoing {
                to,
                message: ServerMessage::Cancelled { call_id },
            })
            .collect()
    }

    /// Returns the call records noted since the last call, oldest first.
    pub fn take_call_records(&mut self) -> Vec<CallRecord> {
        std::mem::take(&mut self.records)
    }

    /// Returns whether `user` takes part in an accepted call.
    pub fn user_in_active_call(&self, user: &str) -> bool {
        self.calls.values().any(|call| {
            call.state == CallState::Active
                && (call.caller_user == user || call.callee_user == user)
        })
    }

    fn note(&mut self, call_id: CallId, call: &Call, kind: CallRecordKind) {
        self.records.push(CallRecord {
            call_id,
            caller: call.caller_user.clone(),
            callee: call.callee_user.clone(),
            media: call.media,
            kind,
        });
    }

    /// Notes a call that could not ring because the callee is offline or busy.
    fn note_unreachable(&mut self, call_id: CallId, caller: &str, callee: &str, media: CallMedia) {
        self.records.push(CallRecord {
            call_id,
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            media,
            kind: CallRecordKind::Missed,
        });
    }

    /// Returns the user of a connection.
    pub fn user_of(&self, conn: ConnId) -> Option<&str> {
        self.connections
            .get(&conn)
            .map(|connection| connection.user.as_str())
    }

    fn invite(
        &mut self,
        from: ConnId,
        call_id: CallId,
        callee: &str,
        media: CallMedia,
        directory: &dyn Directory,
    ) -> Result<Vec<Outgoing>, Rejection> {
        let caller = self.user_of(from).unwrap_or_default().to_owned();
        let reject = |code, message: String| Rejection::new(code, message, call_id);

        if self.calls.contains_key(&call_id) {
            return Err(reject(
                ErrorCode::DuplicateCall,
                format!("call {call_id} already exists"),
            ));
        }
        if callee == caller {
            return Err(reject(
                ErrorCode::SelfCall,
                "you cannot call yourself".to_owned(),
            ));
        }
        if !directory.user_exists(callee) {
            return Err(reject(
                ErrorCode::UserNotFound,
                format!("user {callee:?} not found"),
            ));
        }
        // A caller who is in a call themselves made a mistake; the callee did
        // not miss anything.
        let caller_busy = self.user_in_call(&caller);
        let Some(callee_conn) = self.latest_connection_of(callee) else {
            if !caller_busy {
                self.note_unreachable(call_id, &caller, callee, media);
            }
            return Err(reject(
                ErrorCode::UserOffline,
                format!("user {callee:?} is offline"),
            ));
        };
        if self.user_in_call(callee) {
            if !caller_busy {
                self.note_unreachable(call_id, &caller, callee, media);
            }
            return Err(reject(
                ErrorCode::UserBusy,
                format!("user {callee:?} is in another call"),
            ));
        }
        if caller_busy {
            return Err(reject(
                ErrorCode::InvalidState,
                "you are already in a call; hang up before starting another".to_owned(),
            ));
        }

        let call = Call {
            caller: from,
            callee: callee_conn,
            caller_user: caller.clone(),
            callee_user: callee.to_owned(),
            media,
            state: CallState::Inviting,
            moving_to: None,
        };
        self.calls.insert(call_id, call);
        Ok(vec![Outgoing {
            to: callee_conn,
            message: ServerMessage::Incoming {
                call_id,
                caller,
                media,
            },
        }])
    }

    fn ringing(&mut self, from: ConnId, call_id: CallId) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.callee == from,
            call_id,
            "only the callee sends ringing",
        )?;
        require(
            matches!(call.state, CallState::Inviting | CallState::Ringing),
            call_id,
            "ringing is only valid before accept",
        )?;
        call.state = CallState::Ringing;
        Ok(vec![Outgoing {
            to: call.caller,
            message: ServerMessage::Ringing { call_id },
        }])
    }

    fn accept(&mut self, from: ConnId, call_id: CallId) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(call.callee == from, call_id, "only the callee can accept")?;
        require(
            call.state != CallState::Active,
            call_id,
            "the call is already accepted",
        )?;
        call.state = CallState::Active;
        let caller = call.caller;
        let call = call.clone();
        self.note(call_id, &call, CallRecordKind::Started);
        Ok(vec![Outgoing {
            to: caller,
            message: ServerMessage::Accepted { call_id },
        }])
    }

    fn decline(
        &mut self,
        from: ConnId,
        call_id: CallId,
        reason: Option<String>,
    ) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.callee == from,
            call_id,
            "only the callee can decline; the caller cancels",
        )?;
        require(
            call.state != CallState::Active,
            call_id,
            "the call is already accepted; send hang_up to end it",
        )?;
        let call = self
            .calls
            .remove(&call_id)
            .expect("the call was found above");
        self.note(call_id, &call, CallRecordKind::Declined);
        Ok(vec![Outgoing {
            to: call.caller,
            message: ServerMessage::Declined { call_id, reason },
        }])
    }

    fn cancel(&mut self, from: ConnId, call_id: CallId) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.caller == from,
            call_id,
            "only the caller can cancel; the callee declines",
        )?;
        require(
            call.state != CallState::Active,
            call_id,
            "the call is already accepted; send hang_up to end it",
        )?;
        let call = self
            .calls
            .remove(&call_id)
            .expect("the call was found above");
        self.note(call_id, &call, CallRecordKind::Missed);
        Ok(vec![Outgoing {
            to: call.callee,
            message: ServerMessage::Cancelled { call_id },
        }])
    }

    fn hang_up(&mut self, from: ConnId, call_id: CallId) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        let peer = call.peer_of(from);
        let (message, kind) = match call.state {
            CallState::Active => (ServerMessage::HungUp { call_id }, CallRecordKind::Ended),
            _ if from == call.caller => {
                (ServerMessage::Cancelled { call_id }, CallRecordKind::Missed)
            }
            _ => (
                ServerMessage::Declined {
                    call_id,
                    reason: None,
                },
                CallRecordKind::Declined,
            ),
        };
        let call = self
            .calls
            .remove(&call_id)
            .expect("the call was found above");
        self.note(call_id, &call, kind);
        Ok(vec![Outgoing { to: peer, message }])
    }

    fn forward(
        &mut self,
        from: ConnId,
        call_id: CallId,
        message: ServerMessage,
    ) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.state == CallState::Active,
            call_id,
            "offer, answer and candidate are only valid after accept",
        )?;
        Ok(vec![Outgoing {
            to: call.peer_of(from),
            message,
        }])
    }

    fn move_call(
        &mut self,
        from: ConnId,
        call_id: CallId,
        conversation_id: ConversationId,
        directory: &dyn Directory,
    ) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.state == CallState::Active,
            call_id,
            "only an accepted call can move into a group call",
        )?;
        if let Some(moving_to) = call.moving_to {
            return Err(Rejection::new(
                ErrorCode::InvalidState,
                format!(
                    "the call is already moving into the group call of conversation {moving_to}"
                ),
                call_id,
            ));
        }
        let (user, peer_user) = if from == call.caller {
            (&call.caller_user, &call.callee_user)
        } else {
            (&call.callee_user, &call.caller_user)
        };
        for member in [user, peer_user] {
            if !directory.is_member(conversation_id, member) {
                return Err(Rejection::new(
                    ErrorCode::NotMember,
                    format!(
                        "{member} is not a member of conversation {conversation_id}; add them \
                         to it before moving the call there"
                    ),
                    call_id,
                ));
            }
        }
        call.moving_to = Some(conversation_id);
        let moving = ServerMessage::CallMoving {
            call_id,
            conversation_id,
        };
        Ok([call.caller, call.callee]
            .into_iter()
            .map(|to| Outgoing {
                to,
                message: moving.clone(),
            })
            .collect())
    }

    fn call_switched(&mut self, from: ConnId, call_id: CallId) -> Result<Vec<Outgoing>, Rejection> {
        let call = self.participant_call(from, call_id)?;
        require(
            call.moving_to.is_some(),
            call_id,
            "call_switched is only valid after move_call",
        )?;
        Ok(vec![Outgoing {
            to: call.peer_of(from),
            message: ServerMessage::CallSwitched { call_id },
        }])
    }

    /// Looks up a call and checks that `from` is bound to it.
    fn participant_call(&mut self, from: ConnId, call_id: CallId) -> Result<&mut Call, Rejection> {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Err(Rejection::new(
                ErrorCode::CallNotFound,
                format!("call {call_id} not found"),
                call_id,
            ));
        };
        if call.caller != from && call.callee != from {
            return Err(Rejection::new(
                ErrorCode::NotInCall,
                format!("this connection is not a participant of call {call_id}"),
                call_id,
            ));
        }
        Ok(call)
    }

    fn latest_connection_of(&self, user: &str) -> Option<ConnId> {
        self.connections
            .iter()
            .filter(|(_, connection)| connection.user == user)
            .max_by_key(|(_, connection)| connection.opened)
            .map(|(conn, _)| *conn)
    }

    fn user_in_call(&self, user: &str) -> bool {
        self.calls.values().any(|call| {
            self.user_of(call.caller) == Some(user) || self.user_of(call.callee) == Some(user)
        })
    }
}

/// A rejected message, sent back to its sender as `error`.
#[derive(Debug)]
struct Rejection {
    code: ErrorCode,
    message: String,
    call_id: CallId,
}

impl Rejection {
    fn new(code: ErrorCode, message: String, call_id: CallId) -> Self {
        Self {
            code,
            message,
            call_id,
        }
    }

    fn into_message(self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message,
            call_id: Some(self.call_id),
            conversation_id: None,
            client_id: None,
        }
    }
}

fn require(condition: bool, call_id: CallId, message: &str) -> Result<(), Rejection> {
    if condition {
        Ok(())
    } else {
        Err(Rejection::new(
            ErrorCode::InvalidState,
            message.to_owned(),
            call_id,
        ))
    }
}

#[cfg(test)]
mod tests;
