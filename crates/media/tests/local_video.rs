//! Local video sources: a file used as a camera, and the typed errors of bad
//! files and missing cameras.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use hearth_media::MediaError;
use hearth_media::live::{LocalVideo, VideoSource, list_cameras};
use hearth_media::source::load_video;

fn start_file(path: PathBuf) -> Result<LocalVideo, MediaError> {
    LocalVideo::start(&VideoSource::File(path))
}

#[test]
fn file_source_publishes_frames_in_a_loop() {
    let path = common::media("video/CiscoVT2people_320x192_12fps.y4m");
    let clip = load_video(&path).unwrap();
    let video = start_file(path).unwrap();
    let first = video
        .latest()
        .expect("the first frame is published at start");
    assert_eq!((first.width, first.height), (clip.width(), clip.height()));

    // Count distinct frames published over more than one pass of the clip.
    let mut frames = video.frames();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let clip_seconds = clip.frames.len() as f64 / clip.fps;
    let published = runtime.block_on(async {
        let mut count = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(clip_seconds * 1.5);
        while tokio::time::timeout_at(deadline, frames.changed())
            .await
            .is_ok()
        {
            frames.borrow_and_update();
            count += 1;
        }
        count
    });
    assert!(
        published > clip.frames.len(),
        "{published} frames published in 1.5 passes of a {}-frame clip",
        clip.frames.len()
    );
}

#[test]
fn dropping_file_source_ends_the_feed() {
    let video = start_file(common::media("video/CiscoVT2people_320x192_12fps.y4m")).unwrap();
    let mut frames = video.frames();
    drop(video);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ended = runtime.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), frames.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_closed)) => break true,
                Err(_timeout) => break false,
            }
        }
    });
    assert!(ended, "the feed is still open after the source was dropped");
}

#[test]
fn undecodable_file_is_invalid_file_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["garbage.y4m", "garbage.264"] {
        let path = dir.path().join(name);
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&path, garbage).unwrap();
        match start_file(path.clone()) {
            Err(MediaError::InvalidFile { path: reported, .. }) => assert_eq!(reported, path),
            Err(other) => panic!("{name}: expected InvalidFile, got {other:?}"),
            Ok(_) => panic!("{name}: garbage started as a camera"),
        }
    }
}

#[test]
fn garbage_after_start_code_is_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage_nal.264");
    let mut stream = Vec::new();
    for unit in 0..8u32 {
        stream.extend_from_slice(&[0, 0, 0, 1]);
        stream.extend((0..512u32).map(|i| ((i + unit) * 7919 % 251) as u8 | 0x01));
    }
    std::fs::write(&path, stream).unwrap();
    match start_file(path.clone()) {
        Err(
            MediaError::InvalidFile { path: reported, .. }
            | MediaError::Truncated { path: reported, .. }
            | MediaError::UnsupportedFormat { path: reported, .. }
            | MediaError::BFrames { path: reported, .. },
        ) => assert_eq!(reported, path),
        Err(other) => panic!("expected an error naming the file, got {other:?}"),
        Ok(_) => panic!("garbage NAL units started as a camera"),
    }
}

#[test]
fn missing_file_is_open_error() {
    let path = PathBuf::from("/nonexistent/hearth/clip.y4m");
    match start_file(path.clone()) {
        Err(MediaError::Open { path: reported, .. }) => assert_eq!(reported, path),
        Err(other) => panic!("expected Open, got {other:?}"),
        Ok(_) => panic!("a missing file started as a camera"),
    }
}

#[test]
fn unknown_extension_is_unsupported_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, b"not a clip").unwrap();
    let result = start_file(path);
    assert!(
        matches!(result, Err(MediaError::UnsupportedFormat { .. })),
        "{:?}",
        result.err()
    );
}

#[test]
fn list_cameras_returns_without_panic() {
    let cameras = list_cameras().expect("listing cameras");
    for camera in &cameras {
        assert!(!camera.id.is_empty(), "{camera:?}");
    }
}

#[test]
fn missing_camera_is_camera_missing_error() {
    for id in ["hearth-no-such-camera", "63"] {
        match LocalVideo::start(&VideoSource::Camera { id: id.into() }) {
            Err(MediaError::CameraMissing { id: reported }) => assert_eq!(reported, id),
            Err(other) => panic!("camera {id}: expected CameraMissing, got {other:?}"),
            Ok(_) => panic!("camera {id} opened on a machine without it"),
        }
    }
}
