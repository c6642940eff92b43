//! X11 capture over one long-lived connection per capture (`x11rb`'s pure
//! Rust connection). Pictures move through MIT-SHM when the server offers it
//! and accepts our segment, which fails for a remote display, and through
//! plain `GetImage` otherwise.
//!
//! A window is captured as the region of the root window it covers, so
//! whatever lies on top of it is captured too, and a window that moves or
//! resizes is followed from one picture to the next. A screen is a RandR
//! monitor, or the whole root window where RandR lists none.

use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, ImageFormat, ImageOrder, MapState, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use super::convert::{bgrx_to_i420, downscale_rgb};
use super::{
    Grabber, ScreenError, ScreenSource, SourceId, SourceKind, THUMBNAIL_MAX_SIDE, Thumbnail,
    X11Transfer,
};
use crate::frame::VideoFrame;

/// A rectangle of the root window, clipped to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    x: i16,
    y: i16,
    width: u16,
    height: u16,
}

/// An open display with what capture needs to know about it.
struct Display {
    conn: RustConnection,
    root: Window,
    root_width: u16,
    root_height: u16,
    /// Whether pixels are stored R, G, B, X in memory instead of B, G, R, X.
    rgb_order: bool,
}

impl Display {
    fn open() -> Result<Self, ScreenError> {
        let display = std::env::var("DISPLAY").unwrap_or_default();
        let (conn, screen_number) = x11rb::connect(None).map_err(|error| ScreenError::Connect {
            display: display.clone(),
            reason: error.to_string(),
        })?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_number];
        let unsupported = |detail: String| ScreenError::Connect {
            display: display.clone(),
            reason: detail,
        };
        let bits_per_pixel = setup
            .pixmap_formats
            .iter()
            .find(|format| format.depth == screen.root_depth)
            .map(|format| format.bits_per_pixel);
        if bits_per_pixel != Some(32) || !matches!(screen.root_depth, 24 | 32) {
            return Err(unsupported(format!(
                "the root window has depth {} with {:?} bits per pixel, and only depth 24 or 32 \
                 at 32 bits per pixel is supported; run the X server at depth 24",
                screen.root_depth, bits_per_pixel
            )));
        }
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|depth| &depth.visuals)
            .find(|visual| visual.visual_id == screen.root_visual);
        let red_mask = visual.map_or(0xff_0000, |visual| visual.red_mask);
        let little_endian = setup.image_byte_order == ImageOrder::LSB_FIRST;
        let rgb_order = match (red_mask, little_endian) {
            (0xff_0000, true) | (0xff, false) => false,
            (0xff, true) | (0xff_0000, false) => true,
            _ => {
                return Err(unsupported(format!(
                    "the root visual has red mask {red_mask:#x}, which is not 8-bit RGB"
                )));
            }
        };
        Ok(Self {
            root: screen.root,
            root_width: screen.width_in_pixels,
            root_height: screen.height_in_pixels,
            rgb_order,
            conn,
        })
    }

    /// Returns the monitors as (name, region), or the whole root window
    /// when RandR is missing or lists none.
    fn screens(&self) -> Vec<(String, Region)> {
        let monitors = self
            .conn
            .randr_get_monitors(self.root, true)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .map(|reply| reply.monitors)
            .unwrap_or_default();
        let mut screens: Vec<(String, Region)> = monitors
            .iter()
            .filter_map(|monitor| {
                let region = self.clip(monitor.x, monitor.y, monitor.width, monitor.height)?;
                Some((self.atom_name(monitor.name), region))
            })
            .collect();
        if screens.is_empty() {
            screens.push((
                "Screen".to_owned(),
                Region {
                    x: 0,
                    y: 0,
                    width: self.root_width,
                    height: self.root_height,
                },
            ));
        }
        screens
    }

    /// Returns the top-level windows: the window manager's client list
    /// (`_NET_CLIENT_LIST`), or, without a window manager, the mapped
    /// children of the root window that have a title.
    /// NOTE: the tests run Xvfb without a window manager, so only the
    /// second path is tested.
    fn windows(&self) -> Vec<Window> {
        if let Some(list) = self.atom(b"_NET_CLIENT_LIST").and_then(|atom| {
            let reply = self
                .conn
                .get_property(false, self.root, atom, AtomEnum::WINDOW, 0, 4096)
                .ok()?
                .reply()
                .ok()?;
            Some(reply.value32()?.collect::<Vec<Window>>())
        }) && !list.is_empty()
        {
            return list;
        }
        let Some(tree) = self
            .conn
            .query_tree(self.root)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
        else {
            return Vec::new();
        };
        tree.children
            .into_iter()
            .filter(|window| {
                self.conn
                    .get_window_attributes(*window)
                    .ok()
                    .and_then(|cookie| cookie.reply().ok())
                    .is_some_and(|attributes| {
                        attributes.map_state == MapState::VIEWABLE
                            && attributes.class == WindowClass::INPUT_OUTPUT
                            && !attributes.override_redirect
                    })
            })
            .filter(|window| !self.window_title(*window).is_empty())
            .collect()
    }

    /// Returns the window's title: `_NET_WM_NAME` in UTF-8, else `WM_NAME`.
    fn window_title(&self, window: Window) -> String {
        let read = |property: u32, kind: u32| -> Option<String> {
            let reply = self
                .conn
                .get_property(false, window, property, kind, 0, 1024)
                .ok()?
                .reply()
                .ok()?;
            (!reply.value.is_empty()).then(|| String::from_utf8_lossy(&reply.value).into_owned())
        };
        let utf8 = self.atom(b"UTF8_STRING");
        self.atom(b"_NET_WM_NAME")
            .zip(utf8)
            .and_then(|(name, utf8)| read(name, utf8))
            .or_else(|| read(AtomEnum::WM_NAME.into(), AtomEnum::ANY.into()))
            .unwrap_or_default()
    }

    /// Returns the part of the root window that `window` covers, or `None`
    /// when it is off screen. Fails when the window does not exist.
    fn window_region(&self, window: Window) -> Result<Option<Region>, String> {
        let geometry = self
            .conn
            .get_geometry(window)
            .map_err(|error| error.to_string())?
            .reply()
            .map_err(|error| error.to_string())?;
        let origin = self
            .conn
            .translate_coordinates(window, self.root, 0, 0)
            .map_err(|error| error.to_string())?
            .reply()
            .map_err(|error| error.to_string())?;
        Ok(self.clip(origin.dst_x, origin.dst_y, geometry.width, geometry.height))
    }

    fn is_viewable(&self, window: Window) -> Option<bool> {
        let attributes = self.conn.get_window_attributes(window).ok()?.reply().ok()?;
        Some(attributes.map_state == MapState::VIEWABLE)
    }

    /// Clips a rectangle to the root window.
    fn clip(&self, x: i16, y: i16, width: u16, height: u16) -> Option<Region> {
        let left = i32::from(x).max(0);
        let top = i32::from(y).max(0);
        let right = (i32::from(x) + i32::from(width)).min(i32::from(self.root_width));
        let bottom = (i32::from(y) + i32::from(height)).min(i32::from(self.root_height));
        (right > left && bottom > top).then(|| Region {
            x: left as i16,
            y: top as i16,
            width: (right - left) as u16,
            height: (bottom - top) as u16,
        })
    }

    /// Reads a region with plain `GetImage`; rows are `width * 4` bytes.
    fn get_image(&self, region: Region) -> Result<Vec<u8>, String> {
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                region.x,
                region.y,
                region.width,
                region.height,
                !0,
            )
            .map_err(|error| error.to_string())?
            .reply()
            .map_err(|error| error.to_string())?;
        Ok(reply.data)
    }

    fn thumbnail(&self, region: Region) -> Option<Thumbnail> {
        let pixels = self.get_image(region).ok()?;
        let width = usize::from(region.width);
        let (width, height, rgb) = downscale_rgb(
            width,
            usize::from(region.height),
            width * 4,
            &pixels,
            self.rgb_order,
            THUMBNAIL_MAX_SIDE,
        )?;
        Some(Thumbnail { width, height, rgb })
    }

    fn atom(&self, name: &[u8]) -> Option<u32> {
        let atom = self.conn.intern_atom(true, name).ok()?.reply().ok()?.atom;
        (atom != 0).then_some(atom)
    }

    fn atom_name(&self, atom: u32) -> String {
        self.conn
            .get_atom_name(atom)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .map(|reply| String::from_utf8_lossy(&reply.name).into_owned())
            .unwrap_or_default()
    }
}

pub(super) fn list_sources() -> Result<Vec<ScreenSource>, ScreenError> {
    let display = Display::open()?;
    let mut sources = Vec::new();
    for (index, (title, region)) in display.screens().into_iter().enumerate() {
        sources.push(ScreenSource {
            id: SourceId {
                kind: SourceKind::Screen,
                index: index as u64,
            },
            kind: SourceKind::Screen,
            title,
            width: u32::from(region.width),
            height: u32::from(region.height),
            thumbnail: display.thumbnail(region),
        });
    }
    for window in display.windows() {
        let Ok(Some(region)) = display.window_region(window) else {
            continue;
        };
        let viewable = display.is_viewable(window).unwrap_or(false);
        sources.push(ScreenSource {
            id: SourceId {
                kind: SourceKind::Window,
                index: u64::from(window),
            },
            kind: SourceKind::Window,
            title: display.window_title(window),
            width: u32::from(region.width),
            height: u32::from(region.height),
            thumbnail: viewable.then(|| display.thumbnail(region)).flatten(),
        });
    }
    Ok(sources)
}

/// What a capture follows.
enum Target {
    Screen(Region),
    Window(Window),
}

pub(super) struct X11Grabber {
    display: Display,
    source: SourceId,
    target: Target,
    shm: Option<shm_segment::Segment>,
}

impl X11Grabber {
    pub(super) fn open(source: SourceId, transfer: X11Transfer) -> Result<Self, ScreenError> {
        let display = Display::open()?;
        let not_found = || ScreenError::SourceNotFound {
            id: source.to_string(),
        };
        let target = match source.kind {
            SourceKind::Screen => {
                let screens = display.screens();
                let index = usize::try_from(source.index).map_err(|_| not_found())?;
                let (_, region) = screens.get(index).ok_or_else(not_found)?;
                Target::Screen(*region)
            }
            SourceKind::Window => {
                let window = Window::try_from(source.index).map_err(|_| not_found())?;
                match display.is_viewable(window) {
                    None => return Err(not_found()),
                    Some(false) => {
                        return Err(ScreenError::Capture {
                            id: source.to_string(),
                            reason: "the window is not mapped (minimised or hidden); show it and \
                                     try again"
                                .into(),
                        });
                    }
                    Some(true) => Target::Window(window),
                }
            }
        };
        let shm = match transfer {
            X11Transfer::GetImage => None,
            X11Transfer::Auto => shm_segment::Segment::attach(&display),
        };
        tracing::debug!(%source, shm = shm.is_some(), "X11 capture opened");
        Ok(Self {
            display,
            source,
            target,
            shm,
        })
    }

    fn capture_error(&self, reason: impl Into<String>) -> ScreenError {
        ScreenError::Capture {
            id: self.source.to_string(),
            reason: reason.into(),
        }
    }

    fn region(&self) -> Result<Region, ScreenError> {
        match self.target {
            Target::Screen(region) => Ok(region),
            Target::Window(window) => {
                match self.display.window_region(window) {
                    Ok(Some(region)) => Ok(region),
                    Ok(None) => Err(self.capture_error("the window is off screen")),
                    Err(reason) => Err(self
                        .capture_error(format!("the window is gone, probably closed ({reason})"))),
                }
            }
        }
    }
}

impl Grabber for X11Grabber {
    fn grab(&mut self) -> Result<VideoFrame, ScreenError> {
        let region = self.region()?;
        let width = usize::from(region.width);
        let height = usize::from(region.height);
        let rgb_order = self.display.rgb_order;
        // A root window that grew after the segment was made (a RandR
        // change) no longer fits it, so such pictures go through GetImage.
        let shm = self
            .shm
            .as_ref()
            .filter(|segment| segment.size >= width * height * 4);
        let frame = match shm {
            Some(segment) => {
                let pixels = segment
                    .get_image(&self.display, region)
                    .map_err(|reason| self.capture_error(reason))?;
                bgrx_to_i420(width, height, width * 4, pixels, rgb_order)
            }
            None => {
                let pixels = self
                    .display
                    .get_image(region)
                    .map_err(|reason| self.capture_error(reason))?;
                bgrx_to_i420(width, height, width * 4, &pixels, rgb_order)
            }
        };
        frame.ok_or_else(|| {
            self.capture_error(format!(
                "the {width}x{height} picture is too small to encode; it needs at least 2x2 pixels"
            ))
        })
    }

    fn shared_memory(&self) -> bool {
        self.shm.is_some()
    }
}

/// A System V shared memory segment attached to the X server, as large as
/// the root window, so that any region fits.
#[allow(unsafe_code)]
mod shm_segment {
    use super::*;

    pub(super) struct Segment {
        id: shm::Seg,
        address: *mut u8,
        /// The mapped size in bytes.
        pub(super) size: usize,
    }

    // SAFETY: the mapping belongs to this value alone and is only read
    // through `&self` after the X server finished writing it, so moving the
    // value to the capture thread is sound.
    unsafe impl Send for Segment {}

    impl Segment {
        /// Creates and attaches a segment, or returns `None` (logged) when
        /// the server has no MIT-SHM or cannot attach it, for example
        /// because it runs on another machine.
        pub(super) fn attach(display: &Display) -> Option<Self> {
            let conn = &display.conn;
            let version = conn.shm_query_version().ok()?.reply();
            if version.is_err() {
                tracing::debug!("the X server has no MIT-SHM; using GetImage");
                return None;
            }
            let size = usize::from(display.root_width) * usize::from(display.root_height) * 4;
            // SAFETY: plain System V calls; the returned id and address are
            // checked before use.
            let shm_id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600) };
            if shm_id < 0 {
                tracing::debug!(size, error = %std::io::Error::last_os_error(), "shmget failed; using GetImage");
                return None;
            }
            // SAFETY: `shm_id` is a segment just created; a null address
            // lets the kernel choose where to map it.
            let address = unsafe { libc::shmat(shm_id, std::ptr::null(), 0) };
            let segment = (address as isize != -1).then(|| Self {
                id: 0,
                address: address.cast(),
                size,
            });
            let attached = segment.and_then(|mut segment| {
                segment.id = conn.generate_id().ok()?;
                match conn.shm_attach(segment.id, shm_id as u32, false).ok()?.check() {
                    Ok(()) => Some(segment),
                    Err(error) => {
                        tracing::debug!(%error, "the X server cannot attach the segment; using GetImage");
                        None
                    }
                }
            });
            // SAFETY: marks the segment for removal once every process,
            // this one and the X server, has detached it, so it cannot leak
            // if this process dies.
            unsafe { libc::shmctl(shm_id, libc::IPC_RMID, std::ptr::null_mut()) };
            attached
        }

        /// Reads a region into the segment and returns its bytes, `width * 4`
        /// per row.
        pub(super) fn get_image(&self, display: &Display, region: Region) -> Result<&[u8], String> {
            let reply = display
                .conn
                .shm_get_image(
                    display.root,
                    region.x,
                    region.y,
                    region.width,
                    region.height,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    self.id,
                    0,
                )
                .map_err(|error| error.to_string())?
                .reply()
                .map_err(|error| error.to_string())?;
            let length = (reply.size as usize).min(self.size);
            // SAFETY: `address` maps `size` bytes for the life of `self`, and
            // the server wrote them before sending the reply just received.
            Ok(unsafe { std::slice::from_raw_parts(self.address, length) })
        }
    }

    impl Drop for Segment {
        /// Unmaps the segment. The X server detaches it when the capture's
        /// connection closes, which happens first because the grabber
        /// declares its display before its segment.
        fn drop(&mut self) {
            // SAFETY: `address` came from `shmat` and is detached once.
            unsafe { libc::shmdt(self.address.cast()) };
        }
    }
}
