//! Live sending: encode whatever the current sources deliver until the peer
//! closes, following mute, camera off and source changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::codec::opus::{DEFAULT_OPUS_BITRATE_BPS, OpusEncoder};
use crate::codec::{
    DEFAULT_BITRATE_BPS, VideoCodec, VideoEncoder, VideoEncoderConfig, new_video_encoder,
};
use crate::error::{MediaError, Result};
use crate::frame::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::live::{AudioFeed, VideoFeed};
pub(crate) use crate::send::VideoTrack;
use crate::send::{RtpVideoWriter, VIDEO_CLOCK_RATE, encode_off_thread, watch_keyframe_requests};
use crate::stats::{StatsCounters, add};

/// Maximum frame rate sent; a faster source has its extra frames skipped.
const MAX_FPS: f64 = 30.0;
const AUDIO_FRAME_DURATION: Duration = Duration::from_millis(20);

/// The sources to start a live call with. A missing source sends nothing of
/// that kind until [`LiveControls::replace_video`] or
/// [`LiveControls::replace_audio`] provides one.
pub struct LiveSend {
    pub video: Option<VideoFeed>,
    pub audio: Option<AudioFeed>,
    pub video_bitrate_bps: u32,
}

impl Default for LiveSend {
    fn default() -> Self {
        Self {
            video: None,
            audio: None,
            video_bitrate_bps: DEFAULT_BITRATE_BPS,
        }
    }
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
#[derive(Debug, Clone)]
pub struct LiveControls {
    switches: Arc<Switches>,
    video_sources: Option<mpsc::UnboundedSender<Option<VideoFeed>>>,
    audio_sources: Option<mpsc::UnboundedSender<Option<AudioFeed>>>,
}

impl LiveControls {
    /// Mutes or unmutes the microphone. While muted, the audio feed is still
    /// read, so a microphone never backs up, but no audio RTP packet is sent.
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
        let sources = self
            .audio_sources
            .as_ref()
            .ok_or(MediaError::NotSending { kind: "audio" })?;
        sources
            .send(feed)
            .map_err(|_| MediaError::SendingStopped { kind: "audio" })
    }
}

/// A negotiated local audio track.
pub(crate) struct AudioTrack {
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub payload_type: u8,
}

/// Starts a send task for each track and returns the controls and the tasks.
pub(crate) fn spawn_live(
    video: Option<VideoTrack>,
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
                send.video_bitrate_bps,
                Arc::clone(&switches),
                Arc::clone(&stats),
            );
            tasks.push(tokio::spawn(sender.run(send.video, replacements)));
            Some(sources)
        }
        None => None,
    };
    let audio_sources = match audio {
        Some(track) => {
            let (sources, replacements) = mpsc::unbounded_channel();
            let encoder = OpusEncoder::new(DEFAULT_OPUS_BITRATE_BPS)?;
            let sender = LiveAudioSender {
                track,
                encoder,
                switches: Arc::clone(&switches),
                stats,
            };
            tasks.push(tokio::spawn(sender.run(send.audio, replacements)));
            Some(sources)
        }
        None => None,
    };

    let controls = LiveControls {
        switches,
        video_sources,
        audio_sources,
    };
    Ok((controls, tasks))
}

struct LiveVideoSender {
    writer: RtpVideoWriter,
    bitrate_bps: u32,
    switches: Arc<Switches>,
    keyframe_requested: Arc<AtomicBool>,
    /// The encoder and the frame size it was created for.
    encoder: Option<(Box<dyn VideoEncoder>, (usize, usize))>,
    rtp_timestamp_base: u32,
    started_at: Instant,
}

impl LiveVideoSender {
    fn new(
        track: VideoTrack,
        bitrate_bps: u32,
        switches: Arc<Switches>,
        stats: Arc<StatsCounters>,
    ) -> Self {
        let keyframe_requested = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_keyframe_requests(
            Arc::clone(&track.track),
            Arc::clone(&keyframe_requested),
            Arc::clone(&stats),
        ));
        Self {
            writer: RtpVideoWriter::new(track, stats),
            bitrate_bps,
            switches,
            keyframe_requested,
            encoder: None,
            rtp_timestamp_base: rand::random(),
            started_at: Instant::now(),
        }
    }

    /// Sends each new frame of the current feed, at most `MAX_FPS` a second,
    /// until the task is aborted.
    async fn run(
        mut self,
        mut feed: Option<VideoFeed>,
        mut replacements: mpsc::UnboundedReceiver<Option<VideoFeed>>,
    ) {
        let min_interval = Duration::from_secs_f64(1.0 / MAX_FPS);
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
                            self.keyframe_requested.store(true, Ordering::Relaxed);
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
        let size = (frame.width, frame.height);
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
            return Err(match self.writer.codec() {
                VideoCodec::H264 => MediaError::H264Encode(detail),
                VideoCodec::Vp8 => MediaError::Vp8Encode(detail),
            });
        }
        let mut encoder = match self.encoder.take() {
            Some((encoder, encoder_size)) if encoder_size == size => encoder,
            _ => {
                // A new encoder starts with a keyframe that carries the new size.
                // NOTE: rate control assumes MAX_FPS, so a slower source (a
                // 12 fps file) is sent below `video_bitrate_bps`.
                tracing::debug!(
                    width = size.0,
                    height = size.1,
                    "creating the video encoder"
                );
                new_video_encoder(
                    self.writer.codec(),
                    VideoEncoderConfig {
                        bitrate_bps: self.bitrate_bps,
                        max_fps: MAX_FPS as f32,
                        keyframe_interval: 0,
                        threads: 0,
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
        let elapsed = self.started_at.elapsed().as_secs_f64();
        let timestamp = self
            .rtp_timestamp_base
            .wrapping_add((elapsed * f64::from(VIDEO_CLOCK_RATE)) as u64 as u32);
        self.writer.write_frame(timestamp, encoded).await
    }
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
    track: AudioTrack,
    encoder: OpusEncoder,
    switches: Arc<Switches>,
    stats: Arc<StatsCounters>,
}

impl LiveAudioSender {
    /// Regroups the feed's samples into 20 ms frames and sends each as one
    /// Opus packet unless muted, until the task is aborted.
    async fn run(
        mut self,
        mut feed: Option<AudioFeed>,
        mut replacements: mpsc::UnboundedReceiver<Option<AudioFeed>>,
    ) {
        let mut pending: Vec<f32> = Vec::with_capacity(2 * AUDIO_FRAME_SAMPLES);
        let mut controls_open = true;
        let mut failures = FailureLog::default();

        loop {
            tokio::select! {
                replacement = replacements.recv(), if controls_open => {
                    match replacement {
                        Some(replacement) => {
                            feed = replacement;
                            pending.clear();
                            tracing::debug!(has_feed = feed.is_some(), "audio source replaced");
                        }
                        None => controls_open = false,
                    }
                }
                samples = next_samples(&mut feed) => match samples {
                    Some(samples) => pending.extend_from_slice(&samples),
                    None => {
                        tracing::debug!("audio source ended");
                        feed = None;
                        pending.clear();
                    }
                },
            }

            while pending.len() >= AUDIO_FRAME_SAMPLES {
                let frame: Vec<f32> = pending.drain(..AUDIO_FRAME_SAMPLES).collect();
                if self.switches.muted.load(Ordering::Relaxed) {
                    continue;
                }
                let result = self.send_frame(&frame).await;
                failures.record("audio", result);
            }
        }
    }

    // NOTE: the RTP timestamp advances 20 ms per sent packet, so after a mute
    // it continues where it stopped instead of jumping by the muted time.
    // Receivers that play out by sequence number, like this engine's, are
    // unaffected.
    async fn send_frame(&mut self, frame: &[f32]) -> Result<()> {
        let packet = self.encoder.encode(frame)?;
        let bytes = packet.len() as u64;
        let sample = Sample {
            data: Bytes::from(packet),
            duration: AUDIO_FRAME_DURATION,
            ..Sample::new(Instant::now())
        };
        self.track
            .track
            .sample_writer(self.track.ssrc, self.track.payload_type)
            .write_sample(&sample)
            .await?;
        add(&self.stats.audio_bytes_sent, bytes);
        add(&self.stats.audio_packets_sent, 1);
        Ok(())
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
