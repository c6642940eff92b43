//! Compares Hearth's H.264 encoder (OpenH264) with ffmpeg's libx264 on the same
//! frames at the same bitrate, one encoder thread each, and prints a markdown table
//! of encode speed, achieved bitrate and luma PSNR.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hearth_media::VideoFrame;
use hearth_media::codec::h264::{H264Decoder, H264Encoder, H264EncoderConfig};
use hearth_media::quality::psnr_luma;
use hearth_media::source::{VideoClip, load_video};

/// Clips measured when none are given, relative to the media folder.
const DEFAULT_CLIPS: [&str; 2] = ["video/BA1_FT_C.264", "video/Zhling_1280x720.264"];

/// Clips shorter than this are looped, so that each measurement encodes at least
/// this many frames.
const MIN_FRAMES: usize = 100;

#[derive(Parser)]
#[command(about = "Compare Hearth's OpenH264 encoder with libx264 on one thread")]
struct Args {
    /// Video clips (.264 or .y4m). A relative path that does not exist is looked up
    /// in the media folder: HEARTH_MEDIA_DIR, or ../shared/media.
    clips: Vec<PathBuf>,

    /// Target bitrate in kbit/s for both encoders, 1 to 2000000 (OpenH264 takes the
    /// bitrate in bit/s as an i32).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    kbps: u32,
}

/// Result of encoding one clip with one encoder.
struct Measurement {
    encoder: &'static str,
    frames: usize,
    encode_time: Duration,
    encoded_bytes: usize,
    mean_psnr_db: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clip_paths = resolve_clips(&args.clips)?;

    println!(
        "nasm on PATH: {}",
        if nasm_on_path() { "yes" } else { "no" }
    );
    println!(
        "NOTE: openh264-sys2 assembles OpenH264's SIMD code when nasm was on PATH (or in \
         $NASM) at build time and silently falls back to plain C, about 3x slower at 720p, \
         when it was not. This line checks only the PATH at run time."
    );
    println!();

    let mut rows = Vec::new();
    let mut ffmpeg_commands = Vec::new();
    for path in &clip_paths {
        let clip =
            load_video(path).with_context(|| format!("failed to load {}", path.display()))?;
        let frame_count = looped_frame_count(clip.frames.len());
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );

        let hearth = measure_openh264(&clip, frame_count, args.kbps)
            .with_context(|| format!("OpenH264 measurement failed on {name}"))?;
        let (x264, command) = measure_x264(&clip, frame_count, args.kbps)
            .with_context(|| format!("libx264 measurement failed on {name}"))?;
        rows.push((name.clone(), clip.fps, hearth));
        rows.push((name, clip.fps, x264));
        ffmpeg_commands.push(command);
    }

    print_table(&rows);
    println!();
    println!("OpenH264 time: wall time of the encode calls only.");
    println!(
        "libx264 time: ffmpeg's -benchmark rtime (the whole transcode, including reading raw \
         frames from a file in the page cache and writing the output)."
    );
    println!("ffmpeg command (WxH, fps and paths vary per clip):");
    for command in ffmpeg_commands {
        println!("    {command}");
    }
    Ok(())
}

/// Resolves each clip path: as given when it exists, else inside the media folder.
fn resolve_clips(clips: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let requested: Vec<PathBuf> = if clips.is_empty() {
        DEFAULT_CLIPS.iter().map(PathBuf::from).collect()
    } else {
        clips.to_vec()
    };
    let media_dir = std::env::var_os("HEARTH_MEDIA_DIR")
        .map_or_else(|| PathBuf::from("../shared/media"), PathBuf::from);

    requested
        .into_iter()
        .map(|path| {
            if path.exists() {
                return Ok(path);
            }
            let in_media_dir = media_dir.join(&path);
            if in_media_dir.exists() {
                return Ok(in_media_dir);
            }
            bail!(
                "clip {} not found, also not in the media folder {}. Set HEARTH_MEDIA_DIR to \
                 the folder with the recordings",
                path.display(),
                media_dir.display()
            )
        })
        .collect()
}

fn nasm_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nasm").is_file()))
}

/// Returns the frame count after looping: whole passes of the clip, at least
/// `MIN_FRAMES`.
fn looped_frame_count(clip_frames: usize) -> usize {
    clip_frames * MIN_FRAMES.div_ceil(clip_frames)
}

/// Returns frame `index` of the clip played in a loop.
fn looped_frame(clip: &VideoClip, index: usize) -> &VideoFrame {
    &clip.frames[index % clip.frames.len()]
}

fn measure_openh264(
    clip: &VideoClip,
    frame_count: usize,
    kbps: u32,
) -> anyhow::Result<Measurement> {
    let mut encoder = H264Encoder::new(H264EncoderConfig {
        bitrate_bps: kbps * 1000,
        max_fps: clip.fps as f32,
        keyframe_interval: 0,
        threads: 1,
    })?;

    let mut encode_time = Duration::ZERO;
    let mut access_units = Vec::with_capacity(frame_count);
    for index in 0..frame_count {
        let frame = looped_frame(clip, index);
        let start = Instant::now();
        let encoded = encoder.encode(frame)?;
        encode_time += start.elapsed();
        match encoded {
            Some(encoded) => access_units.push(encoded.data),
            None => bail!(
                "OpenH264 skipped frame {index}, so decoded frames no longer pair with source frames"
            ),
        }
    }
    let encoded_bytes = access_units.iter().map(Vec::len).sum();

    let mut decoder = H264Decoder::new()?;
    let mut decoded = Vec::with_capacity(frame_count);
    for access_unit in &access_units {
        decoded.extend(decoder.decode(access_unit)?);
    }
    decoded.extend(decoder.flush()?);

    Ok(Measurement {
        encoder: "Hearth OpenH264",
        frames: frame_count,
        encode_time,
        encoded_bytes,
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    })
}

/// Encodes the looped clip with ffmpeg's libx264 and decodes the output with
/// OpenH264. Returns the measurement and the ffmpeg command line.
fn measure_x264(
    clip: &VideoClip,
    frame_count: usize,
    kbps: u32,
) -> anyhow::Result<(Measurement, String)> {
    let work_dir = TempDir::create()?;
    let raw_path = work_dir.path.join("source.yuv");
    let output_path = work_dir.path.join("x264.264");
    write_raw_yuv(clip, frame_count, &raw_path)?;

    let bitrate = format!("{kbps}k");
    let size = format!("{}x{}", clip.width(), clip.height());
    let fps = clip.fps.to_string();
    let raw_input = path_str(&raw_path)?;
    let output = path_str(&output_path)?;
    let ffmpeg_args: Vec<&str> = [
        &["-hide_banner", "-nostdin", "-benchmark", "-y"][..],
        &["-f", "rawvideo", "-pix_fmt", "yuv420p"],
        &["-s", &size, "-r", &fps, "-i", raw_input],
        &["-c:v", "libx264", "-preset", "ultrafast"],
        &["-tune", "zerolatency", "-threads", "1"],
        &["-b:v", &bitrate, "-maxrate", &bitrate, "-bufsize", &bitrate],
        &["-f", "h264", output],
    ]
    .concat();
    let command_line = format!("ffmpeg {}", ffmpeg_args.join(" "));

    let output = Command::new("ffmpeg")
        .args(&ffmpeg_args)
        .output()
        .context("failed to run ffmpeg. Install ffmpeg with libx264 and put it on PATH")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("ffmpeg failed with {}:\n{stderr}", output.status);
    }
    let encode_time = parse_benchmark_rtime(&stderr)
        .with_context(|| format!("no `bench: ... rtime=` line in ffmpeg's output:\n{stderr}"))?;

    let encoded_bytes = std::fs::metadata(&output_path)?.len() as usize;
    let decoded = load_video(&output_path)
        .context("OpenH264 failed to decode libx264's output")?
        .frames;

    let measurement = Measurement {
        encoder: "libx264 ultrafast",
        frames: frame_count,
        encode_time,
        encoded_bytes,
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    };
    Ok((measurement, command_line))
}

fn write_raw_yuv(clip: &VideoClip, frame_count: usize, path: &Path) -> anyhow::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    for index in 0..frame_count {
        file.write_all(&looped_frame(clip, index).data)?;
    }
    file.flush()?;
    Ok(())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("temporary path {} is not UTF-8", path.display()))
}

/// Reads the real (wall) time from the line that `ffmpeg -benchmark` prints at
/// the end, such as `bench: utime=0.512s stime=0.020s rtime=0.540s`.
fn parse_benchmark_rtime(stderr: &str) -> Option<Duration> {
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("bench: utime="))?;
    let value = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("rtime="))?;
    let seconds: f64 = value.strip_suffix('s')?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

/// Mean luma PSNR of decoded frames against the looped source frames, in order.
fn mean_psnr(clip: &VideoClip, frame_count: usize, decoded: &[VideoFrame]) -> anyhow::Result<f64> {
    if decoded.len() != frame_count {
        bail!(
            "the decoder returned {} frames, expected {frame_count}",
            decoded.len()
        );
    }
    let mut total = 0.0;
    for (index, frame) in decoded.iter().enumerate() {
        let source = looped_frame(clip, index);
        let psnr = psnr_luma(source, frame).with_context(|| {
            format!(
                "decoded frame {index} is {}x{}, the source is {}x{}",
                frame.width, frame.height, source.width, source.height
            )
        })?;
        total += psnr;
    }
    Ok(total / decoded.len() as f64)
}

fn print_table(rows: &[(String, f64, Measurement)]) {
    println!("| clip | encoder | frames | fps encoded | kbit/s achieved | PSNR Y (dB) |");
    println!("|---|---|---:|---:|---:|---:|");
    for (clip, clip_fps, measurement) in rows {
        let encode_fps = measurement.frames as f64 / measurement.encode_time.as_secs_f64();
        let duration_seconds = measurement.frames as f64 / clip_fps;
        let kbps = measurement.encoded_bytes as f64 * 8.0 / duration_seconds / 1000.0;
        println!(
            "| {clip} | {} | {} | {encode_fps:.0} | {kbps:.0} | {:.2} |",
            measurement.encoder, measurement.frames, measurement.mean_psnr_db
        );
    }
}

/// A private temporary folder, removed with its files when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!("hearth-codec-bench-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: failed to remove {}: {err}", self.path.display());
        }
    }
}
