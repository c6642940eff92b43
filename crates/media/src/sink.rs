//! File sinks for received media: Y4M for video and 16-bit WAV for audio.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{MediaError, Result};
use crate::frame::{AUDIO_RATE, VideoFrame};

/// Writes I420 frames to a Y4M file. The header is written with the first
/// frame, so the size comes from the stream.
pub struct Y4mWriter {
    path: PathBuf,
    fps: u32,
    encoder: Option<y4m::Encoder<BufWriter<File>>>,
    size: Option<(usize, usize)>,
}

impl Y4mWriter {
    pub fn create(path: &Path, fps: u32) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            fps: fps.max(1),
            encoder: None,
            size: None,
        })
    }

    /// Appends a frame. Frames of another size than the first are scaled by
    /// nearest neighbour, because Y4M has one size per file.
    pub fn write(&mut self, frame: &VideoFrame) -> Result<()> {
        let (width, height) = *self.size.get_or_insert((frame.width, frame.height));
        if self.encoder.is_none() {
            let file = File::create(&self.path).map_err(|source| self.write_error(source))?;
            let encoder = y4m::encode(width, height, y4m::Ratio::new(self.fps as usize, 1))
                .with_colorspace(y4m::Colorspace::C420jpeg)
                .write_header(BufWriter::new(file))
                .map_err(|err| self.y4m_error(err))?;
            self.encoder = Some(encoder);
        }

        let scaled;
        let frame = if (frame.width, frame.height) == (width, height) {
            frame
        } else {
            scaled = scale_nearest(frame, width, height);
            &scaled
        };
        let (y, u, v) = frame.planes();
        let result = self
            .encoder
            .as_mut()
            .expect("the encoder was created above")
            .write_frame(&y4m::Frame::new([y, u, v], None));
        result.map_err(|err| self.y4m_error(err))
    }

    fn write_error(&self, source: std::io::Error) -> MediaError {
        MediaError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn y4m_error(&self, err: y4m::Error) -> MediaError {
        self.write_error(std::io::Error::other(format!("{err:?}")))
    }
}

fn scale_nearest(frame: &VideoFrame, width: usize, height: usize) -> VideoFrame {
    let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
    let (y, u, v) = frame.planes();
    let source_sizes = [
        (frame.width, frame.height),
        (frame.chroma_width(), frame.chroma_height()),
        (frame.chroma_width(), frame.chroma_height()),
    ];
    let target_sizes = [
        (width, height),
        (width.div_ceil(2), height.div_ceil(2)),
        (width.div_ceil(2), height.div_ceil(2)),
    ];
    for ((plane, (sw, sh)), (tw, th)) in [y, u, v].iter().zip(source_sizes).zip(target_sizes) {
        for row in 0..th {
            let source_row = row * sh / th;
            for column in 0..tw {
                data.push(plane[source_row * sw + column * sw / tw]);
            }
        }
    }
    VideoFrame {
        width,
        height,
        data,
    }
}

/// Writes 48 kHz mono audio as a 16-bit PCM WAV file.
pub fn write_wav(path: &Path, samples: &[f32]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: AUDIO_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let error = |err: hound::Error| MediaError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(err.to_string()),
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(error)?;
    for &sample in samples {
        let value = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
        writer.write_sample(value).map_err(error)?;
    }
    writer.finalize().map_err(error)
}
