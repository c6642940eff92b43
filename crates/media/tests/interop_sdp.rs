//! Answers to offers captured from real browsers and media tools: H.264 is
//! matched on profile with any level, VP8 is kept, the answer leads with the
//! first of our codecs that the offer has, Opus is kept, RTX stays paired with
//! the payload type it retransmits, and broken fragments are errors.

mod common;

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;

use hearth_media::negotiate::{
    H264Profile, first_video_codec, h264_packetization_mode, h264_profile,
    rtx_associated_payload_type,
};
use hearth_media::peer::{RemoteSinks, SendMedia};
use hearth_media::{MediaError, MediaPeer, VideoCodec};
use rtc::sdp::SessionDescription;
use rtc::sdp::util::Codec;

/// Folder with the captured offers: `HEARTH_SDP_DIR`, or `shared/interop/sdp`
/// beside the repository.
fn sdp_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTH_SDP_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/interop/sdp")
}

/// Reads a capture, drops its `#` header lines and ends every line with CRLF
/// as signalling does.
fn offer(name: &str) -> String {
    let path = sdp_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read SDP capture {}: {err}; set HEARTH_SDP_DIR to the folder with the captures",
            path.display()
        )
    });
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\r\n"))
        .collect()
}

/// Answers `offer` with a peer that sends and receives video and audio.
async fn answer(offer: &str) -> Result<String, MediaError> {
    answer_with(offer, &VideoCodec::ALL).await
}

/// Answers `offer` with a sending peer that prefers `video_codecs` in this order.
async fn answer_with(offer: &str, video_codecs: &[VideoCodec]) -> Result<String, MediaError> {
    let config = hearth_media::PeerConfig {
        video_codecs: video_codecs.to_vec(),
        ..common::loopback_config()
    };
    let send = SendMedia {
        video: true,
        audio: true,
    };
    let peer = MediaPeer::new(&config, send, RemoteSinks::default())
        .await
        .expect("peer");
    let answer = peer.accept_offer(offer).await;
    peer.close().await;
    answer
}

/// One media section of a parsed answer.
#[derive(Debug)]
struct Section {
    kind: String,
    port: isize,
    /// Payload types in the order of the `m=` line.
    formats: Vec<String>,
    codecs: HashMap<u8, Codec>,
}

impl Section {
    fn payload_types(&self, encoding: &str) -> Vec<u8> {
        let mut payload_types: Vec<u8> = self
            .codecs
            .values()
            .filter(|codec| codec.name.eq_ignore_ascii_case(encoding))
            .map(|codec| codec.payload_type)
            .collect();
        payload_types.sort_unstable();
        payload_types
    }

    /// RTX payload types and the payload types they retransmit.
    fn rtx_pairs(&self) -> Vec<(u8, u8)> {
        let mut pairs: Vec<(u8, u8)> = self
            .codecs
            .values()
            .filter(|codec| codec.name.eq_ignore_ascii_case("rtx"))
            .map(|codec| {
                let apt = rtx_associated_payload_type(&codec.fmtp).unwrap_or_else(|| {
                    panic!(
                        "RTX payload type {} has no apt: {:?}",
                        codec.payload_type, codec.fmtp
                    )
                });
                (codec.payload_type, apt)
            })
            .collect();
        pairs.sort_unstable();
        pairs
    }
}

fn parse_sections(sdp: &str) -> Vec<Section> {
    let description = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .unwrap_or_else(|err| panic!("the answer does not parse: {err}\n{sdp}"));
    description
        .media_descriptions
        .iter()
        .map(|media| Section {
            kind: media.media_name.media.clone(),
            port: media.media_name.port.value,
            formats: media.media_name.formats.clone(),
            codecs: media.codecs(),
        })
        .collect()
}

fn section<'a>(sections: &'a [Section], kind: &str) -> &'a Section {
    sections
        .iter()
        .find(|section| section.kind == kind)
        .unwrap_or_else(|| panic!("the answer has no {kind} section: {sections:?}"))
}

/// Checks that every H.264 format of the answer is Constrained Baseline or
/// Baseline with packetization mode 1.
fn assert_h264_usable(video: &Section) {
    for payload_type in video.payload_types("H264") {
        let fmtp = &video.codecs[&payload_type].fmtp;
        let profile = h264_profile(fmtp);
        assert!(
            matches!(
                profile,
                Some(H264Profile::ConstrainedBaseline | H264Profile::Baseline)
            ),
            "H.264 payload type {payload_type} has profile {profile:?}: {fmtp}"
        );
        assert_eq!(
            h264_packetization_mode(fmtp),
            "1",
            "H.264 payload type {payload_type}: {fmtp}"
        );
    }
}

/// Checks that every RTX format of the answer retransmits an H.264 or VP8
/// format of the answer.
fn assert_rtx_paired(video: &Section) {
    let mut media = video.payload_types("H264");
    media.extend(video.payload_types("VP8"));
    for (rtx, apt) in video.rtx_pairs() {
        assert!(
            media.contains(&apt),
            "RTX {rtx} has apt={apt}, not one of the H.264 or VP8 payload types {media:?}"
        );
    }
}

/// Checks that the answer's first video format is `codec`, under a payload
/// type that the offer maps to the same codec, and that every RTX pair of
/// the answer is a pair of the offer.
fn assert_answer_leads_with(offer: &str, answer: &str, codec: VideoCodec) {
    assert_eq!(first_video_codec(answer), Some(codec), "{answer}");
    let offered = section(&parse_sections(offer), "video").codecs.clone();
    let sections = parse_sections(answer);
    let video = section(&sections, "video");
    let first: u8 = video.formats[0].parse().expect("numeric payload type");
    let offered_name = offered
        .get(&first)
        .map(|offered| offered.name.clone())
        .unwrap_or_default();
    assert!(
        offered_name.eq_ignore_ascii_case(codec.encoding_name()),
        "the answer leads with payload type {first}, which the offer maps to {offered_name:?}"
    );
    let offered_pairs: Vec<(u8, u8)> = offered
        .values()
        .filter(|codec| codec.name.eq_ignore_ascii_case("rtx"))
        .filter_map(|codec| {
            Some((
                codec.payload_type,
                rtx_associated_payload_type(&codec.fmtp)?,
            ))
        })
        .collect();
    for pair in video.rtx_pairs() {
        assert!(
            offered_pairs.contains(&pair),
            "RTX pair {pair:?} of the answer is not in the offer: {offered_pairs:?}"
        );
    }
}

#[tokio::test]
async fn chromium_offer_keeps_h264_pairs() {
    let answer = answer(&offer("01_chromium120_offer.sdp"))
        .await
        .expect("answer");
    let sections = parse_sections(&answer);

    let audio = section(&sections, "audio");
    assert_eq!(audio.payload_types("opus"), vec![111]);

    let video = section(&sections, "video");
    assert_ne!(video.port, 0, "video was rejected");
    assert_eq!(video.payload_types("H264"), vec![102, 106]);
    assert_eq!(video.payload_types("VP8"), vec![96]);
    assert_eq!(video.rtx_pairs(), vec![(97, 96), (103, 102), (107, 106)]);
    assert_h264_usable(video);
    assert_rtx_paired(video);
    assert!(video.payload_types("AV1").is_empty());
}

#[tokio::test]
async fn chromium_offer_answered_h264_first() {
    let offer = offer("01_chromium120_offer.sdp");
    let answer = answer(&offer).await.expect("answer");
    assert_answer_leads_with(&offer, &answer, VideoCodec::H264);
}

#[tokio::test]
async fn chromium_offer_answered_vp8_first() {
    let offer = offer("01_chromium120_offer.sdp");
    let answer = answer_with(&offer, &[VideoCodec::Vp8, VideoCodec::H264])
        .await
        .expect("answer");
    assert_answer_leads_with(&offer, &answer, VideoCodec::Vp8);

    let sections = parse_sections(&answer);
    let video = section(&sections, "video");
    assert_eq!(video.formats[0], "96");
    assert_eq!(video.payload_types("H264"), vec![102, 106]);
    assert_rtx_paired(video);
}

#[tokio::test]
async fn chromium_offer_answered_vp8_only() {
    let offer = offer("01_chromium120_offer.sdp");
    let answer = answer_with(&offer, &[VideoCodec::Vp8])
        .await
        .expect("answer");
    assert_answer_leads_with(&offer, &answer, VideoCodec::Vp8);

    let sections = parse_sections(&answer);
    let video = section(&sections, "video");
    assert_eq!(video.payload_types("VP8"), vec![96]);
    assert!(video.payload_types("H264").is_empty(), "{answer}");
    assert_eq!(video.rtx_pairs(), vec![(97, 96)]);
}

#[tokio::test]
async fn firefox_offer_answered_in_our_order() {
    let offer = offer("02_firefox121_offer.sdp");
    let h264_first = answer(&offer).await.expect("answer");
    assert_answer_leads_with(&offer, &h264_first, VideoCodec::H264);

    let vp8_first = answer_with(&offer, &[VideoCodec::Vp8, VideoCodec::H264])
        .await
        .expect("answer");
    assert_answer_leads_with(&offer, &vp8_first, VideoCodec::Vp8);
    let sections = parse_sections(&vp8_first);
    let video = section(&sections, "video");
    assert_eq!(video.payload_types("VP8"), vec![120]);
    assert_eq!(video.rtx_pairs(), vec![(124, 120), (127, 126)]);
}

#[tokio::test]
async fn firefox_offer_drops_mode_0_h264() {
    let answer = answer(&offer("02_firefox121_offer.sdp"))
        .await
        .expect("answer");
    let sections = parse_sections(&answer);

    assert_eq!(section(&sections, "audio").payload_types("opus"), vec![109]);

    // Payload type 97 has no packetization-mode, so it is mode 0.
    let video = section(&sections, "video");
    assert_eq!(video.payload_types("H264"), vec![126]);
    assert_eq!(video.payload_types("VP8"), vec![120]);
    assert_eq!(video.rtx_pairs(), vec![(124, 120), (127, 126)]);
    assert_h264_usable(video);
    assert_rtx_paired(video);
}

#[tokio::test]
async fn obs_whip_offer_with_session_level_ice() {
    let offer = offer("03_obs30_whip_libdatachannel_offer.sdp");
    let answer = answer_with(&offer, &[VideoCodec::Vp8, VideoCodec::H264])
        .await
        .expect("answer");
    // The offer has only H.264, so a peer that prefers VP8 still answers H.264.
    assert_answer_leads_with(&offer, &answer, VideoCodec::H264);
    let sections = parse_sections(&answer);

    assert_eq!(section(&sections, "audio").payload_types("opus"), vec![111]);
    let video = section(&sections, "video");
    assert_eq!(video.payload_types("H264"), vec![96]);
    assert_h264_usable(video);
    assert!(video.rtx_pairs().is_empty());
}

#[tokio::test]
async fn ffmpeg_offer_with_baseline_level_3() {
    let offer = offer("07_ffmpeg_whip_offer.sdp");
    let answer = answer(&offer).await.expect("answer");
    assert_answer_leads_with(&offer, &answer, VideoCodec::H264);
    let sections = parse_sections(&answer);

    assert_eq!(section(&sections, "audio").payload_types("opus"), vec![111]);
    let video = section(&sections, "video");
    assert_eq!(video.payload_types("H264"), vec![106]);
    assert_eq!(video.rtx_pairs(), vec![(105, 106)]);
    assert_h264_usable(video);
    assert_rtx_paired(video);
}

#[tokio::test]
async fn higher_levels_keep_h264() {
    // Level 5.2 (0x34) in place of 3.1: the level part must not take part in matching.
    let offer = offer("01_chromium120_offer.sdp")
        .replace("profile-level-id=42e01f", "profile-level-id=42e034")
        .replace("profile-level-id=42001f", "profile-level-id=420034");
    let answer = answer(&offer).await.expect("answer");
    let sections = parse_sections(&answer);

    let video = section(&sections, "video");
    assert_eq!(video.payload_types("H264"), vec![102, 106]);
    assert_eq!(video.rtx_pairs(), vec![(97, 96), (103, 102), (107, 106)]);
    assert_h264_usable(video);
}

#[tokio::test]
async fn other_constrained_baseline_flags_match() {
    // 42c0 sets constraint_set0 and 1 where Chromium writes 42e0 (set0, 1 and 2):
    // both are Constrained Baseline, and the answer must prefer it over Main.
    let offer = offer("01_chromium120_offer.sdp")
        .replace("profile-level-id=42e01f", "profile-level-id=42c028");
    let answer = answer(&offer).await.expect("answer");
    let sections = parse_sections(&answer);

    let video = section(&sections, "video");
    assert_eq!(video.payload_types("H264"), vec![102, 106]);
    let fmtp = &video.codecs[&106].fmtp;
    assert_eq!(
        h264_profile(fmtp),
        Some(H264Profile::ConstrainedBaseline),
        "{fmtp}"
    );
    assert!(
        fmtp.contains("profile-level-id=42e028"),
        "the offered level is kept: {fmtp}"
    );
    assert_eq!(video.rtx_pairs(), vec![(97, 96), (103, 102), (107, 106)]);
    assert_h264_usable(video);
}

#[tokio::test]
async fn lf_line_endings_are_accepted() {
    let offer = offer("02_firefox121_offer.sdp").replace("\r\n", "\n");
    let answer = answer(&offer).await.expect("answer");
    let sections = parse_sections(&answer);
    assert_eq!(section(&sections, "video").payload_types("H264"), vec![126]);
}

#[tokio::test]
async fn legacy_firefox_data_channel_answered() {
    let answer = answer(&offer("05_firefox_datachannel_tcp_candidates.sdp"))
        .await
        .expect("answer");
    let sections = parse_sections(&answer);

    assert_eq!(sections.len(), 1, "{answer}");
    assert_eq!(sections[0].kind, "application");
    assert!(sections[0].codecs.is_empty());
}

#[tokio::test]
async fn safari_data_channel_answered() {
    let answer = answer(&offer("08_safari_datachannel_offer.sdp"))
        .await
        .expect("answer");
    let sections = parse_sections(&answer);

    assert_eq!(sections.len(), 1, "{answer}");
    assert_eq!(sections[0].kind, "application");
    assert!(!answer.contains("m=audio"), "{answer}");
    assert!(!answer.contains("m=video"), "{answer}");
}

#[tokio::test]
async fn vp8_offer_answered_with_vp8() {
    let offer = offer("06_firefox_video_rtcp_component2.sdp");
    let answer = answer(&offer).await.expect("answer");
    assert_answer_leads_with(&offer, &answer, VideoCodec::Vp8);

    let sections = parse_sections(&answer);
    let video = section(&sections, "video");
    assert_ne!(video.port, 0, "{answer}");
    assert_eq!(video.payload_types("VP8"), vec![120]);
    assert!(video.payload_types("VP9").is_empty());
}

#[tokio::test]
async fn vp8_offer_to_h264_only_sender_fails() {
    let err = answer_with(
        &offer("06_firefox_video_rtcp_component2.sdp"),
        &[VideoCodec::H264],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MediaError::NoCommonCodec(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("VP8, VP9"), "{message}");
    assert!(message.contains("H.264"), "{message}");
}

#[tokio::test]
async fn vp8_offer_to_receiver_accepts_video() {
    let peer = common::peer(SendMedia::default(), RemoteSinks::default()).await;
    let answer = peer
        .accept_offer(&offer("06_firefox_video_rtcp_component2.sdp"))
        .await
        .expect("answer");
    peer.close().await;

    let sections = parse_sections(&answer);
    let video = section(&sections, "video");
    assert_ne!(video.port, 0, "{answer}");
    assert_eq!(video.payload_types("VP8"), vec![120]);
}

#[tokio::test]
async fn empty_codec_list_is_rejected() {
    let config = hearth_media::PeerConfig {
        video_codecs: Vec::new(),
        ..common::loopback_config()
    };
    let result = MediaPeer::new(&config, SendMedia::default(), RemoteSinks::default()).await;
    assert!(
        matches!(result, Err(MediaError::InvalidConfig(_))),
        "an empty codec list was accepted"
    );
}

#[tokio::test]
async fn firefox_fragment_is_invalid_sdp() {
    let err = answer(&offer("09_firefox99_rejected_mline_no_setup.sdp"))
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::InvalidSdp(_)), "{err:?}");
}
