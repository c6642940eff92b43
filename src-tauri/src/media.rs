//! The media of one call: the camera or video file with its self view, the
//! microphone and speaker, the remote video to the page, mute, camera and
//! device changes, and the connection quality.

use std::path::PathBuf;
use std::sync::Arc;

use hearth_media::audio::{
    AudioError, CallDevices, DeviceKind, InputLevel, Microphone, NoiseSuppression,
    ProcessingConfig, Speaker,
};
use hearth_media::live::{LiveControls, LiveSend, LocalVideo, VideoFeed, VideoSource as Source};
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::stats::CallStats;
use hearth_media::{MediaError, MediaPeer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{ErrorCode, UiError, UiResult};
use crate::profile::{NoiseSuppressionMode, VideoSource};
use crate::video::{StreamKey, VideoHub, VideoStream};
use crate::views::Quality;

/// Video bitrate of a call, in bit/s.
const VIDEO_BITRATE_BPS: u32 = 1_200_000;

/// The sources and devices a call uses, from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMediaSettings {
    pub video_source: VideoSource,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub noise_suppression: NoiseSuppressionMode,
}

impl Default for CallMediaSettings {
    fn default() -> Self {
        Self {
            video_source: VideoSource::None,
            microphone: None,
            speaker: None,
            noise_suppression: NoiseSuppressionMode::default(),
        }
    }
}

impl CallMediaSettings {
    /// Echo cancellation with what the speaker plays, the chosen noise
    /// suppression and gain control.
    fn processing(&self) -> ProcessingConfig {
        ProcessingConfig {
            noise_suppression: match self.noise_suppression {
                NoiseSuppressionMode::Rnnoise => NoiseSuppression::Rnnoise,
                NoiseSuppressionMode::Apm => NoiseSuppression::Apm,
                NoiseSuppressionMode::Off => NoiseSuppression::Off,
            },
            ..ProcessingConfig::default()
        }
    }
}

/// Length of the speaker test's speech clip.
const SPEAKER_TEST_LENGTH: std::time::Duration = std::time::Duration::from_millis(2_500);
/// The recording the speaker test plays, inside `HEARTH_MEDIA_DIR`.
const SPEAKER_TEST_CLIP: &str = "speech/librivox_sense_and_sensibility_0890.wav";

/// Returns the speaker test sound as 48 kHz mono: the first seconds of a
/// speech recording from `HEARTH_MEDIA_DIR`, or `None` when it is not there,
/// so that the engine's test tone plays instead.
pub fn speaker_test_clip() -> Option<Vec<f32>> {
    let dir = std::env::var_os("HEARTH_MEDIA_DIR")?;
    let path = PathBuf::from(dir).join(SPEAKER_TEST_CLIP);
    match hearth_media::source::wav::load(&path) {
        Ok(clip) => {
            let length = (48_000.0 * SPEAKER_TEST_LENGTH.as_secs_f64()) as usize;
            Some(clip.samples.into_iter().take(length).collect())
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot load the speaker test clip");
            None
        }
    }
}

/// Plays the speaker test on `device` outside a call, blocking until it ends.
pub fn test_speaker(device: Option<&str>) -> UiResult<()> {
    let speaker = Speaker::start(device)?;
    let length = match speaker_test_clip() {
        Some(clip) => {
            speaker.play_clip(&clip)?;
            SPEAKER_TEST_LENGTH
        }
        None => {
            speaker.play_test_sound()?;
            std::time::Duration::from_millis(800)
        }
    };
    // The speaker stops when dropped, so it stays open until the sound ends.
    std::thread::sleep(length + std::time::Duration::from_millis(300));
    Ok(())
}

impl From<AudioError> for UiError {
    fn from(err: AudioError) -> Self {
        tracing::warn!(error = %err, "audio device error");
        match err {
            AudioError::NoDevice { kind } => match kind {
                hearth_media::audio::DeviceKind::Microphone => {
                    UiError::code(ErrorCode::NoMicrophone)
                }
                _ => UiError::new(ErrorCode::AudioDeviceFailed, kind.to_string()),
            },
            AudioError::DeviceNotFound { requested, .. } => {
                UiError::new(ErrorCode::AudioDeviceFailed, requested)
            }
            AudioError::DeviceBusy { device, .. } | AudioError::OpenFailed { device, .. } => {
                UiError::new(ErrorCode::AudioDeviceFailed, device)
            }
            other => UiError::new(ErrorCode::AudioDeviceFailed, other.to_string()),
        }
    }
}

/// Maps an error of the local video source to what the user can act on.
pub fn video_error(err: MediaError, path: Option<&str>) -> UiError {
    tracing::warn!(error = %err, "cannot use the video source");
    match err {
        MediaError::CameraMissing { id } => UiError::new(ErrorCode::CameraMissing, id),
        MediaError::CameraBusy { id } => UiError::new(ErrorCode::CameraBusy, id),
        MediaError::CameraFailed { id, .. } => UiError::new(ErrorCode::CameraBusy, id),
        other => match path {
            Some(path) => UiError::new(ErrorCode::VideoFileUnreadable, path),
            None => UiError::new(ErrorCode::CallFailed, other.to_string()),
        },
    }
}

/// Starts the local video source of the settings; `None` for no video.
pub fn open_video(source: &VideoSource) -> UiResult<Option<LocalVideo>> {
    match source {
        VideoSource::None => Ok(None),
        VideoSource::File { path } => LocalVideo::start(&Source::File(PathBuf::from(path)))
            .map(Some)
            .map_err(|err| video_error(err, Some(path))),
        VideoSource::Camera { id } => LocalVideo::start(&Source::Camera { id: id.clone() })
            .map(Some)
            .map_err(|err| video_error(err, None)),
    }
}

/// Checks that a video file can be used as the camera.
pub fn check_video_file(path: &str) -> UiResult<()> {
    open_video(&VideoSource::File {
        path: path.to_owned(),
    })
    .map(drop)
}

/// Copies a source's frames into a view of the page until aborted.
pub fn mirror(mut feed: VideoFeed, hub: &VideoHub, stream: impl Into<StreamKey>) -> JoinHandle<()> {
    let sender = hub.sender(stream);
    tokio::spawn(async move {
        loop {
            let frame = feed.borrow_and_update().clone();
            sender.send_replace(frame);
            if feed.changed().await.is_err() {
                return;
            }
        }
    })
}

pub struct MediaSession {
    settings: CallMediaSettings,
    video: Option<LocalVideo>,
    /// The microphone and speaker, which follow device changes by themselves.
    devices: Option<CallDevices>,
    hub: Arc<VideoHub>,
    self_view: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    controls: Option<LiveControls>,
    camera_on: bool,
    last_stats: Option<CallStats>,
    /// A device that could not be opened; the call goes on without it.
    pub warning: Option<UiError>,
}

impl MediaSession {
    /// Opens the sources before the call starts, so a missing camera or an
    /// unreadable file is reported before anyone is called. A missing
    /// microphone or speaker does not stop the call; it becomes a warning.
    /// Remote media plays once [`play_call`](Self::play_call) or the group
    /// call's forwarding hands it over.
    pub fn open(settings: &CallMediaSettings, video: bool, hub: Arc<VideoHub>) -> UiResult<Self> {
        let local_video = if video {
            open_video(&settings.video_source)?
        } else {
            None
        };
        let mut session = Self {
            settings: settings.clone(),
            video: local_video,
            devices: None,
            hub,
            self_view: None,
            tasks: Vec::new(),
            controls: None,
            camera_on: video,
            last_stats: None,
            warning: None,
        };
        match CallDevices::start(settings.microphone.as_deref(), settings.speaker.as_deref()) {
            Ok(devices) => session.devices = Some(devices),
            Err(err) => session.warning = Some(err.into()),
        }
        session.show_self_view();
        Ok(session)
    }

    /// Shows the remote video of a one-to-one call and plays its audio.
    pub fn play_call(
        &mut self,
        mut remote_video: mpsc::Receiver<DecodedVideo>,
        mut remote_audio: mpsc::Receiver<DecodedAudio>,
    ) {
        let remote = self.hub.sender(VideoStream::Remote);
        self.tasks.push(tokio::spawn(async move {
            while let Some(decoded) = remote_video.recv().await {
                remote.send_replace(Some(Arc::new(decoded.frame)));
            }
        }));
        if let Some(speaker) = self.speaker_input() {
            self.tasks.push(tokio::spawn(async move {
                while let Some(decoded) = remote_audio.recv().await {
                    // A full speaker queue drops audio rather than delay it.
                    let _ = speaker.try_send(decoded);
                }
            }));
        }
    }

    /// Returns the sender of audio to play, while a speaker is open.
    pub fn speaker_input(&self) -> Option<mpsc::Sender<DecodedAudio>> {
        self.devices.as_ref().map(CallDevices::speaker_input)
    }

    /// Keeps a task that belongs to the call; [`stop`](Self::stop) aborts it.
    pub fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Returns the size of the local camera's or video file's pictures,
    /// once the first one arrived.
    pub fn local_size(&self) -> Option<(u32, u32)> {
        let frame = self.video.as_ref()?.latest()?;
        Some((frame.width as u32, frame.height as u32))
    }

    /// Returns a warning when no microphone or speaker is open at the moment.
    pub fn device_warning(&self) -> Option<UiError> {
        let devices = self.devices.as_ref()?;
        let current = devices.current().borrow().clone();
        if !current.listed {
            // The device thread has not read the device lists yet.
            return None;
        }
        if current.microphone.is_none() {
            return Some(UiError::code(ErrorCode::NoMicrophone));
        }
        if current.speaker.is_none() {
            let detail = current.last_error.unwrap_or_else(|| "speaker".to_owned());
            return Some(UiError::new(ErrorCode::AudioDeviceFailed, detail));
        }
        None
    }

    /// Returns the microphone level for the settings meter during the call.
    pub fn input_level(&self) -> Option<InputLevel> {
        self.devices.as_ref().map(CallDevices::level)
    }

    /// Returns a receiver that is `true` while someone talks into the muted
    /// microphone, once sending started.
    pub fn talking_while_muted(&self) -> Option<watch::Receiver<bool>> {
        self.controls
            .as_ref()
            .map(LiveControls::talking_while_muted)
    }

    /// Plays the speaker test on the call's speaker, mixed over the call.
    pub fn test_speaker(&self) {
        let Some(devices) = &self.devices else {
            return;
        };
        match speaker_test_clip() {
            Some(clip) => devices.play_clip(clip),
            None => devices.play_test_sound(),
        }
    }

    fn show_self_view(&mut self) {
        if let Some(task) = self.self_view.take() {
            task.abort();
        }
        self.hub.clear(VideoStream::SelfView);
        if let Some(video) = &self.video
            && self.camera_on
        {
            self.self_view = Some(mirror(video.frames(), &self.hub, VideoStream::SelfView));
        }
    }

    /// Starts sending on the connected call. A second start, on the group
    /// call that a one-to-one call moves into, sends the same camera and
    /// microphone there too, muted as before, while the first call's peer
    /// keeps sending until it closes.
    pub async fn start(&mut self, peer: &mut MediaPeer) -> UiResult<()> {
        let audio = self
            .devices
            .as_mut()
            .map(|devices| devices.take_frames().unwrap_or_else(|| devices.add_feed()));
        let controls = peer
            .start_live(LiveSend {
                video: self.video.as_ref().map(LocalVideo::frames),
                audio,
                video_bitrate_bps: VIDEO_BITRATE_BPS,
                audio_processing: Some(self.settings.processing()),
                // `attach` below hands over the speaker's played audio.
                echo_reference: None,
            })
            .await?;
        if let Some(previous) = &self.controls {
            controls.set_muted(previous.is_muted());
            controls.set_video_enabled(previous.is_video_enabled());
        }
        if let Some(devices) = &self.devices {
            devices.attach(controls.clone());
        }
        self.controls = Some(controls);
        Ok(())
    }

    pub fn set_muted(&mut self, muted: bool) {
        if let Some(controls) = &self.controls {
            controls.set_muted(muted);
        }
    }

    pub fn set_camera(&mut self, on: bool) {
        self.camera_on = on;
        if let Some(controls) = &self.controls {
            controls.set_video_enabled(on);
        }
        self.show_self_view();
    }

    /// Switches the video source, the devices and the noise suppression
    /// during the call without renegotiating.
    pub fn switch(&mut self, settings: CallMediaSettings) -> UiResult<()> {
        if settings.video_source != self.settings.video_source && self.video.is_some() {
            let video = open_video(&settings.video_source)?;
            if let Some(controls) = &self.controls {
                controls.replace_video(video.as_ref().map(LocalVideo::frames))?;
            }
            self.video = video;
            self.show_self_view();
        }
        if let Some(devices) = &self.devices {
            if settings.microphone != self.settings.microphone {
                devices.prefer(DeviceKind::Microphone, settings.microphone.as_deref());
            }
            if settings.speaker != self.settings.speaker {
                devices.prefer(DeviceKind::Speaker, settings.speaker.as_deref());
            }
        }
        if settings.noise_suppression != self.settings.noise_suppression
            && let Some(controls) = &self.controls
        {
            controls.set_audio_processing(settings.processing())?;
        }
        self.settings = settings;
        Ok(())
    }

    /// Rates the connection from what arrived since the last call.
    pub fn quality(&mut self, peer: &MediaPeer) -> Quality {
        let now = peer.stats();
        let quality = match &self.last_stats {
            None => Quality::Good,
            Some(before) => rate(before, &now),
        };
        self.last_stats = Some(now);
        quality
    }

    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(task) = self.self_view.take() {
            task.abort();
        }
        self.hub.clear(VideoStream::SelfView);
        self.hub.clear(VideoStream::Remote);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Poor when nothing arrived or many frames were lost, fair with some loss.
fn rate(before: &CallStats, now: &CallStats) -> Quality {
    let packets = (now.video_packets_received + now.audio_packets_received)
        .saturating_sub(before.video_packets_received + before.audio_packets_received);
    let decoded = now
        .video_frames_decoded
        .saturating_sub(before.video_frames_decoded);
    let dropped = now
        .video_frames_dropped
        .saturating_sub(before.video_frames_dropped)
        + now
            .audio_packets_concealed
            .saturating_sub(before.audio_packets_concealed);
    if packets == 0 {
        return Quality::Poor;
    }
    let lost_share = dropped as f64 / (decoded + dropped).max(1) as f64;
    if lost_share > 0.15 {
        Quality::Poor
    } else if lost_share > 0.03 {
        Quality::Fair
    } else {
        Quality::Good
    }
}

/// The settings page's camera preview and microphone meter, outside calls.
#[derive(Default)]
pub struct Preview {
    video: Option<(LocalVideo, JoinHandle<()>)>,
    microphone: Option<(Microphone, std::time::Instant)>,
    /// When opening the meter's microphone last failed, and why. The meter
    /// polls several times a second, so a failure is not retried at once.
    failed: Option<(std::time::Instant, UiError)>,
}

/// The meter's microphone closes after this long without a reading.
const METER_IDLE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long after a failure the meter tries the microphone again.
const METER_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

impl Preview {
    pub fn show_video(&mut self, source: &VideoSource, hub: &VideoHub) -> UiResult<()> {
        self.hide_video(hub);
        if let Some(video) = open_video(source)? {
            let task = mirror(video.frames(), hub, VideoStream::SelfView);
            self.video = Some((video, task));
        }
        Ok(())
    }

    pub fn hide_video(&mut self, hub: &VideoHub) {
        if let Some((_, task)) = self.video.take() {
            task.abort();
            hub.clear(VideoStream::SelfView);
        }
    }

    /// Returns the microphone's level in dBFS, opening it on first use.
    pub fn microphone_level(&mut self, device: Option<&str>) -> UiResult<f64> {
        let reopen = self.microphone.as_ref().is_none_or(|(microphone, _)| {
            device.is_some_and(|device| device != microphone.device())
        });
        if reopen {
            self.microphone = None;
            if let Some((at, err)) = &self.failed
                && at.elapsed() < METER_RETRY
            {
                return Err(err.clone());
            }
            let mut microphone = match Microphone::start(device) {
                Ok(microphone) => microphone,
                Err(err) => {
                    let err = UiError::from(err);
                    self.failed = Some((std::time::Instant::now(), err.clone()));
                    return Err(err);
                }
            };
            self.failed = None;
            // The meter reads the level only; the frames are not needed.
            drop(microphone.take_frames());
            self.microphone = Some((microphone, std::time::Instant::now()));
        }
        let (microphone, polled) = self.microphone.as_mut().expect("opened above");
        *polled = std::time::Instant::now();
        Ok(f64::from(microphone.level().dbfs()))
    }

    /// Closes the meter's microphone when nobody read it lately.
    pub fn close_idle(&mut self) {
        if self
            .microphone
            .as_ref()
            .is_some_and(|(_, polled)| polled.elapsed() > METER_IDLE)
        {
            self.microphone = None;
        }
    }

    /// Closes everything, before a call opens the devices.
    pub fn close(&mut self, hub: &VideoHub) {
        self.hide_video(hub);
        self.microphone = None;
    }
}
