//! `hearth room`: take part in a conversation's group call with files as
//! camera and microphone, optionally sharing a screen or window, and report
//! what arrived from each participant.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use hearth_client::room::{self, RoomEnd, RoomOptions};
use hearth_media::screen::{ScreenCapture, SourceId};
use hearth_media::{
    PeerConfig, RemoteSinks, ScreenSendConfig, SendMedia, StreamSinks, live::DEFAULT_SCREEN_FPS,
};
use hearth_proto::RoomView;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::auth::SessionArgs;
use crate::media_files;

#[derive(Args)]
pub struct RoomArgs {
    /// The group conversation, by name or id.
    conversation: String,
    /// Video file: Annex B H.264 (.264) or Y4M (.y4m).
    #[arg(long)]
    video: PathBuf,
    /// Speech file: WAV at any common sample rate.
    #[arg(long)]
    audio: PathBuf,
    /// How long to send, in seconds; the clips loop.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Video codecs to offer the SFU, most preferred first, separated by
    /// commas: h264 and vp8.
    #[arg(long, value_delimiter = ',', default_value = "h264,vp8")]
    codec: Vec<hearth_media::VideoCodec>,
    /// Video bitrate in kbit/s, for all simulcast layers together.
    #[arg(long, default_value_t = 1000)]
    kbps: u32,
    /// Send three simulcast layers (full, half and quarter size).
    #[arg(long)]
    simulcast: bool,
    /// Start sending once this many participants, this one included, are in
    /// the call.
    #[arg(long, default_value_t = 1)]
    wait_for: usize,
    /// Show every other participant at this size, as WIDTHxHEIGHT; the
    /// server then forwards no larger simulcast layer.
    #[arg(long, value_parser = parse_size)]
    view: Option<(u32, u32)>,
    /// Maximum video bitrate to receive, all participants together, in
    /// kbit/s, as on a metered link; the server then forwards lower layers
    /// or frame rates.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    max_video_kbps: Option<u32>,
    /// Share this screen or window while sending, by its id from `hearth
    /// screens`, such as screen:0 or window:0x1a00003.
    #[arg(long, value_name = "SOURCE")]
    share_screen: Option<String>,
    /// Frame rate of the screen share, in frames per second.
    #[arg(long, default_value_t = DEFAULT_SCREEN_FPS)]
    screen_fps: f64,
    /// Bitrate of the screen share, in kbit/s.
    #[arg(long, default_value_t = hearth_media::live::DEFAULT_SCREEN_BITRATE_BPS / 1000)]
    screen_kbps: u32,
    /// Local UDP address for media; by default every interface.
    #[arg(long)]
    media_addr: Option<SocketAddr>,
    /// Print the report as one JSON object instead of lines of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    session: SessionArgs,
}

/// What arrived from one other participant.
#[derive(Debug, Default, Serialize)]
struct FromParticipant {
    user: String,
    video_frames: u64,
    /// Size of the last decoded frame.
    last_width: usize,
    last_height: usize,
    /// Decoded frames by width, from which the simulcast layers received
    /// can be read.
    frames_by_width: BTreeMap<usize, u64>,
    /// For each whole second since this device started sending, the width
    /// most of that second's frames had, or 0 for a second without frames:
    /// when the layer changed.
    width_by_second: Vec<usize>,
    #[serde(skip)]
    second_widths: Vec<BTreeMap<usize, u64>>,
    audio_seconds: f64,
    /// Screen share pictures decoded, and the size of the last one.
    screen_frames: u64,
    screen_width: usize,
    screen_height: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    participant_id: u64,
    /// Keyed by participant id.
    received: BTreeMap<u64, FromParticipant>,
}

fn parse_size(value: &str) -> Result<(u32, u32), String> {
    let invalid = || format!("invalid size {value:?}: expected WIDTHxHEIGHT such as 320x180");
    let (width, height) = value.split_once('x').ok_or_else(invalid)?;
    let width: u32 = width.parse().map_err(|_| invalid())?;
    let height: u32 = height.parse().map_err(|_| invalid())?;
    if width == 0 || height == 0 {
        return Err(invalid());
    }
    Ok((width, height))
}

pub async fn run(args: RoomArgs) -> anyhow::Result<()> {
    media_files::check_stream_options(args.seconds, args.kbps)?;
    if args.wait_for == 0 {
        bail!("--wait-for 0 is not a number of participants; use 1 to start at once");
    }
    if args.share_screen.is_some() && args.screen_kbps == 0 {
        bail!("--screen-kbps 0 sends nothing; use a bitrate such as 2500");
    }
    let media = media_files::load(&args.video, &args.audio)?;
    let capture = match &args.share_screen {
        Some(source) => Some(start_capture(source, args.screen_fps)?),
        None => None,
    };
    let session = crate::chat::open_online(&args.session).await?;
    let result = take_part(&session, &args, media, capture.as_ref()).await;
    session.close().await;
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for (id, from) in &report.received {
            println!(
                "from {} ({id}): {} video frames, last {}x{}, {:.1} s of audio, \
                 {} screen share frames, last {}x{}",
                from.user,
                from.video_frames,
                from.last_width,
                from.last_height,
                from.audio_seconds,
                from.screen_frames,
                from.screen_width,
                from.screen_height
            );
        }
    }
    Ok(())
}

/// Starts capturing the source to share, so that a bad id fails before
/// joining.
fn start_capture(source: &str, fps: f64) -> anyhow::Result<ScreenCapture> {
    let id: SourceId = source.parse()?;
    ScreenCapture::start(id, fps)
        .with_context(|| format!("cannot share {source}; run `hearth screens` to list the sources"))
}

async fn take_part(
    session: &hearth_client::session::Session,
    args: &RoomArgs,
    media: media_files::CallMedia,
    capture: Option<&ScreenCapture>,
) -> anyhow::Result<Report> {
    let conversation_id = session.resolve_conversation(&args.conversation).await?;
    let (video_tx, mut video_rx) = mpsc::channel(512);
    let (audio_tx, mut audio_rx) = mpsc::channel(2048);
    let (screen_tx, mut screen_rx) = mpsc::channel(256);
    let mut peer = PeerConfig {
        simulcast: args.simulcast,
        video_codecs: args.codec.clone(),
        screen_track: true,
        ..PeerConfig::default()
    };
    if let Some(addr) = args.media_addr {
        peer.udp_addrs = vec![addr];
    }
    let options = RoomOptions {
        peer,
        send: SendMedia {
            video: true,
            audio: true,
        },
        sinks: RemoteSinks {
            streams: Some(StreamSinks {
                video: video_tx,
                audio: audio_tx,
                screen: Some(screen_tx),
            }),
            ..RemoteSinks::default()
        },
    };
    let mut call = room::join_room(session.call_signal()?, conversation_id, options)
        .await
        .context("cannot join the call")?;
    let me = call.participant_id;
    eprintln!("joined the call as participant {me}");
    let mut roster = call.roster();
    roster
        .wait_for(|r| r.participants.len() >= args.wait_for)
        .await
        .context("the call ended while waiting for the others")?;
    // Participants may leave before the report, so their names are taken now.
    let names: BTreeMap<u64, String> = roster
        .borrow()
        .participants
        .iter()
        .map(|p| (p.id, p.user.clone()))
        .collect();
    if let Some((width, height)) = args.view {
        let views = roster
            .borrow()
            .participants
            .iter()
            .filter(|p| p.id != me)
            .map(|p| RoomView {
                participant_id: p.id,
                width,
                height,
            })
            .collect();
        call.set_views(views);
    }
    if let Some(kbps) = args.max_video_kbps {
        call.set_video_limit(Some(kbps * 1000));
    }
    let size = (media.video.width() as u32, media.video.height() as u32);
    call.set_media(false, false, Some(size));
    call.peer
        .start_video(media.video.clone(), args.seconds, args.kbps * 1000)
        .await?;
    call.peer
        .start_audio(media.audio.clone(), args.seconds)
        .await?;
    if let Some(capture) = capture {
        let config = ScreenSendConfig {
            bitrate_bps: args.screen_kbps * 1000,
            max_fps: args.screen_fps,
        };
        call.start_screen_share(capture.frames(), config).await?;
        eprintln!("sharing {}", capture.source());
    }

    let mut received: BTreeMap<u64, FromParticipant> = BTreeMap::new();
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds + 1.0);
    let early_end = loop {
        tokio::select! {
            Some((stream, video)) = video_rx.recv() => {
                if let Ok(id) = stream.parse::<u64>() {
                    let from = received.entry(id).or_default();
                    from.video_frames += 1;
                    from.last_width = video.frame.width;
                    from.last_height = video.frame.height;
                    *from.frames_by_width.entry(video.frame.width).or_default() += 1;
                    let second = started.elapsed().as_secs() as usize;
                    if from.second_widths.len() <= second {
                        from.second_widths.resize_with(second + 1, BTreeMap::new);
                    }
                    *from.second_widths[second].entry(video.frame.width).or_default() += 1;
                }
            }
            Some((stream, screen)) = screen_rx.recv() => {
                if let Ok(id) = stream.parse::<u64>() {
                    let from = received.entry(id).or_default();
                    from.screen_frames += 1;
                    from.screen_width = screen.frame.width;
                    from.screen_height = screen.frame.height;
                }
            }
            Some((stream, audio)) = audio_rx.recv() => {
                if let Ok(id) = stream.parse::<u64>() {
                    received.entry(id).or_default().audio_seconds += audio.samples.len() as f64 / 48_000.0;
                }
            }
            end = call.ended() => break Some(end),
            () = tokio::time::sleep_until(deadline) => break None,
        }
    };
    for participant in &roster.borrow().participants {
        if let Some(from) = received.get_mut(&participant.id) {
            from.user = participant.user.clone();
        }
    }
    for from in received.values_mut() {
        from.width_by_second = from
            .second_widths
            .iter()
            .map(|widths| {
                widths
                    .iter()
                    .max_by_key(|(_, frames)| **frames)
                    .map_or(0, |(width, _)| *width)
            })
            .collect();
    }
    for (id, from) in &mut received {
        if from.user.is_empty()
            && let Some(name) = names.get(id)
        {
            from.user = name.clone();
        }
    }
    match early_end {
        Some(RoomEnd::Removed(reason)) => bail!("removed from the call: {reason}"),
        Some(RoomEnd::MediaFailed) => bail!("the media connection to the server failed"),
        Some(RoomEnd::SignalLost) => bail!("the connection to the server was lost"),
        Some(RoomEnd::Left) | None => {
            call.leave().await;
        }
    }
    Ok(Report {
        participant_id: me,
        received,
    })
}
