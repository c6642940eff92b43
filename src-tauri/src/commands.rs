//! The commands the UI invokes. Each is a thin adapter over [`App`], the
//! session or the phone.

use std::sync::Arc;

use hearth_client::session::NewMessage;
use hearth_proto::chat::ConversationId;
use tauri::State;
use tauri::ipc::Channel;

use crate::app::App;
use crate::error::{ErrorCode, UiError, UiResult};
use crate::media::{CallMediaSettings, check_video_file};
use crate::native_video::{self, NativeVideoPlacement};
use crate::profile::Settings;
use crate::video::{FrameBytes, StreamKey, VideoStream};
use crate::views::{
    Account, AppStatus, CallState, ChatMessage, ConversationSummary, DeviceView, Devices,
    EmbeddedServer, HistoryView, RoomSummary, ScreenSourceView, ServerCheck, UserView,
};

type AppState<'a> = State<'a, Arc<App>>;

/// Events per history page.
const HISTORY_PAGE: u32 = 50;

#[tauri::command]
#[specta::specta]
pub async fn get_status(app: AppState<'_>) -> Result<AppStatus, UiError> {
    Ok(app.status().await)
}

/// The system's locale, such as `zh-CN` or `en-US`.
#[tauri::command]
#[specta::specta]
pub fn get_system_locale() -> String {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty() && value != "C" && value != "POSIX")
        .map(|value| {
            value
                .split('.')
                .next()
                .unwrap_or_default()
                .replace('_', "-")
        })
        .unwrap_or_else(|| "en".to_owned())
}

#[tauri::command]
#[specta::specta]
pub async fn check_server(app: AppState<'_>, address: String) -> UiResult<ServerCheck> {
    app.check_server(&address).await
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in(
    app: AppState<'_>,
    address: String,
    user: String,
    password: String,
    trusted_fingerprint: Option<String>,
) -> UiResult<Account> {
    app.sign_in(&address, &user, &password, trusted_fingerprint.as_deref())
        .await
}

#[tauri::command]
#[specta::specta]
pub async fn sign_in_with_browser(
    app: AppState<'_>,
    address: String,
    trusted_fingerprint: Option<String>,
) -> UiResult<Account> {
    app.sign_in_with_browser(&address, trusted_fingerprint.as_deref())
        .await
}

#[tauri::command]
#[specta::specta]
pub async fn start_embedded_server(
    app: AppState<'_>,
    user: String,
    password: String,
) -> UiResult<EmbeddedServer> {
    app.start_embedded_server(&user, &password).await
}

#[tauri::command]
#[specta::specta]
pub async fn sign_out(app: AppState<'_>) -> UiResult<()> {
    app.sign_out().await
}

#[tauri::command]
#[specta::specta]
pub async fn list_conversations(app: AppState<'_>) -> UiResult<Vec<ConversationSummary>> {
    let session = app.session().await?;
    let me = session.user().to_owned();
    Ok(session
        .conversations()?
        .iter()
        .map(|conversation| {
            ConversationSummary::new(conversation, &me, |user| session.presence_of(user))
        })
        .collect())
}

fn parse_conversation_id(id: &str) -> UiResult<ConversationId> {
    id.parse()
        .map_err(|_| UiError::new(ErrorCode::InvalidInput, format!("conversation id {id:?}")))
}

#[tauri::command]
#[specta::specta]
pub async fn history(
    app: AppState<'_>,
    conversation_id: String,
    before_seq: Option<f64>,
) -> UiResult<HistoryView> {
    let session = app.session().await?;
    let id = parse_conversation_id(&conversation_id)?;
    let page = session
        .history(id, before_seq.map(|seq| seq as u64), HISTORY_PAGE)
        .await?;
    Ok(HistoryView {
        messages: page
            .events
            .iter()
            .filter_map(ChatMessage::from_stored)
            .collect(),
        has_more: page.has_more,
    })
}

#[tauri::command]
#[specta::specta]
pub async fn send_message(
    app: AppState<'_>,
    conversation_id: String,
    text: String,
) -> UiResult<()> {
    let text = text.trim_end().to_owned();
    if text.trim().is_empty() {
        return Err(UiError::new(
            ErrorCode::InvalidInput,
            "the message is empty",
        ));
    }
    let session = app.session().await?;
    let id = parse_conversation_id(&conversation_id)?;
    session
        .send(
            id,
            NewMessage {
                text,
                ..NewMessage::default()
            },
        )
        .await?;
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn mark_read(app: AppState<'_>, conversation_id: String) -> UiResult<()> {
    let session = app.session().await?;
    session.mark_read(parse_conversation_id(&conversation_id)?, None)?;
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub async fn list_users(app: AppState<'_>) -> UiResult<Vec<UserView>> {
    let session = app.session().await?;
    let me = session.user().to_owned();
    Ok(session
        .users()
        .await?
        .into_iter()
        .filter(|user| user.name != me)
        .map(|user| UserView {
            name: user.name,
            presence: user.presence.into(),
        })
        .collect())
}

#[tauri::command]
#[specta::specta]
pub async fn open_direct(app: AppState<'_>, user: String) -> UiResult<ConversationSummary> {
    let session = app.session().await?;
    let conversation = session.open_direct(user.trim()).await?;
    let me = session.user().to_owned();
    Ok(ConversationSummary::new(&conversation, &me, |user| {
        session.presence_of(user)
    }))
}

#[tauri::command]
#[specta::specta]
pub async fn create_group(
    app: AppState<'_>,
    name: String,
    members: Vec<String>,
) -> UiResult<ConversationSummary> {
    let session = app.session().await?;
    let conversation = session.create_group(name.trim(), &members).await?;
    let me = session.user().to_owned();
    Ok(ConversationSummary::new(&conversation, &me, |user| {
        session.presence_of(user)
    }))
}

/// Calls the other member of a direct conversation.
#[tauri::command]
#[specta::specta]
pub async fn start_call(app: AppState<'_>, conversation_id: String, video: bool) -> UiResult<()> {
    let session = app.session().await?;
    let conversation = session.conversation(parse_conversation_id(&conversation_id)?)?;
    let me = session.user().to_owned();
    let summary = ConversationSummary::new(&conversation, &me, |_| None);
    let peer = summary.peer.ok_or_else(|| {
        UiError::new(
            ErrorCode::InvalidInput,
            "a group conversation has no one person to call; join its group call instead",
        )
    })?;
    app.phone.set_media_settings(call_media(&app.settings()));
    app.phone.place(peer, video).await
}

#[tauri::command]
#[specta::specta]
pub async fn accept_call(app: AppState<'_>, video: bool) -> UiResult<()> {
    app.phone.set_media_settings(call_media(&app.settings()));
    app.phone.accept(video).await
}

#[tauri::command]
#[specta::specta]
pub fn decline_call(app: AppState<'_>) -> UiResult<()> {
    app.phone.decline()
}

#[tauri::command]
#[specta::specta]
pub fn hang_up(app: AppState<'_>) -> UiResult<()> {
    app.phone.hang_up()
}

/// Adds `user` to the connected one-to-one call: the app creates a group of
/// the three and the call moves into its group call.
#[tauri::command]
#[specta::specta]
pub async fn add_to_call(app: AppState<'_>, user: String) -> UiResult<()> {
    let user = user.trim().to_owned();
    if user.is_empty() {
        return Err(UiError::new(ErrorCode::InvalidInput, "pick someone to add"));
    }
    app.phone.add_to_call(user).await
}

#[tauri::command]
#[specta::specta]
pub fn set_muted(app: AppState<'_>, muted: bool) -> UiResult<()> {
    app.phone.set_muted(muted)
}

#[tauri::command]
#[specta::specta]
pub fn set_camera_on(app: AppState<'_>, on: bool) -> UiResult<()> {
    app.phone.set_camera(on)
}

#[tauri::command]
#[specta::specta]
pub fn get_call_state(app: AppState<'_>) -> CallState {
    app.phone.state()
}

fn call_media(settings: &Settings) -> CallMediaSettings {
    CallMediaSettings {
        video_source: settings.video_source.clone(),
        microphone: settings.microphone.clone(),
        speaker: settings.speaker.clone(),
        noise_suppression: settings.noise_suppression,
    }
}

/// The cameras, microphones and speakers. A kind that cannot be listed is
/// empty, so the other pickers still work.
#[tauri::command]
#[specta::specta]
pub async fn list_devices() -> UiResult<Devices> {
    tokio::task::spawn_blocking(|| {
        let audio = |devices: Result<Vec<hearth_media::audio::AudioDevice>, _>| {
            devices
                .inspect_err(|err: &hearth_media::audio::AudioError| {
                    tracing::warn!(error = %err, "cannot list audio devices");
                })
                .unwrap_or_default()
                .into_iter()
                .map(|device| DeviceView {
                    id: device.id,
                    name: device.name,
                    is_default: device.is_default,
                })
                .collect()
        };
        let cameras = hearth_media::live::list_cameras()
            .inspect_err(|err| tracing::warn!(error = %err, "cannot list cameras"))
            .unwrap_or_default();
        Devices {
            cameras: cameras
                .into_iter()
                .enumerate()
                .map(|(index, camera)| DeviceView {
                    id: camera.id,
                    name: camera.name,
                    is_default: index == 0,
                })
                .collect(),
            microphones: audio(hearth_media::audio::list_microphones()),
            speakers: audio(hearth_media::audio::list_speakers()),
        }
    })
    .await
    .map_err(UiError::internal)
}

#[tauri::command]
#[specta::specta]
pub async fn update_settings(app: AppState<'_>, settings: Settings) -> UiResult<Settings> {
    if let crate::profile::VideoSource::File { path } = &settings.video_source {
        check_video_file(path)?;
    }
    let settings = app.update_settings(settings).await?;
    app.phone.switch_devices(call_media(&settings));
    Ok(settings)
}

/// Lets the user pick a video file to use as the camera.
#[tauri::command]
#[specta::specta]
pub async fn pick_video_file(window: tauri::Window) -> UiResult<Option<String>> {
    use tauri_plugin_dialog::DialogExt;
    let (done, picked) = tokio::sync::oneshot::channel();
    window
        .dialog()
        .file()
        .add_filter("Video (Y4M, H.264)", &["y4m", "264", "h264"])
        .pick_file(move |path| {
            let _ = done.send(path.and_then(|path| path.into_path().ok()));
        });
    let path = picked.await.map_err(UiError::internal)?;
    Ok(path.map(|path| path.display().to_string()))
}

/// Microphone input level in dBFS, for the settings meter.
#[tauri::command]
#[specta::specta]
pub async fn mic_level(app: AppState<'_>) -> UiResult<f64> {
    // Opening a device can block for a while; keep it off the async workers.
    let app = Arc::clone(&app);
    tokio::task::spawn_blocking(move || app.phone.mic_level(app.settings().microphone.as_deref()))
        .await
        .map_err(UiError::internal)?
}

/// Plays a short sound on the chosen speaker: during a call on the call's
/// speaker, mixed over the call.
#[tauri::command]
#[specta::specta]
pub async fn test_speaker(app: AppState<'_>) -> UiResult<()> {
    let app = Arc::clone(&app);
    // Opening a device and playing the sound block for a while.
    tokio::task::spawn_blocking(move || app.phone.test_speaker(app.settings().speaker.as_deref()))
        .await
        .map_err(UiError::internal)?
}

/// Streams one view's frames into `channel`, scaled to `width` x `height`.
#[tauri::command]
#[specta::specta]
pub fn watch_video(
    app: AppState<'_>,
    channel: Channel<FrameBytes>,
    stream: VideoStream,
    width: u32,
    height: u32,
) {
    app.video
        .watch(stream, channel, width, height, app.settings().renderer);
    if stream == VideoStream::SelfView {
        // Opening a camera or decoding a video file takes a while, and this
        // command runs on the main thread, so the preview starts elsewhere.
        let app = Arc::clone(&app);
        tauri::async_runtime::spawn_blocking(move || {
            if let Err(err) = app.phone.show_preview(&app.settings().video_source) {
                tracing::warn!(error = %err, "no camera preview");
            }
        });
    }
}

#[tauri::command]
#[specta::specta]
pub fn unwatch_video(app: AppState<'_>, stream: VideoStream) {
    app.video.unwatch(stream);
    if stream == VideoStream::SelfView {
        app.phone.hide_preview();
    }
}

/// Places the `native` renderer's video views where the page shows its
/// video elements; views missing from `placements` are removed.
#[tauri::command]
#[specta::specta]
pub fn place_native_videos(placements: Vec<NativeVideoPlacement>) -> UiResult<()> {
    native_video::place(placements)
}

/// Joins the group call of a conversation with the camera on or off, and
/// returns once the server's SFU sent its SDP answer.
#[tauri::command]
#[specta::specta]
pub async fn join_room(app: AppState<'_>, conversation_id: String, video: bool) -> UiResult<()> {
    let session = app.session().await?;
    let id = parse_conversation_id(&conversation_id)?;
    let conversation = session.conversation(id)?;
    let me = session.user().to_owned();
    let title = ConversationSummary::new(&conversation, &me, |_| None).title;
    app.phone.set_media_settings(call_media(&app.settings()));
    app.phone.join_room(id, title, video).await
}

/// Returns the group calls in progress in the user's conversations.
#[tauri::command]
#[specta::specta]
pub fn list_rooms(app: AppState<'_>) -> Vec<RoomSummary> {
    app.rooms.list()
}

/// Lists the screens and windows that can be shared, with thumbnails.
#[tauri::command]
#[specta::specta]
pub async fn list_screen_sources() -> UiResult<Vec<ScreenSourceView>> {
    // Listing grabs a thumbnail of every window, which blocks for a while.
    let sources = tokio::task::spawn_blocking(hearth_media::list_sources)
        .await
        .map_err(UiError::internal)??;
    Ok(sources.iter().map(ScreenSourceView::from).collect())
}

/// Shares a screen or window, by its id from `list_screen_sources`, in the
/// group call.
#[tauri::command]
#[specta::specta]
pub async fn start_screen_share(app: AppState<'_>, source_id: String) -> UiResult<()> {
    let source = source_id.parse().map_err(UiError::from)?;
    app.phone.share_screen(source).await
}

#[tauri::command]
#[specta::specta]
pub fn stop_screen_share(app: AppState<'_>) -> UiResult<()> {
    app.phone.stop_screen_share()
}

fn parse_participant_id(id: &str) -> UiResult<u64> {
    id.parse()
        .map_err(|_| UiError::new(ErrorCode::InvalidInput, format!("participant id {id:?}")))
}

/// Streams a group call participant's camera, or with `screen` their
/// screen share, into `channel`, scaled to `width` x `height`. The camera's
/// size also tells the SFU which simulcast layer to send.
#[tauri::command]
#[specta::specta]
pub fn watch_room_video(
    app: AppState<'_>,
    channel: Channel<FrameBytes>,
    participant_id: String,
    screen: bool,
    width: u32,
    height: u32,
) -> UiResult<()> {
    let id = parse_participant_id(&participant_id)?;
    let key = if screen {
        StreamKey::Screen(participant_id)
    } else {
        app.phone.report_view(id, width, height);
        StreamKey::Participant(participant_id)
    };
    app.video
        .watch(key, channel, width, height, app.settings().renderer);
    Ok(())
}

#[tauri::command]
#[specta::specta]
pub fn unwatch_room_video(app: AppState<'_>, participant_id: String, screen: bool) -> UiResult<()> {
    let id = parse_participant_id(&participant_id)?;
    let key = if screen {
        StreamKey::Screen(participant_id)
    } else {
        app.phone.report_view(id, 0, 0);
        StreamKey::Participant(participant_id)
    };
    app.video.unwatch(key);
    Ok(())
}
