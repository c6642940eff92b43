//! YUV4MPEG2 (Y4M) reader.

use std::io::BufReader;
use std::path::Path;

use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;
use crate::source::{VideoClip, open};

/// Frame rate used when the header's rate is zero or missing.
const FALLBACK_FPS: f64 = 25.0;

/// Reads every frame of a 4:2:0 8-bit Y4M file.
pub fn load(path: &Path) -> Result<VideoClip> {
    let file = open(path)?;
    let mut decoder =
        y4m::Decoder::new(BufReader::new(file)).map_err(|err| header_error(path, err))?;

    let colorspace = decoder.get_colorspace();
    if !matches!(
        colorspace,
        y4m::Colorspace::C420
            | y4m::Colorspace::C420jpeg
            | y4m::Colorspace::C420paldv
            | y4m::Colorspace::C420mpeg2
    ) {
        return Err(MediaError::UnsupportedColorSpace {
            path: path.to_owned(),
            colorspace: format!("{colorspace:?}"),
        });
    }

    let width = decoder.get_width();
    let height = decoder.get_height();
    let rate = decoder.get_framerate();
    let fps = if rate.num > 0 && rate.den > 0 {
        rate.num as f64 / rate.den as f64
    } else {
        FALLBACK_FPS
    };

    let mut frames = Vec::new();
    loop {
        match decoder.read_frame() {
            Ok(frame) => {
                let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
                data.extend_from_slice(frame.get_y_plane());
                data.extend_from_slice(frame.get_u_plane());
                data.extend_from_slice(frame.get_v_plane());
                frames.push(VideoFrame {
                    width,
                    height,
                    data,
                });
            }
            Err(y4m::Error::EOF) => break,
            Err(err) => {
                return Err(MediaError::Truncated {
                    path: path.to_owned(),
                    detail: format!("frame {} is incomplete ({err:?})", frames.len()),
                });
            }
        }
    }

    if frames.is_empty() {
        return Err(MediaError::InvalidFile {
            path: path.to_owned(),
            detail: "the file contains no frames".into(),
        });
    }
    Ok(VideoClip { frames, fps })
}

fn header_error(path: &Path, err: y4m::Error) -> MediaError {
    match err {
        y4m::Error::EOF => MediaError::Truncated {
            path: path.to_owned(),
            detail: "the Y4M header is incomplete".into(),
        },
        y4m::Error::UnknownColorspace => MediaError::UnsupportedColorSpace {
            path: path.to_owned(),
            colorspace: "unknown".into(),
        },
        other => MediaError::InvalidFile {
            path: path.to_owned(),
            detail: format!("not a valid Y4M file ({other:?})"),
        },
    }
}
