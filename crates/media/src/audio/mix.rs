//! Mixing the decoded audio of several remote streams into one signal for
//! the speaker. A group call needs it because each participant's audio
//! arrives on its own stream, and a speaker plays one.
//!
//! [`StreamMixer`] is sans-IO: push each stream's decoded samples as they
//! arrive, and pull a fixed number of mixed samples at the playback pace.

use std::collections::{HashMap, VecDeque};

/// Most samples kept per stream before the oldest are dropped: 200 ms at
/// 48 kHz. A stream that runs ahead of playback this far is late anyway,
/// and a longer queue would only add delay.
pub const MAX_QUEUED_SAMPLES: usize = 9_600;

/// Sums the queued samples of every stream, so people who talk at once are
/// heard at once. Samples are 48 kHz mono in -1.0..=1.0.
#[derive(Debug, Default)]
pub struct StreamMixer {
    queues: HashMap<String, VecDeque<f32>>,
}

impl StreamMixer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `samples` of `stream`, dropping that stream's oldest samples
    /// beyond [`MAX_QUEUED_SAMPLES`].
    pub fn push(&mut self, stream: &str, samples: &[f32]) {
        let queue = self.queues.entry(stream.to_owned()).or_default();
        queue.extend(samples);
        let excess = queue.len().saturating_sub(MAX_QUEUED_SAMPLES);
        queue.drain(..excess);
    }

    /// Forgets a stream, as when its participant leaves.
    pub fn remove(&mut self, stream: &str) {
        self.queues.remove(stream);
    }

    /// Returns the next `count` samples of the mix, clamped to -1.0..=1.0.
    /// A stream with fewer samples queued adds silence for the rest.
    /// Returns `None` when no stream has anything queued.
    pub fn pull(&mut self, count: usize) -> Option<Vec<f32>> {
        if self.queues.values().all(VecDeque::is_empty) {
            return None;
        }
        let mut mixed = vec![0.0f32; count];
        for queue in self.queues.values_mut() {
            let available = queue.len().min(count);
            for (out, sample) in mixed.iter_mut().zip(queue.drain(..available)) {
                *out += sample;
            }
        }
        for sample in &mut mixed {
            *sample = sample.clamp(-1.0, 1.0);
        }
        Some(mixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_streams_are_summed() {
        let mut mixer = StreamMixer::new();
        mixer.push("1", &[0.25, 0.25, 0.25]);
        mixer.push("2", &[0.5, -0.5]);
        assert_eq!(mixer.pull(3), Some(vec![0.75, -0.25, 0.25]));
    }

    #[test]
    fn mix_is_clamped() {
        let mut mixer = StreamMixer::new();
        mixer.push("1", &[0.8, -0.8]);
        mixer.push("2", &[0.8, -0.8]);
        assert_eq!(mixer.pull(2), Some(vec![1.0, -1.0]));
    }

    #[test]
    fn empty_mixer_pulls_nothing() {
        let mut mixer = StreamMixer::new();
        assert_eq!(mixer.pull(4), None);
        mixer.push("1", &[0.1]);
        assert!(mixer.pull(4).is_some());
        assert_eq!(mixer.pull(4), None);
    }

    #[test]
    fn queue_drops_the_oldest_beyond_the_cap() {
        let mut mixer = StreamMixer::new();
        mixer.push("1", &vec![0.1; MAX_QUEUED_SAMPLES]);
        mixer.push("1", &[0.9]);
        let mixed = mixer.pull(MAX_QUEUED_SAMPLES).expect("queued samples");
        assert_eq!(mixed.last(), Some(&0.9));
        assert_eq!(mixer.pull(1), None);
    }

    #[test]
    fn removed_stream_is_not_mixed() {
        let mut mixer = StreamMixer::new();
        mixer.push("1", &[0.5]);
        mixer.push("2", &[0.25]);
        mixer.remove("1");
        assert_eq!(mixer.pull(1), Some(vec![0.25]));
    }
}
