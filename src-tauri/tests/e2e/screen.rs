//! Video sampled from the X display, for the `native` renderer, which draws
//! video in widgets over the webview where the page cannot read it.

use std::process::Command;

use serde_json::{Value, json};

use super::VideoSample;
use super::webdriver::Session;

/// Width and height of the grid the picture is reduced to.
const GRID: (usize, usize) = (64, 48);

/// A rectangle on the display, in pixels.
#[derive(Debug, Clone, Copy)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Area {
    fn from_json(value: &Value) -> Option<Self> {
        let numbers: Vec<f64> = value.as_array()?.iter().filter_map(Value::as_f64).collect();
        match numbers[..] {
            [left, top, right, bottom] => Some(Self {
                left,
                top,
                right,
                bottom,
            }),
            _ => None,
        }
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        (self.left..self.right).contains(&x) && (self.top..self.bottom).contains(&y)
    }
}

/// Returns the rectangle where the app drew the picture of the video element
/// matching `css`, and the page elements over it, relative to the webview.
/// Returns `None` while the element is missing, has no size or the app drew
/// no frame yet.
fn picture_on_page(session: &Session, css: &str) -> Option<(Area, Vec<Area>)> {
    // The app fits the picture into the element with its aspect ratio kept,
    // and the canvas carries the size of the picture drawn.
    let script = r#"
        const [css] = arguments;
        const element = document.querySelector(css);
        if (!element || element.dataset.hasFrame !== "true") return null;
        const box = element.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) return null;
        const scale = Math.min(box.width / element.width, box.height / element.height);
        const width = element.width * scale;
        const height = element.height * scale;
        const left = box.left + (box.width - width) / 2;
        const top = box.top + (box.height - height) / 2;
        const holes = [...document.querySelectorAll("[data-over-video]")]
            .filter((over) => !over.contains(element))
            .map((over) => over.getBoundingClientRect())
            .map((hole) => [hole.left, hole.top, hole.right, hole.bottom]);
        return { picture: [left, top, left + width, top + height], holes };
    "#;
    let value = session.execute(script, json!([css]));
    let picture = Area::from_json(value.get("picture")?)?;
    let holes = value
        .get("holes")?
        .as_array()?
        .iter()
        .filter_map(Area::from_json)
        .collect();
    Some((picture, holes))
}

/// Returns the top-left corner of the app's window on `display`.
fn window_origin(display: &str) -> (f64, f64) {
    let output = Command::new("xwininfo")
        .args(["-display", display, "-name", "Hearth"])
        .output()
        .expect("xwininfo runs (install x11-utils)");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("xwininfo printed no {name:?} for the Hearth window:\n{text}")
            })
    };
    (
        field("Absolute upper-left X:"),
        field("Absolute upper-left Y:"),
    )
}

/// Reads the pixels of `area` of the display as 8-bit RGB.
fn grab(display: &str, left: i64, top: i64, width: i64, height: i64) -> Vec<u8> {
    let output = Command::new("import")
        .args(["-display", display, "-window", "root", "-crop"])
        .arg(format!("{width}x{height}+{left}+{top}"))
        .args(["-depth", "8", "rgb:-"])
        .output()
        .expect("ImageMagick's import runs (install imagemagick)");
    assert!(
        output.status.success(),
        "import failed to read the display: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Samples the natively drawn video of the element matching `css` from the
/// display. Grid cells that any page element over the video touches are
/// `NaN`, so that labels and the self view do not count as video.
pub fn sample_native(session: &Session, display: &str, css: &str) -> Option<VideoSample> {
    let (picture, holes) = picture_on_page(session, css)?;
    sample_area(display, picture, &holes)
}

/// Samples the display where the element matching `css` is, whatever is
/// drawn there. Returns `None` while the element is missing.
pub fn sample_element(session: &Session, display: &str, css: &str) -> Option<VideoSample> {
    let script = r#"
        const element = document.querySelector(arguments[0]);
        if (!element) return null;
        const box = element.getBoundingClientRect();
        return [box.left, box.top, box.right, box.bottom];
    "#;
    let area = Area::from_json(&session.execute(script, json!([css])))?;
    sample_area(display, area, &[])
}

/// Samples `picture`, relative to the webview, from the display, leaving out
/// grid cells that a hole touches.
fn sample_area(display: &str, picture: Area, holes: &[Area]) -> Option<VideoSample> {
    let (origin_x, origin_y) = window_origin(display);
    let left = (origin_x + picture.left).round() as i64;
    let top = (origin_y + picture.top).round() as i64;
    let width = (picture.right - picture.left).floor() as i64;
    let height = (picture.bottom - picture.top).floor() as i64;
    if width < GRID.0 as i64 || height < GRID.1 as i64 {
        return None;
    }
    let rgb = grab(display, left, top, width, height);
    let (width, height) = (width as usize, height as usize);
    assert_eq!(
        rgb.len(),
        width * height * 3,
        "import returned {} bytes for {width}x{height} RGB",
        rgb.len()
    );

    let mut sums = vec![0.0; GRID.0 * GRID.1];
    let mut counts = vec![0usize; GRID.0 * GRID.1];
    let mut covered = vec![false; GRID.0 * GRID.1];
    for y in 0..height {
        for x in 0..width {
            let cell = (y * GRID.1 / height) * GRID.0 + x * GRID.0 / width;
            let page_x = picture.left + x as f64;
            let page_y = picture.top + y as f64;
            if holes.iter().any(|hole| hole.contains(page_x, page_y)) {
                covered[cell] = true;
                continue;
            }
            let pixel = &rgb[(y * width + x) * 3..][..3];
            sums[cell] += 0.299 * f64::from(pixel[0])
                + 0.587 * f64::from(pixel[1])
                + 0.114 * f64::from(pixel[2]);
            counts[cell] += 1;
        }
    }
    let luma = (0..sums.len())
        .map(|cell| {
            if covered[cell] || counts[cell] == 0 {
                f64::NAN
            } else {
                sums[cell] / counts[cell] as f64
            }
        })
        .collect();
    Some(VideoSample { luma })
}
