//! A live call follows its devices. The caller's microphone and speaker come
//! from `CallDevices` over a private PulseAudio daemon reached through cpal's
//! PulseAudio host. Devices are removed, added back and made the default with
//! `pactl` while the call runs. After each change the callee must decode
//! speech that only the new microphone hears, the caller's speaker must play
//! on the new sink, and the stream on the old device must be closed.
//!
//! Every microphone is the monitor of a null sink that a player feeds with
//! speech, and only the device under test gets speech in each step, so the
//! callee hears speech only when the call captures from the right device.
//! As in `audio_devices`, `main` starts the daemon and runs this binary again
//! as a child with the environment pointing at it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hearth_media::audio::{
    CallDevices, CurrentDevices, DeviceKind, Microphone, ProcessingConfig, SILENCE_DBFS, Speaker,
};
use hearth_media::live::{LiveSend, loop_wav};
use hearth_media::source::wav;
use hearth_media::{PeerEvent, RemoteSinks, SendMedia};
use tokio::sync::{mpsc, watch};

const CHILD_MARKER: &str = "HEARTH_AUDIO_SWITCH_CHILD";
const CALLER_SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";
const CALLEE_SPEECH: &str = "speech/librivox_sense_and_sensibility_0890.wav";
/// Null sinks whose monitors serve as microphones. The `ear_*` sinks are the speakers.
const MOUTH_A: &str = "mouth_a";
const MOUTH_B: &str = "mouth_b";
const MOUTH_C: &str = "mouth_c";
const EAR_A: &str = "ear_a";
const EAR_B: &str = "ear_b";
/// The caller's choices, by name as a settings file keeps them.
const CHOSEN_MICROPHONE: &str = "Monitor of Hearth-mouth-A";
const CHOSEN_SPEAKER: &str = "Hearth-ear-A";
/// Longest wait for a switch or for speech; generous for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(30);
/// A 20 ms chunk of decoded speech reaches this level; silence, DTX comfort
/// noise and concealment stay far below it.
const SPEECH_DBFS: f32 = -35.0;

fn main() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(call_follows_devices());
        println!("audio_device_switch: 1 passed, 0 failed");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut daemon = PulseDaemon::start(dir.path());
    let status = Command::new(std::env::current_exe().expect("test binary path"))
        .envs(daemon.env.iter().map(|(k, v)| (k, v)))
        .env(CHILD_MARKER, "1")
        .status()
        .expect("run the scenario in a child process");
    daemon.stop();
    assert!(
        status.success(),
        "the device switching scenario failed: {status}"
    );
}

async fn call_follows_devices() {
    let speech = wav::load(&common::media(CALLER_SPEECH))
        .expect("speech")
        .samples;
    let speech: Vec<f32> = speech
        .iter()
        .copied()
        .cycle()
        .take(speech.len() * 4)
        .collect();

    // The callee sends its own speech and measures what it decodes.
    let (decoded_tx, mut decoded_rx) = mpsc::channel(64);
    let (caller_audio_tx, mut caller_audio_rx) = mpsc::channel(64);
    let mut caller = common::peer(
        SendMedia {
            video: false,
            audio: true,
        },
        RemoteSinks {
            audio: Some(caller_audio_tx),
            ..RemoteSinks::default()
        },
    )
    .await;
    let mut callee = common::peer(
        SendMedia {
            video: false,
            audio: true,
        },
        RemoteSinks {
            audio: Some(decoded_tx),
            ..RemoteSinks::default()
        },
    )
    .await;
    let (caller_state, callee_state) = common::connect(&mut caller, &mut callee).await;
    assert_eq!(caller_state, PeerEvent::Connected);
    assert_eq!(callee_state, PeerEvent::Connected);

    let far_end = FarEnd::default();
    let meter = far_end.clone();
    tokio::spawn(async move {
        while let Some(decoded) = decoded_rx.recv().await {
            meter.record(&decoded.samples);
        }
    });

    let mut devices =
        CallDevices::start(Some(CHOSEN_MICROPHONE), Some(CHOSEN_SPEAKER)).expect("call devices");
    let mut current = devices.current();
    let to_speaker = devices.speaker_input();
    tokio::spawn(async move {
        while let Some(decoded) = caller_audio_rx.recv().await {
            let _ = to_speaker.try_send(decoded);
        }
    });
    let controls = caller
        .start_live(LiveSend {
            audio: devices.take_frames(),
            audio_processing: Some(ProcessingConfig::default()),
            ..LiveSend::default()
        })
        .await
        .expect("start the caller's audio");
    devices.attach(controls.clone());
    let _callee_controls = callee
        .start_live(LiveSend {
            audio: Some(loop_wav(&common::media(CALLEE_SPEECH)).expect("callee speech")),
            ..LiveSend::default()
        })
        .await
        .expect("start the callee's audio");

    println!("step 1: the chosen devices");
    wait_for_devices(&mut current, &source(MOUTH_A), &sink(EAR_A)).await;
    let player = play_into(MOUTH_A, &speech);
    far_end.wait_for_speech("the chosen microphone").await;
    assert_speaker_plays(EAR_A).await;
    drop(player);

    println!("step 2: the chosen devices disappear");
    let changes = current.borrow().changes;
    let removed_at = Instant::now();
    unload_sink(MOUTH_A);
    unload_sink(EAR_A);
    let player = play_into(MOUTH_B, &speech);
    wait_for_devices(&mut current, &source(MOUTH_B), &sink(EAR_B)).await;
    println!("  switched {:?} after the removal", removed_at.elapsed());
    assert!(
        current.borrow().changes > changes,
        "no device change was counted"
    );
    far_end.wait_for_speech("the default microphone").await;
    // PulseAudio moves the streams of a removed device to the default one, so
    // the old streams would sit there beside the new ones if they stayed open.
    assert_eq!(
        streams_on("source-outputs", &format!("{MOUTH_B}.monitor")),
        1
    );
    assert_eq!(streams_on("sink-inputs", EAR_B), 1);
    assert_speaker_plays(EAR_B).await;
    drop(player);

    println!("step 3: the chosen microphone comes back");
    let returned_at = Instant::now();
    load_sink(MOUTH_A, "Hearth-mouth-A");
    let player = play_into(MOUTH_A, &speech);
    wait_for_microphone(&mut current, &source(MOUTH_A)).await;
    println!("  switched {:?} after the return", returned_at.elapsed());
    far_end.wait_for_speech("the returned microphone").await;
    assert_eq!(
        streams_on("source-outputs", &format!("{MOUTH_B}.monitor")),
        0
    );
    assert_eq!(
        streams_on("source-outputs", &format!("{MOUTH_A}.monitor")),
        1
    );
    drop(player);

    println!("step 4: nothing chosen, and a new default appears");
    devices.prefer(DeviceKind::Microphone, None);
    load_sink(MOUTH_C, "Hearth-mouth-C");
    let default_changed_at = Instant::now();
    pactl(&["set-default-source", &format!("{MOUTH_C}.monitor")]);
    let player = play_into(MOUTH_C, &speech);
    wait_for_microphone(&mut current, &source(MOUTH_C)).await;
    println!(
        "  switched {:?} after the default changed",
        default_changed_at.elapsed()
    );
    far_end.wait_for_speech("the new default microphone").await;
    assert_eq!(
        streams_on("source-outputs", &format!("{MOUTH_A}.monitor")),
        0
    );
    drop(player);

    drop(devices);
    assert_eq!(
        streams_on("source-outputs", &format!("{MOUTH_C}.monitor")),
        0,
        "the microphone stream outlived CallDevices"
    );
    caller.close().await;
    callee.close().await;
}

/// The loudest 20 ms chunk that the callee decoded since the last reset.
#[derive(Clone)]
struct FarEnd(Arc<AtomicU32>);

impl Default for FarEnd {
    fn default() -> Self {
        Self(Arc::new(AtomicU32::new(SILENCE_DBFS.to_bits())))
    }
}

impl FarEnd {
    fn record(&self, samples: &[f32]) {
        let level = rms_dbfs(samples);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                (level > f32::from_bits(bits)).then_some(level.to_bits())
            });
    }

    fn loudest(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Forgets what came before, then waits until speech arrives.
    async fn wait_for_speech(&self, from: &str) {
        // Let audio from the previous device leave the jitter buffer first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.0.store(SILENCE_DBFS.to_bits(), Ordering::Relaxed);
        let deadline = Instant::now() + WAIT;
        while self.loudest() < SPEECH_DBFS {
            assert!(
                Instant::now() < deadline,
                "the callee decoded no speech from {from} within {WAIT:?}; loudest {:.1} dBFS",
                self.loudest()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("  callee hears {from}: {:.1} dBFS", self.loudest());
    }
}

fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    (10.0 * power.log10()).max(SILENCE_DBFS)
}

fn source(sink: &str) -> String {
    format!("pulseaudio:{sink}.monitor")
}

fn sink(sink: &str) -> String {
    format!("pulseaudio:{sink}")
}

async fn wait_for_devices(
    current: &mut watch::Receiver<CurrentDevices>,
    microphone: &str,
    speaker: &str,
) {
    wait_until(current, |devices| {
        devices.microphone.as_ref().map(|d| d.id.as_str()) == Some(microphone)
            && devices.speaker.as_ref().map(|d| d.id.as_str()) == Some(speaker)
    })
    .await;
}

async fn wait_for_microphone(current: &mut watch::Receiver<CurrentDevices>, microphone: &str) {
    wait_until(current, |devices| {
        devices.microphone.as_ref().map(|d| d.id.as_str()) == Some(microphone)
    })
    .await;
}

async fn wait_until(
    current: &mut watch::Receiver<CurrentDevices>,
    done: impl Fn(&CurrentDevices) -> bool,
) {
    let reached = tokio::time::timeout(WAIT, current.wait_for(|devices| done(devices)))
        .await
        .is_ok_and(|changed| changed.is_ok());
    let devices = current.borrow().clone();
    assert!(
        reached,
        "the call did not reach the expected devices within {WAIT:?}; it uses {devices:?}"
    );
    println!(
        "  using {:?} and {:?}",
        devices.microphone.map(|d| d.id),
        devices.speaker.map(|d| d.id)
    );
}

/// Plays `speech` into the null sink `sink`, whose monitor a microphone hears.
fn play_into(sink: &str, speech: &[f32]) -> Speaker {
    let player = Speaker::start(Some(&format!("pulseaudio:{sink}"))).expect("open the player");
    player.play_clip(speech).expect("play the speech");
    player
}

/// Checks that the caller's speaker plays the callee's speech into `sink`.
async fn assert_speaker_plays(sink: &str) {
    let probe_id = format!("pulseaudio:{sink}.monitor");
    let mut probe = Microphone::start(Some(&probe_id)).expect("open the sink's monitor");
    let mut frames = probe.take_frames().expect("frames");
    let level = probe.level();
    let deadline = Instant::now() + WAIT;
    let mut loudest = SILENCE_DBFS;
    while loudest < SPEECH_DBFS {
        assert!(
            Instant::now() < deadline,
            "the caller's speaker played nothing into {sink} within {WAIT:?}; loudest {loudest:.1} dBFS"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), frames.recv()).await;
        loudest = loudest.max(level.dbfs());
    }
    println!("  caller's speaker plays into {sink}: {loudest:.1} dBFS");
}

/// Returns how many streams of `list` (`source-outputs` or `sink-inputs`)
/// are connected to the device named `device`.
fn streams_on(list: &str, device: &str) -> usize {
    let devices = if list == "source-outputs" {
        "sources"
    } else {
        "sinks"
    };
    let index = pactl(&["list", "short", devices])
        .lines()
        .find(|line| line.split('\t').nth(1) == Some(device))
        .and_then(|line| line.split('\t').next().map(str::to_owned));
    let Some(index) = index else {
        return 0;
    };
    pactl(&["list", "short", list])
        .lines()
        .filter(|line| line.split('\t').nth(1) == Some(index.as_str()))
        .count()
}

fn load_sink(name: &str, description: &str) {
    pactl(&[
        "load-module",
        "module-null-sink",
        &format!("sink_name={name}"),
        &format!("sink_properties=device.description={description}"),
    ]);
}

fn unload_sink(name: &str) {
    let module = pactl(&["list", "short", "modules"])
        .lines()
        .find(|line| line.contains(&format!("sink_name={name} ")))
        .and_then(|line| line.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| panic!("no module loaded the sink {name}"));
    pactl(&["unload-module", &module]);
}

/// Runs `pactl` in the child, whose environment already points at the daemon.
fn pactl(args: &[&str]) -> String {
    let output = Command::new("pactl")
        .args(args)
        .output()
        .expect("run pactl; scripts/install-deps.sh installs it with pulseaudio");
    assert!(output.status.success(), "pactl {args:?} failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A PulseAudio daemon with its runtime folder, home and cookie in a
/// temporary folder, and the null sinks of the first step.
struct PulseDaemon {
    process: Option<Child>,
    env: Vec<(String, PathBuf)>,
}

impl PulseDaemon {
    fn start(dir: &Path) -> Self {
        let runtime = dir.join("runtime");
        std::fs::create_dir_all(runtime.join("pulse")).expect("runtime folder");
        let env = vec![
            ("HOME".to_owned(), dir.to_owned()),
            // The daemon writes its cookie here, where the `pulseaudio`
            // crate looks for it: HOME/.config/pulse/cookie.
            ("XDG_CONFIG_HOME".to_owned(), dir.join(".config")),
            ("XDG_RUNTIME_DIR".to_owned(), runtime.clone()),
            ("PULSE_RUNTIME_PATH".to_owned(), runtime.join("pulse")),
            // The `pulseaudio` crate 0.3.2 looks for the socket under
            // PULSE_RUNTIME_PATH/pulse/native, one folder too deep, and then
            // stops looking, so the server is named outright.
            (
                "PULSE_SERVER".to_owned(),
                PathBuf::from(format!("unix:{}", runtime.join("pulse/native").display())),
            ),
        ];
        let sinks = [
            (MOUTH_A, "Hearth-mouth-A"),
            (MOUTH_B, "Hearth-mouth-B"),
            (EAR_A, "Hearth-ear-A"),
            (EAR_B, "Hearth-ear-B"),
        ];
        let mut args = vec![
            "--daemonize=no".to_owned(),
            "--exit-idle-time=-1".to_owned(),
            "--disallow-exit".to_owned(),
            "--use-pid-file=no".to_owned(),
            "-n".to_owned(),
            "--load=module-native-protocol-unix".to_owned(),
        ];
        for (name, description) in sinks {
            args.push("--load".to_owned());
            args.push(format!(
                "module-null-sink sink_name={name} sink_properties=device.description={description}"
            ));
        }
        let process = Command::new("pulseaudio")
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let process = match process {
            Ok(process) => process,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "pulseaudio is not installed; run scripts/install-deps.sh, which installs \
                 pulseaudio and pulseaudio-utils"
            ),
            Err(err) => panic!("cannot start pulseaudio: {err}"),
        };
        let mut daemon = Self {
            process: Some(process),
            env,
        };
        daemon.wait_ready();
        daemon.pactl(&["set-default-sink", EAR_B]);
        daemon.pactl(&["set-default-source", &format!("{MOUTH_B}.monitor")]);
        daemon
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
                .envs(self.env.iter().map(|(k, v)| (k, v)))
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .status()
            .expect("run pactl");
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
