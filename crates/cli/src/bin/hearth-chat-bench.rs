//! Measures the message rate that one `hearth-server` process carries.
//!
//! Starts the `hearth-server` binary found beside this one on loopback with a
//! fresh data directory, signs in many users, opens several session WebSockets
//! per user, and puts the users into group conversations. Then, for each offered
//! rate, it sends `send_message` frames at evenly spaced instants from
//! round-robin connections and records:
//! - ack latency: from sending to the sender's `message_ack`, which the server
//!   sends only after the message is committed to SQLite;
//! - delivery latency: from sending to each other member connection's `event`.
//!
//! As a reference, the same connections carry `ping` frames at the same rate in
//! the same run. The server returns `pong` at once, without storage or fan-out,
//! so the difference between the two rows is what storing and fanning out costs.
//!
//! Prints a Markdown table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use hearth_client::ServerEndpoint;
use hearth_proto::chat::{Conversation, ConversationKind, CreateConversation};
use hearth_proto::{ClientFrame, ClientMessage, ServerFrame, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Parser, Debug)]
#[command(about = "Measure hearth-server's sustained chat message rate and delivery latency")]
struct Args {
    /// Number of users; each opens `--connections-per-user` sessions.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Session WebSockets per user, as a user's devices would open them.
    #[arg(long, default_value_t = 4)]
    connections_per_user: usize,
    /// Number of group conversations; users are spread over them evenly.
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// Offered message rates in messages per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    rates: Vec<u32>,
    /// Length of each measured step in seconds.
    #[arg(long, default_value_t = 8)]
    step_seconds: u64,
    /// The `hearth-server` binary; by default the one beside this program.
    #[arg(long)]
    server_binary: Option<PathBuf>,
}

/// One open session WebSocket.
struct Connection {
    user: usize,
    outgoing: mpsc::UnboundedSender<String>,
}

/// Send instants by correlation key, and the latencies observed so far.
#[derive(Default)]
struct Probe {
    sent: HashMap<u64, Instant>,
    ack_micros: Vec<u64>,
    delivery_micros: Vec<u64>,
    pong_micros: Vec<u64>,
}

type SharedProbe = Arc<Mutex<Probe>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.users == 0 || args.connections_per_user == 0 || args.conversations == 0 {
        bail!("--users, --connections-per-user and --conversations must be at least 1");
    }
    if args.conversations > args.users {
        bail!(
            "--conversations {} is more than --users {}; each conversation needs a member",
            args.conversations,
            args.users
        );
    }
    hearth_client::server::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir().context("failed to create a temporary data directory")?;
    let binary = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .with_file_name(format!("hearth-server{}", std::env::consts::EXE_SUFFIX)),
    };
    let names: Vec<String> = (0..args.users).map(|i| format!("bench{i:04}")).collect();
    add_users(&binary, data_dir.path(), &names)?;
    let mut server = ServerProcess::start(&binary, data_dir.path())?;
    let cert_pem = std::fs::read_to_string(data_dir.path().join("tls/cert.pem"))
        .context("failed to read the server's certificate")?;
    let endpoint = ServerEndpoint::new(&server.url, Some(&cert_pem))?;

    let mut tokens = Vec::with_capacity(names.len());
    for name in &names {
        let response =
            hearth_client::auth::sign_in_with_password(&endpoint, name, PASSWORD).await?;
        tokens.push(response.access_token);
    }

    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*endpoint.tls_config()).clone())
        .build()?;
    let mut conversation_of_user = vec![uuid::Uuid::nil(); names.len()];
    let mut members_by_conversation = Vec::new();
    for group in 0..args.conversations {
        let members: Vec<usize> = (group..names.len()).step_by(args.conversations).collect();
        let owner = members[0];
        let body = CreateConversation {
            kind: ConversationKind::Group,
            name: Some(format!("bench group {group}")),
            members: members[1..].iter().map(|&i| names[i].clone()).collect(),
        };
        let response = http
            .post(endpoint.url(hearth_proto::chat::CONVERSATIONS_PATH))
            .bearer_auth(&tokens[owner])
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "creating conversation {group} failed with {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let conversation: Conversation = response.json().await?;
        for &member in &members {
            conversation_of_user[member] = conversation.id;
        }
        members_by_conversation.push(members.len() * args.connections_per_user);
    }

    let probe = SharedProbe::default();
    let mut connections = Vec::new();
    for _ in 0..args.connections_per_user {
        for (user, token) in tokens.iter().enumerate() {
            connections.push(connect(&endpoint, token, user, probe.clone()).await?);
        }
    }
    let fan_out = members_by_conversation.iter().sum::<usize>() as f64
        / members_by_conversation.len() as f64
        - 1.0;
    eprintln!(
        "{} connections, {} conversations, each message goes to {fan_out:.0} other connections",
        connections.len(),
        args.conversations
    );

    println!(
        "| load | offered msg/s | achieved msg/s | deliveries/s | ack p50 ms | ack p99 ms | \
         delivery p50 ms | delivery p99 ms | server CPU % | server RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let step = Duration::from_secs(args.step_seconds);
    for &rate in &args.rates {
        for kind in [Load::Ping, Load::Message] {
            let result = run_step(
                kind,
                rate,
                step,
                &connections,
                &conversation_of_user,
                &probe,
                &server,
            )
            .await?;
            println!("{result}");
        }
    }
    server.stop();
    Ok(())
}

const PASSWORD: &str = "bench-password-not-secret";

fn add_users(binary: &Path, data_dir: &Path, names: &[String]) -> anyhow::Result<()> {
    use std::io::Write as _;
    for name in names {
        let mut child = Command::new(binary)
            .args(["user", "add", name, "--password-stdin"])
            .env("HEARTH_DATA_DIR", data_dir)
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("failed to run {}", binary.display()))?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(format!("{PASSWORD}\n").as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("`hearth-server user add {name}` failed with {status}");
        }
    }
    Ok(())
}

/// The server under test, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        use std::io::{BufRead as _, BufReader};
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .env("HEARTH_DATA_DIR", data_dir)
            .env("HEARTH_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                bail!("hearth-server exited before it listened");
            };
            let line = line?;
            if let Some(start) = line.find("listening on https://") {
                let rest = &line[start + "listening on ".len()..];
                break rest.split_whitespace().next().unwrap_or(rest).to_owned();
            }
        };
        // Drain the log so the server does not block writing to a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, url })
    }

    /// Returns the server's CPU time (user plus system) and resident memory.
    fn usage(&self) -> anyhow::Result<(Duration, u64)> {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised command name; utime and stime are the
        // 14th and 15th fields of the whole line, in clock ticks.
        let after_name = stat.rsplit_once(')').context("unexpected /proc stat")?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        // NOTE: assumes the usual 100 clock ticks per second of Linux.
        Ok((Duration::from_millis(ticks * 10), rss_kib * 1024))
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

async fn connect(
    endpoint: &ServerEndpoint,
    token: &str,
    user: usize,
    probe: SharedProbe,
) -> anyhow::Result<Connection> {
    let mut request = endpoint
        .websocket_url(hearth_proto::SIGNAL_PATH)
        .into_client_request()?;
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let connector = tokio_tungstenite::Connector::Rustls(endpoint.tls_config());
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
            .context("failed to open the session WebSocket")?;
    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(text) = outgoing_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                continue;
            };
            record(&probe, user, frame.message);
        }
    });
    Ok(Connection { user, outgoing })
}

/// Records the latency of an ack, pushed event or pong whose key was sent.
fn record(probe: &SharedProbe, receiver: usize, message: ServerMessage) {
    let now = Instant::now();
    let (key, bucket) = match message {
        ServerMessage::MessageAck { client_id, .. } => (key_of(client_id), Bucket::Ack),
        ServerMessage::Event { event } => match event.body {
            hearth_proto::chat::EventBody::Message { client_id, .. } => {
                if event.sender == user_name(receiver) {
                    return;
                }
                (key_of(client_id), Bucket::Delivery)
            }
            _ => return,
        },
        ServerMessage::Pong { nonce } => (nonce, Bucket::Pong),
        _ => return,
    };
    let mut probe = probe.lock().expect("probe lock");
    let Some(&sent) = probe.sent.get(&key) else {
        return;
    };
    let micros = u64::try_from(now.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
    match bucket {
        Bucket::Ack => probe.ack_micros.push(micros),
        Bucket::Delivery => probe.delivery_micros.push(micros),
        Bucket::Pong => probe.pong_micros.push(micros),
    }
}

enum Bucket {
    Ack,
    Delivery,
    Pong,
}

fn user_name(index: usize) -> String {
    format!("bench{index:04}")
}

/// Correlation key of a message: the low 64 bits of its client id.
fn key_of(client_id: uuid::Uuid) -> u64 {
    client_id.as_u64_pair().1
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Reference: `ping` frames, which the server returns as `pong` without storage.
    Ping,
    Message,
}

struct StepResult {
    load: Load,
    offered: u32,
    achieved: f64,
    deliveries_per_second: f64,
    ack: Option<(f64, f64)>,
    delivery: Option<(f64, f64)>,
    cpu_percent: f64,
    rss_mib: f64,
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let load = match self.load {
            Load::Ping => "ping (reference)",
            Load::Message => "send_message",
        };
        let pair = |value: Option<(f64, f64)>| match value {
            Some((p50, p99)) => (format!("{p50:.1}"), format!("{p99:.1}")),
            None => ("–".to_owned(), "–".to_owned()),
        };
        let (ack50, ack99) = pair(self.ack);
        let (del50, del99) = pair(self.delivery);
        let deliveries = if self.load == Load::Ping {
            "–".to_owned()
        } else {
            format!("{:.0}", self.deliveries_per_second)
        };
        write!(
            f,
            "| {load} | {} | {:.0} | {deliveries} | {ack50} | {ack99} | {del50} | {del99} | {:.0} | {:.0} |",
            self.offered, self.achieved, self.cpu_percent, self.rss_mib
        )
    }
}

async fn run_step(
    load: Load,
    rate: u32,
    length: Duration,
    connections: &[Connection],
    conversation_of_user: &[uuid::Uuid],
    probe: &SharedProbe,
    server: &ServerProcess,
) -> anyhow::Result<StepResult> {
    *probe.lock().expect("probe lock") = Probe::default();
    let total = (u64::from(rate) * length.as_secs()).max(1);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let (cpu_before, _) = server.usage()?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for index in 0..total {
        ticker.tick().await;
        let connection = &connections[usize::try_from(index).unwrap_or(0) % connections.len()];
        let key = rand::random::<u64>();
        let message = match load {
            Load::Ping => ClientMessage::Ping { nonce: key },
            Load::Message => ClientMessage::SendMessage {
                conversation_id: conversation_of_user[connection.user],
                client_id: uuid::Uuid::from_u64_pair(rand::random(), key),
                text: format!("bench message {index} 基准测试"),
                reply_to: None,
                attachments: Vec::new(),
            },
        };
        let text = serde_json::to_string(&ClientFrame::from(message))?;
        probe
            .lock()
            .expect("probe lock")
            .sent
            .insert(key, Instant::now());
        connection
            .outgoing
            .send(text)
            .map_err(|_| anyhow::anyhow!("a bench connection closed"))?;
    }
    // Give the last messages time to arrive before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    let (cpu_after, rss) = server.usage()?;

    let probe = std::mem::take(&mut *probe.lock().expect("probe lock"));
    let completed = match load {
        Load::Ping => probe.pong_micros.len(),
        Load::Message => probe.ack_micros.len(),
    };
    let send_seconds = length.as_secs_f64();
    let cpu_percent = (cpu_after - cpu_before).as_secs_f64() / elapsed.as_secs_f64() * 100.0;
    let (ack, delivery) = match load {
        Load::Ping => (percentiles(&probe.pong_micros), None),
        Load::Message => (
            percentiles(&probe.ack_micros),
            percentiles(&probe.delivery_micros),
        ),
    };
    if (completed as u64) < total {
        eprintln!(
            "{} at {rate}/s: {completed} of {total} completed",
            match load {
                Load::Ping => "ping",
                Load::Message => "send_message",
            }
        );
    }
    Ok(StepResult {
        load,
        offered: rate,
        // Completions over the sending time: below the offered rate when the
        // server falls behind.
        achieved: completed as f64 / send_seconds.max(elapsed.as_secs_f64() - 2.0),
        deliveries_per_second: probe.delivery_micros.len() as f64 / send_seconds,
        ack,
        delivery,
        cpu_percent,
        rss_mib: rss as f64 / (1024.0 * 1024.0),
    })
}

/// Returns the 50th and 99th percentiles in milliseconds (nearest rank).
fn percentiles(micros: &[u64]) -> Option<(f64, f64)> {
    if micros.is_empty() {
        return None;
    }
    let mut sorted = micros.to_vec();
    sorted.sort_unstable();
    let rank = |quantile: f64| {
        let index = (quantile * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1] as f64 / 1000.0
    };
    Some((rank(0.50), rank(0.99)))
}
