//! Live sending: encode whatever the current sources deliver until the peer
//! closes, following mute, camera off and source changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::audio::{AudioProcessor, EchoReference, MutedTalkDetector, ProcessingConfig};
use crate::codec::opus::{DEFAULT_OPUS_BITRATE_BPS, OpusEncoder, is_dtx_packet};
use crate::codec::{
    DEFAULT_BITRATE_BPS, VideoCodec, VideoEncoder, VideoEncoderConfig, new_video_encoder,
};
use crate::error::{MediaError, Result};
use crate::fec::FecTuner;
use crate::frame::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::live::{AudioFeed, VideoFeed};
use crate::send::AudioTrack;
pub(crate) use crate::send::VideoTrack;
use crate::send::{
    RtpAudioWriter, RtpVideoWriter, SIMULCAST_BITRATE_SHARES, SimulcastLayers, VIDEO_CLOCK_RATE,
    audio_level, encode_off_thread, watch_keyframe_requests, watch_layer_keyframe_requests,
};
use crate::stats::StatsCounters;

/// Maximum frame rate sent; a faster source has its extra frames skipped.
const MAX_FPS: f64 = 30.0;

/// The sources to start a live call with. A missing source sends nothing of
/// that kind until [`LiveControls::replace_video`] or
/// [`LiveControls::replace_audio`] provides one.
pub struct LiveSend {
    pub video: Option<VideoFeed>,
    pub audio: Option<AudioFeed>,
    pub video_bitrate_bps: u32,
    /// Echo cancellation, noise suppression and gain control of the audio
    /// feed; `None` encodes the feed as it is, for example a prepared file.
    pub audio_processing: Option<ProcessingConfig>,
    /// The local speaker's played audio: the far end that echo
    /// cancellation removes from the microphone.
    pub echo_reference: Option<EchoReference>,
}

impl Default for LiveSend {
    fn default() -> Self {
        Self {
            video: None,
            audio: None,
            video_bitrate_bps: DEFAULT_BITRATE_BPS,
            audio_processing: None,
            echo_reference: None,
        }
    }
}

/// A change to live audio sending, applied between two frames.
enum AudioChange {
    Feed(Option<AudioFeed>),
    Processing(ProcessingConfig),
    /// Boxed, because the reference's resampler is large.
    EchoReference(Option<Box<EchoReference>>),
}

/// Switches shared by the controls and the send tasks.
#[derive(Debug)]
struct Switches {
    muted: AtomicBool,
    video_enabled: AtomicBool,
}

/// Controls of a live call's sending. Cloning gives another handle to the
/// same call. Every change applies within one frame (20 ms of audio, one
/// video frame) and needs no renegotiation.
#[derive(Clone)]
pub struct LiveControls {
    switches: Arc<Switches>,
    video_sources: Option<mpsc::UnboundedSender<Option<VideoFeed>>>,
    audio_changes: Option<mpsc::UnboundedSender<AudioChange>>,
    talking_while_muted: watch::Receiver<bool>,
}

impl std::fmt::Debug for LiveControls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveControls")
            .field("switches", &self.switches)
            .field("sends_video", &self.video_sources.is_some())
            .field("sends_audio", &self.audio_changes.is_some())
            .finish()
    }
}

impl LiveControls {
    /// Mutes or unmutes the microphone. While muted, the audio feed is still
    /// read and processed, so a microphone never backs up and voice activity
    /// is still detected, but no audio RTP packet is sent.
    pub fn set_muted(&self, muted: bool) {
        self.switches.muted.store(muted, Ordering::Relaxed);
        tracing::debug!(muted, "microphone mute changed");
    }

    pub fn is_muted(&self) -> bool {
        self.switches.muted.load(Ordering::Relaxed)
    }

    /// Turns the camera on or off. While off, the video feed is still read but
    /// no video frame is encoded or sent.
    pub fn set_video_enabled(&self, enabled: bool) {
        self.switches
            .video_enabled
            .store(enabled, Ordering::Relaxed);
        tracing::debug!(enabled, "camera enabled changed");
    }

    pub fn is_video_enabled(&self) -> bool {
        self.switches.video_enabled.load(Ordering::Relaxed)
    }

    /// Sends pictures from `feed` from now on, starting with a keyframe.
    /// `None` stops sending video until the next replacement.
    pub fn replace_video(&self, feed: Option<VideoFeed>) -> Result<()> {
        let sources = self
            .video_sources
            .as_ref()
            .ok_or(MediaError::NotSending { kind: "video" })?;
        sources
            .send(feed)
            .map_err(|_| MediaError::SendingStopped { kind: "video" })
    }

    /// Sends sound from `feed` from now on. The old feed is dropped, which
    /// stops a [`loop_wav`](super::loop_wav) player. `None` stops sending
    /// audio until the next replacement.
    pub fn replace_audio(&self, feed: Option<AudioFeed>) -> Result<()> {
        self.change_audio(AudioChange::Feed(feed))
    }

    /// Changes the audio processing from the next frame on, for example to
    /// turn noise suppression on or off. A call started without processing
    /// starts it.
    pub fn set_audio_processing(&self, config: ProcessingConfig) -> Result<()> {
        self.change_audio(AudioChange::Processing(config))
    }

    /// Uses another speaker's played audio as the echo reference, after a
    /// speaker change; `None` stops feeding the echo canceller.
    pub fn replace_echo_reference(&self, reference: Option<EchoReference>) -> Result<()> {
        self.change_audio(AudioChange::EchoReference(reference.map(Box::new)))
    }

    /// Returns a receiver that is `true` while voice activity detection
    /// hears someone talking into the muted microphone. It needs audio
    /// processing, and stays `false` without it.
    pub fn talking_while_muted(&self) -> watch::Receiver<bool> {
        self.talking_while_muted.clone()
    }

    fn change_audio(&self, change: AudioChange) -> Result<()> {
        let changes = self
            .audio_changes
            .as_ref()
            .ok_or(MediaError::NotSending { kind: "audio" })?;
        changes
            .send(change)
            .map_err(|_| MediaError::SendingStopped { kind: "audio" })
    }
}

/// Starts a send task for each track and returns the controls and the tasks.
/// Starts the live send tasks. With `layers` the camera goes out as
/// simulcast, each layer half the size of the one above.
pub(crate) fn spawn_live(
    video: Option<VideoTrack>,
    layers: Option<SimulcastLayers>,
    audio: Option<AudioTrack>,
    send: LiveSend,
    stats: Arc<StatsCounters>,
) -> Result<(LiveControls, Vec<JoinHandle<()>>)> {
    if send.video.is_some() && video.is_none() {
        return Err(MediaError::NotSending { kind: "video" });
    }
    if send.audio.is_some() && audio.is_none() {
        return Err(MediaError::NotSending { kind: "audio" });
    }
    let switches = Arc::new(Switches {
        muted: AtomicBool::new(false),
        video_enabled: AtomicBool::new(true),
    });
    let mut tasks = Vec::new();

    let video_sources = match video {
        Some(track) => {
            let (sources, replacements) = mpsc::unbounded_channel();
            let sender = LiveVideoSender::new(
                track,
                layers,
                EncoderTuning {
                    bitrate_bps: send.video_bitrate_bps,
                    max_fps: MAX_FPS,
                },
                Arc::clone(&switches),
                Arc::clone(&stats),
            );
            tasks.push(tokio::spawn(sender.run(send.video, replacements)));
            Some(sources)
        }
        None => None,
    };
    let (talking_tx, talking_while_muted) = watch::channel(false);
    let audio_changes = match audio {
        Some(track) => {
            let (changes, receiver) = mpsc::unbounded_channel();
            let processor = send.audio_processing.map(AudioProcessor::new).transpose()?;
            let sender = LiveAudioSender {
                fec: FecTuner::new(Arc::clone(&track.sender), track.ssrc, Arc::clone(&stats)),
                writer: RtpAudioWriter::new(track, stats),
                encoder: OpusEncoder::new(DEFAULT_OPUS_BITRATE_BPS)?,
                processor,
                echo_reference: send.echo_reference,
                muted_talk: MutedTalkDetector::default(),
                talking_while_muted: talking_tx,
                switches: Arc::clone(&switches),
                frame_index: 0,
                far_end: Vec::new(),
                processed: Vec::new(),
            };
            tasks.push(tokio::spawn(sender.run(send.audio, receiver)));
            Some(changes)
        }
        None => None,
    };

    let controls = LiveControls {
        switches,
        video_sources,
        audio_changes,
        talking_while_muted,
    };
    Ok((controls, tasks))
}

/// The encoder settings of one live video track.
#[derive(Debug, Clone, Copy)]
struct EncoderTuning {
    bitrate_bps: u32,
    /// Frames per second sent at most; rate control assumes this rate.
    max_fps: f64,
}

/// One encoding of the live camera: the whole picture, or one simulcast layer.
struct LiveLayer {
    writer: RtpVideoWriter,
    keyframe_requested: Arc<AtomicBool>,
    /// The encoder and the frame size it was created for.
    encoder: Option<(Box<dyn VideoEncoder>, (usize, usize))>,
    bitrate_bps: u32,
}

struct LiveVideoSender {
    /// The encodings, top layer first; one without simulcast.
    layers: Vec<LiveLayer>,
    tuning: EncoderTuning,
    switches: Arc<Switches>,
    rtp_timestamp_base: u32,
    started_at: Instant,
}

impl LiveVideoSender {
    fn new(
        track: VideoTrack,
        simulcast: Option<SimulcastLayers>,
        tuning: EncoderTuning,
        switches: Arc<Switches>,
        stats: Arc<StatsCounters>,
    ) -> Self {
        let layers = match simulcast {
            Some(simulcast) if !simulcast.layers.is_empty() => {
                let mut flags = Vec::new();
                let layers = simulcast
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(index, (rid, ssrc))| {
                        let share = SIMULCAST_BITRATE_SHARES
                            .get(index)
                            .copied()
                            .unwrap_or(SIMULCAST_BITRATE_SHARES[2]);
                        let keyframe_requested = Arc::new(AtomicBool::new(false));
                        flags.push((*ssrc, Arc::clone(&keyframe_requested)));
                        let layer_track = VideoTrack {
                            ssrc: *ssrc,
                            ..track.clone()
                        };
                        LiveLayer {
                            writer: RtpVideoWriter::new(layer_track, Arc::clone(&stats))
                                .with_stream_ids(simulcast.mid.clone(), rid.clone()),
                            keyframe_requested,
                            encoder: None,
                            bitrate_bps: (f64::from(tuning.bitrate_bps) * share) as u32,
                        }
                    })
                    .collect();
                tokio::spawn(watch_layer_keyframe_requests(
                    Arc::clone(&track.track),
                    flags,
                    Arc::clone(&stats),
                ));
                layers
            }
            _ => {
                let keyframe_requested = Arc::new(AtomicBool::new(false));
                tokio::spawn(watch_keyframe_requests(
                    Arc::clone(&track.track),
                    Arc::clone(&keyframe_requested),
                    Arc::clone(&stats),
                ));
                vec![LiveLayer {
                    writer: RtpVideoWriter::new(track, stats),
                    keyframe_requested,
                    encoder: None,
                    bitrate_bps: tuning.bitrate_bps,
                }]
            }
        };
        Self {
            layers,
            tuning,
            switches,
            rtp_timestamp_base: rand::random(),
            started_at: Instant::now(),
        }
    }

    /// Sends each new frame of the current feed, at most `tuning.max_fps` a
    /// second, until the task is aborted.
    async fn run(
        mut self,
        mut feed: Option<VideoFeed>,
        mut replacements: mpsc::UnboundedReceiver<Option<VideoFeed>>,
    ) {
        let min_interval = Duration::from_secs_f64(1.0 / self.tuning.max_fps);
        let mut next_allowed = tokio::time::Instant::now();
        if let Some(feed) = &mut feed {
            feed.mark_changed();
        }
        let mut controls_open = true;
        let mut failures = FailureLog::default();

        loop {
            tokio::select! {
                replacement = replacements.recv(), if controls_open => {
                    match replacement {
                        Some(mut replacement) => {
                            if let Some(new_feed) = &mut replacement {
                                new_feed.mark_changed();
                            }
                            feed = replacement;
                            for layer in &self.layers {
                                layer.keyframe_requested.store(true, Ordering::Relaxed);
                            }
                            tracing::debug!(has_feed = feed.is_some(), "video source replaced");
                        }
                        None => controls_open = false,
                    }
                    continue;
                }
                changed = feed_changed(&mut feed) => {
                    if changed.is_err() {
                        tracing::debug!("video source ended");
                        feed = None;
                        continue;
                    }
                }
            }

            tokio::time::sleep_until(next_allowed).await;
            next_allowed = tokio::time::Instant::now() + min_interval;
            if !self.switches.video_enabled.load(Ordering::Relaxed) {
                continue;
            }
            let Some(frame) = feed
                .as_mut()
                .and_then(|feed| feed.borrow_and_update().clone())
            else {
                continue;
            };
            let result = self.send_frame(frame).await;
            failures.record("video", result);
        }
    }

    async fn send_frame(&mut self, frame: Arc<VideoFrame>) -> Result<()> {
        if frame.width == 0
            || frame.height == 0
            || frame.data.len() < VideoFrame::i420_len(frame.width, frame.height)
        {
            let detail = format!(
                "a {}x{} frame of {} bytes is not a complete I420 picture",
                frame.width,
                frame.height,
                frame.data.len()
            );
            return Err(match self.layers[0].writer.codec() {
                VideoCodec::H264 => MediaError::H264Encode(detail),
                VideoCodec::Vp8 => MediaError::Vp8Encode(detail),
            });
        }
        // All layers carry the timestamp of the moment the frame was taken.
        let elapsed = self.started_at.elapsed().as_secs_f64();
        let timestamp = self
            .rtp_timestamp_base
            .wrapping_add((elapsed * f64::from(VIDEO_CLOCK_RATE)) as u64 as u32);
        // Two temporal layers let the SFU halve a simulcast layer's frame
        // rate; a single encoding goes to one peer, where they only cost.
        let temporal_layers = if self.layers.len() > 1 { 2 } else { 1 };
        let mut frame = frame;
        for index in 0..self.layers.len() {
            if index > 0 {
                frame = Arc::new(frame.half());
            }
            let layer = &mut self.layers[index];
            layer
                .send(Arc::clone(&frame), self.tuning, temporal_layers, timestamp)
                .await?;
        }
        Ok(())
    }
}

impl LiveLayer {
    /// Encodes one frame of this layer's size and sends it.
    async fn send(
        &mut self,
        frame: Arc<VideoFrame>,
        tuning: EncoderTuning,
        temporal_layers: u8,
        timestamp: u32,
    ) -> Result<()> {
        let size = (frame.width, frame.height);
        if self.writer.follow_codec() {
            self.encoder = None;
        }
        let mut encoder = match self.encoder.take() {
            Some((encoder, encoder_size)) if encoder_size == size => encoder,
            _ => {
                // A new encoder starts with a keyframe that carries the new size.
                // NOTE: rate control assumes `max_fps`, so a slower source (a
                // 12 fps file) is sent below the configured bitrate.
                tracing::debug!(
                    width = size.0,
                    height = size.1,
                    "creating the video encoder"
                );
                new_video_encoder(
                    self.writer.codec(),
                    VideoEncoderConfig {
                        bitrate_bps: self.bitrate_bps,
                        max_fps: tuning.max_fps as f32,
                        keyframe_interval: 0,
                        threads: 0,
                        temporal_layers,
                        ..VideoEncoderConfig::default()
                    },
                )?
            }
        };
        if self.keyframe_requested.swap(false, Ordering::Relaxed) {
            encoder.request_keyframe();
        }
        let (encoder, encoded) = encode_off_thread(encoder, frame).await;
        self.encoder = Some((encoder, size));
        let Some(encoded) = encoded? else {
            return Ok(());
        };
        self.writer.write_frame(timestamp, encoded).await
    }
}

/// Settings of a screen share: its own video track, tuned for detail. Text
/// stays sharp because the share is sent at full resolution without
/// simulcast, at a low frame rate that leaves each picture many bits. The
/// encoders' screen content modes stay off (see
/// [`VideoEncoderConfig::screen_content`]).
#[derive(Debug, Clone, Copy)]
pub struct ScreenSendConfig {
    pub bitrate_bps: u32,
    /// Frames per second sent at most.
    pub max_fps: f64,
}

/// The default screen share bitrate: the target at which H.264 reached
/// 47 dB luma PSNR on 1080p text scrolling 4 rows per frame at 10 fps in
/// `hearth-screen-bench`, spending about 1.6 Mbit/s of it. At 1 Mbit/s it
/// reached 36 dB.
pub const DEFAULT_SCREEN_BITRATE_BPS: u32 = 2_500_000;
/// The default screen share frame rate.
pub const DEFAULT_SCREEN_FPS: f64 = 10.0;

impl Default for ScreenSendConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: DEFAULT_SCREEN_BITRATE_BPS,
            max_fps: DEFAULT_SCREEN_FPS,
        }
    }
}

/// Starts and stops a screen share on its track without renegotiation.
/// Cloning gives another handle to the same share.
#[derive(Debug, Clone)]
pub struct ScreenControls {
    sources: mpsc::UnboundedSender<Option<VideoFeed>>,
}

impl ScreenControls {
    /// Sends pictures from `feed` from now on, starting with a keyframe, or
    /// stops sending with `None`. A stopped share sends no RTP at all.
    pub fn replace(&self, feed: Option<VideoFeed>) -> Result<()> {
        self.sources
            .send(feed)
            .map_err(|_| MediaError::SendingStopped { kind: "screen" })
    }
}

/// Starts the send task of a screen share track, which sends nothing until
/// a feed arrives through the returned controls.
pub(crate) fn spawn_screen(
    track: VideoTrack,
    config: ScreenSendConfig,
    stats: Arc<StatsCounters>,
) -> Result<(ScreenControls, JoinHandle<()>)> {
    if !(config.max_fps.is_finite() && config.max_fps > 0.0 && config.max_fps <= MAX_FPS) {
        return Err(MediaError::InvalidConfig(format!(
            "screen share frame rate {} is out of range; use more than 0 and at most {MAX_FPS}",
            config.max_fps
        )));
    }
    let switches = Arc::new(Switches {
        muted: AtomicBool::new(false),
        video_enabled: AtomicBool::new(true),
    });
    // A share has one encoding at full resolution: no simulcast.
    let sender = LiveVideoSender::new(
        track,
        None,
        EncoderTuning {
            bitrate_bps: config.bitrate_bps,
            max_fps: config.max_fps,
        },
        switches,
        stats,
    );
    let (sources, replacements) = mpsc::unbounded_channel();
    let task = tokio::spawn(sender.run(None, replacements));
    Ok((ScreenControls { sources }, task))
}

/// Waits until the feed has a frame not seen yet; never returns without a feed.
async fn feed_changed(
    feed: &mut Option<VideoFeed>,
) -> std::result::Result<(), tokio::sync::watch::error::RecvError> {
    match feed {
        Some(feed) => feed.changed().await,
        None => std::future::pending().await,
    }
}

struct LiveAudioSender {
    writer: RtpAudioWriter,
    encoder: OpusEncoder,
    fec: FecTuner,
    processor: Option<AudioProcessor>,
    echo_reference: Option<EchoReference>,
    muted_talk: MutedTalkDetector,
    talking_while_muted: watch::Sender<bool>,
    switches: Arc<Switches>,
    /// Index of the next 20 ms frame, counting frames not sent.
    frame_index: u64,
    far_end: Vec<f32>,
    processed: Vec<f32>,
}

impl LiveAudioSender {
    /// Processes the feed's samples, regroups them into 20 ms frames and
    /// sends each as one Opus packet unless muted or silent (DTX), until the
    /// task is aborted.
    async fn run(
        mut self,
        mut feed: Option<AudioFeed>,
        mut changes: mpsc::UnboundedReceiver<AudioChange>,
    ) {
        let mut pending: Vec<f32> = Vec::with_capacity(2 * AUDIO_FRAME_SAMPLES);
        let mut controls_open = true;
        let mut failures = FailureLog::default();

        loop {
            tokio::select! {
                change = changes.recv(), if controls_open => {
                    match change {
                        Some(AudioChange::Feed(replacement)) => {
                            feed = replacement;
                            pending.clear();
                            tracing::debug!(has_feed = feed.is_some(), "audio source replaced");
                        }
                        Some(AudioChange::Processing(config)) => self.set_processing(config),
                        Some(AudioChange::EchoReference(reference)) => {
                            self.echo_reference = reference.map(|reference| *reference);
                        }
                        None => controls_open = false,
                    }
                }
                samples = next_samples(&mut feed) => match samples {
                    Some(samples) => {
                        let result = self.process(&samples, &mut pending);
                        failures.record("audio", result);
                    }
                    None => {
                        tracing::debug!("audio source ended");
                        feed = None;
                        pending.clear();
                    }
                },
            }

            while pending.len() >= AUDIO_FRAME_SAMPLES {
                let frame: Vec<f32> = pending.drain(..AUDIO_FRAME_SAMPLES).collect();
                let frame_index = self.frame_index;
                self.frame_index += 1;
                if self.switches.muted.load(Ordering::Relaxed) {
                    continue;
                }
                let result = self.send_frame(frame_index, &frame).await;
                failures.record("audio", result);
            }
        }
    }

    fn set_processing(&mut self, config: ProcessingConfig) {
        match &mut self.processor {
            Some(processor) => processor.set_config(config),
            None => match AudioProcessor::new(config) {
                Ok(processor) => self.processor = Some(processor),
                Err(err) => tracing::warn!(error = %err, "cannot start audio processing"),
            },
        }
    }

    /// Runs the capture processing over `samples` and appends the result to
    /// `pending`; without processing the samples pass unchanged.
    fn process(&mut self, samples: &[f32], pending: &mut Vec<f32>) -> Result<()> {
        self.far_end.clear();
        if let Some(reference) = &mut self.echo_reference {
            reference.take(&mut self.far_end)?;
        }
        let Some(processor) = &mut self.processor else {
            pending.extend_from_slice(samples);
            return Ok(());
        };
        processor.push_far_end(&self.far_end)?;
        self.processed.clear();
        processor.process_capture(samples, &mut self.processed)?;
        pending.extend_from_slice(&self.processed);

        let muted = self.switches.muted.load(Ordering::Relaxed);
        let mut talking = self.muted_talk.is_talking();
        for &probability in processor.chunk_voice_probabilities() {
            talking = self.muted_talk.update(probability, muted);
        }
        self.talking_while_muted.send_if_modified(|current| {
            let changed = *current != talking;
            *current = talking;
            changed
        });
        Ok(())
    }

    async fn send_frame(&mut self, frame_index: u64, frame: &[f32]) -> Result<()> {
        self.fec.update(&mut self.encoder).await?;
        let packet = self.encoder.encode(frame)?;
        if is_dtx_packet(&packet) {
            return Ok(());
        }
        let level = audio_level(frame);
        self.writer.write_frame(frame_index, packet, level).await
    }
}

/// Receives the next samples; never returns without a feed.
async fn next_samples(feed: &mut Option<AudioFeed>) -> Option<Vec<f32>> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}

/// Logs failed sends without flooding the log: a track that is not bound yet
/// or a closed connection fails every frame, so only the 1st, 2nd, 4th, 8th
/// and so on failure in a row is logged.
#[derive(Default)]
struct FailureLog {
    in_a_row: u64,
}

impl FailureLog {
    fn record(&mut self, kind: &'static str, result: Result<()>) {
        match result {
            Ok(()) => {
                if self.in_a_row > 0 {
                    tracing::debug!(kind, failures = self.in_a_row, "live sending recovered");
                }
                self.in_a_row = 0;
            }
            Err(err) => {
                self.in_a_row += 1;
                if self.in_a_row.is_power_of_two() {
                    tracing::warn!(kind, failures = self.in_a_row, error = %err, "sending a live frame failed");
                }
            }
        }
    }
}
