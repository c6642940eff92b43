//! Group calls through the server's SFU, with headless clients on real media
//! and the real server on loopback.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_client::room::{self, RoomEnd, RoomOptions};
use hearth_client::session::Session;
use hearth_media::PeerConfig;
use hearth_media::VideoCodec;
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::source::VideoClip;
use hearth_media::source::wav::AudioClip;
use hearth_media::{LiveSend, LocalVideo, RemoteSinks, SendMedia, StreamSinks, VideoSource};
use hearth_proto::chat::ConversationId;
use hearth_proto::{ErrorCode, RoomParticipantId, RoomView};
use tokio::sync::mpsc;

/// How long each participant sends.
const SECONDS: f64 = 4.0;

/// The camera clip: the foreman sequence, 352x288 at 25 fps.
const CLIP: &str = "video/BA1_FT_C.264";

/// Calls run one at a time: two at once need more CPU than a 2-core machine
/// has, and the frames they lose would fail both.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one participant received from each other participant.
#[derive(Debug, Default)]
struct Received {
    video_frames: HashMap<String, usize>,
    /// When each frame from each participant was decoded, in seconds since
    /// this participant started sending.
    video_times: HashMap<String, Vec<f64>>,
    /// The codecs of the decoded frames from each participant, in order,
    /// each run of frames in one codec listed once.
    video_codecs: HashMap<String, Vec<VideoCodec>>,
    /// The size of the last frame decoded from each participant.
    video_sizes: HashMap<String, (usize, usize)>,
    audio_samples: HashMap<String, usize>,
    /// Whether the roster ever named an active speaker.
    saw_active_speaker: bool,
}

/// How one participant takes part in a call.
#[derive(Debug, Clone)]
struct Part {
    /// How long to wait before joining.
    join_after: Duration,
    /// How many others to wait for before sending.
    others: usize,
    /// How long to send.
    seconds: f64,
    /// How long to keep receiving after sending.
    linger: f64,
    /// The size at which this participant shows everyone else.
    view: Option<(u32, u32)>,
    /// The maximum video bitrate this participant accepts, in bit/s.
    max_video_bps: Option<u32>,
    /// Whether this participant sends its camera.
    send_video: bool,
    /// Whether the camera is the clip's file played live through
    /// `start_live`, as the desktop app sends it, rather than the clip
    /// encoded at the clip's pace.
    live_camera: bool,
    peer: PeerConfig,
}

impl Part {
    fn new(others: usize, peer: PeerConfig) -> Self {
        Self {
            join_after: Duration::ZERO,
            others,
            seconds: SECONDS,
            linger: 2.0,
            view: None,
            max_video_bps: None,
            send_video: true,
            live_camera: false,
            peer,
        }
    }
}

/// Joins the room, waits for the others, sends the clips, keeps receiving
/// a while and leaves. Returns this participant's id and what it received.
async fn take_part(
    session: Session,
    conversation_id: ConversationId,
    clip: Arc<VideoClip>,
    speech: Arc<AudioClip>,
    part: Part,
) -> (RoomParticipantId, Received) {
    let Part {
        join_after,
        others,
        seconds,
        linger,
        view,
        max_video_bps,
        send_video,
        live_camera,
        peer,
    } = part;
    tokio::time::sleep(join_after).await;
    let (video_tx, mut video_rx) = mpsc::channel::<(String, DecodedVideo)>(512);
    let (audio_tx, mut audio_rx) = mpsc::channel::<(String, DecodedAudio)>(2048);
    let options = RoomOptions {
        peer,
        send: SendMedia {
            video: send_video,
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
    // Everyone sends only once the whole group is in, so that every
    // participant sees every stream from its start.
    let mut roster = call.roster();
    tokio::time::timeout(
        Duration::from_secs(20),
        roster.wait_for(|r| r.participants.len() == others + 1),
    )
    .await
    .expect("everyone joins within 20 s")
    .unwrap();
    if let Some((width, height)) = view {
        let views = roster
            .borrow()
            .participants
            .iter()
            .filter(|p| p.id != id)
            .map(|p| RoomView {
                participant_id: p.id,
                width,
                height,
            })
            .collect();
        call.set_views(views);
    }
    if max_video_bps.is_some() {
        call.set_video_limit(max_video_bps);
    }
    call.set_media(
        false,
        false,
        Some((clip.width() as u32, clip.height() as u32)),
    );
    // A live camera keeps sending until the call ends; it lives as long as
    // this function.
    let mut camera = None;
    if send_video && live_camera {
        let file = LocalVideo::start(&VideoSource::File(common::media(CLIP))).unwrap();
        call.peer
            .start_live(LiveSend {
                video: Some(file.frames()),
                video_bitrate_bps: 300_000,
                ..LiveSend::default()
            })
            .await
            .unwrap();
        camera = Some(file);
    } else if send_video {
        call.peer.start_video(clip, seconds, 300_000).await.unwrap();
    }
    call.peer.start_audio(speech, seconds).await.unwrap();
    let started = tokio::time::Instant::now();

    let mut received = Received::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds + linger);
    loop {
        tokio::select! {
            Some((stream, video)) = video_rx.recv() => {
                received
                    .video_sizes
                    .insert(stream.clone(), (video.frame.width, video.frame.height));
                let codecs = received.video_codecs.entry(stream.clone()).or_default();
                if codecs.last() != Some(&video.codec) {
                    codecs.push(video.codec);
                }
                received
                    .video_times
                    .entry(stream.clone())
                    .or_default()
                    .push(started.elapsed().as_secs_f64());
                *received.video_frames.entry(stream).or_default() += 1;
            }
            Some((stream, audio)) = audio_rx.recv() => {
                *received.audio_samples.entry(stream).or_default() += audio.samples.len();
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
        if roster.borrow().active_speaker.is_some() {
            received.saw_active_speaker = true;
        }
    }
    let end = call.leave().await;
    assert_eq!(end, RoomEnd::Left);
    drop(camera);
    session.close().await;
    (id, received)
}

/// Starts a server with a group of `participants` users, each online.
/// Returns the server, the sessions, the group's id and the folder of the
/// sessions' databases; keep the server and the folder until the end.
async fn group_of(
    participants: usize,
) -> (
    common::TestServer,
    Vec<Session>,
    ConversationId,
    tempfile::TempDir,
) {
    let server = common::start_server().await;
    let names: Vec<String> = (0..participants).map(|i| format!("user{i}")).collect();
    for name in &names {
        server.add_user(name).await;
    }
    let folder = tempfile::tempdir().unwrap();
    let mut sessions = Vec::new();
    for name in &names {
        let database = folder.path().join(format!("{name}.sqlite3"));
        sessions.push(server.online_session(name, &database).await);
    }
    let group = sessions[0]
        .create_group("standup", &names[1..])
        .await
        .unwrap();
    for session in &sessions[1..] {
        common::eventually("every member to see the group", || {
            session.conversation(group.id).is_ok()
        })
        .await;
    }
    (server, sessions, group.id, folder)
}

/// Runs one participant per session with its `Part`, on the test clips,
/// and returns each one's id and what it received, in the order of `parts`.
async fn run_parts(
    sessions: Vec<Session>,
    conversation_id: ConversationId,
    parts: Vec<Part>,
) -> Vec<(RoomParticipantId, Received)> {
    let clip = Arc::new(hearth_media::source::load_video(&common::media(CLIP)).unwrap());
    let speech = Arc::new(
        hearth_media::source::wav::load(&common::media(
            "speech/librivox_sense_and_sensibility_0870.wav",
        ))
        .unwrap(),
    );
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(parts)
        .map(|(session, part)| {
            tokio::spawn(take_part(
                session,
                conversation_id,
                clip.clone(),
                speech.clone(),
                part,
            ))
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Returns the codecs of a participant that offers only VP8, as a browser
/// without H.264 does.
fn vp8_only() -> Vec<VideoCodec> {
    vec![VideoCodec::Vp8]
}

/// Runs a group call in which the first participant shows everyone else at
/// `first_view`, the others show everyone at full size, and participant `i`
/// offers `codecs(i)`. Returns each participant's id and what it received,
/// the first participant first.
async fn group_call(
    participants: usize,
    first_view: Option<(u32, u32)>,
    simulcast: bool,
    codecs: impl Fn(usize) -> Vec<VideoCodec>,
) -> Vec<(RoomParticipantId, Received)> {
    let _alone = ONE_CALL_AT_A_TIME.lock().await;
    let (_server, sessions, group, _folder) = group_of(participants).await;
    let parts = (0..participants)
        .map(|index| Part {
            view: if index == 0 { first_view } else { None },
            ..Part::new(
                participants - 1,
                PeerConfig {
                    simulcast,
                    video_codecs: codecs(index),
                    ..common::loopback_peer()
                },
            )
        })
        .collect();
    let results = run_parts(sessions, group, parts).await;

    let ids: Vec<RoomParticipantId> = results.iter().map(|(id, _)| *id).collect();
    // Everyone starts sending once the roster is complete, but the SFU adds
    // the last joiner's streams to each other participant one offer at a
    // time, which can take up to a second on a loaded 2-core machine. Frames
    // sent before a stream is negotiated are not forwarded, so the first
    // second does not count.
    let sent_frames = ((SECONDS - 1.0) * 25.0) as usize;
    for (id, received) in &results {
        for other in ids.iter().filter(|other| *other != id) {
            let frames = received
                .video_frames
                .get(&other.to_string())
                .copied()
                .unwrap_or(0);
            assert!(
                frames * 100 >= sent_frames * 85,
                "participant {id} decoded {frames} frames from {other}, fewer than 85 % of the \
                 {sent_frames} sent after the first second; \
                 everything received: {received:?}"
            );
            let samples = received
                .audio_samples
                .get(&other.to_string())
                .copied()
                .unwrap_or(0);
            assert!(
                samples as f64 >= 48_000.0 * SECONDS * 0.8,
                "participant {id} got {samples} audio samples from {other}"
            );
        }
        assert!(
            !received.video_frames.contains_key(&id.to_string()),
            "participant {id} received its own video"
        );
        // Everyone reads speech aloud, so someone is always the loudest.
        assert!(
            received.saw_active_speaker,
            "participant {id} never saw an active speaker"
        );
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_people_decode_each_other() {
    // Without simulcast: five senders with three layers each need more CPU
    // than this 2-core machine has beside twenty decoders.
    let results = group_call(5, None, false, |_| vec![VideoCodec::H264]).await;
    for (id, received) in &results {
        for (sender, size) in &received.video_sizes {
            assert_eq!(
                *size,
                (352, 288),
                "participant {id} got {sender} at {size:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_view_gets_the_quarter_layer() {
    let results = group_call(3, Some((80, 60)), true, |_| vec![VideoCodec::H264]).await;
    let (first, received) = &results[0];
    for (sender, size) in &received.video_sizes {
        assert_eq!(
            *size,
            (88, 72),
            "participant {first} showing {sender} small got {size:?}"
        );
    }
    // The others show everyone at full size. Their bandwidth estimates may
    // still pick the half layer when the CPU is busy, but never the quarter.
    for (id, received) in &results[1..] {
        for (sender, size) in &received.video_sizes {
            assert!(size.0 > 88, "participant {id} got {sender} at {size:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_camera_sends_simulcast() {
    // The desktop app sends its camera through `start_live`. With simulcast
    // a receiver that shows the sender small gets the quarter layer, and one
    // that shows it whole gets the top layer, from the same live camera.
    let _alone = ONE_CALL_AT_A_TIME.lock().await;
    let (_server, sessions, group, _folder) = group_of(3).await;
    let peer = PeerConfig {
        simulcast: true,
        ..common::loopback_peer()
    };
    let sender = Part {
        live_camera: true,
        ..Part::new(2, peer)
    };
    let small = Part {
        view: Some((80, 60)),
        send_video: false,
        ..sender.clone()
    };
    let whole = Part {
        send_video: false,
        ..sender.clone()
    };
    let results = run_parts(sessions, group, vec![sender, small, whole]).await;

    let sender_id = results[0].0.to_string();
    let window = 1.0..SECONDS;
    let window_frames = (window.end - window.start) * 25.0;
    for (index, expected_size) in [(1, (88, 72)), (2, (352, 288))] {
        let (id, received) = &results[index];
        let frames = received.video_times.get(&sender_id).map_or(0, |times| {
            times.iter().filter(|time| window.contains(time)).count()
        });
        assert_eq!(
            received.video_sizes.get(&sender_id),
            Some(&expected_size),
            "participant {id} got {received:?}"
        );
        assert!(
            frames as f64 >= window_frames * 0.85,
            "participant {id} decoded {frames} of {window_frames} frames from the live camera"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_decodes_every_layer_switch() {
    // The view sizes differ, so the SFU switches layers of VP8 streams too.
    // Two participants, because three with three VP8 encoders each need
    // nearly all of this 2-core machine and lose frames under any other load.
    let results = group_call(2, Some((160, 120)), true, |_| vp8_only()).await;
    let (first, received) = &results[0];
    for (sender, size) in &received.video_sizes {
        assert_eq!(
            *size,
            (176, 144),
            "participant {first} showing {sender} at 160x120 got {size:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_video_limit_halves_frame_rate() {
    // One participant sends 300 kbit/s as VP8 simulcast with two temporal
    // layers: about 195 kbit/s in the top layer, of which the base temporal
    // layer has about 60 %. A receiver that takes at most 160 kbit/s of
    // video gets the top layer's base: full size at half the frame rate,
    // which beats the half-size layer at the full rate. Another receiver
    // without a limit gets the whole top layer. The receivers send no
    // video, which leaves the CPU to the sender's three encoders.
    let _alone = ONE_CALL_AT_A_TIME.lock().await;
    let (_server, sessions, group, _folder) = group_of(3).await;
    let peer = PeerConfig {
        simulcast: true,
        video_codecs: vp8_only(),
        ..common::loopback_peer()
    };
    let seconds = 7.0;
    let sender = Part {
        seconds,
        ..Part::new(2, peer.clone())
    };
    let limited = Part {
        max_video_bps: Some(160_000),
        send_video: false,
        ..sender.clone()
    };
    let unlimited = Part {
        send_video: false,
        ..sender.clone()
    };
    let results = run_parts(sessions, group, vec![sender, limited, unlimited]).await;
    // The SFU measures a layer's bitrate over 2 s and the encoder starts
    // below its target, so the choice settles within 4 s. Frames count from
    // then to the end of sending, which is 75 frames at 25 fps.
    let window = 4.0..seconds;
    let window_frames = (window.end - window.start) * 25.0;
    let sender_id = results[0].0.to_string();
    let decoded = |index: usize| {
        let received = &results[index].1;
        let frames = received.video_times.get(&sender_id).map_or(0, |times| {
            times.iter().filter(|time| window.contains(time)).count()
        });
        (frames, received.video_sizes.get(&sender_id).copied())
    };

    let (frames, size) = decoded(1);
    println!(
        "the limited receiver decoded {frames} of {window_frames} frames between 4 s and \
         {seconds} s, the last at {size:?}"
    );
    assert_eq!(
        size,
        Some((352, 288)),
        "the limited receiver got {results:?}"
    );
    assert!(
        (window_frames * 0.35..=window_frames * 0.65).contains(&(frames as f64)),
        "the limited receiver decoded {frames} of {window_frames} frames, not about half: \
         {results:?}"
    );
    // The other receiver's layer follows its bandwidth estimate, which may
    // dip on a busy machine, so only its frame rate is checked: well above
    // half, so that frames lost on the way cannot pass for the base layer.
    let (frames, _) = decoded(2);
    assert!(
        frames as f64 >= window_frames * 0.75,
        "the receiver without a limit decoded only {frames} of {window_frames} frames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_only_participant_makes_everyone_send_vp8() {
    // The SFU forwards frames as they are, so everyone must send a codec
    // that the VP8-only participant decodes. Without simulcast, because
    // nine VP8 encoders need more CPU than this 2-core machine has.
    let results = group_call(3, None, false, |index| {
        if index == 2 {
            vp8_only()
        } else {
            VideoCodec::ALL.to_vec()
        }
    })
    .await;
    for (id, received) in &results {
        for (sender, codecs) in &received.video_codecs {
            assert_eq!(
                codecs.last(),
                Some(&VideoCodec::Vp8),
                "participant {id} last decoded {sender} in {codecs:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_codec_follows_vp8_only_visitor() {
    let _alone = ONE_CALL_AT_A_TIME.lock().await;
    let (_server, sessions, group, _folder) = group_of(3).await;
    // Without simulcast: the switches are the same, and three encoders per
    // participant in VP8 need more CPU than this 2-core machine has.
    let both = common::loopback_peer();
    // Two participants send H.264 for 10 s. A third that offers only VP8
    // joins after 2 s, sends for 3 s and leaves about 1 s later.
    let long = Part {
        seconds: 10.0,
        linger: 1.0,
        ..Part::new(1, both.clone())
    };
    let visitor = Part {
        join_after: Duration::from_secs(2),
        seconds: 3.0,
        linger: 1.0,
        ..Part::new(
            2,
            PeerConfig {
                video_codecs: vp8_only(),
                ..both
            },
        )
    };
    let results = run_parts(sessions, group, vec![long.clone(), long, visitor]).await;
    let (first, second, visitor) = (&results[0], &results[1], &results[2]);

    // Each long participant decodes the other in VP8 while the visitor is
    // in and in H.264 again after it left, losing few frames at the switches.
    for ((id, received), other) in [(first, second.0), (second, first.0)] {
        let sender = other.to_string();
        assert_eq!(
            received.video_codecs.get(&sender).map(Vec::as_slice),
            Some([VideoCodec::H264, VideoCodec::Vp8, VideoCodec::H264].as_slice()),
            "participant {id} decoded {other} in these codecs: {received:?}"
        );
        let frames = received.video_frames[&sender];
        let sent = (10.0 - 1.0) * 25.0;
        assert!(
            frames as f64 >= sent * 0.85,
            "participant {id} decoded {frames} frames from {other}, fewer than 85 % of the \
             {sent} sent after the first second"
        );
    }
    // Everyone decodes the visitor, and the visitor decodes everyone, in VP8.
    let sent_by_visitor = (3.0 - 1.0) * 25.0;
    for (id, received) in [first, second] {
        let frames = received
            .video_frames
            .get(&visitor.0.to_string())
            .copied()
            .unwrap_or(0);
        assert!(
            frames as f64 >= sent_by_visitor * 0.85,
            "participant {id} decoded {frames} frames from the VP8-only participant"
        );
    }
    let (visitor_id, received) = visitor;
    for other in [first.0, second.0] {
        let sender = other.to_string();
        assert_eq!(
            received.video_codecs.get(&sender).map(Vec::as_slice),
            Some([VideoCodec::Vp8].as_slice()),
            "the VP8-only participant {visitor_id} decoded {other}: {received:?}"
        );
        let frames = received.video_frames[&sender];
        assert!(
            frames as f64 >= sent_by_visitor * 0.85,
            "the VP8-only participant decoded {frames} frames from {other}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_cannot_join() {
    let server = common::start_server().await;
    for name in ["alice", "bob", "mallory"] {
        server.add_user(name).await;
    }
    let folder = tempfile::tempdir().unwrap();
    let alice = server
        .online_session("alice", &folder.path().join("alice.sqlite3"))
        .await;
    let mallory = server
        .online_session("mallory", &folder.path().join("mallory.sqlite3"))
        .await;
    let group = alice
        .create_group("private", &["bob".to_owned()])
        .await
        .unwrap();

    let options = RoomOptions {
        peer: common::loopback_peer(),
        ..RoomOptions::default()
    };
    let result = room::join_room(mallory.call_signal().unwrap(), group.id, options).await;
    match result {
        Err(hearth_client::ClientError::Server { code, .. }) => {
            assert_eq!(code, ErrorCode::NotMember);
        }
        Err(other) => panic!("expected not_member, got {other}"),
        Ok(_) => panic!("a non-member joined the call"),
    }
}
