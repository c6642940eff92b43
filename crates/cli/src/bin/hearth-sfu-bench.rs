//! Measures what the SFU of one `hearth-server` process costs per forwarded
//! stream.
//!
//! For each group size it starts the `hearth-server` binary found beside this
//! one on loopback, signs the participants in, puts them in one group
//! conversation and has every participant join its call and send the foreman
//! clip (H.264) and speech (Opus). Every participant receives every other
//! one, so `n` participants make `n * (n - 1)` forwarded streams, each an
//! audio and video pair as Jitsi's published figures count them. Over a
//! steady window it records the server process's CPU time from /proc, the
//! packets that reached the receivers, and the frames decoded against the
//! frames sent, which shows whether the load was loss-free.
//!
//! The participants run in this process and decode everything, so on a small
//! machine they, not the SFU, limit the load; the table gives the SFU's cost
//! per stream at the load reached, not its ceiling.
//!
//! Prints a Markdown table.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use hearth_client::ServerEndpoint;
use hearth_client::room::{self, RoomCall, RoomOptions};
use hearth_client::session::{ConnectionState, Credentials, Session, SessionConfig};
use hearth_media::{PeerConfig, SendMedia};

#[derive(Parser, Debug)]
#[command(about = "Measure the CPU that hearth-server's SFU spends per forwarded stream")]
struct Args {
    /// Group sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "3,4,5,6")]
    participants: Vec<usize>,
    /// Length of the measured window in seconds, after 4 s of warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Video bitrate of each participant in kbit/s.
    #[arg(long, default_value_t = 300)]
    kbps: u32,
    /// The folder with video/BA1_FT_C.264 and speech/*.wav.
    #[arg(long, env = "HEARTH_MEDIA_DIR", default_value = "../shared/media")]
    media_dir: PathBuf,
    /// The `hearth-server` binary; by default the one beside this program.
    #[arg(long)]
    server_binary: Option<PathBuf>,
}

const WARM_UP: Duration = Duration::from_secs(4);

/// One measured group size.
struct Row {
    participants: usize,
    streams: usize,
    packets_per_second: f64,
    server_cores: f64,
    frames_delivered: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server_binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("hearth-server"),
    };
    if !server_binary.exists() {
        bail!(
            "{} not found; build it with `cargo build --release -p hearth-server` or pass --server-binary",
            server_binary.display()
        );
    }
    let clip = Arc::new(
        hearth_media::source::load_video(&args.media_dir.join("video/BA1_FT_C.264"))
            .context("cannot load the foreman clip; pass --media-dir")?,
    );
    let speech = Arc::new(hearth_media::source::wav::load(
        &args
            .media_dir
            .join("speech/librivox_sense_and_sensibility_0870.wav"),
    )?);
    let mut rows = Vec::new();
    for &participants in &args.participants {
        if participants < 2 {
            bail!("a group of {participants} forwards nothing; measure 2 or more participants");
        }
        eprintln!("measuring {participants} participants");
        let row = runtime.block_on(measure(
            &args,
            &server_binary,
            participants,
            clip.clone(),
            speech.clone(),
        ))?;
        rows.push(row);
    }
    print_table(&args, &rows);
    Ok(())
}

fn print_table(args: &Args, rows: &[Row]) {
    println!(
        "| participants | forwarded streams (audio+video pairs) | packets/s forwarded | SFU CPU (cores) | CPU per stream (% of a core) | streams per core | frames delivered |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let per_stream = row.server_cores / row.streams as f64;
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.2} | {:.0} | {:.1} % |",
            row.participants,
            row.streams,
            row.packets_per_second,
            row.server_cores,
            per_stream * 100.0,
            1.0 / per_stream,
            row.frames_delivered * 100.0
        );
    }
    println!(
        "\nEach participant sends the foreman clip (CIF) in H.264 at {} kbit/s, and Opus; the window is {} s after {} s of warm-up.",
        args.kbps,
        args.seconds,
        WARM_UP.as_secs()
    );
}

async fn measure(
    args: &Args,
    server_binary: &Path,
    participants: usize,
    clip: Arc<hearth_media::source::VideoClip>,
    speech: Arc<hearth_media::source::wav::AudioClip>,
) -> anyhow::Result<Row> {
    let folder = tempfile::tempdir()?;
    let names: Vec<String> = (0..participants).map(|i| format!("bench{i}")).collect();
    for name in &names {
        add_user(server_binary, folder.path(), name)?;
    }
    let mut server = ServerProcess::start(server_binary, folder.path())?;
    let pem = std::fs::read_to_string(folder.path().join("tls/cert.pem"))?;
    let endpoint = ServerEndpoint::new(&server.url, Some(&pem))?;

    let mut sessions = Vec::new();
    for name in &names {
        let tokens = hearth_client::auth::sign_in_with_password(
            &endpoint,
            name,
            &format!("{name}-password"),
        )
        .await?;
        let session = Session::start(SessionConfig {
            server: endpoint.clone(),
            user: name.clone(),
            credentials: Credentials::Tokens(tokens),
            keyring: None,
            database: folder.path().join(format!("{name}.sqlite3")),
        })?;
        let state = session.wait_settled(Duration::from_secs(10)).await;
        if state != ConnectionState::Online {
            bail!("{name} did not come online: {state:?}");
        }
        sessions.push(session);
    }
    let group = sessions[0].create_group("bench", &names[1..]).await?;
    for session in &sessions {
        let deadline = Instant::now() + Duration::from_secs(10);
        while session.conversation(group.id).is_err() {
            if Instant::now() > deadline {
                bail!("{} never saw the group", session.user());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut calls: Vec<RoomCall> = Vec::new();
    for session in &sessions {
        let options = RoomOptions {
            peer: PeerConfig {
                udp_addrs: vec!["127.0.0.1:0".parse()?],
                ..PeerConfig::default()
            },
            send: SendMedia {
                video: true,
                audio: true,
            },
            ..RoomOptions::default()
        };
        calls.push(room::join_room(session.call_signal()?, group.id, options).await?);
    }
    for call in &calls {
        let mut roster = call.roster();
        tokio::time::timeout(
            Duration::from_secs(20),
            roster.wait_for(|r| r.participants.len() == participants),
        )
        .await
        .context("not everyone joined within 20 s")??;
    }
    let send_seconds = (WARM_UP + Duration::from_secs(args.seconds + 2)).as_secs_f64();
    for call in &mut calls {
        call.peer
            .start_video(clip.clone(), send_seconds, args.kbps * 1000)
            .await?;
        call.peer.start_audio(speech.clone(), send_seconds).await?;
    }
    tokio::time::sleep(WARM_UP).await;
    let before = Sample::take(&server, &calls)?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = Sample::take(&server, &calls)?;

    let elapsed = after.at.duration_since(before.at).as_secs_f64();
    let frames_sent = (after.frames_sent - before.frames_sent) as f64;
    let frames_expected = frames_sent * (participants - 1) as f64;
    let row = Row {
        participants,
        streams: participants * (participants - 1),
        packets_per_second: (after.packets_received - before.packets_received) as f64 / elapsed,
        server_cores: (after.server_cpu - before.server_cpu).as_secs_f64() / elapsed,
        frames_delivered: (after.frames_decoded - before.frames_decoded) as f64
            / frames_expected.max(1.0),
    };
    for call in calls {
        call.leave().await;
    }
    for session in sessions {
        session.close().await;
    }
    server.stop();
    Ok(row)
}

/// Counters at one instant.
struct Sample {
    at: Instant,
    server_cpu: Duration,
    frames_sent: u64,
    frames_decoded: u64,
    packets_received: u64,
}

impl Sample {
    fn take(server: &ServerProcess, calls: &[RoomCall]) -> anyhow::Result<Self> {
        let mut sample = Self {
            at: Instant::now(),
            server_cpu: process_cpu(server.child.id())?,
            frames_sent: 0,
            frames_decoded: 0,
            packets_received: 0,
        };
        for call in calls {
            let stats = call.peer.stats();
            sample.frames_sent += stats.video_frames_sent;
            sample.frames_decoded += stats.video_frames_decoded;
            sample.packets_received += stats.video_packets_received + stats.audio_packets_received;
        }
        Ok(sample)
    }
}

/// Returns the user and system CPU time a process used so far, from
/// /proc/PID/stat, whose fields 14 and 15 count clock ticks.
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat; this bench needs Linux"))?;
    // The command name in field 2 may contain spaces; fields after it are plain.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // Linux reports in USER_HZ, which is 100 on every architecture it runs on.
    Ok(Duration::from_millis(ticks * 10))
}

fn add_user(server_binary: &Path, data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let mut child = Command::new(server_binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["user", "add", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start hearth-server to add a user")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("no stdin")?;
        writeln!(stdin, "{name}-password")?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "hearth-server user add {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The server under test, killed when stopped or dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn,hearth_server=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start hearth-server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        // The reader keeps draining the log so that the server never blocks on it.
        std::thread::spawn(move || {
            let mut url_tx = Some(url_tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(start) = line.find("listening on https://")
                    && let Some(tx) = url_tx.take()
                {
                    let url: String = line[start + "listening on ".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(url);
                }
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(20))
            .context("hearth-server did not log its address within 20 s")?;
        Ok(Self { child, url })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
