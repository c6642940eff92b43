//! Records decoded remote media to `video.y4m` and `audio.wav` in a folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::error::{MediaError, Result};
use crate::frame::AUDIO_RATE;
use crate::receive::{DecodedAudio, DecodedVideo};
use crate::sink::{Y4mWriter, write_wav};

/// Maximum recording length the audio timeline accepts, so that a bogus RTP
/// timestamp cannot make it allocate without bound.
const MAX_AUDIO_SECONDS: usize = 3600;

/// File names inside the recording folder.
pub const VIDEO_FILE: &str = "video.y4m";
pub const AUDIO_FILE: &str = "audio.wav";

/// Summary of a finished recording.
#[derive(Debug, Clone, Default)]
pub struct RecordingSummary {
    /// RTP timestamp of each frame written to the Y4M file, in file order.
    pub video_timestamps: Vec<u32>,
    pub first_frame_at: Option<Instant>,
    /// Received audio placed by RTP timestamp: sample 0 is the first packet's
    /// first sample; gaps are silence.
    pub audio: Vec<f32>,
    /// When the first audio packet arrived.
    pub first_audio_at: Option<Instant>,
    pub video_path: Option<PathBuf>,
    pub audio_path: Option<PathBuf>,
}

/// Writes frames and audio until `stop` fires or both channels close, then
/// finishes the files.
pub async fn record(
    dir: &Path,
    fps: u32,
    mut video: mpsc::Receiver<DecodedVideo>,
    mut audio: mpsc::Receiver<DecodedAudio>,
    mut stop: oneshot::Receiver<()>,
) -> Result<RecordingSummary> {
    std::fs::create_dir_all(dir).map_err(|source| MediaError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let video_path = dir.join(VIDEO_FILE);
    let mut writer = Y4mWriter::create(&video_path, fps)?;
    let mut summary = RecordingSummary::default();
    let mut audio_start: Option<u32> = None;
    let (mut video_open, mut audio_open) = (true, true);

    while video_open || audio_open {
        tokio::select! {
            frame = video.recv(), if video_open => match frame {
                Some(frame) => write_frame(&mut writer, &mut summary, frame)?,
                None => video_open = false,
            },
            chunk = audio.recv(), if audio_open => match chunk {
                Some(chunk) => place_audio(&mut summary, &mut audio_start, chunk),
                None => audio_open = false,
            },
            _ = &mut stop => break,
        }
    }
    while let Ok(frame) = video.try_recv() {
        write_frame(&mut writer, &mut summary, frame)?;
    }
    while let Ok(chunk) = audio.try_recv() {
        place_audio(&mut summary, &mut audio_start, chunk);
    }
    drop(writer);

    if !summary.video_timestamps.is_empty() {
        summary.video_path = Some(video_path);
    }
    if !summary.audio.is_empty() {
        let audio_path = dir.join(AUDIO_FILE);
        write_wav(&audio_path, &summary.audio)?;
        summary.audio_path = Some(audio_path);
    }
    Ok(summary)
}

fn write_frame(
    writer: &mut Y4mWriter,
    summary: &mut RecordingSummary,
    frame: DecodedVideo,
) -> Result<()> {
    writer.write(&frame.frame)?;
    summary.video_timestamps.push(frame.rtp_timestamp);
    summary.first_frame_at.get_or_insert(frame.decoded_at);
    Ok(())
}

fn place_audio(summary: &mut RecordingSummary, start: &mut Option<u32>, chunk: DecodedAudio) {
    let first = *start.get_or_insert(chunk.rtp_timestamp);
    summary.first_audio_at.get_or_insert(chunk.received_at);
    let offset = chunk.rtp_timestamp.wrapping_sub(first) as usize;
    let end = offset + chunk.samples.len();
    if end > MAX_AUDIO_SECONDS * AUDIO_RATE as usize {
        tracing::warn!(offset, "dropping audio beyond the recording limit");
        return;
    }
    if summary.audio.len() < end {
        summary.audio.resize(end, 0.0);
    }
    summary.audio[offset..end].copy_from_slice(&chunk.samples);
}
