//! YUV4MPEG2 (Y4M) reader.

use std::cell::Cell;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;
use crate::source::{VideoClip, open};

/// Frame rate used when the header's rate is zero or missing.
const FALLBACK_FPS: f64 = 25.0;

/// Reads every frame of a 4:2:0 8-bit Y4M file.
pub fn load(path: &Path) -> Result<VideoClip> {
    let bytes_read = Rc::new(Cell::new(0));
    let reader = CountingReader {
        inner: BufReader::new(open(path)?),
        count: Rc::clone(&bytes_read),
    };
    let mut decoder = y4m::Decoder::new(reader).map_err(|err| header_error(path, err))?;

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
    let mut end_of_last_frame = bytes_read.get();
    loop {
        match decoder.read_frame() {
            Ok(frame) => {
                end_of_last_frame = bytes_read.get();
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
            Err(y4m::Error::EOF) if bytes_read.get() == end_of_last_frame => break,
            Err(y4m::Error::EOF) => {
                return Err(MediaError::Truncated {
                    path: path.to_owned(),
                    detail: format!(
                        "frame {} is incomplete: the file ends {} bytes into it",
                        frames.len(),
                        bytes_read.get() - end_of_last_frame
                    ),
                });
            }
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

/// A reader that counts the bytes it returns. The y4m crate reports an end of
/// file inside a frame as `Error::EOF`, like the end after the last frame, so
/// the byte count distinguishes the two.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.count.set(self.count.get() + read as u64);
        Ok(read)
    }
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
