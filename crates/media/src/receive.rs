//! Receive tasks: reorder and depacketize RTP, decode, and hand the media on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::opus::OpusPacket;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::codec::h264::H264Decoder;
use crate::codec::opus::OpusDecoder;
use crate::frame::{AUDIO_FRAME_SAMPLES, VideoFrame};
use crate::source::annexb;
use crate::stats::{StatsCounters, add};

/// Packets the reorder buffer waits for before it gives up on a gap.
const VIDEO_MAX_LATE_PACKETS: u16 = 256;
const AUDIO_MAX_LATE_PACKETS: u16 = 10;
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
    let mut builder = SampleBuilder::new(VIDEO_MAX_LATE_PACKETS, H264Packet::default(), 90_000)
        .with_max_time_delay(VIDEO_MAX_DELAY);
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
        stats.video_packet_received(packet.payload.len(), now);
        builder.push(now, packet);

        while let Some((sample, rtp_timestamp)) = builder.pop_with_timestamp(now) {
            let keyframe = annexb::contains_idr(&sample.data);
            if sample.prev_dropped_packets > 0 && !keyframe {
                needs_keyframe = true;
            }
            if needs_keyframe && !keyframe {
                add(&stats.video_frames_dropped, 1);
                keyframes.request().await;
                continue;
            }
            match decoder.decode(&sample.data) {
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
    let mut builder = SampleBuilder::new(AUDIO_MAX_LATE_PACKETS, OpusPacket, 48_000)
        .with_max_time_delay(AUDIO_MAX_DELAY);

    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let now = Instant::now();
        stats.audio_packet_received(packet.payload.len(), now);
        builder.push(now, packet);

        while let Some((sample, rtp_timestamp)) = builder.pop_with_timestamp(now) {
            let mut samples = Vec::new();
            for _ in 0..sample.prev_dropped_packets {
                add(&stats.audio_packets_concealed, 1);
                match decoder.conceal() {
                    Ok(concealed) => samples.extend(concealed),
                    Err(_) => samples.extend(std::iter::repeat_n(0.0, AUDIO_FRAME_SAMPLES)),
                }
            }
            let concealed_len = samples.len() as u32;
            match decoder.decode(&sample.data) {
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
