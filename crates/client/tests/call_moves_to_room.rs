//! A one-to-one call that gains a third person moves into a group call
//! through the server's SFU, and neither participant loses media on the way:
//! the peer-to-peer path keeps playing until the SFU path carries media.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_client::ClientError;
use hearth_client::call::{self, ActiveCall, CallEnd, CallOptions};
use hearth_client::room::{self, RoomCall, RoomEnd, RoomOptions};
use hearth_client::session::Session;
use hearth_media::receive::{DecodedAudio, DecodedVideo};
use hearth_media::source::VideoClip;
use hearth_media::source::wav::AudioClip;
use hearth_media::{RemoteSinks, SendMedia, StreamSinks};
use hearth_proto::ErrorCode;
use hearth_proto::chat::ConversationId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The camera clip: the foreman sequence, 352x288 at 25 fps.
const CLIP: &str = "video/BA1_FT_C.264";
const SPEECH: &str = "speech/librivox_sense_and_sensibility_0870.wav";
/// How long the one-to-one call runs before it moves.
const BEFORE_MOVE: Duration = Duration::from_secs(2);
/// How long everyone stays in the group call once the move is over.
const IN_ROOM: Duration = Duration::from_secs(4);
const BITRATE: u32 = 300_000;

/// When each piece of media arrived, by source: `p2p` for the one-to-one
/// call, otherwise the SFU's stream id (the sender's participant id).
#[derive(Debug, Default)]
struct Arrivals {
    video: HashMap<String, Vec<Instant>>,
    audio: HashMap<String, Vec<Instant>>,
}

impl Arrivals {
    fn first(&self, source: &str) -> Option<Instant> {
        let video = self.video.get(source).and_then(|times| times.first());
        let audio = self.audio.get(source).and_then(|times| times.first());
        video.into_iter().chain(audio).min().copied()
    }

    fn last(&self, source: &str) -> Option<Instant> {
        let video = self.video.get(source).and_then(|times| times.last());
        let audio = self.audio.get(source).and_then(|times| times.last());
        video.into_iter().chain(audio).max().copied()
    }

    fn video_frames(&self, source: &str) -> usize {
        self.video.get(source).map_or(0, Vec::len)
    }

    fn audio_chunks(&self, source: &str) -> usize {
        self.audio.get(source).map_or(0, Vec::len)
    }

    /// Returns the largest gap in the other side's audio, over the one-to-one
    /// call and then the room's stream `room_source`.
    fn longest_audio_gap(&self, room_source: &str) -> Duration {
        let mut times: Vec<Instant> = ["p2p", room_source]
            .iter()
            .filter_map(|source| self.audio.get(*source))
            .flatten()
            .copied()
            .collect();
        times.sort();
        times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }
}

/// Records what one participant receives, from the call and from the room,
/// until every channel closes.
struct Recorder {
    p2p_video: mpsc::Sender<DecodedVideo>,
    p2p_audio: mpsc::Sender<DecodedAudio>,
    room: StreamSinks,
    task: tokio::task::JoinHandle<Arrivals>,
}

impl Recorder {
    fn start() -> Self {
        let (p2p_video, p2p_video_rx) = mpsc::channel::<DecodedVideo>(256);
        let (p2p_audio, p2p_audio_rx) = mpsc::channel::<DecodedAudio>(1024);
        let (video, video_rx) = mpsc::channel::<(String, DecodedVideo)>(256);
        let (audio, audio_rx) = mpsc::channel::<(String, DecodedAudio)>(1024);
        let task = tokio::spawn(async move {
            let mut arrivals = Arrivals::default();
            let mut p2p_video_rx = Some(p2p_video_rx);
            let mut p2p_audio_rx = Some(p2p_audio_rx);
            let mut video_rx = Some(video_rx);
            let mut audio_rx = Some(audio_rx);
            while p2p_video_rx.is_some()
                || p2p_audio_rx.is_some()
                || video_rx.is_some()
                || audio_rx.is_some()
            {
                let (kind, source) = tokio::select! {
                    item = next(&mut p2p_video_rx) => ("video", item.map(|_| "p2p".to_owned())),
                    item = next(&mut p2p_audio_rx) => ("audio", item.map(|_| "p2p".to_owned())),
                    item = next(&mut video_rx) => ("video", item.map(|(stream, _)| stream)),
                    item = next(&mut audio_rx) => ("audio", item.map(|(stream, _)| stream)),
                };
                let Some(source) = source else { continue };
                let times = if kind == "video" {
                    &mut arrivals.video
                } else {
                    &mut arrivals.audio
                };
                times.entry(source).or_default().push(Instant::now());
            }
            arrivals
        });
        Self {
            p2p_video,
            p2p_audio,
            room: StreamSinks {
                video,
                audio,
                screen: None,
            },
            task,
        }
    }

    fn call_options(&self) -> CallOptions {
        CallOptions {
            peer: common::loopback_peer(),
            send: SendMedia {
                video: true,
                audio: true,
            },
            sinks: RemoteSinks {
                video: Some(self.p2p_video.clone()),
                audio: Some(self.p2p_audio.clone()),
                streams: None,
            },
        }
    }

    fn room_options(&self) -> RoomOptions {
        RoomOptions {
            peer: common::loopback_peer(),
            send: SendMedia {
                video: true,
                audio: true,
            },
            sinks: RemoteSinks {
                streams: Some(self.room.clone()),
                ..RemoteSinks::default()
            },
        }
    }

    async fn finish(self) -> Arrivals {
        drop((self.p2p_video, self.p2p_audio, self.room));
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("every media channel closes once the calls are closed")
            .unwrap()
    }
}

/// Receives from a channel until it closes, then never again: `None` once,
/// when it closes.
async fn next<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    let Some(open) = receiver else {
        return std::future::pending().await;
    };
    let item = open.recv().await;
    if item.is_none() {
        *receiver = None;
    }
    item
}

struct Clips {
    video: Arc<VideoClip>,
    speech: Arc<AudioClip>,
}

impl Clips {
    fn load() -> Self {
        Self {
            video: Arc::new(hearth_media::source::load_video(&common::media(CLIP)).unwrap()),
            speech: Arc::new(hearth_media::source::wav::load(&common::media(SPEECH)).unwrap()),
        }
    }
}

/// Sends the clips on a peer for `seconds`.
async fn send_clips(peer: &mut hearth_media::MediaPeer, clips: &Clips, seconds: f64) {
    peer.start_video(clips.video.clone(), seconds, BITRATE)
        .await
        .unwrap();
    peer.start_audio(clips.speech.clone(), seconds)
        .await
        .unwrap();
}

/// What one of the two first participants saw.
struct Side {
    arrivals: Arrivals,
    /// The participant ids of everyone in the room at the end, by user.
    ids: HashMap<String, String>,
    call_end: CallEnd,
}

/// Moves `call` into the room once it is moving, sends there, stays
/// `IN_ROOM` and leaves.
async fn move_and_stay(
    call: ActiveCall,
    recorder: Recorder,
    clips: Arc<Clips>,
    moved: oneshot::Sender<()>,
) -> Side {
    let end = call.end_watcher();
    let mut moving = call.join_moved_room(recorder.room_options()).await.unwrap();
    let seconds = (IN_ROOM + Duration::from_secs(4)).as_secs_f64();
    send_clips(&mut moving.room().peer, &clips, seconds).await;
    let room = tokio::time::timeout(Duration::from_secs(30), moving.finish())
        .await
        .expect("the move ends within 30 s")
        .unwrap();
    let _ = moved.send(());
    stay_and_leave(room, recorder, end).await
}

async fn stay_and_leave(
    room: RoomCall,
    recorder: Recorder,
    mut end: hearth_client::call::EndWatcher,
) -> Side {
    // Note everyone seen in the room while staying, carol included, who
    // may leave first.
    let mut ids = HashMap::new();
    let mut roster = room.roster();
    let _ = tokio::time::timeout(IN_ROOM, async {
        loop {
            for participant in &roster.borrow_and_update().participants {
                ids.insert(participant.user.clone(), participant.id.to_string());
            }
            if roster.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let call_end = tokio::time::timeout(Duration::from_secs(5), end.wait())
        .await
        .expect("the one-to-one call ended");
    assert_eq!(room.leave().await, RoomEnd::Left);
    Side {
        arrivals: recorder.finish().await,
        ids,
        call_end,
    }
}

/// Starts a server with alice, bob and carol online and a group of the
/// three, created by alice.
async fn three_people() -> (
    common::TestServer,
    Vec<Session>,
    ConversationId,
    tempfile::TempDir,
) {
    let server = common::start_server().await;
    let names = ["alice", "bob", "carol"];
    for name in names {
        server.add_user(name).await;
    }
    let folder = tempfile::tempdir().unwrap();
    let mut sessions = Vec::new();
    for name in names {
        let database = folder.path().join(format!("{name}.sqlite3"));
        sessions.push(server.online_session(name, &database).await);
    }
    let group = sessions[0]
        .create_group("alice, bob, carol", &["bob".to_owned(), "carol".to_owned()])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_moves_to_room_without_losing_media() {
    let (_server, sessions, group, _folder) = three_people().await;
    let [alice, bob, carol]: [Session; 3] = sessions.try_into().ok().unwrap();
    let clips = Arc::new(Clips::load());
    let call_seconds = (BEFORE_MOVE + Duration::from_secs(30)).as_secs_f64();

    // Bob accepts the call, follows alice's move, and stays in the room.
    let bob_signal = bob.call_signal().unwrap();
    let bob_clips = clips.clone();
    let (bob_moved, _) = oneshot::channel();
    let bob_task = tokio::spawn(async move {
        let mut signal = bob_signal;
        let incoming = call::wait_for_incoming(&mut signal).await.unwrap();
        let recorder = Recorder::start();
        let mut active = call::answer_call(signal, &incoming, recorder.call_options())
            .await
            .unwrap();
        send_clips(&mut active.peer, &bob_clips, call_seconds).await;
        let mut moving = active.moving();
        let conversation =
            tokio::time::timeout(Duration::from_secs(20), moving.wait_for(Option::is_some))
                .await
                .expect("alice moves the call within 20 s")
                .unwrap()
                .expect("waited for a conversation");
        assert_eq!(conversation, group);
        let side = move_and_stay(active, recorder, bob_clips, bob_moved).await;
        bob.close().await;
        side
    });

    let recorder = Recorder::start();
    let mut active = call::place_call(alice.call_signal().unwrap(), "bob", recorder.call_options())
        .await
        .unwrap();
    send_clips(&mut active.peer, &clips, call_seconds).await;
    tokio::time::sleep(BEFORE_MOVE).await;
    active.move_to_room(group).await.unwrap();
    let (alice_moved, alice_done) = oneshot::channel();
    let alice_task = tokio::spawn(move_and_stay(active, recorder, clips.clone(), alice_moved));

    // Carol joins the room once alice is through the move.
    alice_done.await.unwrap();
    let carol_recorder = Recorder::start();
    let mut carol_room = room::join_room(
        carol.call_signal().unwrap(),
        group,
        carol_recorder.room_options(),
    )
    .await
    .unwrap();
    send_clips(&mut carol_room.peer, &clips, IN_ROOM.as_secs_f64()).await;
    carol_room.peer.wait_sent().await;
    assert_eq!(carol_room.leave().await, RoomEnd::Left);
    let carol_arrivals = carol_recorder.finish().await;

    let alice_side = alice_task.await.unwrap();
    let bob_side = bob_task.await.unwrap();
    alice.close().await;
    carol.close().await;

    let ids = &alice_side.ids;
    for (name, side, other) in [("alice", &alice_side, "bob"), ("bob", &bob_side, "alice")] {
        let other_id = &ids[other];
        let arrivals = &side.arrivals;
        let first_room = arrivals
            .first(other_id)
            .unwrap_or_else(|| panic!("{name} got no media from {other} through the room"));
        let last_p2p = arrivals
            .last("p2p")
            .unwrap_or_else(|| panic!("{name} got no media from {other} in the call"));
        println!(
            "{name}: {} video frames and {} audio chunks in the call, then {} and {} through \
             the room; the paths overlapped for {} ms; the longest audio gap was {} ms",
            arrivals.video_frames("p2p"),
            arrivals.audio_chunks("p2p"),
            arrivals.video_frames(other_id),
            arrivals.audio_chunks(other_id),
            last_p2p.saturating_duration_since(first_room).as_millis(),
            arrivals.longest_audio_gap(other_id).as_millis(),
        );
        assert!(
            first_room < last_p2p,
            "{name} still needs the call's media when the room's media from {other} starts"
        );
        assert!(
            arrivals.video_frames("p2p") >= 25 && arrivals.audio_chunks("p2p") >= 50,
            "{name} received the call's media before the move"
        );
        assert!(
            side.call_end == CallEnd::LocalHangUp || side.call_end == CallEnd::RemoteHangUp,
            "{name}'s call ended by {:?}",
            side.call_end
        );
        assert_eq!(side.ids.len(), 3, "{name} saw everyone in the room");
    }
    // Everyone decodes everyone through the room, carol included, for at
    // least a second of video and audio.
    let everyone = [
        ("alice", &alice_side.arrivals),
        ("bob", &bob_side.arrivals),
        ("carol", &carol_arrivals),
    ];
    for (name, arrivals) in everyone {
        for (other, other_id) in ids.iter().filter(|(user, _)| *user != name) {
            let frames = arrivals.video_frames(other_id);
            let chunks = arrivals.audio_chunks(other_id);
            assert!(
                frames >= 25 && chunks >= 50,
                "{name} decoded {frames} video frames and {chunks} audio chunks from {other} \
                 through the room"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_moves_only_where_both_are_members() {
    let (server, sessions, group, _folder) = three_people().await;
    let [alice, _bob, carol]: [Session; 3] = sessions.try_into().ok().unwrap();
    server.add_user("dave").await;
    let folder = tempfile::tempdir().unwrap();
    let dave = server
        .online_session("dave", &folder.path().join("dave.sqlite3"))
        .await;

    // Dave calls carol; carol is in the group, dave is not.
    let carol_signal = carol.call_signal().unwrap();
    let callee = tokio::spawn(async move {
        let mut signal = carol_signal;
        let incoming = call::wait_for_incoming(&mut signal).await.unwrap();
        let recorder = Recorder::start();
        let mut active = call::answer_call(signal, &incoming, recorder.call_options())
            .await
            .unwrap();
        let refused = active.move_to_room(group).await.unwrap_err();
        let end = active.ended().await;
        (refused, end, active.moving().borrow().is_some())
    });
    let recorder = Recorder::start();
    let active = call::place_call(
        dave.call_signal().unwrap(),
        "carol",
        recorder.call_options(),
    )
    .await
    .unwrap();
    let stranger = active.move_to_room(group).await.unwrap_err();
    assert!(
        matches!(
            &stranger,
            ClientError::Server {
                code: ErrorCode::NotMember,
                ..
            }
        ),
        "{stranger:?}"
    );
    // Give carol's request time to be refused before the call ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    active.hang_up().await.unwrap();
    let (refused, end, moving) = callee.await.unwrap();
    let ClientError::Server { code, message } = &refused else {
        panic!("carol's move was refused with {refused:?}");
    };
    assert_eq!(*code, ErrorCode::NotMember);
    assert!(message.starts_with("dave is not a member"), "{message}");
    assert_eq!(end, CallEnd::RemoteHangUp);
    assert!(!moving, "a refused move leaves the call where it is");
    drop(alice);
}
