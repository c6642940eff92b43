//! Cameras through nokhwa: listing, opening and a capture thread that
//! publishes I420 frames. Only this OS's nokhwa backend is built: V4L2 on
//! Linux, Media Foundation on Windows, AVFoundation on macOS. Without the
//! `camera` feature, or on another OS, there are no cameras.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::Result;
use crate::frame::VideoFrame;

/// A capture device as the UI lists it. `id` is what
/// [`VideoSource::Camera`](super::VideoSource::Camera) takes: the device index
/// as a decimal string on Linux (`/dev/video0` is `"0"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: String,
    pub name: String,
}

/// Lists the cameras the OS reports. Nodes that cannot capture video (on
/// Linux, metadata nodes beside each camera) may be listed too, and opening
/// one fails with [`MediaError::CameraFailed`](crate::MediaError::CameraFailed).
pub fn list_cameras() -> Result<Vec<DeviceInfo>> {
    backend::list()
}

/// Opens camera `id` and starts a thread that publishes its frames until
/// `stop` is set. Returns once the stream is open, so that a missing or busy
/// camera is an error here and not a silent thread exit.
pub(super) fn start_capture(
    id: &str,
    stop: Arc<AtomicBool>,
    frames: watch::Sender<Option<Arc<VideoFrame>>>,
) -> Result<JoinHandle<()>> {
    backend::start_capture(id, stop, frames)
}

#[cfg(all(
    feature = "camera",
    any(target_os = "linux", target_os = "windows", target_os = "macos")
))]
mod backend {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    };
    use nokhwa::{Buffer, Camera, NokhwaError};
    use tokio::sync::watch;

    use super::DeviceInfo;
    use crate::error::{MediaError, Result};
    use crate::frame::VideoFrame;
    use crate::live::convert::{rgb_to_i420, yuyv_to_i420};

    /// Failed reads in a row after which the capture thread gives up, about
    /// 5 s with the pause below.
    const MAX_READ_FAILURES: u32 = 50;
    const READ_FAILURE_PAUSE: Duration = Duration::from_millis(100);

    pub(super) fn list() -> Result<Vec<DeviceInfo>> {
        let cameras = nokhwa::query(ApiBackend::Auto).map_err(|err| MediaError::CameraList {
            reason: err.to_string(),
        })?;
        Ok(cameras
            .into_iter()
            .map(|camera| DeviceInfo {
                id: camera.index().as_string(),
                name: camera.human_name(),
            })
            .collect())
    }

    pub(super) fn start_capture(
        id: &str,
        stop: Arc<AtomicBool>,
        frames: watch::Sender<Option<Arc<VideoFrame>>>,
    ) -> Result<JoinHandle<()>> {
        // A nokhwa `Camera` is not `Send` on every backend, so the thread
        // opens it and reports the outcome back.
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let thread_id = id.to_owned();
        let thread = std::thread::Builder::new()
            .name("hearth-camera".into())
            .spawn(move || {
                let camera = match open(&thread_id) {
                    Ok(camera) => {
                        let _ = opened_tx.send(Ok(()));
                        camera
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                capture(camera, &thread_id, &stop, &frames);
            })
            .map_err(|source| MediaError::ThreadSpawn {
                name: "camera",
                source,
            })?;

        match opened_rx.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(MediaError::CameraFailed {
                id: id.to_owned(),
                reason: "the capture thread ended while opening the camera".into(),
            }),
        }
    }

    /// Opens the camera at 1280x720 and 30 fps or the nearest mode, in MJPEG,
    /// then YUYV, then whatever mode has the highest frame rate.
    fn open(id: &str) -> Result<Camera> {
        if let Ok(cameras) = list()
            && !cameras.iter().any(|camera| camera.id == id)
        {
            return Err(MediaError::CameraMissing { id: id.to_owned() });
        }
        let index = match id.parse::<u32>() {
            Ok(number) => CameraIndex::Index(number),
            Err(_) => CameraIndex::String(id.to_owned()),
        };
        let requests = [
            RequestedFormatType::Closest(CameraFormat::new_from(1280, 720, FrameFormat::MJPEG, 30)),
            RequestedFormatType::Closest(CameraFormat::new_from(1280, 720, FrameFormat::YUYV, 30)),
            RequestedFormatType::AbsoluteHighestFrameRate,
        ];

        let mut last_error = None;
        for request in requests {
            let opened = Camera::new(index.clone(), RequestedFormat::new::<RgbFormat>(request))
                .and_then(|mut camera| camera.open_stream().map(|()| camera));
            match opened {
                Ok(camera) => {
                    tracing::debug!(id, format = %camera.camera_format(), "camera opened");
                    return Ok(camera);
                }
                Err(err) => match classify(id, &err) {
                    failed @ MediaError::CameraFailed { .. } => last_error = Some(failed),
                    other => return Err(other),
                },
            }
        }
        Err(last_error.expect("the request list is not empty"))
    }

    /// Maps a nokhwa error to a typed one. nokhwa reports OS errors only as
    /// text, so the errno is recognised in the message.
    fn classify(id: &str, err: &NokhwaError) -> MediaError {
        let message = err.to_string();
        let lower = message.to_ascii_lowercase();
        if lower.contains("os error 16") || lower.contains("busy") {
            MediaError::CameraBusy { id: id.to_owned() }
        } else if lower.contains("os error 2)")
            || lower.contains("os error 19")
            || lower.contains("no such file")
            || lower.contains("no such device")
        {
            MediaError::CameraMissing { id: id.to_owned() }
        } else {
            MediaError::CameraFailed {
                id: id.to_owned(),
                reason: message,
            }
        }
    }

    fn capture(
        mut camera: Camera,
        id: &str,
        stop: &AtomicBool,
        frames: &watch::Sender<Option<Arc<VideoFrame>>>,
    ) {
        let mut failures = 0;
        while !stop.load(Ordering::Relaxed) {
            let converted = camera
                .frame()
                .map_err(|err| err.to_string())
                .and_then(|buffer| to_i420(&buffer));
            match converted {
                Ok(frame) => {
                    failures = 0;
                    frames.send_replace(Some(Arc::new(frame)));
                }
                Err(reason) => {
                    failures += 1;
                    tracing::warn!(id, failures, %reason, "camera frame failed");
                    if failures >= MAX_READ_FAILURES {
                        tracing::warn!(id, "camera capture stopped after repeated failures");
                        break;
                    }
                    std::thread::sleep(READ_FAILURE_PAUSE);
                }
            }
        }
        if let Err(err) = camera.stop_stream() {
            tracing::debug!(id, error = %err, "stopping the camera stream failed");
        }
    }

    fn to_i420(buffer: &Buffer) -> std::result::Result<VideoFrame, String> {
        let resolution = buffer.resolution();
        let (width, height) = (resolution.width() as usize, resolution.height() as usize);
        if buffer.source_frame_format() == FrameFormat::YUYV {
            return yuyv_to_i420(width, height, buffer.buffer())
                .ok_or_else(|| format!("a YUYV frame of {width}x{height} is too short"));
        }
        let image = buffer
            .decode_image::<RgbFormat>()
            .map_err(|err| err.to_string())?;
        let (width, height) = (image.width() as usize, image.height() as usize);
        rgb_to_i420(width, height, image.as_raw())
            .ok_or_else(|| format!("a decoded RGB frame of {width}x{height} is too short"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn classify_maps_errno_text() {
            let open_error = |reason: &str| NokhwaError::OpenDeviceError("0".into(), reason.into());
            let busy = classify(
                "0",
                &open_error("V4L2 Error: Device or resource busy (os error 16)"),
            );
            assert!(
                matches!(busy, MediaError::CameraBusy { ref id } if id == "0"),
                "{busy:?}"
            );
            let missing = classify(
                "0",
                &open_error("V4L2 Error: No such file or directory (os error 2)"),
            );
            assert!(
                matches!(missing, MediaError::CameraMissing { .. }),
                "{missing:?}"
            );
            let stream =
                NokhwaError::OpenStreamError("Device or resource busy (os error 16)".into());
            assert!(matches!(
                classify("0", &stream),
                MediaError::CameraBusy { .. }
            ));
        }

        #[test]
        fn classify_keeps_other_reasons() {
            let error =
                NokhwaError::OpenDeviceError("0".into(), "Permission denied (os error 13)".into());
            match classify("0", &error) {
                MediaError::CameraFailed { id, reason } => {
                    assert_eq!(id, "0");
                    assert!(reason.contains("os error 13"), "{reason}");
                }
                other => panic!("expected CameraFailed, got {other:?}"),
            }
            // errno 20 must not be read as errno 2.
            let error =
                NokhwaError::OpenDeviceError("0".into(), "Not a directory (os error 20)".into());
            assert!(matches!(
                classify("0", &error),
                MediaError::CameraFailed { .. }
            ));
        }
    }
}

#[cfg(not(all(
    feature = "camera",
    any(target_os = "linux", target_os = "windows", target_os = "macos")
)))]
mod backend {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::thread::JoinHandle;

    use tokio::sync::watch;

    use super::DeviceInfo;
    use crate::error::{MediaError, Result};
    use crate::frame::VideoFrame;

    pub(super) fn list() -> Result<Vec<DeviceInfo>> {
        Ok(Vec::new())
    }

    pub(super) fn start_capture(
        id: &str,
        _stop: Arc<AtomicBool>,
        _frames: watch::Sender<Option<Arc<VideoFrame>>>,
    ) -> Result<JoinHandle<()>> {
        Err(MediaError::CameraMissing { id: id.to_owned() })
    }
}
