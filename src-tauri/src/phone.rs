//! Call control for the app: one task per session owns the call signalling,
//! rings for incoming calls, places, accepts, declines and hangs up, and
//! reports every change as a [`CallState`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_client::call::{self, ActiveCall, CallEnd, CallOptions, IncomingCall};
use hearth_client::session::{ConnectionState, Session};
use hearth_client::signal::SignalConnection;
use hearth_media::audio::InputLevel;
use hearth_media::screen::SourceId;
use hearth_media::{RemoteSinks, SendMedia};
use hearth_proto::chat::ConversationId;
use hearth_proto::signal::CallMedia;
use hearth_proto::{RoomParticipantId, ServerMessage};
use tauri::AppHandle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{ErrorCode, UiError, UiResult};
use crate::events::{CallChanged, emit};
use crate::media::{CallMediaSettings, MediaSession, Preview};
use crate::video::{VideoHub, VideoStream};
use crate::views::{CallState, EndReason, Quality};

/// How long after a call ends its end screen stays before the state goes idle.
const ENDED_LINGER: Duration = Duration::from_secs(3);

pub(crate) enum Command {
    Place {
        peer: String,
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    },
    Accept {
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    },
    Decline,
    HangUp,
    SetMuted(bool),
    SetCamera(bool),
    /// The user picked other devices or noise suppression during a call.
    Switch(CallMediaSettings),
    TestSpeaker,
    JoinRoom {
        conversation_id: ConversationId,
        title: String,
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    },
    ShareScreen {
        source: SourceId,
        done: oneshot::Sender<UiResult<()>>,
    },
    StopScreenShare,
    /// Adds `user` to the one-to-one call: a group of the three is created
    /// and the call moves into its group call.
    AddToCall {
        user: String,
        done: oneshot::Sender<UiResult<()>>,
    },
    /// The page shows a group call participant's video at this size in
    /// device pixels; a zero size means it no longer shows it.
    View {
        participant_id: RoomParticipantId,
        width: u32,
        height: u32,
    },
}

impl Command {
    /// Rejects a command that cannot run in the current state with `err`.
    /// Commands without an answer are dropped.
    pub(crate) fn reject(self, err: UiError) {
        match self {
            Command::Place { done, .. }
            | Command::Accept { done, .. }
            | Command::JoinRoom { done, .. }
            | Command::ShareScreen { done, .. }
            | Command::AddToCall { done, .. } => {
                let _ = done.send(Err(err));
            }
            _ => {}
        }
    }
}

/// The app's phone: attached to the signed-in session.
pub struct Phone {
    handle: AppHandle,
    video: Arc<VideoHub>,
    media_settings: Arc<Mutex<CallMediaSettings>>,
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    state: Arc<Mutex<CallState>>,
    preview: Arc<Mutex<Preview>>,
    /// The call's microphone level, while a call has one.
    call_level: Arc<Mutex<Option<InputLevel>>>,
}

impl Phone {
    pub fn new(handle: AppHandle, video: Arc<VideoHub>) -> Self {
        Self {
            handle,
            video,
            media_settings: Arc::new(Mutex::new(CallMediaSettings::default())),
            commands: Mutex::new(None),
            task: Mutex::new(None),
            state: Arc::new(Mutex::new(CallState::Idle)),
            preview: Arc::new(Mutex::new(Preview::default())),
            call_level: Arc::new(Mutex::new(None)),
        }
    }

    fn in_call(&self) -> bool {
        !matches!(self.state(), CallState::Idle | CallState::Ended { .. })
    }

    /// Shows the camera preview of the settings page, unless a call shows
    /// the self view already.
    pub fn show_preview(&self, source: &crate::profile::VideoSource) -> UiResult<()> {
        if self.in_call() {
            return Ok(());
        }
        lock(&self.preview).show_video(source, &self.video)
    }

    pub fn hide_preview(&self) {
        if !self.in_call() {
            lock(&self.preview).hide_video(&self.video);
        }
    }

    /// Returns the microphone level for the settings meter. During a call it
    /// reads the call's microphone rather than opening the device twice.
    pub fn mic_level(&self, device: Option<&str>) -> UiResult<f64> {
        if self.in_call() {
            let level = lock(&self.call_level).as_ref().map(InputLevel::dbfs);
            return Ok(f64::from(
                level.unwrap_or(hearth_media::audio::SILENCE_DBFS),
            ));
        }
        let preview = Arc::clone(&self.preview);
        let level = lock(&preview).microphone_level(device);
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            lock(&preview).close_idle();
        });
        level
    }

    /// Plays the speaker test: during a call on the call's speaker, else on
    /// `device`, blocking until the sound ends.
    pub fn test_speaker(&self, device: Option<&str>) -> UiResult<()> {
        if self.in_call() {
            return self.send(Command::TestSpeaker);
        }
        crate::media::test_speaker(device)
    }

    /// Applies new device settings; during a call they switch at once.
    pub fn switch_devices(&self, settings: CallMediaSettings) {
        self.set_media_settings(settings.clone());
        if self.in_call() {
            let _ = self.send(Command::Switch(settings));
        }
    }

    pub fn state(&self) -> CallState {
        lock(&self.state).clone()
    }

    /// Sets the sources and devices the next call uses.
    pub fn set_media_settings(&self, settings: CallMediaSettings) {
        *lock(&self.media_settings) = settings;
    }

    pub fn attach(&self, session: Session) {
        self.detach();
        let (commands, receiver) = mpsc::unbounded_channel();
        let actor = Actor {
            handle: self.handle.clone(),
            session,
            video: Arc::clone(&self.video),
            media_settings: Arc::clone(&self.media_settings),
            commands: receiver,
            state: Arc::clone(&self.state),
            preview: Arc::clone(&self.preview),
            call_level: Arc::clone(&self.call_level),
        };
        *lock(&self.commands) = Some(commands);
        *lock(&self.task) = Some(tokio::spawn(actor.run()));
    }

    pub fn detach(&self) {
        lock(&self.commands).take();
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        *lock(&self.state) = CallState::Idle;
        self.video.clear(VideoStream::Remote);
    }

    fn send(&self, command: Command) -> UiResult<()> {
        lock(&self.commands)
            .as_ref()
            .ok_or_else(|| UiError::code(ErrorCode::NotSignedIn))?
            .send(command)
            .map_err(|_| UiError::code(ErrorCode::NotSignedIn))
    }

    pub async fn place(&self, peer: String, video: bool) -> UiResult<()> {
        let (done, result) = oneshot::channel();
        self.send(Command::Place { peer, video, done })?;
        result
            .await
            .map_err(|_| UiError::code(ErrorCode::CallFailed))?
    }

    pub async fn accept(&self, video: bool) -> UiResult<()> {
        let (done, result) = oneshot::channel();
        self.send(Command::Accept { video, done })?;
        result
            .await
            .map_err(|_| UiError::code(ErrorCode::CallFailed))?
    }

    pub fn decline(&self) -> UiResult<()> {
        self.send(Command::Decline)
    }

    pub fn hang_up(&self) -> UiResult<()> {
        self.send(Command::HangUp)
    }

    pub fn set_muted(&self, muted: bool) -> UiResult<()> {
        self.send(Command::SetMuted(muted))
    }

    pub fn set_camera(&self, on: bool) -> UiResult<()> {
        self.send(Command::SetCamera(on))
    }

    /// Joins a conversation's group call and returns once the SFU sent its
    /// SDP answer.
    pub async fn join_room(
        &self,
        conversation_id: ConversationId,
        title: String,
        video: bool,
    ) -> UiResult<()> {
        let (done, result) = oneshot::channel();
        self.send(Command::JoinRoom {
            conversation_id,
            title,
            video,
            done,
        })?;
        result
            .await
            .map_err(|_| UiError::code(ErrorCode::CallFailed))?
    }

    /// Shares a screen or window in the group call.
    pub async fn share_screen(&self, source: SourceId) -> UiResult<()> {
        let (done, result) = oneshot::channel();
        self.send(Command::ShareScreen { source, done })?;
        result
            .await
            .map_err(|_| UiError::code(ErrorCode::CallFailed))?
    }

    pub fn stop_screen_share(&self) -> UiResult<()> {
        self.send(Command::StopScreenShare)
    }

    /// Adds `user` to the connected one-to-one call, which moves into the
    /// group call of a new group of the three. Returns once the server
    /// agreed to the move.
    pub async fn add_to_call(&self, user: String) -> UiResult<()> {
        let (done, result) = oneshot::channel();
        self.send(Command::AddToCall { user, done })?;
        result
            .await
            .map_err(|_| UiError::code(ErrorCode::CallFailed))?
    }

    /// Records the size at which the page shows a participant, which the
    /// SFU uses to pick a simulcast layer. Outside a group call it does nothing.
    pub fn report_view(&self, participant_id: RoomParticipantId, width: u32, height: u32) {
        let _ = self.send(Command::View {
            participant_id,
            width,
            height,
        });
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) struct Actor {
    handle: AppHandle,
    pub(crate) session: Session,
    pub(crate) video: Arc<VideoHub>,
    pub(crate) media_settings: Arc<Mutex<CallMediaSettings>>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    state: Arc<Mutex<CallState>>,
    pub(crate) preview: Arc<Mutex<Preview>>,
    pub(crate) call_level: Arc<Mutex<Option<InputLevel>>>,
}

/// What ended a wait for the next call.
enum Idle {
    Incoming(SignalConnection, IncomingCall),
    Place(
        SignalConnection,
        String,
        bool,
        oneshot::Sender<UiResult<()>>,
    ),
    Room {
        signal: SignalConnection,
        conversation_id: ConversationId,
        title: String,
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    },
    Lost,
    Stopped,
}

impl Actor {
    pub(crate) fn set(&self, state: CallState) {
        *lock(&self.state) = state.clone();
        emit(&self.handle, CallChanged(state));
    }

    async fn run(mut self) {
        loop {
            let signal = match self.signal().await {
                Some(signal) => signal,
                None => return,
            };
            match self.idle(signal).await {
                Idle::Incoming(signal, incoming) => self.ring(signal, incoming).await,
                Idle::Place(signal, peer, video, done) => {
                    self.call(signal, peer, video, done).await;
                }
                Idle::Room {
                    signal,
                    conversation_id,
                    title,
                    video,
                    done,
                } => {
                    self.room(signal, conversation_id, title, video, done).await;
                }
                Idle::Lost => {}
                Idle::Stopped => return,
            }
        }
    }

    /// Waits until the session is online and takes its call signalling.
    async fn signal(&mut self) -> Option<SignalConnection> {
        let mut state = self.session.watch_state();
        loop {
            if *state.borrow_and_update() == ConnectionState::Online
                && let Ok(signal) = self.session.call_signal()
            {
                return Some(signal);
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return None; },
                command = self.commands.recv() => match command {
                    None => return None,
                    Some(command) => reject_offline(command),
                },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn idle(&mut self, mut signal: SignalConnection) -> Idle {
        loop {
            tokio::select! {
                incoming = call::wait_for_incoming(&mut signal) => return match incoming {
                    Ok(incoming) => Idle::Incoming(signal, incoming),
                    Err(_) => Idle::Lost,
                },
                command = self.commands.recv() => match command {
                    None => return Idle::Stopped,
                    Some(Command::Place { peer, video, done }) => {
                        return Idle::Place(signal, peer, video, done);
                    }
                    Some(Command::JoinRoom { conversation_id, title, video, done }) => {
                        return Idle::Room { signal, conversation_id, title, video, done };
                    }
                    Some(Command::Accept { done, .. }) => {
                        let _ = done.send(Err(UiError::new(ErrorCode::CallFailed, "no call is ringing")));
                    }
                    Some(command @ Command::ShareScreen { .. }) => {
                        command.reject(UiError::new(ErrorCode::CallFailed, "no group call is running"));
                    }
                    Some(command @ Command::AddToCall { .. }) => {
                        command.reject(UiError::new(ErrorCode::CallFailed, "no call is connected"));
                    }
                    Some(_) => {}
                },
            }
        }
    }

    /// An incoming call rings until the user answers, the caller cancels or
    /// the connection drops.
    async fn ring(&mut self, mut signal: SignalConnection, incoming: IncomingCall) {
        let video = incoming.media == CallMedia::Video;
        let caller = incoming.caller.clone();
        if let Err(err) = signal.send(hearth_proto::ClientMessage::Ringing {
            call_id: incoming.call_id,
        }) {
            tracing::warn!(error = %err, "cannot report ringing");
        }
        crate::notify::incoming_call(&self.handle, &caller, video);
        self.set(CallState::Incoming {
            caller: caller.clone(),
            video,
        });
        loop {
            tokio::select! {
                message = signal.recv() => match message {
                    Some(ServerMessage::Cancelled { call_id, .. }) if call_id == incoming.call_id => {
                        self.end(&caller, EndReason::Missed, None).await;
                        return;
                    }
                    Some(_) => {}
                    None => {
                        self.end(&caller, EndReason::ConnectionLost, None).await;
                        return;
                    }
                },
                command = self.commands.recv() => match command {
                    None => return,
                    Some(Command::Accept { video: with_video, done }) => {
                        self.set(CallState::Connecting { peer: caller.clone(), video: with_video });
                        let (options, media) = self.prepare(with_video);
                        let result = match media {
                            Ok(media) => call::answer_call(signal, &incoming, options)
                                .await
                                .map(|call| (call, media))
                                .map_err(UiError::from),
                            Err(err) => {
                                let _ = call::decline(&signal, &incoming, Some(err.to_string()));
                                Err(err)
                            }
                        };
                        match result {
                            Ok((call, media)) => {
                                let _ = done.send(Ok(()));
                                self.in_call(call, media, with_video).await;
                            }
                            Err(err) => {
                                self.end(&caller, EndReason::Failed, err.detail.clone()).await;
                                let _ = done.send(Err(err));
                            }
                        }
                        return;
                    }
                    Some(Command::Decline) => {
                        let _ = call::decline(&signal, &incoming, None);
                        self.end(&caller, EndReason::Declined, None).await;
                        return;
                    }
                    Some(command @ (Command::Place { .. } | Command::JoinRoom { .. } | Command::ShareScreen { .. } | Command::AddToCall { .. })) => {
                        command.reject(UiError::code(ErrorCode::Busy));
                    }
                    Some(_) => {}
                },
            }
        }
    }

    async fn call(
        &mut self,
        signal: SignalConnection,
        peer: String,
        video: bool,
        done: oneshot::Sender<UiResult<()>>,
    ) {
        let (options, media) = self.prepare(video);
        let media = match media {
            Ok(media) => media,
            Err(err) => {
                let _ = done.send(Err(err));
                return;
            }
        };
        self.set(CallState::Outgoing {
            peer: peer.clone(),
            video,
        });
        // The command returns once the call rings; the outcome arrives as state.
        let _ = done.send(Ok(()));
        let placed = tokio::select! {
            placed = call::place_call(signal, &peer, options) => placed,
            () = self.wait_for_cancel() => {
                self.end(&peer, EndReason::LocalHangUp, None).await;
                return;
            }
        };
        match placed {
            Ok(call) => self.in_call(call, media, video).await,
            Err(hearth_client::ClientError::Declined { .. }) => {
                self.end(&peer, EndReason::Declined, None).await;
            }
            Err(hearth_client::ClientError::Timeout { .. }) => {
                self.end(&peer, EndReason::Missed, None).await;
            }
            Err(err) => {
                let err = UiError::from(err);
                self.end(&peer, EndReason::Failed, err.detail).await;
            }
        }
    }

    /// Resolves when the user hangs up while the call rings. Dropping the
    /// ringing call closes its signalling, which the server records as missed.
    pub(crate) async fn wait_for_cancel(&mut self) {
        loop {
            match self.commands.recv().await {
                Some(Command::HangUp) | None => return,
                Some(
                    command @ (Command::Place { .. }
                    | Command::Accept { .. }
                    | Command::JoinRoom { .. }
                    | Command::ShareScreen { .. }
                    | Command::AddToCall { .. }),
                ) => command.reject(UiError::code(ErrorCode::Busy)),
                Some(_) => {}
            }
        }
    }

    fn prepare(&self, video: bool) -> (CallOptions, UiResult<MediaSession>) {
        let settings = lock(&self.media_settings).clone();
        lock(&self.preview).close(&self.video);
        let (remote_video, remote_frames) = mpsc::channel(4);
        let (remote_audio, remote_samples) = mpsc::channel(64);
        let options = CallOptions {
            send: SendMedia { video, audio: true },
            sinks: RemoteSinks {
                video: Some(remote_video),
                audio: Some(remote_audio),
                streams: None,
            },
            ..CallOptions::default()
        };
        let media =
            MediaSession::open(&settings, video, Arc::clone(&self.video)).map(|mut media| {
                media.play_call(remote_frames, remote_samples);
                media
            });
        (options, media)
    }

    async fn in_call(&mut self, mut call: ActiveCall, mut media: MediaSession, video: bool) {
        let peer = call.remote_user.clone();
        if let Err(err) = media.start(&mut call.peer).await {
            tracing::warn!(error = %err, "cannot start sending media");
            media.warning = Some(err);
        }
        *lock(&self.call_level) = media.input_level();
        let mut talking = media
            .talking_while_muted()
            .unwrap_or_else(|| tokio::sync::watch::channel(false).1);
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_millis() as f64);
        let mut view = ConnectedView {
            muted: false,
            camera_on: video,
            quality: Quality::Good,
            talking_while_muted: false,
        };
        let connected = |view: &ConnectedView, media: &MediaSession| CallState::Connected {
            peer: peer.clone(),
            video,
            started_at_ms,
            muted: view.muted,
            camera_on: view.camera_on,
            quality: view.quality,
            talking_while_muted: view.talking_while_muted,
            warning: media.warning.clone().or_else(|| media.device_warning()),
        };
        self.set(connected(&view, &media));
        let mut ended = call.end_watcher();
        let mut moving = call.moving();
        let mut moving_open = true;
        let mut quality_tick = tokio::time::interval(Duration::from_secs(2));
        let reason = loop {
            tokio::select! {
                end = ended.wait() => break match end {
                    CallEnd::RemoteHangUp => EndReason::RemoteHangUp,
                    CallEnd::LocalHangUp => EndReason::LocalHangUp,
                    CallEnd::MediaFailed => EndReason::Failed,
                    CallEnd::SignalLost => EndReason::ConnectionLost,
                },
                // Once the call's signalling ended, `ended` reports why.
                changed = moving.changed(), if moving_open => {
                    moving_open = changed.is_ok();
                    let moved_to = *moving.borrow_and_update();
                    if let Some(conversation_id) = moved_to {
                        let controls = crate::room::ControlsAtStart {
                            video,
                            muted: view.muted,
                            camera_on: view.camera_on,
                        };
                        self.follow_move(call, media, conversation_id, controls).await;
                        return;
                    }
                    continue;
                }
                command = self.commands.recv() => match command {
                    None | Some(Command::HangUp) => break EndReason::LocalHangUp,
                    Some(Command::AddToCall { user, done }) => {
                        let result = self.add_to_call(&call, user).await;
                        let _ = done.send(result);
                        continue;
                    }
                    Some(Command::SetMuted(value)) => {
                        view.muted = value;
                        media.set_muted(value);
                    }
                    Some(Command::SetCamera(value)) => {
                        view.camera_on = value && video;
                        media.set_camera(view.camera_on);
                    }
                    Some(command @ (Command::Place { .. } | Command::Accept { .. } | Command::JoinRoom { .. } | Command::ShareScreen { .. })) => {
                        command.reject(UiError::code(ErrorCode::Busy));
                        continue;
                    }
                    Some(Command::Switch(settings)) => {
                        media.warning = media.switch(settings).err();
                    }
                    Some(Command::TestSpeaker) => {
                        media.test_speaker();
                        continue;
                    }
                    Some(Command::Decline | Command::StopScreenShare | Command::View { .. }) => continue,
                },
                changed = talking.changed() => {
                    if changed.is_err() {
                        // Sending stopped; keep the hint off from now on.
                        talking = tokio::sync::watch::channel(false).1;
                    }
                    view.talking_while_muted = *talking.borrow_and_update();
                }
                _ = quality_tick.tick() => view.quality = media.quality(&call.peer),
            }
            self.set(connected(&view, &media));
        };
        *lock(&self.call_level) = None;
        media.stop();
        if reason == EndReason::LocalHangUp {
            if let Err(err) = call.hang_up().await {
                tracing::warn!(error = %err, "the hang-up did not finish cleanly");
            }
        } else {
            call.peer.close().await;
        }
        self.end(&peer, reason, None).await;
    }

    /// Creates a group of this user, the call's peer and `user`, and moves
    /// the call into its group call.
    async fn add_to_call(&self, call: &ActiveCall, user: String) -> UiResult<()> {
        let me = self.session.user().to_owned();
        let peer = call.remote_user.clone();
        if user == me || user == peer {
            return Err(UiError::new(
                ErrorCode::InvalidInput,
                format!("{user} is in the call already; pick someone else"),
            ));
        }
        let name = format!("{me}, {peer}, {user}");
        let group = self.session.create_group(&name, &[peer, user]).await?;
        tracing::info!(conversation_id = %group.id, "moving the call into a new group's call");
        call.move_to_room(group.id).await?;
        Ok(())
    }

    pub(crate) async fn end(&mut self, peer: &str, reason: EndReason, detail: Option<String>) {
        self.video.clear(VideoStream::Remote);
        self.set(CallState::Ended {
            peer: peer.to_owned(),
            reason,
            detail,
        });
        tokio::time::sleep(ENDED_LINGER).await;
        if matches!(*lock(&self.state), CallState::Ended { .. }) {
            self.set(CallState::Idle);
        }
    }
}

/// What the call view shows of a connected call, besides the fixed facts.
struct ConnectedView {
    muted: bool,
    camera_on: bool,
    quality: Quality,
    talking_while_muted: bool,
}

fn reject_offline(command: Command) {
    command.reject(UiError::code(ErrorCode::Unreachable));
}
