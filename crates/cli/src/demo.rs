//! `hearth demo`: an embedded server, two users, one call on real media, and a
//! report of what the callee received.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hearth_client::ServerEndpoint;
use hearth_client::call::{self, CallEnd, CallOptions};
use hearth_client::signal::SignalConnection;
use hearth_media::{PeerConfig, SendMedia, VideoCodec};

use crate::media_files;
use crate::report::{self, Received, Recorder, Sent};

#[derive(Args)]
pub struct DemoArgs {
    /// Video file (.264 Annex B or .y4m); defaults to the foreman clip.
    #[arg(long)]
    video: Option<PathBuf>,
    /// Speech file (.wav); defaults to the LibriVox recording.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Call length in seconds; the clips loop.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 1000)]
    kbps: u32,
    /// Video codec both users prefer: h264 or vp8. The other codec stays
    /// available as the second choice.
    #[arg(long, default_value = "h264")]
    codec: VideoCodec,
    /// Folder for report.json, video.y4m and audio.wav.
    #[arg(long, default_value = "hearth-demo")]
    out: PathBuf,
}

const CALLER: &str = "alice";
const CALLEE: &str = "bob";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    media_files::check_stream_options(args.seconds, args.kbps)?;
    report::check_output_dir(&args.out)?;
    let (video_path, audio_path) = match (args.video.clone(), args.audio.clone()) {
        (Some(video), Some(audio)) => (video, audio),
        (video, audio) => {
            let (default_video, default_audio) = media_files::default_media()?;
            (
                video.unwrap_or(default_video),
                audio.unwrap_or(default_audio),
            )
        }
    };
    let media = media_files::load(&video_path, &audio_path)?;
    println!(
        "video {} ({}x{}, {} frames at {} fps), speech {} ({:.1} s)",
        video_path.display(),
        media.video.width(),
        media.video.height(),
        media.video.frames.len(),
        media.video.fps,
        audio_path.display(),
        media.audio.samples.len() as f64 / 48_000.0
    );

    let data_dir = tempfile::tempdir().context("cannot create a temporary data folder")?;
    let server = hearth_server::start(hearth_server::Config {
        data_dir: data_dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().expect("a valid socket address"),
        ..Default::default()
    })
    .await
    .context("cannot start the embedded server")?;
    println!("embedded server at {}", server.base_url());

    let endpoint = ServerEndpoint::new(&server.base_url(), Some(server.certificate_pem()))?;
    let caller = sign_in(&server, &endpoint, CALLER).await?;
    let callee = sign_in(&server, &endpoint, CALLEE).await?;

    let out = args.out.clone();
    let codec = args.codec;
    let mut callee_task = tokio::spawn(async move { run_callee(callee, out, codec).await });

    let options = CallOptions {
        peer: loopback_peer(codec),
        send: SendMedia {
            video: true,
            audio: true,
        },
        ..Default::default()
    };
    // A callee that fails during setup must end the demo at once, not after
    // the caller's ring timeout.
    let mut active = tokio::select! {
        placed = call::place_call(caller, CALLEE, options) => placed?,
        finished = &mut callee_task => {
            finished.context("the callee task failed")??;
            anyhow::bail!("the callee ended before the call was set up");
        }
    };
    let video = active
        .peer
        .start_video(Arc::clone(&media.video), args.seconds, args.kbps * 1000)
        .await?;
    let audio = active
        .peer
        .start_audio(Arc::clone(&media.audio), args.seconds)
        .await?;
    active.peer.wait_sent().await;
    // Let the last packets arrive before hanging up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_stats = active.peer.stats();
    active.hang_up().await?;

    let received = callee_task.await.context("the callee task failed")??;
    server.shutdown().await;

    let sent = Sent {
        video_file: &video_path,
        audio_file: &audio_path,
        clip: &media.video,
        speech: &media.audio,
        video,
        audio,
        stats: sent_stats,
        seconds: args.seconds,
        target_video_kbps: args.kbps,
    };
    let report = report::build(&sent, &received)?;
    let report_path = args.out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    print_summary(&report);
    println!("report: {}", report_path.display());
    Ok(())
}

async fn sign_in(
    server: &hearth_server::RunningServer,
    endpoint: &ServerEndpoint,
    user: &str,
) -> anyhow::Result<SignalConnection> {
    let password = random_password();
    server
        .add_user(user, &password)
        .await
        .with_context(|| format!("cannot create the demo user {user}"))?;
    let tokens = hearth_client::auth::sign_in_with_password(endpoint, user, &password).await?;
    Ok(SignalConnection::connect(endpoint, &tokens.access_token).await?)
}

async fn run_callee(
    mut signal: SignalConnection,
    out: PathBuf,
    codec: VideoCodec,
) -> anyhow::Result<Received> {
    let incoming = call::wait_for_incoming(&mut signal).await?;
    let (sinks, recorder) = Recorder::start(&out);
    let options = CallOptions {
        peer: loopback_peer(codec),
        sinks,
        ..Default::default()
    };
    let mut active = call::answer_call(signal, &incoming, options).await?;
    let end = active.ended().await;
    if end != CallEnd::RemoteHangUp {
        tracing::warn!(?end, "the demo call ended unexpectedly");
    }
    let stats = active.peer.stats();
    let first_frame_at = active.peer.counters().first_video_frame_at();
    let accepted_at = active.accepted_at;
    active.peer.close().await;
    let recording = recorder.finish().await?;
    Ok(Received {
        accepted_at,
        first_frame_at,
        stats,
        recording,
    })
}

/// Both demo peers run on this machine, so loopback candidates are enough.
/// `codec` comes first in the video codec order.
fn loopback_peer(codec: VideoCodec) -> PeerConfig {
    let mut video_codecs = vec![codec];
    video_codecs.extend(VideoCodec::ALL.into_iter().filter(|other| *other != codec));
    PeerConfig {
        udp_addrs: vec!["127.0.0.1:0".parse().expect("a valid socket address")],
        video_codecs,
        ..Default::default()
    }
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn print_summary(report: &report::CallReport) {
    println!("video_codec     {}", report.video_codec);
    println!("setup_ms        {:.0}", report.setup_ms);
    println!(
        "frames          {} sent, {} decoded ({:.1} %)",
        report.frames_sent,
        report.frames_decoded,
        report.decoded_ratio * 100.0
    );
    println!(
        "psnr_db_mean    {:.2} (min {:.2})",
        report.psnr_db_mean, report.psnr_db_min
    );
    println!(
        "video_kbps      {:.0} (target {})",
        report.video_kbps, report.target_video_kbps
    );
    println!("audio_kbps      {:.1}", report.audio_kbps);
    println!(
        "audio_ms        {:.0} sent, {:.0} received",
        report.audio_ms_sent, report.audio_ms_received
    );
    match report.audio_delay_ms {
        Some(delay) => println!(
            "audio_delay_ms  {delay:.1} (correlation {:.3})",
            report.audio_correlation.unwrap_or_default()
        ),
        None => println!("audio_delay_ms  not measured: no speech arrived"),
    }
}
