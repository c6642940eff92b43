//! Pixel format conversions from camera formats to I420, with BT.601
//! limited-range coefficients (Y in 16..=235), which is what H.264 encoders
//! assume when the stream signals no colour description.

use crate::frame::VideoFrame;

/// Converts packed 8-bit RGB to I420. Each chroma sample averages a 2x2
/// block, or the pixels present at an odd right or bottom edge. Returns `None`
/// when `rgb` is shorter than `width * height * 3` bytes.
pub(crate) fn rgb_to_i420(width: usize, height: usize, rgb: &[u8]) -> Option<VideoFrame> {
    if rgb.len() < width * height * 3 {
        return None;
    }
    let pixel = |x: usize, y: usize| {
        let offset = (y * width + x) * 3;
        [
            i32::from(rgb[offset]),
            i32::from(rgb[offset + 1]),
            i32::from(rgb[offset + 2]),
        ]
    };

    let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
    for y in 0..height {
        for x in 0..width {
            data.push(luma(pixel(x, y)));
        }
    }
    let (chroma_width, chroma_height) = (width.div_ceil(2), height.div_ceil(2));
    let mut u_plane = Vec::with_capacity(chroma_width * chroma_height);
    let mut v_plane = Vec::with_capacity(chroma_width * chroma_height);
    for block_y in 0..chroma_height {
        for block_x in 0..chroma_width {
            let mut sum = [0i32; 3];
            let mut count = 0;
            for y in (2 * block_y)..(2 * block_y + 2).min(height) {
                for x in (2 * block_x)..(2 * block_x + 2).min(width) {
                    let [r, g, b] = pixel(x, y);
                    sum = [sum[0] + r, sum[1] + g, sum[2] + b];
                    count += 1;
                }
            }
            let average = sum.map(|channel| (channel + count / 2) / count);
            let (u, v) = chroma(average);
            u_plane.push(u);
            v_plane.push(v);
        }
    }
    data.extend_from_slice(&u_plane);
    data.extend_from_slice(&v_plane);
    Some(VideoFrame {
        width,
        height,
        data,
    })
}

/// Converts YUYV 4:2:2 (Y0 U Y1 V per pixel pair) to I420 by averaging the
/// chroma of each pair of rows. Returns `None` for an odd width or a buffer
/// shorter than `width * height * 2` bytes.
pub(crate) fn yuyv_to_i420(width: usize, height: usize, yuyv: &[u8]) -> Option<VideoFrame> {
    if !width.is_multiple_of(2) || yuyv.len() < width * height * 2 {
        return None;
    }
    let row_bytes = width * 2;
    let mut data = Vec::with_capacity(VideoFrame::i420_len(width, height));
    for row in yuyv.chunks_exact(row_bytes).take(height) {
        data.extend(row.iter().step_by(2));
    }

    let chroma_height = height.div_ceil(2);
    let mut u_plane = Vec::with_capacity(width / 2 * chroma_height);
    let mut v_plane = Vec::with_capacity(width / 2 * chroma_height);
    for block_y in 0..chroma_height {
        let top = &yuyv[2 * block_y * row_bytes..][..row_bytes];
        let bottom_y = (2 * block_y + 1).min(height - 1);
        let bottom = &yuyv[bottom_y * row_bytes..][..row_bytes];
        for (upper, lower) in top.chunks_exact(4).zip(bottom.chunks_exact(4)) {
            u_plane.push(average(upper[1], lower[1]));
            v_plane.push(average(upper[3], lower[3]));
        }
    }
    data.extend_from_slice(&u_plane);
    data.extend_from_slice(&v_plane);
    Some(VideoFrame {
        width,
        height,
        data,
    })
}

fn luma([r, g, b]: [i32; 3]) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

fn chroma([r, g, b]: [i32; 3]) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u as u8, v as u8)
}

fn average(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_primaries_match_bt601() {
        // 2x2 blocks of one colour each: white, black, red.
        let colours = [[255u8, 255, 255], [0, 0, 0], [255, 0, 0]];
        for colour in colours {
            let rgb: Vec<u8> = colour.iter().copied().cycle().take(2 * 2 * 3).collect();
            let frame = rgb_to_i420(2, 2, &rgb).unwrap();
            let (y, u, v) = frame.planes();
            let expected_y = luma(colour.map(i32::from));
            let (expected_u, expected_v) = chroma(colour.map(i32::from));
            assert_eq!(y, [expected_y; 4]);
            assert_eq!((u[0], v[0]), (expected_u, expected_v));
        }
        let white = rgb_to_i420(1, 1, &[255, 255, 255]).unwrap();
        assert_eq!(white.data, vec![235, 128, 128]);
        let black = rgb_to_i420(1, 1, &[0, 0, 0]).unwrap();
        assert_eq!(black.data, vec![16, 128, 128]);
    }

    #[test]
    fn rgb_odd_size_has_rounded_up_chroma() {
        let rgb = vec![128u8; 3 * 3 * 3];
        let frame = rgb_to_i420(3, 3, &rgb).unwrap();
        assert_eq!(frame.data.len(), VideoFrame::i420_len(3, 3));
        assert_eq!(frame.chroma_width(), 2);
    }

    #[test]
    fn rgb_short_buffer_is_rejected() {
        assert!(rgb_to_i420(4, 4, &[0; 10]).is_none());
    }

    #[test]
    fn yuyv_splits_luma_and_averages_chroma() {
        // Two rows of two pixels: Y0 U Y1 V.
        let yuyv = [10, 100, 20, 200, 30, 110, 40, 210];
        let frame = yuyv_to_i420(2, 2, &yuyv).unwrap();
        assert_eq!(frame.data, vec![10, 20, 30, 40, 105, 205]);
    }

    #[test]
    fn yuyv_odd_width_or_short_buffer_is_rejected() {
        assert!(yuyv_to_i420(3, 2, &[0; 12]).is_none());
        assert!(yuyv_to_i420(4, 4, &[0; 8]).is_none());
    }
}
