//! Microphone capture: native rate and format in, 20 ms frames of 48 kHz mono out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, Sample, SizedSample};
use tokio::sync::mpsc;

use super::resample::StreamResampler;
use super::{
    AudioError, DeviceEvent, DeviceKind, StreamErrors, device_label, find_device, stream_config,
};
use crate::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};

/// Level reported for digital silence, in dBFS.
pub const SILENCE_DBFS: f32 = -100.0;
/// Frames that wait for the consumer before new ones are dropped: 200 ms, so
/// a stalled consumer adds at most that much delay.
const FRAME_QUEUE: usize = 10;
/// Time without a callback after which the device counts as lost.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The microphone's level for a meter: the RMS of the latest 20 ms frame in
/// dBFS, where a full-scale square wave is 0 dBFS. Cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct InputLevel(Arc<AtomicU32>);

impl InputLevel {
    pub(super) fn new() -> Self {
        Self(Arc::new(AtomicU32::new(SILENCE_DBFS.to_bits())))
    }

    /// Returns the latest level, at least [`SILENCE_DBFS`].
    pub fn dbfs(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(super) fn set(&self, dbfs: f32) {
        self.0.store(dbfs.to_bits(), Ordering::Relaxed);
    }
}

/// An open microphone. Dropping it stops the capture.
pub struct Microphone {
    device: String,
    native_rate: u32,
    channels: u16,
    frames: Option<mpsc::Receiver<Vec<f32>>>,
    events: Option<mpsc::UnboundedReceiver<DeviceEvent>>,
    level: InputLevel,
    counters: Arc<Counters>,
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Counters {
    callbacks: AtomicU64,
    dropped_frames: AtomicU64,
    xruns: AtomicU64,
}

/// What the capture thread reports once the stream plays.
struct Opened {
    device: String,
    native_rate: u32,
    channels: u16,
}

impl Microphone {
    /// Opens `device` (an [`AudioDevice`](super::AudioDevice) id or name, or
    /// `None` for the system default) at its native rate and sample format and
    /// starts capturing.
    pub fn start(device: Option<&str>) -> Result<Self, AudioError> {
        let (frames_tx, frames) = mpsc::channel(FRAME_QUEUE);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (ready_tx, ready) = std_mpsc::sync_channel(1);
        let (stop, stop_rx) = std_mpsc::channel();
        let level = InputLevel::new();
        let counters = Arc::new(Counters::default());

        let capture = Capture {
            requested: device.map(str::to_owned),
            frames: frames_tx,
            events: events_tx,
            level: level.clone(),
            counters: Arc::clone(&counters),
        };
        let thread = std::thread::Builder::new()
            .name("hearth-microphone".into())
            .spawn(move || capture.run(ready_tx, stop_rx))
            .map_err(|err| AudioError::OpenFailed {
                kind: DeviceKind::Microphone,
                device: device.unwrap_or("default").to_owned(),
                detail: format!("cannot start the capture thread: {err}"),
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
                    kind: DeviceKind::Microphone,
                    device: device.unwrap_or("default").to_owned(),
                    detail: "the capture thread ended before the stream started".into(),
                });
            }
        };
        tracing::debug!(
            device = %opened.device,
            rate = opened.native_rate,
            channels = opened.channels,
            "microphone started"
        );
        Ok(Self {
            device: opened.device,
            native_rate: opened.native_rate,
            channels: opened.channels,
            frames: Some(frames),
            events: Some(events),
            level,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Returns the id of the device in use.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Returns the device's own sample rate in Hz, before resampling.
    pub fn native_rate(&self) -> u32 {
        self.native_rate
    }

    /// Returns the device's channel count, before the mix to mono.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Takes the receiver of 20 ms frames: 960 samples of 48 kHz mono in
    /// [-1, 1]. Returns `None` after the first call.
    pub fn take_frames(&mut self) -> Option<mpsc::Receiver<Vec<f32>>> {
        self.frames.take()
    }

    /// Takes the receiver of device events, such as the device disappearing.
    /// Returns `None` after the first call.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<DeviceEvent>> {
        self.events.take()
    }

    /// Returns a handle to the input level for a meter.
    pub fn level(&self) -> InputLevel {
        self.level.clone()
    }

    /// Returns the frames dropped because the consumer fell 200 ms behind.
    pub fn dropped_frames(&self) -> u64 {
        self.counters.dropped_frames.load(Ordering::Relaxed)
    }

    /// Returns the overruns the backend reported.
    pub fn xruns(&self) -> u64 {
        self.counters.xruns.load(Ordering::Relaxed)
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// State moved onto the capture thread.
struct Capture {
    requested: Option<String>,
    frames: mpsc::Sender<Vec<f32>>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    level: InputLevel,
    counters: Arc<Counters>,
}

impl Capture {
    /// Opens the stream, reports the result through `ready`, then keeps the
    /// stream alive until `stop` closes, watching for a stalled device.
    fn run(
        self,
        ready: std_mpsc::SyncSender<Result<Opened, AudioError>>,
        stop: std_mpsc::Receiver<()>,
    ) {
        let (stream, opened) = match self.open() {
            Ok(open) => open,
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        let device = opened.device.clone();
        if ready.send(Ok(opened)).is_err() {
            return;
        }

        let lost_reported = Arc::new(AtomicBool::new(false));
        let mut last_count = 0;
        let mut stalled_for = Duration::ZERO;
        let tick = Duration::from_millis(500);
        while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(tick) {
            let count = self.counters.callbacks.load(Ordering::Relaxed);
            stalled_for = if count == last_count {
                stalled_for + tick
            } else {
                Duration::ZERO
            };
            last_count = count;
            if stalled_for >= STALL_TIMEOUT && !lost_reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(device = %device, "microphone delivers no audio");
                let _ = self.events.send(DeviceEvent::Lost {
                    kind: DeviceKind::Microphone,
                    device: device.clone(),
                    detail: format!("no audio for {} s", STALL_TIMEOUT.as_secs()),
                });
            }
        }
        drop(stream);
        tracing::debug!(device = %device, "microphone stopped");
    }

    fn open(&self) -> Result<(cpal::Stream, Opened), AudioError> {
        let kind = DeviceKind::Microphone;
        let device = find_device(kind, self.requested.as_deref())?;
        let label = device_label(&device);
        let supported = device
            .default_input_config()
            .map_err(|err| AudioError::open(kind, &label, &err))?;

        // Some backends reject a fixed callback size, so fall back to theirs.
        let mut config = stream_config(&supported);
        let stream = match self.build(&device, &label, &supported, &config) {
            Err(AudioError::OpenFailed { .. })
                if config.buffer_size != cpal::BufferSize::Default =>
            {
                config.buffer_size = cpal::BufferSize::Default;
                self.build(&device, &label, &supported, &config)?
            }
            other => other?,
        };
        stream
            .play()
            .map_err(|err| AudioError::open(kind, &label, &err))?;

        let opened = Opened {
            device: label,
            native_rate: config.sample_rate,
            channels: config.channels,
        };
        Ok((stream, opened))
    }

    fn build(
        &self,
        device: &cpal::Device,
        label: &str,
        supported: &cpal::SupportedStreamConfig,
        config: &cpal::StreamConfig,
    ) -> Result<cpal::Stream, AudioError> {
        let kind = DeviceKind::Microphone;
        let framer = Framer {
            channels: usize::from(config.channels.max(1)),
            resampler: StreamResampler::new(config.sample_rate, AUDIO_RATE)?,
            mono: Vec::new(),
            resampled: Vec::new(),
            frames: self.frames.clone(),
            level: self.level.clone(),
            counters: Arc::clone(&self.counters),
            resample_failed: false,
        };
        let on_error = self.error_callback(label);
        let config = *config;
        let built = match supported.sample_format() {
            cpal::SampleFormat::F32 => build::<f32>(device, config, framer, on_error),
            cpal::SampleFormat::F64 => build::<f64>(device, config, framer, on_error),
            cpal::SampleFormat::I16 => build::<i16>(device, config, framer, on_error),
            cpal::SampleFormat::I32 => build::<i32>(device, config, framer, on_error),
            cpal::SampleFormat::I8 => build::<i8>(device, config, framer, on_error),
            cpal::SampleFormat::U16 => build::<u16>(device, config, framer, on_error),
            cpal::SampleFormat::U8 => build::<u8>(device, config, framer, on_error),
            cpal::SampleFormat::U32 => build::<u32>(device, config, framer, on_error),
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

    fn error_callback(&self, label: &str) -> impl FnMut(cpal::Error) + Send + 'static {
        let errors = StreamErrors::new(DeviceKind::Microphone, label, self.events.clone());
        let counters = Arc::clone(&self.counters);
        move |error: cpal::Error| {
            if error.kind() == cpal::ErrorKind::Xrun {
                counters.xruns.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.report(&error);
            }
        }
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut framer: Framer,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| framer.push(data),
        on_error,
        None,
    )
}

/// Turns the device's interleaved callbacks into 20 ms frames of 48 kHz mono.
struct Framer {
    channels: usize,
    resampler: StreamResampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    frames: mpsc::Sender<Vec<f32>>,
    level: InputLevel,
    counters: Arc<Counters>,
    resample_failed: bool,
}

impl Framer {
    fn push<T>(&mut self, data: &[T])
    where
        T: Sample,
        f32: FromSample<T>,
    {
        self.counters.callbacks.fetch_add(1, Ordering::Relaxed);
        self.mono.clear();
        self.mono.extend(data.chunks(self.channels).map(|frame| {
            let sum: f32 = frame.iter().map(|&sample| f32::from_sample(sample)).sum();
            sum / frame.len() as f32
        }));

        if let Err(err) = self.resampler.push(&self.mono, &mut self.resampled) {
            if !self.resample_failed {
                tracing::warn!(error = %err, "microphone resampling failed; dropping audio");
                self.resample_failed = true;
            }
            return;
        }

        let whole = self.resampled.len() / AUDIO_FRAME_SAMPLES * AUDIO_FRAME_SAMPLES;
        for frame in self.resampled[..whole].chunks_exact(AUDIO_FRAME_SAMPLES) {
            self.level.set(rms_dbfs(frame));
            if self.frames.try_send(frame.to_vec()).is_err() {
                self.counters.dropped_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.resampled.drain(..whole);
    }
}

/// Returns the RMS level of `samples` in dBFS, at least [`SILENCE_DBFS`].
pub(crate) fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    (10.0 * power.log10()).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_of_full_scale_square_is_zero() {
        let square: Vec<f32> = (0..960)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(rms_dbfs(&square).abs() < 1e-4);
    }

    #[test]
    fn rms_of_half_scale_sine() {
        let sine: Vec<f32> = (0..960)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * i as f32 / 48.0).sin())
            .collect();
        // 0.5 peak is -6.02 dB, and a sine's RMS is 3.01 dB below its peak.
        assert!((rms_dbfs(&sine) + 9.03).abs() < 0.05, "{}", rms_dbfs(&sine));
    }

    #[test]
    fn rms_of_silence_is_the_floor() {
        assert_eq!(rms_dbfs(&[0.0; 960]), SILENCE_DBFS);
        assert_eq!(rms_dbfs(&[]), SILENCE_DBFS);
    }

    #[test]
    fn framer_mixes_stereo_and_cuts_frames() {
        let (frames_tx, mut frames) = mpsc::channel(8);
        let mut framer = Framer {
            channels: 2,
            resampler: StreamResampler::new(AUDIO_RATE, AUDIO_RATE).unwrap(),
            mono: Vec::new(),
            resampled: Vec::new(),
            frames: frames_tx,
            level: InputLevel::new(),
            counters: Arc::new(Counters::default()),
            resample_failed: false,
        };
        // 1.5 frames of stereo with left 0.5 and right -0.1: the mix is 0.2.
        let stereo: Vec<f32> = (0..AUDIO_FRAME_SAMPLES * 3 / 2)
            .flat_map(|_| [0.5f32, -0.1])
            .collect();
        framer.push(&stereo);

        let frame = frames.try_recv().expect("one whole frame");
        assert_eq!(frame.len(), AUDIO_FRAME_SAMPLES);
        assert!(frame.iter().all(|&s| (s - 0.2).abs() < 1e-6));
        assert!(frames.try_recv().is_err(), "half a frame must wait");
        assert!((framer.level.dbfs() - 20.0 * 0.2f32.log10()).abs() < 0.01);

        framer.push(&stereo[..AUDIO_FRAME_SAMPLES]);
        assert!(frames.try_recv().is_ok(), "the second frame completes");
    }
}
