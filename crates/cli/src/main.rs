//! `hearth`: the headless Hearth client. Signs in, places and answers calls
//! with media from files, and runs `hearth demo`, a complete call between two
//! users on an embedded server with a quality report.

mod auth;
mod chat;
mod demo;
mod guest;
mod media_files;
mod moved;
mod report;
mod room;
mod screens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hearth_client::ClientError;
use hearth_client::call::CallEnd;
use hearth_proto::ErrorCode;

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Headless Hearth client: sign in, call, answer, demo"
)]
struct Cli {
    /// Log filter, for example `info` or `hearth_client=debug`.
    #[arg(
        long,
        global = true,
        env = "HEARTH_LOG",
        default_value = "warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error"
    )]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in through the browser (or with --password) and keep the refresh
    /// token in the OS keyring.
    Login(auth::LoginArgs),
    /// Sign out: revoke the session at the server and delete it from the keyring.
    Logout,
    /// Call a user and stream a video and a speech file.
    Call(CallArgs),
    /// Wait for a call, accept it and record what arrives. When the caller
    /// moves the call into a group call, follow it there.
    Answer(AnswerArgs),
    /// Run a call between two users on an embedded server and report its quality.
    Demo(demo::DemoArgs),
    /// Read and send chat messages, manage conversations, watch for events.
    Chat(chat::ChatArgs),
    /// Join a conversation's group call, stream a video and a speech file
    /// and report what arrived from each participant.
    Room(room::RoomArgs),
    /// Print a link that lets someone without an account join a
    /// conversation's group call from a browser, or revoke one.
    GuestLink(guest::GuestLinkArgs),
    /// List the screens and windows that `room --share-screen` can share.
    Screens(screens::ScreensArgs),
}

#[derive(Args)]
struct CallArgs {
    /// User name to call.
    callee: String,
    /// Video file: Annex B H.264 (.264) or Y4M (.y4m).
    #[arg(long)]
    video: PathBuf,
    /// Speech file: WAV at any common sample rate.
    #[arg(long)]
    audio: PathBuf,
    /// How long to stream, in seconds; the clips loop.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 1000)]
    kbps: u32,
    /// Noise suppression for the speech file, as a call applies it to a
    /// microphone, together with automatic gain control: rnnoise or apm.
    /// `off` sends the file unchanged.
    #[arg(long, default_value = "off", value_parser = ["off", "rnnoise", "apm"])]
    noise_suppression: String,
    /// Video codecs to offer, most preferred first, separated by commas:
    /// h264 and vp8. The call uses the first one the callee accepts.
    #[arg(long, value_delimiter = ',', default_value = "h264,vp8")]
    codec: Vec<hearth_media::VideoCodec>,
    #[command(flatten)]
    session: auth::SessionArgs,
}

#[derive(Args)]
struct AnswerArgs {
    /// Folder for video.y4m and audio.wav; created if missing.
    #[arg(long)]
    record: PathBuf,
    #[command(flatten)]
    session: auth::SessionArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Login(args) => auth::login(args).await,
            Command::Logout => auth::logout().await,
            Command::Call(args) => call(args).await,
            Command::Answer(args) => answer(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Room(args) => room::run(args).await,
            Command::GuestLink(args) => guest::run(args).await,
            Command::Screens(args) => screens::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "error: {}",
                hearth_client::error::join_sources(err.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Fails a command whose call ended other than by a hang-up.
fn check_call_end(end: &CallEnd) -> anyhow::Result<()> {
    match end {
        CallEnd::RemoteHangUp | CallEnd::LocalHangUp => Ok(()),
        CallEnd::MediaFailed => anyhow::bail!("the call failed: the media connection was lost"),
        CallEnd::SignalLost => {
            anyhow::bail!("the call failed: the connection to the server was lost")
        }
    }
}

async fn call(args: CallArgs) -> anyhow::Result<()> {
    media_files::check_stream_options(args.seconds, args.kbps)?;
    let mut media = media_files::load(&args.video, &args.audio)?;
    media.audio = media_files::process_speech(&media.audio, &args.noise_suppression)?;
    let session = auth::open_session(&args.session).await?;
    let options = hearth_client::call::CallOptions {
        peer: hearth_media::PeerConfig {
            video_codecs: args.codec.clone(),
            ..Default::default()
        },
        send: hearth_media::SendMedia {
            video: true,
            audio: true,
        },
        ..Default::default()
    };
    let mut call = hearth_client::call::place_call(session.signal, &args.callee, options)
        .await
        .map_err(|err| call_error(&args.callee, err))?;
    println!("connected to {}", call.remote_user);

    let video = call
        .peer
        .start_video(media.video, args.seconds, args.kbps * 1000)
        .await?;
    call.peer.start_audio(media.audio, args.seconds).await?;
    let mut end_watcher = call.end_watcher();
    let early_end = tokio::select! {
        () = call.peer.wait_sent() => None,
        end = end_watcher.wait() => {
            println!("call ended early: {end}");
            Some(end)
        }
    };
    let stats = call.peer.stats();
    println!(
        "sent {} {} video frames ({} keyframes, {} keyframe requests), {} audio packets; rtp timestamp base {}",
        stats.video_frames_sent,
        video.codec,
        stats.video_keyframes_sent,
        stats.keyframe_requests_received,
        stats.audio_packets_sent,
        video.rtp_timestamp_base
    );
    match early_end {
        Some(end) => check_call_end(&end),
        None => {
            call.hang_up().await?;
            Ok(())
        }
    }
}

/// Adds what to do next when the callee does not exist or is not connected.
fn call_error(callee: &str, err: ClientError) -> anyhow::Error {
    let hint = match &err {
        ClientError::Server {
            code: ErrorCode::UserNotFound,
            ..
        } => "check the user name".to_owned(),
        ClientError::Server {
            code: ErrorCode::UserOffline,
            ..
        } => {
            format!(
                "{callee} must be signed in, for example with `hearth answer`, before you call again"
            )
        }
        _ => return err.into(),
    };
    anyhow::anyhow!("cannot call {callee}: {err}; {hint}")
}

async fn answer(args: AnswerArgs) -> anyhow::Result<()> {
    // A folder that cannot take the recording must fail before a call is accepted.
    report::check_output_dir(&args.record)?;
    let mut session = auth::open_session(&args.session).await?;
    println!("signed in as {}; waiting for a call", session.signal.user());
    let incoming = hearth_client::call::wait_for_incoming(&mut session.signal).await?;
    println!("call from {}", incoming.caller);

    let (sinks, recorder) = report::Recorder::start(&args.record);
    let options = hearth_client::call::CallOptions {
        sinks,
        ..Default::default()
    };
    let call = hearth_client::call::answer_call(session.signal, &incoming, options).await?;
    let mut end_watcher = call.end_watcher();
    let mut moving = call.moving();
    let interrupted = tokio::select! {
        end = end_watcher.wait() => {
            println!("call ended: {end}");
            Some(end)
        }
        Ok(_) = moving.wait_for(Option::is_some) => Some(CallEnd::RemoteHangUp),
        _ = tokio::signal::ctrl_c() => {
            println!("interrupted; hanging up");
            None
        }
    };
    let stats = call.peer.stats();
    let first_frame = stats_first_frame(&call);
    let moved = call.moving().borrow().is_some();
    match interrupted {
        _ if moved => {
            for (user, arrived) in moved::follow(call).await? {
                println!(
                    "from {user} through the group call: {} video frames, {:.1} s of audio",
                    arrived.video_frames,
                    arrived.audio_samples as f64 / 48_000.0
                );
            }
        }
        Some(_) => call.peer.close().await,
        None => {
            call.hang_up().await?;
        }
    }
    let summary = recorder.finish().await?;
    if let Some(setup) = first_frame {
        println!("first video frame {} ms after accepting", setup.as_millis());
    }
    println!(
        "decoded {} video frames ({} bytes), received {:.1} s of audio; recorded to {}",
        stats.video_frames_decoded,
        stats.video_bytes_received,
        summary.audio.len() as f64 / 48_000.0,
        args.record.display()
    );
    match interrupted {
        Some(end) => check_call_end(&end),
        None => Ok(()),
    }
}

fn stats_first_frame(call: &hearth_client::call::ActiveCall) -> Option<std::time::Duration> {
    call.peer
        .counters()
        .first_video_frame_at()
        .map(|at| at.saturating_duration_since(call.accepted_at))
}
