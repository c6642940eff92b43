//! Active speaker detection from the audio level header extension (RFC 6464),
//! without I/O.
//!
//! Each audio packet's header says how loud it is, in -dBov (0 is the loudest,
//! 127 silence). The detector keeps each participant's levels of the last
//! [`WINDOW`] and names the one with the loudest median as the active
//! speaker, provided that it is louder than [`SPEECH_LEVEL`]. A new speaker
//! takes over only after holding the lead for [`HOLD`], so that a cough does
//! not move the highlight.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hearth_proto::RoomParticipantId;

/// How far back levels count.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How long a new speaker must lead before the highlight moves.
pub const HOLD: Duration = Duration::from_millis(400);
/// The quietest median level, in -dBov, that counts as speech.
pub const SPEECH_LEVEL: u8 = 50;

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: HashMap<RoomParticipantId, VecDeque<(Instant, u8)>>,
    active: Option<RoomParticipantId>,
    /// The participant that leads but has not yet held the lead for `HOLD`.
    challenger: Option<(RoomParticipantId, Instant)>,
}

impl SpeakerDetector {
    /// Records the level of one audio packet.
    pub fn on_level(&mut self, now: Instant, participant: RoomParticipantId, level: u8) {
        let levels = self.levels.entry(participant).or_default();
        levels.push_back((now, level.min(127)));
        while levels
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            levels.pop_front();
        }
    }

    /// Forgets a participant that left.
    pub fn remove(&mut self, participant: RoomParticipantId) {
        self.levels.remove(&participant);
        if self.active == Some(participant) {
            self.active = None;
        }
        if self.challenger.is_some_and(|(id, _)| id == participant) {
            self.challenger = None;
        }
    }

    pub fn active(&self) -> Option<RoomParticipantId> {
        self.active
    }

    /// Re-evaluates who speaks. Returns the new active speaker when it
    /// changed, including to nobody.
    pub fn update(&mut self, now: Instant) -> Option<Option<RoomParticipantId>> {
        let leader = self.leader(now);
        if leader == self.active {
            self.challenger = None;
            return None;
        }
        // Silence ends the highlight at once, but a new voice has to hold.
        if leader.is_none() {
            self.active = None;
            self.challenger = None;
            return Some(None);
        }
        match self.challenger {
            Some((id, since)) if Some(id) == leader => {
                if now.duration_since(since) >= HOLD {
                    self.active = leader;
                    self.challenger = None;
                    return Some(leader);
                }
                None
            }
            _ => {
                self.challenger = leader.map(|id| (id, now));
                None
            }
        }
    }

    fn leader(&self, now: Instant) -> Option<RoomParticipantId> {
        self.levels
            .iter()
            .filter_map(|(id, levels)| {
                let mut recent: Vec<u8> = levels
                    .iter()
                    .filter(|(at, _)| now.duration_since(*at) <= WINDOW)
                    .map(|(_, level)| *level)
                    .collect();
                if recent.is_empty() {
                    return None;
                }
                recent.sort_unstable();
                let median = recent[recent.len() / 2];
                (median <= SPEECH_LEVEL).then_some((median, *id))
            })
            .min()
            .map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(detector: &mut SpeakerDetector, start: Instant, ms: u64, id: u64, level: u8) {
        for step in (0..ms).step_by(20) {
            detector.on_level(start + Duration::from_millis(step), id, level);
        }
    }

    #[test]
    fn speaker_loudest_becomes_active_after_hold() {
        let start = Instant::now();
        let mut detector = SpeakerDetector::default();
        feed(&mut detector, start, 1000, 1, 30);
        feed(&mut detector, start, 1000, 2, 90);
        let t = start + Duration::from_millis(1000);
        assert_eq!(detector.update(t), None);
        assert_eq!(detector.update(t + HOLD), Some(Some(1)));
        assert_eq!(detector.active(), Some(1));
    }

    #[test]
    fn silence_is_nobody() {
        let start = Instant::now();
        let mut detector = SpeakerDetector::default();
        feed(&mut detector, start, 1000, 1, 120);
        assert_eq!(detector.update(start + Duration::from_secs(1)), None);
        assert_eq!(detector.active(), None);
    }

    #[test]
    fn speaker_short_burst_does_not_take_over() {
        let start = Instant::now();
        let mut detector = SpeakerDetector::default();
        feed(&mut detector, start, 1000, 1, 40);
        detector.update(start);
        detector.update(start + HOLD);
        assert_eq!(detector.active(), Some(1));
        // Participant 2 is louder for one evaluation only.
        let t = start + Duration::from_millis(1000);
        feed(&mut detector, t, 1000, 2, 10);
        detector.update(t + Duration::from_millis(980));
        feed(&mut detector, t + Duration::from_millis(1000), 1000, 1, 40);
        feed(&mut detector, t + Duration::from_millis(1000), 1000, 2, 120);
        assert_eq!(detector.update(t + Duration::from_millis(2000)), None);
        assert_eq!(detector.active(), Some(1));
    }
}
