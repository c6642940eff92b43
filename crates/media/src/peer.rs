//! A peer connection carrying one video and one audio stream each way, built on
//! the `webrtc` crate.
//!
//! The caller creates the offer and the callee answers; candidates trickle both
//! ways through whatever signalling the application uses. Local candidates and
//! connection state changes arrive as [`PeerEvent`]s. Received media is decoded
//! by the tasks in [`crate::receive`] and delivered on the channels given in
//! [`RemoteSinks`].

use std::net::SocketAddr;
use std::sync::Arc;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceConnectionState, RTCIceServer,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder, SrtpProtectionProfile, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

use crate::codec::VideoCodec;
use crate::error::{MediaError, Result};
use crate::live::{self, LiveControls, LiveSend, ScreenControls, ScreenSendConfig, VideoTrack};
use crate::negotiate;
use crate::receive::{self, DecodedAudio, DecodedVideo, PayloadTypes};
use crate::send::{self, AudioSendInfo, AudioTrack, VideoCodecSwitch, VideoSendInfo};
use crate::source::VideoClip;
use crate::source::wav::AudioClip;
use crate::stats::{CallStats, StatsCounters};

pub const MIME_TYPE_H264: &str = "video/H264";
pub const MIME_TYPE_VP8: &str = "video/VP8";
pub const MIME_TYPE_OPUS: &str = "audio/opus";
pub const MIME_TYPE_RTX: &str = "video/rtx";

/// Payload types offered for H.264 (Constrained Baseline, then Baseline) and
/// VP8, their RTX retransmission streams (RFC 4588), and Opus.
const H264_CONSTRAINED_BASELINE_PT: u8 = 102;
const H264_CONSTRAINED_BASELINE_RTX_PT: u8 = 103;
const H264_BASELINE_PT: u8 = 127;
const H264_BASELINE_RTX_PT: u8 = 125;
const VP8_PT: u8 = 96;
const VP8_RTX_PT: u8 = 97;
const OPUS_PT: u8 = 111;

/// Maximum time from ICE connected to DTLS connected before the call fails.
/// DTLS resends a lost flight after 1, 2 and 4 s (RFC 6347 section 4.2.4.1),
/// so 10 s survives three lost flights on a lossy network.
const DTLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const ICE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
const ICE_MAX_BINDING_REQUESTS: u16 = 28;

/// The fmtp lines offered for H.264. The encoder emits Constrained Baseline,
/// which is also valid Baseline, so both are offered; packetization mode 1
/// allows FU-A fragmentation and STAP-A aggregation.
pub const H264_FMTP_CONSTRAINED_BASELINE: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
pub const H264_FMTP_BASELINE: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f";
/// The RTP header extension with the level of each audio packet (RFC 6464).
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";

/// Network and security settings of a peer connection.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Local UDP addresses to gather host candidates on. A wildcard address
    /// means every non-loopback interface, so loopback must be listed
    /// explicitly when the peers share a machine.
    pub udp_addrs: Vec<SocketAddr>,
    /// STUN and TURN URLs.
    pub ice_servers: Vec<String>,
    /// DTLS-SRTP protection profiles to offer; `None` keeps the library default.
    pub srtp_profiles: Option<Vec<SrtpProtectionProfile>>,
    /// Video codecs this peer offers and accepts, most preferred first. An
    /// offer lists them in this order. An answer lists the offered ones in
    /// this order too, and both sides send the first codec of the answer.
    /// Repeated entries count once, and an empty list is rejected.
    pub video_codecs: Vec<VideoCodec>,
    /// Sends video as three simulcast layers, each half the width and
    /// height of the one above, for an SFU that forwards one layer to each
    /// receiver. Only for offers to an SFU; a peer answering a browser's
    /// simulcast offer does not need it.
    pub simulcast: bool,
    /// Adds a second video track, with the track id `hearth-screen`, for
    /// sharing a screen. It sends nothing until
    /// [`MediaPeer::start_screen`] gets a feed, and never uses simulcast, so
    /// that text is never sent downscaled. Only for offers.
    pub screen_track: bool,
}

/// The end of the track id of a remote video track that carries a screen
/// share: this engine names its screen track `hearth-screen`, and Hearth's
/// SFU names forwarded shares `PARTICIPANT-screen`.
pub const SCREEN_TRACK_SUFFIX: &str = "-screen";

/// The rids of the simulcast layers, top layer first.
pub const SIMULCAST_RIDS: [&str; 3] = ["f", "h", "q"];

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            udp_addrs: vec![
                SocketAddr::from(([127, 0, 0, 1], 0)),
                SocketAddr::from(([0, 0, 0, 0], 0)),
            ],
            ice_servers: Vec::new(),
            srtp_profiles: None,
            video_codecs: VideoCodec::ALL.to_vec(),
            simulcast: false,
            screen_track: false,
        }
    }
}

/// An ICE candidate as it travels through signalling (`RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

/// Something that happened on the peer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A local candidate to send to the other peer.
    LocalCandidate(Candidate),
    Connected,
    /// ICE lost the path; it may come back.
    Disconnected,
    /// ICE or DTLS failed, for example because the peers share no DTLS-SRTP
    /// protection profile. The call cannot continue.
    Failed,
    Closed,
}

/// Media kinds this side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendMedia {
    pub video: bool,
    pub audio: bool,
}

/// Channels for decoded remote media. A missing sender discards that kind.
#[derive(Debug, Default)]
pub struct RemoteSinks {
    pub video: Option<mpsc::Sender<DecodedVideo>>,
    pub audio: Option<mpsc::Sender<DecodedAudio>>,
    /// Media of several remote streams, as an SFU sends them, each tagged
    /// with the SDP stream id of its sender. When set, it takes every remote
    /// track instead of `video` and `audio`.
    pub streams: Option<StreamSinks>,
}

/// Channels for the decoded media of many remote streams.
#[derive(Debug, Clone)]
pub struct StreamSinks {
    pub video: mpsc::Sender<(String, DecodedVideo)>,
    pub audio: mpsc::Sender<(String, DecodedAudio)>,
    /// Screen shares: video tracks whose track id ends with
    /// [`SCREEN_TRACK_SUFFIX`]. Without it they go to `video` like cameras.
    pub screen: Option<mpsc::Sender<(String, DecodedVideo)>>,
}

/// One side of a call.
pub struct MediaPeer {
    connection: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    stats: Arc<StatsCounters>,
    video: Option<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>, u32)>,
    /// The rid and SSRC of each simulcast layer, top first; empty without
    /// simulcast.
    video_layers: Vec<(String, u32)>,
    video_transceiver: Option<Arc<dyn RtpTransceiver>>,
    audio: Option<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>, u32)>,
    screen: Option<(Arc<TrackLocalStaticRTP>, Arc<dyn RtpSender>, u32)>,
    screen_transceiver: Option<Arc<dyn RtpTransceiver>>,
    tasks: Vec<JoinHandle<()>>,
    live_started: bool,
    screen_started: bool,
    video_codecs: Vec<VideoCodec>,
    /// The codec of each video payload type, for the receive tasks.
    payload_types: PayloadTypes,
    codec_switch: VideoCodecSwitch,
}

impl MediaPeer {
    /// Builds the peer connection and adds the local tracks. Nothing is sent
    /// until [`start_video`](Self::start_video) and [`start_audio`](Self::start_audio).
    pub async fn new(config: &PeerConfig, send: SendMedia, sinks: RemoteSinks) -> Result<Self> {
        let mut video_codecs: Vec<VideoCodec> = Vec::new();
        for codec in &config.video_codecs {
            if !video_codecs.contains(codec) {
                video_codecs.push(*codec);
            }
        }
        let Some(&preferred_codec) = video_codecs.first() else {
            return Err(MediaError::InvalidConfig(
                "`video_codecs` is empty; list at least one of H.264 and VP8".into(),
            ));
        };
        let config = &PeerConfig {
            video_codecs,
            ..config.clone()
        };
        let (event_tx, events) = mpsc::unbounded_channel();
        let stats = Arc::new(StatsCounters::default());
        let payload_types = PayloadTypes::default();
        let handler = Arc::new(Handler {
            events: event_tx,
            payload_types: payload_types.clone(),
            connected: Arc::default(),
            stats: Arc::clone(&stats),
            video_sink: sinks.video,
            audio_sink: sinks.audio,
            stream_sinks: sinks.streams,
        });

        let connection = match build_connection(config, &handler, MulticastDnsMode::QueryOnly).await
        {
            Ok(connection) => connection,
            // Resolving browsers' `.local` candidates needs a multicast socket,
            // which fails with ENODEV where no interface takes multicast (a
            // container or namespace with loopback only). Calls work without it.
            Err(err) => {
                tracing::warn!(error = %err, "multicast DNS is unavailable; .local candidates will be ignored");
                build_connection(config, &handler, MulticastDnsMode::Disabled).await?
            }
        };

        let mut peer = Self {
            connection,
            events,
            stats,
            video: None,
            video_layers: Vec::new(),
            video_transceiver: None,
            audio: None,
            screen: None,
            screen_transceiver: None,
            tasks: Vec::new(),
            live_started: false,
            screen_started: false,
            video_codecs: config.video_codecs.clone(),
            payload_types,
            codec_switch: VideoCodecSwitch::default(),
        };
        if send.video {
            let layers: Vec<(String, u32)> = if config.simulcast {
                SIMULCAST_RIDS
                    .iter()
                    .map(|rid| ((*rid).to_owned(), rand::random::<u32>()))
                    .collect()
            } else {
                Vec::new()
            };
            let ssrc = layers
                .first()
                .map_or_else(rand::random::<u32>, |(_, ssrc)| *ssrc);
            let track = video_track(main_codec(preferred_codec), ssrc, &layers);
            let track = Arc::new(TrackLocalStaticRTP::new(track));
            let transceiver = peer
                .connection
                .add_transceiver_from_track(Arc::clone(&track) as Arc<dyn TrackLocal>, None)
                .await?;
            // A track's encoding names one codec, and the library then offers
            // only that one; the preferences put every configured codec back,
            // in the configured order.
            transceiver
                .set_codec_preferences(codec_preferences(&config.video_codecs))
                .await?;
            let sender = transceiver
                .sender()
                .await?
                .expect("a transceiver created from a track has a sender");
            peer.video = Some((track, sender, ssrc));
            peer.video_layers = layers;
            peer.video_transceiver = Some(transceiver);
        }
        if send.audio {
            let ssrc = rand::random::<u32>();
            let track = local_track(RtpCodecKind::Audio, opus_codec(), ssrc);
            let track = Arc::new(TrackLocalStaticRTP::new(track));
            let sender = peer
                .connection
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await?;
            peer.audio = Some((track, sender, ssrc));
        }
        if config.screen_track {
            let ssrc = rand::random::<u32>();
            let track = Arc::new(TrackLocalStaticRTP::new(screen_track(
                main_codec(preferred_codec),
                ssrc,
            )));
            let transceiver = peer
                .connection
                .add_transceiver_from_track(Arc::clone(&track) as Arc<dyn TrackLocal>, None)
                .await?;
            transceiver
                .set_codec_preferences(codec_preferences(&config.video_codecs))
                .await?;
            let sender = transceiver
                .sender()
                .await?
                .expect("a transceiver created from a track has a sender");
            peer.screen = Some((track, sender, ssrc));
            peer.screen_transceiver = Some(transceiver);
        }
        Ok(peer)
    }

    /// Returns the handle that switches the codec this peer's video and
    /// screen share are sent in, among those negotiated.
    pub fn video_codec_switch(&self) -> VideoCodecSwitch {
        self.codec_switch.clone()
    }

    /// Returns the SDP mid of the screen share track, once an offer or
    /// answer assigned one; `None` without [`PeerConfig::screen_track`].
    pub async fn screen_mid(&self) -> Result<Option<String>> {
        match &self.screen_transceiver {
            Some(transceiver) => Ok(transceiver.mid().await?),
            None => Ok(None),
        }
    }

    /// Creates the offer, sets it as the local description and returns its SDP.
    pub async fn create_offer(&self) -> Result<String> {
        let offer = self.connection.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        // The remote peer sends with the payload types of our offer.
        self.payload_types.learn(&sdp);
        self.connection.set_local_description(offer).await?;
        Ok(sdp)
    }

    /// Applies the remote offer and returns the SDP of the local answer.
    pub async fn accept_offer(&self, sdp: &str) -> Result<String> {
        self.answerer().accept_offer(sdp).await
    }

    /// Returns a handle that answers further offers from another task, as
    /// an SFU sends them when the streams it forwards change.
    pub fn answerer(&self) -> Answerer {
        Answerer {
            connection: Arc::clone(&self.connection),
            video: self.video.as_ref().map(|(_, sender, ssrc)| SentVideo {
                sender: Arc::clone(sender),
                ssrc: *ssrc,
                layers: self.video_layers.clone(),
            }),
            screen: self.screen.as_ref().map(|(_, sender, ssrc)| SentVideo {
                sender: Arc::clone(sender),
                ssrc: *ssrc,
                layers: Vec::new(),
            }),
            video_codecs: self.video_codecs.clone(),
            payload_types: self.payload_types.clone(),
        }
    }

    /// Applies the remote answer to our offer.
    pub async fn set_answer(&self, sdp: &str) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(|err| MediaError::InvalidSdp(err.to_string()))?;
        if let Some((_, sender, ssrc)) = &self.video {
            match_video_track_to(sender, *ssrc, &self.video_layers, sdp).await?;
        }
        if let Some((_, sender, ssrc)) = &self.screen {
            match_screen_track_to(sender, *ssrc, sdp).await?;
        }
        self.connection
            .set_remote_description(answer)
            .await
            .map_err(|err| MediaError::InvalidSdp(err.to_string()))
    }

    pub async fn add_remote_candidate(&self, candidate: Candidate) -> Result<()> {
        self.remote_candidates().add(candidate).await
    }

    /// Waits for the next event. Returns `None` once the connection is gone
    /// or after [`take_events`](Self::take_events).
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }

    /// Moves the event stream out, so that another task can follow it while
    /// this peer keeps sending.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<PeerEvent> {
        let (_, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, closed)
    }

    /// Returns a handle that adds remote candidates from another task.
    pub fn remote_candidates(&self) -> RemoteCandidates {
        RemoteCandidates {
            connection: Arc::clone(&self.connection),
        }
    }

    /// Starts sending the clip's frames in a loop for `seconds`, paced at the
    /// clip's frame rate.
    pub async fn start_video(
        &mut self,
        clip: Arc<VideoClip>,
        seconds: f64,
        bitrate_bps: u32,
    ) -> Result<VideoSendInfo> {
        let (track, sender, ssrc) = self
            .video
            .clone()
            .ok_or_else(|| MediaError::NoCommonCodec("this peer sends no video".into()))?;
        let video = negotiated_video(track, &sender, ssrc, self.codec_switch.subscribe()).await?;
        let (info, task) = if self.video_layers.is_empty() {
            send::spawn_video(video, clip, seconds, bitrate_bps, Arc::clone(&self.stats))?
        } else {
            let mid = match &self.video_transceiver {
                Some(transceiver) => transceiver.mid().await?.unwrap_or_default(),
                None => String::new(),
            };
            let layers = send::SimulcastLayers {
                mid,
                layers: self.video_layers.clone(),
            };
            send::spawn_simulcast_video(
                video,
                layers,
                clip,
                seconds,
                bitrate_bps,
                Arc::clone(&self.stats),
            )?
        };
        self.tasks.push(task);
        Ok(info)
    }

    /// Starts sending speech as 20 ms Opus packets for `seconds`, looping the clip.
    pub async fn start_audio(
        &mut self,
        clip: Arc<AudioClip>,
        seconds: f64,
    ) -> Result<AudioSendInfo> {
        let (track, sender, ssrc) = self
            .audio
            .clone()
            .ok_or_else(|| MediaError::NoCommonCodec("this peer sends no audio".into()))?;
        let audio = AudioTrack {
            track,
            ssrc,
            payload_type: negotiated_payload_type(&sender, "audio").await?,
            sender,
        };
        let (info, task) = send::spawn_audio(audio, clip, seconds, Arc::clone(&self.stats))?;
        self.tasks.push(task);
        Ok(info)
    }

    /// Starts live sending: video from the latest frame of `send.video` at up
    /// to 30 fps, audio from `send.audio` in 20 ms Opus packets. Sending runs
    /// until the peer is closed or dropped, and the returned controls mute,
    /// turn the camera off and switch sources without renegotiation.
    ///
    /// Call it once the offer/answer exchange is done (after
    /// [`set_answer`](Self::set_answer) on the caller, after
    /// [`accept_offer`](Self::accept_offer) on the callee), because the payload
    /// types come from the negotiated codecs. A peer created without video or
    /// audio in [`SendMedia`] has no such track, so a feed for it is rejected
    /// with [`MediaError::NotSending`].
    ///
    /// ```no_run
    /// # async fn call(mut peer: hearth_media::MediaPeer) -> hearth_media::Result<()> {
    /// use hearth_media::live::{LiveSend, LocalVideo, VideoSource, loop_wav};
    ///
    /// // `peer` is `ActiveCall::peer` from `place_call` or `answer_call`,
    /// // which return once the media connection is up.
    /// let camera = LocalVideo::start(&VideoSource::Camera { id: "0".into() })?;
    /// let controls = peer.start_live(LiveSend {
    ///     video: Some(camera.frames()),
    ///     audio: Some(loop_wav("speech.wav".as_ref())?),
    ///     ..LiveSend::default()
    /// })
    /// .await?;
    ///
    /// controls.set_muted(true);
    /// let file = LocalVideo::start(&VideoSource::File("clip.y4m".into()))?;
    /// controls.replace_video(Some(file.frames()))?;
    /// // Keep `camera` or `file` alive while it is sent: dropping one stops
    /// // its capture, and the call then sends no video until a replacement.
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_live(&mut self, send: LiveSend) -> Result<LiveControls> {
        if self.live_started {
            return Err(MediaError::LiveAlreadyStarted);
        }
        let video = match self.video.clone() {
            Some((track, sender, ssrc)) => {
                Some(negotiated_video(track, &sender, ssrc, self.codec_switch.subscribe()).await?)
            }
            None => None,
        };
        let audio = match self.audio.clone() {
            Some((track, sender, ssrc)) => Some(AudioTrack {
                track,
                ssrc,
                payload_type: negotiated_payload_type(&sender, "audio").await?,
                sender,
            }),
            None => None,
        };
        let layers = if self.video_layers.is_empty() {
            None
        } else {
            let mid = match &self.video_transceiver {
                Some(transceiver) => transceiver.mid().await?.unwrap_or_default(),
                None => String::new(),
            };
            Some(send::SimulcastLayers {
                mid,
                layers: self.video_layers.clone(),
            })
        };
        let (controls, tasks) =
            live::spawn_live(video, layers, audio, send, Arc::clone(&self.stats))?;
        self.tasks.extend(tasks);
        self.live_started = true;
        Ok(controls)
    }

    /// Starts the screen share's send task. It sends nothing until the
    /// returned controls get a feed, such as
    /// [`ScreenCapture::frames`](crate::screen::ScreenCapture::frames), and
    /// stops again on `replace(None)`; neither needs renegotiation. Call it
    /// once, after the offer/answer exchange, on a peer created with
    /// [`PeerConfig::screen_track`].
    pub async fn start_screen(&mut self, config: ScreenSendConfig) -> Result<ScreenControls> {
        if self.screen_started {
            return Err(MediaError::ScreenAlreadyStarted);
        }
        let (track, sender, ssrc) = self.screen.clone().ok_or_else(|| {
            MediaError::InvalidConfig(
                "this peer has no screen share track; create it with `PeerConfig { \
                 screen_track: true, .. }`"
                    .into(),
            )
        })?;
        let video = negotiated_video(track, &sender, ssrc, self.codec_switch.subscribe()).await?;
        let (controls, task) = live::spawn_screen(video, config, Arc::clone(&self.stats))?;
        self.tasks.push(task);
        self.screen_started = true;
        Ok(controls)
    }

    /// Waits until every started send task has sent its last frame.
    pub async fn wait_sent(&mut self) {
        for task in self.tasks.drain(..) {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "media send task failed");
            }
        }
    }

    pub fn stats(&self) -> CallStats {
        self.stats.snapshot()
    }

    pub fn counters(&self) -> Arc<StatsCounters> {
        Arc::clone(&self.stats)
    }

    /// Stops sending and closes the connection.
    pub async fn close(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Err(err) = self.connection.close().await {
            tracing::debug!(error = %err, "closing the peer connection failed");
        }
    }
}

impl Drop for MediaPeer {
    /// Stops the send tasks, which would otherwise run on after the peer is
    /// gone; live sending never ends on its own.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Answers remote offers for one peer connection.
#[derive(Clone)]
pub struct Answerer {
    connection: Arc<dyn PeerConnection>,
    video: Option<SentVideo>,
    screen: Option<SentVideo>,
    video_codecs: Vec<VideoCodec>,
    payload_types: PayloadTypes,
}

/// The video this peer sends: its sender, the SSRC of its only or top
/// layer, and the rid and SSRC of each simulcast layer.
#[derive(Clone)]
struct SentVideo {
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    layers: Vec<(String, u32)>,
}

impl Answerer {
    /// Applies the remote offer and returns the SDP of the local answer.
    pub async fn accept_offer(&self, sdp: &str) -> Result<String> {
        let h264_fmtps: &[&str] = if self.video_codecs.contains(&VideoCodec::H264) {
            &[H264_FMTP_CONSTRAINED_BASELINE, H264_FMTP_BASELINE]
        } else {
            &[]
        };
        let prepared = negotiate::prepare_offer(sdp, h264_fmtps, &self.video_codecs);
        let invalid_offer = |err: webrtc::error::Error| {
            MediaError::InvalidSdp(format!(
                "the remote offer was rejected ({err}); pass on the SDP exactly as the \
                 remote peer's createOffer produced it"
            ))
        };
        let offer = RTCSessionDescription::offer(prepared).map_err(invalid_offer)?;
        self.connection
            .set_remote_description(offer)
            .await
            .map_err(invalid_offer)?;
        let answer = self
            .connection
            .create_answer(None)
            .await
            .map_err(|err| match err {
                webrtc::error::Error::ErrSenderWithNoCodecs => MediaError::NoCommonCodec(format!(
                    "the offer contains no codec that this peer can send (offered: {}); \
                     offer {}, or Opus",
                    negotiate::describe_offered_codecs(sdp),
                    describe_video_codecs(&self.video_codecs)
                )),
                other => other.into(),
            })?;
        let answer_sdp = answer.sdp.clone();
        // The offerer sends with the payload types of our answer, which
        // repeats the offered ones where it can.
        self.payload_types.learn(sdp);
        self.payload_types.learn(&answer_sdp);
        if let Some(video) = &self.video {
            match_video_track_to(&video.sender, video.ssrc, &video.layers, &answer_sdp).await?;
        }
        if let Some(screen) = &self.screen {
            match_screen_track_to(&screen.sender, screen.ssrc, &answer_sdp).await?;
        }
        self.connection.set_local_description(answer).await?;
        Ok(answer_sdp)
    }
}

/// Gives the video track the codec that the answer `answer_sdp` makes this
/// peer send. It must run before the answer is applied, because that is when
/// the library binds the sent stream to its retransmission,
/// congestion-control and report interceptors. The library matches the
/// track's codec against the negotiated ones and leaves a track made for
/// another codec unbound.
async fn match_video_track_to(
    sender: &Arc<dyn RtpSender>,
    ssrc: u32,
    layers: &[(String, u32)],
    answer_sdp: &str,
) -> Result<()> {
    let Some(codec) = negotiate::first_video_codec(answer_sdp) else {
        return Ok(());
    };
    tracing::debug!(%codec, "video codec negotiated");
    // Only the library's description of the track changes. The track
    // object that writes packets and reads RTCP stays bound to the sender.
    let track = video_track(main_codec(codec), ssrc, layers);
    sender
        .replace_track(Arc::new(TrackLocalStaticRTP::new(track)))
        .await?;
    Ok(())
}

/// Gives the screen share track the negotiated codec, as
/// [`match_video_track_to`] does for the camera track.
async fn match_screen_track_to(
    sender: &Arc<dyn RtpSender>,
    ssrc: u32,
    answer_sdp: &str,
) -> Result<()> {
    let Some(codec) = negotiate::first_video_codec(answer_sdp) else {
        return Ok(());
    };
    let track = screen_track(main_codec(codec), ssrc);
    sender
        .replace_track(Arc::new(TrackLocalStaticRTP::new(track)))
        .await?;
    Ok(())
}

async fn build_connection(
    config: &PeerConfig,
    handler: &Arc<Handler>,
    multicast_dns: MulticastDnsMode,
) -> Result<Arc<dyn PeerConnection>> {
    let mut media_engine = MediaEngine::default();
    for (codec, kind) in supported_codecs(&config.video_codecs) {
        media_engine.register_codec(codec, kind)?;
    }
    // Sent audio carries its level, from which an SFU finds the active speaker.
    media_engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?.with(
        rtc::interceptor::Slot::from(crate::keyframe_forwarder::SLOT),
        crate::keyframe_forwarder::KeyframeRequestForwarder::default(),
    );

    // Checks every 50 ms instead of the library's 200 ms, with four times the
    // attempts so that a candidate is still tried for 1.4 s: on a LAN the
    // first working pair then connects within tens of milliseconds.
    let mut setting_engine = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
        .with_multicast_dns_mode(multicast_dns);
    if let Some(profiles) = &config.srtp_profiles {
        setting_engine = setting_engine.with_srtp_protection_profiles(profiles.clone());
    }
    let setting_engine = setting_engine.build();

    let ice_servers = config
        .ice_servers
        .iter()
        .map(|url| RTCIceServer {
            urls: vec![url.clone()],
            ..Default::default()
        })
        .collect();
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .build();

    let connection = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::clone(handler) as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(config.udp_addrs.clone())
        .build()
        .await?;
    Ok(Arc::new(connection))
}

/// Adds trickled remote candidates to a peer connection.
#[derive(Clone)]
pub struct RemoteCandidates {
    connection: Arc<dyn PeerConnection>,
}

impl RemoteCandidates {
    pub async fn add(&self, candidate: Candidate) -> Result<()> {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            ..Default::default()
        };
        self.connection.add_ice_candidate(init).await?;
        Ok(())
    }
}

/// The codecs this engine sends and receives: the video codecs in
/// `video_codecs` order, their RTX entries, and Opus.
///
/// Each video entry has an RTX entry whose `apt` names it: the `webrtc` crate
/// answers an offered RTX payload type only when a registered RTX codec points
/// at the video entry that the offered `apt` matched, and drops it otherwise.
pub fn supported_codecs(video_codecs: &[VideoCodec]) -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let mut primaries = Vec::new();
    let mut retransmissions = Vec::new();
    for codec in video_codecs {
        for (rtp_codec, payload_type, rtx_payload_type) in payload_formats(*codec) {
            primaries.push(RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            });
            retransmissions.push(RTCRtpCodecParameters {
                rtp_codec: rtx_codec(payload_type),
                payload_type: rtx_payload_type,
            });
        }
    }
    let audio = RTCRtpCodecParameters {
        rtp_codec: opus_codec(),
        payload_type: OPUS_PT,
    };
    primaries
        .into_iter()
        .chain(retransmissions)
        .map(|codec| (codec, RtpCodecKind::Video))
        .chain([(audio, RtpCodecKind::Audio)])
        .collect()
}

/// Returns the payload formats of a codec: its RTP codec, payload type and
/// RTX payload type, most preferred first.
fn payload_formats(codec: VideoCodec) -> Vec<(RTCRtpCodec, u8, u8)> {
    match codec {
        VideoCodec::H264 => vec![
            (
                h264_codec(H264_FMTP_CONSTRAINED_BASELINE),
                H264_CONSTRAINED_BASELINE_PT,
                H264_CONSTRAINED_BASELINE_RTX_PT,
            ),
            (
                h264_codec(H264_FMTP_BASELINE),
                H264_BASELINE_PT,
                H264_BASELINE_RTX_PT,
            ),
        ],
        VideoCodec::Vp8 => vec![(vp8_codec(), VP8_PT, VP8_RTX_PT)],
    }
}

/// Returns the RTP codec a track of `codec` is created with.
fn main_codec(codec: VideoCodec) -> RTCRtpCodec {
    let (rtp_codec, _, _) = payload_formats(codec)
        .into_iter()
        .next()
        .expect("every codec has a payload format");
    rtp_codec
}

/// Returns the transceiver's codec preferences: every payload format of the
/// configured codecs, in order, without RTX, which the library adds for
/// each format that stays in.
fn codec_preferences(video_codecs: &[VideoCodec]) -> Vec<RTCRtpCodecParameters> {
    video_codecs
        .iter()
        .flat_map(|codec| payload_formats(*codec))
        .map(|(rtp_codec, payload_type, _)| RTCRtpCodecParameters {
            rtp_codec,
            payload_type,
        })
        .collect()
}

/// Describes the video formats this peer accepts, for error messages.
fn describe_video_codecs(video_codecs: &[VideoCodec]) -> String {
    let names: Vec<&str> = video_codecs
        .iter()
        .map(|codec| match codec {
            VideoCodec::H264 => "H.264 Constrained Baseline or Baseline with packetization-mode=1",
            VideoCodec::Vp8 => "VP8",
        })
        .collect();
    names.join(" or ")
}

fn video_feedback() -> Vec<RTCPFeedback> {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    vec![
        feedback("goog-remb", ""),
        feedback("transport-cc", ""),
        feedback("ccm", "fir"),
        feedback("nack", ""),
        feedback("nack", "pli"),
    ]
}

fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_feedback(),
    }
}

fn h264_codec(fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// Builds the RTX codec that retransmits the codec with payload type `apt`.
fn rtx_codec(apt: u8) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={apt}"),
        rtcp_feedback: Vec::new(),
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![RTCPFeedback {
            typ: "transport-cc".to_owned(),
            parameter: String::new(),
        }],
    }
}

/// Builds the video track: one encoding with `ssrc`, or one per simulcast
/// layer in `layers`.
fn video_track(codec: RTCRtpCodec, ssrc: u32, layers: &[(String, u32)]) -> MediaStreamTrack {
    if layers.is_empty() {
        return local_track(RtpCodecKind::Video, codec, ssrc);
    }
    let kind = RtpCodecKind::Video;
    let encodings = layers
        .iter()
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.clone(),
                ssrc: Some(*ssrc),
                ..Default::default()
            },
            codec: codec.clone(),
            active: true,
            ..Default::default()
        })
        .collect();
    MediaStreamTrack::new(
        "hearth".to_owned(),
        format!("hearth-{kind}"),
        format!("hearth-{kind}"),
        kind,
        encodings,
    )
}

/// Builds the screen share track: one encoding, track id `hearth-screen`.
fn screen_track(codec: RTCRtpCodec, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        "hearth".to_owned(),
        "hearth-screen".to_owned(),
        "hearth-screen".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

fn local_track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        "hearth".to_owned(),
        format!("hearth-{kind}"),
        format!("hearth-{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

/// Returns the video track with the payload type and codec to send in: the
/// codec `requested` names if negotiation accepted it, else the first codec
/// of the answer.
async fn negotiated_video(
    track: Arc<TrackLocalStaticRTP>,
    sender: &Arc<dyn RtpSender>,
    ssrc: u32,
    requested: watch::Receiver<Option<VideoCodec>>,
) -> Result<VideoTrack> {
    let parameters = sender.get_parameters().await?;
    let first = parameters.rtp_parameters.codecs.first().ok_or_else(|| {
        MediaError::NoCommonCodec("the remote peer accepted no video codec".into())
    })?;
    let mime_type = &first.rtp_codec.mime_type;
    let first_codec = VideoCodec::from_mime_type(mime_type).ok_or_else(|| {
        MediaError::NoCommonCodec(format!(
            "the remote peer accepted {mime_type}, which this peer cannot encode"
        ))
    })?;
    // Retransmission formats have no codec of their own and are left out.
    let negotiated: Vec<(VideoCodec, u8)> = parameters
        .rtp_parameters
        .codecs
        .iter()
        .filter_map(|codec| {
            VideoCodec::from_mime_type(&codec.rtp_codec.mime_type)
                .map(|video| (video, codec.payload_type))
        })
        .collect();
    let room_codec = *requested.borrow();
    let (codec, payload_type) = room_codec
        .and_then(|room_codec| negotiated.iter().copied().find(|(c, _)| *c == room_codec))
        .unwrap_or((first_codec, first.payload_type));
    Ok(VideoTrack {
        track,
        ssrc,
        payload_type,
        codec,
        negotiated,
        requested,
    })
}

async fn negotiated_payload_type(sender: &Arc<dyn RtpSender>, kind: &str) -> Result<u8> {
    sender
        .get_parameters()
        .await?
        .rtp_parameters
        .codecs
        .first()
        .map(|codec| codec.payload_type)
        .ok_or_else(|| {
            MediaError::NoCommonCodec(format!("the remote peer accepted no {kind} codec"))
        })
}

struct Handler {
    events: mpsc::UnboundedSender<PeerEvent>,
    payload_types: PayloadTypes,
    /// Set once the DTLS handshake completed and the connection is up.
    connected: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<StatsCounters>,
    video_sink: Option<mpsc::Sender<DecodedVideo>>,
    audio_sink: Option<mpsc::Sender<DecodedAudio>>,
    stream_sinks: Option<StreamSinks>,
}

impl Handler {
    fn emit(&self, event: PeerEvent) {
        // The receiver is gone once the call ended; late events are irrelevant then.
        let _ = self.events.send(event);
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => self.emit(PeerEvent::LocalCandidate(Candidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            })),
            Err(err) => tracing::warn!(error = %err, "cannot serialise a local ICE candidate"),
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state != RTCIceConnectionState::Connected {
            return;
        }
        // The library never reports a failed DTLS handshake (for example when
        // the peers share no DTLS-SRTP protection profile): the connection stays
        // "connecting". A watchdog turns that into `Failed`.
        let connected = Arc::clone(&self.connected);
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DTLS_HANDSHAKE_TIMEOUT).await;
            if !connected.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    timeout_ms = DTLS_HANDSHAKE_TIMEOUT.as_millis() as u64,
                    "DTLS-SRTP handshake did not complete after ICE connected; \
                     the peers may share no SRTP protection profile"
                );
                let _ = events.send(PeerEvent::Failed);
            }
        });
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection state changed");
        match state {
            RTCPeerConnectionState::Connected => {
                self.connected
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                self.emit(PeerEvent::Connected);
            }
            RTCPeerConnectionState::Disconnected => self.emit(PeerEvent::Disconnected),
            RTCPeerConnectionState::Failed => self.emit(PeerEvent::Failed),
            RTCPeerConnectionState::Closed => self.emit(PeerEvent::Closed),
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let stats = Arc::clone(&self.stats);
        let (video_sink, audio_sink) = match &self.stream_sinks {
            Some(streams) => {
                let stream_id = track.stream_id().await;
                let track_id = track.track_id().await;
                tracing::debug!(%stream_id, %track_id, ?kind, "remote stream added");
                let video = match &streams.screen {
                    Some(screen) if track_id.ends_with(SCREEN_TRACK_SUFFIX) => screen.clone(),
                    _ => streams.video.clone(),
                };
                (
                    Some(tag_stream(stream_id.clone(), video)),
                    Some(tag_stream(stream_id, streams.audio.clone())),
                )
            }
            None => (self.video_sink.clone(), self.audio_sink.clone()),
        };
        match kind {
            RtpCodecKind::Video => {
                tokio::spawn(receive::receive_video(
                    track,
                    self.payload_types.clone(),
                    stats,
                    video_sink,
                ));
            }
            RtpCodecKind::Audio => {
                tokio::spawn(receive::receive_audio(track, stats, audio_sink));
            }
            _ => tracing::warn!(?kind, "ignoring a remote track of unknown kind"),
        }
    }
}

/// Returns a channel whose items reach `sink` tagged with `stream_id`. The
/// forwarding task ends when either side closes.
fn tag_stream<T: Send + 'static>(
    stream_id: String,
    sink: mpsc::Sender<(String, T)>,
) -> mpsc::Sender<T> {
    let (sender, mut receiver) = mpsc::channel::<T>(4);
    tokio::spawn(async move {
        while let Some(item) = receiver.recv().await {
            if sink.send((stream_id.clone(), item)).await.is_err() {
                break;
            }
        }
    });
    sender
}
