//! `hearth screens` and `hearth room --share-screen` against a private Xvfb
//! showing a window with text, and their errors for a missing display and
//! bad source ids, which must name the value and the fix before any
//! connection to a server.

mod common;
#[path = "../../media/tests/xvfb/mod.rs"]
mod xvfb;

use std::process::Command;
use std::time::Duration;

use common::{FOREMAN, Output, SPEECH, media};

const TIMEOUT: Duration = Duration::from_secs(30);

fn hearth(display: Option<&str>, args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    let mut command: Command = common::hearth(config.path());
    command.env_remove("WAYLAND_DISPLAY").args(args);
    match display {
        Some(display) => command.env("DISPLAY", display),
        None => command.env_remove("DISPLAY"),
    };
    common::run(&mut command, "", TIMEOUT)
}

/// Runs `hearth room` sharing `source`, with a server address that is never
/// reached because the share is checked first.
fn room_sharing(display: &str, source: &str) -> Output {
    let video = media(FOREMAN);
    let audio = media(SPEECH);
    hearth(
        Some(display),
        &[
            "room",
            "team",
            "--video",
            video.to_str().unwrap(),
            "--audio",
            audio.to_str().unwrap(),
            "--share-screen",
            source,
            "--server",
            "https://127.0.0.1:9",
            "--user",
            "alice",
        ],
    )
}

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

#[test]
fn screens_lists_window_and_rejects_bad_sources() {
    let server = xvfb::Xvfb::start(800, 600);
    let dir = xvfb::picture_dir("cli-screens");
    let picture = dir.join("text.png");
    xvfb::draw_text_picture(&picture, 300, 101, &["hearth screens"], 16);
    let _window = xvfb::PictureWindow::show(&server.display, &picture, "cli screens test", 10, 10);

    let listed = xvfb::wait_for(Duration::from_secs(10), || {
        let output = hearth(Some(&server.display), &["screens", "--json"]);
        output.stdout.contains("cli screens test").then_some(output)
    })
    .expect("hearth screens never listed the window");
    let sources: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let sources = sources.as_array().unwrap();
    assert_eq!(sources[0]["id"], "screen:0", "{listed}");
    assert_eq!(sources[0]["width"], 800);
    let window = sources
        .iter()
        .find(|source| source["title"] == "cli screens test")
        .unwrap();
    assert_eq!(window["kind"], "window");
    assert_eq!(
        (window["width"].as_u64(), window["height"].as_u64()),
        (Some(300), Some(101))
    );
    assert_eq!(window["has_thumbnail"], true);

    let thumbnails = dir.join("thumbnails");
    let output = hearth(
        Some(&server.display),
        &["screens", "--thumbnails", thumbnails.to_str().unwrap()],
    );
    assert!(output.status.success(), "{output}");
    let ppm = std::fs::read(thumbnails.join("screen:0.ppm")).unwrap();
    assert!(ppm.starts_with(b"P6\n240 180\n255\n"), "{:?}", &ppm[..16]);

    let output = room_sharing(&server.display, "window:zzz");
    assert_rejected(&output, &["\"window:zzz\"", "screen:N or window:ID"]);
    let output = room_sharing(&server.display, "window:0x7ffffff");
    assert_rejected(
        &output,
        &["window:0x7ffffff", "not found", "hearth screens"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn screens_without_display_names_the_fix() {
    let output = hearth(None, &["screens"]);
    assert_rejected(&output, &["DISPLAY"]);
}
