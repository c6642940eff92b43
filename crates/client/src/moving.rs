//! A one-to-one call that moves into a conversation's group call without
//! losing media.
//!
//! One participant requests the move with [`ActiveCall::move_to_room`]; both see the
//! conversation in [`ActiveCall::moving`]. Each then joins the room with
//! [`ActiveCall::join_moved_room`] while the call's own peer-to-peer media
//! keeps playing, starts sending into the room, and calls
//! [`MovingCall::finish`]. That waits until the room has carried the other
//! participant's media for [`SWITCH_SETTLE`], sends `call_switched`, and ends
//! the peer-to-peer call only once both sides receive each other through the
//! room: whichever side switches last hangs up. A player that plays both
//! paths stops playing the call's own media after
//! [`MovingCall::room_carries_media`].

use std::collections::HashSet;
use std::time::Duration;

use hearth_media::StreamSinks;
use hearth_proto::ClientMessage;
use tokio::sync::{mpsc, watch};

use crate::call::ActiveCall;
use crate::error::{ClientError, Result};
use crate::room::{self, RoomCall, RoomOptions};

/// How long a side that switched waits for the other to switch before it
/// ends the peer-to-peer call anyway.
const PEER_SWITCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the room carries the other participant's media before this side
/// switches to it: long enough for the room's jitter buffer to fill and for
/// the call's packets in flight to play out.
pub const SWITCH_SETTLE: Duration = Duration::from_millis(200);

/// A call that is in both places: its peer-to-peer media still plays while
/// this device is in the group call it moves into.
pub struct MovingCall {
    call: ActiveCall,
    room: RoomCall,
    /// The stream ids (participant ids in decimal) that delivered media
    /// through the room.
    delivered: watch::Receiver<HashSet<String>>,
    /// Whether the room carried the other participant's media long enough.
    room_ready: bool,
}

impl ActiveCall {
    /// Joins the group call that this call moves into, once
    /// [`ActiveCall::moving`] names it. The call's own media keeps playing;
    /// start sending on [`MovingCall::room`], then call
    /// [`MovingCall::finish`].
    pub async fn join_moved_room(self, mut options: RoomOptions) -> Result<MovingCall> {
        let Some(conversation_id) = *self.moves.moving.borrow() else {
            return Err(ClientError::Protocol(
                "the call is not moving into a group call; call move_to_room first".into(),
            ));
        };
        let signal = self
            .moves
            .room_signal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                ClientError::Protocol("the call already joined the group call it moves into".into())
            })?;
        let (delivered_tx, delivered) = watch::channel(HashSet::new());
        options.sinks.streams = Some(tap_streams(options.sinks.streams.take(), delivered_tx));
        let room = room::join_room(signal, conversation_id, options).await?;
        tracing::info!(
            call_id = %self.call_id,
            %conversation_id,
            participant_id = room.participant_id,
            "joined the group call the call moves into"
        );
        Ok(MovingCall {
            call: self,
            room,
            delivered,
            room_ready: false,
        })
    }
}

impl MovingCall {
    /// Returns the group call, on whose peer this side starts sending.
    pub fn room(&mut self) -> &mut RoomCall {
        &mut self.room
    }

    /// Waits until the room has carried the other participant's media for
    /// [`SWITCH_SETTLE`], or the call ended. From then on play the room's
    /// media rather than the call's.
    pub async fn room_carries_media(&mut self) -> Result<()> {
        if self.room_ready {
            return Ok(());
        }
        let remote_user = self.call.remote_user.clone();
        let mut roster = self.room.roster();
        let mut end = self.call.end_watcher();
        tokio::select! {
            result = wait_for_media(&mut self.delivered, &mut roster, &remote_user) => {
                result?;
                tracing::info!(call_id = %self.call.call_id, remote_user, "the group call carries the other side's media");
                tokio::time::sleep(SWITCH_SETTLE).await;
            }
            end = end.wait() => {
                // The other side switched and hung up; its media arrives
                // through the room from now on.
                tracing::info!(call_id = %self.call.call_id, %end, "the call ended before the room carried media");
            }
        }
        self.room_ready = true;
        Ok(())
    }

    /// Waits until the room carries the other participant's media, then
    /// ends the peer-to-peer call as soon as the other side receives this
    /// side's media through the room too, and returns the group call.
    pub async fn finish(mut self) -> Result<RoomCall> {
        self.room_carries_media().await?;
        let Self { call, room, .. } = self;
        if call.end_state().is_some() {
            call.peer.close().await;
            return Ok(room);
        }
        call.send_frame(ClientMessage::CallSwitched {
            call_id: call.call_id,
        });
        let mut peer_switched = call.moves.peer_switched.clone();
        let mut end = call.end_watcher();
        // Whichever side switches last ends the call.
        let ended_by_peer = tokio::time::timeout(PEER_SWITCH_TIMEOUT, async {
            tokio::select! {
                _ = peer_switched.wait_for(|switched| *switched) => false,
                _ = end.wait() => true,
            }
        })
        .await;
        match ended_by_peer {
            Ok(true) => call.peer.close().await,
            Ok(false) => {
                call.hang_up().await?;
            }
            Err(_) => {
                tracing::warn!(
                    call_id = %call.call_id,
                    "the other side did not switch to the group call in time; ending the call anyway"
                );
                call.hang_up().await?;
            }
        }
        Ok(room)
    }
}

/// Waits until one of `remote_user`'s devices in the room delivered media,
/// or is in the room with its microphone muted and its camera off, which
/// sends nothing to wait for.
async fn wait_for_media(
    delivered: &mut watch::Receiver<HashSet<String>>,
    roster: &mut watch::Receiver<room::Roster>,
    remote_user: &str,
) -> Result<()> {
    loop {
        let ready = roster
            .borrow()
            .participants
            .iter()
            .filter(|participant| participant.user == remote_user)
            .any(|participant| {
                (participant.audio_muted && participant.video_off)
                    || delivered.borrow().contains(&participant.id.to_string())
            });
        if ready {
            return Ok(());
        }
        tokio::select! {
            changed = delivered.changed() => changed,
            changed = roster.changed() => changed,
        }
        .map_err(|_| ClientError::CallEnded("the group call ended while the call moved".into()))?;
    }
}

/// Puts a task between the room's streams and `sinks` that notes which
/// stream ids delivered media. Without `sinks`, the media is discarded.
fn tap_streams(
    sinks: Option<StreamSinks>,
    delivered: watch::Sender<HashSet<String>>,
) -> StreamSinks {
    let (video, video_rx) = mpsc::channel(64);
    let (audio, audio_rx) = mpsc::channel(256);
    let (screen, screen_rx) = mpsc::channel(16);
    let delivered = std::sync::Arc::new(delivered);
    let has_screen = sinks.as_ref().is_some_and(|sinks| sinks.screen.is_some());
    let (video_out, audio_out, screen_out) = match sinks {
        Some(sinks) => (Some(sinks.video), Some(sinks.audio), sinks.screen),
        None => (None, None, None),
    };
    tokio::spawn(forward(video_rx, video_out, delivered.clone()));
    tokio::spawn(forward(audio_rx, audio_out, delivered.clone()));
    tokio::spawn(forward(screen_rx, screen_out, delivered));
    StreamSinks {
        video,
        audio,
        screen: has_screen.then_some(screen),
    }
}

/// Forwards tagged media from `input` to `output`, noting each new tag.
async fn forward<T>(
    mut input: mpsc::Receiver<(String, T)>,
    output: Option<mpsc::Sender<(String, T)>>,
    delivered: std::sync::Arc<watch::Sender<HashSet<String>>>,
) {
    while let Some((id, media)) = input.recv().await {
        if !delivered.borrow().contains(&id) {
            delivered.send_modify(|ids| {
                ids.insert(id.clone());
            });
        }
        if let Some(output) = &output
            && output.send((id, media)).await.is_err()
        {
            return;
        }
    }
}
