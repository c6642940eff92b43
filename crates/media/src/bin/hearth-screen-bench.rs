//! Measures screen sharing on the X display in `DISPLAY`: the cost of one
//! capture through MIT-SHM and through plain `GetImage` on the same source
//! in the same run, and the bitrate and text quality of the share's encoder
//! settings on a scrolling page made from the captured picture. Prints
//! markdown tables.
//!
//! Put text on the screen first, for example with ImageMagick under Xvfb:
//! `xvfb-run -s "-screen 0 1920x1080x24" sh -c 'display -geometry +0+0
//! page.png & sleep 2; hearth-screen-bench'`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hearth_media::VideoFrame;
use hearth_media::codec::{VideoCodec, VideoEncoderConfig, new_video_decoder, new_video_encoder};
use hearth_media::quality::{psnr_luma, ssim_luma_detailed};
use hearth_media::screen::{ScreenGrabber, SourceId, X11Transfer, bgrx_to_i420};

/// The luma variance from which an 8x8 block counts as containing text.
const TEXT_VARIANCE: f64 = 100.0;

#[derive(Parser)]
#[command(about = "Measure screen capture cost and screen share encoding on the X display")]
struct Args {
    /// The source to capture, as `hearth screens` lists it.
    #[arg(long, default_value = "screen:0")]
    source: String,
    /// Captures timed per transfer method.
    #[arg(long, default_value_t = 100)]
    captures: usize,
    /// Frames encoded per encoder setting.
    #[arg(long, default_value_t = 50)]
    frames: usize,
    /// Frame rate the encoders are configured for.
    #[arg(long, default_value_t = 10.0)]
    fps: f64,
    /// Rows the page scrolls per frame, as when reading a shared document.
    #[arg(long, default_value_t = 4)]
    scroll: usize,
    /// Target bitrates in kbit/s, comma-separated.
    #[arg(long, default_value = "1000,2500,4000", value_delimiter = ',')]
    kbps: Vec<u32>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let source: SourceId = args.source.parse()?;
    if args.captures == 0 || args.frames == 0 || !args.fps.is_finite() || args.fps <= 0.0 {
        bail!("--captures, --frames and --fps must be positive");
    }

    println!("| transfer | size | capture and I420 conversion, median ms | p90 ms |");
    println!("|---|---|---|---|");
    let mut picture = None;
    for (name, transfer) in [
        ("MIT-SHM", X11Transfer::Auto),
        ("GetImage", X11Transfer::GetImage),
    ] {
        let mut grabber = ScreenGrabber::open(source, transfer)?;
        if transfer == X11Transfer::Auto && !grabber.shared_memory() {
            bail!("the X server offers no MIT-SHM to this process; run the bench on its machine");
        }
        let (frame, times) = time_captures(&mut grabber, args.captures)?;
        println!(
            "| {name} | {}x{} | {:.2} | {:.2} |",
            frame.width,
            frame.height,
            percentile(&times, 0.5),
            percentile(&times, 0.9)
        );
        picture = Some(frame);
    }
    let picture = picture.expect("at least one capture ran");
    let conversion = time_conversion(picture.width, picture.height);
    println!(
        "| (conversion alone) | {}x{} | {conversion:.2} | |",
        picture.width, picture.height
    );

    println!();
    println!(
        "| codec | screen content mode | target kbit/s | sent kbit/s | text SSIM (luma) | PSNR dB (luma) | encode ms/frame |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pages = scrolling_pages(&picture, args.frames, args.scroll);
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        for screen_content in [false, true] {
            for &kbps in &args.kbps {
                let result = encode_pages(&pages, codec, screen_content, kbps, args.fps)
                    .with_context(|| format!("{codec} at {kbps} kbit/s"))?;
                println!(
                    "| {codec} | {} | {kbps} | {:.0} | {:.4} | {:.2} | {:.1} |",
                    if screen_content { "on" } else { "off" },
                    result.kbps,
                    result.ssim,
                    result.psnr,
                    result.encode_ms
                );
            }
        }
    }
    Ok(())
}

/// Returns the last picture and the time of each capture, in ms.
fn time_captures(
    grabber: &mut ScreenGrabber,
    captures: usize,
) -> anyhow::Result<(VideoFrame, Vec<f64>)> {
    // The first capture warms up the connection and the segment.
    let mut frame = grabber.grab()?;
    let mut times = Vec::with_capacity(captures);
    for _ in 0..captures {
        let started = Instant::now();
        frame = grabber.grab()?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((frame, times))
}

/// Returns the median time of converting a BGRX picture of this size, in ms.
fn time_conversion(width: usize, height: usize) -> f64 {
    let pixels: Vec<u8> = (0..width * height * 4).map(|i| (i * 7) as u8).collect();
    let times: Vec<f64> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let frame = bgrx_to_i420(width, height, width * 4, &pixels, false);
            std::hint::black_box(frame);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    percentile(&times, 0.5)
}

fn percentile(times: &[f64], fraction: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

/// Makes `count` pictures of the page scrolling up by `rows` luma rows per
/// picture, wrapping around; chroma scrolls by half as many rows.
fn scrolling_pages(page: &VideoFrame, count: usize, rows: usize) -> Vec<VideoFrame> {
    let rows = rows & !1;
    (0..count)
        .map(|index| {
            let offset = index * rows;
            let (y, u, v) = page.planes();
            let mut data = Vec::with_capacity(page.data.len());
            for (plane, width, height, shift) in [
                (y, page.width, page.height, offset),
                (u, page.chroma_width(), page.chroma_height(), offset / 2),
                (v, page.chroma_width(), page.chroma_height(), offset / 2),
            ] {
                for row in 0..height {
                    let source = (row + shift) % height;
                    data.extend_from_slice(&plane[source * width..][..width]);
                }
            }
            VideoFrame {
                width: page.width,
                height: page.height,
                data,
            }
        })
        .collect()
}

struct EncodeResult {
    kbps: f64,
    ssim: f64,
    psnr: f64,
    encode_ms: f64,
}

/// Encodes and decodes the pages; quality is the mean over decoded pictures.
fn encode_pages(
    pages: &[VideoFrame],
    codec: VideoCodec,
    screen_content: bool,
    kbps: u32,
    fps: f64,
) -> anyhow::Result<EncodeResult> {
    let mut encoder = new_video_encoder(
        codec,
        VideoEncoderConfig {
            bitrate_bps: kbps * 1000,
            max_fps: fps as f32,
            threads: 1,
            screen_content,
            ..VideoEncoderConfig::default()
        },
    )?;
    let mut decoder = new_video_decoder(codec)?;
    let (mut bytes, mut encode_time) = (0usize, Duration::ZERO);
    let (mut ssim_sum, mut psnr_sum, mut decoded) = (0.0, 0.0, 0usize);
    for page in pages {
        let started = Instant::now();
        let encoded = encoder.encode(page)?;
        encode_time += started.elapsed();
        let Some(encoded) = encoded else {
            continue;
        };
        bytes += encoded.data.len();
        if let Some(picture) = decoder.decode(&encoded.data)? {
            ssim_sum += ssim_luma_detailed(page, &picture, TEXT_VARIANCE).unwrap_or(1.0);
            psnr_sum += psnr_luma(page, &picture).unwrap_or(0.0);
            decoded += 1;
        }
    }
    if decoded == 0 {
        bail!("nothing was decoded");
    }
    let seconds = pages.len() as f64 / fps;
    Ok(EncodeResult {
        kbps: bytes as f64 * 8.0 / seconds / 1000.0,
        ssim: ssim_sum / decoded as f64,
        psnr: psnr_sum / decoded as f64,
        encode_ms: encode_time.as_secs_f64() * 1000.0 / pages.len() as f64,
    })
}
