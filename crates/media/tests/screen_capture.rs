//! X11 screen capture against a real X server: Xvfb with an ImageMagick
//! window that shows text. Runs without the test harness, because the
//! capture reads `DISPLAY` from the environment, which may only be changed
//! while a single thread runs.

#![allow(unsafe_code)]

mod xvfb;

use std::process::Command;
use std::time::Duration;

use hearth_media::VideoFrame;
use hearth_media::quality::psnr_luma;
use hearth_media::screen::{
    self, ScreenCapture, ScreenError, SourceId, SourceKind, THUMBNAIL_MAX_SIDE, X11Transfer,
    bgrx_to_i420,
};

const SCREEN: (u32, u32) = (1280, 720);
/// An odd height, so that the capture has to crop a row.
const PICTURE: (u32, u32) = (640, 361);
const WINDOW_POSITION: (u32, u32) = (100, 50);

fn main() {
    // SAFETY: no other thread runs yet.
    unsafe {
        std::env::remove_var("DISPLAY");
        std::env::remove_var("WAYLAND_DISPLAY");
    }
    let no_display = screen::list_sources().unwrap_err();
    assert!(matches!(no_display, ScreenError::NoDisplay), "{no_display}");

    // SAFETY: as above.
    unsafe { std::env::set_var("DISPLAY", ":4999") };
    let unreachable = screen::list_sources().unwrap_err();
    assert!(
        matches!(&unreachable, ScreenError::Connect { display, .. } if display == ":4999"),
        "{unreachable}"
    );

    let server = xvfb::Xvfb::start(SCREEN.0, SCREEN.1);
    // SAFETY: as above; the capture threads of the checks start later.
    unsafe { std::env::set_var("DISPLAY", &server.display) };
    let dir = xvfb::picture_dir("screen-capture");
    let picture = dir.join("text.png");
    xvfb::draw_text_picture(
        &picture,
        PICTURE.0,
        PICTURE.1,
        &[
            "Screen sharing test: 0123456789",
            "The quick brown fox jumps over the lazy dog.",
            "fn main() { println!(\"hello\"); }",
        ],
        16,
    );
    let window = xvfb::PictureWindow::show(
        &server.display,
        &picture,
        "hearth capture test",
        WINDOW_POSITION.0,
        WINDOW_POSITION.1,
    );

    let checks: [(&str, Check); 5] = [
        (
            "window_is_listed_with_thumbnail",
            window_is_listed_with_thumbnail,
        ),
        (
            "window_capture_matches_picture",
            window_capture_matches_picture,
        ),
        (
            "screen_capture_contains_window",
            screen_capture_contains_window,
        ),
        (
            "capture_thread_publishes_frames",
            capture_thread_publishes_frames,
        ),
        ("bad_sources_are_rejected", bad_sources_are_rejected),
    ];
    let window_id = xvfb::wait_for(Duration::from_secs(10), || {
        screen::list_sources()
            .ok()?
            .into_iter()
            .find(|source| source.title == window.title)
            .map(|source| source.id)
    })
    .expect("the picture window never appeared in the source list");
    let fixture = Fixture {
        window: window_id,
        reference: load_reference(&picture),
    };
    let mut failed = 0;
    for (name, check) in checks {
        match std::panic::catch_unwind(|| check(&fixture)) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    // `exit` below skips destructors, so the X server and its window stop here.
    drop(window);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// One named check over the shared fixture.
type Check = fn(&Fixture);

struct Fixture {
    window: SourceId,
    /// The picture as the window shows it, in I420 cropped to even sizes.
    reference: VideoFrame,
}

/// Decodes the PNG with ImageMagick and converts it as the capture does.
fn load_reference(picture: &std::path::Path) -> VideoFrame {
    let output = Command::new("convert")
        .arg(picture)
        .args(["-depth", "8", "rgba:-"])
        .output()
        .expect("cannot run ImageMagick's convert");
    assert!(
        output.status.success(),
        "convert failed to decode the picture"
    );
    let (width, height) = (PICTURE.0 as usize, PICTURE.1 as usize);
    bgrx_to_i420(width, height, width * 4, &output.stdout, true).expect("the picture converts")
}

fn window_is_listed_with_thumbnail(fixture: &Fixture) {
    let sources = screen::list_sources().unwrap();
    let screens: Vec<_> = sources
        .iter()
        .filter(|source| source.kind == SourceKind::Screen)
        .collect();
    assert_eq!(screens.len(), 1, "{sources:?}");
    assert_eq!((screens[0].width, screens[0].height), SCREEN);
    let window = sources
        .iter()
        .find(|source| source.id == fixture.window)
        .unwrap();
    assert_eq!(window.kind, SourceKind::Window);
    assert_eq!((window.width, window.height), PICTURE);
    let thumbnail = window
        .thumbnail
        .as_ref()
        .expect("the window has a thumbnail");
    assert_eq!(thumbnail.width, THUMBNAIL_MAX_SIDE);
    assert_eq!(thumbnail.rgb.len(), thumbnail.width * thumbnail.height * 3);
    // White paper with black text: bright on average, with some dark pixels.
    let mean =
        thumbnail.rgb.iter().map(|&v| u64::from(v)).sum::<u64>() / thumbnail.rgb.len() as u64;
    assert!(mean > 200, "mean thumbnail value {mean}");
    assert!(
        thumbnail.rgb.iter().any(|&v| v < 128),
        "the thumbnail shows no text"
    );
}

fn window_capture_matches_picture(fixture: &Fixture) {
    let shm = screen::grab_once(fixture.window, X11Transfer::Auto).unwrap();
    let plain = screen::grab_once(fixture.window, X11Transfer::GetImage).unwrap();
    assert_eq!((shm.width, shm.height), (640, 360), "odd height cropped");
    assert!(shm == plain, "MIT-SHM and GetImage pictures differ");
    let psnr = psnr_luma(&fixture.reference, &shm).unwrap();
    assert_eq!(psnr, 100.0, "the capture differs from the picture shown");
}

fn screen_capture_contains_window(fixture: &Fixture) {
    let screen_id: SourceId = "screen:0".parse().unwrap();
    let whole = screen::grab_once(screen_id, X11Transfer::Auto).unwrap();
    assert_eq!(
        (whole.width, whole.height),
        (SCREEN.0 as usize, SCREEN.1 as usize)
    );
    let (y, _, _) = whole.planes();
    let (reference_y, _, _) = fixture.reference.planes();
    let (left, top) = (WINDOW_POSITION.0 as usize, WINDOW_POSITION.1 as usize);
    for row in 0..fixture.reference.height {
        let captured = &y[(top + row) * whole.width + left..][..fixture.reference.width];
        let expected = &reference_y[row * fixture.reference.width..][..fixture.reference.width];
        assert_eq!(captured, expected, "row {row} of the window differs");
    }
}

fn capture_thread_publishes_frames(fixture: &Fixture) {
    let capture = ScreenCapture::start(fixture.window, 20.0).unwrap();
    assert!(
        capture.shared_memory(),
        "Xvfb offers MIT-SHM to a local client"
    );
    let plain = ScreenCapture::start_with(fixture.window, 20.0, X11Transfer::GetImage).unwrap();
    assert!(!plain.shared_memory());
    let mut frames = capture.frames();
    let mut published = 0;
    xvfb::wait_for(Duration::from_secs(10), || {
        if frames.has_changed().unwrap_or(false) {
            frames.borrow_and_update();
            published += 1;
        }
        (published >= 3).then_some(())
    })
    .expect("the capture thread published fewer than 3 frames in 10 s");
    let latest = capture.latest().unwrap();
    assert_eq!((latest.width, latest.height), (640, 360));
}

fn bad_sources_are_rejected(fixture: &Fixture) {
    let missing: SourceId = "window:0x7ffffff".parse().unwrap();
    let error = ScreenCapture::start(missing, 10.0).unwrap_err();
    assert!(
        matches!(&error, ScreenError::SourceNotFound { id } if id == "window:0x7ffffff"),
        "{error}"
    );
    let no_screen: SourceId = "screen:5".parse().unwrap();
    let error = ScreenCapture::start(no_screen, 10.0).unwrap_err();
    assert!(
        matches!(error, ScreenError::SourceNotFound { .. }),
        "{error}"
    );
    let error = ScreenCapture::start(fixture.window, 0.0).unwrap_err();
    assert!(
        matches!(error, ScreenError::InvalidFrameRate { .. }),
        "{error}"
    );
    let error = "window:abc".parse::<SourceId>().unwrap_err();
    assert!(error.to_string().contains("window:abc"), "{error}");
}
