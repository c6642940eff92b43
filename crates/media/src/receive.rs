//! Receive tasks: reorder and depacketize RTP, decode, and hand the media on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::audio_jitter::{
    AudioJitterBuffer, AudioJitterConfig, FRAME_DURATION as AUDIO_FRAME_DURATION, PlayoutAction,
};
use crate::codec::opus::OpusDecoder;
use crate::codec::{VideoCodec, VideoDecoder, new_video_decoder};
use crate::error::MediaError;
use crate::frame::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::jitter::{AssembledFrame, Framing, JitterBuffer, RtpPacket};
use crate::stats::{StatsCounters, add};
use crate::video_payload::{self, DepacketizeError};

/// Maximum wait for a missing packet before the frame is given up.
const VIDEO_MAX_DELAY: Duration = Duration::from_millis(200);
/// Minimum time between two keyframe requests.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A decoded remote video frame.
#[derive(Debug, Clone)]
pub struct DecodedVideo {
    pub rtp_timestamp: u32,
    /// The codec the frame arrived in.
    pub codec: VideoCodec,
    pub frame: VideoFrame,
    pub decoded_at: Instant,
}

/// Decoded remote audio: 48 kHz mono samples starting at `rtp_timestamp`.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    pub rtp_timestamp: u32,
    pub samples: Vec<f32>,
    pub received_at: Instant,
}

/// Decodes a remote video track in the codec that the sender negotiated.
/// Until a keyframe has decoded, and after any loss or decode error, frames
/// are not shown and keyframes are requested with PLI at most every
/// `KEYFRAME_REQUEST_INTERVAL`.
pub(crate) async fn receive_video(
    track: Arc<dyn TrackRemote>,
    payload_types: PayloadTypes,
    stats: Arc<StatsCounters>,
    sink: Option<mpsc::Sender<DecodedVideo>>,
) {
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
    let mut buffer = JitterBuffer::new(Framing::Marker, VIDEO_MAX_DELAY);
    let mut keyframes = KeyframeRequester {
        track: Arc::clone(&track),
        media_ssrc,
        stats: Arc::clone(&stats),
        last_sent: None,
    };
    let mut receiver: Option<VideoReceiver> = None;
    let mut check = tokio::time::interval(KEYFRAME_REQUEST_INTERVAL);
    let mut outcomes = TrackOutcomes::default();

    loop {
        let packet = tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => continue,
            },
            _ = check.tick() => {
                // Before the first packet the sender has not started, so a request is premature.
                if receiver.as_ref().is_some_and(VideoReceiver::needs_keyframe) {
                    keyframes.request().await;
                }
                continue;
            }
        };
        let now = Instant::now();
        // The track may not know its SSRC before the first packet, and a PLI
        // addressed to the wrong SSRC is dropped by the sender.
        keyframes.media_ssrc = packet.header.ssrc;
        // The payload type names the codec of each packet. An SFU's stream
        // may offer several codecs, and the sender may change codec.
        let codec = match payload_types.codec(packet.header.payload_type) {
            Some(codec) => Some(codec),
            None => track_codec(&track, packet.header.ssrc).await,
        };
        let Some(codec) = codec else {
            tracing::debug!(
                payload_type = packet.header.payload_type,
                "skipped a video packet of an unknown payload type"
            );
            continue;
        };
        if receiver.as_ref().is_none_or(|r| r.codec() != codec) {
            match VideoReceiver::new(codec) {
                Ok(started) => {
                    tracing::debug!(%codec, ssrc = packet.header.ssrc, "receiving video");
                    if receiver.is_some() {
                        buffer = JitterBuffer::new(Framing::Marker, VIDEO_MAX_DELAY);
                    }
                    receiver = Some(started);
                }
                Err(err) => {
                    tracing::warn!(error = %err, %codec, "cannot create the video decoder");
                    break;
                }
            }
        }
        stats.video_packet_received(packet.payload.len(), now);
        buffer.push(rtp_packet(packet), now);

        while let Some(frame) = buffer.pop(now) {
            let Some(taken) = receiver.take() else {
                break;
            };
            let rtp_timestamp = frame.timestamp;
            let lost_before = frame.lost_before;
            let (returned, outcome) = decode_off_thread(taken, frame).await;
            let codec = returned.codec();
            receiver = Some(returned);
            outcomes.count(&outcome, lost_before);
            match outcome {
                FrameOutcome::Decoded(picture) => {
                    stats.video_frame_decoded(Instant::now());
                    deliver_video(&sink, rtp_timestamp, codec, picture).await;
                }
                FrameOutcome::Buffered => {}
                FrameOutcome::Skipped => {
                    add(&stats.video_frames_dropped, 1);
                    keyframes.request().await;
                }
                FrameOutcome::Concealed(err) => {
                    tracing::debug!(error = %err, rtp_timestamp, "video frame concealed");
                    match err {
                        ConcealReason::Depacketize(_) => add(&stats.video_frames_dropped, 1),
                        ConcealReason::Decode(_) => add(&stats.video_decode_errors, 1),
                    }
                    keyframes.request().await;
                }
            }
        }
    }
    tracing::debug!(?outcomes, "remote video track ended");
}

/// The outcomes of one track's frames, logged when the track ends.
#[derive(Debug, Default)]
struct TrackOutcomes {
    decoded: u64,
    buffered: u64,
    /// Frames skipped while waiting for a keyframe.
    skipped: u64,
    concealed: u64,
    /// Frames whose packets came after a gap in sequence numbers.
    after_loss: u64,
}

impl TrackOutcomes {
    fn count(&mut self, outcome: &FrameOutcome, lost_before: u64) {
        match outcome {
            FrameOutcome::Decoded(_) => self.decoded += 1,
            FrameOutcome::Buffered => self.buffered += 1,
            FrameOutcome::Skipped => self.skipped += 1,
            FrameOutcome::Concealed(_) => self.concealed += 1,
        }
        if lost_before > 0 {
            self.after_loss += 1;
        }
    }
}

/// Returns the codec the track was negotiated with for `ssrc`, when the
/// session descriptions named none for the packet's payload type.
async fn track_codec(track: &Arc<dyn TrackRemote>, ssrc: u32) -> Option<VideoCodec> {
    let mime_type = track.codec(ssrc).await?.mime_type;
    VideoCodec::from_mime_type(&mime_type)
}

/// The video codec of each payload type this peer may receive, learnt from
/// the session descriptions. Shared by every video track of the connection.
#[derive(Clone, Default)]
pub(crate) struct PayloadTypes(Arc<std::sync::RwLock<HashMap<u8, VideoCodec>>>);

impl PayloadTypes {
    /// Records the video payload types of a session description.
    pub fn learn(&self, sdp: &str) {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.extend(crate::negotiate::video_payload_types(sdp));
    }

    pub fn codec(&self, payload_type: u8) -> Option<VideoCodec> {
        let map = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(&payload_type).copied()
    }
}

/// Cause of a concealed frame.
#[derive(Debug, thiserror::Error)]
pub enum ConcealReason {
    #[error(transparent)]
    Depacketize(#[from] DepacketizeError),
    #[error(transparent)]
    Decode(#[from] MediaError),
}

/// Result of handling one assembled frame.
#[derive(Debug)]
pub enum FrameOutcome {
    /// A picture to show.
    Decoded(VideoFrame),
    /// The decoder took the frame but has no picture to output yet.
    Buffered,
    /// The frame was not decoded because it needs a frame that was lost or
    /// broken; a keyframe is needed.
    Skipped,
    /// The frame did not depacketize or decode. The receiver conceals it by
    /// keeping the last good picture on screen, and a keyframe is needed.
    Concealed(ConcealReason),
}

/// Decodes assembled frames of one codec and tracks whether a keyframe is
/// needed, without I/O: the receive task turns the outcomes into statistics,
/// deliveries and PLIs.
pub struct VideoReceiver {
    decoder: Box<dyn VideoDecoder>,
    needs_keyframe: bool,
}

impl VideoReceiver {
    pub fn new(codec: VideoCodec) -> crate::Result<Self> {
        Ok(Self {
            decoder: new_video_decoder(codec)?,
            needs_keyframe: true,
        })
    }

    pub fn codec(&self) -> VideoCodec {
        self.decoder.codec()
    }

    /// Returns whether frames are being skipped until a keyframe arrives.
    pub fn needs_keyframe(&self) -> bool {
        self.needs_keyframe
    }

    /// Depacketizes and decodes one frame. Inter frames after a loss, a
    /// broken frame or a decode error are skipped until the next keyframe.
    pub fn handle_frame(&mut self, frame: &AssembledFrame) -> FrameOutcome {
        let encoded = match video_payload::depacketize(self.codec(), &frame.payloads) {
            Ok(encoded) => encoded,
            Err(err) => {
                self.needs_keyframe = true;
                return FrameOutcome::Concealed(err.into());
            }
        };
        if frame.lost_before > 0 && !encoded.keyframe {
            self.needs_keyframe = true;
        }
        if self.needs_keyframe && !encoded.keyframe {
            return FrameOutcome::Skipped;
        }
        match self.decoder.decode(&encoded.data) {
            Ok(Some(picture)) => {
                self.needs_keyframe = false;
                FrameOutcome::Decoded(picture)
            }
            Ok(None) => FrameOutcome::Buffered,
            Err(err) => {
                self.needs_keyframe = true;
                FrameOutcome::Concealed(err.into())
            }
        }
    }
}

/// Decodes one frame on the blocking pool, because decoding takes
/// milliseconds of CPU. On an async worker it would also delay the reading
/// of packets, whose arrival times the sender's bandwidth estimate is made
/// from.
async fn decode_off_thread(
    mut receiver: VideoReceiver,
    frame: AssembledFrame,
) -> (VideoReceiver, FrameOutcome) {
    tokio::task::spawn_blocking(move || {
        let outcome = receiver.handle_frame(&frame);
        (receiver, outcome)
    })
    .await
    .expect("the decoder task does not panic")
}

async fn deliver_video(
    sink: &Option<mpsc::Sender<DecodedVideo>>,
    rtp_timestamp: u32,
    codec: VideoCodec,
    frame: VideoFrame,
) {
    if let Some(sink) = sink {
        let decoded = DecodedVideo {
            rtp_timestamp,
            codec,
            frame,
            decoded_at: Instant::now(),
        };
        // A consumer that has gone away no longer wants frames.
        let _ = sink.send(decoded).await;
    }
}

struct KeyframeRequester {
    track: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    stats: Arc<StatsCounters>,
    last_sent: Option<Instant>,
}

impl KeyframeRequester {
    async fn request(&mut self) {
        let now = Instant::now();
        if self
            .last_sent
            .is_some_and(|last| now.duration_since(last) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        self.last_sent = Some(now);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.media_ssrc,
        };
        match self.track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => add(&self.stats.keyframe_requests_sent, 1),
            Err(err) => tracing::debug!(error = %err, "sending PLI failed"),
        }
    }
}

/// Plays out a remote Opus track through the adaptive jitter buffer: packets
/// go in as they arrive, and every 20 ms one frame is decoded, recovered
/// from the next packet's FEC copy, concealed or filled with comfort noise.
/// Nothing is delivered once the sender has sent nothing for 600 ms (mute).
pub(crate) async fn receive_audio(
    track: Arc<dyn TrackRemote>,
    stats: Arc<StatsCounters>,
    sink: Option<mpsc::Sender<DecodedAudio>>,
) {
    let mut decoder = match OpusDecoder::new() {
        Ok(decoder) => decoder,
        Err(err) => {
            tracing::warn!(error = %err, "cannot create the Opus decoder");
            return;
        }
    };
    let mut buffer = AudioJitterBuffer::new(AudioJitterConfig::default());
    // NOTE: playout is paced by this timer, not by the speaker's callback,
    // so a late burst of ticks can overfill the speaker's 60 ms queue, which
    // then drops the oldest samples.
    let mut tick = tokio::time::interval(AUDIO_FRAME_DURATION);
    // A late tick is caught up at once, because the speaker kept playing.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    loop {
        tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    let now = Instant::now();
                    stats.audio_packet_received(packet.payload.len(), now);
                    buffer.push(rtp_packet(packet), now);
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => {}
            },
            scheduled = tick.tick() => {
                // The scheduled time, not the time the task woke: a burst
                // of late ticks must not look like a longer delay.
                let now = scheduled.into_std();
                let Some(frame) = buffer.pop(now) else {
                    continue;
                };
                let samples = decode_playout(&mut decoder, &frame.action);
                stats.audio_playout_updated(&buffer.stats(), buffer.current_delay(now));
                if let Some(sink) = &sink {
                    let audio = DecodedAudio {
                        rtp_timestamp: frame.timestamp,
                        samples,
                        received_at: now,
                    };
                    // A consumer that has gone away no longer wants audio.
                    let _ = sink.send(audio).await;
                }
            }
        }
    }
    tracing::debug!(stats = ?buffer.stats(), "remote audio track ended");
}

/// Decodes one frame as the jitter buffer decided. A packet that does not
/// decode is concealed instead, so playout always gets 20 ms.
pub fn decode_playout(decoder: &mut OpusDecoder, action: &PlayoutAction) -> Vec<f32> {
    let decoded = match action {
        PlayoutAction::Decode(payload) => decoder.decode(payload),
        PlayoutAction::DecodeFec(next) => decoder.decode_fec(next),
        PlayoutAction::Conceal | PlayoutAction::ComfortNoise => decoder.conceal(),
    };
    match decoded {
        Ok(samples) if !samples.is_empty() => samples,
        Ok(_) => vec![0.0; AUDIO_FRAME_SAMPLES],
        Err(err) => {
            tracing::debug!(error = %err, "Opus frame does not decode; concealing it");
            decoder
                .conceal()
                .unwrap_or_else(|_| vec![0.0; AUDIO_FRAME_SAMPLES])
        }
    }
}

fn rtp_packet(packet: rtc::rtp::Packet) -> RtpPacket {
    RtpPacket {
        sequence_number: packet.header.sequence_number,
        timestamp: packet.header.timestamp,
        marker: packet.header.marker,
        payload: packet.payload,
    }
}
