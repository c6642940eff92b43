//! Bad files, credentials and addresses given to the `hearth` binary. Each case
//! must exit non-zero with a message that names the bad value and the fix,
//! must not panic, and must leave the `hearth-server` process serving.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{B_FRAMES, FOREMAN, Output, SPEECH, ServerProcess, media};

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
/// Every case fails before or during setup, well within this.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a server with the accounts alice and bob, neither of them connected.
fn server() -> ServerProcess {
    ServerProcess::start(&[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)])
}

/// The arguments of `hearth call`, set to a call that would work.
struct CallCase {
    callee: String,
    video: PathBuf,
    audio: PathBuf,
    server: String,
    ca_cert: PathBuf,
    password: String,
}

impl CallCase {
    fn new(server: &ServerProcess) -> Self {
        Self {
            callee: "bob".to_owned(),
            video: media(FOREMAN),
            audio: media(SPEECH),
            server: server.url.clone(),
            ca_cert: server.cert_path(),
            password: ALICE_PASSWORD.to_owned(),
        }
    }

    /// Runs `hearth call` as alice.
    fn run(&self) -> Output {
        let config = tempfile::tempdir().unwrap();
        common::run(
            common::hearth(config.path())
                .arg("call")
                .arg(&self.callee)
                .arg("--video")
                .arg(&self.video)
                .arg("--audio")
                .arg(&self.audio)
                .args(["--seconds", "2"])
                .args(["--server", &self.server])
                .arg("--ca-cert")
                .arg(&self.ca_cert)
                .args(["--user", "alice", "--password-stdin"]),
            &format!("{}\n", self.password),
            TIMEOUT,
        )
    }
}

/// Asserts a failed run whose stderr contains every one of `expected`.
fn assert_rejected(output: &Output, expected: &[&str]) {
    assert!(
        !output.status.success(),
        "hearth exited with success: {output}"
    );
    assert!(
        !output.stderr.contains("panicked"),
        "hearth panicked: {output}"
    );
    for text in expected {
        assert!(
            output.stderr.contains(text),
            "stderr does not contain {text:?}: {output}"
        );
    }
}

fn assert_server_serving(server: &mut ServerProcess) {
    server.assert_serving("bob", BOB_PASSWORD);
}

/// Writes a file of `len` bytes from the start of `source`.
fn truncated_copy(source: &Path, len: usize, target: &Path) {
    let bytes = std::fs::read(source).unwrap();
    assert!(
        bytes.len() > len,
        "{} is shorter than {len} bytes",
        source.display()
    );
    std::fs::write(target, &bytes[..len]).unwrap();
}

#[test]
fn missing_video_file() {
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-clip.264");
    let case = CallCase {
        video: missing.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(&output, &[&missing.display().to_string(), "check the path"]);
    assert_server_serving(&mut server);
}

#[test]
fn truncated_video_file() {
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("foreman-cut.264");
    // 30 000 bytes end inside the foreman clip's tenth picture.
    truncated_copy(&media(FOREMAN), 30_000, &truncated);
    let case = CallCase {
        video: truncated.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(
        &output,
        &[&truncated.display().to_string(), "truncated", "re-copy"],
    );
    assert_server_serving(&mut server);
}

#[test]
fn truncated_speech_file() {
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("speech-cut.wav");
    truncated_copy(&media(SPEECH), 30_000, &truncated);
    let case = CallCase {
        audio: truncated.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(
        &output,
        &[&truncated.display().to_string(), "truncated", "re-copy"],
    );
    assert_server_serving(&mut server);
}

#[test]
fn h264_with_b_frames() {
    let mut server = server();
    let b_frames = media(B_FRAMES);
    let case = CallCase {
        video: b_frames.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(
        &output,
        &[&b_frames.display().to_string(), "B-frames", "re-encode"],
    );
    assert_server_serving(&mut server);
}

#[test]
fn y4m_444_colour_space() {
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-444.y4m");
    // One 4x4 frame in 4:4:4: three full planes of 16 bytes.
    let mut y4m = b"YUV4MPEG2 W4 H4 F25:1 Ip A1:1 C444\nFRAME\n".to_vec();
    y4m.extend_from_slice(&[128; 48]);
    std::fs::write(&path, y4m).unwrap();
    let case = CallCase {
        video: path.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(
        &output,
        &[&path.display().to_string(), "C444", "convert it to 4:2:0"],
    );
    assert_server_serving(&mut server);
}

#[test]
fn wrong_password() {
    let mut server = server();
    let case = CallCase {
        password: "not-alices-password".to_owned(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(&output, &["alice", "check the user name and password"]);
    assert_server_serving(&mut server);
}

#[test]
fn callee_not_found() {
    let mut server = server();
    let case = CallCase {
        callee: "carol".to_owned(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(&output, &["carol", "not found", "check the user name"]);
    assert_server_serving(&mut server);
}

#[test]
fn callee_offline() {
    let mut server = server();
    let case = CallCase::new(&server);

    let output = case.run();

    assert_rejected(&output, &["bob", "offline", "must be signed in"]);
    assert_server_serving(&mut server);
}

#[test]
fn demo_zero_seconds() {
    // `hearth demo` runs its own embedded server, so the check that a server
    // keeps serving is this server being untouched by the rejected demo.
    let mut server = server();
    let config = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();

    let output = common::run(
        common::hearth(config.path())
            .arg("demo")
            .arg("--video")
            .arg(media(FOREMAN))
            .arg("--audio")
            .arg(media(SPEECH))
            .args(["--seconds", "0"])
            .arg("--out")
            .arg(out.path()),
        "",
        TIMEOUT,
    );

    assert_rejected(&output, &["--seconds 0", "at least 1"]);
    assert!(
        !out.path().join("report.json").exists(),
        "a rejected demo wrote report.json"
    );
    assert_server_serving(&mut server);
}

#[test]
fn demo_unknown_codec() {
    let config = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();

    let output = common::run(
        common::hearth(config.path())
            .arg("demo")
            .args(["--codec", "av1"])
            .arg("--out")
            .arg(out.path()),
        "",
        TIMEOUT,
    );

    assert_rejected(&output, &["--codec", "av1", "expected h264 or vp8"]);
    assert!(
        !out.path().join("report.json").exists(),
        "a rejected demo wrote report.json"
    );
}

#[test]
fn server_url_not_https() {
    let mut server = server();
    let http_url = server.url.replace("https://", "http://");
    let case = CallCase {
        server: http_url.clone(),
        ..CallCase::new(&server)
    };

    let output = case.run();

    assert_rejected(&output, &[&http_url, "expected an https:// address"]);
    assert_server_serving(&mut server);
}

#[test]
fn ca_cert_not_pem() {
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pem");
    std::fs::write(&text, "this is not a certificate\n").unwrap();
    // The start of a DER certificate: binary, so not even text.
    let der = dir.path().join("cert.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00]).unwrap();

    for not_pem in [text, der] {
        let case = CallCase {
            ca_cert: not_pem.clone(),
            ..CallCase::new(&server)
        };

        let output = case.run();

        assert_rejected(
            &output,
            &[&not_pem.display().to_string(), "PEM", "tls/cert.pem"],
        );
    }
    assert_server_serving(&mut server);
}
