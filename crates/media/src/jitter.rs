//! Reorder buffer for one RTP stream, without I/O: packets and the current
//! time go in, complete frames come out.
//!
//! A video frame is complete when every packet from its first sequence number
//! through the one with the marker bit has arrived, so it leaves the buffer as
//! soon as its last packet does. An audio frame is one packet. A gap that stays
//! open for longer than `max_delay` is given up: the frame it belongs to is
//! dropped and the next frame is marked as following a loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Maximum number of packets held, so that a stream of packets that never
/// completes a frame cannot grow the buffer without bound.
const MAX_BUFFERED_PACKETS: usize = 2048;

/// Rule that cuts a stream into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Frames end at the packet with the marker bit (video, RFC 6184 and RFC 7741).
    Marker,
    /// Every packet is a frame (Opus, RFC 7587).
    SinglePacket,
}

/// One received RTP packet, reduced to what reassembly needs.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// A complete frame: the payloads of its packets in sequence order.
#[derive(Debug, Clone)]
pub struct AssembledFrame {
    pub timestamp: u32,
    pub payloads: Vec<Bytes>,
    /// Packets given up since the previous frame.
    pub lost_before: u64,
}

struct Buffered {
    packet: RtpPacket,
    arrived_at: Instant,
}

/// Reorders packets of one SSRC and releases complete frames.
pub struct JitterBuffer {
    framing: Framing,
    max_delay: Duration,
    packets: BTreeMap<u64, Buffered>,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    /// Highest extended sequence number seen, for unwrapping 16-bit numbers.
    highest: Option<u64>,
    lost: u64,
}

impl JitterBuffer {
    pub fn new(framing: Framing, max_delay: Duration) -> Self {
        Self {
            framing,
            max_delay,
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            lost: 0,
        }
    }

    /// Adds a packet. Duplicates and packets older than the last released
    /// frame are ignored.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) {
        let extended = self.extend(packet.sequence_number);
        if self.next.is_some_and(|next| extended < next) {
            return;
        }
        if self.next.is_none() {
            self.next = Some(extended);
        }
        self.packets.entry(extended).or_insert(Buffered {
            packet,
            arrived_at: now,
        });
    }

    /// Returns the next complete frame, giving up gaps older than `max_delay`.
    pub fn pop(&mut self, now: Instant) -> Option<AssembledFrame> {
        loop {
            let next = self.next?;
            if let Some(frame) = self.take_frame_at(next) {
                return Some(frame);
            }
            let (&oldest, buffered) = self.packets.iter().next()?;
            let stale = now.saturating_duration_since(buffered.arrived_at) > self.max_delay;
            if !stale && self.packets.len() <= MAX_BUFFERED_PACKETS {
                return None;
            }
            self.skip_incomplete(next, oldest);
        }
    }

    fn take_frame_at(&mut self, start: u64) -> Option<AssembledFrame> {
        let first = self.packets.get(&start)?;
        let timestamp = first.packet.timestamp;
        let mut end = start;
        match self.framing {
            Framing::SinglePacket => {}
            Framing::Marker => loop {
                let current = &self.packets.get(&end)?.packet;
                if current.marker {
                    break;
                }
                // A packet of the next frame also ends this one, for a sender
                // that does not set the marker bit.
                match self.packets.get(&(end + 1)) {
                    Some(following) if following.packet.timestamp != timestamp => break,
                    Some(_) => end += 1,
                    None => return None,
                }
            },
        }

        let payloads = (start..=end)
            .filter_map(|sequence| self.packets.remove(&sequence))
            .map(|buffered| buffered.packet.payload)
            .collect();
        self.next = Some(end + 1);
        Some(AssembledFrame {
            timestamp,
            payloads,
            lost_before: std::mem::take(&mut self.lost),
        })
    }

    /// Gives up the frame that waits for the missing packets before `oldest`.
    fn skip_incomplete(&mut self, next: u64, oldest: u64) {
        self.lost += oldest.saturating_sub(next);
        match self.framing {
            Framing::SinglePacket => self.next = Some(oldest),
            Framing::Marker => {
                // The packets after the gap that share the oldest packet's
                // timestamp belong to the broken frame.
                let timestamp = self.packets[&oldest].packet.timestamp;
                let broken: Vec<u64> = self
                    .packets
                    .range(oldest..)
                    .take_while(|(_, buffered)| buffered.packet.timestamp == timestamp)
                    .map(|(&sequence, _)| sequence)
                    .collect();
                let last = *broken.last().expect("the oldest packet is in the frame");
                for sequence in &broken {
                    self.packets.remove(sequence);
                }
                self.lost += broken.len() as u64;
                self.next = Some(self.packets.keys().next().copied().unwrap_or(last + 1));
            }
        }
    }

    fn extend(&mut self, sequence_number: u16) -> u64 {
        // Start high enough that a packet from just before the first one cannot underflow.
        let Some(highest) = self.highest else {
            let extended = (1u64 << 32) + u64::from(sequence_number);
            self.highest = Some(extended);
            return extended;
        };
        let delta = i64::from(sequence_number.wrapping_sub(highest as u16) as i16);
        let extended = (highest as i64 + delta) as u64;
        if extended > highest {
            self.highest = Some(extended);
        }
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence_number: u16, timestamp: u32, marker: bool) -> RtpPacket {
        RtpPacket {
            sequence_number,
            timestamp,
            marker,
            payload: Bytes::from(vec![sequence_number as u8]),
        }
    }

    fn video() -> JitterBuffer {
        JitterBuffer::new(Framing::Marker, Duration::from_millis(100))
    }

    #[test]
    fn frame_leaves_with_its_last_packet() {
        let now = Instant::now();
        let mut buffer = video();
        buffer.push(packet(10, 1000, false), now);
        assert!(buffer.pop(now).is_none());
        buffer.push(packet(11, 1000, true), now);
        let frame = buffer.pop(now).unwrap();
        assert_eq!(frame.timestamp, 1000);
        assert_eq!(frame.payloads.len(), 2);
        assert_eq!(frame.lost_before, 0);
    }

    #[test]
    fn reordered_packets_are_sorted() {
        let now = Instant::now();
        let mut buffer = video();
        buffer.push(packet(10, 1000, false), now);
        buffer.push(packet(12, 1000, true), now);
        assert!(buffer.pop(now).is_none());
        buffer.push(packet(11, 1000, false), now);
        let frame = buffer.pop(now).unwrap();
        let order: Vec<u8> = frame.payloads.iter().map(|p| p[0]).collect();
        assert_eq!(order, vec![10, 11, 12]);
    }

    #[test]
    fn gap_is_given_up_after_max_delay() {
        let start = Instant::now();
        let mut buffer = video();
        buffer.push(packet(10, 1000, false), start);
        // Packet 11, the end of frame 1000, is lost.
        buffer.push(packet(12, 4000, false), start);
        buffer.push(packet(13, 4000, true), start);
        assert!(buffer.pop(start).is_none());

        let later = start + Duration::from_millis(150);
        let frame = buffer.pop(later).unwrap();
        assert_eq!(frame.timestamp, 4000);
        assert!(frame.lost_before > 0, "lost_before {}", frame.lost_before);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let now = Instant::now();
        let mut buffer = video();
        buffer.push(packet(65535, 1000, false), now);
        buffer.push(packet(0, 1000, true), now);
        let frame = buffer.pop(now).unwrap();
        assert_eq!(frame.payloads.len(), 2);
    }

    #[test]
    fn late_duplicate_is_ignored() {
        let now = Instant::now();
        let mut buffer = video();
        buffer.push(packet(10, 1000, true), now);
        assert!(buffer.pop(now).is_some());
        buffer.push(packet(10, 1000, true), now);
        assert!(buffer.pop(now).is_none());
    }

    #[test]
    fn audio_packets_are_frames() {
        let now = Instant::now();
        let mut buffer = JitterBuffer::new(Framing::SinglePacket, Duration::from_millis(60));
        buffer.push(packet(1, 960, false), now);
        buffer.push(packet(3, 2880, false), now);
        assert_eq!(buffer.pop(now).unwrap().timestamp, 960);
        assert!(buffer.pop(now).is_none());
        let frame = buffer.pop(now + Duration::from_millis(70)).unwrap();
        assert_eq!(frame.timestamp, 2880);
        assert_eq!(frame.lost_before, 1);
    }

    #[test]
    fn missing_marker_ends_frame_at_next_timestamp() {
        let now = Instant::now();
        let mut buffer = video();
        buffer.push(packet(10, 1000, false), now);
        buffer.push(packet(11, 4000, true), now);
        assert_eq!(buffer.pop(now).unwrap().timestamp, 1000);
        assert_eq!(buffer.pop(now).unwrap().timestamp, 4000);
    }
}
