//! Support for the desktop app's end-to-end tests: the app under Xvfb driven
//! through tauri-driver, its translations, screenshots and video sampling.

#![allow(dead_code)]

pub mod processes;
pub mod screen;
pub mod webdriver;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use processes::{TauriDriver, Xvfb};
use webdriver::Session;

/// Foreman, CIF (352x288), 299 frames.
pub const FOREMAN: &str = "video/BA1_FT_C.264";
pub const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";

/// The languages the UI ships, as the settings name them.
pub const LANGUAGES: [&str; 2] = ["en", "zh-CN"];

/// Serialises the tests: each runs an app with three processes, which is as
/// much as a small CI machine carries.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The UI's messages in one language, from `ui/src/i18n`.
pub struct Translations {
    pub language: String,
    messages: HashMap<String, String>,
}

impl Translations {
    pub fn load(language: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ui/src/i18n")
            .join(format!("{language}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        let messages = serde_json::from_str(&text).unwrap_or_else(|err| {
            panic!("{} is not a JSON object of strings: {err}", path.display())
        });
        Self {
            language: language.to_owned(),
            messages,
        }
    }

    /// Returns the message for `key` with each `{name}` replaced from `params`.
    pub fn t(&self, key: &str, params: &[(&str, &str)]) -> String {
        let template = self
            .messages
            .get(key)
            .unwrap_or_else(|| panic!("no message {key} in {}.json", self.language));
        params.iter().fold(template.clone(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
    }
}

/// Returns the folder the screenshots go to: `e2e-screenshots` in the
/// target folder.
pub fn screenshot_dir() -> PathBuf {
    processes::profile_dir()
        .parent()
        .expect("the profile folder is inside the target folder")
        .join("e2e-screenshots")
}

/// One run of the app with its own profile folder, display and driver.
/// Fields drop in order: the session closes the app before the driver stops.
pub struct App {
    pub session: Session,
    driver: TauriDriver,
    display: String,
    data_dir: tempfile::TempDir,
    screenshots: PathBuf,
}

impl App {
    /// Starts the app with a fresh profile in `language`. With `video_file`
    /// the app's "camera" is that file, because Xvfb has no camera.
    pub fn launch(
        xvfb: &Xvfb,
        language: &str,
        video_file: Option<&Path>,
        screenshots: &str,
    ) -> Self {
        let video_source = match video_file {
            Some(path) => json!({ "kind": "file", "path": path }),
            None => json!({ "kind": "none" }),
        };
        let settings = json!({ "language": language, "videoSource": video_source });
        Self::launch_with_settings(xvfb, settings, screenshots)
    }

    /// Starts the app with a fresh profile holding `settings`, in the form
    /// the app stores them in `profile.json`.
    pub fn launch_with_settings(xvfb: &Xvfb, settings: Value, screenshots: &str) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary folder");
        let profile = json!({ "settings": settings });
        std::fs::write(data_dir.path().join("profile.json"), profile.to_string())
            .expect("the profile can be written");

        let application = processes::app_binary();
        let driver = TauriDriver::start(
            &xvfb.display,
            &[("HEARTH_DESKTOP_DATA_DIR", data_dir.path())],
        );
        let session = Session::start(driver.address, &application).unwrap_or_else(|err| {
            panic!(
                "the app {} did not start under tauri-driver: {err}\n{}",
                application.display(),
                driver.output()
            )
        });
        Self {
            session,
            driver,
            display: xvfb.display.clone(),
            data_dir,
            screenshots: screenshot_dir().join(screenshots),
        }
    }

    /// Saves a screenshot of the display as `NAME.png` and returns its path.
    /// ImageMagick's `import` reads the X display, because WebKitWebDriver's
    /// screenshot command did not return under Xvfb.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::create_dir_all(&self.screenshots).expect("the screenshot folder can be created");
        let status = std::process::Command::new("import")
            .args(["-display", &self.display, "-window", "root"])
            .arg(&path)
            .status()
            .expect("ImageMagick's import runs (install imagemagick)");
        assert!(
            status.success(),
            "import failed to save {}: {status}",
            path.display()
        );
        path
    }

    /// Signs in to `server` on the first-run screens, trusting its
    /// self-signed certificate, and waits until the app is online.
    pub fn sign_in(&self, server: &processes::Server, user: &str, password: &str) {
        let page = &self.session;
        page.wait_for("[data-testid=choose-connect]", STEP).click();
        page.wait_for("[data-testid=connect-address]", STEP)
            .type_text(server.address());
        page.wait_for("[data-testid=connect-submit]", STEP).click();
        page.wait_for("[data-testid=trust-certificate]", STEP)
            .click();
        page.wait_for("[data-testid=sign-in-user]", STEP)
            .type_text(user);
        page.wait_for("[data-testid=sign-in-password]", STEP)
            .type_text(password);
        page.wait_for("[data-testid=sign-in-submit]", STEP).click();
        page.wait_for(
            "[data-testid=connection-state][data-connection=online]",
            STEP,
        );
    }

    /// Samples the video element matching `css`: from its canvas, or from the
    /// display when the app draws the video natively over the page.
    /// Returns `None` while the element is missing or shows nothing yet.
    pub fn sample_video(&self, css: &str) -> Option<VideoSample> {
        let renderer = self.session.execute(
            "const element = document.querySelector(arguments[0]); return element ? element.dataset.renderer : null;",
            json!([css]),
        );
        match renderer.as_str()? {
            "native" => screen::sample_native(&self.session, &self.display, css),
            _ => VideoSample::take(&self.session, css),
        }
    }

    /// Samples the display where the element matching `css` is, whatever
    /// the page or the app drew there.
    pub fn sample_screen(&self, css: &str) -> Option<VideoSample> {
        screen::sample_element(&self.session, &self.display, css)
    }

    /// Returns the app's data folder, `HEARTH_DESKTOP_DATA_DIR`.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Returns the app's log, for failure messages.
    pub fn log(&self) -> String {
        let dir = self.data_dir.path().join("logs");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect::<Vec<_>>()
            .join("")
    }
}

impl Drop for App {
    /// Prints the app's log and the driver's output when a test fails, because
    /// both are deleted with the app's temporary folder.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- app log\n{}\n--- tauri-driver output\n{}",
                self.log(),
                self.driver.output()
            );
        }
    }
}

/// The brightness of a video canvas, scaled down to a small grid.
pub struct VideoSample {
    /// BT.601 luma per grid cell, 0 to 255; `NaN` for a cell that a page
    /// element over the video covers, which no statistic counts.
    pub luma: Vec<f64>,
}

/// Width and height of the grid a canvas is scaled to before sampling.
const SAMPLE_GRID: (u32, u32) = (64, 48);

impl VideoSample {
    /// Copies the canvas matching `css` into a 2D canvas and reads its pixels.
    /// Returns `None` while the canvas is missing or has no size.
    pub fn take(session: &Session, css: &str) -> Option<Self> {
        let script = r#"
            const [css, width, height] = arguments;
            const source = document.querySelector(css);
            if (!source || source.width === 0 || source.height === 0) return null;
            const copy = document.createElement("canvas");
            copy.width = width;
            copy.height = height;
            const context = copy.getContext("2d");
            context.drawImage(source, 0, 0, width, height);
            const rgba = context.getImageData(0, 0, width, height).data;
            const luma = [];
            for (let i = 0; i < rgba.length; i += 4) {
                luma.push(0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2]);
            }
            return luma;
        "#;
        let value = session.execute(script, json!([css, SAMPLE_GRID.0, SAMPLE_GRID.1]));
        let luma: Vec<f64> = value.as_array()?.iter().filter_map(Value::as_f64).collect();
        (!luma.is_empty()).then_some(Self { luma })
    }

    fn cells(&self) -> impl Iterator<Item = f64> + '_ {
        self.luma.iter().copied().filter(|luma| !luma.is_nan())
    }

    pub fn mean(&self) -> f64 {
        self.cells().sum::<f64>() / self.cells().count().max(1) as f64
    }

    /// The standard deviation of the luma: near 0 for a flat colour.
    pub fn spread(&self) -> f64 {
        let mean = self.mean();
        let variance = self.cells().map(|l| (l - mean).powi(2)).sum::<f64>()
            / self.cells().count().max(1) as f64;
        variance.sqrt()
    }

    /// The mean absolute luma difference to `other`, over the grid cells
    /// that both samples count.
    pub fn difference(&self, other: &Self) -> f64 {
        let differences: Vec<f64> = self
            .luma
            .iter()
            .zip(&other.luma)
            .map(|(a, b)| (a - b).abs())
            .filter(|difference| !difference.is_nan())
            .collect();
        differences.iter().sum::<f64>() / differences.len().max(1) as f64
    }
}

/// Returns the SHA-256 fingerprint of the first certificate in a PEM file,
/// in the form the app shows.
pub fn pem_fingerprint(path: &Path) -> String {
    let pem = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    let der = webdriver::decode_base64(&body).expect("the certificate is valid base64");
    hearth_client::trust::certificate_fingerprint(&der)
}

/// How long a step in the UI may take, such as a click that opens a screen.
pub const STEP: Duration = Duration::from_secs(20);
