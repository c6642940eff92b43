//! Desktop notifications and the tray icon.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager};
use tauri_plugin_notification::NotificationExt;

use crate::views::ChatMessage;

/// Whether the main window is visible and focused, so no notification is needed.
fn window_in_front(handle: &AppHandle) -> bool {
    handle.get_webview_window("main").is_some_and(|window| {
        window.is_visible().unwrap_or(false) && window.is_focused().unwrap_or(false)
    })
}

/// Shows a notification for a message from someone else while the app is
/// not in front.
pub fn new_message(handle: &AppHandle, sender: &str, message: &ChatMessage) {
    if window_in_front(handle) {
        return;
    }
    let body = match (&message.text, &message.call) {
        (Some(text), _) => text.chars().take(140).collect::<String>(),
        (None, Some(_)) => "📞".to_owned(),
        _ => return,
    };
    show(handle, sender, &body);
}

/// Shows a notification for an incoming call while the app is not in front.
pub fn incoming_call(handle: &AppHandle, caller: &str, video: bool) {
    if window_in_front(handle) {
        return;
    }
    show(handle, caller, if video { "📹 …" } else { "📞 …" });
}

fn show(handle: &AppHandle, title: &str, body: &str) {
    if let Err(err) = handle
        .notification()
        .builder()
        .title(title)
        .body(body)
        .show()
    {
        tracing::debug!(error = %err, "cannot show a notification");
    }
}

/// Adds the tray icon: a click shows the window; the menu shows or quits.
pub fn install_tray(handle: &AppHandle) -> tauri::Result<()> {
    let show_item = MenuItem::with_id(handle, "show", "Hearth", true, None::<&str>)?;
    let quit_item = MenuItem::with_id(handle, "quit", "Quit / 退出", true, None::<&str>)?;
    let menu = Menu::with_items(handle, &[&show_item, &quit_item])?;
    let mut builder = TrayIconBuilder::with_id("hearth")
        .tooltip("Hearth")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|handle, event| match event.id().as_ref() {
            "show" => show_window(handle),
            "quit" => handle.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(tray.app_handle());
            }
        });
    if let Some(icon) = handle.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(handle)?;
    Ok(())
}

/// Sets the tray tooltip to the connection state.
pub fn set_tray_status(handle: &AppHandle, status: &str) {
    if let Some(tray) = handle.tray_by_id("hearth") {
        let _ = tray.set_tooltip(Some(format!("Hearth: {status}")));
    }
}

pub fn show_window(handle: &AppHandle) {
    if let Some(window) = handle.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}
