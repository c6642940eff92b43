//! `hearth call` and `hearth answer` as two processes through a real
//! `hearth-server` process on loopback.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{FOREMAN, Process, SPEECH, ServerProcess, media};

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";

#[test]
fn call_answered_and_recorded() {
    let server = ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]);
    let config = tempfile::tempdir().unwrap();
    let record = tempfile::tempdir().unwrap();
    let record_dir = record.path().join("bob");

    let answer = common::hearth(config.path())
        .arg("answer")
        .arg("--record")
        .arg(&record_dir)
        .args(["--server", &server.url])
        .arg("--ca-cert")
        .arg(server.cert_path())
        .args(["--user", "bob", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth answer starts");
    let mut answer = Process::new(answer);
    answer.write_stdin(&format!("{BOB_PASSWORD}\n"));
    answer.wait_for_line("waiting for a call", Duration::from_secs(20));

    let call = common::run(
        common::hearth(config.path())
            .args(["call", "bob"])
            .arg("--video")
            .arg(media(FOREMAN))
            .arg("--audio")
            .arg(media(SPEECH))
            .args(["--seconds", "4"])
            // The callee offers both codecs, so the caller's single codec is used.
            .args(["--codec", "vp8"])
            .args(["--server", &server.url])
            .arg("--ca-cert")
            .arg(server.cert_path())
            .args(["--user", "alice", "--password-stdin"]),
        &format!("{ALICE_PASSWORD}\n"),
        Duration::from_secs(60),
    );
    assert!(
        call.status.success(),
        "hearth call failed: {call}\n--- server log\n{}",
        server.log()
    );

    // The answer side must end by itself once the caller hangs up.
    let answered = answer.wait(Duration::from_secs(20));
    assert!(
        answered.status.success(),
        "hearth answer failed: {answered}"
    );
    assert!(
        !call.stderr.contains("panicked"),
        "hearth call panicked: {call}"
    );
    assert!(
        !answered.stderr.contains("panicked"),
        "hearth answer panicked: {answered}"
    );

    assert!(
        call.stdout.contains("VP8 video frames"),
        "hearth call did not send VP8: {call}"
    );
    let decoded = decoded_frames(&answered.stdout);
    assert!(
        decoded.is_some_and(|frames| frames > 0),
        "hearth answer reported {decoded:?} decoded frames: {answered}"
    );

    for name in ["video.y4m", "audio.wav"] {
        let path = record_dir.join(name);
        let len = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", path.display());
    }
}

/// Reads N from the line `decoded N video frames ...` that `hearth answer` prints.
fn decoded_frames(stdout: &str) -> Option<u64> {
    let rest = stdout.split("decoded ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
