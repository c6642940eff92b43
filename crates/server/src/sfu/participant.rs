//! One device in a room: its str0m session, the streams it sends and the
//! streams of others that it receives.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::RoomParticipantId;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::CryptoProvider;
use str0m::format::CodecExtra;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::net::Transmit;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};

use super::layers::{self, Choice, Forward, FrameLayer, Layer, LayerState};
use crate::signal::machine::ConnId;

/// The bitrate the bandwidth estimate of a new receiver starts from.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1000);
/// How much of the estimate audio and video may use. The rest covers RTCP,
/// retransmissions and the estimate's own error.
const VIDEO_SHARE_OF_ESTIMATE: f64 = 0.85;
/// How long a participant may take from joining to a connected session.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An output of one participant's session for the room.
#[derive(Debug)]
pub enum Propagated {
    /// A datagram to send from one of the SFU's sockets.
    Transmit(Transmit),
    /// The participant publishes a new stream.
    TrackOpened { mid: Mid, kind: MediaKind },
    /// A frame to forward to the others.
    Media(Box<MediaData>),
    /// A receiver asks for a keyframe of the stream it gets on `mid`.
    KeyframeRequest { mid: Mid },
    /// An offer to send to the participant's device.
    Offer(Box<SdpOffer>),
}

/// The bytes each packet carries besides its payload on the way to a
/// receiver: about 40 of RTP header, extensions and SRTP tag, and 28 of UDP
/// and IPv4. Rates count them, because they are what the link carries: a
/// quarter of a small layer's bitrate, and half of an audio stream's.
const PACKET_HEADER_BYTES: u64 = 40 + 28;

/// How many measuring windows a layer's bitrate is the mean of. One window
/// of half a second swings by a third around a CBR encoder's target, which
/// would move receivers up and down between layers. The mean over 2 s keeps
/// them where the layer fits.
const RATE_WINDOWS: usize = 4;

/// The bytes of one layer counted in the current measuring window.
#[derive(Debug, Clone, Copy, Default)]
struct WindowBytes {
    total: u64,
    /// Of those, frames above the base temporal layer.
    upper: u64,
}

/// The bitrate of one layer, in bit/s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LayerRate {
    total_bps: u64,
    /// The base temporal layer alone, when frames above it arrived.
    base_bps: Option<u64>,
}

/// A stream this participant publishes.
struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    /// Bytes received per layer in the current measuring window.
    counted: HashMap<Option<Rid>, WindowBytes>,
    /// The rates per layer over the last whole measuring windows, newest
    /// last, at most [`RATE_WINDOWS`].
    windows: VecDeque<HashMap<Option<Rid>, LayerRate>>,
    last_keyframe_request: HashMap<Option<Rid>, Instant>,
}

/// A stream of another participant that this participant receives.
struct TrackOut {
    source: RoomParticipantId,
    source_mid: Mid,
    kind: MediaKind,
    /// Whether this is the source's screen share, announced with the track
    /// id `SOURCE-screen` instead of `SOURCE-MID`.
    screen: bool,
    state: TrackOutState,
    layer: LayerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrackOutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

impl TrackOut {
    fn mid(&self) -> Option<Mid> {
        match self.state {
            TrackOutState::ToOpen => None,
            TrackOutState::Negotiating(mid)
            | TrackOutState::Open(mid)
            | TrackOutState::ToStop(mid)
            | TrackOutState::NegotiatingStop(mid) => Some(mid),
        }
    }
}

pub struct Participant {
    pub id: RoomParticipantId,
    pub conn: ConnId,
    pub user: String,
    pub audio_muted: bool,
    pub video_off: bool,
    /// The size of the camera's top layer as the device reported it.
    pub video_size: Option<(u32, u32)>,
    /// The section the device reserved for screen sharing when it joined.
    pub screen_mid: Option<Mid>,
    pub screen_sharing: bool,
    /// The video codecs the device offered when it joined, by SDP encoding
    /// name in upper case; empty when it offered no video.
    pub video_codecs: Vec<String>,
    rtc: Rtc,
    joined_at: Instant,
    /// The start of the current window for measuring layer bitrates.
    window_started: Instant,
    connected: bool,
    tracks_in: Vec<TrackIn>,
    tracks_out: Vec<TrackOut>,
    pending: Option<SdpPendingOffer>,
    views: HashMap<RoomParticipantId, (u32, u32)>,
    /// The maximum video bitrate the device accepts, in bit/s.
    max_video_bps: Option<u64>,
    estimate: Option<Bitrate>,
    /// Addresses this session received from, for routing datagrams.
    pub remote_addrs: Vec<SocketAddr>,
    queued: VecDeque<Propagated>,
}

impl Participant {
    /// Creates the session and answers the device's offer.
    pub fn join(
        now: Instant,
        id: RoomParticipantId,
        conn: ConnId,
        user: String,
        candidates: &[SocketAddr],
        crypto: &Arc<CryptoProvider>,
        offer: &str,
    ) -> Result<(Self, SdpAnswer), String> {
        let video_codecs = offered_video_codecs(offer);
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|error| format!("the offer is not valid SDP ({error})"))?;
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::clone(crypto))
            .set_ice_lite(true)
            .enable_bwe(Some(INITIAL_ESTIMATE))
            .build(now);
        for addr in candidates {
            match Candidate::host(*addr, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(error) => tracing::warn!(%addr, %error, "skipped an SFU address"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|error| format!("the offer was rejected ({error})"))?;
        let participant = Self {
            id,
            conn,
            user,
            audio_muted: false,
            video_off: false,
            video_size: None,
            screen_mid: None,
            screen_sharing: false,
            video_codecs,
            rtc,
            joined_at: now,
            window_started: now,
            connected: false,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            views: HashMap::new(),
            max_video_bps: None,
            estimate: None,
            remote_addrs: Vec::new(),
            queued: VecDeque::new(),
        };
        Ok((participant, answer))
    }

    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Returns whether the session failed to connect in time.
    pub fn connect_timed_out(&self, now: Instant) -> bool {
        !self.connected && now.duration_since(self.joined_at) > CONNECT_TIMEOUT
    }

    pub fn accepts(&self, input: &Input<'_>) -> bool {
        self.rtc.accepts(input)
    }

    pub fn handle_input(&mut self, input: Input<'_>) {
        if !self.rtc.is_alive() {
            return;
        }
        if let Err(error) = self.rtc.handle_input(input) {
            tracing::info!(participant = self.id, %error, "media session failed; disconnecting");
            self.rtc.disconnect();
        }
    }

    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
    }

    /// Returns the next thing for the room, or the time of the next timeout.
    pub fn poll(&mut self) -> Result<Propagated, Instant> {
        if let Some(queued) = self.queued.pop_front() {
            return Ok(queued);
        }
        if !self.rtc.is_alive() {
            return Err(far_future());
        }
        if let Some(offer) = self.negotiate_if_needed() {
            return Ok(Propagated::Offer(Box::new(offer)));
        }
        loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(error) => {
                    tracing::info!(participant = self.id, %error, "media session failed; disconnecting");
                    self.rtc.disconnect();
                    return Err(far_future());
                }
            };
            match output {
                Output::Timeout(at) => return Err(at),
                Output::Transmit(transmit) => return Ok(Propagated::Transmit(transmit)),
                Output::Event(event) => {
                    if let Some(propagated) = self.on_event(event) {
                        return Ok(propagated);
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Propagated> {
        match event {
            Event::Connected => {
                tracing::info!(participant = self.id, "media session connected");
                self.connected = true;
                None
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::info!(participant = self.id, "ICE disconnected");
                self.rtc.disconnect();
                None
            }
            Event::MediaAdded(added) if added.direction.is_receiving() => {
                self.tracks_in.push(TrackIn {
                    mid: added.mid,
                    kind: added.kind,
                    counted: HashMap::new(),
                    windows: VecDeque::new(),
                    last_keyframe_request: HashMap::new(),
                });
                Some(Propagated::TrackOpened {
                    mid: added.mid,
                    kind: added.kind,
                })
            }
            Event::MediaData(data) => {
                if let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == data.mid) {
                    let packets =
                        (**data.seq_range.end()).saturating_sub(**data.seq_range.start()) + 1;
                    let bytes = data.data.len() as u64 + packets * PACKET_HEADER_BYTES;
                    let counted = track.counted.entry(data.rid).or_default();
                    counted.total += bytes;
                    if frame_layer(&data).id > 0 {
                        counted.upper += bytes;
                    }
                }
                Some(Propagated::Media(Box::new(data)))
            }
            Event::KeyframeRequest(request) => {
                Some(Propagated::KeyframeRequest { mid: request.mid })
            }
            Event::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe,
            }) => {
                tracing::trace!(participant = self.id, %estimate, can_probe, "bandwidth estimate");
                self.estimate = Some(estimate);
                None
            }
            _ => None,
        }
    }

    /// Starts an offer when streams of others wait to be added or removed
    /// and no offer is outstanding.
    fn negotiate_if_needed(&mut self) -> Option<SdpOffer> {
        if self.pending.is_some() {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for track in &mut self.tracks_out {
            match track.state {
                TrackOutState::ToOpen => {
                    let track_id = if track.screen {
                        format!("{}-screen", track.source)
                    } else {
                        format!("{}-{}", track.source, track.source_mid)
                    };
                    let mid = change.add_media(
                        track.kind,
                        Direction::SendOnly,
                        Some(track.source.to_string()),
                        Some(track_id),
                        None,
                    );
                    track.state = TrackOutState::Negotiating(mid);
                }
                TrackOutState::ToStop(mid) => {
                    change.stop_media(mid);
                    track.state = TrackOutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(offer)
    }

    /// Applies the device's answer to the outstanding offer. Returns the
    /// video streams it opened, whose senders should send a keyframe so that
    /// the picture starts at once.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<(RoomParticipantId, Mid)>, String> {
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|error| format!("the answer is not valid SDP ({error})"))?;
        let Some(pending) = self.pending.take() else {
            return Err("no offer from the server is waiting for an answer".into());
        };
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|error: RtcError| format!("the answer was rejected ({error})"))?;
        let mut opened = Vec::new();
        for track in &mut self.tracks_out {
            if let TrackOutState::Negotiating(mid) = track.state {
                track.state = TrackOutState::Open(mid);
                if track.kind == MediaKind::Video {
                    opened.push((track.source, track.source_mid));
                }
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, TrackOutState::NegotiatingStop(_)));
        Ok(opened)
    }

    /// Returns whether `mid` is the section this participant reserved for
    /// screen sharing.
    pub fn is_screen(&self, mid: Mid) -> bool {
        self.screen_mid == Some(mid)
    }

    /// Adds a stream of another participant to receive; `screen` marks the
    /// source's screen share.
    pub fn add_source(
        &mut self,
        source: RoomParticipantId,
        source_mid: Mid,
        kind: MediaKind,
        screen: bool,
    ) {
        self.tracks_out.push(TrackOut {
            source,
            source_mid,
            kind,
            screen,
            state: TrackOutState::ToOpen,
            layer: LayerState::default(),
        });
    }

    /// Stops every stream received from `source`.
    pub fn remove_source(&mut self, source: RoomParticipantId) {
        self.views.remove(&source);
        self.tracks_out.retain_mut(|track| {
            if track.source != source {
                return true;
            }
            match track.state {
                TrackOutState::ToOpen => false,
                TrackOutState::Negotiating(mid) | TrackOutState::Open(mid) => {
                    track.state = TrackOutState::ToStop(mid);
                    true
                }
                TrackOutState::ToStop(_) | TrackOutState::NegotiatingStop(_) => true,
            }
        });
    }

    /// Returns the streams this participant publishes, for a newcomer.
    pub fn published(&self) -> Vec<(Mid, MediaKind)> {
        self.tracks_in.iter().map(|t| (t.mid, t.kind)).collect()
    }

    pub fn set_views(
        &mut self,
        views: HashMap<RoomParticipantId, (u32, u32)>,
        max_video_bps: Option<u64>,
    ) {
        self.views = views;
        self.max_video_bps = max_video_bps;
    }

    /// Returns the maximum video bitrate the device set, if it set one.
    pub fn max_video_bps(&self) -> Option<u64> {
        self.max_video_bps
    }

    /// Forwards one frame of `source` on the matching stream. Returns the rid
    /// whose keyframe this receiver needs from the source, if any.
    pub fn forward(
        &mut self,
        now: Instant,
        source: RoomParticipantId,
        data: &MediaData,
    ) -> Option<Option<Rid>> {
        let track = self
            .tracks_out
            .iter_mut()
            .find(|t| t.source == source && t.source_mid == data.mid)?;
        let TrackOutState::Open(mid) = track.state else {
            return None;
        };
        let mut keyframe_wanted = None;
        if let Some(rid) = data.rid {
            // Until the layer choice has picked a layer for this receiver,
            // nothing is forwarded: starting with whatever layer comes first
            // would send the top layer to a receiver that cannot take it.
            track.layer.target?;
            if let Some(wanted) = track.layer.keyframe_request(now) {
                keyframe_wanted = Some(Some(wanted));
            }
            let was = track.layer.current;
            let layer = frame_layer(data);
            if track.layer.on_frame(rid, data.is_keyframe(), layer) == Forward::Drop {
                return keyframe_wanted;
            }
            if was != track.layer.current {
                tracing::debug!(participant = self.id, source, rid = ?rid, "layer switched");
            }
        }
        let writer = self.rtc.writer(mid)?;
        let pt = writer.match_params(data.params)?;
        if let Err(error) = writer.write(pt, data.network_time, data.time, data.data.clone()) {
            tracing::info!(participant = self.id, %error, "forwarding failed; disconnecting");
            self.rtc.disconnect();
        }
        keyframe_wanted
    }

    /// Asks this participant's device for a keyframe of the stream it
    /// publishes on `mid`, at most once per interval for each layer.
    pub fn request_keyframe(&mut self, now: Instant, mid: Mid, rid: Option<Rid>) {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if track
            .last_keyframe_request
            .get(&rid)
            .is_some_and(|last| now.duration_since(*last) < layers::KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        match writer.request_keyframe(rid, KeyframeRequestKind::Pli) {
            Ok(()) => {
                track.last_keyframe_request.insert(rid, now);
            }
            Err(error) => tracing::debug!(participant = self.id, %error, "keyframe request failed"),
        }
    }

    /// Maps a keyframe request on one of this participant's received streams
    /// to the source stream and the layer being forwarded.
    pub fn keyframe_source(&self, mid: Mid) -> Option<(RoomParticipantId, Mid, Option<Rid>)> {
        let track = self.tracks_out.iter().find(|t| t.mid() == Some(mid))?;
        Some((
            track.source,
            track.source_mid,
            track.layer.current.or(track.layer.target),
        ))
    }

    /// Ends the measuring window: turns the bytes counted per layer into
    /// bitrates.
    pub fn roll_rates(&mut self, now: Instant) {
        let seconds = now
            .duration_since(self.window_started)
            .as_secs_f64()
            .max(0.001);
        self.window_started = now;
        for track in &mut self.tracks_in {
            let window = window_rates(&track.counted, seconds);
            track.counted.clear();
            if track.windows.len() == RATE_WINDOWS {
                track.windows.pop_front();
            }
            track.windows.push_back(window);
        }
    }

    /// Returns the layers of a published stream, highest bitrate first.
    pub fn layers(&self, now: Instant, mid: Mid) -> Vec<Layer> {
        let mut layers: Vec<Layer> = self
            .layer_rates(now, mid)
            .into_iter()
            .filter_map(|(rid, rate)| {
                Some(Layer {
                    rid: rid?,
                    bitrate_bps: rate.total_bps,
                    base_bitrate_bps: rate.base_bps,
                })
            })
            .collect();
        layers.sort_by_key(|layer| std::cmp::Reverse(layer.bitrate_bps));
        layers
    }

    /// Returns the bitrate of the stream on `mid`, all layers together, in
    /// bit/s: what a receiver of a stream without simulcast gets.
    pub fn stream_bitrate(&self, now: Instant, mid: Mid) -> u64 {
        self.layer_rates(now, mid)
            .values()
            .map(|rate| rate.total_bps)
            .sum()
    }

    /// Returns the bitrate of each layer of the stream on `mid`, keyed by
    /// rid, with `None` for a stream without simulcast: the mean over the last
    /// whole measuring windows.
    fn layer_rates(&self, now: Instant, mid: Mid) -> HashMap<Option<Rid>, LayerRate> {
        let Some(track) = self.tracks_in.iter().find(|t| t.mid == mid) else {
            return HashMap::new();
        };
        if track.windows.is_empty() {
            // A stream that started within the current measuring window has
            // no rates yet; the bytes counted so far give them.
            let seconds = now
                .duration_since(self.window_started)
                .as_secs_f64()
                .max(0.001);
            return window_rates(&track.counted, seconds);
        }
        // A window without frames of a layer counts as 0 for it, and a
        // window without upper-layer frames as all base layer.
        let count = track.windows.len() as u64;
        let mut sums: HashMap<Option<Rid>, LayerRate> = HashMap::new();
        for window in &track.windows {
            for (rid, rate) in window {
                let sum = sums.entry(*rid).or_default();
                sum.total_bps += rate.total_bps;
                sum.base_bps =
                    Some(sum.base_bps.unwrap_or(0) + rate.base_bps.unwrap_or(rate.total_bps));
            }
        }
        let layered: Vec<Option<Rid>> = sums
            .keys()
            .filter(|rid| {
                track
                    .windows
                    .iter()
                    .any(|w| w.get(rid).is_some_and(|rate| rate.base_bps.is_some()))
            })
            .copied()
            .collect();
        sums.into_iter()
            .map(|(rid, sum)| {
                let mean = LayerRate {
                    total_bps: sum.total_bps / count,
                    base_bps: sum
                        .base_bps
                        .filter(|_| layered.contains(&rid))
                        .map(|base| base / count),
                };
                (rid, mean)
            })
            .collect()
    }

    /// Returns whether the layer bitrates of the stream on `mid` come from a
    /// whole measuring window rather than from the bytes counted so far. A
    /// stream that carried nothing for all of [`RATE_WINDOWS`] counts as
    /// measured at 0: a screen track with no share, or a camera turned off,
    /// must not keep the receiver's estimator from probing.
    pub fn layers_measured(&self, mid: Mid) -> bool {
        self.tracks_in.iter().any(|t| {
            t.mid == mid
                && (t.windows.iter().any(|w| !w.is_empty()) || t.windows.len() == RATE_WINDOWS)
        })
    }

    /// The camera streams this participant receives, with their sources, for
    /// choosing layers. Screen shares are left out: they have no layers.
    pub fn received_video(&self) -> Vec<(RoomParticipantId, Mid)> {
        self.received(false)
    }

    /// Returns the screen shares this participant receives, with their sources.
    pub fn received_screens(&self) -> Vec<(RoomParticipantId, Mid)> {
        self.received(true)
    }

    /// Returns the audio streams this participant receives, with their
    /// sources.
    pub fn received_audio(&self) -> Vec<(RoomParticipantId, Mid)> {
        self.tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Audio && matches!(t.state, TrackOutState::Open(_)))
            .map(|t| (t.source, t.source_mid))
            .collect()
    }

    fn received(&self, screen: bool) -> Vec<(RoomParticipantId, Mid)> {
        self.tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video && matches!(t.state, TrackOutState::Open(_)))
            .filter(|t| t.screen == screen)
            .map(|t| (t.source, t.source_mid))
            .collect()
    }

    /// Returns the size at which this participant shows `source`, if its
    /// device reported one.
    pub fn view(&self, source: RoomParticipantId) -> Option<(u32, u32)> {
        self.views.get(&source).copied()
    }

    /// Returns the part of the bandwidth estimate that video may use once
    /// `audio_bps` of audio is sent, capped by the device's own video limit,
    /// or `None` before the first estimate when the device set no limit.
    /// Without either a receiver gets the top layers, because the estimator
    /// measures the link only from the traffic it carries.
    pub fn video_budget(&self, audio_bps: u64) -> Option<u64> {
        let estimated = self.estimate.map(|estimate| {
            ((estimate.as_f64() * VIDEO_SHARE_OF_ESTIMATE) as u64).saturating_sub(audio_bps)
        });
        match (estimated, self.max_video_bps) {
            (Some(estimated), Some(limit)) => Some(estimated.min(limit)),
            (estimated, limit) => estimated.or(limit),
        }
    }

    /// Returns the choice forwarded of one received stream, or the one a
    /// pending switch goes to.
    pub fn target_choice(&self, source: RoomParticipantId, source_mid: Mid) -> Option<Choice> {
        self.tracks_out
            .iter()
            .find(|t| t.source == source && t.source_mid == source_mid)
            .and_then(|t| t.layer.choice())
    }

    /// The layer being forwarded of one received stream, or the one a
    /// pending switch goes to.
    pub fn target_layer(&self, source: RoomParticipantId, source_mid: Mid) -> Option<Rid> {
        self.tracks_out
            .iter()
            .find(|t| t.source == source && t.source_mid == source_mid)
            .and_then(|t| t.layer.target.or(t.layer.current))
    }

    /// Sets what to forward of one received stream.
    pub fn set_layer(&mut self, source: RoomParticipantId, source_mid: Mid, choice: Choice) {
        if let Some(track) = self
            .tracks_out
            .iter_mut()
            .find(|t| t.source == source && t.source_mid == source_mid)
            && track.layer.choice() != Some(choice)
        {
            tracing::debug!(
                participant = self.id,
                source,
                rid = ?choice.rid,
                base_only = choice.base_only,
                "switching layer"
            );
            track.layer.set_target(choice);
        }
    }

    /// Tells the bandwidth estimator how much this receiver would take if
    /// every stream were sent at its top layer, so that it probes up to it.
    pub fn set_desired_bitrate(&mut self, desired_bps: u64) {
        self.rtc
            .bwe()
            .set_desired_bitrate(Bitrate::bps(desired_bps));
    }
}

/// Turns the bytes of one measuring window of `seconds` into bitrates per
/// layer. Keyframes count, because receivers behind a slow link ask for many
/// of them, and a rate without them makes their layers look cheaper than
/// they are.
fn window_rates(
    counted: &HashMap<Option<Rid>, WindowBytes>,
    seconds: f64,
) -> HashMap<Option<Rid>, LayerRate> {
    let bps = |bytes: u64| (bytes as f64 * 8.0 / seconds) as u64;
    counted
        .iter()
        .map(|(rid, bytes)| {
            let rate = LayerRate {
                total_bps: bps(bytes.total),
                base_bps: (bytes.upper > 0).then(|| bps(bytes.total.saturating_sub(bytes.upper))),
            };
            (*rid, rate)
        })
        .collect()
}

/// Returns the temporal layer of a received frame: from the VP8 payload
/// descriptor, and 0 for other codecs.
fn frame_layer(data: &MediaData) -> FrameLayer {
    match data.codec_extra {
        CodecExtra::Vp8(extra) => FrameLayer {
            id: extra.layer_index,
            sync: extra.sync,
        },
        _ => FrameLayer::default(),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Payload formats that repair or protect media rather than carry a codec.
const NOT_CODECS: [&str; 5] = ["RTX", "RED", "ULPFEC", "FLEXFEC-03", "FLEXFEC"];

/// Returns the encoding names of the video codecs that an SDP offers, such
/// as `H264` and `VP8`, in upper case, without duplicates, in the order of
/// their first appearance.
fn offered_video_codecs(sdp: &str) -> Vec<String> {
    let mut codecs = Vec::new();
    let mut in_video = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
            continue;
        }
        if !in_video {
            continue;
        }
        // a=rtpmap:96 VP8/90000
        let Some(name) = line
            .strip_prefix("a=rtpmap:")
            .and_then(|map| map.split_once(' '))
            .and_then(|(_, encoding)| encoding.split('/').next())
        else {
            continue;
        };
        let name = name.trim().to_ascii_uppercase();
        if !NOT_CODECS.contains(&name.as_str()) && !codecs.contains(&name) {
            codecs.push(name);
        }
    }
    codecs
}

#[cfg(test)]
mod tests {
    use super::offered_video_codecs;

    #[test]
    fn video_codecs_come_from_video_sections_only() {
        let sdp = "v=0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 98\r\n\
                   a=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:97 rtx/90000\r\n\
                   a=rtpmap:102 H264/90000\r\n\
                   a=rtpmap:103 h264/90000\r\n\
                   a=rtpmap:98 red/90000\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(offered_video_codecs(sdp), ["VP8", "H264"]);
    }

    #[test]
    fn video_codecs_empty_without_video_section() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(offered_video_codecs(sdp).is_empty());
    }
}
