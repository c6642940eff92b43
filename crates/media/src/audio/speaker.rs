//! Speaker playback: the engine's 48 kHz mono in, the device's rate and channels out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use tokio::sync::{mpsc, oneshot};

use super::microphone::STALL_TIMEOUT;
use super::resample::StreamResampler;
use super::{
    AudioError, DeviceEvent, DeviceKind, StreamErrors, device_label, find_device, stream_config,
};
use crate::frame::AUDIO_RATE;
use crate::receive::DecodedAudio;

/// Most call audio kept waiting for the device. Older samples are dropped
/// when more arrives, so a burst from the jitter buffer cannot build up delay.
const MAX_QUEUED: Duration = Duration::from_millis(60);
/// Chunks of decoded audio the sender can hold before the feeder takes them.
const CHUNK_QUEUE: usize = 16;
/// The speaker test: a 660 Hz tone at -12 dBFS peak for 800 ms.
const TEST_TONE_HZ: f32 = 660.0;
const TEST_TONE_PEAK: f32 = 0.25;
const TEST_TONE_LENGTH: Duration = Duration::from_millis(800);
const TEST_TONE_FADE: Duration = Duration::from_millis(20);

/// An open speaker. Dropping it stops the playback.
pub struct Speaker {
    device: String,
    native_rate: u32,
    channels: u16,
    sender: mpsc::Sender<DecodedAudio>,
    queue: Arc<PlayQueue>,
    events: Option<mpsc::UnboundedReceiver<DeviceEvent>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Samples at the device rate, shared by the feeder and the device callback.
struct PlayQueue {
    samples: Mutex<Queued>,
    max_call_samples: usize,
    /// Played samples kept for an echo reference that is not read: 1 s.
    max_played_samples: usize,
    callbacks: AtomicU64,
    underruns: AtomicU64,
    dropped_samples: AtomicU64,
    xruns: AtomicU64,
}

#[derive(Default)]
struct Queued {
    /// Call audio, capped at `MAX_QUEUED`.
    call: VecDeque<f32>,
    /// Clips such as the speaker test, played in full and mixed over the call.
    clip: VecDeque<f32>,
    /// Whether call audio has arrived since the last underrun was counted.
    call_flowing: bool,
    /// Everything played, at the device rate, for the echo canceller while
    /// an [`EchoReference`] exists.
    played: Option<VecDeque<f32>>,
}

impl PlayQueue {
    fn lock(&self) -> MutexGuard<'_, Queued> {
        // A panic while holding the lock leaves plain sample queues, still usable.
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push_call(&self, samples: &[f32]) {
        let mut queued = self.lock();
        queued.call.extend(samples);
        queued.call_flowing = true;
        let excess = queued.call.len().saturating_sub(self.max_call_samples);
        if excess > 0 {
            queued.call.drain(..excess);
            self.dropped_samples
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
    }

    /// Fills `output` (interleaved, `channels` per frame) with the next
    /// samples, and with silence where the queues run dry.
    fn fill<T: SizedSample + FromSample<f32>>(&self, output: &mut [T], channels: usize) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
        let mut queued = self.lock();
        let mut short = false;
        for frame in output.chunks_mut(channels) {
            let call = queued.call.pop_front().unwrap_or_else(|| {
                short = true;
                0.0
            });
            let clip = queued.clip.pop_front().unwrap_or(0.0);
            let mixed = (call + clip).clamp(-1.0, 1.0);
            frame.fill(T::from_sample(mixed));
            if let Some(played) = &mut queued.played {
                played.push_back(mixed);
            }
        }
        let max_played = self.max_played_samples;
        if let Some(played) = &mut queued.played {
            let excess = played.len().saturating_sub(max_played);
            played.drain(..excess);
        }
        if short && queued.call_flowing {
            queued.call_flowing = false;
            self.underruns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Speaker {
    /// Opens `device` (an [`AudioDevice`](super::AudioDevice) id or name, or
    /// `None` for the system default) at its native rate and channel count and
    /// starts playing silence until audio arrives through [`sender`](Self::sender).
    pub fn start(device: Option<&str>) -> Result<Self, AudioError> {
        let (sender, chunks) = mpsc::channel(CHUNK_QUEUE);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
        let (stop, stop_rx) = oneshot::channel();
        let requested = device.map(str::to_owned);

        let thread = std::thread::Builder::new()
            .name("hearth-speaker".into())
            .spawn(move || run(requested, chunks, events_tx, ready_tx, stop_rx))
            .map_err(|err| AudioError::OpenFailed {
                kind: DeviceKind::Speaker,
                device: device.unwrap_or("default").to_owned(),
                detail: format!("cannot start the playback thread: {err}"),
            })?;

        let opened = match ready.recv() {
            Ok(Ok(opened)) => opened,
            Ok(Err(err)) => {
                let _ = thread.join();
                return Err(err);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(AudioError::OpenFailed {
                    kind: DeviceKind::Speaker,
                    device: device.unwrap_or("default").to_owned(),
                    detail: "the playback thread ended before the stream started".into(),
                });
            }
        };
        tracing::debug!(
            device = %opened.device,
            rate = opened.native_rate,
            channels = opened.channels,
            "speaker started"
        );
        Ok(Self {
            device: opened.device,
            native_rate: opened.native_rate,
            channels: opened.channels,
            sender,
            queue: opened.queue,
            events: Some(events),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Returns a sender for decoded remote audio, for example for
    /// [`RemoteSinks::audio`](crate::RemoteSinks::audio). Chunks play in the
    /// order they arrive, and their timestamps are ignored.
    pub fn sender(&self) -> mpsc::Sender<DecodedAudio> {
        self.sender.clone()
    }

    /// Plays 48 kHz mono `samples` in full, mixed over any call audio, for
    /// example a WAV file loaded with [`crate::source::wav::load`].
    pub fn play_clip(&self, samples: &[f32]) -> Result<(), AudioError> {
        let mut resampler = StreamResampler::new(AUDIO_RATE, self.native_rate)?;
        let mut resampled = Vec::with_capacity(samples.len() * self.native_rate as usize / 48_000);
        resampler.push(samples, &mut resampled)?;
        // Silence pushes the resampler's last partial chunk out.
        let flush = vec![0.0; (AUDIO_RATE / 50) as usize];
        resampler.push(&flush, &mut resampled)?;
        self.queue.lock().clip.extend(resampled);
        Ok(())
    }

    /// Plays a short tone for a speaker test in the settings.
    pub fn play_test_sound(&self) -> Result<(), AudioError> {
        self.play_clip(&test_tone())
    }

    /// Starts recording what the device plays, call audio and clips mixed,
    /// for the echo canceller. From then on the speaker keeps up to the last
    /// second of played audio until a reference takes it, and references
    /// taken from the same speaker share those samples.
    pub fn echo_reference(&self) -> Result<EchoReference, AudioError> {
        self.queue.lock().played = Some(VecDeque::new());
        Ok(EchoReference {
            queue: Arc::clone(&self.queue),
            resampler: StreamResampler::new(self.native_rate, AUDIO_RATE)?,
            drained: Vec::new(),
        })
    }

    /// Returns the id of the device in use.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Returns the device's own sample rate in Hz.
    pub fn native_rate(&self) -> u32 {
        self.native_rate
    }

    /// Returns the device's channel count; every channel plays the same mono signal.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Takes the receiver of device events, such as the device disappearing.
    /// Returns `None` after the first call.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<DeviceEvent>> {
        self.events.take()
    }

    /// Returns the call audio waiting for the device, at most 60 ms.
    pub fn queued(&self) -> Duration {
        let samples = self.queue.lock().call.len() as u64;
        Duration::from_micros(samples * 1_000_000 / u64::from(self.native_rate))
    }

    /// Returns how often call audio ran out while playing, so silence filled in.
    pub fn underruns(&self) -> u64 {
        self.queue.underruns.load(Ordering::Relaxed)
    }

    /// Returns the call samples dropped to keep the queue at 60 ms or less.
    pub fn dropped_samples(&self) -> u64 {
        self.queue.dropped_samples.load(Ordering::Relaxed)
    }

    /// Returns the underruns the backend reported.
    pub fn xruns(&self) -> u64 {
        self.queue.xruns.load(Ordering::Relaxed)
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The far-end signal as a speaker played it: the reference that echo
/// cancellation subtracts from the microphone. After the speaker is dropped
/// it receives nothing.
pub struct EchoReference {
    queue: Arc<PlayQueue>,
    resampler: StreamResampler,
    drained: Vec<f32>,
}

impl EchoReference {
    /// Appends everything played since the last call to `output`, as 48 kHz
    /// mono. At most the last second is kept between calls.
    pub fn take(&mut self, output: &mut Vec<f32>) -> Result<(), AudioError> {
        self.drained.clear();
        if let Some(played) = &mut self.queue.lock().played {
            self.drained.extend(played.drain(..));
        }
        self.resampler.push(&self.drained, output)
    }
}

/// What the playback thread reports once the stream plays.
struct Opened {
    device: String,
    native_rate: u32,
    channels: u16,
    queue: Arc<PlayQueue>,
}

/// Body of the playback thread: opens the stream, then resamples incoming
/// chunks into the play queue until `stop` fires.
fn run(
    requested: Option<String>,
    mut chunks: mpsc::Receiver<DecodedAudio>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    ready: std::sync::mpsc::SyncSender<Result<Opened, AudioError>>,
    mut stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(AudioError::OpenFailed {
                kind: DeviceKind::Speaker,
                device: requested.unwrap_or_else(|| "default".into()),
                detail: format!("cannot start the playback runtime: {err}"),
            }));
            return;
        }
    };
    let (stream, device, mut resampler, queue) = match open(requested.as_deref(), &events) {
        Ok(open) => open,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let opened = Opened {
        device: device.clone(),
        native_rate: stream.1,
        channels: stream.2,
        queue: Arc::clone(&queue),
    };
    if ready.send(Ok(opened)).is_err() {
        return;
    }

    let mut resampled = Vec::new();
    let mut watchdog = Watchdog::default();
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                chunk = chunks.recv() => {
                    let Some(chunk) = chunk else { break };
                    resampled.clear();
                    if let Err(err) = resampler.push(&chunk.samples, &mut resampled) {
                        tracing::warn!(error = %err, "speaker resampling failed; dropping audio");
                        continue;
                    }
                    queue.push_call(&resampled);
                }
                _ = tick.tick() => {
                    let callbacks = queue.callbacks.load(Ordering::Relaxed);
                    if watchdog.stalled(callbacks, Duration::from_millis(500)) {
                        tracing::warn!(device = %device, "speaker stopped playing");
                        let _ = events.send(DeviceEvent::Lost {
                            kind: DeviceKind::Speaker,
                            device: device.clone(),
                            detail: format!("the device took no audio for {} s", STALL_TIMEOUT.as_secs()),
                        });
                    }
                }
            }
        }
    });
    drop(stream);
    tracing::debug!(device = %device, "speaker stopped");
}

/// Reports, once, that the callback count stopped moving for `STALL_TIMEOUT`.
#[derive(Default)]
struct Watchdog {
    last_count: u64,
    stalled_for: Duration,
    reported: bool,
}

impl Watchdog {
    fn stalled(&mut self, count: u64, tick: Duration) -> bool {
        if count == self.last_count {
            self.stalled_for += tick;
        } else {
            self.stalled_for = Duration::ZERO;
        }
        self.last_count = count;
        if self.stalled_for >= STALL_TIMEOUT && !self.reported {
            self.reported = true;
            return true;
        }
        false
    }
}

type OpenStream = (cpal::Stream, u32, u16);

fn open(
    requested: Option<&str>,
    events: &mpsc::UnboundedSender<DeviceEvent>,
) -> Result<(OpenStream, String, StreamResampler, Arc<PlayQueue>), AudioError> {
    let kind = DeviceKind::Speaker;
    let device = find_device(kind, requested)?;
    let label = device_label(&device);
    let supported = device
        .default_output_config()
        .map_err(|err| AudioError::open(kind, &label, &err))?;
    let rate = supported.sample_rate();
    let queue = Arc::new(PlayQueue {
        samples: Mutex::new(Queued::default()),
        max_call_samples: (u128::from(rate) * MAX_QUEUED.as_micros() / 1_000_000) as usize,
        max_played_samples: rate as usize,
        callbacks: AtomicU64::new(0),
        underruns: AtomicU64::new(0),
        dropped_samples: AtomicU64::new(0),
        xruns: AtomicU64::new(0),
    });

    // Some backends reject a fixed callback size, so fall back to theirs.
    let mut config = stream_config(&supported);
    let stream = match build(&device, &label, &supported, &config, &queue, events) {
        Err(AudioError::OpenFailed { .. }) if config.buffer_size != cpal::BufferSize::Default => {
            config.buffer_size = cpal::BufferSize::Default;
            build(&device, &label, &supported, &config, &queue, events)?
        }
        other => other?,
    };
    stream
        .play()
        .map_err(|err| AudioError::open(kind, &label, &err))?;

    let resampler = StreamResampler::new(AUDIO_RATE, rate)?;
    Ok(((stream, rate, config.channels), label, resampler, queue))
}

fn build(
    device: &cpal::Device,
    label: &str,
    supported: &cpal::SupportedStreamConfig,
    config: &cpal::StreamConfig,
    queue: &Arc<PlayQueue>,
    events: &mpsc::UnboundedSender<DeviceEvent>,
) -> Result<cpal::Stream, AudioError> {
    let kind = DeviceKind::Speaker;
    let on_error = {
        let errors = StreamErrors::new(kind, label, events.clone());
        let queue = Arc::clone(queue);
        move |error: cpal::Error| {
            if error.kind() == cpal::ErrorKind::Xrun {
                queue.xruns.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.report(&error);
            }
        }
    };
    let queue = Arc::clone(queue);
    let config = *config;
    let built = match supported.sample_format() {
        cpal::SampleFormat::F32 => build_typed::<f32>(device, config, queue, on_error),
        cpal::SampleFormat::F64 => build_typed::<f64>(device, config, queue, on_error),
        cpal::SampleFormat::I16 => build_typed::<i16>(device, config, queue, on_error),
        cpal::SampleFormat::I32 => build_typed::<i32>(device, config, queue, on_error),
        cpal::SampleFormat::I8 => build_typed::<i8>(device, config, queue, on_error),
        cpal::SampleFormat::U16 => build_typed::<u16>(device, config, queue, on_error),
        cpal::SampleFormat::U8 => build_typed::<u8>(device, config, queue, on_error),
        cpal::SampleFormat::U32 => build_typed::<u32>(device, config, queue, on_error),
        other => {
            return Err(AudioError::OpenFailed {
                kind,
                device: label.to_owned(),
                detail: format!("sample format {other} is not supported"),
            });
        }
    };
    built.map_err(|err| AudioError::open(kind, label, &err))
}

fn build_typed<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    queue: Arc<PlayQueue>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    device.build_output_stream::<T, _, _>(
        config,
        move |output: &mut [T], _: &cpal::OutputCallbackInfo| queue.fill(output, channels),
        on_error,
        None,
    )
}

/// Returns the speaker test tone as 48 kHz mono, faded in and out so it does not click.
pub(super) fn test_tone() -> Vec<f32> {
    let rate = AUDIO_RATE as f32;
    let len = (rate * TEST_TONE_LENGTH.as_secs_f32()) as usize;
    let fade = (rate * TEST_TONE_FADE.as_secs_f32()) as usize;
    (0..len)
        .map(|i| {
            let envelope = (i.min(len - 1 - i) as f32 / fade as f32).min(1.0);
            let phase = 2.0 * std::f32::consts::PI * TEST_TONE_HZ * i as f32 / rate;
            TEST_TONE_PEAK * envelope * phase.sin()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_call_samples: usize) -> PlayQueue {
        PlayQueue {
            samples: Mutex::new(Queued::default()),
            max_call_samples,
            max_played_samples: 100,
            callbacks: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            dropped_samples: AtomicU64::new(0),
            xruns: AtomicU64::new(0),
        }
    }

    #[test]
    fn fill_copies_mono_to_every_channel() {
        let queue = queue(100);
        queue.push_call(&[0.5, -0.5]);
        let mut output = [0i16; 6];
        queue.fill(&mut output, 3);
        assert_eq!(output[..3], [16384; 3]);
        assert_eq!(output[3..], [-16384; 3]);
    }

    #[test]
    fn underrun_plays_silence_and_counts_once() {
        let queue = queue(100);
        queue.push_call(&[0.5]);
        let mut output = [1.0f32; 4];
        queue.fill(&mut output, 1);
        assert_eq!(output, [0.5, 0.0, 0.0, 0.0]);
        queue.fill(&mut output, 1);
        assert_eq!(output, [0.0; 4]);
        assert_eq!(queue.underruns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn push_drops_the_oldest_beyond_the_cap() {
        let queue = queue(3);
        queue.push_call(&[0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(queue.dropped_samples.load(Ordering::Relaxed), 2);
        let mut output = [0.0f32; 3];
        queue.fill(&mut output, 1);
        assert_eq!(output, [0.3, 0.4, 0.5]);
    }

    #[test]
    fn clip_mixes_over_call_audio() {
        let queue = queue(100);
        queue.push_call(&[0.25, 0.25]);
        queue.lock().clip.extend([0.5, 0.9, 0.1]);
        let mut output = [0.0f32; 3];
        queue.fill(&mut output, 1);
        assert_eq!(output, [0.75, 1.0, 0.1]);
    }

    #[test]
    fn test_tone_is_faded_and_bounded() {
        let tone = test_tone();
        assert_eq!(tone.len(), 38_400);
        assert!(tone[0].abs() < 1e-6);
        assert!(tone.iter().all(|s| s.abs() <= TEST_TONE_PEAK));
        let peak = tone.iter().fold(0.0f32, |max, s| max.max(s.abs()));
        assert!(peak > TEST_TONE_PEAK * 0.99);
    }
}
