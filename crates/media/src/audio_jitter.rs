//! Adaptive playout buffer for one Opus stream, without I/O: packets and the
//! current time go in, one decode action per 20 ms frame comes out.
//!
//! The buffer measures each packet's transit time (arrival minus RTP
//! timestamp). Its target delay behind the fastest packet of the last few
//! seconds is the given quantile of that history plus a small margin, so
//! under jitter it grows only as far as most packets need. The target is one
//! frame longer for the first window of a stream and while the window
//! contains a lost packet (one given up that did not arrive later). Then the
//! packet after a lost one is there when the lost frame is due, and its FEC
//! copy can be decoded.
//!
//! The delay grows when the frame due is missing while the delay is below the
//! target: a concealed frame is played and the frame stays due. It shrinks by
//! dropping the frame due when the delay is more than one frame above the
//! target, but during speech only when it is more than three frames above,
//! because a dropped frame of speech is audible while a dropped frame of DTX
//! silence is not. A frame still missing at the target delay is lost: its
//! FEC copy from the next packet is decoded when that packet is there, and
//! it is concealed otherwise. A timestamp gap without a sequence gap is DTX,
//! where the sender sent nothing, and is filled with comfort noise.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};
use crate::jitter::RtpPacket;

/// Duration of one Opus frame as this engine sends it.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
const FRAME_TICKS: u64 = AUDIO_FRAME_SAMPLES as u64;
/// Most packets held; a sender far ahead of the playout cannot grow the
/// buffer without bound.
const MAX_BUFFERED_PACKETS: usize = 500;
/// Frames above the target delay from which frames of speech are dropped
/// too, not only the silent frames of DTX.
const MAX_EXCESS_FRAMES: f64 = 3.0;
/// Transit changes larger than this are a new stream (a sender that
/// restarted its RTP timestamps), not network delay.
const RESET_TRANSIT_JUMP: Duration = Duration::from_secs(5);

/// Settings of an [`AudioJitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioJitterConfig {
    /// History of transit times that the target delay is computed from.
    pub window: Duration,
    /// Share of the packets in the window that must arrive in time.
    pub quantile: f64,
    /// Margin added to the measured delay for timer and scheduling jitter.
    pub margin: Duration,
    /// Upper bound of the target delay.
    pub max_delay: Duration,
    /// Time without packets after which playout stops until the next packet,
    /// longer than the 400 ms between DTX updates. Until then a stream that
    /// stopped (mute, hang-up) is concealed, which Opus fades to silence.
    pub idle_after: Duration,
}

impl Default for AudioJitterConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(5),
            quantile: 0.95,
            margin: Duration::from_millis(5),
            max_delay: Duration::from_millis(400),
            idle_after: Duration::from_millis(600),
        }
    }
}

/// Decoder action for the frame that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayoutAction {
    /// Decode this packet.
    Decode(Bytes),
    /// The frame's packet was lost: decode the FEC copy in this next packet.
    DecodeFec(Bytes),
    /// The frame's packet is lost or late and no FEC copy is at hand:
    /// conceal it with the decoder's packet loss concealment.
    Conceal,
    /// The sender sent nothing for this frame (DTX): play comfort noise,
    /// which the Opus decoder makes when concealing after a DTX update.
    ComfortNoise,
}

/// One 20 ms frame to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayoutFrame {
    /// RTP timestamp of the frame.
    pub timestamp: u32,
    pub action: PlayoutAction,
}

/// Counters of an [`AudioJitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioJitterStats {
    pub frames_decoded: u64,
    pub frames_recovered_by_fec: u64,
    pub frames_concealed: u64,
    pub frames_comfort_noise: u64,
    /// Concealed frames played to let the delay grow.
    pub frames_inserted: u64,
    /// Frames dropped to let the delay shrink.
    pub frames_dropped: u64,
    /// Packets that arrived after their frame was played.
    pub packets_late: u64,
}

struct Buffered {
    sequence: u64,
    payload: Bytes,
}

enum State {
    /// Waiting for a packet, then for the target delay.
    Idle,
    Playing {
        /// Extended RTP timestamp of the frame due.
        next: u64,
        /// Extended sequence number of the last packet decoded.
        last_sequence: Option<u64>,
        /// Frames concealed since that packet, which turn out to be DTX
        /// comfort noise when the next packet follows it without a sequence gap.
        concealed_since_packet: u64,
    },
}

/// Reorders the packets of one Opus stream and paces their playout.
pub struct AudioJitterBuffer {
    config: AudioJitterConfig,
    packets: BTreeMap<u64, Buffered>,
    state: State,
    /// Arrival instant and transit time in seconds of recent packets.
    history: VecDeque<(Instant, f64)>,
    /// When frames were given up, with their extended timestamps; a frame
    /// whose packet arrives late after all is removed again.
    losses: VecDeque<(Instant, u64)>,
    origin: Option<Instant>,
    last_arrival: Option<Instant>,
    highest_sequence: Option<u64>,
    highest_timestamp: Option<u64>,
    stats: AudioJitterStats,
}

impl AudioJitterBuffer {
    pub fn new(config: AudioJitterConfig) -> Self {
        Self {
            config,
            packets: BTreeMap::new(),
            state: State::Idle,
            history: VecDeque::new(),
            losses: VecDeque::new(),
            origin: None,
            last_arrival: None,
            highest_sequence: None,
            highest_timestamp: None,
            stats: AudioJitterStats::default(),
        }
    }

    pub fn stats(&self) -> AudioJitterStats {
        self.stats
    }

    /// Returns how many packets wait in the buffer.
    pub fn buffered_packets(&self) -> usize {
        self.packets.len()
    }

    /// Returns the delay that playout aims for behind the fastest packet.
    pub fn target_delay(&self) -> Duration {
        let Some(base) = self.base_transit() else {
            return self.config.margin;
        };
        let mut relative: Vec<f64> = self.history.iter().map(|(_, t)| t - base).collect();
        relative.sort_by(f64::total_cmp);
        let rank = (self.config.quantile * relative.len() as f64).ceil() as usize;
        let quantile = relative[rank.clamp(1, relative.len()) - 1];
        let mut target = Duration::from_secs_f64(quantile.max(0.0)) + self.config.margin;
        if !self.losses.is_empty() {
            target += FRAME_DURATION;
        }
        target.min(self.config.max_delay)
    }

    /// Returns how long after the fastest possible arrival the frame due
    /// plays at `now`, or `None` while idle.
    pub fn current_delay(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Idle => None,
            State::Playing { next, .. } => Some(Duration::from_secs_f64(
                self.delay_of(next, now).unwrap_or(0.0).max(0.0),
            )),
        }
    }

    /// Adds a packet that arrived at `now`. Duplicates and packets whose
    /// frame has been played already are ignored.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let sequence = self.extend_sequence(packet.sequence_number);
        let timestamp = self.extend_timestamp(packet.timestamp);
        let transit = now.duration_since(origin).as_secs_f64() - ticks_to_secs(timestamp);
        if self
            .base_transit()
            .is_some_and(|base| (transit - base).abs() > RESET_TRANSIT_JUMP.as_secs_f64())
        {
            tracing::debug!("audio timestamps jumped; restarting playout");
            self.restart(now);
            return self.push(packet, now);
        }
        self.last_arrival = Some(now);
        self.history.push_back((now, transit));
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.config.window)
        {
            self.history.pop_front();
        }

        if let State::Idle = self.state
            && self.losses.is_empty()
        {
            // Until the stream has been loss-free for a window, keep the
            // frame of headroom that FEC needs: growing it later means
            // playing a concealed frame in the middle of speech.
            self.losses.push_back((now, timestamp));
        }
        if let State::Playing { next, .. } = self.state
            && timestamp < next
        {
            self.stats.packets_late += 1;
            self.losses.retain(|(_, lost)| *lost != timestamp);
            return;
        }
        self.packets.entry(timestamp).or_insert(Buffered {
            sequence,
            payload: packet.payload,
        });
        while self.packets.len() > MAX_BUFFERED_PACKETS {
            self.packets.pop_first();
        }
    }

    /// Returns the frame to play at `now`, or `None` while nothing plays:
    /// before the first packet has waited for the target delay, and after
    /// `idle_after` without packets. Call it once per 20 ms.
    pub fn pop(&mut self, now: Instant) -> Option<PlayoutFrame> {
        if self.packets.is_empty()
            && self
                .last_arrival
                .is_none_or(|at| now.duration_since(at) > self.config.idle_after)
        {
            self.state = State::Idle;
            return None;
        }
        while self
            .losses
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.config.window)
        {
            self.losses.pop_front();
        }
        let target = self.target_delay().as_secs_f64();
        if let State::Idle = self.state {
            let (&first, _) = self.packets.first_key_value()?;
            if self.delay_of(first, now)? < target {
                return None;
            }
            self.state = State::Playing {
                next: first,
                last_sequence: None,
                concealed_since_packet: 0,
            };
        }

        let State::Playing { next, .. } = self.state else {
            unreachable!("the state is Playing from here on");
        };
        let delay = self.delay_of(next, now)?;
        let frame = FRAME_DURATION.as_secs_f64();
        let excess = delay - target - self.config.margin.as_secs_f64();
        // Dropping a frame of speech is audible, so the delay shrinks while
        // the sender sends nothing (DTX) unless it is far above the target.
        let due_is_missing = !self.packets.contains_key(&next);
        if excess > frame && (due_is_missing || excess > MAX_EXCESS_FRAMES * frame) {
            self.drop_frame(next);
        }
        Some(self.play_due(now, target))
    }

    /// Skips the frame at `next` so that the delay shrinks by one frame.
    fn drop_frame(&mut self, next: u64) {
        if let Some(dropped) = self.packets.remove(&next)
            && let State::Playing { last_sequence, .. } = &mut self.state
        {
            *last_sequence = Some(dropped.sequence);
        }
        self.advance();
        self.stats.frames_dropped += 1;
    }

    fn play_due(&mut self, now: Instant, target: f64) -> PlayoutFrame {
        let State::Playing {
            next,
            last_sequence,
            concealed_since_packet,
        } = self.state
        else {
            unreachable!("only called while playing");
        };
        let timestamp = next as u32;

        if let Some(buffered) = self.packets.remove(&next) {
            if last_sequence.is_some_and(|last| buffered.sequence == last + 1) {
                // The frames concealed since the last packet were never sent.
                self.stats.frames_concealed -= concealed_since_packet;
                self.stats.frames_comfort_noise += concealed_since_packet;
                for _ in 0..concealed_since_packet {
                    self.losses.pop_back();
                }
            }
            self.state = State::Playing {
                next,
                last_sequence: Some(buffered.sequence),
                concealed_since_packet: 0,
            };
            self.advance();
            self.stats.frames_decoded += 1;
            return PlayoutFrame {
                timestamp,
                action: PlayoutAction::Decode(buffered.payload),
            };
        }

        // The frame is missing. Below the target delay, wait for it.
        if self.delay_of(next, now).unwrap_or(0.0) < target {
            self.stats.frames_inserted += 1;
            return PlayoutFrame {
                timestamp,
                action: PlayoutAction::Conceal,
            };
        }

        let following = self
            .packets
            .range(next + 1..)
            .next()
            .map(|(&ts, buffered)| (ts, buffered.sequence, buffered.payload.clone()));
        self.advance();
        let action = match following {
            Some((ts, sequence, _))
                if last_sequence.is_some_and(|last| sequence == last + 1) && ts > next =>
            {
                self.stats.frames_comfort_noise += 1;
                PlayoutAction::ComfortNoise
            }
            Some((ts, _, payload)) if ts == next + FRAME_TICKS => {
                self.losses.push_back((now, next));
                self.stats.frames_recovered_by_fec += 1;
                PlayoutAction::DecodeFec(payload)
            }
            _ => {
                self.losses.push_back((now, next));
                self.stats.frames_concealed += 1;
                if let State::Playing {
                    concealed_since_packet,
                    ..
                } = &mut self.state
                {
                    *concealed_since_packet += 1;
                }
                PlayoutAction::Conceal
            }
        };
        PlayoutFrame { timestamp, action }
    }

    fn advance(&mut self) {
        if let State::Playing { next, .. } = &mut self.state {
            *next += FRAME_TICKS;
        }
    }

    /// Returns how late, in seconds, the frame with extended timestamp
    /// `timestamp` plays at `now` compared with the fastest recent packet.
    fn delay_of(&self, timestamp: u64, now: Instant) -> Option<f64> {
        let origin = self.origin?;
        let base = self.base_transit()?;
        Some(now.duration_since(origin).as_secs_f64() - ticks_to_secs(timestamp) - base)
    }

    fn base_transit(&self) -> Option<f64> {
        self.history.iter().map(|(_, t)| *t).reduce(f64::min)
    }

    fn restart(&mut self, now: Instant) {
        let stats = self.stats;
        *self = Self::new(self.config);
        self.stats = stats;
        self.origin = Some(now);
    }

    fn extend_sequence(&mut self, sequence: u16) -> u64 {
        let delta = i64::from(
            sequence.wrapping_sub(
                self.highest_sequence
                    .map_or(sequence, |highest| highest as u16),
            ) as i16,
        );
        extend(
            &mut self.highest_sequence,
            u64::from(sequence),
            delta,
            1 << 20,
        )
    }

    fn extend_timestamp(&mut self, timestamp: u32) -> u64 {
        let delta = i64::from(
            timestamp.wrapping_sub(
                self.highest_timestamp
                    .map_or(timestamp, |highest| highest as u32),
            ) as i32,
        );
        extend(
            &mut self.highest_timestamp,
            u64::from(timestamp),
            delta,
            1 << 40,
        )
    }
}

/// Unwraps a wrapping counter against the highest value seen. The first
/// value starts at `offset` plus itself, so earlier packets cannot underflow.
fn extend(highest: &mut Option<u64>, value: u64, delta: i64, offset: u64) -> u64 {
    let Some(current) = *highest else {
        *highest = Some(offset + value);
        return offset + value;
    };
    let extended = (current as i64 + delta) as u64;
    if extended > current {
        *highest = Some(extended);
    }
    extended
}

fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / f64::from(AUDIO_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = FRAME_DURATION;

    /// A simulated sender: packet `n` leaves at `start + n * 20 ms`.
    struct Stream {
        start: Instant,
        first_sequence: u16,
        first_timestamp: u32,
    }

    impl Stream {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                first_sequence: 65_500,
                first_timestamp: u32::MAX - 20 * 960,
            }
        }

        fn packet(&self, n: u64) -> RtpPacket {
            self.packet_with_sequence(n, n)
        }

        fn packet_with_sequence(&self, n: u64, sequence: u64) -> RtpPacket {
            RtpPacket {
                sequence_number: self.first_sequence.wrapping_add(sequence as u16),
                timestamp: self.first_timestamp.wrapping_add((n * FRAME_TICKS) as u32),
                marker: false,
                payload: Bytes::from((n as u32).to_be_bytes().to_vec()),
            }
        }

        fn sent_at(&self, n: u64) -> Instant {
            self.start + FRAME * n as u32
        }
    }

    /// Runs `frames` frames through the buffer with each packet delayed by
    /// `delay(n)` (or lost for `None`), popping every 20 ms at a phase of
    /// 7 ms after the sends until every packet that arrived has played, and
    /// returns the actions and the delays.
    fn simulate(
        frames: u64,
        delay: impl Fn(u64) -> Option<Duration>,
    ) -> (AudioJitterBuffer, Vec<PlayoutAction>, Vec<Duration>) {
        simulate_with_dtx(frames, delay, |_| false)
    }

    /// Like [`simulate`], with the frames for which `dtx(n)` holds never
    /// sent and not counted in the sequence numbers.
    fn simulate_with_dtx(
        frames: u64,
        delay: impl Fn(u64) -> Option<Duration>,
        dtx: impl Fn(u64) -> bool,
    ) -> (AudioJitterBuffer, Vec<PlayoutAction>, Vec<Duration>) {
        let stream = Stream::new();
        let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
        let mut arrivals: Vec<(Instant, u64, u64)> = Vec::new();
        for (sequence, n) in (0..frames).filter(|&n| !dtx(n)).enumerate() {
            if let Some(d) = delay(n) {
                arrivals.push((stream.sent_at(n) + d, n, sequence as u64));
            }
        }
        arrivals.sort();
        let mut arrivals = arrivals.into_iter().peekable();
        let mut actions = Vec::new();
        let mut delays = Vec::new();
        for tick in 0.. {
            if arrivals.peek().is_none() && buffer.buffered_packets() == 0 {
                break;
            }
            let now = stream.start + FRAME * tick as u32 + Duration::from_millis(7);
            while let Some((at, n, sequence)) = arrivals.next_if(|(at, _, _)| *at <= now) {
                buffer.push(stream.packet_with_sequence(n, sequence), at);
            }
            if let Some(frame) = buffer.pop(now) {
                actions.push(frame.action);
                delays.push(buffer.current_delay(now).unwrap_or_default());
            }
        }
        (buffer, actions, delays)
    }

    fn decoded_payload(action: &PlayoutAction) -> Option<u32> {
        match action {
            PlayoutAction::Decode(payload) => {
                Some(u32::from_be_bytes(payload[..4].try_into().unwrap()))
            }
            _ => None,
        }
    }

    #[test]
    fn clean_network_plays_every_frame_with_low_delay() {
        let (buffer, actions, delays) = simulate(500, |n| Some(Duration::from_micros(n % 3 * 300)));
        let stats = buffer.stats();
        assert_eq!(stats.frames_decoded, 500);
        assert_eq!(stats.frames_concealed, 0);
        assert_eq!(stats.frames_inserted, 0);
        let decoded: Vec<u32> = actions.iter().filter_map(decoded_payload).collect();
        assert_eq!(decoded, (0..500).collect::<Vec<u32>>(), "frames in order");
        let worst = delays.iter().max().unwrap();
        assert!(
            *worst <= Duration::from_millis(30),
            "delay reached {worst:?}"
        );
        assert!(buffer.target_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn jitter_grows_the_delay_only_as_needed() {
        // Deterministic jitter spread over 0 to 60 ms, which also reorders.
        let jitter = |n: u64| Some(Duration::from_millis((n * 37) % 61));
        let (buffer, _, delays) = simulate(1_000, jitter);
        let stats = buffer.stats();
        // After the first seconds of adaptation nearly every frame is in time.
        assert!(
            stats.frames_concealed < 40,
            "{} frames concealed",
            stats.frames_concealed
        );
        let target = buffer.target_delay();
        assert!(
            target >= Duration::from_millis(55) && target <= Duration::from_millis(70),
            "target {target:?} for jitter up to 60 ms, {stats:?}"
        );
        let settled = &delays[delays.len() - 300..];
        let worst = settled.iter().max().unwrap();
        assert!(
            *worst <= target + FRAME + Duration::from_millis(10),
            "delay {worst:?} beyond target {target:?}"
        );

        let (small, _, _) = simulate(1_000, |n| Some(Duration::from_millis((n * 37) % 21)));
        assert!(
            small.target_delay() + Duration::from_millis(30) < target,
            "20 ms jitter needs less delay ({:?}) than 60 ms ({target:?})",
            small.target_delay()
        );
    }

    #[test]
    fn delay_shrinks_in_the_pause_after_jitter_ends() {
        let delay = |n: u64| {
            Some(if n < 300 {
                Duration::from_millis((n * 37) % 81)
            } else {
                Duration::ZERO
            })
        };
        // A pause of 600 ms, sent as DTX, after the jitter has left the window.
        let pause = |n: u64| (700..730).contains(&n);
        let (buffer, _, delays) = simulate_with_dtx(1_000, delay, pause);
        let stats = buffer.stats();
        assert!(stats.frames_dropped > 0, "{stats:?}");
        let before_pause = delays[delays.len() - 300];
        let last = *delays.last().unwrap();
        // Speech is dropped only down to three frames above the target.
        assert!(
            before_pause > Duration::from_millis(40),
            "delay {before_pause:?} kept through speech"
        );
        assert!(last <= Duration::from_millis(30), "delay still {last:?}");
    }

    #[test]
    fn delay_far_above_target_drops_speech() {
        // One 200 ms spike, then a clean network without pauses.
        let delay = |n: u64| {
            Some(if (50..60).contains(&n) {
                Duration::from_millis(200 - (n - 50) * 20)
            } else {
                Duration::ZERO
            })
        };
        let (_, _, delays) = simulate(800, delay);
        let last = *delays.last().unwrap();
        assert!(last <= Duration::from_millis(90), "delay still {last:?}");
    }

    #[test]
    fn lost_packets_are_recovered_from_fec() {
        let lost = [20, 40];
        let (buffer, actions, _) =
            simulate(100, |n| (!lost.contains(&n)).then_some(Duration::ZERO));
        let stats = buffer.stats();
        // The headroom kept after the start has the next packet in time.
        assert_eq!(stats.frames_recovered_by_fec, 2, "{stats:?}");
        assert_eq!(stats.frames_concealed, 0, "{stats:?}");
        assert_eq!(stats.frames_inserted, 0, "{stats:?}");
        let fec_at = actions
            .iter()
            .position(|action| matches!(action, PlayoutAction::DecodeFec(_)))
            .expect("a FEC decode");
        let PlayoutAction::DecodeFec(payload) = &actions[fec_at] else {
            unreachable!()
        };
        assert_eq!(
            payload[..4],
            21u32.to_be_bytes(),
            "FEC comes from packet 21"
        );
        assert_eq!(decoded_payload(&actions[fec_at + 1]), Some(21));
    }

    #[test]
    fn loss_after_a_clean_window_is_still_recovered() {
        let (buffer, actions, _) = simulate(800, |n| (n != 500).then_some(Duration::ZERO));
        let stats = buffer.stats();
        // The headroom's target went after 5 s without loss, but without a
        // pause the delay stayed, so the loss at 10 s is still recovered.
        assert_eq!(stats.frames_recovered_by_fec, 1, "{stats:?}");
        assert!(matches!(actions[500], PlayoutAction::DecodeFec(_)));
    }

    #[test]
    fn burst_loss_is_concealed() {
        let (buffer, _, _) = simulate(100, |n| (!(40..50).contains(&n)).then_some(Duration::ZERO));
        let stats = buffer.stats();
        // Only the burst's last frame has its next packet, 50, in time.
        assert_eq!(stats.frames_concealed, 9, "{stats:?}");
        assert_eq!(stats.frames_inserted, 0, "{stats:?}");
        assert_eq!(stats.frames_recovered_by_fec, 1, "{stats:?}");
        assert_eq!(stats.frames_decoded, 90, "{stats:?}");
    }

    #[test]
    fn dtx_gap_plays_comfort_noise() {
        let stream = Stream::new();
        let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
        // Frames 0..10 are speech, 10..30 silence sent as nothing, then one
        // DTX update at frame 30 and speech again from 31, with sequence
        // numbers that continue without a gap.
        let sent: Vec<(u64, u64)> = (0..10)
            .map(|n| (n, n))
            .chain((30..40).map(|n| (n, n - 20)))
            .collect();
        let mut actions = Vec::new();
        let mut sent = sent.into_iter().peekable();
        for tick in 0..41u64 {
            let now = stream.start + FRAME * tick as u32 + Duration::from_millis(7);
            while let Some((n, sequence)) = sent.next_if(|(n, _)| stream.sent_at(*n) <= now) {
                buffer.push(stream.packet_with_sequence(n, sequence), stream.sent_at(n));
            }
            if let Some(frame) = buffer.pop(now) {
                actions.push(frame.action);
            }
        }
        let stats = buffer.stats();
        assert_eq!(stats.frames_decoded, 20);
        assert_eq!(stats.frames_comfort_noise, 20, "{stats:?}");
        assert_eq!(stats.frames_concealed, 0, "{stats:?}");
    }

    #[test]
    fn late_packet_is_counted_and_ignored() {
        let (buffer, actions, _) = simulate(100, |n| {
            Some(if n == 60 {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            })
        });
        assert_eq!(buffer.stats().packets_late, 1);
        assert!(
            !actions
                .iter()
                .any(|action| decoded_payload(action) == Some(60))
        );
    }

    #[test]
    fn playout_stops_when_packets_stop() {
        let stream = Stream::new();
        let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
        buffer.push(stream.packet(0), stream.start);
        // Playout starts after the margin and the frame of headroom for FEC.
        assert!(
            buffer
                .pop(stream.start + Duration::from_millis(7))
                .is_none()
        );
        assert!(
            buffer
                .pop(stream.start + Duration::from_millis(27))
                .is_some()
        );
        let later = stream.start + Duration::from_secs(2);
        assert!(buffer.pop(later).is_none());
        assert!(buffer.current_delay(later).is_none());
    }

    #[test]
    fn timestamp_jump_restarts_playout() {
        let stream = Stream::new();
        let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
        for n in 0..5 {
            buffer.push(stream.packet(n), stream.sent_at(n));
            buffer.pop(stream.sent_at(n) + Duration::from_millis(7));
        }
        let mut restarted = stream.packet(5);
        restarted.timestamp = restarted.timestamp.wrapping_add(1_000_000_000);
        let now = stream.sent_at(5);
        buffer.push(restarted, now);
        let frame = buffer
            .pop(now + Duration::from_millis(27))
            .expect("plays the new stream");
        assert!(matches!(frame.action, PlayoutAction::Decode(_)));
    }
}
