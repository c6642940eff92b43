//! Records decoded remote media to `video.y4m` and `audio.wav` in a folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::error::{MediaError, Result};
use crate::frame::AUDIO_RATE;
use crate::receive::{DecodedAudio, DecodedVideo};
use crate::send::VIDEO_CLOCK_RATE;
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
    let mut writer = VideoRecorder::new(video_path.clone(), fps);
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
    writer.finish()?;
    while let Ok(chunk) = audio.try_recv() {
        place_audio(&mut summary, &mut audio_start, chunk);
    }

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

/// Writes the Y4M file once the frame rate is known: Y4M has one rate per
/// file and RTP carries none, so the first frame waits for the second and the
/// rate comes from the difference of their timestamps.
struct VideoRecorder {
    path: PathBuf,
    fallback_fps: u32,
    first: Option<DecodedVideo>,
    writer: Option<Y4mWriter>,
}

impl VideoRecorder {
    fn new(path: PathBuf, fallback_fps: u32) -> Self {
        Self {
            path,
            fallback_fps,
            first: None,
            writer: None,
        }
    }

    fn write(&mut self, frame: &DecodedVideo) -> Result<()> {
        if self.writer.is_none() {
            let Some(first) = self.first.take() else {
                self.first = Some(frame.clone());
                return Ok(());
            };
            let ticks = frame.rtp_timestamp.wrapping_sub(first.rtp_timestamp);
            let fps = if (1..=VIDEO_CLOCK_RATE).contains(&ticks) {
                (f64::from(VIDEO_CLOCK_RATE) / f64::from(ticks)).round() as u32
            } else {
                self.fallback_fps
            };
            let mut writer = Y4mWriter::create(&self.path, fps.clamp(1, 120))?;
            writer.write(&first.frame)?;
            self.writer = Some(writer);
        }
        self.writer
            .as_mut()
            .expect("the writer was created above")
            .write(&frame.frame)
    }

    /// Writes a lone first frame at the fallback rate and closes the file.
    fn finish(&mut self) -> Result<()> {
        if let Some(first) = self.first.take() {
            let mut writer = Y4mWriter::create(&self.path, self.fallback_fps)?;
            writer.write(&first.frame)?;
        }
        self.writer = None;
        Ok(())
    }
}

fn write_frame(
    writer: &mut VideoRecorder,
    summary: &mut RecordingSummary,
    frame: DecodedVideo,
) -> Result<()> {
    writer.write(&frame)?;
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
