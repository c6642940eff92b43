//! Codec negotiation checks on SDP, and the offer rewrites that the `webrtc`
//! 0.21 crate needs before it can answer some real offers.
//!
//! It also puts an offer's video codecs in this peer's order of preference.
//!
//! H.264 payload formats are matched as RFC 6184 section 8.2.2 requires: the
//! profile and the packetization mode must agree, but the level may differ.
//! The profile classes follow `profile_idc` and the constraint flags of ITU-T
//! H.264 annex A.

use crate::codec::VideoCodec;

/// The H.264 profiles that matter for negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    /// Any other `profile_idc`, or a constraint pattern outside the classes above.
    Other {
        profile_idc: u8,
        profile_iop: u8,
    },
}

/// `profile-level-id` when an H.264 fmtp line has none: Baseline, level 1.0
/// (RFC 6184 section 8.1).
pub const DEFAULT_PROFILE_LEVEL_ID: &str = "42000a";

/// Returns the value of `key` in an fmtp parameter list such as
/// `packetization-mode=1;profile-level-id=42e01f`. Keys compare case-insensitively.
pub fn fmtp_parameter<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|parameter| {
        let (name, value) = parameter.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case(key).then(|| value.trim())
    })
}

/// Splits a `profile-level-id` (three bytes in hex) into
/// `(profile_idc, profile_iop, level_idc)`.
pub fn parse_profile_level_id(profile_level_id: &str) -> Option<(u8, u8, u8)> {
    if profile_level_id.len() != 6 || !profile_level_id.is_ascii() {
        return None;
    }
    let byte = |index: usize| u8::from_str_radix(&profile_level_id[index..index + 2], 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

/// Classifies `profile_idc` and the constraint flags byte (`profile_iop`).
///
/// Constrained Baseline is Baseline (0x42) with constraint_set1, Main (0x4d)
/// with constraint_set0, or Extended (0x58) with constraint_set0 and 1. The
/// low four bits (constraint_set4, constraint_set5 and two reserved bits) must
/// be zero for every class here.
pub fn classify_h264_profile(profile_idc: u8, profile_iop: u8) -> H264Profile {
    const SET0: u8 = 0x80;
    const SET1: u8 = 0x40;
    const SET3: u8 = 0x10;
    const LOW_BITS: u8 = 0x0f;

    let has = |flags: u8| profile_iop & flags == flags;
    let low_bits_clear = profile_iop & LOW_BITS == 0;
    match profile_idc {
        0x42 if low_bits_clear && has(SET1) => H264Profile::ConstrainedBaseline,
        0x42 if low_bits_clear => H264Profile::Baseline,
        0x4d if low_bits_clear && has(SET0) => H264Profile::ConstrainedBaseline,
        0x4d if low_bits_clear && profile_iop & (SET1 | SET3) == 0 => H264Profile::Main,
        0x58 if low_bits_clear && has(SET0 | SET1) => H264Profile::ConstrainedBaseline,
        0x58 if low_bits_clear && has(SET0) => H264Profile::Baseline,
        0x64 if profile_iop == 0x00 => H264Profile::High,
        0x64 if profile_iop == 0x0c => H264Profile::ConstrainedHigh,
        _ => H264Profile::Other {
            profile_idc,
            profile_iop,
        },
    }
}

/// Returns the profile an H.264 fmtp line declares, using the RFC 6184
/// default when it has no `profile-level-id`, or `None` when the value is not
/// three hex bytes.
pub fn h264_profile(fmtp: &str) -> Option<H264Profile> {
    let profile_level_id =
        fmtp_parameter(fmtp, "profile-level-id").unwrap_or(DEFAULT_PROFILE_LEVEL_ID);
    let (profile_idc, profile_iop, _level) = parse_profile_level_id(profile_level_id)?;
    Some(classify_h264_profile(profile_idc, profile_iop))
}

/// Returns the packetization mode of an H.264 fmtp line. An absent parameter
/// means mode 0 (RFC 6184 section 8.1).
pub fn h264_packetization_mode(fmtp: &str) -> &str {
    fmtp_parameter(fmtp, "packetization-mode").unwrap_or("0")
}

/// Returns whether an offered H.264 format can be answered with ours: the same
/// profile and the same packetization mode. The level is not compared, because
/// RFC 6184 lets each direction use its own level.
pub fn h264_profile_matches(offered_fmtp: &str, our_fmtp: &str) -> bool {
    let (Some(offered), Some(ours)) = (h264_profile(offered_fmtp), h264_profile(our_fmtp)) else {
        return false;
    };
    offered == ours && h264_packetization_mode(offered_fmtp) == h264_packetization_mode(our_fmtp)
}

/// Returns the payload type an RTX fmtp line (`apt=102`) retransmits.
pub fn rtx_associated_payload_type(fmtp: &str) -> Option<u8> {
    fmtp_parameter(fmtp, "apt")?.parse().ok()
}

/// Lists the encodings of each media section, such as
/// `audio PCMU; video VP8, VP9`, for error messages.
pub fn describe_offered_codecs(sdp: &str) -> String {
    let mut descriptions = Vec::new();
    for section in split_sections(sdp).iter().skip(1) {
        let kind = section[0]
            .trim_start_matches("m=")
            .split(' ')
            .next()
            .unwrap_or_default();
        let mut names: Vec<&str> = Vec::new();
        let encodings = section
            .iter()
            .filter_map(|line| line.trim_end().strip_prefix("a=rtpmap:"))
            .filter_map(|rtpmap| rtpmap.split_once(' ')?.1.split('/').next());
        for name in encodings {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let names = if names.is_empty() {
            "no RTP codec".to_owned()
        } else {
            names.join(", ")
        };
        descriptions.push(format!("{kind} {names}"));
    }
    descriptions.join("; ")
}

/// Rewrites a remote offer so that the `webrtc` crate can answer it, and so
/// that the answer lists video codecs in the order of `video_codecs`.
///
/// `our_h264_fmtps` are the H.264 fmtp lines registered with the media engine.
/// The line endings of the offer are kept.
pub fn prepare_offer(sdp: &str, our_h264_fmtps: &[&str], video_codecs: &[VideoCodec]) -> String {
    let mut sections = split_sections(sdp);
    for section in &mut sections {
        upgrade_legacy_data_channel(section);
        align_h264_profiles(section, our_h264_fmtps);
        order_video_formats(section, video_codecs);
    }
    sections.concat().concat()
}

/// Returns the codec of the first format in the first `m=video` section
/// that is H.264 or VP8: the codec both sides send after this answer. RTX,
/// RED and FEC formats are skipped because they carry no codec of their own.
pub fn first_video_codec(sdp: &str) -> Option<VideoCodec> {
    let sections = split_sections(sdp);
    let video = sections
        .iter()
        .skip(1)
        .find(|section| section[0].starts_with("m=video "))?;
    let encodings = rtpmap_encodings(video);
    media_formats(&video[0])
        .into_iter()
        .filter_map(|format| format.parse::<u8>().ok())
        .find_map(|payload_type| {
            let (_, name) = encodings.iter().find(|(pt, _)| *pt == payload_type)?;
            VideoCodec::from_mime_type(name)
        })
}

/// Returns every video payload type of the `m=video` sections that maps to
/// H.264 or VP8, with its codec. Bundled sections give one payload type the
/// same codec (RFC 8843), so the result holds for the whole session.
pub fn video_payload_types(sdp: &str) -> Vec<(u8, VideoCodec)> {
    split_sections(sdp)
        .iter()
        .skip(1)
        .filter(|section| section[0].starts_with("m=video "))
        .flat_map(|section| rtpmap_encodings(section))
        .filter_map(|(payload_type, name)| Some((payload_type, VideoCodec::from_mime_type(&name)?)))
        .collect()
}

/// Reorders the formats on the `m=video` line so that H.264 and VP8 come in
/// the order of `video_codecs`, each codec's formats in their offered order.
/// Other formats (RTX, RED, FEC, codecs we lack) follow in their offered order.
///
/// The `webrtc` crate answers with the offered order, and both sides send
/// the answer's first codec, so this makes our preference decide.
fn order_video_formats(section: &mut [String], video_codecs: &[VideoCodec]) {
    let Some(first) = section.first() else {
        return;
    };
    if !first.starts_with("m=video ") {
        return;
    }
    let encodings = rtpmap_encodings(section);
    let rank = |format: &str| -> usize {
        let codec = format.parse::<u8>().ok().and_then(|payload_type| {
            let (_, name) = encodings.iter().find(|(pt, _)| *pt == payload_type)?;
            VideoCodec::from_mime_type(name)
        });
        codec
            .and_then(|codec| video_codecs.iter().position(|ours| *ours == codec))
            .unwrap_or(video_codecs.len())
    };
    let ending = line_ending(first).to_owned();
    let fields: Vec<&str> = first.trim_end().split(' ').collect();
    if fields.len() < 4 {
        return;
    }
    let mut formats = fields[3..].to_vec();
    formats.sort_by_key(|format| rank(format));
    section[0] = format!("{} {}{ending}", fields[..3].join(" "), formats.join(" "));
}

/// Returns the formats (payload types) listed on an `m=` line.
fn media_formats(media_line: &str) -> Vec<&str> {
    media_line.trim_end().split(' ').skip(3).collect()
}

/// Returns each `a=rtpmap` line of a section as the payload type and the encoding name.
fn rtpmap_encodings(section: &[String]) -> Vec<(u8, String)> {
    section
        .iter()
        .filter_map(|line| {
            let (payload_type, encoding) =
                line.trim_end().strip_prefix("a=rtpmap:")?.split_once(' ')?;
            let name = encoding.split('/').next()?;
            Some((payload_type.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// Splits an SDP into the session part and one part per `m=` section. Each
/// line keeps its line ending.
fn split_sections(sdp: &str) -> Vec<Vec<String>> {
    let mut sections: Vec<Vec<String>> = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        sections
            .last_mut()
            .expect("sections starts with the session part")
            .push(line.to_owned());
    }
    sections
}

/// Rewrites a pre-RFC 8841 data channel section (`m=application PORT
/// DTLS/SCTP 5000` with `a=sctpmap:5000 webrtc-datachannel N`) into the
/// current form (`UDP/DTLS/SCTP webrtc-datachannel` with `a=sctp-port:5000`).
///
/// The `webrtc` crate recognises a data channel only by the format
/// `webrtc-datachannel`, so it reads the legacy SCTP port as an RTP payload
/// type and rejects the offer because 5000 does not fit in a byte.
// NOTE: the answer then uses the RFC 8841 form, which a peer that knows only
// the legacy form may reject.
fn upgrade_legacy_data_channel(section: &mut [String]) {
    let Some(first) = section.first() else {
        return;
    };
    let Some(port) = legacy_data_channel_port(first) else {
        return;
    };
    let ending = line_ending(first);
    let fields: Vec<&str> = first.trim_end().split(' ').collect();
    section[0] = format!(
        "m=application {} UDP/DTLS/SCTP webrtc-datachannel{ending}",
        fields[1]
    );

    for line in section.iter_mut().skip(1) {
        if line.starts_with("a=sctpmap:") {
            let ending = line_ending(line);
            *line = format!("a=sctp-port:{port}{ending}");
        }
    }
}

/// Returns the SCTP port of a legacy `m=application PORT DTLS/SCTP SCTP-PORT` line.
fn legacy_data_channel_port(media_line: &str) -> Option<u16> {
    let fields: Vec<&str> = media_line.trim_end().split(' ').collect();
    match fields.as_slice() {
        ["m=application", _port, "DTLS/SCTP", sctp_port] => sctp_port.parse().ok(),
        _ => None,
    }
}

/// Rewrites the `profile-level-id` of offered H.264 formats that match one of
/// ours by profile class but not byte for byte, keeping the offered level.
///
/// The `webrtc` crate compares the first two bytes of `profile-level-id`
/// exactly, so it treats 42c01f (Constrained Baseline, as our encoder writes
/// it) as different from our 42e01f. With no exact match it falls back to any
/// H.264 format of the offer, whatever its profile or packetization mode.
fn align_h264_profiles(section: &mut [String], our_h264_fmtps: &[&str]) {
    let h264_payload_types = h264_payload_types(section);
    for line in section.iter_mut() {
        let Some((payload_type, fmtp)) = fmtp_line(line) else {
            continue;
        };
        if !h264_payload_types.contains(&payload_type) {
            continue;
        }
        if let Some(aligned) = aligned_h264_fmtp(fmtp, our_h264_fmtps) {
            let ending = line_ending(line);
            *line = format!("a=fmtp:{payload_type} {aligned}{ending}");
        }
    }
}

/// Returns the offered fmtp with our profile bytes and the offered level, or
/// `None` when it already matches byte for byte or matches none of ours.
fn aligned_h264_fmtp(offered_fmtp: &str, our_h264_fmtps: &[&str]) -> Option<String> {
    let offered_id = fmtp_parameter(offered_fmtp, "profile-level-id");
    let offered_bytes = parse_profile_level_id(offered_id.unwrap_or(DEFAULT_PROFILE_LEVEL_ID))?;
    let matching: Vec<&str> = our_h264_fmtps
        .iter()
        .copied()
        .filter(|ours| h264_profile_matches(offered_fmtp, ours))
        .collect();
    let ours = matching.first()?;
    let our_bytes = parse_profile_level_id(fmtp_parameter(ours, "profile-level-id")?)?;
    let exact = matching.iter().any(|ours| {
        fmtp_parameter(ours, "profile-level-id")
            .and_then(parse_profile_level_id)
            .is_some_and(|bytes| (bytes.0, bytes.1) == (offered_bytes.0, offered_bytes.1))
    });
    if exact && offered_id.is_some() {
        return None;
    }

    let aligned_id = format!(
        "{:02x}{:02x}{:02x}",
        our_bytes.0, our_bytes.1, offered_bytes.2
    );
    let mut parameters: Vec<String> = offered_fmtp
        .split(';')
        .map(str::trim)
        .filter(|parameter| !parameter.is_empty())
        .filter(|parameter| {
            let name = parameter.split('=').next().unwrap_or_default();
            !name.trim().eq_ignore_ascii_case("profile-level-id")
        })
        .map(str::to_owned)
        .collect();
    parameters.push(format!("profile-level-id={aligned_id}"));
    Some(parameters.join(";"))
}

/// Returns the payload types that a section's `a=rtpmap` lines map to H.264.
fn h264_payload_types(section: &[String]) -> Vec<u8> {
    section
        .iter()
        .filter_map(|line| {
            let (payload_type, encoding) =
                line.trim_end().strip_prefix("a=rtpmap:")?.split_once(' ')?;
            let name = encoding.split('/').next()?;
            name.eq_ignore_ascii_case("H264")
                .then(|| payload_type.parse().ok())?
        })
        .collect()
}

/// Splits `a=fmtp:PT PARAMETERS` into the payload type and the parameters.
fn fmtp_line(line: &str) -> Option<(u8, &str)> {
    let (payload_type, parameters) = line.trim_end().strip_prefix("a=fmtp:")?.split_once(' ')?;
    Some((payload_type.parse().ok()?, parameters))
}

fn line_ending(line: &str) -> &str {
    &line[line.trim_end_matches(['\r', '\n']).len()..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSTRAINED_BASELINE: &str =
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
    const BASELINE: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f";
    const OURS: [&str; 2] = [CONSTRAINED_BASELINE, BASELINE];

    #[test]
    fn fmtp_parameter_ignores_case_and_spaces() {
        let fmtp = "Profile-Level-Id=42e01f; packetization-mode=1";
        assert_eq!(fmtp_parameter(fmtp, "profile-level-id"), Some("42e01f"));
        assert_eq!(fmtp_parameter(fmtp, "packetization-mode"), Some("1"));
        assert_eq!(fmtp_parameter(fmtp, "apt"), None);
    }

    #[test]
    fn constrained_baseline_variants() {
        for id in ["42e01f", "42c01f", "42401f", "42f00b", "4d801f", "58c01e"] {
            let (idc, iop, _) = parse_profile_level_id(id).unwrap();
            assert_eq!(
                classify_h264_profile(idc, iop),
                H264Profile::ConstrainedBaseline,
                "{id}"
            );
        }
    }

    #[test]
    fn other_profile_classes() {
        let classify = |id: &str| {
            let (idc, iop, _) = parse_profile_level_id(id).unwrap();
            classify_h264_profile(idc, iop)
        };
        assert_eq!(classify("42001f"), H264Profile::Baseline);
        assert_eq!(classify("42801e"), H264Profile::Baseline);
        assert_eq!(classify("4d001f"), H264Profile::Main);
        assert_eq!(classify("640c1f"), H264Profile::ConstrainedHigh);
        assert_eq!(classify("64001f"), H264Profile::High);
        assert!(matches!(classify("420c1f"), H264Profile::Other { .. }));
        assert!(matches!(classify("f4001f"), H264Profile::Other { .. }));
    }

    #[test]
    fn invalid_profile_level_id() {
        assert_eq!(parse_profile_level_id("42e0"), None);
        assert_eq!(parse_profile_level_id("42e01g"), None);
        assert_eq!(parse_profile_level_id("42é01"), None);
        assert!(!h264_profile_matches(
            "profile-level-id=zz;packetization-mode=1",
            BASELINE
        ));
    }

    #[test]
    fn profile_match_ignores_level() {
        let offered = "profile-level-id=42e034;packetization-mode=1";
        assert!(h264_profile_matches(offered, CONSTRAINED_BASELINE));
        assert!(!h264_profile_matches(offered, BASELINE));
        assert!(h264_profile_matches(
            "profile-level-id=42001e;packetization-mode=1",
            BASELINE
        ));
    }

    #[test]
    fn profile_match_needs_same_packetization_mode() {
        assert!(!h264_profile_matches(
            "profile-level-id=42e01f;packetization-mode=0",
            CONSTRAINED_BASELINE
        ));
        assert!(!h264_profile_matches(
            "profile-level-id=42e01f",
            CONSTRAINED_BASELINE
        ));
    }

    #[test]
    fn profile_match_rejects_main_and_high() {
        assert!(!h264_profile_matches(
            "profile-level-id=4d001f;packetization-mode=1",
            BASELINE
        ));
        assert!(!h264_profile_matches(
            "profile-level-id=640c1f;packetization-mode=1",
            CONSTRAINED_BASELINE
        ));
    }

    #[test]
    fn missing_profile_level_id_is_baseline() {
        assert!(h264_profile_matches("packetization-mode=1", BASELINE));
    }

    #[test]
    fn rtx_apt_is_parsed() {
        assert_eq!(rtx_associated_payload_type("apt=102"), Some(102));
        assert_eq!(rtx_associated_payload_type("apt=300"), None);
        assert_eq!(rtx_associated_payload_type("max-fs=12288"), None);
    }

    #[test]
    fn aligned_fmtp_keeps_offered_level() {
        let aligned = aligned_h264_fmtp("packetization-mode=1;profile-level-id=42C034", &OURS);
        assert_eq!(
            aligned.as_deref(),
            Some("packetization-mode=1;profile-level-id=42e034")
        );
    }

    #[test]
    fn aligned_fmtp_leaves_exact_and_foreign_formats() {
        assert_eq!(
            aligned_h264_fmtp("packetization-mode=1;profile-level-id=42e034", &OURS),
            None
        );
        assert_eq!(
            aligned_h264_fmtp("packetization-mode=0;profile-level-id=42c01f", &OURS),
            None
        );
        assert_eq!(
            aligned_h264_fmtp("packetization-mode=1;profile-level-id=4d001f", &OURS),
            None
        );
    }

    #[test]
    fn aligned_fmtp_adds_default_profile() {
        let aligned = aligned_h264_fmtp("packetization-mode=1", &OURS);
        assert_eq!(
            aligned.as_deref(),
            Some("packetization-mode=1;profile-level-id=42000a")
        );
    }

    #[test]
    fn prepare_offer_rewrites_only_h264_lines() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=fmtp:96 packetization-mode=1;profile-level-id=42c01f\r\n\
                     a=rtpmap:96 H264/90000\r\na=rtpmap:97 VP9/90000\r\na=fmtp:97 profile-level-id=42c01f\r\n";
        let prepared = prepare_offer(offer, &OURS, &VideoCodec::ALL);
        assert!(prepared.contains("a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"));
        assert!(prepared.contains("a=fmtp:97 profile-level-id=42c01f\r\n"));
        assert_eq!(prepared.lines().count(), offer.lines().count());
    }

    #[test]
    fn prepare_offer_keeps_other_offers_unchanged() {
        let offer = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\n";
        assert_eq!(prepare_offer(offer, &OURS, &VideoCodec::ALL), offer);
    }

    #[test]
    fn video_formats_follow_our_order() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n\
                     a=rtpmap:45 AV1/90000\r\n";
        let h264_first = prepare_offer(offer, &OURS, &[VideoCodec::H264, VideoCodec::Vp8]);
        assert!(h264_first.contains("m=video 9 UDP/TLS/RTP/SAVPF 102 96 97 103 45\r\n"));
        assert_eq!(first_video_codec(&h264_first), Some(VideoCodec::H264));

        let vp8_first = prepare_offer(offer, &OURS, &[VideoCodec::Vp8, VideoCodec::H264]);
        assert!(vp8_first.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 102 97 103 45\r\n"));
        assert_eq!(first_video_codec(&vp8_first), Some(VideoCodec::Vp8));
    }

    #[test]
    fn first_video_codec_skips_other_formats() {
        let answer = "v=0\nm=audio 9 RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\n\
                      m=video 9 RTP/SAVPF 97 45 96\na=rtpmap:97 rtx/90000\na=rtpmap:45 AV1/90000\n\
                      a=rtpmap:96 VP8/90000\n";
        assert_eq!(first_video_codec(answer), Some(VideoCodec::Vp8));
        assert_eq!(first_video_codec("v=0\nm=audio 9 RTP/SAVPF 0\n"), None);
        assert_eq!(first_video_codec("m=video 0 RTP/SAVPF 0\n"), None);
    }

    #[test]
    fn offered_codecs_are_described() {
        let offer = "v=0\nm=audio 9 RTP/SAVPF 0\na=rtpmap:0 PCMU/8000\n\
                     m=video 9 RTP/SAVPF 96 97 98\na=rtpmap:96 VP8/90000\na=rtpmap:97 VP9/90000\na=rtpmap:98 VP8/90000\n";
        assert_eq!(describe_offered_codecs(offer), "audio PCMU; video VP8, VP9");
        assert_eq!(describe_offered_codecs("v=0\n"), "");
    }

    #[test]
    fn legacy_data_channel_is_upgraded() {
        let offer = "v=0\r\nm=application 45791 DTLS/SCTP 5000\r\nc=IN IP4 192.168.99.58\r\n\
                     a=sctpmap:5000 webrtc-datachannel 256\r\na=max-message-size:1073741823\r\n";
        let prepared = prepare_offer(offer, &OURS, &VideoCodec::ALL);
        assert_eq!(
            prepared,
            "v=0\r\nm=application 45791 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 192.168.99.58\r\n\
             a=sctp-port:5000\r\na=max-message-size:1073741823\r\n"
        );
    }

    #[test]
    fn legacy_data_channel_needs_numeric_port() {
        assert_eq!(
            legacy_data_channel_port("m=application 9 DTLS/SCTP 5000"),
            Some(5000)
        );
        assert_eq!(
            legacy_data_channel_port("m=application 9 DTLS/SCTP 99999"),
            None
        );
        assert_eq!(
            legacy_data_channel_port("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
            None
        );
    }

    #[test]
    fn video_payload_types_cover_every_video_section() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:97 rtx/90000\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 103\r\n\
                   a=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n";
        assert_eq!(
            video_payload_types(sdp),
            vec![(96, VideoCodec::Vp8), (102, VideoCodec::H264)]
        );
    }
}
