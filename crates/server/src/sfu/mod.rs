//! The selective forwarding unit for group calls.
//!
//! Every participant sends its camera and microphone once, to the SFU, which
//! forwards each stream to every other participant of the room, choosing a
//! simulcast layer per receiver. Each device has one str0m session in ICE
//! lite mode on the SFU's UDP sockets; the SDP exchange travels over the
//! session WebSocket (`join_room`, `room_offer`, `room_answer`). The device
//! offers what it sends once; afterwards only the SFU offers, whenever the
//! set of streams to forward changes, so offers never cross.
//!
//! [`router::Router`] holds the rooms without I/O. The task started by
//! [`Sfu::start`] owns the sockets and feeds it.

mod layers;
mod participant;
pub mod router;
mod speaker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use hearth_proto::RoomParticipantId;
use hearth_proto::chat::ConversationId;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::signal::Hub;
use crate::signal::machine::ConnId;
use router::{Router, RouterOutput};

/// The largest datagram read from a socket.
const MAX_DATAGRAM: usize = 2000;
/// Datagrams waiting for the router before readers drop new ones.
const DATAGRAM_QUEUE: usize = 4096;

/// A request from the signalling layer to the SFU.
#[derive(Debug)]
pub enum Command {
    /// The device joins the room, whose membership the caller checked.
    Join {
        conn: ConnId,
        user: String,
        conversation_id: ConversationId,
        /// Every member of the conversation.
        members: Vec<String>,
        offer: String,
        /// The offer's section reserved for screen sharing.
        screen_mid: Option<String>,
    },
    Answer {
        conn: ConnId,
        conversation_id: ConversationId,
        sdp: String,
    },
    Leave {
        conn: ConnId,
        conversation_id: ConversationId,
    },
    Media {
        conn: ConnId,
        conversation_id: ConversationId,
        audio_muted: bool,
        video_off: bool,
        video_size: Option<(u32, u32)>,
    },
    Views {
        conn: ConnId,
        conversation_id: ConversationId,
        views: HashMap<RoomParticipantId, (u32, u32)>,
        /// The maximum video bitrate the device accepts, in bit/s.
        max_video_bps: Option<u64>,
    },
    /// The device started or stopped sharing its screen.
    Screen {
        conn: ConnId,
        conversation_id: ConversationId,
        sharing: bool,
    },
    /// The device's WebSocket closed.
    Disconnected { conn: ConnId },
}

/// A handle to the running SFU.
#[derive(Clone)]
pub struct Sfu {
    commands: mpsc::UnboundedSender<Command>,
    addrs: Arc<Vec<SocketAddr>>,
}

impl Sfu {
    /// Binds one UDP socket on each of `ips` at `port` (0 picks a free port
    /// per address) and starts forwarding. Frames for devices go out
    /// through `hub`. Rooms send video in the first of `video_codecs` that
    /// every participant offered.
    pub async fn start(
        ips: &[IpAddr],
        port: u16,
        hub: Arc<Hub>,
        video_codecs: Vec<String>,
    ) -> anyhow::Result<Self> {
        let mut sockets = Vec::new();
        for ip in ips {
            let addr = SocketAddr::new(*ip, port);
            let socket = UdpSocket::bind(addr)
                .await
                .with_context(|| format!("failed to bind the SFU's UDP socket on {addr}"))?;
            sockets.push(Arc::new(socket));
        }
        let addrs: Vec<SocketAddr> = sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<_, _>>()
            .context("failed to read the SFU's socket addresses")?;
        tracing::info!(?addrs, "SFU listening");
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(sockets, addrs.clone(), receiver, hub, video_codecs));
        Ok(Self {
            commands,
            addrs: Arc::new(addrs),
        })
    }

    /// The addresses of the SFU's sockets.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn send(&self, command: Command) {
        if self.commands.send(command).is_err() {
            tracing::error!("the SFU task has stopped; a room request was dropped");
        }
    }
}

/// Returns the addresses the SFU binds for a server listening on `listen`:
/// that address itself, or every address of this machine's interfaces when
/// it listens on all of them.
pub fn media_ips(listen: IpAddr) -> Vec<IpAddr> {
    if !listen.is_unspecified() {
        return vec![listen];
    }
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .into_iter()
            .map(|interface| interface.ip())
            .filter(|ip| ip.is_ipv4() == listen.is_ipv4() && !is_link_local(*ip))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list network interfaces; the SFU uses loopback only");
            vec![IpAddr::from([127, 0, 0, 1])]
        }
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => (ip.segments()[0] & 0xffc0) == 0xfe80,
    }
}

async fn run(
    sockets: Vec<Arc<UdpSocket>>,
    addrs: Vec<SocketAddr>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hub: Arc<Hub>,
    video_codecs: Vec<String>,
) {
    let (datagrams_tx, mut datagrams) = mpsc::channel(DATAGRAM_QUEUE);
    for (socket, local) in sockets.iter().zip(&addrs) {
        tokio::spawn(read_socket(socket.clone(), *local, datagrams_tx.clone()));
    }
    drop(datagrams_tx);
    let by_addr: HashMap<SocketAddr, Arc<UdpSocket>> =
        addrs.iter().copied().zip(sockets.iter().cloned()).collect();
    let mut router = Router::new(Instant::now(), addrs, video_codecs);
    loop {
        let deadline = tokio::time::Instant::from_std(router.poll_timeout());
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                router.handle_command(Instant::now(), command);
            }
            datagram = datagrams.recv() => {
                let Some((local, source, bytes)) = datagram else { break };
                router.handle_receive(Instant::now(), source, local, &bytes);
                // Take whatever else arrived meanwhile before polling timers.
                while let Ok((local, source, bytes)) = datagrams.try_recv() {
                    router.handle_receive(Instant::now(), source, local, &bytes);
                }
            }
            () = tokio::time::sleep_until(deadline) => router.handle_timeout(Instant::now()),
        }
        while let Some(output) = router.poll_output() {
            match output {
                RouterOutput::Transmit(transmit) => {
                    let Some(socket) = by_addr.get(&transmit.source) else {
                        tracing::warn!(source = %transmit.source, "no SFU socket for a datagram");
                        continue;
                    };
                    // A full send buffer is the same as loss, which UDP allows.
                    if let Err(error) = socket.try_send_to(&transmit.contents, transmit.destination)
                        && error.kind() != std::io::ErrorKind::WouldBlock
                    {
                        tracing::debug!(%error, destination = %transmit.destination, "SFU send failed");
                    }
                }
                RouterOutput::Reply { conn, message } => hub.reply(conn, message),
                RouterOutput::Push { users, message } => {
                    hub.push_to_users(users.iter().map(String::as_str), message);
                }
            }
        }
    }
    tracing::info!("SFU stopped");
}

async fn read_socket(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    datagrams: mpsc::Sender<(SocketAddr, SocketAddr, Vec<u8>)>,
) {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, source)) => {
                // A full queue means the router is overloaded: drop, as the
                // network would.
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    datagrams.try_send((local, source, buf[..len].to_vec()))
                {
                    return;
                }
            }
            Err(error) => {
                // ICMP port unreachable from a device that left shows up
                // as a receive error on some systems; keep reading.
                tracing::debug!(%error, %local, "SFU socket receive failed");
            }
        }
    }
}
