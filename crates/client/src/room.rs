//! Group calls through the server's SFU.
//!
//! [`join_room`] offers this device's camera and microphone to the SFU of a
//! conversation and returns once the SFU answered. A task then answers every
//! later offer of the SFU, which adds or removes the streams of the other
//! participants, and keeps the list of participants current. Remote media
//! arrives on the [`StreamSinks`](hearth_media::StreamSinks) given in the
//! options, tagged with the participant id of its sender. Video is sent in
//! the codec that the SFU names for the room, which every participant can
//! decode.
//!
//! With [`PeerConfig::screen_track`] the device reserves a video section for
//! sharing its screen when it joins, because only the SFU offers after the
//! join. [`RoomCall::start_screen_share`] and
//! [`RoomCall::stop_screen_share`] then start and stop it mid-call without
//! renegotiation, and the roster tells the others who shares.

use std::time::Duration;

use hearth_media::{
    Answerer, MediaPeer, PeerConfig, PeerEvent, RemoteSinks, ScreenControls, ScreenSendConfig,
    SendMedia, VideoCodec, VideoCodecSwitch, VideoFeed,
};
use hearth_proto::chat::ConversationId;
use hearth_proto::{ClientMessage, RoomParticipant, RoomParticipantId, RoomView, ServerMessage};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{ClientError, Result};
use crate::signal::SignalConnection;

/// How long the SFU may take to answer a join, and the media connection to
/// come up after that.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of a group call.
#[derive(Debug, Default)]
pub struct RoomOptions {
    pub peer: PeerConfig,
    pub send: SendMedia,
    /// The channels for decoded remote media. Set `streams`, because an SFU
    /// sends one stream per participant.
    pub sinks: RemoteSinks,
}

/// Who is in the room, as the SFU last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub participants: Vec<RoomParticipant>,
    pub active_speaker: Option<RoomParticipantId>,
}

/// Why this device is no longer in the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEnd {
    /// [`RoomCall::leave`] was called.
    Left,
    /// The SFU removed this device; the reason is for people.
    Removed(String),
    /// The media connection failed.
    MediaFailed,
    /// The signalling connection closed.
    SignalLost,
}

/// This device in a group call.
pub struct RoomCall {
    pub conversation_id: ConversationId,
    /// This device's id in the room.
    pub participant_id: RoomParticipantId,
    /// The media session with the SFU; start sending with
    /// [`MediaPeer::start_live`] or the file senders.
    pub peer: MediaPeer,
    roster: watch::Receiver<Roster>,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    task: JoinHandle<RoomEnd>,
    /// The screen share's controls once it was first started.
    screen: Option<ScreenControls>,
    /// The last views and video limit sent, which `set_room_views` carries
    /// together.
    receiving: std::sync::Mutex<(Vec<RoomView>, Option<u32>)>,
}

/// Joins the group call of a conversation. Only members may join; the
/// server answers others with a `not_member` error, returned here as
/// [`ClientError::Server`].
pub async fn join_room(
    mut signal: SignalConnection,
    conversation_id: ConversationId,
    options: RoomOptions,
) -> Result<RoomCall> {
    let mut peer = MediaPeer::new(&options.peer, options.send, options.sinks).await?;
    let offer = peer.create_offer().await?;
    let screen_mid = peer.screen_mid().await?;
    signal.send(ClientMessage::JoinRoom {
        conversation_id,
        sdp: offer,
        screen_mid,
    })?;
    let (participant_id, answer, roster) =
        tokio::time::timeout(JOIN_TIMEOUT, wait_joined(&mut signal, conversation_id))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "the server's answer to joining the call".into(),
                seconds: JOIN_TIMEOUT.as_secs(),
            })??;
    peer.set_answer(&answer).await?;
    let mut events = peer.take_events();
    tokio::time::timeout(JOIN_TIMEOUT, wait_connected(&mut events))
        .await
        .map_err(|_| ClientError::Timeout {
            what: "the media connection to the server".into(),
            seconds: JOIN_TIMEOUT.as_secs(),
        })??;
    tracing::info!(%conversation_id, participant_id, "joined the group call");
    let (roster_tx, roster_rx) = watch::channel(roster);
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(follow(
        signal,
        conversation_id,
        peer.answerer(),
        peer.video_codec_switch(),
        events,
        roster_tx,
        outgoing_rx,
    ));
    Ok(RoomCall {
        conversation_id,
        participant_id,
        peer,
        roster: roster_rx,
        outgoing,
        task,
        screen: None,
        receiving: std::sync::Mutex::new((Vec::new(), None)),
    })
}

impl RoomCall {
    /// Follows the list of participants.
    pub fn roster(&self) -> watch::Receiver<Roster> {
        self.roster.clone()
    }

    /// Tells the others about this device's microphone and camera, and the
    /// size of the picture it sends.
    pub fn set_media(&self, audio_muted: bool, video_off: bool, video_size: Option<(u32, u32)>) {
        let (video_width, video_height) = video_size.unwrap_or((0, 0));
        self.send(ClientMessage::SetRoomMedia {
            conversation_id: self.conversation_id,
            audio_muted,
            video_off,
            video_width,
            video_height,
        });
    }

    /// Tells the SFU at which size this device shows each participant.
    pub fn set_views(&self, views: Vec<RoomView>) {
        let mut receiving = self.lock_receiving();
        receiving.0 = views;
        self.send_views(&receiving);
    }

    /// Caps the video this device receives, all streams together, at
    /// `max_video_bps` bit/s, or lifts the cap with `None`. The SFU then
    /// forwards lower layers or frame rates, as on a slow link.
    pub fn set_video_limit(&self, max_video_bps: Option<u32>) {
        let mut receiving = self.lock_receiving();
        receiving.1 = max_video_bps;
        self.send_views(&receiving);
    }

    fn lock_receiving(&self) -> std::sync::MutexGuard<'_, (Vec<RoomView>, Option<u32>)> {
        self.receiving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send_views(&self, (views, max_video_bps): &(Vec<RoomView>, Option<u32>)) {
        self.send(ClientMessage::SetRoomViews {
            conversation_id: self.conversation_id,
            views: views.clone(),
            max_video_bps: *max_video_bps,
        });
    }

    /// Shares the pictures of `feed`, for example
    /// [`ScreenCapture::frames`](hearth_media::ScreenCapture::frames), and
    /// tells the others. `config` applies to the first share of the call;
    /// a later share replaces only the feed. Keep the capture alive while it
    /// is shared: dropping it stops the pictures but not the share.
    pub async fn start_screen_share(
        &mut self,
        feed: VideoFeed,
        config: ScreenSendConfig,
    ) -> Result<()> {
        let controls = match &self.screen {
            Some(controls) => controls.clone(),
            None => {
                let controls = self.peer.start_screen(config).await?;
                self.screen = Some(controls.clone());
                controls
            }
        };
        controls.replace(Some(feed))?;
        self.send(ClientMessage::SetRoomScreen {
            conversation_id: self.conversation_id,
            sharing: true,
        });
        tracing::info!(conversation_id = %self.conversation_id, "screen share started");
        Ok(())
    }

    /// Stops sharing the screen; the track then sends nothing. Does nothing
    /// when no share was started.
    pub fn stop_screen_share(&mut self) -> Result<()> {
        let Some(controls) = &self.screen else {
            return Ok(());
        };
        controls.replace(None)?;
        self.send(ClientMessage::SetRoomScreen {
            conversation_id: self.conversation_id,
            sharing: false,
        });
        tracing::info!(conversation_id = %self.conversation_id, "screen share stopped");
        Ok(())
    }

    fn send(&self, message: ClientMessage) {
        // A closed channel means the room already ended, which `ended` reports.
        let _ = self.outgoing.send(message);
    }

    /// Waits until this device leaves the room for any reason.
    pub async fn ended(&mut self) -> RoomEnd {
        match (&mut self.task).await {
            Ok(end) => end,
            Err(_) => RoomEnd::SignalLost,
        }
    }

    /// Leaves the room and closes the media session.
    pub async fn leave(self) -> RoomEnd {
        self.send(ClientMessage::LeaveRoom {
            conversation_id: self.conversation_id,
        });
        let end = match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(RoomEnd::Removed(_))) | Err(_) => RoomEnd::Left,
            Ok(Ok(end)) => end,
            Ok(Err(_)) => RoomEnd::SignalLost,
        };
        self.peer.close().await;
        end
    }
}

async fn wait_joined(
    signal: &mut SignalConnection,
    conversation_id: ConversationId,
) -> Result<(RoomParticipantId, String, Roster)> {
    let mut roster = Roster::default();
    loop {
        match signal.recv().await.ok_or(ClientError::Disconnected)? {
            ServerMessage::RoomJoined {
                conversation_id: id,
                participant_id,
                sdp,
            } if id == conversation_id => return Ok((participant_id, sdp, roster)),
            ServerMessage::RoomState {
                conversation_id: id,
                participants,
                active_speaker,
                ..
            } if id == conversation_id => {
                roster = Roster {
                    participants,
                    active_speaker,
                };
            }
            ServerMessage::Error {
                code,
                message,
                conversation_id: Some(id),
                ..
            } if id == conversation_id => return Err(ClientError::Server { code, message }),
            other => tracing::debug!(?other, "ignoring a frame while joining the call"),
        }
    }
}

async fn wait_connected(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> Result<()> {
    loop {
        match events.recv().await {
            Some(PeerEvent::Connected) => return Ok(()),
            Some(PeerEvent::Failed | PeerEvent::Closed) | None => {
                return Err(ClientError::CallEnded(
                    "the media connection to the server's SFU failed; check that UDP to the \
                     server is allowed"
                        .into(),
                ));
            }
            Some(_) => {}
        }
    }
}

/// Sends video in the codec the SFU names for the room, so that every
/// participant can decode it. A name this engine does not know leaves the
/// negotiated codec in place.
fn follow_room_codec(switch: &VideoCodecSwitch, name: Option<&str>) {
    let codec = name.and_then(|name| {
        let codec = VideoCodec::from_mime_type(name);
        if codec.is_none() {
            tracing::warn!(
                codec = name,
                "the room asks for a video codec this engine cannot send"
            );
        }
        codec
    });
    switch.set(codec);
}

/// Answers the SFU's offers, follows the roster and sends video in the
/// room's codec until the room ends.
async fn follow(
    mut signal: SignalConnection,
    conversation_id: ConversationId,
    answerer: Answerer,
    codec_switch: VideoCodecSwitch,
    mut events: mpsc::UnboundedReceiver<PeerEvent>,
    roster: watch::Sender<Roster>,
    mut outgoing: mpsc::UnboundedReceiver<ClientMessage>,
) -> RoomEnd {
    loop {
        tokio::select! {
            frame = signal.recv() => {
                let Some(frame) = frame else { return RoomEnd::SignalLost };
                match frame {
                    ServerMessage::RoomOffer { conversation_id: id, sdp } if id == conversation_id => {
                        match answerer.accept_offer(&sdp).await {
                            Ok(answer) => {
                                if signal.send(ClientMessage::RoomAnswer { conversation_id, sdp: answer }).is_err() {
                                    return RoomEnd::SignalLost;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot answer the SFU's offer; leaving the call");
                                let _ = signal.send(ClientMessage::LeaveRoom { conversation_id });
                                return RoomEnd::MediaFailed;
                            }
                        }
                    }
                    ServerMessage::RoomState { conversation_id: id, participants, active_speaker, video_codec } if id == conversation_id => {
                        roster.send_replace(Roster { participants, active_speaker });
                        follow_room_codec(&codec_switch, video_codec.as_deref());
                    }
                    ServerMessage::RoomLeft { conversation_id: id, reason } if id == conversation_id => {
                        return RoomEnd::Removed(reason);
                    }
                    other => tracing::debug!(?other, "ignoring a frame during the call"),
                }
            }
            message = outgoing.recv() => {
                if let Some(message) = message
                    && signal.send(message).is_err()
                {
                    return RoomEnd::SignalLost;
                }
            }
            event = events.recv() => {
                match event {
                    Some(PeerEvent::Failed | PeerEvent::Closed) | None => {
                        let _ = signal.send(ClientMessage::LeaveRoom { conversation_id });
                        return RoomEnd::MediaFailed;
                    }
                    Some(event) => tracing::debug!(?event, "media connection event"),
                }
            }
        }
    }
}
