//! Windows and macOS capture through `xcap` 0.9, which wraps GDI and
//! Windows Graphics Capture on Windows, and CoreGraphics and
//! ScreenCaptureKit on macOS. Screens are numbered in xcap's monitor order;
//! windows use xcap's window id (an HWND on Windows, a CGWindowID on macOS).
//!
//! NOTE: untested. The Windows code is only type-checked here, with
//! `cargo check --target x86_64-pc-windows-gnu`; the macOS code has not even
//! been compiled, because no macOS target builds on this project's Linux
//! machines. On macOS the first capture asks the user for the screen
//! recording permission, which the app bundle's usage string explains.

use super::convert::{bgrx_to_i420, downscale_rgb};
use super::{
    Grabber, ScreenError, ScreenSource, SourceId, SourceKind, THUMBNAIL_MAX_SIDE, Thumbnail,
};
use crate::frame::VideoFrame;

pub(super) fn list_sources() -> Result<Vec<ScreenSource>, ScreenError> {
    let unsupported = |error: xcap::XCapError| ScreenError::Unsupported {
        reason: format!("listing the screens failed ({error})"),
    };
    let mut sources = Vec::new();
    for (index, monitor) in xcap::Monitor::all()
        .map_err(unsupported)?
        .iter()
        .enumerate()
    {
        let thumbnail = monitor.capture_image().ok().and_then(|image| {
            thumbnail(
                image.width() as usize,
                image.height() as usize,
                image.as_raw(),
            )
        });
        sources.push(ScreenSource {
            id: SourceId {
                kind: SourceKind::Screen,
                index: index as u64,
            },
            kind: SourceKind::Screen,
            title: monitor.name().unwrap_or_default(),
            width: monitor.width().unwrap_or(0),
            height: monitor.height().unwrap_or(0),
            thumbnail,
        });
    }
    for window in xcap::Window::all().map_err(unsupported)? {
        let Ok(id) = window.id() else {
            continue;
        };
        let minimized = window.is_minimized().unwrap_or(true);
        let thumbnail = if minimized {
            None
        } else {
            window.capture_image().ok().and_then(|image| {
                thumbnail(
                    image.width() as usize,
                    image.height() as usize,
                    image.as_raw(),
                )
            })
        };
        sources.push(ScreenSource {
            id: SourceId {
                kind: SourceKind::Window,
                index: u64::from(id),
            },
            kind: SourceKind::Window,
            title: window.title().unwrap_or_default(),
            width: window.width().unwrap_or(0),
            height: window.height().unwrap_or(0),
            thumbnail,
        });
    }
    Ok(sources)
}

fn thumbnail(width: usize, height: usize, rgba: &[u8]) -> Option<Thumbnail> {
    let (width, height, rgb) =
        downscale_rgb(width, height, width * 4, rgba, true, THUMBNAIL_MAX_SIDE)?;
    Some(Thumbnail { width, height, rgb })
}

/// Captures by id. xcap's monitor and window handles are looked up again
/// for each picture, because they are not `Send` on every OS and the
/// capture runs on its own thread; a lookup costs one enumeration.
pub(super) struct NativeGrabber {
    source: SourceId,
}

impl NativeGrabber {
    pub(super) fn open(source: SourceId) -> Result<Self, ScreenError> {
        let grabber = Self { source };
        grabber.capture()?;
        Ok(grabber)
    }

    fn error(&self, reason: impl std::fmt::Display) -> ScreenError {
        ScreenError::Capture {
            id: self.source.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Returns the picture as RGBA with its size.
    fn capture(&self) -> Result<(usize, usize, Vec<u8>), ScreenError> {
        let not_found = || ScreenError::SourceNotFound {
            id: self.source.to_string(),
        };
        let image = match self.source.kind {
            SourceKind::Screen => {
                let monitors = xcap::Monitor::all().map_err(|error| self.error(error))?;
                let index = usize::try_from(self.source.index).map_err(|_| not_found())?;
                let monitor = monitors.get(index).ok_or_else(not_found)?;
                monitor.capture_image().map_err(|error| self.error(error))?
            }
            SourceKind::Window => {
                let windows = xcap::Window::all().map_err(|error| self.error(error))?;
                let window = windows
                    .iter()
                    .find(|window| {
                        window
                            .id()
                            .is_ok_and(|id| u64::from(id) == self.source.index)
                    })
                    .ok_or_else(not_found)?;
                if window.is_minimized().unwrap_or(false) {
                    return Err(self.error("the window is minimised; restore it and try again"));
                }
                window.capture_image().map_err(|error| self.error(error))?
            }
        };
        let (width, height) = (image.width() as usize, image.height() as usize);
        Ok((width, height, image.into_raw()))
    }
}

impl Grabber for NativeGrabber {
    fn grab(&mut self) -> Result<VideoFrame, ScreenError> {
        let (width, height, rgba) = self.capture()?;
        bgrx_to_i420(width, height, width * 4, &rgba, true).ok_or_else(|| {
            self.error(format!(
                "the {width}x{height} picture is too small to encode; it needs at least 2x2 pixels"
            ))
        })
    }
}
