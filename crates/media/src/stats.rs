//! Call statistics, counted by the send and receive tasks.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Counters shared by the tasks of one peer connection.
#[derive(Debug, Default)]
pub struct StatsCounters {
    pub video_frames_sent: AtomicU64,
    pub video_keyframes_sent: AtomicU64,
    pub video_packets_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub keyframe_requests_received: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    pub audio_bytes_sent: AtomicU64,

    pub video_packets_received: AtomicU64,
    pub video_bytes_received: AtomicU64,
    pub video_frames_decoded: AtomicU64,
    pub video_decode_errors: AtomicU64,
    pub video_frames_dropped: AtomicU64,
    pub keyframe_requests_sent: AtomicU64,
    pub audio_packets_received: AtomicU64,
    pub audio_bytes_received: AtomicU64,
    pub audio_packets_concealed: AtomicU64,
    pub audio_frames_recovered_by_fec: AtomicU64,
    /// The audio jitter buffer's current playout delay, in microseconds.
    pub audio_playout_delay_us: AtomicU64,
    /// The packet loss the audio encoder plans its FEC for, in percent.
    audio_expected_loss_percent: AtomicU64,

    first_video_frame_at: Mutex<Option<Instant>>,
    first_video_packet_at: Mutex<Option<Instant>>,
    last_video_packet_at: Mutex<Option<Instant>>,
    first_audio_packet_at: Mutex<Option<Instant>>,
    last_audio_packet_at: Mutex<Option<Instant>>,
}

impl StatsCounters {
    pub(crate) fn set_audio_expected_loss(&self, percent: i32) {
        self.audio_expected_loss_percent
            .store(percent.max(0) as u64, Ordering::Relaxed);
    }
}

pub(crate) fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

fn mark_first(slot: &Mutex<Option<Instant>>, now: Instant) {
    let mut guard = slot
        .lock()
        .expect("stats lock is never held across a panic");
    guard.get_or_insert(now);
}

fn mark_last(slot: &Mutex<Option<Instant>>, now: Instant) {
    *slot
        .lock()
        .expect("stats lock is never held across a panic") = Some(now);
}

fn read(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
    *slot
        .lock()
        .expect("stats lock is never held across a panic")
}

impl StatsCounters {
    /// Copies the audio jitter buffer's counters and delay.
    pub(crate) fn audio_playout_updated(
        &self,
        jitter: &crate::audio_jitter::AudioJitterStats,
        delay: Option<Duration>,
    ) {
        let concealed = jitter.frames_concealed + jitter.frames_inserted;
        self.audio_packets_concealed
            .store(concealed, Ordering::Relaxed);
        self.audio_frames_recovered_by_fec
            .store(jitter.frames_recovered_by_fec, Ordering::Relaxed);
        if let Some(delay) = delay {
            self.audio_playout_delay_us
                .store(delay.as_micros() as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn video_packet_received(&self, bytes: usize, now: Instant) {
        add(&self.video_packets_received, 1);
        add(&self.video_bytes_received, bytes as u64);
        mark_first(&self.first_video_packet_at, now);
        mark_last(&self.last_video_packet_at, now);
    }

    pub(crate) fn audio_packet_received(&self, bytes: usize, now: Instant) {
        add(&self.audio_packets_received, 1);
        add(&self.audio_bytes_received, bytes as u64);
        mark_first(&self.first_audio_packet_at, now);
        mark_last(&self.last_audio_packet_at, now);
    }

    pub(crate) fn video_frame_decoded(&self, now: Instant) {
        add(&self.video_frames_decoded, 1);
        mark_first(&self.first_video_frame_at, now);
    }

    pub fn first_video_frame_at(&self) -> Option<Instant> {
        read(&self.first_video_frame_at)
    }

    /// Takes a snapshot of all counters.
    pub fn snapshot(&self) -> CallStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let kbps = |bytes: u64, first: Option<Instant>, last: Option<Instant>| {
            let seconds = span(first, last).as_secs_f64();
            if seconds > 0.0 {
                bytes as f64 * 8.0 / seconds / 1000.0
            } else {
                0.0
            }
        };
        CallStats {
            video_frames_sent: load(&self.video_frames_sent),
            video_keyframes_sent: load(&self.video_keyframes_sent),
            video_packets_sent: load(&self.video_packets_sent),
            video_bytes_sent: load(&self.video_bytes_sent),
            keyframe_requests_received: load(&self.keyframe_requests_received),
            audio_packets_sent: load(&self.audio_packets_sent),
            audio_bytes_sent: load(&self.audio_bytes_sent),
            video_packets_received: load(&self.video_packets_received),
            video_bytes_received: load(&self.video_bytes_received),
            video_frames_decoded: load(&self.video_frames_decoded),
            video_decode_errors: load(&self.video_decode_errors),
            video_frames_dropped: load(&self.video_frames_dropped),
            keyframe_requests_sent: load(&self.keyframe_requests_sent),
            audio_packets_received: load(&self.audio_packets_received),
            audio_bytes_received: load(&self.audio_bytes_received),
            audio_packets_concealed: load(&self.audio_packets_concealed),
            audio_frames_recovered_by_fec: load(&self.audio_frames_recovered_by_fec),
            audio_playout_delay_ms: load(&self.audio_playout_delay_us) as f64 / 1000.0,
            audio_expected_loss_percent: load(&self.audio_expected_loss_percent),
            video_kbps_received: kbps(
                load(&self.video_bytes_received),
                read(&self.first_video_packet_at),
                read(&self.last_video_packet_at),
            ),
            audio_kbps_received: kbps(
                load(&self.audio_bytes_received),
                read(&self.first_audio_packet_at),
                read(&self.last_audio_packet_at),
            ),
        }
    }
}

fn span(first: Option<Instant>, last: Option<Instant>) -> Duration {
    match (first, last) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    }
}

/// A snapshot of one peer connection's media counters. Bytes are RTP payload bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    pub video_frames_sent: u64,
    pub video_keyframes_sent: u64,
    pub video_packets_sent: u64,
    pub video_bytes_sent: u64,
    pub keyframe_requests_received: u64,
    pub audio_packets_sent: u64,
    pub audio_bytes_sent: u64,
    pub video_packets_received: u64,
    pub video_bytes_received: u64,
    pub video_frames_decoded: u64,
    pub video_decode_errors: u64,
    pub video_frames_dropped: u64,
    pub keyframe_requests_sent: u64,
    pub audio_packets_received: u64,
    pub audio_bytes_received: u64,
    /// Audio frames concealed because their packet was lost or late.
    pub audio_packets_concealed: u64,
    pub audio_frames_recovered_by_fec: u64,
    /// How long the audio jitter buffer delays playout behind the fastest packet.
    pub audio_playout_delay_ms: f64,
    /// The packet loss the audio encoder plans its in-band FEC for, in
    /// percent, following the receiver's reports; 0 before audio is sent.
    pub audio_expected_loss_percent: u64,
    /// Received video payload rate between the first and last packet, in kbit/s.
    pub video_kbps_received: f64,
    pub audio_kbps_received: f64,
}
