//! The audio device layer against real cpal streams: a private PulseAudio
//! daemon with a null sink, reached through ALSA's pulse plugin.
//!
//! libpulse and ALSA find the daemon through environment variables, which a
//! multi-threaded test cannot change safely. So `main` starts the daemon and
//! runs this binary again as a child with the environment set, and the child
//! runs the scenarios one after another.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_media::audio::{
    self, AudioError, DeviceEvent, DeviceKind, Microphone, SILENCE_DBFS, Speaker,
};
use hearth_media::receive::DecodedAudio;
use hearth_media::source::wav;

/// Set in the child, which runs the scenarios.
const CHILD_MARKER: &str = "HEARTH_AUDIO_TEST_CHILD";
const SINK: &str = "hearth_sink";
/// ALSA devices defined in the child's `~/.asoundrc`, each a pulse plugin PCM.
const SPEAKER_PCM: &str = "hearth_speaker";
const MICROPHONE_PCM: &str = "hearth_microphone";
/// PulseAudio output needs a few seconds before it plays in time.
const WARM_UP: Duration = Duration::from_secs(3);
const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";
/// Correlation that the captured speech must reach with the original.
const MIN_CORRELATION: f64 = 0.9;
/// Longest speaker-to-microphone delay searched for.
const MAX_DELAY: Duration = Duration::from_millis(1_000);

type Scenario = (&'static str, fn());

const SCENARIOS: &[Scenario] = &[
    ("unknown_device_is_not_found", unknown_device_is_not_found),
    ("listing_finds_null_devices", listing_finds_null_devices),
    ("default_devices_open", default_devices_open),
    (
        "speech_loops_speaker_to_microphone",
        speech_loops_speaker_to_microphone,
    ),
    (
        "test_sound_reaches_microphone",
        test_sound_reaches_microphone,
    ),
    ("lost_sink_is_reported", lost_sink_is_reported),
];

fn main() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        run_scenarios();
    } else {
        run_parent();
    }
}

fn run_parent() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut daemon = PulseDaemon::start(dir.path());
    let status = Command::new(std::env::current_exe().expect("test binary path"))
        .envs(daemon.env())
        .args(std::env::args().skip(1))
        .env(CHILD_MARKER, "1")
        .status()
        .expect("run the scenarios in a child process");
    daemon.stop();
    assert!(status.success(), "audio device scenarios failed: {status}");
}

fn run_scenarios() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, scenario) in SCENARIOS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("audio_devices: {name} ...");
        scenario();
        println!("audio_devices: {name} ok");
    }
}

/// A PulseAudio daemon with its runtime folder, home and cookie in a
/// temporary folder, and one null sink whose monitor serves as microphone.
struct PulseDaemon {
    process: Option<Child>,
    env: Vec<(String, PathBuf)>,
}

impl PulseDaemon {
    fn start(dir: &Path) -> Self {
        let runtime = dir.join("runtime");
        std::fs::create_dir_all(runtime.join("pulse")).expect("runtime folder");
        let asoundrc = format!(
            "pcm.{SPEAKER_PCM} {{\n  type pulse\n  device {SINK}\n  \
             hint {{ show on description \"Hearth test speaker\" }}\n}}\n\
             pcm.{MICROPHONE_PCM} {{\n  type pulse\n  device {SINK}.monitor\n  \
             hint {{ show on description \"Hearth test microphone\" }}\n}}\n"
        );
        std::fs::write(dir.join(".asoundrc"), asoundrc).expect("write .asoundrc");
        let env = vec![
            ("HOME".to_owned(), dir.to_owned()),
            ("XDG_CONFIG_HOME".to_owned(), dir.join("config")),
            ("XDG_RUNTIME_DIR".to_owned(), runtime.clone()),
            ("PULSE_RUNTIME_PATH".to_owned(), runtime.join("pulse")),
        ];

        let sink = format!("module-null-sink sink_name={SINK} rate=44100 channels=2");
        let process = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "-n",
                "--load=module-native-protocol-unix",
                "--load",
                &sink,
            ])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let process = match process {
            Ok(process) => process,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "pulseaudio is not installed; run scripts/install-deps.sh, which installs \
                 pulseaudio, libasound2-dev and libasound2-plugins"
            ),
            Err(err) => panic!("cannot start pulseaudio: {err}"),
        };
        let mut daemon = Self {
            process: Some(process),
            env,
        };
        daemon.wait_ready();
        daemon.pactl(&["set-default-sink", SINK]);
        daemon.pactl(&["set-default-source", &format!("{SINK}.monitor")]);
        daemon
    }

    fn env(&self) -> impl Iterator<Item = (&String, &PathBuf)> {
        self.env.iter().map(|(k, v)| (k, v))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(process) = &mut self.process
                && let Ok(Some(status)) = process.try_wait()
            {
                panic!("pulseaudio exited at start with {status}");
            }
            let ready = Command::new("pactl")
                .arg("info")
                .envs(self.env())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pulseaudio did not accept connections within 10 s");
    }

    fn pactl(&self, args: &[&str]) {
        let status = Command::new("pactl")
            .args(args)
            .envs(self.env())
            .status()
            .expect("run pactl; scripts/install-deps.sh installs it with pulseaudio");
        assert!(status.success(), "pactl {args:?} failed: {status}");
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for PulseDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `pactl` in the child, whose environment already points at the daemon.
fn pactl(args: &[&str]) -> String {
    let output = Command::new("pactl")
        .args(args)
        .output()
        .expect("run pactl");
    assert!(output.status.success(), "pactl {args:?} failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn unknown_device_is_not_found() {
    let Err(err) = Microphone::start(Some("no such microphone")) else {
        panic!("a bogus microphone name opened");
    };
    let AudioError::DeviceNotFound {
        kind,
        requested,
        available,
    } = &err
    else {
        panic!("expected DeviceNotFound, got {err:?}");
    };
    assert_eq!(*kind, DeviceKind::Microphone);
    assert_eq!(requested, "no such microphone");
    assert!(
        available
            .iter()
            .any(|name| name == "Hearth test microphone"),
        "{available:?}"
    );
    assert!(
        err.to_string().contains("\"no such microphone\" not found"),
        "{err}"
    );

    let Err(err) = Speaker::start(Some("no such speaker")) else {
        panic!("a bogus speaker name opened");
    };
    assert!(
        matches!(
            err,
            AudioError::DeviceNotFound {
                kind: DeviceKind::Speaker,
                ..
            }
        ),
        "expected DeviceNotFound, got {err:?}"
    );
}

fn listing_finds_null_devices() {
    let microphones = audio::list_microphones().expect("list microphones");
    let speakers = audio::list_speakers().expect("list speakers");
    println!("microphones: {microphones:?}\nspeakers: {speakers:?}");

    let microphone = microphones
        .iter()
        .find(|device| device.id == device_id(MICROPHONE_PCM))
        .expect("the null sink's monitor is listed as a microphone");
    assert_eq!(microphone.name, "Hearth test microphone");
    assert!(!microphone.is_default);
    let speaker = speakers
        .iter()
        .find(|device| device.id == device_id(SPEAKER_PCM))
        .expect("the null sink is listed as a speaker");
    assert_eq!(speaker.name, "Hearth test speaker");

    for devices in [&microphones, &speakers] {
        let defaults: Vec<_> = devices.iter().filter(|device| device.is_default).collect();
        assert_eq!(defaults.len(), 1, "exactly one default in {devices:?}");
    }
    let json = serde_json::to_string(speaker).expect("serialize");
    let back: audio::AudioDevice = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, speaker);
}

fn default_devices_open() {
    let mut microphone = Microphone::start(None).expect("open the default microphone");
    let _speaker = Speaker::start(None).expect("open the default speaker");
    let mut frames = microphone.take_frames().expect("frames");
    let frame = recv_frame(&mut frames, Duration::from_secs(5)).expect("a frame from the default");
    assert_eq!(frame.len(), 960);
}

fn speech_loops_speaker_to_microphone() {
    let speech = wav::load(&common::media(SPEECH))
        .expect("load speech")
        .samples;
    let speaker = Speaker::start(Some(&device_id(SPEAKER_PCM))).expect("open the null sink");
    let mut microphone =
        Microphone::start(Some(&device_id(MICROPHONE_PCM))).expect("open the monitor");
    println!(
        "speaker {} Hz x{}, microphone {} Hz x{}",
        speaker.native_rate(),
        speaker.channels(),
        microphone.native_rate(),
        microphone.channels()
    );
    let mut frames = microphone.take_frames().expect("frames");
    let level = microphone.level();
    drain_for(&mut frames, WARM_UP);

    // Send the speech the way the receive path does: 20 ms every 20 ms.
    let sender = speaker.sender();
    let started = Instant::now();
    let mut captured = Vec::new();
    let mut loudest = SILENCE_DBFS;
    let mut max_queued = Duration::ZERO;
    let total = speech.len().div_ceil(960) + (MAX_DELAY.as_millis() / 20) as usize + 10;
    for index in 0..total {
        let chunk = speech.get(index * 960..((index + 1) * 960).min(speech.len()));
        if let Some(samples) = chunk.filter(|chunk| !chunk.is_empty()) {
            let audio = DecodedAudio {
                rtp_timestamp: (index * 960) as u32,
                samples: samples.to_vec(),
                received_at: Instant::now(),
            };
            sender.try_send(audio).expect("the speaker keeps up");
        }
        let due = started + Duration::from_millis(20 * (index as u64 + 1));
        while let Some(wait) = due.checked_duration_since(Instant::now()) {
            match recv_frame(&mut frames, wait) {
                Some(frame) => captured.extend(frame),
                None => break,
            }
        }
        loudest = loudest.max(level.dbfs());
        max_queued = max_queued.max(speaker.queued());
    }
    // Read before the analysis, while nothing consumes frames.
    let dropped_frames = microphone.dropped_frames();

    let (delay, correlation) = best_alignment(&speech, &captured);
    let windows = window_alignments(&speech, &captured);
    println!(
        "captured {} samples; whole clip: delay {:.1} ms, correlation {correlation:.4}; \
         loudest {loudest:.1} dBFS, max queued {max_queued:?}, underruns {}, dropped {}, \
         xruns {}/{}",
        captured.len(),
        delay as f64 / 48.0,
        speaker.underruns(),
        speaker.dropped_samples(),
        speaker.xruns(),
        microphone.xruns()
    );
    for (index, (lag, correlation)) in windows.iter().enumerate() {
        println!(
            "  second {index}: delay {:.1} ms, correlation {correlation:.4}",
            *lag as f64 / 48.0
        );
    }
    // An underrun inserts silence and so shifts the delay once, which breaks
    // the alignment of the one window that contains it.
    let poor = windows.iter().filter(|w| w.1 < MIN_CORRELATION).count() as u64;
    assert!(
        poor <= speaker.underruns(),
        "{poor} of {} 1 s windows correlate below {MIN_CORRELATION} with the speech, but \
         only {} underruns can explain poor windows",
        windows.len(),
        speaker.underruns()
    );
    assert!(delay > 0, "the capture cannot precede the playback");
    assert!(
        loudest > -40.0,
        "the level meter peaked at {loudest} dBFS during speech"
    );
    assert!(
        max_queued <= Duration::from_millis(60),
        "queued {max_queued:?}"
    );
    assert_eq!(
        dropped_frames, 0,
        "microphone frames dropped while the test consumed them"
    );
}

fn test_sound_reaches_microphone() {
    let speaker = Speaker::start(Some(&device_id(SPEAKER_PCM))).expect("open the null sink");
    let mut microphone =
        Microphone::start(Some(&device_id(MICROPHONE_PCM))).expect("open the monitor");
    let mut frames = microphone.take_frames().expect("frames");
    drain_for(&mut frames, WARM_UP);
    let quiet = microphone.level().dbfs();

    speaker.play_test_sound().expect("play the test tone");
    let mut loudest = SILENCE_DBFS;
    let deadline = Instant::now() + Duration::from_millis(1_500);
    while let Some(wait) = deadline.checked_duration_since(Instant::now()) {
        if recv_frame(&mut frames, wait).is_none() {
            break;
        }
        loudest = loudest.max(microphone.level().dbfs());
    }
    println!("test tone: quiet {quiet:.1} dBFS, loudest {loudest:.1} dBFS");
    assert!(
        quiet < -60.0,
        "the monitor is not quiet before the tone: {quiet} dBFS"
    );
    // The tone peaks at 0.25 (-12 dBFS), so its RMS is about -15 dBFS.
    assert!((loudest + 15.0).abs() < 2.0, "tone level {loudest} dBFS");
}

fn lost_sink_is_reported() {
    let mut speaker = Speaker::start(Some(&device_id(SPEAKER_PCM))).expect("open the null sink");
    let mut microphone =
        Microphone::start(Some(&device_id(MICROPHONE_PCM))).expect("open the monitor");
    let mut speaker_events = speaker.take_events().expect("speaker events");
    let mut microphone_events = microphone.take_events().expect("microphone events");
    let mut frames = microphone.take_frames().expect("frames");
    drain_for(&mut frames, Duration::from_secs(1));

    let module = pactl(&["list", "short", "modules"])
        .lines()
        .find(|line| line.contains("module-null-sink"))
        .and_then(|line| line.split_whitespace().next().map(str::to_owned))
        .expect("the null sink module is loaded");
    pactl(&["unload-module", &module]);

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut microphone_lost = None;
    let mut speaker_lost = None;
    while Instant::now() < deadline && (microphone_lost.is_none() || speaker_lost.is_none()) {
        while let Ok(event) = microphone_events.try_recv() {
            println!("microphone event: {event:?}");
            if matches!(event, DeviceEvent::Lost { .. }) {
                microphone_lost = Some(event);
            }
        }
        while let Ok(event) = speaker_events.try_recv() {
            println!("speaker event: {event:?}");
            if matches!(event, DeviceEvent::Lost { .. }) {
                speaker_lost = Some(event);
            }
        }
        drain_for(&mut frames, Duration::from_millis(100));
    }
    let Some(DeviceEvent::Lost { kind, device, .. }) = microphone_lost else {
        panic!("no Lost event from the microphone within 10 s of removing its device");
    };
    assert_eq!(kind, DeviceKind::Microphone);
    assert_eq!(device, device_id(MICROPHONE_PCM));
    assert!(speaker_lost.is_some(), "no Lost event from the speaker");
}

/// Returns the cpal id of an ALSA PCM, as [`audio::AudioDevice::id`] has it.
fn device_id(pcm: &str) -> String {
    format!("alsa:{pcm}")
}

fn recv_frame(
    frames: &mut tokio::sync::mpsc::Receiver<Vec<f32>>,
    wait: Duration,
) -> Option<Vec<f32>> {
    let deadline = Instant::now() + wait;
    loop {
        match frames.try_recv() {
            Ok(frame) => return Some(frame),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return None,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {}
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn drain_for(frames: &mut tokio::sync::mpsc::Receiver<Vec<f32>>, wait: Duration) {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        recv_frame(frames, left);
    }
}

/// Finds the delay (in 48 kHz samples) at which `captured` best matches
/// `reference`, and the normalized correlation there. A coarse search on
/// 8 kHz averages is refined at full rate.
fn best_alignment(reference: &[f32], captured: &[f32]) -> (usize, f64) {
    const DECIMATE: usize = 6;
    let max_lag = (MAX_DELAY.as_millis() as usize) * 48;
    let coarse = |samples: &[f32]| -> Vec<f32> {
        samples
            .chunks_exact(DECIMATE)
            .map(|chunk| chunk.iter().sum::<f32>() / DECIMATE as f32)
            .collect()
    };
    let reference_coarse = coarse(reference);
    let captured_coarse = coarse(captured);
    let coarse_lag = (0..=max_lag / DECIMATE)
        .max_by(|&a, &b| {
            let ca = correlation(&reference_coarse, &captured_coarse, a);
            let cb = correlation(&reference_coarse, &captured_coarse, b);
            ca.total_cmp(&cb)
        })
        .expect("a lag range")
        * DECIMATE;

    let low = coarse_lag.saturating_sub(2 * DECIMATE);
    (low..=coarse_lag + 2 * DECIMATE)
        .map(|lag| (lag, correlation(reference, captured, lag)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("a lag range")
}

/// Aligns each whole second of `reference` separately, so that a gap in
/// playback shifts only the windows after it.
fn window_alignments(reference: &[f32], captured: &[f32]) -> Vec<(usize, f64)> {
    reference
        .chunks_exact(48_000)
        .enumerate()
        .map(|(index, window)| {
            let start = index * 48_000;
            let (lag, correlation) = best_alignment(window, captured.get(start..).unwrap_or(&[]));
            (lag, correlation)
        })
        .collect()
}

/// Normalized cross-correlation of `reference` with `captured` delayed by `lag`.
fn correlation(reference: &[f32], captured: &[f32], lag: usize) -> f64 {
    let Some(shifted) = captured.get(lag..) else {
        return 0.0;
    };
    let len = reference.len().min(shifted.len());
    let (mut dot, mut energy_a, mut energy_b) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in reference[..len].iter().zip(&shifted[..len]) {
        dot += f64::from(a) * f64::from(b);
        energy_a += f64::from(a) * f64::from(a);
        energy_b += f64::from(b) * f64::from(b);
    }
    if energy_a == 0.0 || energy_b == 0.0 {
        return 0.0;
    }
    dot / (energy_a * energy_b).sqrt()
}
