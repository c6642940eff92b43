//! Raw media frames passed between sources, codecs and sinks.

/// One picture in planar I420 (YUV 4:2:0), tightly packed: the Y plane, then U,
/// then V, each row exactly as wide as the plane.
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VideoFrame({}x{})", self.width, self.height)
    }
}

impl VideoFrame {
    /// Returns the byte size of an I420 frame with these dimensions.
    pub fn i420_len(width: usize, height: usize) -> usize {
        let chroma = width.div_ceil(2) * height.div_ceil(2);
        width * height + 2 * chroma
    }

    /// Returns the Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width * self.height;
        let chroma = self.chroma_width() * self.chroma_height();
        let (y, rest) = self.data.split_at(luma);
        let (u, v) = rest.split_at(chroma);
        (y, u, &v[..chroma])
    }

    pub fn chroma_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    pub fn chroma_height(&self) -> usize {
        self.height.div_ceil(2)
    }

    /// Returns the picture at half the width and height (rounded down to even
    /// sizes, at least 2x2), each output pixel the mean of a 2x2 block.
    pub fn half(&self) -> VideoFrame {
        let width = (self.width / 2).max(2) & !1;
        let height = (self.height / 2).max(2) & !1;
        let mut data = Vec::with_capacity(Self::i420_len(width, height));
        let (y, u, v) = self.planes();
        let planes = [
            (y, self.width, self.height, width, height),
            (
                u,
                self.chroma_width(),
                self.chroma_height(),
                width / 2,
                height / 2,
            ),
            (
                v,
                self.chroma_width(),
                self.chroma_height(),
                width / 2,
                height / 2,
            ),
        ];
        for (plane, source_width, source_height, target_width, target_height) in planes {
            for row in 0..target_height {
                let top = (row * 2).min(source_height - 1);
                let bottom = (row * 2 + 1).min(source_height - 1);
                for column in 0..target_width {
                    let left = (column * 2).min(source_width - 1);
                    let right = (column * 2 + 1).min(source_width - 1);
                    let sum = u32::from(plane[top * source_width + left])
                        + u32::from(plane[top * source_width + right])
                        + u32::from(plane[bottom * source_width + left])
                        + u32::from(plane[bottom * source_width + right]);
                    data.push(((sum + 2) / 4) as u8);
                }
            }
        }
        VideoFrame {
            width,
            height,
            data,
        }
    }

    /// Copies a picture given as three planes with row strides into a packed frame.
    pub fn from_strided(
        width: usize,
        height: usize,
        planes: [&[u8]; 3],
        strides: [usize; 3],
    ) -> Self {
        let mut data = Vec::with_capacity(Self::i420_len(width, height));
        let sizes = [
            (width, height),
            (width.div_ceil(2), height.div_ceil(2)),
            (width.div_ceil(2), height.div_ceil(2)),
        ];
        for ((plane, stride), (plane_width, plane_height)) in planes.iter().zip(strides).zip(sizes)
        {
            for row in 0..plane_height {
                let start = row * stride;
                data.extend_from_slice(&plane[start..start + plane_width]);
            }
        }
        Self {
            width,
            height,
            data,
        }
    }
}

impl openh264::formats::YUVSource for VideoFrame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.chroma_width(), self.chroma_width())
    }

    fn y(&self) -> &[u8] {
        self.planes().0
    }

    fn u(&self) -> &[u8] {
        self.planes().1
    }

    fn v(&self) -> &[u8] {
        self.planes().2
    }
}

/// Sample rate of all audio inside the engine, in Hz.
pub const AUDIO_RATE: u32 = 48_000;

/// Samples per channel in one 20 ms audio frame at `AUDIO_RATE`.
pub const AUDIO_FRAME_SAMPLES: usize = 960;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_averages_blocks_and_keeps_sizes_even() {
        let width = 6;
        let height = 4;
        let mut data = Vec::new();
        // Luma rows alternate 0 and 200, so every 2x2 block averages to 100.
        for row in 0..height {
            data.extend(std::iter::repeat_n(
                if row % 2 == 0 { 0 } else { 200 },
                width,
            ));
        }
        data.extend(std::iter::repeat_n(128, 2 * 3 * 2));
        let frame = VideoFrame {
            width,
            height,
            data,
        };
        let half = frame.half();
        assert_eq!((half.width, half.height), (2, 2));
        assert_eq!(half.data.len(), VideoFrame::i420_len(2, 2));
        let (y, u, _) = half.planes();
        assert!(y.iter().all(|&value| value == 100), "{y:?}");
        assert!(u.iter().all(|&value| value == 128));
    }
}
