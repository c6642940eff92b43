//! Receive tasks: reorder and depacketize RTP, decode, and hand the media on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::codec::h264::H264Decoder;
use crate::codec::opus::OpusDecoder;
use crate::frame::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::jitter::{AssembledFrame, Framing, JitterBuffer, RtpPacket};
use crate::source::annexb;
use crate::stats::{StatsCounters, add};

/// Most lost audio frames concealed in a row; a longer gap is left silent.
const MAX_CONCEALED_FRAMES: u64 = 5;
/// Maximum wait for a missing packet before the frame is given up.
const VIDEO_MAX_DELAY: Duration = Duration::from_millis(200);
const AUDIO_MAX_DELAY: Duration = Duration::from_millis(60);
/// Minimum time between two keyframe requests.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A decoded remote video frame.
#[derive(Debug, Clone)]
pub struct DecodedVideo {
    pub rtp_timestamp: u32,
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

/// Decodes a remote H.264 track. Until a keyframe has decoded, and after any
/// loss or decode error, frames are dropped and keyframes requested with PLI at
/// most every `KEYFRAME_REQUEST_INTERVAL`.
pub(crate) async fn receive_video(
    track: Arc<dyn TrackRemote>,
    stats: Arc<StatsCounters>,
    sink: Option<mpsc::Sender<DecodedVideo>>,
) {
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
    let mut decoder = match H264Decoder::new() {
        Ok(decoder) => decoder,
        Err(err) => {
            tracing::warn!(error = %err, "cannot create the H.264 decoder");
            return;
        }
    };
    let mut buffer = JitterBuffer::new(Framing::Marker, VIDEO_MAX_DELAY);
    let mut keyframes = KeyframeRequester {
        track: Arc::clone(&track),
        media_ssrc,
        stats: Arc::clone(&stats),
        last_sent: None,
    };
    let mut needs_keyframe = true;
    let mut packet_seen = false;
    let mut check = tokio::time::interval(KEYFRAME_REQUEST_INTERVAL);

    loop {
        let packet = tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => continue,
            },
            _ = check.tick() => {
                // Before the first packet the sender has not started, so a request is premature.
                if needs_keyframe && packet_seen {
                    keyframes.request().await;
                }
                continue;
            }
        };
        let now = Instant::now();
        packet_seen = true;
        // The track may not know its SSRC before the first packet, and a PLI
        // addressed to the wrong SSRC is dropped by the sender.
        keyframes.media_ssrc = packet.header.ssrc;
        stats.video_packet_received(packet.payload.len(), now);
        buffer.push(rtp_packet(packet), now);

        while let Some(frame) = buffer.pop(now) {
            let rtp_timestamp = frame.timestamp;
            let Some(access_unit) = depacketize_h264(&frame) else {
                add(&stats.video_frames_dropped, 1);
                needs_keyframe = true;
                keyframes.request().await;
                continue;
            };
            let keyframe = annexb::contains_idr(&access_unit);
            if frame.lost_before > 0 && !keyframe {
                needs_keyframe = true;
            }
            if needs_keyframe && !keyframe {
                add(&stats.video_frames_dropped, 1);
                keyframes.request().await;
                continue;
            }
            match decoder.decode(&access_unit) {
                Ok(Some(frame)) => {
                    needs_keyframe = false;
                    stats.video_frame_decoded(Instant::now());
                    deliver_video(&sink, rtp_timestamp, frame).await;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(error = %err, rtp_timestamp, "H.264 frame does not decode");
                    add(&stats.video_decode_errors, 1);
                    needs_keyframe = true;
                    keyframes.request().await;
                }
            }
        }
    }
    tracing::debug!("remote video track ended");
}

async fn deliver_video(
    sink: &Option<mpsc::Sender<DecodedVideo>>,
    rtp_timestamp: u32,
    frame: VideoFrame,
) {
    if let Some(sink) = sink {
        let decoded = DecodedVideo {
            rtp_timestamp,
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

/// Decodes a remote Opus track, concealing lost packets.
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
    let mut buffer = JitterBuffer::new(Framing::SinglePacket, AUDIO_MAX_DELAY);

    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let now = Instant::now();
        stats.audio_packet_received(packet.payload.len(), now);
        buffer.push(rtp_packet(packet), now);

        while let Some(frame) = buffer.pop(now) {
            let rtp_timestamp = frame.timestamp;
            let mut samples = Vec::new();
            for _ in 0..frame.lost_before.min(MAX_CONCEALED_FRAMES) {
                add(&stats.audio_packets_concealed, 1);
                match decoder.conceal() {
                    Ok(concealed) => samples.extend(concealed),
                    Err(_) => samples.extend(std::iter::repeat_n(0.0, AUDIO_FRAME_SAMPLES)),
                }
            }
            let concealed_len = samples.len() as u32;
            let Some(payload) = frame.payloads.first() else {
                continue;
            };
            match decoder.decode(payload) {
                Ok(decoded) => samples.extend(decoded),
                Err(err) => {
                    tracing::debug!(error = %err, "Opus packet does not decode");
                    continue;
                }
            }
            if let Some(sink) = &sink {
                let audio = DecodedAudio {
                    rtp_timestamp: rtp_timestamp.wrapping_sub(concealed_len),
                    samples,
                    received_at: now,
                };
                let _ = sink.send(audio).await;
            }
        }
    }
    tracing::debug!("remote audio track ended");
}

fn rtp_packet(packet: rtc::rtp::Packet) -> RtpPacket {
    RtpPacket {
        sequence_number: packet.header.sequence_number,
        timestamp: packet.header.timestamp,
        marker: packet.header.marker,
        payload: packet.payload,
    }
}

/// Joins the RTP payloads of one frame into an Annex B access unit (RFC 6184
/// single NAL, STAP-A and FU-A). Returns `None` for a malformed payload.
fn depacketize_h264(frame: &AssembledFrame) -> Option<Vec<u8>> {
    let mut depacketizer = H264Packet::default();
    let mut access_unit = Vec::new();
    for payload in &frame.payloads {
        match depacketizer.depacketize(payload) {
            Ok(nal_units) => access_unit.extend_from_slice(&nal_units),
            Err(err) => {
                tracing::debug!(error = %err, rtp_timestamp = frame.timestamp, "malformed H.264 payload");
                return None;
            }
        }
    }
    (!access_unit.is_empty()).then_some(access_unit)
}
