//! Debian's Chromium, driven through chromedriver, as a guest in a call: the
//! part the browser interop tests of `hearth-client` and `hearth-cli` share.
//! Each test crate includes this file with `#[path]`.
//!
//! Needs `chromium`, `chromium-driver` and `ffmpeg` (scripts/install-deps.sh).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// What Chromium's fake camera shows, and how.
pub struct FakeCamera<'a> {
    /// A video file ffmpeg can read.
    pub source: &'a Path,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Converts recordings into the files Chromium's fake capture devices read:
/// 4 s of Y4M video, which Chromium loops, and 10 s of 48 kHz WAV.
pub fn fake_capture_files(
    folder: &Path,
    camera: &FakeCamera<'_>,
    speech: &Path,
) -> (PathBuf, PathBuf) {
    let video = folder.join("camera.y4m");
    let audio = folder.join("microphone.wav");
    let filter = format!(
        "scale={}:{},fps={}",
        camera.width, camera.height, camera.fps
    );
    ffmpeg(&[
        "-i",
        camera.source.to_str().unwrap(),
        "-t",
        "4",
        "-vf",
        &filter,
        "-pix_fmt",
        "yuv420p",
        video.to_str().unwrap(),
    ]);
    ffmpeg(&[
        "-i",
        speech.to_str().unwrap(),
        "-t",
        "10",
        "-ar",
        "48000",
        "-ac",
        "1",
        "-c:a",
        "pcm_s16le",
        audio.to_str().unwrap(),
    ]);
    (video, audio)
}

fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs; install it with scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Returns the path of a program on `PATH`, or fails naming the package.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH; install Debian's chromium and chromium-driver \
                 (scripts/install-deps.sh)"
            )
        })
}

/// Returns the base64 SHA-256 of the certificate's SubjectPublicKeyInfo, the
/// form `--ignore-certificate-errors-spki-list` takes.
pub fn spki_hash(certificate_pem: &str) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).unwrap();
    let certificate = pem.parse_x509().unwrap();
    let digest = Sha256::digest(certificate.tbs_certificate.subject_pki.raw);
    base64::engine::general_purpose::STANDARD.encode(digest)
}

pub struct BrowserOptions<'a> {
    pub chromium: &'a Path,
    pub profile: &'a Path,
    pub camera: &'a Path,
    pub microphone: &'a Path,
    /// The server certificate's key, the only one Chromium trusts beyond
    /// its own store.
    pub spki_hash: &'a str,
}

/// A chromedriver process on a free loopback port, stopped on drop.
pub struct ChromeDriver {
    process: Child,
    port: u16,
}

impl ChromeDriver {
    pub fn start(program: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chromedriver starts");
        Self { process, port }
    }

    /// Starts Chromium through chromedriver, retrying while chromedriver is
    /// still starting.
    pub async fn connect(&self, options: &BrowserOptions<'_>) -> Client {
        let mut args = vec![
            "--headless".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", options.profile.display()),
            // Trust exactly the test server's key, which only listens on
            // loopback or on a namespace's link.
            format!(
                "--ignore-certificate-errors-spki-list={}",
                options.spki_hash
            ),
            "--use-fake-ui-for-media-stream".to_owned(),
            "--use-fake-device-for-media-stream".to_owned(),
            format!(
                "--use-file-for-fake-video-capture={}",
                options.camera.display()
            ),
            format!(
                "--use-file-for-fake-audio-capture={}",
                options.microphone.display()
            ),
            // The SFU may listen on 127.0.0.1, which WebRTC skips by default.
            "--allow-loopback-in-peer-connection".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            // libwebrtc sends fewer simulcast layers for small pictures:
            // Chromium 156 sent two at 640x360. The field trial keeps all
            // three, as a 720p camera sends, without the CPU cost of 720p.
            "--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/".to_owned(),
            "--lang=en-US".to_owned(),
            "--window-size=1280,900".to_owned(),
        ];
        if running_as_root() {
            // Chromium's sandbox refuses to run as root.
            args.push("--no-sandbox".to_owned());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": options.chromium,
                "args": args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are a JSON object");
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut last_error = None;
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(error) => last_error = Some(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "failed to start Chromium through chromedriver at {url}: {}",
            last_error.unwrap_or_default()
        );
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SIGTERM lets chromedriver end the Chromium it started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.process.id().to_string())
            .status();
        for _ in 0..20 {
            if matches!(self.process.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Opens the guest page at `page_url`, joins under `name` and returns the
/// participant id the room gave the browser.
pub async fn join_as_guest(browser: &Client, page_url: &str, name: &str) -> u64 {
    browser.goto(page_url).await.unwrap();
    // The button does nothing until the page's script has run, which on a
    // busy machine can be after the page has loaded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while browser
        .execute("return window.hearthGuest === undefined;", vec![])
        .await
        .unwrap()
        == Value::Bool(true)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the guest page's script did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let field = browser.find(Locator::Id("name")).await.unwrap();
    field.send_keys(name).await.unwrap();
    browser
        .find(Locator::Id("join-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = browser
            .execute("return window.hearthGuest.state;", vec![])
            .await
            .unwrap();
        assert_ne!(
            state["phase"], "failed",
            "the guest page failed to join: {}",
            state["error"]
        );
        if state["phase"] == "joined" {
            return state["participantId"].as_u64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the guest page did not join within 30 s; its state: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Returns the guest page's WebRTC statistics: `inbound` and `outbound`
/// arrays, one entry per stream.
pub async fn browser_stats(browser: &Client) -> Value {
    browser
        .execute("return window.hearthGuest.stats();", vec![])
        .await
        .unwrap()
}
