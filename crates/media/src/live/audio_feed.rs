//! Audio feeds: the channel that microphones and files write into, and a
//! looping WAV file as a stand-in microphone.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::error::{MediaError, Result};
use crate::frame::AUDIO_FRAME_SAMPLES;
use crate::live::AudioFeed;
use crate::source::wav::{self, AudioClip};

/// Frames an [`AudioFeed`] buffers before a producer's `try_send` fails:
/// 200 ms of 20 ms frames, so a stalled sender adds at most that much delay.
pub const AUDIO_FEED_CAPACITY: usize = 10;

const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Creates the channel an audio source writes into. Real-time producers such
/// as a cpal input callback should use `try_send` and drop the frame when the
/// channel is full, because blocking in the callback breaks capture.
pub fn audio_channel() -> (mpsc::Sender<Vec<f32>>, AudioFeed) {
    mpsc::channel(AUDIO_FEED_CAPACITY)
}

/// Loads a WAV file (any rate and channel count, see [`wav::load`]) and plays
/// it in a loop into a new feed, one 20 ms frame every 20 ms. The playing
/// thread stops once the feed is dropped.
pub fn loop_wav(path: &Path) -> Result<AudioFeed> {
    let clip = wav::load(path)?;
    loop_audio_clip(Arc::new(clip))
}

/// Plays a clip in a loop into a new feed, paced in real time like a
/// microphone. An empty clip plays silence.
pub fn loop_audio_clip(clip: Arc<AudioClip>) -> Result<AudioFeed> {
    let (sender, feed) = audio_channel();
    std::thread::Builder::new()
        .name("hearth-audio-loop".into())
        .spawn(move || play_loop(&clip.samples, &sender))
        .map_err(|source| MediaError::ThreadSpawn {
            name: "audio loop",
            source,
        })?;
    Ok(feed)
}

fn play_loop(samples: &[f32], sender: &mpsc::Sender<Vec<f32>>) {
    let started = Instant::now();
    let mut dropped: u64 = 0;
    for index in 0u64.. {
        let frame = clip_frame(samples, index);
        match sender.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::debug!(dropped, "audio feed is full; dropping looped frames");
                }
            }
            Err(TrySendError::Closed(_)) => return,
        }
        let next = started + FRAME_DURATION * u32::try_from(index + 1).unwrap_or(u32::MAX);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Returns frame `index` of the clip repeated without a gap.
fn clip_frame(samples: &[f32], index: u64) -> Vec<f32> {
    if samples.is_empty() {
        return vec![0.0; AUDIO_FRAME_SAMPLES];
    }
    let start = index as usize * AUDIO_FRAME_SAMPLES;
    (start..start + AUDIO_FRAME_SAMPLES)
        .map(|position| samples[position % samples.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_frame_wraps_around() {
        let samples: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let frame = clip_frame(&samples, 1);
        assert_eq!(frame.len(), AUDIO_FRAME_SAMPLES);
        assert_eq!(frame[0], 960.0);
        assert_eq!(frame[39], 999.0);
        assert_eq!(frame[40], 0.0);
    }

    #[test]
    fn empty_clip_plays_silence() {
        assert_eq!(clip_frame(&[], 7), vec![0.0; AUDIO_FRAME_SAMPLES]);
    }
}
