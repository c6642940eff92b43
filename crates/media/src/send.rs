//! Send tasks: encode, packetize and pace local media onto the tracks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::shared::marshal::{Marshal, MarshalSize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::codec::opus::{DEFAULT_OPUS_BITRATE_BPS, OpusEncoder, is_dtx_packet};
use crate::codec::{EncodedFrame, VideoCodec, VideoEncoder, VideoEncoderConfig, new_video_encoder};
use crate::error::Result;
use crate::fec::FecTuner;
use crate::frame::VideoFrame;
use crate::frame::{AUDIO_FRAME_SAMPLES, AUDIO_RATE};
use crate::source::VideoClip;
use crate::source::wav::AudioClip;
use crate::stats::{StatsCounters, add};
use crate::video_payload::FramePayloader;

/// RTP payload size limit, leaving room for SRTP, header extensions and a
/// TURN or VPN envelope within a 1500-byte MTU.
pub(crate) const RTP_PAYLOAD_MTU: usize = 1150;

/// RTP clock rate of video, in Hz.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Sender-side timing that lets a receiver match received frames to sent ones.
#[derive(Debug, Clone, Copy)]
pub struct VideoSendInfo {
    pub ssrc: u32,
    /// RTP timestamp of frame 0. Frame `i` carries
    /// `rtp_timestamp_base + round(i * 90000 / fps)`.
    pub rtp_timestamp_base: u32,
    pub fps: f64,
    pub frame_count: usize,
    /// The codec that negotiation chose and the frames are encoded with.
    pub codec: VideoCodec,
}

impl VideoSendInfo {
    /// Returns the index of the sent frame that carried this RTP timestamp.
    pub fn frame_index(&self, rtp_timestamp: u32) -> usize {
        let ticks = rtp_timestamp.wrapping_sub(self.rtp_timestamp_base);
        (f64::from(ticks) * self.fps / f64::from(VIDEO_CLOCK_RATE)).round() as usize
    }
}

/// When the audio sender started, for measuring mouth-to-ear delay.
#[derive(Debug, Clone, Copy)]
pub struct AudioSendInfo {
    pub ssrc: u32,
    /// Instant the first 20 ms packet left; packet `n` leaves `n * 20 ms` later.
    pub started_at: Instant,
    pub packet_count: usize,
}

/// A negotiated local video track: where to write, with which SSRC, payload
/// type and codec.
#[derive(Clone)]
pub(crate) struct VideoTrack {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub codec: VideoCodec,
    /// Every video codec negotiated for the track, with its payload type.
    pub negotiated: Vec<(VideoCodec, u8)>,
    /// The codec the room requests, followed when it was negotiated.
    pub requested: watch::Receiver<Option<VideoCodec>>,
}

impl VideoTrack {
    /// Returns the codec and payload type to send in from now on, when the
    /// room requests a negotiated codec other than the current one.
    fn codec_change(&self) -> Option<(VideoCodec, u8)> {
        let requested = (*self.requested.borrow())?;
        if requested == self.codec {
            return None;
        }
        self.negotiated
            .iter()
            .copied()
            .find(|(codec, _)| *codec == requested)
    }
}

/// The codec that a peer sends video in, the first negotiated one until set.
/// A group call sets it to the codec that every participant can decode. The
/// send tasks switch at their next frame and start the new codec with a
/// keyframe. No renegotiation is needed, because both codecs were
/// negotiated. Cloning gives another handle to the same choice.
#[derive(Debug, Clone)]
pub struct VideoCodecSwitch(Arc<watch::Sender<Option<VideoCodec>>>);

impl Default for VideoCodecSwitch {
    fn default() -> Self {
        Self(Arc::new(watch::channel(None).0))
    }
}

impl VideoCodecSwitch {
    /// Sends video in `codec` from the next frame on, if the remote side
    /// accepted it; `None` keeps the codec sent now.
    pub fn set(&self, codec: Option<VideoCodec>) {
        self.0.send_if_modified(|current| {
            let changed = codec.is_some() && *current != codec;
            if changed {
                *current = codec;
            }
            changed
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<VideoCodec>> {
        self.0.subscribe()
    }
}

pub(crate) fn spawn_video(
    video: VideoTrack,
    clip: Arc<VideoClip>,
    seconds: f64,
    bitrate_bps: u32,
    stats: Arc<StatsCounters>,
) -> Result<(VideoSendInfo, JoinHandle<()>)> {
    let config = VideoEncoderConfig {
        bitrate_bps,
        max_fps: clip.fps as f32,
        keyframe_interval: 0,
        threads: 0,
        ..VideoEncoderConfig::default()
    };
    let encoder = new_video_encoder(video.codec, config)?;
    let info = VideoSendInfo {
        ssrc: video.ssrc,
        rtp_timestamp_base: rand::random(),
        fps: clip.fps,
        frame_count: (seconds * clip.fps).round().max(1.0) as usize,
        codec: video.codec,
    };

    let keyframe_requested = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_keyframe_requests(
        Arc::clone(&video.track),
        Arc::clone(&keyframe_requested),
        Arc::clone(&stats),
    ));
    let task = tokio::spawn(async move {
        let sender = VideoSender {
            video,
            info,
            config,
            clip,
            stats,
            keyframe_requested,
        };
        if let Err(err) = sender.run(encoder).await {
            tracing::warn!(error = %err, "video sending stopped");
        }
    });
    Ok((info, task))
}

struct VideoSender {
    video: VideoTrack,
    info: VideoSendInfo,
    config: VideoEncoderConfig,
    clip: Arc<VideoClip>,
    stats: Arc<StatsCounters>,
    keyframe_requested: Arc<AtomicBool>,
}

impl VideoSender {
    async fn run(self, mut encoder: Box<dyn VideoEncoder>) -> Result<()> {
        let mut writer = RtpVideoWriter::new(self.video, self.stats);
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / self.info.fps));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);

        for index in 0..self.info.frame_count {
            ticker.tick().await;
            if writer.follow_codec() {
                encoder = new_video_encoder(writer.codec(), self.config)?;
            }
            if self.keyframe_requested.swap(false, Ordering::Relaxed) {
                encoder.request_keyframe();
            }
            let frame = Arc::new(self.clip.frames[index % self.clip.frames.len()].clone());
            let (returned, encoded) = encode_off_thread(encoder, frame).await;
            encoder = returned;
            let Some(encoded) = encoded? else {
                continue;
            };

            let timestamp = self.info.rtp_timestamp_base.wrapping_add(
                (index as f64 * f64::from(VIDEO_CLOCK_RATE) / self.info.fps).round() as u32,
            );
            writer.write_frame(timestamp, encoded).await?;
        }
        Ok(())
    }
}

/// Encodes one frame on the blocking pool, because encoding takes
/// milliseconds of CPU that must not stall the async workers.
pub(crate) async fn encode_off_thread(
    mut encoder: Box<dyn VideoEncoder>,
    frame: Arc<VideoFrame>,
) -> (Box<dyn VideoEncoder>, Result<Option<EncodedFrame>>) {
    tokio::task::spawn_blocking(move || {
        let encoded = encoder.encode(&frame);
        (encoder, encoded)
    })
    .await
    .expect("the encoder task does not panic")
}

/// Packetizes encoded frames into RTP on one track, in the payload format
/// of the track's codec, and counts them.
pub(crate) struct RtpVideoWriter {
    video: VideoTrack,
    stats: Arc<StatsCounters>,
    payloader: FramePayloader,
    sequence_number: u16,
    /// The mid and rid that every packet of a simulcast layer carries in
    /// header extensions, so that the receiver can tell the layers apart.
    stream_ids: Option<(String, String)>,
}

impl RtpVideoWriter {
    pub(crate) fn new(video: VideoTrack, stats: Arc<StatsCounters>) -> Self {
        Self {
            payloader: FramePayloader::new(video.codec),
            video,
            stats,
            sequence_number: rand::random(),
            stream_ids: None,
        }
    }

    /// Writes a simulcast layer whose packets carry `mid` and `rid`.
    pub(crate) fn with_stream_ids(mut self, mid: String, rid: String) -> Self {
        self.stream_ids = Some((mid, rid));
        self
    }

    pub(crate) fn codec(&self) -> VideoCodec {
        self.video.codec
    }

    /// Switches to the codec the room requests, if it differs from the
    /// current one and was negotiated. Returns whether it switched; the
    /// caller then needs an encoder of the new codec, which starts with a
    /// keyframe.
    pub(crate) fn follow_codec(&mut self) -> bool {
        let Some((codec, payload_type)) = self.video.codec_change() else {
            return false;
        };
        tracing::info!(
            from = %self.video.codec,
            to = %codec,
            ssrc = self.video.ssrc,
            "switching the video codec for the room"
        );
        self.video.codec = codec;
        self.video.payload_type = payload_type;
        self.payloader = FramePayloader::new(codec);
        true
    }

    /// Sends one encoded frame as RTP packets with the marker bit on the last.
    pub(crate) async fn write_frame(
        &mut self,
        timestamp: u32,
        encoded: EncodedFrame,
    ) -> Result<()> {
        let payloads = self.payloader.payload(RTP_PAYLOAD_MTU, &encoded)?;
        let last = payloads.len().saturating_sub(1);
        for (position, payload) in payloads.into_iter().enumerate() {
            add(&self.stats.video_bytes_sent, payload.len() as u64);
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: position == last,
                    payload_type: self.video.payload_type,
                    sequence_number: self.sequence_number,
                    timestamp,
                    ssrc: self.video.ssrc,
                    ..Default::default()
                },
                payload,
            };
            self.sequence_number = self.sequence_number.wrapping_add(1);
            match &self.stream_ids {
                Some((mid, rid)) => {
                    let extensions = [
                        sdes_extension(SDES_MID_URI, mid),
                        sdes_extension(SDES_RTP_STREAM_ID_URI, rid),
                    ];
                    self.video
                        .track
                        .write_rtp_with_extensions(packet, &extensions)
                        .await?;
                }
                None => self.video.track.write_rtp(packet).await?,
            }
            add(&self.stats.video_packets_sent, 1);
        }
        add(&self.stats.video_frames_sent, 1);
        if encoded.keyframe {
            add(&self.stats.video_keyframes_sent, 1);
        }
        Ok(())
    }
}

/// The quietest level, in -dBov, that the audio level extension marks as
/// voice.
const VOICE_LEVEL: u8 = 50;

/// Returns the RFC 6464 audio level of one frame: its loudness in -dBov
/// (0 is full scale, 127 silence) and whether that is loud enough for voice.
/// An SFU reads it to find who speaks without decoding.
pub(crate) fn audio_level(samples: &[f32]) -> AudioLevelExtension {
    let energy: f64 = samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    let rms = (energy / samples.len().max(1) as f64).sqrt();
    let level = if rms > 0.0 {
        (-20.0 * rms.log10()).clamp(0.0, 127.0) as u8
    } else {
        127
    };
    AudioLevelExtension {
        level,
        voice: level <= VOICE_LEVEL,
    }
}

const SDES_MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const SDES_RTP_STREAM_ID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// An RTP header extension that carries a text identifier (RFC 7941).
struct SdesItem(Vec<u8>);

impl MarshalSize for SdesItem {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for SdesItem {
    fn marshal_to(&self, buf: &mut [u8]) -> rtc::shared::error::Result<usize> {
        let Some(target) = buf.get_mut(..self.0.len()) else {
            return Err(rtc::shared::error::Error::ErrBufferTooSmall);
        };
        target.copy_from_slice(&self.0);
        Ok(self.0.len())
    }
}

fn sdes_extension(uri: &'static str, value: &str) -> HeaderExtension {
    HeaderExtension::Custom {
        uri: uri.into(),
        extension: Box::new(SdesItem(value.as_bytes().to_vec())),
    }
}

/// The simulcast layers of a video track: its mid, and each layer's rid and
/// SSRC, top layer first.
pub(crate) struct SimulcastLayers {
    pub mid: String,
    pub layers: Vec<(String, u32)>,
}

/// The share of the bitrate that each simulcast layer gets, top first.
pub(crate) const SIMULCAST_BITRATE_SHARES: [f64; 3] = [0.65, 0.25, 0.10];

/// Sends the clip as simulcast: every frame is encoded at full, half and
/// quarter size, each layer on its own SSRC with its rid. All layers carry
/// the same RTP timestamps. A keyframe request names the layer it wants.
pub(crate) fn spawn_simulcast_video(
    video: VideoTrack,
    layers: SimulcastLayers,
    clip: Arc<VideoClip>,
    seconds: f64,
    bitrate_bps: u32,
    stats: Arc<StatsCounters>,
) -> Result<(VideoSendInfo, JoinHandle<()>)> {
    let mut senders = Vec::new();
    let mut flags = Vec::new();
    for (index, (rid, ssrc)) in layers.layers.iter().enumerate() {
        let share = SIMULCAST_BITRATE_SHARES
            .get(index)
            .copied()
            .unwrap_or(SIMULCAST_BITRATE_SHARES[2]);
        // Two temporal layers let the SFU halve a layer's frame rate for a
        // receiver whose bandwidth falls between two layers. Only VP8 uses them.
        let config = VideoEncoderConfig {
            bitrate_bps: (f64::from(bitrate_bps) * share) as u32,
            max_fps: clip.fps as f32,
            keyframe_interval: 0,
            threads: 0,
            temporal_layers: 2,
            ..VideoEncoderConfig::default()
        };
        let encoder = new_video_encoder(video.codec, config)?;
        let layer_track = VideoTrack {
            ssrc: *ssrc,
            ..video.clone()
        };
        let writer = RtpVideoWriter::new(layer_track, Arc::clone(&stats))
            .with_stream_ids(layers.mid.clone(), rid.clone());
        let flag = Arc::new(AtomicBool::new(false));
        flags.push((*ssrc, Arc::clone(&flag)));
        senders.push((Some(encoder), config, writer, flag));
    }
    let info = VideoSendInfo {
        ssrc: video.ssrc,
        rtp_timestamp_base: rand::random(),
        fps: clip.fps,
        frame_count: (seconds * clip.fps).round().max(1.0) as usize,
        codec: video.codec,
    };
    tokio::spawn(watch_layer_keyframe_requests(
        Arc::clone(&video.track),
        flags,
        Arc::clone(&stats),
    ));
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / info.fps));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        for index in 0..info.frame_count {
            ticker.tick().await;
            let timestamp = info.rtp_timestamp_base.wrapping_add(
                (index as f64 * f64::from(VIDEO_CLOCK_RATE) / info.fps).round() as u32,
            );
            let mut frame = Arc::new(clip.frames[index % clip.frames.len()].clone());
            for (layer, (encoder, config, writer, flag)) in senders.iter_mut().enumerate() {
                if layer > 0 {
                    frame = Arc::new(frame.half());
                }
                let mut taken = encoder
                    .take()
                    .expect("each encoder is put back after its frame");
                if writer.follow_codec() {
                    taken = match new_video_encoder(writer.codec(), *config) {
                        Ok(encoder) => encoder,
                        Err(err) => {
                            tracing::warn!(error = %err, "simulcast sending stopped");
                            return;
                        }
                    };
                }
                if flag.swap(false, Ordering::Relaxed) {
                    taken.request_keyframe();
                }
                let (returned, encoded) = encode_off_thread(taken, Arc::clone(&frame)).await;
                *encoder = Some(returned);
                let encoded = match encoded {
                    Ok(Some(encoded)) => encoded,
                    Ok(None) => continue,
                    Err(err) => {
                        tracing::warn!(error = %err, "simulcast sending stopped");
                        return;
                    }
                };
                if let Err(err) = writer.write_frame(timestamp, encoded).await {
                    tracing::warn!(error = %err, "simulcast sending stopped");
                    return;
                }
            }
        }
    });
    Ok((info, task))
}

/// Returns the SSRCs of the streams for which an RTCP packet requests a
/// keyframe, or `None` when it is neither a PLI nor a FIR.
fn keyframe_request_ssrcs(packet: &dyn std::any::Any) -> Option<Vec<u32>> {
    if let Some(pli) = packet.downcast_ref::<PictureLossIndication>() {
        return Some(vec![pli.media_ssrc]);
    }
    let fir = packet.downcast_ref::<FullIntraRequest>()?;
    Some(fir.fir.iter().map(|entry| entry.ssrc).collect())
}

/// Sets the flag of the layer whose SSRC a PLI or FIR names.
pub(crate) async fn watch_layer_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    flags: Vec<(u32, Arc<AtomicBool>)>,
    stats: Arc<StatsCounters>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for packet in packets {
            let Some(ssrcs) = keyframe_request_ssrcs(packet.as_any()) else {
                continue;
            };
            add(&stats.keyframe_requests_received, 1);
            for ssrc in ssrcs {
                if let Some((_, flag)) = flags.iter().find(|(layer, _)| *layer == ssrc) {
                    tracing::debug!(ssrc, "keyframe requested for a simulcast layer");
                    flag.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Sets `flag` whenever the receiver requests a keyframe with PLI or FIR.
pub(crate) async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    flag: Arc<AtomicBool>,
    stats: Arc<StatsCounters>,
) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for packet in packets {
            if keyframe_request_ssrcs(packet.as_any()).is_some() {
                tracing::debug!("keyframe requested by the receiver");
                add(&stats.keyframe_requests_received, 1);
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// A negotiated local audio track: where to write, with which SSRC and
/// payload type.
#[derive(Clone)]
pub(crate) struct AudioTrack {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    /// The track's sender, whose statistics carry the receiver's reports.
    pub sender: Arc<dyn RtpSender>,
}

/// Writes Opus packets as RTP, one 20 ms frame per packet (RFC 7587).
///
/// Frame `n` carries RTP timestamp `base + n * 960`, so frames that are not
/// sent, because of DTX or mute, leave a timestamp gap without a sequence
/// gap, and the receiver plays comfort noise or silence for them instead of
/// concealing a loss. The first packet after such a gap has the marker bit
/// (RFC 3551 section 4.1).
pub(crate) struct RtpAudioWriter {
    audio: AudioTrack,
    stats: Arc<StatsCounters>,
    sequence_number: u16,
    timestamp_base: u32,
    next_frame: Option<u64>,
}

impl RtpAudioWriter {
    pub(crate) fn new(audio: AudioTrack, stats: Arc<StatsCounters>) -> Self {
        Self {
            audio,
            stats,
            sequence_number: rand::random(),
            timestamp_base: rand::random(),
            next_frame: None,
        }
    }

    /// Sends the encoded frame `frame_index`, counted from the start of the
    /// stream including frames that were not sent, with the frame's audio
    /// level in the RFC 6464 header extension.
    pub(crate) async fn write_frame(
        &mut self,
        frame_index: u64,
        packet: Vec<u8>,
        level: AudioLevelExtension,
    ) -> Result<()> {
        let after_gap = self.next_frame != Some(frame_index);
        self.next_frame = Some(frame_index + 1);
        let bytes = packet.len() as u64;
        let rtp = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: after_gap,
                payload_type: self.audio.payload_type,
                sequence_number: self.sequence_number,
                timestamp: self
                    .timestamp_base
                    .wrapping_add((frame_index * AUDIO_FRAME_SAMPLES as u64) as u32),
                ssrc: self.audio.ssrc,
                ..Default::default()
            },
            payload: Bytes::from(packet),
        };
        self.sequence_number = self.sequence_number.wrapping_add(1);
        self.audio
            .track
            .write_rtp_with_extensions(rtp, &[HeaderExtension::AudioLevel(level)])
            .await?;
        add(&self.stats.audio_bytes_sent, bytes);
        add(&self.stats.audio_packets_sent, 1);
        Ok(())
    }
}

/// Sends the clip looped for `seconds` as 20 ms Opus packets paced in real
/// time, skipping DTX frames.
pub(crate) fn spawn_audio(
    audio: AudioTrack,
    clip: Arc<AudioClip>,
    seconds: f64,
    stats: Arc<StatsCounters>,
) -> Result<(AudioSendInfo, JoinHandle<()>)> {
    let mut encoder = OpusEncoder::new(DEFAULT_OPUS_BITRATE_BPS)?;
    let packet_count =
        (seconds * f64::from(AUDIO_RATE) / AUDIO_FRAME_SAMPLES as f64).round() as usize;
    let frame_duration = Duration::from_millis(20);
    let mut ticker = tokio::time::interval(frame_duration);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started_at = Instant::now();
    let info = AudioSendInfo {
        ssrc: audio.ssrc,
        started_at,
        packet_count,
    };
    let mut fec = FecTuner::new(Arc::clone(&audio.sender), audio.ssrc, Arc::clone(&stats));
    let mut writer = RtpAudioWriter::new(audio, stats);

    let task = tokio::spawn(async move {
        let samples = &clip.samples;
        let mut frame = vec![0.0f32; AUDIO_FRAME_SAMPLES];
        for index in 0..packet_count {
            ticker.tick().await;
            if let Err(err) = fec.update(&mut encoder).await {
                tracing::warn!(error = %err, "cannot change the audio FEC");
            }
            for (offset, slot) in frame.iter_mut().enumerate() {
                *slot = samples[(index * AUDIO_FRAME_SAMPLES + offset) % samples.len()];
            }
            let packet = match encoder.encode(&frame) {
                Ok(packet) => packet,
                Err(err) => {
                    tracing::warn!(error = %err, "audio sending stopped");
                    return;
                }
            };
            if is_dtx_packet(&packet) {
                continue;
            }
            let level = audio_level(&frame);
            if let Err(err) = writer.write_frame(index as u64, packet, level).await {
                tracing::warn!(error = %err, "audio sending stopped");
                return;
            }
        }
    });
    Ok((info, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_level_of_full_scale_silence_and_speech() {
        assert_eq!(audio_level(&[1.0; 960]).level, 0);
        let silence = audio_level(&[0.0; 960]);
        assert_eq!(silence.level, 127);
        assert!(!silence.voice);
        // A sine at amplitude 0.1 has an RMS of 0.0707: -23 dBov.
        let tone: Vec<f32> = (0..960).map(|i| 0.1 * (i as f32 * 0.1).sin()).collect();
        let level = audio_level(&tone);
        assert!((22..=24).contains(&level.level), "{level:?}");
        assert!(level.voice);
    }
}
