//! A call over a network that drops packets: `hearth demo` runs inside a
//! network namespace of its own whose loopback starts dropping 10 % of UDP
//! packets at random (nftables) once the call is up, so media suffers loss
//! while signalling over TCP does not.
//! Needs root, `ip` and `nft`; CI runs as root and `scripts/install-deps.sh`
//! installs both.

mod common;

use std::process::Command;

use common::{FOREMAN, SPEECH, media};
use serde_json::Value;

/// Percentage of UDP packets dropped.
const LOSS_PERCENT: u32 = 10;

/// A network namespace that is deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn create() -> Self {
        // Tests run on several threads of one process, so the id alone is not unique.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hearth-loss-{}-{index}", std::process::id());
        common::run_checked(&["ip", "netns", "add", &name]);
        let namespace = Self(name);
        namespace.exec(&["ip", "link", "set", "lo", "up"]);
        namespace.exec(&["nft", "add", "table", "inet", "hearth"]);
        namespace.exec(&[
            "nft",
            "add chain inet hearth input { type filter hook input priority 0; }",
        ]);
        namespace
    }

    fn start_dropping(&self) {
        let rule = format!(
            "add rule inet hearth input meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} drop"
        );
        self.exec(&["nft", &rule]);
    }

    fn exec(&self, command: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(command);
        common::run_checked(&full);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tools_available() -> bool {
    let has = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    common::is_root() && has("ip") && has("nft")
}

#[test]
fn call_recovers_from_packet_loss() {
    call_over_lossy_network("h264");
}

#[test]
fn vp8_call_recovers_from_packet_loss() {
    call_over_lossy_network("vp8");
}

/// Runs an 8-second `hearth demo` with `codec` first in both users' codec
/// lists, drops UDP packets once the call is up, and checks the report.
fn call_over_lossy_network(codec: &str) {
    if !tools_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root with ip and nft installed"
        );
        eprintln!("skipped: needs root, ip and nft");
        return;
    }
    let namespace = Namespace::create();
    let out = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();

    let demo = Command::new("ip")
        .args(["netns", "exec", &namespace.0])
        .arg(env!("CARGO_BIN_EXE_hearth"))
        .arg("demo")
        .arg("--video")
        .arg(media(FOREMAN))
        .arg("--audio")
        .arg(media(SPEECH))
        .args(["--codec", codec, "--seconds", "8", "--out"])
        .arg(out.path())
        .env("HEARTH_CONFIG_DIR", config.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // NOTE: the loss starts after setup, which takes about 100 ms on loopback.
    // The DTLS handshake of rtc 0.21 can fail outright ("invalid state machine
    // transition") when its flights are lost, and this test is about media.
    std::thread::sleep(std::time::Duration::from_secs(2));
    namespace.start_dropping();
    let output = demo.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hearth demo failed:\n{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "hearth demo panicked:\n{stderr}"
    );

    let text = std::fs::read_to_string(out.path().join("report.json")).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    let number = |field: &str| {
        report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("report.json has no number {field}: {report:#}"))
    };

    assert_eq!(report["video_codec"], codec, "{report:#}");
    let sent = number("frames_sent");
    let decoded = number("frames_decoded");
    assert!(
        decoded >= 0.5 * sent,
        "decoded {decoded} of {sent} frames at {LOSS_PERCENT} % loss"
    );
    let requests = number("keyframe_requests");
    let keyframes = number("keyframes_sent");
    assert!(
        keyframes > 1.0 || requests == 0.0,
        "the receiver sent {requests} keyframe requests but the sender encoded {keyframes} keyframes"
    );
    let psnr = number("psnr_db_mean");
    assert!(
        psnr >= 32.0,
        "psnr_db_mean {psnr:.2} dB: frames decoded after loss are damaged"
    );
    assert_eq!(number("video_decode_errors"), 0.0, "{report:#}");
    let audio = number("audio_ms_received");
    assert!(
        audio >= 0.8 * 8000.0,
        "received {audio} ms of 8000 ms of speech"
    );
    // Opus's in-band FEC follows the loss in the receiver reports. On a
    // clean link it falls to 1 %, so a value near the loss shows it followed.
    let fec = number("audio_fec_expected_loss_percent");
    assert!(
        fec >= f64::from(LOSS_PERCENT) * 0.6,
        "Opus FEC was sized for {fec} % loss at {LOSS_PERCENT} % loss"
    );
}
