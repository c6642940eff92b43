//! The microphone and speaker of a call, following the system's devices.
//!
//! [`CallDevices`] keeps one microphone and one speaker open on a thread of
//! its own. Every second it lists the devices, and it reacts at once to a
//! stream that reports its device lost. When the chosen device disappears,
//! the call moves to the system default. When the chosen device comes back,
//! or a new default appears while nothing is chosen, the call moves there.
//! The call sees
//! none of this: it reads one [`AudioFeed`], sends decoded audio to one
//! sender, and gets the new speaker's [`EchoReference`] through its
//! [`LiveControls`] after each speaker change, so echo cancellation keeps
//! subtracting what is actually played.
//!
//! The choice of device is [`choose_device`], without I/O: the chosen device
//! by id or name while it is listed, else the default.

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::microphone::rms_dbfs;
use super::{
    AudioDevice, AudioError, DeviceEvent, DeviceKind, InputLevel, Microphone, Speaker, list_on,
};
use crate::live::{AUDIO_FEED_CAPACITY, AudioFeed, LiveControls};
use crate::receive::DecodedAudio;

/// How often the device lists are read to find new, removed and default devices.
pub const DEVICE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Decoded chunks that wait for the speaker thread before new ones are dropped.
const SPEAKER_INPUT_QUEUE: usize = 16;

/// Returns the device a call should use: the one whose id or name is
/// `preferred` while it is listed, else the default, else none.
pub fn choose_device<'a>(
    preferred: Option<&str>,
    devices: &'a [AudioDevice],
) -> Option<&'a AudioDevice> {
    let chosen = preferred.and_then(|preferred| {
        devices
            .iter()
            .find(|device| device.id == preferred || device.name == preferred)
    });
    chosen.or_else(|| devices.iter().find(|device| device.is_default))
}

/// The devices a call uses at the moment; `None` where none could be opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentDevices {
    pub microphone: Option<AudioDevice>,
    pub speaker: Option<AudioDevice>,
    /// Device changes since the start, opening the first devices included.
    pub changes: u64,
    /// Why the last attempt to open a device failed, if the last one failed.
    pub last_error: Option<String>,
    /// Whether the device lists were read at least once, so that a missing
    /// device means that none could be opened rather than not yet.
    pub listed: bool,
}

/// A request to the device thread.
enum Command {
    Prefer(DeviceKind, Option<String>),
    Attach(LiveControls),
    PlayClip(Vec<f32>),
    /// Feeds the microphone's frames to one more sender.
    AddFeed(mpsc::Sender<Vec<f32>>),
}

/// The microphone and speaker of a call, reopened when devices come and go.
/// Dropping it closes both.
pub struct CallDevices {
    commands: Option<mpsc::UnboundedSender<Command>>,
    frames: Option<AudioFeed>,
    speaker_input: mpsc::Sender<DecodedAudio>,
    level: InputLevel,
    current: watch::Receiver<CurrentDevices>,
    thread: Option<JoinHandle<()>>,
}

impl CallDevices {
    /// Opens the microphone and the speaker whose id or name is given, or the
    /// system defaults for `None`, and keeps following the devices. A chosen
    /// device that is not there is no error: the default serves until it
    /// appears. Fails only when the device thread cannot start.
    pub fn start(microphone: Option<&str>, speaker: Option<&str>) -> Result<Self, AudioError> {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (frames_tx, frames) = mpsc::channel(AUDIO_FEED_CAPACITY);
        let (speaker_input, speaker_rx) = mpsc::channel(SPEAKER_INPUT_QUEUE);
        let (current_tx, current) = watch::channel(CurrentDevices::default());
        let level = InputLevel::new();

        let follower = Follower {
            microphone: Side::new(microphone),
            speaker: Side::new(speaker),
            open_microphone: None,
            open_speaker: None,
            controls: None,
            feeds: vec![frames_tx],
            level: level.clone(),
            current: current_tx,
            host: None,
        };
        let thread = std::thread::Builder::new()
            .name("hearth-call-devices".into())
            .spawn(move || follower.run(command_rx, speaker_rx))
            .map_err(|err| AudioError::OpenFailed {
                kind: DeviceKind::Microphone,
                device: microphone.unwrap_or("default").to_owned(),
                detail: format!("cannot start the device thread: {err}"),
            })?;
        Ok(Self {
            commands: Some(commands),
            frames: Some(frames),
            speaker_input,
            level,
            current,
            thread: Some(thread),
        })
    }

    /// Takes the microphone's 20 ms frames of 48 kHz mono, from whichever
    /// device is open. Returns `None` after the first call.
    pub fn take_frames(&mut self) -> Option<AudioFeed> {
        self.frames.take()
    }

    /// Returns one more feed of the microphone's frames, for a second call
    /// that sends at the same time, as while a call moves into a group call.
    /// Each feed gets every frame until its receiver is dropped.
    pub fn add_feed(&self) -> AudioFeed {
        let (feed, frames) = mpsc::channel(AUDIO_FEED_CAPACITY);
        self.send(Command::AddFeed(feed));
        frames
    }

    /// Returns a sender for decoded remote audio, played on whichever speaker
    /// is open. A full queue means the speaker is behind, so drop the chunk.
    pub fn speaker_input(&self) -> mpsc::Sender<DecodedAudio> {
        self.speaker_input.clone()
    }

    /// Returns the microphone level for a meter, from whichever device is open.
    pub fn level(&self) -> InputLevel {
        self.level.clone()
    }

    /// Returns a receiver of the devices in use, updated after each change.
    pub fn current(&self) -> watch::Receiver<CurrentDevices> {
        self.current.clone()
    }

    /// Remembers `device` (an id or a name, `None` for the system default) as
    /// the choice for `kind`, and switches to it when it is listed.
    pub fn prefer(&self, kind: DeviceKind, device: Option<&str>) {
        self.send(Command::Prefer(kind, device.map(str::to_owned)));
    }

    /// Hands the call's controls over, so that microphone changes keep
    /// feeding the encoder and each speaker change replaces the echo
    /// reference. Sets the current speaker's reference at once.
    pub fn attach(&self, controls: LiveControls) {
        self.send(Command::Attach(controls));
    }

    /// Plays 48 kHz mono `samples` once on the current speaker, mixed over
    /// the call, for example a speaker test.
    pub fn play_clip(&self, samples: Vec<f32>) {
        self.send(Command::PlayClip(samples));
    }

    /// Plays the speaker test tone on the current speaker.
    pub fn play_test_sound(&self) {
        self.play_clip(super::speaker::test_tone());
    }

    fn send(&self, command: Command) {
        if let Some(commands) = &self.commands
            && commands.send(command).is_err()
        {
            tracing::warn!("the call's device thread has stopped");
        }
    }
}

impl Drop for CallDevices {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The choice and the open device of one kind, microphone or speaker.
struct Side {
    preferred: Option<String>,
    open: Option<AudioDevice>,
}

impl Side {
    fn new(preferred: Option<&str>) -> Self {
        Self {
            preferred: preferred.map(str::to_owned),
            open: None,
        }
    }

    /// Returns the device to switch to, when it is not the open one.
    fn switch_to(&self, devices: &[AudioDevice]) -> Option<AudioDevice> {
        let target = choose_device(self.preferred.as_deref(), devices)?;
        let open_id = self.open.as_ref().map(|device| device.id.as_str());
        (open_id != Some(target.id.as_str())).then(|| target.clone())
    }
}

/// State owned by the device thread.
struct Follower {
    microphone: Side,
    speaker: Side,
    open_microphone: Option<OpenMicrophone>,
    open_speaker: Option<OpenSpeaker>,
    controls: Option<LiveControls>,
    /// Destinations of the microphone's frames: the feed of `take_frames` and
    /// those of `add_feed`, while their receivers live.
    feeds: Vec<mpsc::Sender<Vec<f32>>>,
    level: InputLevel,
    current: watch::Sender<CurrentDevices>,
    /// Kept between polls, because creating a PulseAudio host connects anew.
    host: Option<cpal::Host>,
}

struct OpenMicrophone {
    /// Kept open; dropping it stops the stream.
    _device: Microphone,
    frames: AudioFeed,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
}

struct OpenSpeaker {
    device: Speaker,
    input: mpsc::Sender<DecodedAudio>,
    events: mpsc::UnboundedReceiver<DeviceEvent>,
}

impl Follower {
    /// Body of the device thread: forwards audio, applies commands and
    /// follows the devices until the commands close.
    fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut speaker_input: mpsc::Receiver<DecodedAudio>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the call's device runtime");
                return;
            }
        };
        self.poll();
        runtime.block_on(async {
            let mut tick = tokio::time::interval(DEVICE_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => self.apply(command),
                        None => break,
                    },
                    capture = next_capture(&mut self.open_microphone) => match capture {
                        Capture::Frame(frame) => self.forward_frame(frame),
                        Capture::Event(event) => self.on_event(event, DeviceKind::Microphone),
                    },
                    chunk = speaker_input.recv() => match chunk {
                        Some(chunk) => self.forward_chunk(chunk),
                        None => break,
                    },
                    event = next_event(self.open_speaker.as_mut().map(|open| &mut open.events)) => {
                        self.on_event(event, DeviceKind::Speaker);
                    }
                    _ = tick.tick() => self.poll(),
                }
            }
        });
        tracing::debug!("call devices closed");
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Prefer(kind, preferred) => {
                tracing::debug!(%kind, preferred = ?preferred, "device chosen");
                self.side_mut(kind).preferred = preferred;
                self.poll();
            }
            Command::Attach(controls) => {
                // The frames reach the encoder through `take_frames`, so only
                // the echo reference goes through the controls.
                self.controls = Some(controls);
                self.update_echo_reference();
            }
            Command::AddFeed(feed) => self.feeds.push(feed),
            Command::PlayClip(samples) => match &self.open_speaker {
                Some(open) => {
                    if let Err(err) = open.device.play_clip(&samples) {
                        tracing::warn!(error = %err, "cannot play the clip");
                    }
                }
                None => tracing::warn!("no speaker is open to play the clip on"),
            },
        }
    }

    fn side_mut(&mut self, kind: DeviceKind) -> &mut Side {
        match kind {
            DeviceKind::Microphone => &mut self.microphone,
            DeviceKind::Speaker => &mut self.speaker,
        }
    }

    fn forward_frame(&mut self, frame: Option<Vec<f32>>) {
        let Some(frame) = frame else {
            // The capture thread ended without an event; the next poll reopens.
            self.close(DeviceKind::Microphone);
            return;
        };
        self.level.set(rms_dbfs(&frame));
        self.feeds.retain(|feed| !feed.is_closed());
        if let Some((last, others)) = self.feeds.split_last() {
            // A full feed means the encoder is behind; dropping keeps the
            // delay bounded.
            for feed in others {
                let _ = feed.try_send(frame.clone());
            }
            let _ = last.try_send(frame);
        }
    }

    fn forward_chunk(&mut self, chunk: DecodedAudio) {
        if let Some(open) = &self.open_speaker {
            let _ = open.input.try_send(chunk);
        }
    }

    fn on_event(&mut self, event: Option<DeviceEvent>, kind: DeviceKind) {
        match event {
            Some(DeviceEvent::Lost { device, detail, .. }) => {
                tracing::warn!(%kind, %device, %detail, "device lost; switching");
                self.close(kind);
                self.poll();
            }
            Some(DeviceEvent::Error { device, detail, .. }) => {
                tracing::debug!(%kind, %device, %detail, "device reported an error");
            }
            None => {
                // The stream's event sender is gone: treat it as lost.
                self.close(kind);
                self.poll();
            }
        }
    }

    /// Closes the open device of `kind`, so the next poll opens another.
    fn close(&mut self, kind: DeviceKind) {
        match kind {
            DeviceKind::Microphone => self.open_microphone = None,
            DeviceKind::Speaker => {
                self.open_speaker = None;
                self.update_echo_reference();
            }
        }
        self.side_mut(kind).open = None;
        self.publish(None);
    }

    /// Lists the devices and switches each kind whose target changed.
    fn poll(&mut self) {
        for kind in [DeviceKind::Microphone, DeviceKind::Speaker] {
            let devices = match self.list(kind) {
                Ok(devices) => devices,
                Err(err) => {
                    tracing::debug!(%kind, error = %err, "cannot list devices");
                    // A lost connection to the sound server needs a new host.
                    self.host = None;
                    continue;
                }
            };
            if let Some(target) = self.side_mut(kind).switch_to(&devices) {
                self.switch(kind, target);
            }
        }
        self.current
            .send_if_modified(|current| !std::mem::replace(&mut current.listed, true));
    }

    fn list(&mut self, kind: DeviceKind) -> Result<Vec<AudioDevice>, AudioError> {
        let host = self.host.get_or_insert_with(cpal::default_host);
        list_on(host, kind)
    }

    /// Closes the open device of `kind` and opens `target` in its place.
    fn switch(&mut self, kind: DeviceKind, target: AudioDevice) {
        let from = self.side_mut(kind).open.take();
        tracing::info!(
            %kind,
            from = from.as_ref().map(|device| device.id.as_str()),
            to = %target.id,
            "switching device"
        );
        // The old stream closes first: some devices allow one stream only.
        let opened = match kind {
            DeviceKind::Microphone => {
                self.open_microphone = None;
                self.open_microphone_device(&target.id)
            }
            DeviceKind::Speaker => {
                self.open_speaker = None;
                let opened = self.open_speaker_device(&target.id);
                self.update_echo_reference();
                opened
            }
        };
        match opened {
            Ok(()) => {
                self.side_mut(kind).open = Some(target);
                self.publish(None);
            }
            Err(err) => {
                tracing::warn!(%kind, device = %target.id, error = %err, "cannot open the device");
                self.publish(Some(err.to_string()));
            }
        }
    }

    fn open_microphone_device(&mut self, id: &str) -> Result<(), AudioError> {
        let mut microphone = Microphone::start(Some(id))?;
        let frames = microphone
            .take_frames()
            .expect("a new microphone has its frames");
        let events = microphone
            .take_events()
            .expect("a new microphone has its events");
        self.open_microphone = Some(OpenMicrophone {
            _device: microphone,
            frames,
            events,
        });
        Ok(())
    }

    fn open_speaker_device(&mut self, id: &str) -> Result<(), AudioError> {
        let mut speaker = Speaker::start(Some(id))?;
        let events = speaker.take_events().expect("a new speaker has its events");
        self.open_speaker = Some(OpenSpeaker {
            input: speaker.sender(),
            device: speaker,
            events,
        });
        Ok(())
    }

    /// Gives the call's echo canceller the open speaker's played audio, or
    /// nothing while no speaker is open.
    fn update_echo_reference(&mut self) {
        let Some(controls) = &self.controls else {
            return;
        };
        let reference = self.open_speaker.as_ref().and_then(|open| {
            open.device
                .echo_reference()
                .inspect_err(|err| tracing::warn!(error = %err, "no echo reference"))
                .ok()
        });
        if let Err(err) = controls.replace_echo_reference(reference) {
            tracing::debug!(error = %err, "the call stopped taking echo references");
        }
    }

    fn publish(&self, error: Option<String>) {
        let microphone = self.microphone.open.clone();
        let speaker = self.speaker.open.clone();
        self.current.send_modify(|current| {
            if current.microphone != microphone || current.speaker != speaker {
                current.changes += 1;
            }
            current.microphone = microphone;
            current.speaker = speaker;
            current.last_error = error;
        });
    }
}

/// What the open microphone delivered next.
enum Capture {
    Frame(Option<Vec<f32>>),
    Event(Option<DeviceEvent>),
}

/// Receives the open microphone's next frame or event; never returns
/// without one open.
async fn next_capture(open: &mut Option<OpenMicrophone>) -> Capture {
    let Some(open) = open else {
        return std::future::pending().await;
    };
    tokio::select! {
        frame = open.frames.recv() => Capture::Frame(frame),
        event = open.events.recv() => Capture::Event(event),
    }
}

/// Receives the next device event; never returns without a device open.
async fn next_event(
    events: Option<&mut mpsc::UnboundedReceiver<DeviceEvent>>,
) -> Option<DeviceEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, name: &str, is_default: bool) -> AudioDevice {
        AudioDevice {
            id: id.into(),
            name: name.into(),
            is_default,
        }
    }

    fn devices() -> Vec<AudioDevice> {
        vec![
            device("pulseaudio:usb", "USB headset", false),
            device("pulseaudio:builtin", "Built-in audio", true),
        ]
    }

    #[test]
    fn chosen_device_by_id_or_name() {
        let devices = devices();
        assert_eq!(
            choose_device(Some("pulseaudio:usb"), &devices).map(|d| d.name.as_str()),
            Some("USB headset")
        );
        assert_eq!(
            choose_device(Some("USB headset"), &devices).map(|d| d.id.as_str()),
            Some("pulseaudio:usb")
        );
    }

    #[test]
    fn missing_choice_falls_back_to_default() {
        let devices = devices();
        let chosen = choose_device(Some("Unplugged mic"), &devices);
        assert_eq!(chosen.map(|d| d.id.as_str()), Some("pulseaudio:builtin"));
        assert_eq!(
            choose_device(None, &devices).map(|d| d.id.as_str()),
            Some("pulseaudio:builtin")
        );
        assert_eq!(choose_device(None, &[]), None);
    }

    #[test]
    fn side_switches_only_on_change() {
        let mut devices = devices();
        let mut side = Side::new(Some("USB headset"));
        let first = side
            .switch_to(&devices)
            .expect("the chosen device opens first");
        assert_eq!(first.id, "pulseaudio:usb");
        side.open = Some(first);
        assert_eq!(side.switch_to(&devices), None, "nothing changed");

        // Unplugged: the default takes over.
        devices.remove(0);
        let fallback = side.switch_to(&devices).expect("fall back");
        assert_eq!(fallback.id, "pulseaudio:builtin");
        side.open = Some(fallback);

        // Plugged in again: the remembered choice wins.
        devices.push(device("pulseaudio:usb", "USB headset", false));
        let back = side.switch_to(&devices).expect("switch back");
        assert_eq!(back.id, "pulseaudio:usb");
    }

    #[test]
    fn new_default_is_followed_without_a_choice() {
        let mut side = Side::new(None);
        let mut devices = devices();
        side.open = side.switch_to(&devices);
        devices[0].is_default = true;
        devices[1].is_default = false;
        let target = side.switch_to(&devices).expect("follow the new default");
        assert_eq!(target.id, "pulseaudio:usb");
    }
}
