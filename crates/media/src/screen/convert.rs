//! Conversions of captured pictures: 32-bit BGRX or RGBX to I420 with BT.601
//! limited-range coefficients (as `live::convert` uses for cameras), and
//! thumbnails.

use crate::frame::VideoFrame;

/// Converts a 32-bit-per-pixel picture (`B, G, R, X` bytes per pixel, or
/// `R, G, B, X` when `rgb_order`) with `stride` bytes per row to I420,
/// cropped to an even width and height: an odd last column or row is
/// dropped. Returns `None` when the cropped picture is empty or `pixels` is
/// too short.
pub fn bgrx_to_i420(
    width: usize,
    height: usize,
    stride: usize,
    pixels: &[u8],
    rgb_order: bool,
) -> Option<VideoFrame> {
    let (even_width, even_height) = (width & !1, height & !1);
    if even_width == 0 || even_height == 0 || stride < width * 4 {
        return None;
    }
    if pixels.len() < (height - 1) * stride + width * 4 {
        return None;
    }
    let (red, blue) = if rgb_order { (0, 2) } else { (2, 0) };
    let mut data = vec![0u8; VideoFrame::i420_len(even_width, even_height)];
    let (luma_plane, chroma) = data.split_at_mut(even_width * even_height);
    let (u_plane, v_plane) = chroma.split_at_mut(even_width / 2 * even_height / 2);

    for row in 0..even_height {
        let line = &pixels[row * stride..][..even_width * 4];
        let out = &mut luma_plane[row * even_width..][..even_width];
        for (pixel, luma) in line.chunks_exact(4).zip(out) {
            let rgb = [
                i32::from(pixel[red]),
                i32::from(pixel[1]),
                i32::from(pixel[blue]),
            ];
            *luma = luma_of(rgb);
        }
    }
    let chroma_width = even_width / 2;
    for block_row in 0..even_height / 2 {
        let top = &pixels[2 * block_row * stride..][..even_width * 4];
        let bottom = &pixels[(2 * block_row + 1) * stride..][..even_width * 4];
        for column in 0..chroma_width {
            let mut sum = [0i32; 3];
            for line in [top, bottom] {
                for pixel in line[column * 8..][..8].chunks_exact(4) {
                    sum[0] += i32::from(pixel[red]);
                    sum[1] += i32::from(pixel[1]);
                    sum[2] += i32::from(pixel[blue]);
                }
            }
            let (u, v) = chroma_of(sum.map(|channel| (channel + 2) / 4));
            u_plane[block_row * chroma_width + column] = u;
            v_plane[block_row * chroma_width + column] = v;
        }
    }
    Some(VideoFrame {
        width: even_width,
        height: even_height,
        data,
    })
}

/// Scales a 32-bit-per-pixel picture (as in [`bgrx_to_i420`]) down to fit
/// `max_side` pixels on its longer side, each output pixel the mean of the
/// input pixels it covers, and returns packed RGB with its size. A picture
/// already small enough keeps its size.
pub fn downscale_rgb(
    width: usize,
    height: usize,
    stride: usize,
    pixels: &[u8],
    rgb_order: bool,
    max_side: usize,
) -> Option<(usize, usize, Vec<u8>)> {
    if width == 0 || height == 0 || max_side == 0 || stride < width * 4 {
        return None;
    }
    if pixels.len() < (height - 1) * stride + width * 4 {
        return None;
    }
    let scale = (width.max(height) as f64 / max_side as f64).max(1.0);
    let out_width = ((width as f64 / scale).round() as usize).clamp(1, width);
    let out_height = ((height as f64 / scale).round() as usize).clamp(1, height);
    let (red, blue) = if rgb_order { (0, 2) } else { (2, 0) };
    let mut rgb = Vec::with_capacity(out_width * out_height * 3);
    for out_y in 0..out_height {
        let y0 = out_y * height / out_height;
        let y1 = ((out_y + 1) * height / out_height).max(y0 + 1);
        for out_x in 0..out_width {
            let x0 = out_x * width / out_width;
            let x1 = ((out_x + 1) * width / out_width).max(x0 + 1);
            let mut sum = [0u64; 3];
            for y in y0..y1 {
                for pixel in pixels[y * stride + x0 * 4..y * stride + x1 * 4].chunks_exact(4) {
                    sum[0] += u64::from(pixel[red]);
                    sum[1] += u64::from(pixel[1]);
                    sum[2] += u64::from(pixel[blue]);
                }
            }
            let count = ((y1 - y0) * (x1 - x0)) as u64;
            rgb.extend(sum.map(|channel| ((channel + count / 2) / count) as u8));
        }
    }
    Some((out_width, out_height, rgb))
}

fn luma_of([r, g, b]: [i32; 3]) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

fn chroma_of([r, g, b]: [i32; 3]) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u as u8, v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BGRX picture where every pixel is `bgrx`, with `padding`
    /// extra bytes per row.
    fn solid(width: usize, height: usize, padding: usize, bgrx: [u8; 4]) -> Vec<u8> {
        let mut row: Vec<u8> = bgrx.iter().copied().cycle().take(width * 4).collect();
        row.extend(std::iter::repeat_n(0xAA, padding));
        row.repeat(height)
    }

    #[test]
    fn white_and_black_match_bt601_limited_range() {
        let white = bgrx_to_i420(2, 2, 8, &solid(2, 2, 0, [255; 4]), false).unwrap();
        assert_eq!(white.data, vec![235, 235, 235, 235, 128, 128]);
        let black = bgrx_to_i420(2, 2, 8, &solid(2, 2, 0, [0, 0, 0, 255]), false).unwrap();
        assert_eq!(black.data, vec![16, 16, 16, 16, 128, 128]);
    }

    #[test]
    fn channel_order_is_honoured() {
        // Pure blue in BGRX is pure red in RGBX.
        let pixels = solid(2, 2, 0, [255, 0, 0, 0]);
        let blue = bgrx_to_i420(2, 2, 8, &pixels, false).unwrap();
        let red = bgrx_to_i420(2, 2, 8, &pixels, true).unwrap();
        assert_eq!(blue.planes().0[0], luma_of([0, 0, 255]));
        assert_eq!(red.planes().0[0], luma_of([255, 0, 0]));
    }

    #[test]
    fn odd_sizes_are_cropped_and_stride_skipped() {
        let frame = bgrx_to_i420(5, 3, 5 * 4 + 12, &solid(5, 3, 12, [255; 4]), false).unwrap();
        assert_eq!((frame.width, frame.height), (4, 2));
        assert_eq!(frame.data.len(), VideoFrame::i420_len(4, 2));
        assert!(frame.planes().0.iter().all(|&luma| luma == 235));
    }

    #[test]
    fn too_small_or_short_input_is_rejected() {
        assert!(bgrx_to_i420(1, 4, 4, &[0; 16], false).is_none());
        assert!(bgrx_to_i420(4, 4, 16, &[0; 20], false).is_none());
        assert!(downscale_rgb(4, 4, 16, &[0; 20], false, 2).is_none());
    }

    #[test]
    fn thumbnail_fits_and_averages() {
        // Left half white, right half black: the 2x1 thumbnail keeps both.
        let mut pixels = Vec::new();
        for _ in 0..4 {
            pixels.extend([255u8; 16]);
            pixels.extend([0, 0, 0, 255].repeat(4));
        }
        let (width, height, rgb) = downscale_rgb(8, 4, 32, &pixels, false, 2).unwrap();
        assert_eq!((width, height), (2, 1));
        assert_eq!(rgb, vec![255, 255, 255, 0, 0, 0]);
    }
}
