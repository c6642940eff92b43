//! Native video views as GTK 3 widgets: the webview goes into a
//! `gtk::Overlay`, and each view is a `gtk::DrawingArea` overlay child that
//! paints the latest picture of its stream with cairo.
//!
//! GTK objects live on the main thread only. Delivery threads hand pictures
//! over with [`publish`], which keeps the newest picture per stream until the
//! main loop takes it, so a busy main thread skips frames instead of queueing
//! them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gtk::prelude::*;
use gtk::{cairo, glib};
use tauri::ipc::Channel;

use super::{Placement, ViewRect};
use crate::error::{UiError, UiResult};
use crate::video::{FrameBytes, StreamKey, native_notice};

/// Shortest time between two notices to the page of the frames drawn.
const NOTICE_INTERVAL: Duration = Duration::from_millis(250);

/// One converted frame of a stream.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    /// Pixels in cairo's `RGB24` layout: B, G, R and an unused byte.
    pub bgrx: Vec<u8>,
    /// The channel that receives the counts of frames drawn.
    pub notices: Channel<FrameBytes>,
}

/// Pictures published but not yet taken by the main loop; `None` clears a
/// stream. The map is empty when no hand-over is scheduled.
static PENDING: Mutex<Option<HashMap<StreamKey, Option<Picture>>>> = Mutex::new(None);

thread_local! {
    /// The overlay and its views, set on the main thread by [`install`].
    static OVERLAY: RefCell<Option<Overlay>> = const { RefCell::new(None) };
}

struct Overlay {
    overlay: gtk::Overlay,
    views: HashMap<u32, View>,
    pictures: HashMap<StreamKey, StreamPicture>,
}

struct View {
    area: gtk::DrawingArea,
    placement: Placement,
}

/// The latest picture of a stream, ready for cairo.
struct StreamPicture {
    surface: cairo::ImageSurface,
    width: usize,
    height: usize,
    notices: Channel<FrameBytes>,
    /// Whether a view painted this picture yet.
    painted: bool,
    /// Pictures of the stream painted so far.
    drawn: u32,
    last_notice: Option<Instant>,
}

/// Moves the main window's webview into a `gtk::Overlay`, over which the
/// video views go. Call once, on the main thread, after the window exists.
pub fn install(window: &tauri::WebviewWindow) -> Result<(), String> {
    let vbox = window.default_vbox().map_err(|err| err.to_string())?;
    let webview = vbox
        .children()
        .into_iter()
        .find(|child| child.type_().name() == "WebKitWebView")
        .ok_or("the window has no WebKitWebView in its box")?;
    let position = vbox.child_position(&webview);

    let overlay = gtk::Overlay::new();
    // The box holds the only other reference, so keep the webview alive
    // while it moves.
    let webview_ref = webview.clone();
    vbox.remove(&webview_ref);
    overlay.add(&webview_ref);
    vbox.pack_start(&overlay, true, true, 0);
    vbox.reorder_child(&overlay, position);
    overlay.show_all();
    webview_ref.grab_focus();

    OVERLAY.with(|cell| {
        *cell.borrow_mut() = Some(Overlay {
            overlay,
            views: HashMap::new(),
            pictures: HashMap::new(),
        });
    });
    tracing::debug!("native video overlay installed");
    Ok(())
}

/// Shows `picture` in every view of `stream` from the next main loop
/// iteration on; `None` clears them. Callable from any thread.
pub fn publish(stream: StreamKey, picture: Option<Picture>) {
    let mut pending = PENDING.lock().unwrap_or_else(|err| err.into_inner());
    let map = pending.get_or_insert_with(HashMap::new);
    let schedule = map.is_empty();
    map.insert(stream, picture);
    drop(pending);
    if schedule {
        glib::MainContext::default().invoke(take_pending);
    }
}

/// Moves the pending pictures into the overlay and redraws their views.
fn take_pending() {
    let pending = PENDING
        .lock()
        .unwrap_or_else(|err| err.into_inner())
        .take()
        .unwrap_or_default();
    OVERLAY.with(|cell| {
        let mut guard = cell.borrow_mut();
        let Some(overlay) = guard.as_mut() else {
            return;
        };
        for (stream, picture) in pending {
            let previous = overlay.pictures.remove(&stream);
            // Pictures of streams no view shows are dropped, so a late picture
            // of a stream that was just unwatched cannot show up later.
            let on_screen = overlay
                .views
                .values()
                .any(|view| view.placement.stream == stream);
            if let Some(picture) = picture.filter(|_| on_screen) {
                match surface(picture, previous) {
                    Ok(converted) => {
                        overlay.pictures.insert(stream.clone(), converted);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, ?stream, "creating a cairo surface failed")
                    }
                }
            }
            for view in overlay.views.values() {
                if view.placement.stream == stream {
                    view.area.queue_draw();
                }
            }
        }
    });
}

/// Wraps a picture in a cairo surface, carrying over the stream's counts.
fn surface(
    picture: Picture,
    previous: Option<StreamPicture>,
) -> Result<StreamPicture, cairo::Error> {
    let Picture {
        width,
        height,
        bgrx,
        notices,
    } = picture;
    let surface = cairo::ImageSurface::create_for_data(
        bgrx,
        cairo::Format::Rgb24,
        width as i32,
        height as i32,
        width as i32 * 4,
    )?;
    let (drawn, last_notice) =
        previous.map_or((0, None), |earlier| (earlier.drawn, earlier.last_notice));
    Ok(StreamPicture {
        surface,
        width,
        height,
        notices,
        painted: false,
        drawn,
        last_notice,
    })
}

/// Creates, moves and removes views to match `placements`.
pub fn place(placements: Vec<Placement>) -> UiResult<()> {
    OVERLAY.with(|cell| {
        let mut guard = cell.borrow_mut();
        let overlay = guard.as_mut().ok_or_else(|| {
            UiError::internal("the native video overlay is not installed in the window")
        })?;
        overlay.place(placements);
        Ok(())
    })
}

impl Overlay {
    fn place(&mut self, mut placements: Vec<Placement>) {
        let listed: Vec<u32> = placements.iter().map(|placement| placement.view).collect();
        let removed: Vec<u32> = self
            .views
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        for id in removed {
            if let Some(view) = self.views.remove(&id) {
                self.overlay.remove(&view.area);
            }
        }

        // Overlay children paint in list order, so the highest layer goes last.
        placements.sort_by_key(|placement| (placement.layer, placement.view));
        for (index, placement) in placements.into_iter().enumerate() {
            let id = placement.view;
            let view = self.views.entry(id).or_insert_with(|| {
                let area = new_area(id);
                self.overlay.add_overlay(&area);
                self.overlay.set_overlay_pass_through(&area, true);
                View {
                    area,
                    placement: placement.clone(),
                }
            });
            self.overlay.reorder_overlay(&view.area, index as i32);
            move_area(&view.area, &placement.clip);
            view.placement = placement;
            view.area.queue_draw();
        }
    }
}

fn new_area(id: u32) -> gtk::DrawingArea {
    let area = gtk::DrawingArea::new();
    area.set_halign(gtk::Align::Start);
    area.set_valign(gtk::Align::Start);
    area.connect_draw(move |_, context| {
        if let Err(err) = draw_view(id, context) {
            tracing::warn!(error = %err, view = id, "drawing a native video view failed");
        }
        glib::Propagation::Stop
    });
    area
}

fn move_area(area: &gtk::DrawingArea, clip: &ViewRect) {
    if clip.is_empty() {
        area.hide();
        return;
    }
    area.set_margin_start(clip.x.max(0));
    area.set_margin_top(clip.y.max(0));
    area.set_size_request(clip.width, clip.height);
    area.show();
}

/// Paints view `id`'s picture, fitted into its rectangle with the aspect
/// ratio kept, except where holes are. Where no picture is painted the
/// webview shows through.
fn draw_view(id: u32, context: &cairo::Context) -> Result<(), cairo::Error> {
    OVERLAY.with(|cell| {
        // A draw never starts inside `place` or `take_pending`, but a failed
        // borrow only costs one frame, so it is not worth a panic.
        let Ok(mut guard) = cell.try_borrow_mut() else {
            return Ok(());
        };
        let Some(overlay) = guard.as_mut() else {
            return Ok(());
        };
        let Some(view) = overlay.views.get(&id) else {
            return Ok(());
        };
        let Some(picture) = overlay.pictures.get_mut(&view.placement.stream) else {
            return Ok(());
        };
        paint(context, &view.placement, picture)?;
        count_painted(picture);
        Ok(())
    })
}

fn paint(
    context: &cairo::Context,
    placement: &Placement,
    picture: &StreamPicture,
) -> Result<(), cairo::Error> {
    let (rect, clip) = (placement.rect, placement.clip);
    // Widget coordinates start at the clip's corner.
    let (origin_x, origin_y) = (f64::from(clip.x), f64::from(clip.y));
    context.rectangle(0.0, 0.0, f64::from(clip.width), f64::from(clip.height));
    for hole in &placement.holes {
        context.rectangle(
            f64::from(hole.x) - origin_x,
            f64::from(hole.y) - origin_y,
            f64::from(hole.width),
            f64::from(hole.height),
        );
    }
    // Even-odd filling leaves the holes out of the clip.
    context.set_fill_rule(cairo::FillRule::EvenOdd);
    context.clip();

    let (width, height) = (picture.width as f64, picture.height as f64);
    let scale = (f64::from(rect.width) / width).min(f64::from(rect.height) / height);
    let left = f64::from(rect.x) - origin_x + (f64::from(rect.width) - width * scale) / 2.0;
    let top = f64::from(rect.y) - origin_y + (f64::from(rect.height) - height * scale) / 2.0;
    context.translate(left, top);
    context.scale(scale, scale);
    context.set_source_surface(&picture.surface, 0.0, 0.0)?;
    context.rectangle(0.0, 0.0, width, height);
    context.fill()
}

/// Counts a picture's first paint, and sends the count to the page at most
/// every [`NOTICE_INTERVAL`] in place of the pixels.
fn count_painted(picture: &mut StreamPicture) {
    if picture.painted {
        return;
    }
    picture.painted = true;
    picture.drawn = picture.drawn.wrapping_add(1);
    let due = picture
        .last_notice
        .is_none_or(|last| last.elapsed() >= NOTICE_INTERVAL);
    if due {
        picture.last_notice = Some(Instant::now());
        let notice = native_notice(picture.width, picture.height, picture.drawn);
        if let Err(err) = picture.notices.send(notice) {
            tracing::debug!(error = %err, "the page no longer takes video notices");
        }
    }
}
