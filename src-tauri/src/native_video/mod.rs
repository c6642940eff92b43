//! The `native` renderer: the app draws video in widgets of its own, placed
//! over the webview at the rectangles the page reports, so no pixels cross
//! into WebKit. Only Linux has it, with GTK widgets in [`gtk_overlay`].
//!
//! The page keeps its layout. Each video element reports its rectangle, the
//! part of it that is not clipped by the page's scrolling, and the page
//! elements over it that must stay visible (names, marks, dialogs). The
//! widget leaves those holes unpainted, so the webview shows through them.

#[cfg(target_os = "linux")]
mod gtk_overlay;

use serde::Deserialize;

#[cfg(target_os = "linux")]
pub use gtk_overlay::{Picture, install, publish};

use crate::error::{ErrorCode, UiError, UiResult};
use crate::video::StreamKey;

/// Largest coordinate accepted from the page, in CSS pixels.
const MAX_COORDINATE: i32 = 16_384;
/// Most holes accepted for one view.
const MAX_HOLES: usize = 64;
/// Most views accepted at once.
const MAX_VIEWS: usize = 64;

/// A rectangle in CSS pixels relative to the webview's top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, specta::Type)]
pub struct ViewRect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl ViewRect {
    fn is_valid(&self) -> bool {
        let coordinate = -MAX_COORDINATE..=MAX_COORDINATE;
        let size = 0..=MAX_COORDINATE;
        coordinate.contains(&self.x)
            && coordinate.contains(&self.y)
            && size.contains(&self.width)
            && size.contains(&self.height)
    }

    /// Returns whether the rectangle covers no pixel.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.width <= 0 || self.height <= 0
    }
}

/// The position of one video element on the page, as the page measured it.
#[derive(Debug, Clone, PartialEq, Deserialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct NativeVideoPlacement {
    /// The page's id of the element, stable while the element exists.
    pub view: u32,
    /// The stream shown: `remote`, `selfView`, `participant:ID` or `screen:ID`.
    pub stream: String,
    /// Stacking order among the views: higher layers are drawn on top.
    pub layer: i32,
    /// The element's whole rectangle; the picture is fitted into it.
    pub rect: ViewRect,
    /// The visible part of `rect`, after the page's scrolling clips it.
    pub clip: ViewRect,
    /// Page elements over the video that must stay visible.
    pub holes: Vec<ViewRect>,
}

/// A placement checked and with its stream parsed.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct Placement {
    pub view: u32,
    pub stream: StreamKey,
    pub layer: i32,
    pub rect: ViewRect,
    pub clip: ViewRect,
    pub holes: Vec<ViewRect>,
}

/// Checks the placements the page sent.
pub fn validate(placements: Vec<NativeVideoPlacement>) -> UiResult<Vec<Placement>> {
    if placements.len() > MAX_VIEWS {
        return Err(UiError::new(
            ErrorCode::InvalidInput,
            format!(
                "{} native video views: at most {MAX_VIEWS} are allowed",
                placements.len()
            ),
        ));
    }
    placements
        .into_iter()
        .map(|placement| {
            let stream = StreamKey::parse(&placement.stream).ok_or_else(|| {
                UiError::new(
                    ErrorCode::InvalidInput,
                    format!("unknown video stream {:?}", placement.stream),
                )
            })?;
            let rects = [placement.rect, placement.clip];
            if placement.holes.len() > MAX_HOLES
                || !rects.iter().chain(&placement.holes).all(ViewRect::is_valid)
            {
                return Err(UiError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "native video view {}: rectangles out of range or more than {MAX_HOLES} holes",
                        placement.view
                    ),
                ));
            }
            Ok(Placement {
                view: placement.view,
                stream,
                layer: placement.layer,
                rect: placement.rect,
                clip: placement.clip,
                holes: placement.holes,
            })
        })
        .collect()
}

/// Places the native video views where the page shows its video elements,
/// removing views that are no longer listed.
#[cfg(target_os = "linux")]
pub fn place(placements: Vec<NativeVideoPlacement>) -> UiResult<()> {
    gtk_overlay::place(validate(placements)?)
}

#[cfg(not(target_os = "linux"))]
pub fn place(placements: Vec<NativeVideoPlacement>) -> UiResult<()> {
    validate(placements)?;
    Err(UiError::new(
        ErrorCode::InvalidInput,
        "the native video renderer is available only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, width: i32, height: i32) -> ViewRect {
        ViewRect {
            x,
            y,
            width,
            height,
        }
    }

    fn placement(stream: &str, holes: Vec<ViewRect>) -> NativeVideoPlacement {
        NativeVideoPlacement {
            view: 1,
            stream: stream.into(),
            layer: 0,
            rect: rect(-20, 10, 640, 360),
            clip: rect(0, 10, 620, 360),
            holes,
        }
    }

    #[test]
    fn valid_placement_keeps_its_geometry() {
        let placements = validate(vec![placement("participant:4", vec![rect(8, 300, 80, 20)])])
            .expect("the placement is valid");
        assert_eq!(placements[0].stream, StreamKey::Participant("4".into()));
        assert_eq!(placements[0].rect, rect(-20, 10, 640, 360));
        assert_eq!(placements[0].holes, vec![rect(8, 300, 80, 20)]);
    }

    #[test]
    fn unknown_stream_is_rejected_with_its_name() {
        let err = validate(vec![placement("camera:4", Vec::new())]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);
        assert!(err.detail.unwrap().contains("\"camera:4\""));
    }

    #[test]
    fn huge_or_negative_sizes_are_rejected() {
        for bad in [
            rect(0, 0, -1, 10),
            rect(0, 0, 10, 100_000),
            rect(-100_000, 0, 1, 1),
        ] {
            let err = validate(vec![placement("remote", vec![bad])]).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn too_many_holes_are_rejected() {
        let holes = vec![rect(0, 0, 1, 1); MAX_HOLES + 1];
        assert!(validate(vec![placement("remote", holes)]).is_err());
    }
}
