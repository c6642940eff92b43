//! The SFU's rooms and the forwarding between their participants, without
//! I/O: commands, datagrams and timeouts go in with the current time;
//! datagrams to send and signalling frames come out of [`Router::poll_output`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::chat::ConversationId;
use hearth_proto::{RoomParticipant, RoomParticipantId, ServerMessage};
use str0m::Input;
use str0m::config::CryptoProvider;
use str0m::media::MediaData;
use str0m::net::{Protocol, Receive, Transmit};

use super::Command;
use super::layers;
use super::participant::{Participant, Propagated};
use super::speaker::SpeakerDetector;
use crate::signal::machine::ConnId;

/// How often layer choices and bitrates are re-evaluated.
const EVALUATE_INTERVAL: Duration = Duration::from_millis(500);

/// Something for the I/O layer to do.
#[derive(Debug)]
pub enum RouterOutput {
    Transmit(Transmit),
    /// A frame for one device.
    Reply {
        conn: ConnId,
        message: ServerMessage,
    },
    /// A frame for every device of these users.
    Push {
        users: Vec<String>,
        message: ServerMessage,
    },
}

struct Room {
    /// Every member of the conversation, who all receive the roster.
    members: Vec<String>,
    participants: Vec<Participant>,
    speakers: SpeakerDetector,
}

pub struct Router {
    candidates: Vec<SocketAddr>,
    crypto: Arc<CryptoProvider>,
    rooms: HashMap<ConversationId, Room>,
    next_participant: RoomParticipantId,
    outputs: VecDeque<RouterOutput>,
    /// The room of the participant each remote address belongs to.
    routes: HashMap<SocketAddr, (ConversationId, RoomParticipantId)>,
    next_timeout: Instant,
    last_evaluation: Instant,
    /// The codecs rooms may send video in, in order of preference.
    video_codecs: Vec<String>,
}

impl Router {
    /// Creates a router whose sessions announce `candidates`, the addresses
    /// of the SFU's UDP sockets, and whose rooms send video in the first of
    /// `video_codecs` (SDP encoding names) that every participant offered.
    pub fn new(now: Instant, candidates: Vec<SocketAddr>, video_codecs: Vec<String>) -> Self {
        Self {
            candidates,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            rooms: HashMap::new(),
            next_participant: 1,
            outputs: VecDeque::new(),
            routes: HashMap::new(),
            next_timeout: now,
            last_evaluation: now,
            video_codecs,
        }
    }

    pub fn poll_output(&mut self) -> Option<RouterOutput> {
        self.outputs.pop_front()
    }

    /// The time by which [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Returns the number of participants in all rooms.
    pub fn participant_count(&self) -> usize {
        self.rooms
            .values()
            .map(|room| room.participants.len())
            .sum()
    }

    pub fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Join {
                conn,
                user,
                conversation_id,
                members,
                offer,
                screen_mid,
            } => {
                self.join(now, conn, user, conversation_id, members, &offer);
                // The joiner's streams open only when its session is driven
                // below, so the others learn which one is the share in time.
                if let Some(participant) = self.participant_mut(conversation_id, conn) {
                    participant.screen_mid = screen_mid.as_deref().map(str0m::media::Mid::from);
                }
            }
            Command::Answer {
                conn,
                conversation_id,
                sdp,
            } => {
                let result = self
                    .participant_mut(conversation_id, conn)
                    .map(|p| p.accept_answer(&sdp));
                match result {
                    Some(Ok(opened)) => self.request_keyframes(now, conversation_id, conn, &opened),
                    Some(Err(reason)) => {
                        tracing::info!(%conn, %reason, "room answer rejected");
                        self.remove(now, conversation_id, conn, reason);
                    }
                    None => self.not_in_room(conn, conversation_id),
                }
            }
            Command::Leave {
                conn,
                conversation_id,
            } => self.remove(now, conversation_id, conn, "left the call".into()),
            Command::Media {
                conn,
                conversation_id,
                audio_muted,
                video_off,
                video_size,
            } => match self.participant_mut(conversation_id, conn) {
                Some(participant) => {
                    participant.audio_muted = audio_muted;
                    participant.video_off = video_off;
                    participant.video_size = video_size;
                    self.push_state(conversation_id);
                }
                None => self.not_in_room(conn, conversation_id),
            },
            Command::Views {
                conn,
                conversation_id,
                views,
                max_video_bps,
            } => match self.participant_mut(conversation_id, conn) {
                Some(participant) => participant.set_views(views, max_video_bps),
                None => self.not_in_room(conn, conversation_id),
            },
            Command::Screen {
                conn,
                conversation_id,
                sharing,
            } => match self.participant_mut(conversation_id, conn) {
                Some(participant) if participant.screen_mid.is_some() || !sharing => {
                    participant.screen_sharing = sharing;
                    tracing::info!(
                        participant = participant.id,
                        sharing,
                        "screen share changed"
                    );
                    self.push_state(conversation_id);
                }
                Some(_) => self.outputs.push_back(RouterOutput::Reply {
                    conn,
                    message: ServerMessage::Error {
                        code: hearth_proto::ErrorCode::InvalidState,
                        message: "this device reserved no screen track when it joined; join \
                                  again with `screen_mid` set"
                            .into(),
                        call_id: None,
                        conversation_id: Some(conversation_id),
                        client_id: None,
                    },
                }),
                None => self.not_in_room(conn, conversation_id),
            },
            Command::Disconnected { conn } => {
                let rooms: Vec<ConversationId> = self
                    .rooms
                    .iter()
                    .filter(|(_, room)| room.participants.iter().any(|p| p.conn == conn))
                    .map(|(id, _)| *id)
                    .collect();
                for conversation_id in rooms {
                    self.remove(now, conversation_id, conn, "disconnected".into());
                }
            }
        }
        self.drive(now);
    }

    /// Feeds one received datagram to the session it belongs to.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(contents) = bytes.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let known = self.routes.get(&source).copied();
        let target = known
            .filter(|(room, id)| {
                self.rooms
                    .get(room)
                    .and_then(|r| r.participants.iter().find(|p| p.id == *id))
                    .is_some_and(|p| p.accepts(&input))
            })
            .or_else(|| {
                self.rooms.iter().find_map(|(room_id, room)| {
                    room.participants
                        .iter()
                        .find(|p| p.accepts(&input))
                        .map(|p| (*room_id, p.id))
                })
            });
        let Some((room_id, participant_id)) = target else {
            tracing::trace!(%source, "no session accepts a datagram");
            return;
        };
        self.routes.insert(source, (room_id, participant_id));
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        if let Some(participant) = room
            .participants
            .iter_mut()
            .find(|p| p.id == participant_id)
        {
            if !participant.remote_addrs.contains(&source) {
                participant.remote_addrs.push(source);
            }
            participant.handle_input(input);
        }
        self.drive_room(now, room_id);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for room in self.rooms.values_mut() {
            for participant in &mut room.participants {
                participant.handle_input(Input::Timeout(now));
            }
        }
        if now.duration_since(self.last_evaluation) >= EVALUATE_INTERVAL {
            self.last_evaluation = now;
            self.evaluate(now);
        }
        self.drive(now);
    }

    fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: String,
        conversation_id: ConversationId,
        members: Vec<String>,
        offer: &str,
    ) {
        // A device that joins again replaces its earlier session.
        if self.participant_mut(conversation_id, conn).is_some() {
            self.remove(now, conversation_id, conn, "joined again".into());
        }
        let id = self.next_participant;
        self.next_participant += 1;
        let (mut participant, answer) =
            match Participant::join(now, id, conn, user, &self.candidates, &self.crypto, offer) {
                Ok(joined) => joined,
                Err(reason) => {
                    tracing::info!(%conn, %reason, "room join rejected");
                    self.outputs.push_back(RouterOutput::Reply {
                        conn,
                        message: ServerMessage::Error {
                            code: hearth_proto::ErrorCode::InvalidRequest,
                            message: format!(
                                "{reason}; send the offer exactly as the media engine created it"
                            ),
                            call_id: None,
                            conversation_id: Some(conversation_id),
                            client_id: None,
                        },
                    });
                    return;
                }
            };
        let room = self.rooms.entry(conversation_id).or_insert_with(|| Room {
            members: Vec::new(),
            participants: Vec::new(),
            speakers: SpeakerDetector::default(),
        });
        room.members = members;
        for other in &room.participants {
            for (mid, kind) in other.published() {
                participant.add_source(other.id, mid, kind, other.is_screen(mid));
            }
        }
        tracing::info!(
            participant = id,
            %conn,
            conversation = %conversation_id,
            others = room.participants.len(),
            "joined a room"
        );
        room.participants.push(participant);
        self.outputs.push_back(RouterOutput::Reply {
            conn,
            message: ServerMessage::RoomJoined {
                conversation_id,
                participant_id: id,
                sdp: answer.to_sdp_string(),
            },
        });
        self.push_state(conversation_id);
    }

    fn remove(
        &mut self,
        now: Instant,
        conversation_id: ConversationId,
        conn: ConnId,
        reason: String,
    ) {
        let Some(room) = self.rooms.get_mut(&conversation_id) else {
            return;
        };
        let Some(index) = room.participants.iter().position(|p| p.conn == conn) else {
            return;
        };
        let mut participant = room.participants.remove(index);
        participant.disconnect();
        room.speakers.remove(participant.id);
        for other in &mut room.participants {
            other.remove_source(participant.id);
        }
        self.routes.retain(|_, (_, id)| *id != participant.id);
        tracing::info!(participant = participant.id, %conn, %reason, "left a room");
        self.outputs.push_back(RouterOutput::Reply {
            conn,
            message: ServerMessage::RoomLeft {
                conversation_id,
                reason,
            },
        });
        self.push_state(conversation_id);
        if self
            .rooms
            .get(&conversation_id)
            .is_some_and(|room| room.participants.is_empty())
        {
            self.rooms.remove(&conversation_id);
        }
        self.drive_room(now, conversation_id);
    }

    /// Picks the layers of video streams that `receiver` now receives, and
    /// requests a keyframe from their senders so that the picture starts at once.
    /// A simulcast stream whose layers are not known yet gets its layer at
    /// the next evaluation.
    fn request_keyframes(
        &mut self,
        now: Instant,
        conversation_id: ConversationId,
        receiver: ConnId,
        streams: &[(RoomParticipantId, str0m::media::Mid)],
    ) {
        let Some(room) = self.rooms.get_mut(&conversation_id) else {
            return;
        };
        choose_layers(now, room);
        let Some(receiver) = room.participants.iter().find(|p| p.conn == receiver) else {
            return;
        };
        let requests: Vec<_> = streams
            .iter()
            .map(|(source, mid)| (*source, *mid, receiver.target_layer(*source, *mid)))
            .collect();
        for (source, mid, rid) in requests {
            let Some(sender) = room.participants.iter_mut().find(|p| p.id == source) else {
                continue;
            };
            if rid.is_some() || sender.layers(now, mid).is_empty() {
                sender.request_keyframe(now, mid, rid);
            }
        }
    }

    fn not_in_room(&mut self, conn: ConnId, conversation_id: ConversationId) {
        self.outputs.push_back(RouterOutput::Reply {
            conn,
            message: ServerMessage::Error {
                code: hearth_proto::ErrorCode::InvalidState,
                message: "this device is not in the conversation's call; send join_room first"
                    .into(),
                call_id: None,
                conversation_id: Some(conversation_id),
                client_id: None,
            },
        });
    }

    fn participant_mut(
        &mut self,
        conversation_id: ConversationId,
        conn: ConnId,
    ) -> Option<&mut Participant> {
        self.rooms
            .get_mut(&conversation_id)?
            .participants
            .iter_mut()
            .find(|p| p.conn == conn)
    }

    fn push_state(&mut self, conversation_id: ConversationId) {
        let Some(room) = self.rooms.get(&conversation_id) else {
            return;
        };
        let participants = room
            .participants
            .iter()
            .map(|p| RoomParticipant {
                id: p.id,
                user: p.user.clone(),
                audio_muted: p.audio_muted,
                video_off: p.video_off,
                screen_sharing: p.screen_sharing,
            })
            .collect();
        // Guests are not members, so the roster also goes to every participant.
        let mut users = room.members.clone();
        for participant in &room.participants {
            if !users.contains(&participant.user) {
                users.push(participant.user.clone());
            }
        }
        let video_codec = room_video_codec(&self.video_codecs, &room.participants);
        self.outputs.push_back(RouterOutput::Push {
            users,
            message: ServerMessage::RoomState {
                conversation_id,
                participants,
                active_speaker: room.speakers.active(),
                video_codec: video_codec.cloned(),
            },
        });
    }

    /// Re-measures layer bitrates, picks each receiver's layers, updates the
    /// active speakers and removes sessions that died.
    fn evaluate(&mut self, now: Instant) {
        let room_ids: Vec<ConversationId> = self.rooms.keys().copied().collect();
        for room_id in room_ids {
            let dead: Vec<ConnId> = self.rooms[&room_id]
                .participants
                .iter()
                .filter(|p| !p.is_alive() || p.connect_timed_out(now))
                .map(|p| p.conn)
                .collect();
            for conn in dead {
                self.remove(now, room_id, conn, "the media connection failed".into());
            }
            let Some(room) = self.rooms.get_mut(&room_id) else {
                continue;
            };
            for participant in &mut room.participants {
                participant.roll_rates(now);
            }
            choose_layers(now, room);
            if room.speakers.update(now).is_some() {
                self.push_state(room_id);
            }
        }
    }

    fn drive(&mut self, now: Instant) {
        let room_ids: Vec<ConversationId> = self.rooms.keys().copied().collect();
        let mut next = now + Duration::from_secs(1);
        for room_id in room_ids {
            next = next.min(self.drive_room(now, room_id));
        }
        self.next_timeout = next.min(self.last_evaluation + EVALUATE_INTERVAL);
    }

    /// Polls every session of a room until all wait for a timeout, carrying
    /// media and keyframe requests between them. Returns the earliest timeout.
    fn drive_room(&mut self, now: Instant, room_id: ConversationId) -> Instant {
        let mut earliest = now + Duration::from_secs(1);
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return earliest;
        };
        loop {
            let mut progressed = false;
            for index in 0..room.participants.len() {
                loop {
                    match room.participants[index].poll() {
                        Err(timeout) => {
                            earliest = earliest.min(timeout);
                            break;
                        }
                        Ok(propagated) => {
                            progressed = true;
                            let output = propagate(now, room, index, room_id, propagated);
                            if let Some(output) = output {
                                self.outputs.push_back(output);
                            }
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.next_timeout = self.next_timeout.min(earliest);
        earliest
    }
}

/// Applies what participant `index` produced to the room.
fn propagate(
    now: Instant,
    room: &mut Room,
    index: usize,
    room_id: ConversationId,
    propagated: Propagated,
) -> Option<RouterOutput> {
    let origin = room.participants[index].id;
    match propagated {
        Propagated::Transmit(transmit) => return Some(RouterOutput::Transmit(transmit)),
        Propagated::Offer(offer) => {
            return Some(RouterOutput::Reply {
                conn: room.participants[index].conn,
                message: ServerMessage::RoomOffer {
                    conversation_id: room_id,
                    sdp: offer.to_sdp_string(),
                },
            });
        }
        Propagated::TrackOpened { mid, kind } => {
            let screen = room.participants[index].is_screen(mid);
            for other in room.participants.iter_mut().filter(|p| p.id != origin) {
                other.add_source(origin, mid, kind, screen);
            }
        }
        Propagated::Media(data) => forward_media(now, room, index, &data),
        Propagated::KeyframeRequest { mid } => {
            if let Some((source, source_mid, rid)) = room.participants[index].keyframe_source(mid)
                && let Some(sender) = room.participants.iter_mut().find(|p| p.id == source)
            {
                sender.request_keyframe(now, source_mid, rid);
            }
        }
    }
    None
}

fn forward_media(now: Instant, room: &mut Room, index: usize, data: &MediaData) {
    let origin = room.participants[index].id;
    if let Some(level) = data.ext_vals.audio_level {
        room.speakers
            .on_level(now, origin, level.unsigned_abs().min(127));
    }
    let mut wanted = Vec::new();
    for other in room.participants.iter_mut().filter(|p| p.id != origin) {
        if let Some(rid) = other.forward(now, origin, data) {
            wanted.push(rid);
        }
    }
    let sender = &mut room.participants[index];
    for rid in wanted {
        sender.request_keyframe(now, data.mid, rid);
    }
}

/// Returns the first of `preference` that every participant offered, so
/// that everyone can decode everyone. A participant that offered no video
/// does not count. The SFU forwards frames as they are, so a sender in any
/// other codec would be lost on a receiver without it.
fn room_video_codec<'a>(
    preference: &'a [String],
    participants: &[Participant],
) -> Option<&'a String> {
    preference.iter().find(|codec| {
        participants
            .iter()
            .filter(|p| !p.video_codecs.is_empty())
            .all(|p| p.video_codecs.contains(codec))
    })
}

/// Returns the bitrate a receiver's bandwidth estimator probes up to, given
/// what it would get with every stream at its top layer, audio and streams
/// without layers included. The estimator does not estimate beyond what it
/// probes for, so the target leaves room for the estimate's headroom and
/// the up-switch margin.
fn desired_bitrate(full_bps: u64) -> u64 {
    full_bps * 2 + 200_000
}

/// Picks the layer every receiver gets of every simulcast stream.
fn choose_layers(now: Instant, room: &mut Room) {
    let mut decisions = Vec::new();
    let mut desired = Vec::new();
    for receiver in &room.participants {
        let received = receiver.received_video();
        let mut sources = Vec::new();
        let mut ladders = Vec::new();
        let mut all_measured = true;
        // Streams without layers to choose from: screen shares and cameras
        // sent without simulcast. They are forwarded whole, so their bitrate
        // comes off the budget before the layers are chosen.
        let mut fixed_bps = 0;
        for (source, mid) in &received {
            let Some(sender) = room.participants.iter().find(|p| p.id == *source) else {
                continue;
            };
            let ladder = sender.layers(now, *mid);
            if ladder.is_empty() {
                fixed_bps += sender.stream_bitrate(now, *mid);
            }
            sources.push((*source, *mid, sender.video_size));
            ladders.push(ladder);
            all_measured &= sender.layers_measured(*mid);
        }
        // Audio comes off the estimate too: with four others talking, it
        // takes a quarter of a 1 Mbit/s link.
        let audio_bps: u64 = receiver
            .received_audio()
            .iter()
            .filter_map(|(source, mid)| {
                let sender = room.participants.iter().find(|p| p.id == *source)?;
                Some(sender.stream_bitrate(now, *mid))
            })
            .sum();
        for (source, mid) in receiver.received_screens() {
            let Some(sender) = room.participants.iter().find(|p| p.id == source) else {
                continue;
            };
            fixed_bps += sender.stream_bitrate(now, mid);
            // A screen track without a share carries nothing to measure.
            all_measured &= !sender.screen_sharing || sender.layers_measured(mid);
        }
        let streams: Vec<layers::Stream<'_>> = sources
            .iter()
            .zip(&ladders)
            .map(|((source, mid, top_size), ladder)| layers::Stream {
                layers: ladder,
                top_size: *top_size,
                view: receiver.view(*source),
                current: receiver.target_choice(*source, *mid),
            })
            .collect();
        let budget = receiver
            .video_budget(audio_bps)
            .map(|budget| budget.saturating_sub(fixed_bps));
        tracing::trace!(receiver = receiver.id, ?budget, ?streams, "choosing layers");
        let chosen = layers::allocate(&streams, budget);
        for ((source, mid, _), choice) in sources.iter().zip(chosen) {
            if let Some(choice) = choice {
                decisions.push((receiver.id, *source, *mid, choice));
            }
        }
        // The estimator's first probes go up to twice the first desired
        // bitrate and do not come again for seconds, so the desired bitrate
        // waits for whole measurements: a partial one is too low.
        if all_measured {
            let top_layers_bps: u64 = ladders
                .iter()
                .map(|ladder| ladder.first().map_or(0, |top| top.bitrate_bps))
                .sum();
            let receivable_bps = receiver
                .max_video_bps()
                .map_or(top_layers_bps + fixed_bps, |limit| {
                    limit.min(top_layers_bps + fixed_bps)
                })
                + audio_bps;
            desired.push((receiver.id, receivable_bps));
        }
    }
    for (receiver, source, mid, choice) in decisions {
        if let Some(p) = room.participants.iter_mut().find(|p| p.id == receiver) {
            p.set_layer(source, mid, choice);
        }
    }
    for (receiver, top_layers_bps) in desired {
        if let Some(p) = room.participants.iter_mut().find(|p| p.id == receiver)
            && top_layers_bps > 0
        {
            p.set_desired_bitrate(desired_bitrate(top_layers_bps));
        }
    }
}
