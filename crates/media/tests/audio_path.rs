//! The audio path on real speech without devices: capture processing against
//! real noise and a simulated echo path, and Opus with FEC through the
//! adaptive jitter buffer under packet loss.

mod common;

use std::time::{Duration, Instant};

use hearth_media::audio::{AudioProcessor, CHUNK_SAMPLES, NoiseSuppression, ProcessingConfig};
use hearth_media::audio_jitter::{AudioJitterBuffer, AudioJitterConfig, PlayoutAction};
use hearth_media::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder, is_dtx_packet};
use hearth_media::frame::AUDIO_FRAME_SAMPLES;
use hearth_media::jitter::RtpPacket;
use hearth_media::quality::best_lag;
use hearth_media::receive::decode_playout;
use hearth_media::source::wav;

const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";
const OTHER_SPEECH: &str = "speech/librivox_sense_and_sensibility_0890.wav";
const KITCHEN: &str = "noise/speechcommands_doing_the_dishes_10s.wav";

fn load(name: &str) -> Vec<f32> {
    wav::load(&common::media(name)).expect("load").samples
}

fn power(samples: &[f32]) -> f64 {
    samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len().max(1) as f64
}

/// SNR of `signal` against `clean` in dB.
fn snr(clean: &[f32], signal: &[f32]) -> f64 {
    let error: Vec<f32> = clean.iter().zip(signal).map(|(c, s)| c - s).collect();
    10.0 * (power(clean) / power(&error)).log10()
}

#[test]
fn rnnoise_raises_snr_of_kitchen_noise() {
    let clean = load(SPEECH);
    let noise = load(KITCHEN);
    // Kitchen noise at 5 dB below the speech.
    let noise: Vec<f32> = (0..clean.len()).map(|i| noise[i % noise.len()]).collect();
    let gain = (power(&clean) / power(&noise) / 10f64.powf(0.5)).sqrt() as f32;
    let noisy: Vec<f32> = clean
        .iter()
        .zip(&noise)
        .map(|(s, n)| s + gain * n)
        .collect();
    let snr_before = snr(&clean, &noisy);
    assert!(
        (snr_before - 5.0).abs() < 0.5,
        "mixed at {snr_before:.1} dB"
    );

    let mut processor = AudioProcessor::new(ProcessingConfig {
        noise_suppression: NoiseSuppression::Rnnoise,
        gain_control: false,
        ..ProcessingConfig::bypass()
    })
    .unwrap();
    let mut output = Vec::new();
    for block in noisy.chunks(960) {
        processor.process_capture(block, &mut output).unwrap();
    }
    // RNNoise delays by one 10 ms chunk.
    let aligned = &output[CHUNK_SAMPLES..];
    let snr_after = snr(&clean, aligned);
    println!("SNR {snr_before:.1} dB before, {snr_after:.1} dB after RNNoise");
    assert!(
        snr_after > snr_before + 2.0,
        "SNR {snr_before:.1} dB before, {snr_after:.1} dB after"
    );
}

#[test]
fn echo_canceller_converges_to_20_db() {
    let far_end: Vec<f32> = [load(SPEECH), load(OTHER_SPEECH)].concat();
    // 60 ms of delay, then the far end at -10 dB and a reflection 5 ms later.
    let delay = 2_880;
    let microphone: Vec<f32> = (0..far_end.len())
        .map(|n| {
            let direct = n.checked_sub(delay).map_or(0.0, |i| 0.3 * far_end[i]);
            let reflection = n.checked_sub(delay + 240).map_or(0.0, |i| 0.1 * far_end[i]);
            direct + reflection
        })
        .collect();

    let mut processor = AudioProcessor::new(ProcessingConfig {
        noise_suppression: NoiseSuppression::Off,
        gain_control: false,
        ..ProcessingConfig::default()
    })
    .unwrap();
    let mut output = Vec::new();
    for (far, near) in far_end
        .chunks(CHUNK_SAMPLES)
        .zip(microphone.chunks(CHUNK_SAMPLES))
    {
        processor.push_far_end(far).unwrap();
        processor.process_capture(near, &mut output).unwrap();
    }
    let last = microphone.len() - 5 * 48_000;
    let erle = 10.0 * (power(&microphone[last..]) / power(&output[last..]).max(1e-20)).log10();
    println!("ERLE over the last 5 s: {erle:.1} dB");
    assert!(erle >= 20.0, "ERLE {erle:.1} dB after convergence");
}

/// Encodes the speech, loses every `nth` packet, plays it out through the
/// jitter buffer and returns the output and the frames recovered by FEC.
fn receive_with_loss(speech: &[f32], lost: impl Fn(usize) -> bool, fec: bool) -> (Vec<f32>, u64) {
    let mut encoder = OpusEncoder::with_config(OpusConfig {
        inband_fec: fec,
        ..OpusConfig::default()
    })
    .unwrap();
    let mut decoder = OpusDecoder::new().unwrap();
    let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
    let start = Instant::now();
    let mut sequence = 0u16;
    let mut output = Vec::new();
    let frames = speech.len() / AUDIO_FRAME_SAMPLES;
    for n in 0..frames + 20 {
        let now = start + Duration::from_millis(20 * n as u64);
        if n < frames {
            let frame = &speech[n * AUDIO_FRAME_SAMPLES..(n + 1) * AUDIO_FRAME_SAMPLES];
            let packet = encoder.encode(frame).unwrap();
            if !is_dtx_packet(&packet) {
                if !lost(n) {
                    let rtp = RtpPacket {
                        sequence_number: sequence,
                        timestamp: (n * AUDIO_FRAME_SAMPLES) as u32,
                        marker: false,
                        payload: packet.into(),
                    };
                    buffer.push(rtp, now);
                }
                sequence = sequence.wrapping_add(1);
            }
        }
        if let Some(played) = buffer.pop(now + Duration::from_millis(5)) {
            let action = match played.action {
                PlayoutAction::DecodeFec(_) if !fec => PlayoutAction::Conceal,
                action => action,
            };
            output.extend(decode_playout(&mut decoder, &action));
        }
    }
    (output, buffer.stats().frames_recovered_by_fec)
}

#[test]
fn fec_and_concealment_keep_speech_under_loss() {
    let speech = load(SPEECH);
    let every_20th = |n: usize| n % 20 == 7;
    let (clean, _) = receive_with_loss(&speech, |_| false, true);
    let (with_fec, recovered) = receive_with_loss(&speech, every_20th, true);
    let (without_fec, _) = receive_with_loss(&speech, every_20th, false);
    assert!(recovered > 10, "{recovered} frames recovered by FEC");

    let score = |output: &[f32]| windowed_correlation(&speech, output);
    let (clean_score, fec_score, plc_score) =
        (score(&clean), score(&with_fec), score(&without_fec));
    println!(
        "correlation with the original: no loss {clean_score:.3}, 5 % loss with FEC \
         {fec_score:.3}, concealment only {plc_score:.3}"
    );
    assert!(clean_score > 0.8, "loss-free correlation {clean_score:.3}");
    assert!(
        fec_score > clean_score - 0.03,
        "FEC at 5 % loss {fec_score:.3} against {clean_score:.3} without loss"
    );
    assert!(
        fec_score > plc_score,
        "FEC {fec_score:.3}, PLC {plc_score:.3}"
    );
}

/// Aligns each second of `reference` with `output` on its own, because an
/// inserted or dropped frame shifts everything after it, and returns the
/// mean correlation.
fn windowed_correlation(reference: &[f32], output: &[f32]) -> f64 {
    let windows: Vec<f64> = reference
        .chunks_exact(48_000)
        .enumerate()
        .filter_map(|(index, window)| {
            let received = output.get(index * 48_000..)?;
            best_lag(window, received, 9_600).map(|(_, correlation)| correlation)
        })
        .collect();
    windows.iter().sum::<f64>() / windows.len() as f64
}
