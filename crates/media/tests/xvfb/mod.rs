//! A private X server (Xvfb) for screen capture tests, and windows on it
//! that show a picture with text drawn by ImageMagick.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Xvfb. Dropping it stops the server.
pub struct Xvfb {
    child: Child,
    /// The display name, such as `:93`.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one screen of `width` x `height` at depth 24 on the
    /// first free display number, which Xvfb reports through `-displayfd`.
    pub fn start(width: u32, height: u32) -> Self {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Xvfb; install it with scripts/install-deps.sh");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("Xvfb closed its output before naming the display");
        let number: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb reported {line:?} instead of a display number"));
        Self {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Draws `lines` of black text on a white picture of `width` x `height`
/// with ImageMagick and writes it to `path` as PNG.
pub fn draw_text_picture(path: &Path, width: u32, height: u32, lines: &[&str], point_size: u32) {
    let mut command = Command::new("convert");
    command
        .args(["-size", &format!("{width}x{height}"), "xc:white"])
        .args(["-font", "DejaVu-Sans", "-fill", "black"])
        .args(["-pointsize", &point_size.to_string()]);
    let line_height = point_size * 3 / 2;
    for (index, line) in lines.iter().enumerate() {
        let y = 10 + line_height * (index as u32 + 1);
        command.args(["-annotate", &format!("+12+{y}"), line]);
    }
    let status = command
        .arg(path)
        .status()
        .expect("cannot run ImageMagick's convert");
    assert!(
        status.success(),
        "convert failed to draw {}",
        path.display()
    );
}

/// A window of ImageMagick's `display` showing a picture, at a position.
pub struct PictureWindow {
    child: Child,
    pub title: String,
}

impl PictureWindow {
    /// Shows `picture` on `display` at (`x`, `y`) with the window title
    /// `title`, without window decorations (Xvfb has no window manager).
    pub fn show(display: &str, picture: &Path, title: &str, x: u32, y: u32) -> Self {
        let child = Command::new("display")
            .env("DISPLAY", display)
            .args(["-title", title, "-geometry", &format!("+{x}+{y}")])
            .args(["-borderwidth", "0"])
            .arg(picture)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run ImageMagick's display");
        Self {
            child,
            title: title.to_owned(),
        }
    }
}

impl Drop for PictureWindow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 50 ms until it returns `Some`, for at most
/// `timeout`.
pub fn wait_for<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Returns a fresh folder for a test's pictures.
pub fn picture_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create a temporary folder");
    dir
}
