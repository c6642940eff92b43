//! Measures Hearth's audio path on the real recordings and prints markdown
//! tables. Noise suppression: SNR against the clean speech and PESQ, before
//! and after. Echo cancellation: ERLE after convergence and the time to
//! converge over a simulated echo path. Packet loss: PESQ with and without
//! FEC and concealment, with ffmpeg's libopus at the same bitrate as the
//! reference. The mouth-to-ear latency through real devices is measured
//! by `crates/media/tests/audio_latency.rs`.
//!
//! PESQ comes from the `pesq` package on PyPI (ITU-T P.862.2 wideband at
//! 16 kHz), run through `python3`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Parser;
use hearth_media::audio::{
    AudioProcessor, CHUNK_SAMPLES, EchoSuppression, NoiseSuppression, ProcessingConfig,
};
use hearth_media::audio_jitter::{AudioJitterBuffer, AudioJitterConfig, PlayoutAction};
use hearth_media::codec::opus::{
    DEFAULT_EXPECTED_LOSS_PERCENT, OpusConfig, OpusDecoder, OpusEncoder, is_dtx_packet,
};
use hearth_media::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};
use hearth_media::jitter::RtpPacket;
use hearth_media::quality::best_lag;
use hearth_media::receive::decode_playout;
use hearth_media::source::wav;

const SPEECH: [&str; 2] = [
    "speech/librivox_sense_and_sensibility_0870.wav",
    "speech/librivox_sense_and_sensibility_0890.wav",
];
const NOISE: [&str; 2] = [
    "noise/speechcommands_doing_the_dishes_10s.wav",
    "noise/speechcommands_exercise_bike_10s.wav",
];
/// PESQ's wideband mode runs at 16 kHz.
const PESQ_RATE: u32 = 16_000;
/// Largest delay searched when aligning an output with its reference: 300 ms.
const MAX_ALIGN_LAG: usize = 14_400;

#[derive(Parser)]
#[command(about = "Measure Hearth's noise suppression, echo cancellation and loss concealment")]
struct Args {
    /// Sections to run, comma-separated: noise, echo, loss.
    #[arg(long, value_delimiter = ',', default_value = "noise,echo,loss")]
    sections: Vec<String>,

    /// Seed of the random packet loss.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Signal-to-noise ratio of the noisy inputs, in dB.
    #[arg(long, default_value_t = 5.0)]
    snr_db: f64,

    /// Opus bitrate in kbit/s, for Hearth's encoder and ffmpeg's.
    #[arg(long, default_value_t = 32)]
    kbps: i32,

    /// Packet loss in percent that both encoders plan their FEC for.
    #[arg(long, default_value_t = DEFAULT_EXPECTED_LOSS_PERCENT)]
    expected_loss: i32,

    /// Random loss patterns per loss rate, with seeds `seed` onwards; the
    /// tables show the mean.
    #[arg(long, default_value_t = 4)]
    patterns: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    check_pesq()?;
    let media = media_dir();
    let speech = SPEECH
        .iter()
        .map(|name| load(&media.join(name)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    for section in &args.sections {
        match section.as_str() {
            "noise" => noise_section(&media, &speech, args.snr_db)?,
            "echo" => echo_section(&speech)?,
            "loss" => loss_section(&media, &speech, &args)?,
            other => bail!("unknown section {other:?}; choose from noise, echo, loss"),
        }
    }
    Ok(())
}

fn media_dir() -> PathBuf {
    std::env::var_os("HEARTH_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/media"))
}

fn load(path: &Path) -> anyhow::Result<Vec<f32>> {
    let clip = wav::load(path).with_context(|| {
        format!(
            "cannot load {}; set HEARTH_MEDIA_DIR to the recordings folder",
            path.display()
        )
    })?;
    Ok(clip.samples)
}

fn name_of(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".wav")
}

// Noise suppression.

fn noise_section(media: &Path, speech: &[Vec<f32>], snr_db: f64) -> anyhow::Result<()> {
    let noises = NOISE
        .iter()
        .map(|name| load(&media.join(name)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    struct Row {
        speech: String,
        noise: String,
        snr: [f64; 4],
    }
    let suppressors = [
        ("RNNoise", NoiseSuppression::Rnnoise, false),
        ("APM NS", NoiseSuppression::Apm, false),
        ("RNNoise + AGC", NoiseSuppression::Rnnoise, true),
    ];
    let mut rows = Vec::new();
    let mut pesq_jobs = Vec::new();
    for (speech_index, clean) in speech.iter().enumerate() {
        for (noise_index, noise) in noises.iter().enumerate() {
            let (clean, noisy) = mix_at_snr(clean, noise, snr_db);
            let mut snr = [snr_against(&clean, &noisy), 0.0, 0.0, 0.0];
            pesq_jobs.push((clean.clone(), noisy.clone()));
            for (slot, (_, suppression, gain_control)) in suppressors.iter().enumerate() {
                let config = ProcessingConfig {
                    noise_suppression: *suppression,
                    gain_control: *gain_control,
                    ..ProcessingConfig::bypass()
                };
                let output = align_to(&clean, &process_alone(config, &noisy)?);
                snr[slot + 1] = snr_against(&clean, &output);
                pesq_jobs.push((clean.clone(), output));
            }
            rows.push(Row {
                speech: name_of(SPEECH[speech_index]).to_owned(),
                noise: name_of(NOISE[noise_index]).to_owned(),
                snr,
            });
        }
    }
    let scores = pesq(&pesq_jobs)?;

    println!("\n## Noise suppression at {snr_db} dB SNR\n");
    println!(
        "| speech | noise | SNR noisy | SNR RNNoise | SNR APM NS | SNR RNNoise + AGC | PESQ noisy | PESQ RNNoise | PESQ APM NS | PESQ RNNoise + AGC |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (row, scores) in rows.iter().zip(scores.chunks(4)) {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
            row.speech,
            row.noise,
            row.snr[0],
            row.snr[1],
            row.snr[2],
            row.snr[3],
            scores[0],
            scores[1],
            scores[2],
            scores[3]
        );
    }
    Ok(())
}

/// Scales `noise`, looped to the speech's length, so that the mix has
/// `snr_db` of speech power over noise power, as sox's `-m -v` mixing does
/// with hand-picked volumes. Both signals are scaled down together when the
/// mix would clip. Returns the clean speech at the mix's scale and the mix.
fn mix_at_snr(speech: &[f32], noise: &[f32], snr_db: f64) -> (Vec<f32>, Vec<f32>) {
    let noise: Vec<f32> = (0..speech.len()).map(|i| noise[i % noise.len()]).collect();
    let gain = (power(speech) / power(&noise) / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    let mut mix: Vec<f32> = speech
        .iter()
        .zip(&noise)
        .map(|(s, n)| s + gain * n)
        .collect();
    let peak = mix.iter().fold(0.0f32, |max, s| max.max(s.abs()));
    let headroom = if peak > 0.99 { 0.99 / peak } else { 1.0 };
    mix.iter_mut().for_each(|s| *s *= headroom);
    let clean = speech.iter().map(|s| s * headroom).collect();
    (clean, mix)
}

/// Runs `input` through a processor without far-end audio, padded so that
/// every input sample comes out despite RNNoise's one-chunk delay.
fn process_alone(config: ProcessingConfig, input: &[f32]) -> anyhow::Result<Vec<f32>> {
    let mut processor = AudioProcessor::new(config)?;
    let mut padded = input.to_vec();
    padded.resize(
        input.len().next_multiple_of(CHUNK_SAMPLES) + CHUNK_SAMPLES,
        0.0,
    );
    let mut output = Vec::with_capacity(padded.len());
    processor.process_capture(&padded, &mut output)?;
    Ok(output)
}

/// Shifts `output` so that it lines up with `reference` and cuts it to the
/// same length, padding with silence.
fn align_to(reference: &[f32], output: &[f32]) -> Vec<f32> {
    let lag = best_lag(reference, output, MAX_ALIGN_LAG).map_or(0, |(lag, _)| lag);
    (0..reference.len())
        .map(|n| {
            let index = n as i64 - lag;
            if index >= 0 {
                output.get(index as usize).copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

fn power(samples: &[f32]) -> f64 {
    samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len().max(1) as f64
}

/// Returns the SNR of `signal` against `clean` in dB: clean power over the
/// power of their difference.
fn snr_against(clean: &[f32], signal: &[f32]) -> f64 {
    let error: Vec<f32> = clean.iter().zip(signal).map(|(c, s)| c - s).collect();
    10.0 * (power(clean) / power(&error)).log10()
}

// Echo cancellation.

/// Far-end level at the speaker, and the echo path from speaker to
/// microphone: 60 ms of device and air delay, a direct path and 40 ms of
/// exponentially decaying reflections, with 10 dB echo return loss.
const ECHO_DELAY_SAMPLES: usize = 2_880;
const ECHO_TAIL_SAMPLES: usize = 1_920;
const ECHO_RETURN_LOSS_DB: f64 = 10.0;
/// Microphone self-noise, in dBFS.
const MIC_NOISE_DBFS: f64 = -70.0;
/// RMS level of the far end as the speaker plays it, in dBFS.
const FAR_END_DBFS: f64 = -20.0;
/// Echo level above the microphone noise from which a window counts, so
/// that the noise floor does not cap the measured ERLE.
const ACTIVE_ABOVE_NOISE_DB: f64 = 30.0;
/// RMS level of the near-end talker at the microphone, in dBFS.
const NEAR_END_DBFS: f64 = -26.0;
/// Where the near end starts talking over the far end: 5 s.
const DOUBLE_TALK_START: usize = 240_000;
/// Window of the ERLE measurement: 100 ms.
const ERLE_WINDOW: usize = 4_800;

fn echo_section(speech: &[Vec<f32>]) -> anyhow::Result<()> {
    let far_end: Vec<f32> = speech.iter().flatten().copied().collect();
    let level = (10f64.powf(FAR_END_DBFS / 10.0) / power(&far_end)).sqrt() as f32;
    let far_end: Vec<f32> = far_end.iter().map(|s| s * level).collect();
    let path = echo_path();
    let mut random = Lcg(7);
    let noise_amplitude = 10f64.powf(MIC_NOISE_DBFS / 20.0) * 3f64.sqrt();
    let microphone: Vec<f32> = (0..far_end.len())
        .map(|n| {
            let echo: f32 = path
                .iter()
                .enumerate()
                .filter_map(|(k, h)| {
                    let index = n.checked_sub(ECHO_DELAY_SAMPLES + k)?;
                    Some(h * far_end[index])
                })
                .sum();
            echo + (random.uniform() * noise_amplitude) as f32
        })
        .collect();

    println!("\n## Echo cancellation\n");
    println!(
        "Far end: both speech clips at {FAR_END_DBFS} dBFS RMS, {:.1} s; echo path {} ms delay, {} ms tail, {} dB ERL; microphone noise {} dBFS; windows of 100 ms count where the echo is {ACTIVE_ABOVE_NOISE_DB} dB above the noise.\n",
        far_end.len() as f64 / f64::from(AUDIO_RATE),
        ECHO_DELAY_SAMPLES * 1000 / AUDIO_RATE as usize,
        ECHO_TAIL_SAMPLES * 1000 / AUDIO_RATE as usize,
        ECHO_RETURN_LOSS_DB,
        MIC_NOISE_DBFS
    );
    println!(
        "| chain | ERLE after convergence (last 5 s) | ERLE in the first 0.5 s | first 100 ms window from which every later one is >= 20 dB |"
    );
    println!("|---|---|---|---|");
    let aec_only = |echo_suppression| ProcessingConfig {
        noise_suppression: NoiseSuppression::Off,
        gain_control: false,
        echo_suppression,
        ..ProcessingConfig::default()
    };
    let chains = [
        ("AEC only, low suppression", aec_only(EchoSuppression::Low)),
        (
            "AEC only, moderate suppression",
            aec_only(EchoSuppression::Moderate),
        ),
        (
            "AEC only, high suppression",
            aec_only(EchoSuppression::High),
        ),
        (
            "AEC (moderate) + RNNoise + AGC, the call default",
            ProcessingConfig::default(),
        ),
    ];
    for (name, config) in &chains {
        let output = cancel_echo(*config, &far_end, &microphone)?;
        let windows = erle_windows(&microphone, &output);
        let after = erle_over(&windows, windows.len().saturating_sub(50)..windows.len());
        let first = erle_over(&windows, 0..5);
        // The echo has converged from the first active window on which no
        // later active window falls below 20 dB.
        let converged = (0..windows.len())
            .find(|&start| {
                windows[start].is_some()
                    && (start..windows.len()).all(|w| erle_over(&windows, w..w + 1) >= 20.0)
            })
            .map_or("never".to_owned(), |start| {
                format!("{:.1} s", start as f64 * 0.1)
            });
        println!(
            "| {name} | {} | {} | {converged} |",
            describe_erle(after),
            describe_erle(first)
        );
    }

    double_talk(speech, &far_end, &microphone, &chains)
}

/// Measures how much of a near-end talker survives while the far end talks
/// too: the second clip, at `NEAR_END_DBFS`, joins the microphone
/// `DOUBLE_TALK_START` into the far end.
fn double_talk(
    speech: &[Vec<f32>],
    far_end: &[f32],
    echo: &[f32],
    chains: &[(&str, ProcessingConfig)],
) -> anyhow::Result<()> {
    let near = &speech[1];
    let level = (10f64.powf(NEAR_END_DBFS / 10.0) / power(near)).sqrt() as f32;
    let near: Vec<f32> = near.iter().map(|s| s * level).collect();
    let start = DOUBLE_TALK_START;
    let mut microphone = echo.to_vec();
    for (sample, near) in microphone[start..].iter_mut().zip(&near) {
        *sample += near;
    }
    let span = start..start + near.len().min(microphone.len() - start);
    let near = &near[..span.len()];

    let mut jobs = vec![(near.to_vec(), microphone[span.clone()].to_vec())];
    let mut levels = Vec::new();
    for (_, config) in chains {
        let output = cancel_echo(*config, far_end, &microphone)?;
        let segment = output[span.clone()].to_vec();
        levels.push(10.0 * (power(&segment) / power(near)).log10());
        jobs.push((near.to_vec(), segment));
    }
    let scores = pesq(&jobs)?;

    println!(
        "\nDouble talk: the second clip at {NEAR_END_DBFS} dBFS RMS as the near end from {:.1} s, over the far end's echo. PESQ against the near-end speech alone:\n",
        start as f64 / f64::from(AUDIO_RATE)
    );
    println!("| signal | PESQ | level against the near end alone |");
    println!("|---|---|---|");
    let before = 10.0 * (power(&microphone[span]) / power(near)).log10();
    println!(
        "| microphone (near end + echo) | {:.2} | {before:+.1} dB |",
        scores[0]
    );
    for ((name, _), (score, level)) in chains.iter().zip(scores[1..].iter().zip(&levels)) {
        println!("| {name} | {score:.2} | {level:+.1} dB |");
    }
    Ok(())
}

/// Builds the impulse response of the simulated echo path, without the delay.
fn echo_path() -> Vec<f32> {
    let mut random = Lcg(3);
    let mut path: Vec<f64> = (0..ECHO_TAIL_SAMPLES)
        .map(|k| random.uniform() * 0.3 * (-(k as f64) / 480.0).exp())
        .collect();
    path[0] = 1.0;
    let energy: f64 = path.iter().map(|h| h * h).sum();
    let scale = (10f64.powf(-ECHO_RETURN_LOSS_DB / 10.0) / energy).sqrt();
    path.iter().map(|h| (h * scale) as f32).collect()
}

/// Feeds far end and microphone in 10 ms steps, far end first as a speaker
/// callback would, and returns the processed microphone aligned with it.
fn cancel_echo(
    config: ProcessingConfig,
    far_end: &[f32],
    microphone: &[f32],
) -> anyhow::Result<Vec<f32>> {
    let mut processor = AudioProcessor::new(config)?;
    let mut output = Vec::with_capacity(microphone.len() + CHUNK_SAMPLES);
    for (far, near) in far_end
        .chunks(CHUNK_SAMPLES)
        .zip(microphone.chunks(CHUNK_SAMPLES))
    {
        processor.push_far_end(far)?;
        processor.process_capture(near, &mut output)?;
    }
    processor.process_capture(&vec![0.0; 2 * CHUNK_SAMPLES], &mut output)?;
    // RNNoise delays its output by one chunk.
    let delay = if config.noise_suppression == NoiseSuppression::Rnnoise {
        CHUNK_SAMPLES
    } else {
        0
    };
    Ok(output[delay..delay + microphone.len().min(output.len() - delay)].to_vec())
}

/// Returns (microphone power, output power) per window where the echo is
/// `ACTIVE_ABOVE_NOISE_DB` above the microphone noise, `None` for quieter
/// windows.
fn erle_windows(microphone: &[f32], output: &[f32]) -> Vec<Option<(f64, f64)>> {
    let threshold = 10f64.powf((MIC_NOISE_DBFS + ACTIVE_ABOVE_NOISE_DB) / 10.0);
    microphone
        .chunks(ERLE_WINDOW)
        .zip(output.chunks(ERLE_WINDOW))
        .map(|(mic, out)| (power(mic), power(out)))
        .map(|(mic, out)| (mic > threshold).then_some((mic, out)))
        .collect()
}

/// Formats an ERLE. Beyond 60 dB it only shows that the output is far
/// below the microphone noise, for example because RNNoise removed it.
fn describe_erle(erle_db: f64) -> String {
    if erle_db > 60.0 {
        "> 60 dB (output below the microphone noise)".to_owned()
    } else {
        format!("{erle_db:.1} dB")
    }
}

/// ERLE in dB over the active windows in `range`; an empty range counts
/// as converged.
fn erle_over(windows: &[Option<(f64, f64)>], range: std::ops::Range<usize>) -> f64 {
    let (mic, out) = windows[range]
        .iter()
        .flatten()
        .fold((0.0, 0.0), |(m, o), (mic, out)| (m + mic, o + out));
    if mic == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (mic / out.max(1e-20)).log10()
}

/// A linear congruential generator for repeatable noise and loss patterns.
struct Lcg(u64);

impl Lcg {
    /// Returns a uniform value in [-1, 1).
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// Returns true with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.uniform() + 1.0) / 2.0 < p
    }
}

// Packet loss.

/// Start of the 200 ms burst: 2 s into the clip.
const BURST_START_FRAME: usize = 100;
const BURST_FRAMES: usize = 10;

#[derive(Clone, Copy)]
enum Loss {
    None,
    Random(f64),
    Burst,
}

impl Loss {
    fn label(self) -> String {
        match self {
            Loss::None => "none".into(),
            Loss::Random(share) => format!("{:.0} % random", share * 100.0),
            Loss::Burst => "200 ms burst".into(),
        }
    }

    /// Returns which of `frames` frames are lost, repeatably for a seed.
    fn pattern(self, frames: usize, seed: u64) -> Vec<bool> {
        let mut random = Lcg(seed);
        (0..frames)
            .map(|n| match self {
                Loss::None => false,
                Loss::Random(share) => random.chance(share),
                Loss::Burst => (BURST_START_FRAME..BURST_START_FRAME + BURST_FRAMES).contains(&n),
            })
            .collect()
    }
}

/// The receiver's treatment of a lost frame.
#[derive(Clone, Copy, PartialEq)]
enum Recovery {
    /// Decode the FEC copy when the next packet is there, else conceal.
    FecAndConcealment,
    /// Conceal with Opus PLC, never decode FEC.
    ConcealmentOnly,
    /// Play silence.
    Silence,
}

fn loss_section(media: &Path, speech: &[Vec<f32>], args: &Args) -> anyhow::Result<()> {
    let kbps = args.kbps;
    let losses = [
        Loss::None,
        Loss::Random(0.05),
        Loss::Random(0.10),
        Loss::Random(0.20),
        Loss::Burst,
    ];
    let hearth_fec = OpusConfig {
        bitrate_bps: kbps * 1000,
        expected_loss_percent: args.expected_loss,
        ..OpusConfig::default()
    };
    let hearth_plain = OpusConfig {
        inband_fec: false,
        ..hearth_fec
    };

    let mut methods: Vec<(String, Vec<EncodedClip>, Recovery)> = Vec::new();
    let encode_all = |config: OpusConfig| -> anyhow::Result<Vec<EncodedClip>> {
        speech.iter().map(|clip| encode(config, clip)).collect()
    };
    methods.push((
        "Hearth: FEC + PLC".into(),
        encode_all(hearth_fec)?,
        Recovery::FecAndConcealment,
    ));
    methods.push((
        "Hearth: PLC only, no FEC".into(),
        encode_all(hearth_plain)?,
        Recovery::ConcealmentOnly,
    ));
    methods.push((
        "Hearth: no FEC, no PLC (silence)".into(),
        encode_all(hearth_plain)?,
        Recovery::Silence,
    ));
    let mut ffmpeg_command = None;
    match SPEECH
        .iter()
        .map(|name| encode_with_ffmpeg(&media.join(name), kbps, args.expected_loss))
        .collect::<anyhow::Result<Vec<_>>>()
    {
        Ok(encoded) => {
            ffmpeg_command = encoded.first().map(|(_, command)| command.clone());
            methods.push((
                "ffmpeg libopus: FEC + PLC".into(),
                encoded.into_iter().map(|(packets, _)| packets).collect(),
                Recovery::FecAndConcealment,
            ));
        }
        Err(err) => eprintln!("warning: the ffmpeg reference is missing: {err:#}"),
    }

    // Loss-free and burst runs have one pattern; random loss has one per seed.
    let seeds = |loss: Loss| match loss {
        Loss::Random(_) => args.seed..args.seed + args.patterns.max(1),
        Loss::None | Loss::Burst => args.seed..args.seed + 1,
    };
    let mut jobs = Vec::new();
    for loss in losses {
        for (_, encoded, recovery) in &methods {
            for (clip, packets) in speech.iter().zip(encoded) {
                for seed in seeds(loss) {
                    let lost = loss.pattern(packets.len(), seed);
                    let decoded = receive(packets, &lost, *recovery)?;
                    jobs.push((clip.clone(), align_to(clip, &decoded)));
                }
            }
        }
    }
    let all_scores = pesq(&jobs)?;

    println!(
        "\n## Packet loss at {kbps} kbit/s, FEC planned for {} % (PESQ, mean over both speech clips and {} random patterns)\n",
        args.expected_loss, args.patterns
    );
    let header: Vec<&str> = methods.iter().map(|(name, _, _)| name.as_str()).collect();
    println!("| loss | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(methods.len()));
    let mut scores = all_scores.iter();
    for loss in losses {
        let per_method = speech.len() * seeds(loss).count();
        let row: Vec<String> = methods
            .iter()
            .map(|_| {
                let method_scores: Vec<f64> = scores.by_ref().take(per_method).copied().collect();
                let mean = method_scores.iter().sum::<f64>() / method_scores.len() as f64;
                format!("{mean:.2}")
            })
            .collect();
        println!("| {} | {} |", loss.label(), row.join(" | "));
    }
    if let Some(command) = ffmpeg_command {
        println!("\nffmpeg reference: `{command}`, Ogg packets decoded by Hearth's receive path.");
    }
    Ok(())
}

/// One entry per 20 ms frame of a clip: the Opus packet, or `None` for a DTX
/// frame that is not sent.
type EncodedClip = Vec<Option<Vec<u8>>>;

/// Encodes a clip with Hearth's encoder.
fn encode(config: OpusConfig, clip: &[f32]) -> anyhow::Result<EncodedClip> {
    let mut encoder = OpusEncoder::with_config(config)?;
    let mut padded = clip.to_vec();
    padded.resize(clip.len().next_multiple_of(AUDIO_FRAME_SAMPLES), 0.0);
    padded
        .chunks(AUDIO_FRAME_SAMPLES)
        .map(|frame| {
            let packet = encoder.encode(frame)?;
            Ok((!is_dtx_packet(&packet)).then_some(packet))
        })
        .collect()
}

/// Plays the packets through the jitter buffer as a receiver on a clean
/// network would, with the frames marked in `lost` never arriving, and
/// returns the decoded audio.
fn receive(
    packets: &[Option<Vec<u8>>],
    lost: &[bool],
    recovery: Recovery,
) -> anyhow::Result<Vec<f32>> {
    let start = std::time::Instant::now();
    let frame = std::time::Duration::from_millis(20);
    let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
    let mut decoder = OpusDecoder::new()?;
    let mut output = Vec::with_capacity(packets.len() * AUDIO_FRAME_SAMPLES);
    let mut sequence: u16 = 0;
    for tick in 0..packets.len() + 25 {
        let now = start + frame * tick as u32;
        if let Some(Some(payload)) = packets.get(tick) {
            if lost.get(tick) == Some(&false) {
                let packet = RtpPacket {
                    sequence_number: sequence,
                    timestamp: (tick * AUDIO_FRAME_SAMPLES) as u32,
                    marker: false,
                    payload: payload.clone().into(),
                };
                buffer.push(packet, now + std::time::Duration::from_millis(1));
            }
            sequence = sequence.wrapping_add(1);
        }
        // Pops run 5 ms after the sends, like a receive task's timer.
        let Some(played) = buffer.pop(now + std::time::Duration::from_millis(5)) else {
            continue;
        };
        let action = match (recovery, played.action) {
            (Recovery::ConcealmentOnly, PlayoutAction::DecodeFec(_)) => PlayoutAction::Conceal,
            (_, action) => action,
        };
        match (recovery, &action) {
            (Recovery::Silence, PlayoutAction::Conceal | PlayoutAction::DecodeFec(_)) => {
                output.extend(std::iter::repeat_n(0.0, AUDIO_FRAME_SAMPLES));
            }
            _ => output.extend(decode_playout(&mut decoder, &action)),
        }
    }
    Ok(output)
}

/// Encodes a WAV file with ffmpeg's libopus at the settings of Hearth's
/// encoder (VoIP, 20 ms frames, FEC for the same expected loss) and returns
/// its packets and the command. ffmpeg 5.1 cannot turn DTX on.
fn encode_with_ffmpeg(
    path: &Path,
    kbps: i32,
    expected_loss: i32,
) -> anyhow::Result<(EncodedClip, String)> {
    let output =
        std::env::temp_dir().join(format!("hearth-audio-bench-{}.ogg", std::process::id()));
    let args = [
        "-hide_banner".to_owned(),
        "-loglevel".into(),
        "error".into(),
        "-y".into(),
        "-i".into(),
        path.display().to_string(),
        "-ar".into(),
        "48000".into(),
        "-c:a".into(),
        "libopus".into(),
        "-b:a".into(),
        format!("{kbps}k"),
        "-application".into(),
        "voip".into(),
        "-frame_duration".into(),
        "20".into(),
        "-fec".into(),
        "1".into(),
        "-packet_loss".into(),
        expected_loss.to_string(),
        output.display().to_string(),
    ];
    let status = Command::new("ffmpeg")
        .args(&args)
        .status()
        .context("cannot run ffmpeg; install it with scripts/install-deps.sh")?;
    if !status.success() {
        bail!("ffmpeg failed with {status}");
    }
    let bytes =
        std::fs::read(&output).with_context(|| format!("cannot read {}", output.display()))?;
    let _ = std::fs::remove_file(&output);
    // The first two packets are the OpusHead and OpusTags headers.
    let packets = ogg_packets(&bytes)?.into_iter().skip(2).map(Some).collect();
    Ok((packets, format!("ffmpeg {}", args.join(" "))))
}

/// Splits an Ogg stream (RFC 3533) into its packets.
fn ogg_packets(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let header = bytes
            .get(offset..offset + 27)
            .context("truncated Ogg page header")?;
        if &header[..4] != b"OggS" {
            bail!("invalid Ogg page at byte {offset}");
        }
        let segments = usize::from(header[26]);
        let table = bytes
            .get(offset + 27..offset + 27 + segments)
            .context("truncated Ogg segment table")?;
        let mut position = offset + 27 + segments;
        for &lacing in table {
            let end = position + usize::from(lacing);
            current.extend_from_slice(bytes.get(position..end).context("truncated Ogg page")?);
            position = end;
            if lacing < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        offset = position;
    }
    Ok(packets)
}

// PESQ.

fn check_pesq() -> anyhow::Result<()> {
    let status = Command::new("python3")
        .args(["-c", "import pesq, scipy"])
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!(
            "the Python packages pesq and scipy are missing; install them with `pip install pesq scipy`"
        );
    }
    Ok(())
}

const PESQ_SCRIPT: &str = r#"
import json, sys
from pesq import pesq
from scipy.io import wavfile
scores = []
for reference, degraded in json.load(sys.stdin):
    rate, ref = wavfile.read(reference)
    _, deg = wavfile.read(degraded)
    scores.append(pesq(rate, ref, deg, "wb"))
print(json.dumps(scores))
"#;

/// Returns the wideband PESQ score of each (reference, degraded) pair of
/// 48 kHz signals, resampled to 16 kHz.
fn pesq(pairs: &[(Vec<f32>, Vec<f32>)]) -> anyhow::Result<Vec<f64>> {
    let dir = std::env::temp_dir().join(format!("hearth-audio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut listed = Vec::new();
    for (index, (reference, degraded)) in pairs.iter().enumerate() {
        let reference_path = dir.join(format!("{index}-reference.wav"));
        let degraded_path = dir.join(format!("{index}-degraded.wav"));
        write_pesq_wav(&reference_path, reference)?;
        write_pesq_wav(&degraded_path, degraded)?;
        listed.push((reference_path, degraded_path));
    }
    let input = serde_json::to_string(&listed)?;
    let mut child = Command::new("python3")
        .args(["-c", PESQ_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run python3")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())?;
    let output = child.wait_with_output()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        bail!("PESQ failed with {}", output.status);
    }
    let scores: Vec<f64> = serde_json::from_slice(&output.stdout)?;
    Ok(scores)
}

fn write_pesq_wav(path: &Path, samples: &[f32]) -> anyhow::Result<()> {
    let resampled = wav::resample(samples, AUDIO_RATE, PESQ_RATE)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: PESQ_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for sample in resampled {
        writer.write_sample((sample.clamp(-1.0, 1.0) * 32_767.0) as i16)?;
    }
    writer.finalize()?;
    Ok(())
}
