//! Objective quality measures for tests and call reports.

use crate::frame::VideoFrame;

/// PSNR of the luma plane in dB, capped at 100 dB for identical pictures.
/// Returns `None` when the sizes differ.
pub fn psnr_luma(reference: &VideoFrame, received: &VideoFrame) -> Option<f64> {
    if (reference.width, reference.height) != (received.width, received.height) {
        return None;
    }
    let (reference_y, _, _) = reference.planes();
    let (received_y, _, _) = received.planes();
    let squared_error: u64 = reference_y
        .iter()
        .zip(received_y)
        .map(|(&a, &b)| {
            let diff = i64::from(a) - i64::from(b);
            (diff * diff) as u64
        })
        .sum();
    if squared_error == 0 {
        return Some(100.0);
    }
    let mse = squared_error as f64 / reference_y.len() as f64;
    Some((10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0))
}

/// Mean SSIM of the luma plane (Wang et al. 2004) over non-overlapping 8x8
/// blocks, with the usual constants K1 = 0.01 and K2 = 0.03 for 8-bit
/// samples: 1.0 for identical pictures, lower for each lost detail. Returns
/// `None` when the sizes differ or the picture is smaller than one block.
pub fn ssim_luma(reference: &VideoFrame, received: &VideoFrame) -> Option<f64> {
    let blocks = ssim_luma_blocks(reference, received)?;
    Some(blocks.iter().map(|block| block.ssim).sum::<f64>() / blocks.len() as f64)
}

/// Mean luma SSIM over the blocks whose reference luma has a variance of at
/// least `min_variance`, such as the blocks with text on a plain page.
/// Blurred text loses local contrast and structure in exactly those
/// blocks, while the plain ones stay near 1.0 and would hide the loss in
/// [`ssim_luma`]. Returns `None` when no block qualifies.
pub fn ssim_luma_detailed(
    reference: &VideoFrame,
    received: &VideoFrame,
    min_variance: f64,
) -> Option<f64> {
    let blocks: Vec<f64> = ssim_luma_blocks(reference, received)?
        .into_iter()
        .filter(|block| block.reference_variance >= min_variance)
        .map(|block| block.ssim)
        .collect();
    (!blocks.is_empty()).then(|| blocks.iter().sum::<f64>() / blocks.len() as f64)
}

/// The SSIM of one 8x8 luma block.
#[derive(Debug, Clone, Copy)]
pub struct BlockSsim {
    /// The variance of the reference's luma samples in the block.
    pub reference_variance: f64,
    pub ssim: f64,
}

/// Computes the SSIM of every 8x8 luma block, row by row; the partial
/// blocks at the right and bottom edges are left out.
pub fn ssim_luma_blocks(reference: &VideoFrame, received: &VideoFrame) -> Option<Vec<BlockSsim>> {
    const BLOCK: usize = 8;
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    if (reference.width, reference.height) != (received.width, received.height) {
        return None;
    }
    let width = reference.width;
    let (blocks_x, blocks_y) = (width / BLOCK, reference.height / BLOCK);
    if blocks_x == 0 || blocks_y == 0 {
        return None;
    }
    let (a, _, _) = reference.planes();
    let (b, _, _) = received.planes();
    let count = (BLOCK * BLOCK) as f64;
    let mut blocks = Vec::with_capacity(blocks_x * blocks_y);
    for block_y in 0..blocks_y {
        for block_x in 0..blocks_x {
            let (mut sum_a, mut sum_b, mut sum_aa, mut sum_bb, mut sum_ab) =
                (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in block_y * BLOCK..(block_y + 1) * BLOCK {
                for x in block_x * BLOCK..(block_x + 1) * BLOCK {
                    let va = f64::from(a[y * width + x]);
                    let vb = f64::from(b[y * width + x]);
                    sum_a += va;
                    sum_b += vb;
                    sum_aa += va * va;
                    sum_bb += vb * vb;
                    sum_ab += va * vb;
                }
            }
            let (mean_a, mean_b) = (sum_a / count, sum_b / count);
            let var_a = sum_aa / count - mean_a * mean_a;
            let var_b = sum_bb / count - mean_b * mean_b;
            let covariance = sum_ab / count - mean_a * mean_b;
            let ssim = ((2.0 * mean_a * mean_b + C1) * (2.0 * covariance + C2))
                / ((mean_a * mean_a + mean_b * mean_b + C1) * (var_a + var_b + C2));
            blocks.push(BlockSsim {
                reference_variance: var_a,
                ssim,
            });
        }
    }
    Some(blocks)
}

/// Finds the lag, in samples, at which `received` best matches `sent`:
/// `received[n]` is most like `sent[n + lag]`. Searches lags in
/// `-max_lag..=max_lag` by normalised cross-correlation and returns the lag
/// with its correlation coefficient.
pub fn best_lag(sent: &[f32], received: &[f32], max_lag: usize) -> Option<(i64, f64)> {
    // Decimate by 8 (48 kHz to 6 kHz) for a coarse search, then refine at full rate.
    const DECIMATION: usize = 8;
    let coarse_sent: Vec<f32> = decimate(sent, DECIMATION);
    let coarse_received: Vec<f32> = decimate(received, DECIMATION);
    let coarse_max = (max_lag / DECIMATION) as i64;
    let (coarse_lag, _) = search(&coarse_sent, &coarse_received, -coarse_max..=coarse_max)?;

    let center = coarse_lag * DECIMATION as i64;
    let span = 2 * DECIMATION as i64;
    search(sent, received, (center - span)..=(center + span))
}

fn decimate(samples: &[f32], factor: usize) -> Vec<f32> {
    samples
        .chunks(factor)
        .map(|chunk| chunk.iter().sum::<f32>() / chunk.len() as f32)
        .collect()
}

fn search(
    sent: &[f32],
    received: &[f32],
    lags: std::ops::RangeInclusive<i64>,
) -> Option<(i64, f64)> {
    let mut best: Option<(i64, f64)> = None;
    for lag in lags {
        let Some(score) = correlation(sent, received, lag) else {
            continue;
        };
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((lag, score));
        }
    }
    best
}

/// Normalised correlation of `received[n]` with `sent[n + lag]` over the overlap.
fn correlation(sent: &[f32], received: &[f32], lag: i64) -> Option<f64> {
    let (mut dot, mut energy_sent, mut energy_received) = (0.0f64, 0.0f64, 0.0f64);
    let mut overlap = 0usize;
    for (n, &r) in received.iter().enumerate() {
        let index = n as i64 + lag;
        if index < 0 {
            continue;
        }
        let Some(&s) = sent.get(index as usize) else {
            break;
        };
        dot += f64::from(s) * f64::from(r);
        energy_sent += f64::from(s) * f64::from(s);
        energy_received += f64::from(r) * f64::from(r);
        overlap += 1;
    }
    // Require a quarter of a second of overlap at 48 kHz (less after decimation)
    // so that a tiny overlap at the edge cannot win by chance.
    if overlap < received.len().min(sent.len()) / 4 || energy_sent == 0.0 || energy_received == 0.0
    {
        return None;
    }
    Some(dot / (energy_sent * energy_received).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_identical_frames_is_capped() {
        let frame = VideoFrame {
            width: 4,
            height: 2,
            data: vec![128; VideoFrame::i420_len(4, 2)],
        };
        assert_eq!(psnr_luma(&frame, &frame), Some(100.0));
    }

    #[test]
    fn psnr_of_offset_frame() {
        let reference = VideoFrame {
            width: 4,
            height: 2,
            data: vec![100; VideoFrame::i420_len(4, 2)],
        };
        let mut received = reference.clone();
        for value in &mut received.data[..8] {
            *value = 110;
        }
        // MSE 100 -> 10 * log10(65025 / 100) = 28.13 dB
        let psnr = psnr_luma(&reference, &received).unwrap();
        assert!((psnr - 28.13).abs() < 0.01, "psnr {psnr}");
    }

    #[test]
    fn ssim_is_one_for_identical_and_drops_for_blur() {
        // Vertical stripes one pixel wide, like the strokes of small text.
        let (width, height) = (16, 16);
        let mut data: Vec<u8> = (0..width * height)
            .map(|index| if index % 2 == 0 { 16 } else { 235 })
            .collect();
        data.extend(std::iter::repeat_n(128, 2 * 8 * 8));
        let sharp = VideoFrame {
            width,
            height,
            data,
        };
        let mut blurred = sharp.clone();
        for value in &mut blurred.data[..width * height] {
            *value = 126;
        }
        assert_eq!(ssim_luma(&sharp, &sharp), Some(1.0));
        let ssim = ssim_luma(&sharp, &blurred).unwrap();
        assert!(ssim < 0.1, "ssim {ssim}");
        assert_eq!(ssim_luma(&sharp, &sharp.half()), None);
    }

    #[test]
    fn detailed_ssim_skips_plain_blocks() {
        // The left 8x8 block is plain grey, the right one has stripes.
        let (width, height) = (16, 8);
        let mut data: Vec<u8> = (0..width * height)
            .map(|index| match (index % width < 8, index % 2 == 0) {
                (true, _) => 128,
                (false, true) => 16,
                (false, false) => 235,
            })
            .collect();
        data.extend(std::iter::repeat_n(128, 2 * 8 * 4));
        let sharp = VideoFrame {
            width,
            height,
            data,
        };
        let mut flat = sharp.clone();
        for value in &mut flat.data[..width * height] {
            *value = 128;
        }
        let overall = ssim_luma(&sharp, &flat).unwrap();
        let detailed = ssim_luma_detailed(&sharp, &flat, 100.0).unwrap();
        assert!(overall > 0.45, "overall {overall}");
        assert!(detailed < 0.05, "detailed {detailed}");
        assert_eq!(ssim_luma_detailed(&flat, &flat, 100.0), None);
    }

    #[test]
    fn lag_of_delayed_noise_is_found() {
        // Low-pass filtered pseudo-random noise: no period for a wrong lag to match.
        let mut state = 12345u32;
        let mut previous = 0.0f32;
        let sent: Vec<f32> = (0..48_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let white = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                previous = 0.9 * previous + 0.1 * white;
                previous
            })
            .collect();
        let delay = 1234;
        let mut received = vec![0.0; delay];
        received.extend_from_slice(&sent[..40_000]);
        let (lag, score) = best_lag(&sent, &received, 4800).unwrap();
        assert_eq!(lag, -(delay as i64));
        assert!(score > 0.99, "score {score}");
    }
}
