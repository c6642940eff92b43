//! `hearth answer` when the caller moves the call into a group call: follow
//! it there, receive the caller and the others, and report what arrived.

use std::collections::HashMap;

use hearth_client::call::ActiveCall;
use hearth_client::room::RoomOptions;
use hearth_media::{RemoteSinks, SendMedia, StreamSinks};
use tokio::sync::mpsc;

/// Counts of the media that arrived through the group call from one participant.
#[derive(Debug, Default)]
pub struct Arrived {
    pub video_frames: usize,
    pub audio_samples: usize,
}

/// Follows `call` into its group call, receives until the caller leaves it
/// or Ctrl-C, leaves, and returns what arrived from each user.
pub async fn follow(call: ActiveCall) -> anyhow::Result<HashMap<String, Arrived>> {
    let caller = call.remote_user.clone();
    let (video_tx, mut video_rx) = mpsc::channel(512);
    let (audio_tx, mut audio_rx) = mpsc::channel(2048);
    let options = RoomOptions {
        // `answer` sends nothing. The audio section gives the offer a media
        // section, and the roster marks this device as muted.
        send: SendMedia {
            video: false,
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
        ..RoomOptions::default()
    };
    let mut moving = call.join_moved_room(options).await?;
    moving.room().set_media(true, true, None);
    let mut room = moving.finish().await?;
    println!(
        "the call moved into the group call of conversation {}",
        room.conversation_id
    );

    let mut roster = room.roster();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut by_stream: HashMap<String, Arrived> = HashMap::new();
    let end = loop {
        for participant in &roster.borrow_and_update().participants {
            names.insert(participant.id.to_string(), participant.user.clone());
        }
        if !roster
            .borrow()
            .participants
            .iter()
            .any(|p| p.user == caller)
        {
            println!("{caller} left the group call");
            break None;
        }
        tokio::select! {
            changed = roster.changed() => if changed.is_err() { break None },
            Some((stream, _)) = video_rx.recv() => {
                by_stream.entry(stream).or_default().video_frames += 1;
            }
            Some((stream, audio)) = audio_rx.recv() => {
                let audio: hearth_media::receive::DecodedAudio = audio;
                by_stream.entry(stream).or_default().audio_samples += audio.samples.len();
            }
            end = room.ended() => break Some(end),
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted; leaving the group call");
                break None;
            }
        }
    };
    if let Some(end) = end {
        room.peer.close().await;
        anyhow::bail!("the group call ended for this device: {end:?}");
    }
    room.leave().await;
    Ok(by_stream
        .into_iter()
        .map(|(stream, arrived)| (names.get(&stream).cloned().unwrap_or(stream), arrived))
        .collect())
}
