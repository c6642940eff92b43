//! A group call between headless native clients and Debian's Chromium, which
//! joins as a guest through the server's guest page with a fake camera and
//! microphone fed from real recordings. This checks the SFU against
//! libwebrtc: simulcast with one rid line per rid, RTX, transport-wide
//! congestion control feedback, and media both ways.
//!
//! Needs `chromium`, `chromium-driver` and `ffmpeg` (scripts/install-deps.sh).

#[path = "../../../tests/support/chromium.rs"]
mod chromium;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chromium::{BrowserOptions, ChromeDriver, FakeCamera, browser_stats, program};
use hearth_client::room::{self, RoomEnd, RoomOptions};
use hearth_client::session::Session;
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::source::VideoClip;
use hearth_media::source::wav::AudioClip;
use hearth_media::{PeerConfig, RemoteSinks, SendMedia, StreamSinks, VideoCodec};
use hearth_proto::RoomParticipantId;
use hearth_proto::chat::ConversationId;
use serde_json::Value;
use tokio::sync::mpsc;

/// Native participants besides Chromium.
const NATIVES: usize = 4;

/// Calls run one at a time: two at once need more CPU than a 2-core machine
/// has.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// How long each native participant sends once everyone is in.
const SECONDS: f64 = 6.0;
/// The fake camera: small and slow enough for a loaded 2-core machine.
const CAMERA_WIDTH: u32 = 640;
const CAMERA_HEIGHT: u32 = 360;
const CAMERA_FPS: u32 = 15;

/// What one native participant received from each other participant, keyed
/// by participant id in decimal.
#[derive(Debug, Default)]
struct Received {
    video_frames: HashMap<String, usize>,
    audio_samples: HashMap<String, usize>,
}

/// The largest receive counters Chromium reported for one participant.
#[derive(Debug, Default, Clone)]
struct BrowserReceived {
    frames_decoded: u64,
    samples_received: u64,
    video_codec: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_guest_call_with_natives() {
    guest_call_with_natives(VideoCodec::ALL.to_vec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_guest_follows_vp8_room() {
    // Natives that offer only VP8 make the room VP8. Chromium joined first,
    // sending H.264, and must switch, or they cannot decode its video.
    guest_call_with_natives(vec![VideoCodec::Vp8]).await;
}

/// Runs the call with Chromium and the natives, which offer `native_codecs`,
/// and checks that everyone decodes everyone, in the room's codec.
async fn guest_call_with_natives(native_codecs: Vec<VideoCodec>) {
    let _alone = ONE_CALL_AT_A_TIME.lock().await;
    let chromium = program("chromium");
    let chromedriver = program("chromedriver");
    let folder = tempfile::tempdir().unwrap();
    let (camera, microphone) = chromium::fake_capture_files(
        folder.path(),
        &FakeCamera {
            source: &common::media("video/Zhling_1280x720.264"),
            width: CAMERA_WIDTH,
            height: CAMERA_HEIGHT,
            fps: CAMERA_FPS,
        },
        &common::media("speech/librivox_sense_and_sensibility_0890.wav"),
    );

    let server = common::start_server().await;
    let names: Vec<String> = (0..NATIVES).map(|i| format!("user{i}")).collect();
    let mut sessions = Vec::new();
    for name in &names {
        server.add_user(name).await;
        let database = folder.path().join(format!("{name}.sqlite3"));
        sessions.push(server.online_session(name, &database).await);
    }
    let group = sessions[0]
        .create_group("with a guest", &names[1..])
        .await
        .unwrap();
    for session in &sessions[1..] {
        common::eventually("every member to see the group", || {
            session.conversation(group.id).is_ok()
        })
        .await;
    }
    let invitation = sessions[0]
        .create_guest_invitation(group.id, None)
        .await
        .unwrap();
    let page_url = sessions[0].guest_page_url(&invitation.page_path);

    // Chromium joins first and waits in the call.
    let driver = ChromeDriver::start(&chromedriver);
    let browser_options = BrowserOptions {
        chromium: &chromium,
        profile: &folder.path().join("chromium-profile"),
        camera: &camera,
        microphone: &microphone,
        spki_hash: &chromium::spki_hash(server.server.certificate_pem()),
    };
    let browser = driver.connect(&browser_options).await;
    let guest_id: RoomParticipantId =
        chromium::join_as_guest(&browser, &page_url, "Chromium guest").await;

    let clip =
        Arc::new(hearth_media::source::load_video(&common::media("video/BA1_FT_C.264")).unwrap());
    let speech = Arc::new(
        hearth_media::source::wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|session| {
            tokio::spawn(take_part(
                session,
                group.id,
                clip.clone(),
                speech.clone(),
                native_codecs.clone(),
            ))
        })
        .collect();

    // Chromium's counters are read while the natives are still in the call,
    // because a receiver's statistics go away when its stream is removed.
    let mut from_natives: HashMap<String, BrowserReceived> = HashMap::new();
    let mut sent_codecs = std::collections::BTreeSet::new();
    while !tasks.iter().all(|task| task.is_finished()) {
        let stats = browser_stats(&browser).await;
        for entry in stats["outbound"].as_array().unwrap() {
            if entry["kind"] == "video" && entry["framesEncoded"].as_u64().unwrap_or(0) > 0 {
                sent_codecs.insert(entry["codec"].as_str().unwrap_or_default().to_lowercase());
            }
        }
        for entry in stats["inbound"].as_array().unwrap() {
            let Some(participant) = entry["participant"].as_str() else {
                continue;
            };
            let counters = from_natives.entry(participant.to_owned()).or_default();
            if entry["kind"] == "video" {
                counters.video_codec = entry["codec"].as_str().map(str::to_owned);
                counters.frames_decoded = counters
                    .frames_decoded
                    .max(entry["framesDecoded"].as_u64().unwrap_or(0));
            } else {
                counters.samples_received = counters
                    .samples_received
                    .max(entry["totalSamplesReceived"].as_u64().unwrap_or(0));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut natives = Vec::new();
    for task in tasks {
        natives.push(task.await.unwrap());
    }
    let outbound = browser_stats(&browser).await["outbound"].clone();
    let sdp = browser
        .execute("return window.hearthGuest.state.sdp;", vec![])
        .await
        .unwrap();
    let codec_switch = browser
        .execute("return window.hearthGuest.state.codecSwitch;", vec![])
        .await
        .unwrap();
    eprintln!("Chromium's last codec switch: {codec_switch}");
    browser.close().await.unwrap();
    drop(driver);
    eprintln!("Chromium is participant {guest_id}");
    for (id, received) in &natives {
        eprintln!("participant {id} received {received:?}");
    }
    eprintln!("Chromium received {from_natives:?}");
    eprintln!("Chromium sent {outbound}");

    // Every native participant decoded Chromium's video and audio. Chromium
    // sends from before the natives join, at 15 fps.
    for (id, received) in &natives {
        let frames = received
            .video_frames
            .get(&guest_id.to_string())
            .copied()
            .unwrap_or(0);
        assert!(
            frames >= CAMERA_FPS as usize,
            "participant {id} decoded {frames} video frames from Chromium; expected at least \
             {CAMERA_FPS}; received {received:?}"
        );
        let samples = received
            .audio_samples
            .get(&guest_id.to_string())
            .copied()
            .unwrap_or(0);
        assert!(
            samples >= 48_000,
            "participant {id} decoded {samples} audio samples from Chromium; expected at least \
             1 s at 48 kHz; received {received:?}"
        );
    }

    // Chromium decoded every native participant's video and audio. The
    // natives send at 25 fps.
    for (id, _) in &natives {
        let received = from_natives
            .get(&id.to_string())
            .cloned()
            .unwrap_or_default();
        assert!(
            received.frames_decoded >= 25,
            "Chromium decoded {} video frames from participant {id}; expected at least 25; \
             all: {from_natives:?}",
            received.frames_decoded
        );
        assert!(
            received.samples_received >= 48_000,
            "Chromium received {} audio samples from participant {id}; expected at least 1 s \
             at 48 kHz; all: {from_natives:?}",
            received.samples_received
        );
    }

    // Chromium sent all three simulcast layers.
    for rid in ["f", "h", "q"] {
        let layer = outbound
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["kind"] == "video" && entry["rid"] == rid);
        let frames = layer.map_or(0, |entry| entry["framesEncoded"].as_u64().unwrap_or(0));
        assert!(
            frames > 0,
            "Chromium encoded no frames of layer {rid}; outbound: {outbound}"
        );
    }

    // Everyone sent the room's codec while the natives were in: H.264 when
    // every native offers it, which the server prefers, else VP8. Chromium
    // starts in H.264, alone in the room.
    let room_codec = if native_codecs.contains(&VideoCodec::H264) {
        "video/h264"
    } else {
        "video/vp8"
    };
    assert!(
        sent_codecs.contains(room_codec),
        "Chromium sent only {sent_codecs:?} while the natives were in the {room_codec} room"
    );
    for (participant, received) in &from_natives {
        let codec = received.video_codec.clone().unwrap_or_default();
        assert_eq!(
            codec.to_lowercase(),
            room_codec,
            "Chromium decoded participant {participant} in {codec}"
        );
    }

    check_sdp(&sdp);
}

/// Checks the SDP facts of Chromium's join: its offer has simulcast with rids
/// and the SFU's answer has one rid line per rid, RTX and transport-cc.
fn check_sdp(sdp: &Value) {
    let offer = sdp["offer"]
        .as_str()
        .expect("Chromium's offer was recorded");
    let answer = sdp["answer"]
        .as_str()
        .expect("the SFU's answer was recorded");
    for rid in ["f", "h", "q"] {
        assert_eq!(
            count_lines(offer, &format!("a=rid:{rid} send")),
            1,
            "Chromium's offer lacks rid {rid}:\n{offer}"
        );
        assert_eq!(
            count_lines(answer, &format!("a=rid:{rid} recv")),
            1,
            "the SFU's answer needs exactly one line for rid {rid}:\n{answer}"
        );
    }
    assert_eq!(
        count_lines(answer, "a=simulcast:recv f;h;q"),
        1,
        "the SFU's answer must receive simulcast f;h;q:\n{answer}"
    );
    let video = media_section(answer, "video");
    assert!(
        video.contains(" rtx/90000") && video.contains("apt="),
        "the SFU's answer negotiated no RTX:\n{video}"
    );
    assert!(
        video.contains("transport-cc") && video.contains("transport-wide-cc-extensions"),
        "the SFU's answer has no transport-wide congestion control feedback:\n{video}"
    );
    eprintln!("the SFU's answer to Chromium, video section:\n{video}");
    let forwarded = sdp["roomOffers"].as_array().unwrap();
    assert!(
        !forwarded.is_empty(),
        "the SFU never offered Chromium the other participants' streams"
    );
    let last_offer = forwarded.last().unwrap().as_str().unwrap();
    assert!(
        last_offer.contains("transport-cc") && last_offer.contains(" rtx/90000"),
        "the SFU's offer of forwarded streams lacks RTX or transport-cc:\n{last_offer}"
    );
}

fn count_lines(sdp: &str, line: &str) -> usize {
    sdp.lines().filter(|l| l.trim_end() == line).count()
}

/// Returns the first media section of `kind` ("audio" or "video").
fn media_section<'a>(sdp: &'a str, kind: &str) -> &'a str {
    let start = sdp
        .find(&format!("m={kind} "))
        .unwrap_or_else(|| panic!("no m={kind} section in:\n{sdp}"));
    let rest = &sdp[start..];
    let end = rest[2..].find("\nm=").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

/// Joins the room, sends the clips for `SECONDS` once all `NATIVES` and the
/// guest are in, and leaves. Returns this participant's id and what it
/// received.
async fn take_part(
    session: Session,
    conversation_id: ConversationId,
    clip: Arc<VideoClip>,
    speech: Arc<AudioClip>,
    video_codecs: Vec<VideoCodec>,
) -> (RoomParticipantId, Received) {
    let (video_tx, mut video_rx) = mpsc::channel::<(String, DecodedVideo)>(512);
    let (audio_tx, mut audio_rx) = mpsc::channel::<(String, DecodedAudio)>(2048);
    let options = RoomOptions {
        peer: PeerConfig {
            simulcast: true,
            video_codecs,
            ..common::loopback_peer()
        },
        send: SendMedia {
            video: true,
            audio: true,
        },
        sinks: RemoteSinks {
            streams: Some(StreamSinks {
                video: video_tx,
                audio: audio_tx,
                screen: None,
            }),
            ..RemoteSinks::default()
        },
    };
    let signal = session.call_signal().unwrap();
    let mut call = room::join_room(signal, conversation_id, options)
        .await
        .unwrap();
    let id = call.participant_id;
    let mut roster = call.roster();
    tokio::time::timeout(
        Duration::from_secs(30),
        roster.wait_for(|r| r.participants.len() == NATIVES + 1),
    )
    .await
    .expect("every native participant joins within 30 s")
    .unwrap();
    call.set_media(
        false,
        false,
        Some((clip.width() as u32, clip.height() as u32)),
    );
    call.peer.start_video(clip, SECONDS, 300_000).await.unwrap();
    call.peer.start_audio(speech, SECONDS).await.unwrap();

    let mut received = Received::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(SECONDS + 2.0);
    loop {
        tokio::select! {
            Some((stream, _)) = video_rx.recv() => {
                *received.video_frames.entry(stream).or_default() += 1;
            }
            Some((stream, audio)) = audio_rx.recv() => {
                *received.audio_samples.entry(stream).or_default() += audio.samples.len();
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    let end = call.leave().await;
    assert_eq!(end, RoomEnd::Left);
    session.close().await;
    (id, received)
}
