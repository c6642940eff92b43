//! The local picture: a camera, or a video file looped as if it were one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;
use crate::live::{VideoFeed, camera};
use crate::source::{self, VideoClip};

/// The source of the local picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoSource {
    /// A video file used as a camera: anything [`source::load_video`] reads
    /// (Y4M, or Annex B H.264 at 25 fps), looped forever at its frame rate.
    File(PathBuf),
    /// A camera from [`list_cameras`](super::list_cameras).
    Camera { id: String },
}

/// A running capture that publishes the latest frame for the self view and
/// the encoder. Capture stops when this value is dropped.
pub struct LocalVideo {
    source: VideoSource,
    frames: VideoFeed,
    capture: Capture,
}

enum Capture {
    /// Dropping `wake` ends the file thread at once, so drop joins it.
    File {
        wake: Option<std::sync::mpsc::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    },
    /// The camera thread checks `stop` between frames.
    Camera {
        stop: Arc<AtomicBool>,
        _thread: JoinHandle<()>,
    },
}

impl LocalVideo {
    /// Starts capturing. A file is read and decoded completely first, so a
    /// missing, unreadable or undecodable file fails here with the error of
    /// [`source::load_video`] (`Open`, `InvalidFile`, `Truncated`,
    /// `UnsupportedFormat`, ...), each naming the path. A camera fails with
    /// `CameraMissing`, `CameraBusy` or `CameraFailed`.
    pub fn start(source: &VideoSource) -> Result<Self> {
        let (sender, frames) = watch::channel(None);
        let capture = match source {
            VideoSource::File(path) => {
                let clip = source::load_video(path)?;
                check_clip(path, &clip)?;
                start_file_loop(clip, sender)?
            }
            VideoSource::Camera { id } => {
                let stop = Arc::new(AtomicBool::new(false));
                let thread = camera::start_capture(id, Arc::clone(&stop), sender)?;
                Capture::Camera {
                    stop,
                    _thread: thread,
                }
            }
        };
        tracing::debug!(?source, "local video started");
        Ok(Self {
            source: source.clone(),
            frames,
            capture,
        })
    }

    /// Returns a new receiver of the latest frame, for the encoder or a view.
    pub fn frames(&self) -> VideoFeed {
        self.frames.clone()
    }

    /// Returns the most recent frame, if any arrived yet.
    pub fn latest(&self) -> Option<Arc<VideoFrame>> {
        self.frames.borrow().clone()
    }

    pub fn source(&self) -> &VideoSource {
        &self.source
    }
}

impl Drop for LocalVideo {
    fn drop(&mut self) {
        match &mut self.capture {
            Capture::File { wake, thread } => {
                drop(wake.take());
                if let Some(thread) = thread.take()
                    && thread.join().is_err()
                {
                    tracing::warn!("the video file thread panicked");
                }
            }
            // NOTE: the camera thread is not joined, because a read from a
            // camera that was unplugged may block for long. The device closes
            // once the frame read in progress returns.
            Capture::Camera { stop, .. } => stop.store(true, Ordering::Relaxed),
        }
        tracing::debug!(source = ?self.source, "local video stopped");
    }
}

/// Rejects clips that cannot be played in a loop.
fn check_clip(path: &std::path::Path, clip: &VideoClip) -> Result<()> {
    let invalid = |detail: String| MediaError::InvalidFile {
        path: path.to_owned(),
        detail,
    };
    if clip.frames.is_empty() {
        return Err(invalid("the file contains no frames".into()));
    }
    if !(clip.fps.is_finite() && clip.fps > 0.0) {
        return Err(invalid(format!(
            "the frame rate {} is not positive",
            clip.fps
        )));
    }
    Ok(())
}

/// Publishes the clip's first frame now and the following ones at the clip's
/// frame rate, from the first again after the last.
fn start_file_loop(
    clip: VideoClip,
    sender: watch::Sender<Option<Arc<VideoFrame>>>,
) -> Result<Capture> {
    let period = Duration::from_secs_f64(1.0 / clip.fps);
    let frames: Vec<Arc<VideoFrame>> = clip.frames.into_iter().map(Arc::new).collect();
    sender.send_replace(Some(Arc::clone(&frames[0])));

    let (wake, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("hearth-video-file".into())
        .spawn(move || {
            let started = Instant::now();
            for index in 1u64.. {
                let due = started + period.mul_f64(index as f64);
                match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let frame = &frames[(index % frames.len() as u64) as usize];
                sender.send_replace(Some(Arc::clone(frame)));
            }
        })
        .map_err(|source| MediaError::ThreadSpawn {
            name: "video file",
            source,
        })?;
    Ok(Capture::File {
        wake: Some(wake),
        thread: Some(thread),
    })
}
