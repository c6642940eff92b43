//! Compares Hearth's video encoders with ffmpeg's on the same frames at the
//! same bitrates, one encoder thread each: OpenH264 against libx264, and
//! Hearth's libvpx VP8 against ffmpeg's libvpx at the same real-time settings.
//! Prints markdown tables of encode and decode speed, achieved bitrate and
//! luma PSNR, with `--vp8-speeds` one row per libvpx speed preset, and with
//! `--vp8-temporal` Hearth's VP8 with two temporal layers beside one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hearth_media::VideoFrame;
use hearth_media::codec::h264::{H264Decoder, H264Encoder, H264EncoderConfig};
use hearth_media::codec::vp8::{DEFAULT_CPU_USED, Vp8Decoder, Vp8Encoder};
use hearth_media::codec::{VideoEncoder, VideoEncoderConfig};
use hearth_media::quality::psnr_luma;
use hearth_media::source::{VideoClip, annexb, load_video};

/// Clips measured when none are given, relative to the media folder.
const DEFAULT_CLIPS: [&str; 2] = ["video/BA1_FT_C.264", "video/Zhling_1280x720.264"];

/// Clips shorter than this are looped, so that each measurement encodes at least
/// this many frames.
const MIN_FRAMES: usize = 100;

#[derive(Parser)]
#[command(
    about = "Compare Hearth's OpenH264 and libvpx VP8 encoders with ffmpeg's libx264 and libvpx on one thread"
)]
struct Args {
    /// Video clips (.264 or .y4m). A relative path that does not exist is looked up
    /// in the media folder: HEARTH_MEDIA_DIR, or ../shared/media.
    clips: Vec<PathBuf>,

    /// Target bitrates in kbit/s for every encoder, comma-separated, each 1 to
    /// 2000000 (OpenH264 takes the bitrate in bit/s as an i32).
    #[arg(
        long,
        default_value = "1000",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u32).range(1..=2_000_000)
    )]
    kbps: Vec<u32>,

    /// libvpx speed presets (cpu-used, -16 to 16) to compare on each clip at the
    /// first bitrate, comma-separated, for example `--vp8-speeds=-4,-6,-8,-12`.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        value_parser = clap::value_parser!(i32).range(-16..=16)
    )]
    vp8_speeds: Vec<i32>,

    /// Also measure Hearth's VP8 encoder with two temporal layers at each
    /// bitrate: all frames, and the base layer alone at half the frame rate.
    #[arg(long)]
    vp8_temporal: bool,
}

/// The measurement of one encoding, and with temporal layers the
/// measurement of its base layer decoded alone.
struct Layered {
    whole: Measurement,
    base: Option<Measurement>,
}

/// Result of encoding one clip with one encoder and decoding the output.
struct Measurement {
    encoder: String,
    frames: usize,
    /// Wall time of the encode calls; `None` for a row that shares another
    /// row's encoding.
    encode_time: Option<Duration>,
    /// Wall time of decoding the whole output with Hearth's decoder.
    decode_time: Duration,
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
    let mut speed_rows = Vec::new();
    let mut ffmpeg_commands = Vec::new();
    for path in &clip_paths {
        let clip =
            load_video(path).with_context(|| format!("failed to load {}", path.display()))?;
        let frame_count = looped_frame_count(clip.frames.len());
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );

        for &kbps in &args.kbps {
            let row = |measurement| (name.clone(), kbps, clip.fps, measurement);
            let openh264 = measure_openh264(&clip, frame_count, kbps)
                .with_context(|| format!("OpenH264 measurement failed on {name}"))?;
            rows.push(row(openh264));
            let (x264, command) = measure_x264(&clip, frame_count, kbps)
                .with_context(|| format!("libx264 measurement failed on {name}"))?;
            rows.push(row(x264));
            ffmpeg_commands.push(command);
            let vp8 = measure_vp8(&clip, frame_count, kbps, DEFAULT_CPU_USED)
                .with_context(|| format!("VP8 measurement failed on {name}"))?;
            rows.push(row(vp8));
            let (libvpx, command) =
                measure_ffmpeg_libvpx(&clip, frame_count, kbps, DEFAULT_CPU_USED, false)
                    .with_context(|| format!("ffmpeg libvpx measurement failed on {name}"))?;
            rows.push(row(libvpx.whole));
            ffmpeg_commands.push(command);
            if args.vp8_temporal {
                let hearth = measure_vp8_temporal(&clip, frame_count, kbps)
                    .with_context(|| format!("VP8 temporal layers failed on {name}"))?;
                let (ffmpeg, command) =
                    measure_ffmpeg_libvpx(&clip, frame_count, kbps, DEFAULT_CPU_USED, true)
                        .with_context(|| {
                            format!("ffmpeg libvpx temporal layers failed on {name}")
                        })?;
                ffmpeg_commands.push(command);
                for layers in [hearth, ffmpeg] {
                    rows.push(row(layers.whole));
                    if let Some(base) = layers.base {
                        rows.push((name.clone(), kbps, clip.fps / 2.0, base));
                    }
                }
            }
        }
        let speed_kbps = args.kbps[0];
        for &cpu_used in &args.vp8_speeds {
            let vp8 = measure_vp8(&clip, frame_count, speed_kbps, cpu_used)
                .with_context(|| format!("VP8 cpu-used {cpu_used} failed on {name}"))?;
            speed_rows.push((name.clone(), speed_kbps, clip.fps, vp8));
        }
    }

    print_table(&rows);
    if !speed_rows.is_empty() {
        println!();
        print_table(&speed_rows);
    }
    println!();
    println!("Hearth time: wall time of the encode calls only.");
    println!(
        "ffmpeg time: ffmpeg's -benchmark rtime (the whole transcode, including reading raw \
         frames from a file in the page cache and writing the output)."
    );
    println!("Decode time: Hearth's OpenH264 or libvpx decoder on each encoder's output.");
    println!("ffmpeg commands (WxH, fps and paths vary per clip):");
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
        ..H264EncoderConfig::default()
    })?;
    let (access_units, encode_time) = encode_all(&mut encoder, clip, frame_count)?;
    let encoded_bytes = access_units.iter().map(Vec::len).sum();

    let (decoded, decode_time) = decode_h264(&access_units)?;
    Ok(Measurement {
        encoder: "Hearth OpenH264".into(),
        frames: frame_count,
        encode_time: Some(encode_time),
        decode_time,
        encoded_bytes,
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    })
}

/// Decodes H.264 access units with OpenH264. Returns the pictures and the
/// wall time of the decode calls.
fn decode_h264(access_units: &[Vec<u8>]) -> anyhow::Result<(Vec<VideoFrame>, Duration)> {
    let mut decoder = H264Decoder::new()?;
    let mut decoded = Vec::with_capacity(access_units.len());
    let start = Instant::now();
    for access_unit in access_units {
        decoded.extend(decoder.decode(access_unit)?);
    }
    decoded.extend(decoder.flush()?);
    Ok((decoded, start.elapsed()))
}

/// Decodes VP8 frames with libvpx. Returns the pictures and the wall time of
/// the decode calls.
fn decode_vp8(frames: &[Vec<u8>]) -> anyhow::Result<(Vec<VideoFrame>, Duration)> {
    let mut decoder = Vp8Decoder::new()?;
    let mut decoded = Vec::with_capacity(frames.len());
    let start = Instant::now();
    for frame in frames {
        decoded.extend(decoder.decode(frame)?);
    }
    Ok((decoded, start.elapsed()))
}

/// Encodes the looped clip with Hearth's VP8 encoder in two temporal layers.
/// Returns the measurement of all frames, and of the base layer decoded
/// alone, as an SFU forwards it.
fn measure_vp8_temporal(
    clip: &VideoClip,
    frame_count: usize,
    kbps: u32,
) -> anyhow::Result<Layered> {
    let mut encoder = Vp8Encoder::new(VideoEncoderConfig {
        bitrate_bps: kbps * 1000,
        max_fps: clip.fps as f32,
        keyframe_interval: 0,
        threads: 1,
        temporal_layers: 2,
        ..VideoEncoderConfig::default()
    })?;
    let mut encode_time = Duration::ZERO;
    let mut frames = Vec::with_capacity(frame_count);
    let mut base_indices = Vec::new();
    for index in 0..frame_count {
        let start = Instant::now();
        let encoded = encoder.encode(looped_frame(clip, index))?;
        encode_time += start.elapsed();
        let Some(encoded) = encoded else {
            bail!("the VP8 encoder dropped frame {index}");
        };
        if encoded.temporal.is_none_or(|layer| layer.id == 0) {
            base_indices.push(index);
        }
        frames.push(encoded.data);
    }

    let (decoded, decode_time) = decode_vp8(&frames)?;
    let whole = Measurement {
        encoder: format!("Hearth libvpx VP8, cpu-used {DEFAULT_CPU_USED}, two temporal layers"),
        frames: frame_count,
        encode_time: Some(encode_time),
        decode_time,
        encoded_bytes: frames.iter().map(Vec::len).sum(),
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    };
    Ok(Layered {
        whole,
        base: Some(measure_base_layer(clip, &frames, &base_indices)?),
    })
}

/// Decodes only the frames at `base_indices`, as a receiver of the base
/// temporal layer gets them, and compares each with its source frame.
fn measure_base_layer(
    clip: &VideoClip,
    frames: &[Vec<u8>],
    base_indices: &[usize],
) -> anyhow::Result<Measurement> {
    let mut decoder = Vp8Decoder::new()?;
    let mut decoded = Vec::with_capacity(base_indices.len());
    let start = Instant::now();
    for &index in base_indices {
        let picture = decoder
            .decode(&frames[index])
            .with_context(|| format!("base-layer frame {index} does not decode alone"))?
            .with_context(|| format!("base-layer frame {index} gave no picture"))?;
        decoded.push((index, picture));
    }
    let decode_time = start.elapsed();
    let mut psnr_total = 0.0;
    for (index, picture) in &decoded {
        psnr_total += psnr_luma(looped_frame(clip, *index), picture)
            .with_context(|| format!("base-layer frame {index} has another size"))?;
    }
    Ok(Measurement {
        encoder: "the same, base layer alone (half the frame rate)".into(),
        frames: base_indices.len(),
        encode_time: None,
        decode_time,
        encoded_bytes: base_indices.iter().map(|&index| frames[index].len()).sum(),
        mean_psnr_db: psnr_total / decoded.len().max(1) as f64,
    })
}

/// Encodes the looped clip with Hearth's VP8 encoder at speed preset `cpu_used`.
fn measure_vp8(
    clip: &VideoClip,
    frame_count: usize,
    kbps: u32,
    cpu_used: i32,
) -> anyhow::Result<Measurement> {
    let config = VideoEncoderConfig {
        bitrate_bps: kbps * 1000,
        max_fps: clip.fps as f32,
        keyframe_interval: 0,
        threads: 1,
        ..VideoEncoderConfig::default()
    };
    let mut encoder = Vp8Encoder::with_speed(config, cpu_used)?;
    let (frames, encode_time) = encode_all(&mut encoder, clip, frame_count)?;
    let encoded_bytes = frames.iter().map(Vec::len).sum();
    let (decoded, decode_time) = decode_vp8(&frames)?;
    Ok(Measurement {
        encoder: format!("Hearth libvpx VP8, cpu-used {cpu_used}"),
        frames: frame_count,
        encode_time: Some(encode_time),
        decode_time,
        encoded_bytes,
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    })
}

/// Encodes `frame_count` frames of the looped clip. Returns the encoded
/// frames and the wall time of the encode calls.
fn encode_all(
    encoder: &mut dyn VideoEncoder,
    clip: &VideoClip,
    frame_count: usize,
) -> anyhow::Result<(Vec<Vec<u8>>, Duration)> {
    let mut encode_time = Duration::ZERO;
    let mut frames = Vec::with_capacity(frame_count);
    for index in 0..frame_count {
        let frame = looped_frame(clip, index);
        let start = Instant::now();
        let encoded = encoder.encode(frame)?;
        encode_time += start.elapsed();
        match encoded {
            Some(encoded) => frames.push(encoded.data),
            None => bail!(
                "the {} encoder dropped frame {index}, so decoded frames no longer pair with \
                 source frames",
                encoder.codec()
            ),
        }
    }
    Ok((frames, encode_time))
}

/// Encodes the looped clip with ffmpeg's libvpx at the settings of Hearth's
/// VP8 encoder and decodes the output with Hearth's decoder. Returns the
/// measurement and the ffmpeg command line.
fn measure_ffmpeg_libvpx(
    clip: &VideoClip,
    frame_count: usize,
    kbps: u32,
    cpu_used: i32,
    temporal_layers: bool,
) -> anyhow::Result<(Layered, String)> {
    let work_dir = TempDir::create()?;
    let raw_path = work_dir.path.join("source.yuv");
    let output_path = work_dir.path.join("libvpx.ivf");
    write_raw_yuv(clip, frame_count, &raw_path)?;

    // Hearth's settings: one pass, CBR, real-time deadline, error resilient,
    // no lag, quantizers 2 to 56, a 1000 ms buffer starting at 500 ms,
    // undershoot 100 % and overshoot 15 %, static threshold 1, no denoiser,
    // no automatic keyframes, and the keyframe size cap.
    let bitrate = format!("{kbps}k");
    let initial_buffer = format!("{}k", kbps / 2);
    let cpu_used = cpu_used.to_string();
    let max_intra = ((300.0 * clip.fps / 10.0).max(300.0) as u32).to_string();
    let size = format!("{}x{}", clip.width(), clip.height());
    let fps = clip.fps.to_string();
    let keyframe_interval = (frame_count + 1).to_string();
    // Two layers as Hearth makes them: the base layer at half the frame
    // rate with 60 % of the bitrate, in the pattern base, upper. Layering
    // mode 2 sets libvpx's reference flags for that pattern.
    let temporal = format!(
        "ts_number_layers=2:ts_target_bitrate={},{kbps}:ts_rate_decimator=2,1:\
         ts_periodicity=2:ts_layer_id=0,1:ts_layering_mode=2",
        kbps * 6 / 10
    );
    let temporal_args: Vec<&str> = if temporal_layers {
        vec!["-ts-parameters", &temporal]
    } else {
        Vec::new()
    };
    let raw_input = path_str(&raw_path)?;
    let output = path_str(&output_path)?;
    let ffmpeg_args: Vec<&str> = [
        &["-hide_banner", "-nostdin", "-benchmark", "-y"][..],
        &["-f", "rawvideo", "-pix_fmt", "yuv420p"],
        &["-s", &size, "-r", &fps, "-i", raw_input],
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            &cpu_used,
        ],
        &[
            "-threads",
            "1",
            "-error-resilient",
            "default",
            "-lag-in-frames",
            "0",
        ],
        &["-b:v", &bitrate, "-minrate", &bitrate, "-maxrate", &bitrate],
        &["-bufsize", &bitrate, "-rc_init_occupancy", &initial_buffer],
        &[
            "-qmin",
            "2",
            "-qmax",
            "56",
            "-undershoot-pct",
            "100",
            "-overshoot-pct",
            "15",
        ],
        &[
            "-static-thresh",
            "1",
            "-noise-sensitivity",
            "0",
            "-max-intra-rate",
            &max_intra,
        ],
        &["-g", &keyframe_interval],
        &temporal_args,
        &["-f", "ivf", output],
    ]
    .concat();
    let command_line = format!("ffmpeg {}", ffmpeg_args.join(" "));
    let encode_time = run_ffmpeg(&ffmpeg_args, "libvpx")?;

    let ivf = std::fs::read(&output_path)?;
    let frames = ivf_frames(&ivf).context("ffmpeg wrote an invalid IVF file")?;
    let encoded_bytes = frames.iter().map(Vec::len).sum();
    let (decoded, decode_time) = decode_vp8(&frames)?;
    let layers = if temporal_layers {
        ", two temporal layers"
    } else {
        ""
    };
    let whole = Measurement {
        encoder: format!("ffmpeg libvpx, cpu-used {cpu_used}{layers}"),
        frames: frame_count,
        encode_time: Some(encode_time),
        decode_time,
        encoded_bytes,
        mean_psnr_db: mean_psnr(clip, frame_count, &decoded)?,
    };
    // The pattern starts at the only keyframe, frame 0.
    let base = if temporal_layers {
        let base_indices: Vec<usize> = (0..frames.len()).step_by(2).collect();
        Some(measure_base_layer(clip, &frames, &base_indices)?)
    } else {
        None
    };
    Ok((Layered { whole, base }, command_line))
}

/// Splits an IVF file into its frames: a 32-byte file header, then per frame
/// a 12-byte header (the size as 32-bit little endian, a 64-bit timestamp)
/// and the data.
fn ivf_frames(file: &[u8]) -> Option<Vec<Vec<u8>>> {
    if file.get(..4)? != b"DKIF" {
        return None;
    }
    let header_len = usize::from(u16::from_le_bytes([*file.get(6)?, *file.get(7)?]));
    let mut rest = file.get(header_len..)?;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let size = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let frame = rest.get(12..12 + size)?;
        frames.push(frame.to_vec());
        rest = &rest[12 + size..];
    }
    Some(frames)
}

/// Runs ffmpeg and returns the `rtime` of its `-benchmark` line.
fn run_ffmpeg(ffmpeg_args: &[&str], encoder: &str) -> anyhow::Result<Duration> {
    let output = Command::new("ffmpeg")
        .args(ffmpeg_args)
        .output()
        .with_context(|| {
            format!("failed to run ffmpeg. Install ffmpeg with {encoder} and put it on PATH")
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("ffmpeg failed with {}:\n{stderr}", output.status);
    }
    parse_benchmark_rtime(&stderr)
        .with_context(|| format!("no `bench: ... rtime=` line in ffmpeg's output:\n{stderr}"))
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
    let encode_time = run_ffmpeg(&ffmpeg_args, "libx264")?;

    let encoded_bytes = std::fs::metadata(&output_path)?.len() as usize;
    let stream = std::fs::read(&output_path)?;
    let units = annexb::split_nal_units(&stream);
    let access_units: Vec<Vec<u8>> = annexb::group_access_units(&units)
        .iter()
        .map(|access_unit| annexb::join_annexb(access_unit))
        .collect();
    let (decoded, decode_time) =
        decode_h264(&access_units).context("OpenH264 failed to decode libx264's output")?;

    let measurement = Measurement {
        encoder: "libx264 ultrafast".into(),
        frames: frame_count,
        encode_time: Some(encode_time),
        decode_time,
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

fn print_table(rows: &[(String, u32, f64, Measurement)]) {
    println!(
        "| clip | kbit/s target | encoder | frames | fps encoded | fps decoded | kbit/s achieved | PSNR Y (dB) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for (clip, target_kbps, clip_fps, measurement) in rows {
        let encode_fps = measurement.encode_time.map_or_else(
            || "-".to_owned(),
            |time| format!("{:.0}", measurement.frames as f64 / time.as_secs_f64()),
        );
        let decode_fps = measurement.frames as f64 / measurement.decode_time.as_secs_f64();
        let duration_seconds = measurement.frames as f64 / clip_fps;
        let kbps = measurement.encoded_bytes as f64 * 8.0 / duration_seconds / 1000.0;
        println!(
            "| {clip} | {target_kbps} | {} | {} | {encode_fps} | {decode_fps:.0} | {kbps:.0} | {:.2} |",
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
