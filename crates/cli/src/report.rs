//! Recording received media and computing the call report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE, VideoFrame};
use hearth_media::quality::{best_lag, psnr_luma};
use hearth_media::record::{RecordingSummary, record};
use hearth_media::send::{AudioSendInfo, VideoSendInfo};
use hearth_media::source::VideoClip;
use hearth_media::source::wav::AudioClip;
use hearth_media::stats::CallStats;
use hearth_media::{RemoteSinks, VideoCodec};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Frame rate written into the Y4M header of recordings.
const RECORDING_FPS: u32 = 25;
/// Received speech compared against the sent speech for the delay estimate.
const DELAY_WINDOW_SECONDS: usize = 4;
/// Largest delay the estimate searches for.
const MAX_DELAY_SECONDS: usize = 1;

/// Creates the output folder and checks that a file can be written in it.
pub fn check_output_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    let probe = dir.join(".hearth-write-check");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write in the output folder {}", dir.display()))?;
    // The probe is empty and only proves the folder is writable.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Records what the peer decodes into a folder until `finish`.
pub struct Recorder {
    stop: oneshot::Sender<()>,
    task: JoinHandle<hearth_media::Result<RecordingSummary>>,
}

impl Recorder {
    pub fn start(dir: &Path) -> (RemoteSinks, Self) {
        let (video_tx, video_rx) = mpsc::channel(256);
        let (audio_tx, audio_rx) = mpsc::channel(1024);
        let (stop, stop_rx) = oneshot::channel();
        let dir = dir.to_owned();
        let task =
            tokio::spawn(
                async move { record(&dir, RECORDING_FPS, video_rx, audio_rx, stop_rx).await },
            );
        let sinks = RemoteSinks {
            video: Some(video_tx),
            audio: Some(audio_tx),
            streams: None,
        };
        (sinks, Self { stop, task })
    }

    pub async fn finish(self) -> anyhow::Result<RecordingSummary> {
        // The task may have stopped by itself when the channels closed.
        let _ = self.stop.send(());
        Ok(self.task.await.context("the recording task failed")??)
    }
}

/// The demo's report, written as `report.json`.
#[derive(Debug, Serialize)]
pub struct CallReport {
    pub video_file: PathBuf,
    pub audio_file: PathBuf,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    pub seconds: f64,
    pub target_video_kbps: u32,
    /// The negotiated video codec the caller sent.
    pub video_codec: VideoCodec,
    /// From the callee's accept to its first decoded video frame.
    pub setup_ms: f64,
    pub frames_sent: u64,
    pub frames_decoded: u64,
    pub decoded_ratio: f64,
    /// Mean luma PSNR of received frames against the sent frames with the same RTP timestamp.
    pub psnr_db_mean: f64,
    pub psnr_db_min: f64,
    pub audio_ms_sent: f64,
    pub audio_ms_received: f64,
    /// Network, reorder-buffer and decode delay of speech, by cross-correlation.
    pub audio_delay_ms: Option<f64>,
    pub audio_correlation: Option<f64>,
    pub video_kbps: f64,
    pub audio_kbps: f64,
    /// Index of the first sent frame that the callee decoded.
    pub first_decoded_frame: Option<usize>,
    pub keyframes_sent: u64,
    pub keyframe_requests: u64,
    pub video_decode_errors: u64,
    /// The packet loss the caller's Opus encoder sized its in-band FEC for
    /// at the end, in percent, from the callee's receiver reports.
    pub audio_fec_expected_loss_percent: u64,
    pub recorded_video: Option<PathBuf>,
    pub recorded_audio: Option<PathBuf>,
}

/// Media and counters of the caller, for comparison with what arrived.
pub struct Sent<'a> {
    pub video_file: &'a Path,
    pub audio_file: &'a Path,
    pub clip: &'a VideoClip,
    pub speech: &'a AudioClip,
    pub video: VideoSendInfo,
    pub audio: AudioSendInfo,
    pub stats: CallStats,
    pub seconds: f64,
    pub target_video_kbps: u32,
}

/// Media and counters of the callee.
pub struct Received {
    pub accepted_at: Instant,
    pub first_frame_at: Option<Instant>,
    pub stats: CallStats,
    pub recording: RecordingSummary,
}

pub fn build(sent: &Sent<'_>, received: &Received) -> anyhow::Result<CallReport> {
    let psnr = match &received.recording.video_path {
        Some(path) => recorded_psnr(path, &received.recording.video_timestamps, sent)?,
        None => Vec::new(),
    };
    let psnr_db_mean = mean(&psnr);
    let psnr_db_min = psnr.iter().copied().fold(f64::INFINITY, f64::min);
    let (audio_delay_ms, audio_correlation) = match audio_delay(sent, &received.recording) {
        Some((delay, score)) => (Some(delay), Some(score)),
        None => (None, None),
    };

    let frames_sent = sent.stats.video_frames_sent;
    let frames_decoded = received.stats.video_frames_decoded;
    Ok(CallReport {
        video_file: sent.video_file.to_owned(),
        audio_file: sent.audio_file.to_owned(),
        width: sent.clip.width(),
        height: sent.clip.height(),
        fps: sent.clip.fps,
        seconds: sent.seconds,
        target_video_kbps: sent.target_video_kbps,
        video_codec: sent.video.codec,
        setup_ms: received.first_frame_at.map_or(f64::NAN, |at| {
            millis(at.saturating_duration_since(received.accepted_at))
        }),
        frames_sent,
        frames_decoded,
        decoded_ratio: frames_decoded as f64 / frames_sent.max(1) as f64,
        psnr_db_mean,
        psnr_db_min: if psnr.is_empty() {
            f64::NAN
        } else {
            psnr_db_min
        },
        audio_ms_sent: (sent.audio.packet_count * AUDIO_FRAME_SAMPLES) as f64 * 1000.0
            / f64::from(AUDIO_RATE),
        audio_ms_received: received.recording.audio.len() as f64 * 1000.0 / f64::from(AUDIO_RATE),
        audio_delay_ms,
        audio_correlation,
        video_kbps: received.stats.video_kbps_received,
        audio_kbps: received.stats.audio_kbps_received,
        first_decoded_frame: received
            .recording
            .video_timestamps
            .first()
            .map(|&timestamp| sent.video.frame_index(timestamp)),
        keyframes_sent: sent.stats.video_keyframes_sent,
        keyframe_requests: received.stats.keyframe_requests_sent,
        video_decode_errors: received.stats.video_decode_errors,
        audio_fec_expected_loss_percent: sent.stats.audio_expected_loss_percent,
        recorded_video: received.recording.video_path.clone(),
        recorded_audio: received.recording.audio_path.clone(),
    })
}

/// Reads the recorded Y4M back and compares each frame with the sent frame
/// that carried the same RTP timestamp.
fn recorded_psnr(path: &Path, timestamps: &[u32], sent: &Sent<'_>) -> anyhow::Result<Vec<f64>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut decoder = y4m::Decoder::new(std::io::BufReader::new(file))
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err:?}", path.display()))?;
    let (width, height) = (decoder.get_width(), decoder.get_height());
    let mut values = Vec::with_capacity(timestamps.len());
    for &timestamp in timestamps {
        let frame = decoder
            .read_frame()
            .map_err(|err| anyhow::anyhow!("cannot read a frame of {}: {err:?}", path.display()))?;
        let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
        data.extend_from_slice(frame.get_y_plane());
        data.extend_from_slice(frame.get_u_plane());
        data.extend_from_slice(frame.get_v_plane());
        let received = VideoFrame {
            width,
            height,
            data,
        };
        let index = sent.video.frame_index(timestamp) % sent.clip.frames.len();
        if let Some(value) = psnr_luma(&sent.clip.frames[index], &received) {
            values.push(value);
        }
    }
    Ok(values)
}

/// Estimates when speech arrived relative to when it was sent. Returns the
/// delay in milliseconds and the correlation at the best match.
fn audio_delay(sent: &Sent<'_>, recording: &RecordingSummary) -> Option<(f64, f64)> {
    let first_audio_at = recording.first_audio_at?;
    let speech = &sent.speech.samples;
    let sent_len = sent.audio.packet_count * AUDIO_FRAME_SAMPLES;
    let sent_signal: Vec<f32> = (0..sent_len).map(|n| speech[n % speech.len()]).collect();
    let window = (DELAY_WINDOW_SECONDS * AUDIO_RATE as usize).min(recording.audio.len());
    let (lag, score) = best_lag(
        &sent_signal,
        &recording.audio[..window],
        MAX_DELAY_SECONDS * AUDIO_RATE as usize,
    )?;
    let arrival_offset = first_audio_at.saturating_duration_since(sent.audio.started_at);
    let delay = millis(arrival_offset) - lag as f64 * 1000.0 / f64::from(AUDIO_RATE);
    Some((delay, score))
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
