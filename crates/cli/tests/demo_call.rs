//! `hearth demo` runs a whole call on an embedded server and reports its
//! quality. These tests run the binary on real recordings and check the report.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::{CLIP_720P, FOREMAN, SPEECH, media};
use serde_json::Value;

/// Target bitrate that `hearth demo` uses by default, in kbit/s.
const TARGET_KBPS: f64 = 1000.0;

/// Serializes the demos. Each one encodes and decodes in real time, so two at
/// once would compete for the CPU and skew each other's numbers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `hearth demo` with `extra` arguments and returns the parsed report.json.
fn run_demo(video: &str, seconds: u32, out: &Path, extra: &[&str]) -> Value {
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let config = tempfile::tempdir().unwrap();
    let output = common::run(
        common::hearth(config.path())
            .arg("demo")
            .arg("--video")
            .arg(media(video))
            .arg("--audio")
            .arg(media(SPEECH))
            .args(["--seconds", &seconds.to_string()])
            .args(extra)
            .arg("--out")
            .arg(out),
        "",
        Duration::from_secs(u64::from(seconds) + 60),
    );
    assert!(output.status.success(), "hearth demo failed: {output}");
    assert!(
        !output.stderr.contains("panicked"),
        "hearth demo panicked: {output}"
    );

    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}\n{output}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("invalid report.json: {err}\n{text}"))
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("report.json has no number {field}: {report:#}"))
}

/// Asserts the checks both clips share: frames decoded, PSNR and setup time.
fn assert_video_quality(report: &Value, min_psnr_db: f64) {
    let sent = number(report, "frames_sent");
    let decoded = number(report, "frames_decoded");
    assert!(sent > 0.0, "frames_sent is {sent}");
    assert!(
        decoded >= 0.95 * sent,
        "frames_decoded {decoded} is below 95 % of frames_sent {sent}"
    );

    let psnr = number(report, "psnr_db_mean");
    assert!(
        psnr >= min_psnr_db,
        "psnr_db_mean {psnr:.2} dB is below {min_psnr_db} dB"
    );

    // NOTE: the target is 500 ms, and 40 runs on an idle 2-core machine
    // measured 15 to 118 ms (docs/benchmarks.md). Rarely the first DTLS flight
    // is lost and resent after its 1 s timer (one test run measured 1090 ms),
    // so the test allows one resend rather than failing at random.
    let setup = number(report, "setup_ms");
    assert!(setup < 2000.0, "setup_ms {setup:.0} is not below 2000 ms");
}

/// Asserts that the recordings exist and returns the Y4M header line.
fn assert_recordings(out: &Path) -> String {
    let audio = out.join("audio.wav");
    let audio_len = std::fs::metadata(&audio)
        .map(|meta| meta.len())
        .unwrap_or(0);
    assert!(audio_len > 0, "{} is missing or empty", audio.display());

    let video = out.join("video.y4m");
    let bytes = std::fs::read(&video).unwrap_or_default();
    assert!(!bytes.is_empty(), "{} is missing or empty", video.display());
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..header_end]).into_owned()
}

#[test]
fn demo_foreman_cif_10s() {
    let out = tempfile::tempdir().unwrap();
    let report = run_demo(FOREMAN, 10, out.path(), &[]);

    assert_eq!(report["video_codec"], "h264", "{report:#}");
    assert_video_quality(&report, 32.0);

    let audio_ms = number(&report, "audio_ms_received");
    assert!(
        audio_ms > 9000.0,
        "audio_ms_received {audio_ms:.0} is not above 9000 ms"
    );

    let delay = report["audio_delay_ms"].as_f64();
    assert!(
        delay.is_some(),
        "audio_delay_ms is missing or null: {report:#}"
    );
    let delay = delay.unwrap_or_default();
    assert!(
        (0.0..=150.0).contains(&delay),
        "audio_delay_ms {delay:.1} is outside 0 to 150 ms"
    );

    let kbps = number(&report, "video_kbps");
    assert!(
        (0.5 * TARGET_KBPS..=1.5 * TARGET_KBPS).contains(&kbps),
        "video_kbps {kbps:.0} is not within 50 % of the {TARGET_KBPS} kbit/s target"
    );

    let header = assert_recordings(out.path());
    assert!(
        header.starts_with("YUV4MPEG2"),
        "video.y4m header is {header:?}"
    );
    assert!(
        header.contains(" W352") && header.contains(" H288"),
        "video.y4m header {header:?} is not 352x288"
    );
}

#[test]
fn demo_720p_5s() {
    let out = tempfile::tempdir().unwrap();
    let report = run_demo(CLIP_720P, 5, out.path(), &[]);

    assert_video_quality(&report, 30.0);

    let header = assert_recordings(out.path());
    assert!(
        header.contains(" W1280") && header.contains(" H720"),
        "video.y4m header {header:?} is not 1280x720"
    );
}

#[test]
fn demo_foreman_vp8_5s() {
    let out = tempfile::tempdir().unwrap();
    let report = run_demo(FOREMAN, 5, out.path(), &["--codec", "vp8"]);

    assert_eq!(report["video_codec"], "vp8", "{report:#}");
    assert_video_quality(&report, 32.0);
    assert_eq!(number(&report, "video_decode_errors"), 0.0);

    let kbps = number(&report, "video_kbps");
    assert!(
        (0.5 * TARGET_KBPS..=1.5 * TARGET_KBPS).contains(&kbps),
        "video_kbps {kbps:.0} is not within 50 % of the {TARGET_KBPS} kbit/s target"
    );

    let header = assert_recordings(out.path());
    assert!(
        header.contains(" W352") && header.contains(" H288"),
        "video.y4m header {header:?} is not 352x288"
    );
}
