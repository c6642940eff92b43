//! Media sources read from files: a whole clip is decoded into memory, so the
//! sender can loop it and the report can compare received frames with the
//! frames that were sent.

pub mod annexb;
pub mod h264_file;
pub mod wav;
pub mod y4m_file;

use std::path::Path;

use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// A decoded video clip.
#[derive(Debug, Clone)]
pub struct VideoClip {
    pub frames: Vec<VideoFrame>,
    /// Frames per second the clip is played at.
    pub fps: f64,
}

impl VideoClip {
    pub fn width(&self) -> usize {
        self.frames[0].width
    }

    pub fn height(&self) -> usize {
        self.frames[0].height
    }
}

/// Loads a video clip from a Y4M file (`.y4m`) or an Annex B H.264 file
/// (`.264`, `.h264`), chosen by the file name extension.
pub fn load_video(path: &Path) -> Result<VideoClip> {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("y4m") => y4m_file::load(path),
        Some("264" | "h264") => h264_file::load(path, h264_file::DEFAULT_FPS),
        _ => Err(MediaError::UnsupportedFormat {
            path: path.to_owned(),
            detail: "expected a .y4m or an Annex B .264/.h264 file".into(),
        }),
    }
}

/// Opens a file, naming the path in the error.
pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| MediaError::Open {
        path: path.to_owned(),
        source,
    })
}
