//! Group calls for the app: the phone's actor joins a conversation's call
//! through the server's SFU, shows every participant's video to the page,
//! mixes their audio for the speaker, shares a screen, and reports the call
//! as [`CallState::InRoom`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_client::ClientError;
use hearth_client::call::ActiveCall;
use hearth_client::room::{self, RoomCall, RoomEnd, RoomOptions, Roster};
use hearth_client::signal::SignalConnection;
use hearth_media::audio::StreamMixer;
use hearth_media::live::{DEFAULT_SCREEN_BITRATE_BPS, DEFAULT_SCREEN_FPS};
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::screen::SourceId;
use hearth_media::{
    PeerConfig, RemoteSinks, ScreenCapture, ScreenSendConfig, SendMedia, StreamSinks,
};
use hearth_proto::chat::ConversationId;
use hearth_proto::{RoomParticipantId, RoomView};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{ErrorCode, UiError, UiResult};
use crate::media::{MediaSession, mirror};
use crate::phone::{Actor, Command, lock};
use crate::video::{StreamKey, VideoHub, VideoStream};
use crate::views::{CallState, EndReason, Quality, RoomCallView, RoomMemberView};

/// Samples the mixer hands to the speaker at a time: 20 ms at 48 kHz.
const MIX_CHUNK_SAMPLES: usize = 960;
const MIX_INTERVAL: Duration = Duration::from_millis(20);

/// Settings of the microphone and camera switches when the room view starts.
pub(crate) struct ControlsAtStart {
    /// Whether this is a video call.
    pub video: bool,
    pub muted: bool,
    pub camera_on: bool,
}

/// This device's screen share: the capture, which must live while it is
/// shared, and the copy of its pictures into the page's large view.
struct Share {
    source: SourceId,
    _capture: ScreenCapture,
    preview: JoinHandle<()>,
}

/// The call view's state of the group call besides the roster: the
/// user's switches, the connection quality and the screen share.
struct Controls {
    muted: bool,
    camera_on: bool,
    quality: Quality,
    talking_while_muted: bool,
    share: Option<Share>,
    /// The size at which the page shows each participant's camera.
    views: BTreeMap<RoomParticipantId, (u32, u32)>,
}

impl Actor {
    /// Joins the group call of a conversation and stays in it until the
    /// user leaves or the call ends for this device.
    pub(crate) async fn room(
        &mut self,
        signal: SignalConnection,
        conversation_id: ConversationId,
        title: String,
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    ) {
        let settings = lock(&self.media_settings).clone();
        lock(&self.preview).close(&self.video);
        let mut media = match MediaSession::open(&settings, video, Arc::clone(&self.video)) {
            Ok(media) => media,
            Err(err) => {
                let _ = done.send(Err(err));
                return;
            }
        };

        self.set(CallState::Joining {
            conversation_id: conversation_id.to_string(),
            title: title.clone(),
            video,
        });
        let (options, remote) = room_options(video);

        let joined = tokio::select! {
            joined = room::join_room(signal, conversation_id, options) => joined,
            () = self.wait_for_cancel() => {
                media.stop();
                let _ = done.send(Ok(()));
                self.end(&title, EndReason::LocalHangUp, None).await;
                return;
            }
        };
        let mut call = match joined {
            Ok(call) => call,
            Err(err) => {
                tracing::warn!(%conversation_id, error = %err, "cannot join the group call");
                media.stop();
                self.set(CallState::Idle);
                let _ = done.send(Err(join_error(err)));
                return;
            }
        };
        let _ = done.send(Ok(()));

        self.play_remote(&mut media, remote);
        if let Err(err) = media.start(&mut call.peer).await {
            tracing::warn!(error = %err, "cannot start sending media to the group call");
            media.warning = Some(err);
        }
        *lock(&self.call_level) = media.input_level();

        let controls = ControlsAtStart {
            video,
            muted: false,
            camera_on: video,
        };
        let end = self.in_room(&mut call, &mut media, &title, controls).await;
        *lock(&self.call_level) = None;
        media.stop();
        let (reason, detail) = close_room(call, end).await;
        self.end(&title, reason, detail).await;
    }

    /// Moves a connected one-to-one call into the group call of
    /// `conversation_id`: joins it, sends the same camera and microphone
    /// there, keeps the call's own media playing until the room carries the
    /// other side's, and then stays in the room.
    pub(crate) async fn follow_move(
        &mut self,
        call: ActiveCall,
        mut media: MediaSession,
        conversation_id: ConversationId,
        controls: ControlsAtStart,
    ) {
        let video = controls.video;
        let peer = call.remote_user.clone();
        // The group may be new to this device; its name follows with the
        // conversation list, and the peer's name serves until then.
        let title = self
            .session
            .conversation(conversation_id)
            .ok()
            .and_then(|conversation| conversation.name)
            .unwrap_or_else(|| peer.clone());

        let (options, remote) = room_options(video);
        let mut moving = match call.join_moved_room(options).await {
            Ok(moving) => moving,
            Err(err) => {
                tracing::warn!(%conversation_id, error = %err, "cannot join the group call the call moves into");
                *lock(&self.call_level) = None;
                media.stop();
                self.end(&peer, EndReason::Failed, join_error(err).detail)
                    .await;
                return;
            }
        };

        self.play_remote(&mut media, remote);
        if let Err(err) = media.start(&mut moving.room().peer).await {
            tracing::warn!(error = %err, "cannot start sending media to the group call");
            media.warning = Some(err);
        }
        let mut call = match moving.finish().await {
            Ok(call) => call,
            Err(err) => {
                tracing::warn!(%conversation_id, error = %err, "the call could not move into the group call");
                *lock(&self.call_level) = None;
                media.stop();
                self.end(&peer, EndReason::Failed, Some(err.to_string()))
                    .await;
                return;
            }
        };

        self.video.clear(VideoStream::Remote);
        let end = self.in_room(&mut call, &mut media, &title, controls).await;
        *lock(&self.call_level) = None;
        media.stop();
        let (reason, detail) = close_room(call, end).await;
        self.end(&title, reason, detail).await;
    }

    /// Shows the other participants' cameras and shares, and plays their
    /// audio.
    fn play_remote(&self, media: &mut MediaSession, remote: RemoteMedia) {
        forward_video(media, &self.video, remote.video, StreamKey::Participant);
        forward_video(media, &self.video, remote.screen, StreamKey::Screen);
        forward_audio(media, remote.audio);
    }

    /// Follows the roster and the user's commands until the call ends.
    async fn in_room(
        &mut self,
        call: &mut RoomCall,
        media: &mut MediaSession,
        title: &str,
        at_start: ControlsAtStart,
    ) -> RoomEnd {
        let video = at_start.video;
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_millis() as f64);
        let mut roster = call.roster();
        let mut talking = media
            .talking_while_muted()
            .unwrap_or_else(|| tokio::sync::watch::channel(false).1);
        let mut controls = Controls {
            muted: at_start.muted,
            camera_on: at_start.camera_on,
            quality: Quality::Good,
            talking_while_muted: false,
            share: None,
            views: BTreeMap::new(),
        };

        call.set_media(controls.muted, !controls.camera_on, media.local_size());
        // The local video's size is known once its first picture arrived.
        let mut size_sent = media.local_size().is_some();
        let mut known_participants: BTreeSet<RoomParticipantId> = BTreeSet::new();
        let mut quality_tick = tokio::time::interval(Duration::from_secs(2));
        let base = RoomBase {
            conversation_id: call.conversation_id.to_string(),
            title: title.to_owned(),
            video,
            started_at_ms,
            self_id: call.participant_id,
        };

        let end = loop {
            tokio::select! {
                end = call.ended() => break end,
                changed = roster.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let current = roster.borrow_and_update().clone();
                    self.forget_departed(&mut known_participants, &current);
                }
                command = self.commands.recv() => match command {
                    None | Some(Command::HangUp) => break RoomEnd::Left,
                    Some(command) => {
                        self.room_command(call, media, &mut controls, command).await;
                    }
                },
                changed = talking.changed() => {
                    if changed.is_err() {
                        talking = tokio::sync::watch::channel(false).1;
                    }
                    controls.talking_while_muted = *talking.borrow_and_update();
                }
                _ = quality_tick.tick() => {
                    controls.quality = media.quality(&call.peer);
                    if !size_sent && let Some(size) = media.local_size() {
                        call.set_media(controls.muted, !controls.camera_on, Some(size));
                        size_sent = true;
                    }
                }
            }
            let view = base.view(&roster.borrow(), &controls, media);
            self.set(CallState::InRoom(view));
        };

        if let Some(share) = controls.share.take() {
            share.preview.abort();
        }
        self.video
            .clear(StreamKey::Screen(call.participant_id.to_string()));
        for id in known_participants {
            self.clear_participant(id);
        }
        end
    }

    async fn room_command(
        &mut self,
        call: &mut RoomCall,
        media: &mut MediaSession,
        controls: &mut Controls,
        command: Command,
    ) {
        match command {
            Command::SetMuted(muted) => {
                controls.muted = muted;
                media.set_muted(muted);
                call.set_media(muted, !controls.camera_on, media.local_size());
            }
            Command::SetCamera(on) => {
                controls.camera_on = on && media.local_size().is_some();
                media.set_camera(controls.camera_on);
                call.set_media(controls.muted, !controls.camera_on, media.local_size());
            }
            Command::ShareScreen { source, done } => {
                let result = self.share_screen(call, controls, source).await;
                let _ = done.send(result);
            }
            Command::StopScreenShare => {
                if let Some(share) = controls.share.take() {
                    share.preview.abort();
                    self.video
                        .clear(StreamKey::Screen(call.participant_id.to_string()));
                    if let Err(err) = call.stop_screen_share() {
                        tracing::warn!(error = %err, "cannot stop the screen share");
                    }
                    tracing::info!(source = %share.source, "screen share stopped");
                }
            }
            Command::View {
                participant_id,
                width,
                height,
            } => {
                if width == 0 || height == 0 {
                    controls.views.remove(&participant_id);
                } else {
                    controls.views.insert(participant_id, (width, height));
                }
                call.set_views(
                    controls
                        .views
                        .iter()
                        .map(|(&participant_id, &(width, height))| RoomView {
                            participant_id,
                            width,
                            height,
                        })
                        .collect(),
                );
            }
            Command::Switch(settings) => media.warning = media.switch(settings).err(),
            Command::TestSpeaker => media.test_speaker(),
            command @ (Command::Place { .. }
            | Command::Accept { .. }
            | Command::JoinRoom { .. }) => command.reject(UiError::code(ErrorCode::Busy)),
            command @ Command::AddToCall { .. } => command.reject(UiError::new(
                ErrorCode::InvalidInput,
                "add people to this group call's conversation; they can then join the call",
            )),
            Command::HangUp | Command::Decline => {}
        }
    }

    /// Starts capturing `source` and sends it as the call's screen share,
    /// replacing an earlier share of this call.
    async fn share_screen(
        &mut self,
        call: &mut RoomCall,
        controls: &mut Controls,
        source: SourceId,
    ) -> UiResult<()> {
        let capture =
            tokio::task::spawn_blocking(move || ScreenCapture::start(source, DEFAULT_SCREEN_FPS))
                .await
                .map_err(UiError::internal)??;
        let config = ScreenSendConfig {
            bitrate_bps: DEFAULT_SCREEN_BITRATE_BPS,
            max_fps: DEFAULT_SCREEN_FPS,
        };
        call.start_screen_share(capture.frames(), config).await?;
        let own_screen = StreamKey::Screen(call.participant_id.to_string());
        let preview = mirror(capture.frames(), &self.video, own_screen);
        if let Some(old) = controls.share.replace(Share {
            source,
            _capture: capture,
            preview,
        }) {
            old.preview.abort();
        }
        tracing::info!(%source, "screen share started");
        Ok(())
    }

    /// Clears the views of participants who left, so their last pictures
    /// do not linger, and records who is shown now.
    fn forget_departed(&self, known: &mut BTreeSet<RoomParticipantId>, roster: &Roster) {
        let present: BTreeSet<RoomParticipantId> =
            roster.participants.iter().map(|p| p.id).collect();
        for &id in known.difference(&present) {
            tracing::debug!(participant_id = id, "participant left the group call");
            self.clear_participant(id);
        }
        *known = present;
    }

    fn clear_participant(&self, id: RoomParticipantId) {
        self.video.clear(StreamKey::Participant(id.to_string()));
        self.video.clear(StreamKey::Screen(id.to_string()));
    }
}

/// The receivers of the other participants' decoded media.
struct RemoteMedia {
    video: mpsc::Receiver<(String, DecodedVideo)>,
    screen: mpsc::Receiver<(String, DecodedVideo)>,
    audio: mpsc::Receiver<(String, DecodedAudio)>,
}

/// Returns the settings of a join with the screen track reserved, and the
/// receivers of what the others send.
fn room_options(video: bool) -> (RoomOptions, RemoteMedia) {
    let (video_tx, video_rx) = mpsc::channel(64);
    let (screen_tx, screen_rx) = mpsc::channel(16);
    let (audio_tx, audio_rx) = mpsc::channel(512);
    let options = RoomOptions {
        // Simulcast lets the server send each participant the layer that
        // fits its tile and its bandwidth.
        peer: PeerConfig {
            screen_track: true,
            simulcast: true,
            ..PeerConfig::default()
        },
        send: SendMedia { video, audio: true },
        sinks: RemoteSinks {
            streams: Some(StreamSinks {
                video: video_tx,
                audio: audio_tx,
                screen: Some(screen_tx),
            }),
            ..RemoteSinks::default()
        },
    };
    let remote = RemoteMedia {
        video: video_rx,
        screen: screen_rx,
        audio: audio_rx,
    };
    (options, remote)
}

/// Leaves the room or closes what is left of it, and returns why the call
/// ended for the end screen.
async fn close_room(call: RoomCall, end: RoomEnd) -> (EndReason, Option<String>) {
    match end {
        RoomEnd::Left => {
            call.leave().await;
            (EndReason::LocalHangUp, None)
        }
        other => {
            // The room's task already ended, so `leave` would wait on it
            // again; only the media session needs closing.
            call.peer.close().await;
            match other {
                RoomEnd::Removed(reason) => (EndReason::Failed, Some(reason)),
                RoomEnd::SignalLost => (EndReason::ConnectionLost, None),
                _ => (EndReason::Failed, None),
            }
        }
    }
}

/// The facts of a group call that do not change while it runs.
struct RoomBase {
    conversation_id: String,
    title: String,
    video: bool,
    started_at_ms: f64,
    self_id: RoomParticipantId,
}

impl RoomBase {
    fn view(&self, roster: &Roster, controls: &Controls, media: &MediaSession) -> RoomCallView {
        RoomCallView {
            conversation_id: self.conversation_id.clone(),
            title: self.title.clone(),
            video: self.video,
            started_at_ms: self.started_at_ms,
            self_id: self.self_id.to_string(),
            participants: roster
                .participants
                .iter()
                .map(RoomMemberView::from)
                .collect(),
            active_speaker: roster.active_speaker.map(|id| id.to_string()),
            muted: controls.muted,
            camera_on: controls.camera_on,
            sharing: controls
                .share
                .as_ref()
                .map(|share| share.source.to_string()),
            quality: controls.quality,
            talking_while_muted: controls.talking_while_muted,
            warning: media.warning.clone().or_else(|| media.device_warning()),
        }
    }
}

/// Maps a failed join to what the user can act on: a refused join names
/// the reason, and a media connection that never came up points at the
/// network rather than at the call.
fn join_error(err: ClientError) -> UiError {
    match err {
        ClientError::Timeout { what, .. } => UiError::new(ErrorCode::MediaUnreachable, what),
        ClientError::CallEnded(reason) => UiError::new(ErrorCode::MediaUnreachable, reason),
        other => UiError::from(other),
    }
}

/// Shows each participant's decoded pictures in the page's view of
/// `key(participant id)`.
fn forward_video(
    media: &mut MediaSession,
    hub: &Arc<VideoHub>,
    mut frames: mpsc::Receiver<(String, DecodedVideo)>,
    key: fn(String) -> StreamKey,
) {
    let hub = Arc::clone(hub);
    media.add_task(tokio::spawn(async move {
        while let Some((participant, decoded)) = frames.recv().await {
            hub.sender(key(participant))
                .send_replace(Some(Arc::new(decoded.frame)));
        }
    }));
}

/// Mixes every participant's audio and plays it on the call's speaker, or
/// drops it when no speaker is open.
fn forward_audio(media: &mut MediaSession, mut audio: mpsc::Receiver<(String, DecodedAudio)>) {
    let Some(speaker) = media.speaker_input() else {
        media.add_task(tokio::spawn(async move {
            while audio.recv().await.is_some() {}
        }));
        return;
    };
    // NOTE: the mix is pulled on tokio's clock, not the speaker's, so a
    // drift between the two shows up as dropped samples in the mixer's
    // bounded queues rather than as growing delay.
    media.add_task(tokio::spawn(async move {
        let mut mixer = StreamMixer::new();
        let mut tick = tokio::time::interval(MIX_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut timestamp = 0u32;
        loop {
            tokio::select! {
                chunk = audio.recv() => match chunk {
                    Some((participant, decoded)) => mixer.push(&participant, &decoded.samples),
                    None => return,
                },
                _ = tick.tick() => {
                    let Some(samples) = mixer.pull(MIX_CHUNK_SAMPLES) else { continue };
                    timestamp = timestamp.wrapping_add(MIX_CHUNK_SAMPLES as u32);
                    // A full speaker queue drops audio rather than delay it.
                    let _ = speaker.try_send(DecodedAudio {
                        rtp_timestamp: timestamp,
                        samples,
                        received_at: Instant::now(),
                    });
                }
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use hearth_proto::ErrorCode as ServerCode;

    use super::*;

    #[test]
    fn join_timeout_points_at_the_network() {
        let err = join_error(ClientError::Timeout {
            what: "the media connection to the server".into(),
            seconds: 15,
        });
        assert_eq!(err.code, ErrorCode::MediaUnreachable);
        assert_eq!(
            err.detail.as_deref(),
            Some("the media connection to the server")
        );
    }

    #[test]
    fn join_by_non_member_is_not_member() {
        let err = join_error(ClientError::Server {
            code: ServerCode::NotMember,
            message: "you are not a member of this conversation".into(),
        });
        assert_eq!(err.code, ErrorCode::NotMember);
    }

    #[test]
    fn failed_sfu_connection_points_at_the_network() {
        let err = join_error(ClientError::CallEnded("the SFU failed".into()));
        assert_eq!(err.code, ErrorCode::MediaUnreachable);
    }
}
