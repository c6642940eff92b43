//! Annex B H.264 file reader: checks the stream, then decodes it into frames.

use std::io::Read;
use std::path::Path;

use crate::codec::h264::H264Decoder;
use crate::error::{MediaError, Result};
use crate::source::annexb::{self, group_access_units, is_vcl, parse_slice_header};
use crate::source::{VideoClip, open};

/// Raw H.264 has no timing; the reference clips are 25 fps.
pub const DEFAULT_FPS: f64 = 25.0;

/// Reads and decodes every picture of an Annex B file.
pub fn load(path: &Path, fps: f64) -> Result<VideoClip> {
    let mut stream = Vec::new();
    open(path)?
        .read_to_end(&mut stream)
        .map_err(|source| MediaError::Open {
            path: path.to_owned(),
            source,
        })?;

    let units = annexb::split_nal_units(&stream);
    if units.is_empty() {
        return Err(MediaError::InvalidFile {
            path: path.to_owned(),
            detail: "no H.264 start code found; expected an Annex B byte stream".into(),
        });
    }
    let access_units = group_access_units(&units);
    reject_b_frames(path, &access_units)?;

    let mut decoder = H264Decoder::new()?;
    let mut frames = Vec::with_capacity(access_units.len());
    let last = access_units.len() - 1;
    for (index, access_unit) in access_units.iter().enumerate() {
        let data = annexb::join_annexb(access_unit);
        match decoder.decode(&data) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err(err) if index == last => {
                return Err(MediaError::Truncated {
                    path: path.to_owned(),
                    detail: format!(
                        "the last picture (access unit {index}) does not decode: {err}"
                    ),
                });
            }
            Err(err) => {
                return Err(MediaError::InvalidFile {
                    path: path.to_owned(),
                    detail: format!("access unit {index} does not decode: {err}"),
                });
            }
        }
    }
    frames.extend(decoder.flush()?);

    let Some(first) = frames.first() else {
        return Err(MediaError::InvalidFile {
            path: path.to_owned(),
            detail: "the stream contains no decodable picture".into(),
        });
    };
    let (width, height) = (first.width, first.height);
    if frames
        .iter()
        .any(|frame| (frame.width, frame.height) != (width, height))
    {
        return Err(MediaError::UnsupportedFormat {
            path: path.to_owned(),
            detail: "the picture size changes within the stream".into(),
        });
    }
    Ok(VideoClip { frames, fps })
}

fn reject_b_frames(path: &Path, access_units: &[Vec<&[u8]>]) -> Result<()> {
    for (frame, access_unit) in access_units.iter().enumerate() {
        let has_b_slice = access_unit
            .iter()
            .filter(|unit| is_vcl(unit))
            .filter_map(|unit| parse_slice_header(unit))
            .any(|header| header.is_b());
        if has_b_slice {
            return Err(MediaError::BFrames {
                path: path.to_owned(),
                frame,
            });
        }
    }
    Ok(())
}
