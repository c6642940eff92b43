//! Screen capture: list the screens and windows that can be shared, each
//! with a title and a thumbnail, and capture one of them at a chosen frame
//! rate into I420 [`VideoFrame`]s on a [`VideoFeed`], like a camera.
//!
//! One backend per windowing system sits behind this facade:
//!
//! - X11 (`x11`): one long-lived connection per capture, MIT-SHM when the
//!   server offers it and plain `GetImage` otherwise. Used on Linux when
//!   `DISPLAY` is set.
//! - Wayland: not implemented. A Wayland session with XWayland sets
//!   `DISPLAY`, so its X11 windows can be shared; native Wayland windows
//!   and screens need the desktop portal's ScreenCast interface and a
//!   PipeWire stream, which this module does not have yet.
//! - Windows and macOS (`native`): the `xcap` crate over the OS capture APIs.
//!
//! Encoders need even sizes for 4:2:0 chroma, so every captured picture is
//! cropped to an even width and height: an odd last column or row is
//! dropped, never scaled.

mod convert;
#[cfg(any(target_os = "windows", target_os = "macos"))]
mod native;
#[cfg(target_os = "linux")]
mod x11;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::frame::VideoFrame;
use crate::live::VideoFeed;

pub use convert::{bgrx_to_i420, downscale_rgb};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: usize = 240;

/// Frame rates a screen capture accepts, in frames per second.
pub const FPS_RANGE: std::ops::RangeInclusive<f64> = 0.5..=60.0;

/// Whether a source is a whole screen or one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Screen,
    Window,
}

/// The id of a capturable source: `screen:N` for the N-th screen (monitor)
/// in the backend's order, `window:ID` for a window by the windowing
/// system's id (an X11 window id in decimal or `0x` hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId {
    pub kind: SourceKind,
    pub index: u64,
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SourceKind::Screen => write!(f, "screen:{}", self.index),
            SourceKind::Window => write!(f, "window:{:#x}", self.index),
        }
    }
}

impl FromStr for SourceId {
    type Err = ScreenError;

    fn from_str(value: &str) -> Result<Self, ScreenError> {
        let invalid = || ScreenError::InvalidSourceId {
            id: value.to_owned(),
        };
        let (kind, number) = value.split_once(':').ok_or_else(invalid)?;
        let kind = match kind {
            "screen" => SourceKind::Screen,
            "window" => SourceKind::Window,
            _ => return Err(invalid()),
        };
        let index = match number.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => number.parse(),
        }
        .map_err(|_| invalid())?;
        Ok(Self { kind, index })
    }
}

impl Serialize for SourceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A small picture of a source for a picker: packed 8-bit RGB, at most
/// [`THUMBNAIL_MAX_SIDE`] pixels on its longer side.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbnail({}x{})", self.width, self.height)
    }
}

/// A screen or window that can be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenSource {
    pub id: SourceId,
    pub kind: SourceKind,
    /// The monitor's name or the window's title; may be empty.
    pub title: String,
    /// The size of the captured picture before cropping to even sizes.
    pub width: u32,
    pub height: u32,
    /// `None` when the source could not be captured for a thumbnail, for
    /// example a window that is not mapped.
    pub thumbnail: Option<Thumbnail>,
}

/// How X11 pictures are read; the other backends ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum X11Transfer {
    /// MIT-SHM when the server offers it, else `GetImage`.
    #[default]
    Auto,
    /// Always `GetImage`, which copies each picture through the socket.
    GetImage,
}

/// Failures of screen listing and capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScreenError {
    #[error(
        "no display to capture: neither DISPLAY nor WAYLAND_DISPLAY is set; run inside a \
         desktop session, or set DISPLAY (for example DISPLAY=:0) for an X server"
    )]
    NoDisplay,

    #[error("cannot connect to the X display {display:?}: {reason}; check DISPLAY and XAUTHORITY")]
    Connect { display: String, reason: String },

    #[error("invalid screen source id {id:?}: expected screen:N or window:ID, as listed")]
    InvalidSourceId { id: String },

    #[error("screen source {id} not found; list the sources again and choose one of them")]
    SourceNotFound { id: String },

    #[error("screen source {id} cannot be captured: {reason}")]
    Capture { id: String, reason: String },

    #[error("invalid screen capture frame rate {fps}; use 0.5 to 60 frames per second")]
    InvalidFrameRate { fps: f64 },

    #[error("screen capture is not available: {reason}")]
    Unsupported { reason: String },

    #[error("cannot start the screen capture thread: {0}")]
    ThreadSpawn(std::io::Error),
}

/// Lists the screens first, then the windows, each with a thumbnail.
pub fn list_sources() -> Result<Vec<ScreenSource>, ScreenError> {
    match backend()? {
        #[cfg(target_os = "linux")]
        Backend::X11 => x11::list_sources(),
        #[cfg(any(target_os = "windows", target_os = "macos"))]
        Backend::Native => native::list_sources(),
    }
}

/// Something that captures one source, one picture per call, on the
/// capture thread.
trait Grabber: Send {
    /// Returns the current picture, cropped to even sizes.
    fn grab(&mut self) -> Result<VideoFrame, ScreenError>;

    /// Returns whether pictures arrive through shared memory (X11 MIT-SHM).
    fn shared_memory(&self) -> bool {
        false
    }
}

/// A running capture that publishes the latest picture. Capture stops when
/// this value is dropped.
pub struct ScreenCapture {
    source: SourceId,
    fps: f64,
    shared_memory: bool,
    frames: VideoFeed,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ScreenCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScreenCapture")
            .field("source", &self.source)
            .field("fps", &self.fps)
            .finish()
    }
}

impl ScreenCapture {
    /// Starts capturing `source` at `fps` frames per second. The first
    /// picture is taken before this returns, so an unknown source or a
    /// display that cannot be read fails here.
    pub fn start(source: SourceId, fps: f64) -> Result<Self, ScreenError> {
        Self::start_with(source, fps, X11Transfer::Auto)
    }

    /// Starts capturing like [`start`](Self::start), with a choice of how
    /// X11 pictures are read.
    pub fn start_with(
        source: SourceId,
        fps: f64,
        transfer: X11Transfer,
    ) -> Result<Self, ScreenError> {
        if !(fps.is_finite() && FPS_RANGE.contains(&fps)) {
            return Err(ScreenError::InvalidFrameRate { fps });
        }
        let mut grabber = open_grabber(source, transfer)?;
        let first = grabber.grab()?;
        let shared_memory = grabber.shared_memory();
        let (sender, frames) = watch::channel(Some(Arc::new(first)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let period = Duration::from_secs_f64(1.0 / fps);
        let thread = std::thread::Builder::new()
            .name("hearth-screen".into())
            .spawn(move || capture_loop(grabber, period, sender, &thread_stop, source))
            .map_err(ScreenError::ThreadSpawn)?;
        tracing::debug!(%source, fps, "screen capture started");
        Ok(Self {
            source,
            fps,
            shared_memory,
            frames,
            stop,
            thread: Some(thread),
        })
    }

    /// Returns a new receiver of the latest picture, for the encoder or a view.
    pub fn frames(&self) -> VideoFeed {
        self.frames.clone()
    }

    /// Returns the most recent picture.
    pub fn latest(&self) -> Option<Arc<VideoFrame>> {
        self.frames.borrow().clone()
    }

    pub fn source(&self) -> SourceId {
        self.source
    }

    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Returns whether pictures arrive through X11 MIT-SHM instead of being
    /// copied through the X connection.
    pub fn shared_memory(&self) -> bool {
        self.shared_memory
    }
}

impl Drop for ScreenCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(source = %self.source, "the screen capture thread panicked");
        }
        tracing::debug!(source = %self.source, "screen capture stopped");
    }
}

/// Captures one picture of `source` without starting a capture thread, for
/// tests and measurements.
pub fn grab_once(source: SourceId, transfer: X11Transfer) -> Result<VideoFrame, ScreenError> {
    open_grabber(source, transfer)?.grab()
}

/// Captures one source on request on the calling thread, over one
/// connection, for measurements and callers with their own timing.
pub struct ScreenGrabber {
    inner: Box<dyn Grabber>,
}

impl ScreenGrabber {
    pub fn open(source: SourceId, transfer: X11Transfer) -> Result<Self, ScreenError> {
        Ok(Self {
            inner: open_grabber(source, transfer)?,
        })
    }

    /// Returns the current picture, cropped to even sizes.
    pub fn grab(&mut self) -> Result<VideoFrame, ScreenError> {
        self.inner.grab()
    }

    /// Returns whether pictures arrive through X11 MIT-SHM.
    pub fn shared_memory(&self) -> bool {
        self.inner.shared_memory()
    }
}

/// Publishes one picture per period until `stop` is set. A failed grab
/// (a window that was closed or unmapped) keeps the last picture and is
/// logged at the 1st, 2nd, 4th, ... failure in a row.
fn capture_loop(
    mut grabber: Box<dyn Grabber>,
    period: Duration,
    sender: watch::Sender<Option<Arc<VideoFrame>>>,
    stop: &AtomicBool,
    source: SourceId,
) {
    let started = Instant::now();
    let mut failures: u64 = 0;
    for index in 1u64.. {
        let due = started + period.mul_f64(index as f64);
        // Sleeps in short steps, so that dropping the capture returns quickly
        // even at low frame rates.
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let left = due.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        if stop.load(Ordering::Relaxed) || sender.is_closed() {
            return;
        }
        match grabber.grab() {
            Ok(frame) => {
                if failures > 0 {
                    tracing::info!(%source, failures, "screen capture recovered");
                }
                failures = 0;
                sender.send_replace(Some(Arc::new(frame)));
            }
            Err(error) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(%source, failures, %error, "screen capture failed");
                }
            }
        }
    }
}

enum Backend {
    #[cfg(target_os = "linux")]
    X11,
    #[cfg(any(target_os = "windows", target_os = "macos"))]
    Native,
}

/// Picks the backend for this session: on Linux X11 when `DISPLAY` is set,
/// XWayland included.
fn backend() -> Result<Backend, ScreenError> {
    #[cfg(target_os = "linux")]
    {
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        if set("DISPLAY") {
            return Ok(Backend::X11);
        }
        if set("WAYLAND_DISPLAY") {
            // TODO: capture through the desktop portal's ScreenCast interface
            // and PipeWire; until then only XWayland windows can be shared.
            return Err(ScreenError::Unsupported {
                reason: "native Wayland capture is not implemented; start XWayland and set \
                         DISPLAY (for example DISPLAY=:0) to share X11 windows"
                    .into(),
            });
        }
        Err(ScreenError::NoDisplay)
    }
    #[cfg(any(target_os = "windows", target_os = "macos"))]
    {
        Ok(Backend::Native)
    }
    #[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
    {
        Err(ScreenError::Unsupported {
            reason: format!("no screen capture backend for {}", std::env::consts::OS),
        })
    }
}

fn open_grabber(source: SourceId, transfer: X11Transfer) -> Result<Box<dyn Grabber>, ScreenError> {
    let _ = transfer;
    match backend()? {
        #[cfg(target_os = "linux")]
        Backend::X11 => Ok(Box::new(x11::X11Grabber::open(source, transfer)?)),
        #[cfg(any(target_os = "windows", target_os = "macos"))]
        Backend::Native => Ok(Box::new(native::NativeGrabber::open(source)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_id_round_trips() {
        for text in ["screen:0", "screen:3", "window:0x1a00003"] {
            let id: SourceId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
        let decimal: SourceId = "window:27262979".parse().unwrap();
        assert_eq!(decimal.to_string(), "window:0x1a00003");
    }

    #[test]
    fn source_id_rejects_garbage() {
        for text in ["", "screen", "monitor:1", "window:xyz", "screen:-1"] {
            let error = text.parse::<SourceId>().unwrap_err();
            assert!(
                matches!(&error, ScreenError::InvalidSourceId { id } if id == text),
                "{text:?}: {error}"
            );
        }
    }
}
