//! The media of one call: the camera or video file with its self view, the
//! microphone and speaker, the remote video to the page, mute, camera and
//! device changes, and the connection quality.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hearth_client::call::ActiveCall;
use hearth_media::MediaError;
use hearth_media::audio::{AudioError, EchoReference, Microphone, ProcessingConfig, Speaker};
use hearth_media::live::{LiveControls, LiveSend, LocalVideo, VideoFeed, VideoSource as Source};
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::stats::CallStats;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{ErrorCode, UiError, UiResult};
use crate::profile::VideoSource;
use crate::video::{VideoHub, VideoStream};
use crate::views::Quality;

/// Video bitrate of a call, in bit/s.
const VIDEO_BITRATE_BPS: u32 = 1_200_000;

/// The sources and devices a call uses, from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMediaSettings {
    pub video_source: VideoSource,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

impl Default for CallMediaSettings {
    fn default() -> Self {
        Self {
            video_source: VideoSource::None,
            microphone: None,
            speaker: None,
        }
    }
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
pub fn mirror(mut feed: VideoFeed, hub: &VideoHub, stream: VideoStream) -> JoinHandle<()> {
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
    microphone: Option<Microphone>,
    speaker: Option<Speaker>,
    /// Where decoded remote audio goes: the open speaker's input.
    speaker_input: Arc<Mutex<Option<mpsc::Sender<DecodedAudio>>>>,
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
    pub fn open(
        settings: &CallMediaSettings,
        video: bool,
        mut remote_video: mpsc::Receiver<DecodedVideo>,
        mut remote_audio: mpsc::Receiver<DecodedAudio>,
        hub: Arc<VideoHub>,
    ) -> UiResult<Self> {
        let local_video = if video {
            open_video(&settings.video_source)?
        } else {
            None
        };
        let remote = hub.sender(VideoStream::Remote);
        let forward_video = tokio::spawn(async move {
            while let Some(decoded) = remote_video.recv().await {
                remote.send_replace(Some(Arc::new(decoded.frame)));
            }
        });
        let mut session = Self {
            settings: settings.clone(),
            video: local_video,
            microphone: None,
            speaker: None,
            speaker_input: Arc::new(Mutex::new(None)),
            hub,
            self_view: None,
            tasks: vec![forward_video],
            controls: None,
            camera_on: video,
            last_stats: None,
            warning: None,
        };
        session.open_speaker(settings.speaker.as_deref());
        let target = Arc::clone(&session.speaker_input);
        session.tasks.push(tokio::spawn(async move {
            while let Some(decoded) = remote_audio.recv().await {
                let speaker = lock(&target).clone();
                if let Some(speaker) = speaker {
                    // A full speaker queue drops audio rather than delay it.
                    let _ = speaker.try_send(decoded);
                }
            }
        }));
        session.open_microphone(settings.microphone.as_deref());
        session.show_self_view();
        Ok(session)
    }

    fn open_microphone(&mut self, device: Option<&str>) {
        match Microphone::start(device) {
            Ok(microphone) => self.microphone = Some(microphone),
            Err(err) => self.warning = Some(err.into()),
        }
    }

    fn open_speaker(&mut self, device: Option<&str>) {
        match Speaker::start(device) {
            Ok(speaker) => self.use_speaker(speaker),
            Err(err) => self.warning = Some(err.into()),
        }
    }

    fn use_speaker(&mut self, speaker: Speaker) {
        *lock(&self.speaker_input) = Some(speaker.sender());
        self.speaker = Some(speaker);
    }

    /// Returns the open speaker's played audio for echo cancellation.
    fn echo_reference(&self) -> Option<EchoReference> {
        let speaker = self.speaker.as_ref()?;
        match speaker.echo_reference() {
            Ok(reference) => Some(reference),
            Err(err) => {
                tracing::warn!(error = %err, "echo cancellation has no speaker reference");
                None
            }
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

    /// Starts sending on the connected call.
    pub async fn start(&mut self, call: &mut ActiveCall) -> UiResult<()> {
        let audio = self.microphone.as_mut().and_then(Microphone::take_frames);
        let controls = call
            .peer
            .start_live(LiveSend {
                video: self.video.as_ref().map(LocalVideo::frames),
                audio,
                video_bitrate_bps: VIDEO_BITRATE_BPS,
                // Echo cancellation with what the speaker plays, RNNoise and
                // gain control.
                audio_processing: Some(ProcessingConfig::default()),
                echo_reference: self.echo_reference(),
            })
            .await?;
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

    /// Switches devices during the call without renegotiating.
    pub fn switch(&mut self, settings: CallMediaSettings) -> UiResult<()> {
        if settings.video_source != self.settings.video_source && self.video.is_some() {
            let video = open_video(&settings.video_source)?;
            if let Some(controls) = &self.controls {
                controls.replace_video(video.as_ref().map(LocalVideo::frames))?;
            }
            self.video = video;
            self.show_self_view();
        }
        if settings.microphone != self.settings.microphone {
            let mut microphone = Microphone::start(settings.microphone.as_deref())?;
            if let Some(controls) = &self.controls {
                controls.replace_audio(microphone.take_frames())?;
            }
            self.microphone = Some(microphone);
        }
        if settings.speaker != self.settings.speaker {
            let speaker = Speaker::start(settings.speaker.as_deref())?;
            self.use_speaker(speaker);
            if let Some(controls) = &self.controls {
                controls.replace_echo_reference(self.echo_reference())?;
            }
        }
        self.settings = settings;
        Ok(())
    }

    /// Rates the connection from what arrived since the last call.
    pub fn quality(&mut self, call: &ActiveCall) -> Quality {
        let now = call.peer.stats();
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
