//! Which codec a packet leaves in: the room's video codec policy and the per-m-line payload map.
//!
//! An SFU cannot transcode, so what a subscriber can decode is what its m-line negotiated.
//! Policy: every answer lists VP8 first on video m-lines, so each publisher that offers VP8
//! sends VP8. VP8 is the one video codec every browser decodes (RFC 7742 makes VP8 and H.264
//! mandatory, but Firefox without the OpenH264 plugin — Debian's firefox-esr — has no H.264,
//! while Safari and Chromium decode VP8); H.264 stays negotiated for a publisher that offers
//! nothing else (Chromium with `setCodecPreferences`), and its packets reach exactly the
//! subscribers whose m-line took H.264. A packet with no payload type on the target m-line is
//! dropped with [`DropReason::NoMatchingCodec`](super::DropReason::NoMatchingCodec).

use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::Pt;

/// The codec every answer puts first on video m-lines (`rtpmap` encoding name).
pub const PREFERRED_VIDEO: &str = "VP8";

/// The payload type to send a packet of `incoming` with on an m-line that negotiated `line_pts`,
/// picked from the subscriber's session-wide `session` config; `None` when that m-line has no
/// matching codec. The session config alone is not enough: it holds every codec of every
/// m-line, so a match there can name a payload type this m-line's decoder never agreed to.
pub fn out_pt(session: &CodecConfig, line_pts: &[Pt], incoming: PayloadParams) -> Option<Pt> {
    let on_line: Vec<PayloadParams> = session
        .params()
        .iter()
        .filter(|p| line_pts.contains(&p.pt()))
        .copied()
        .collect();
    CodecConfig::new_from_payload_params(on_line)
        .match_params(incoming)
        .map(|p| p.pt())
}

/// `answer` with [`PREFERRED_VIDEO`] moved to the front of every video m-line's format list
/// (the answerer's preference order: a browser sends with the first codec of the answer).
/// Lines are otherwise untouched; an m-line without VP8 keeps its order.
pub fn prefer_video_codec(answer: &str) -> String {
    let lines: Vec<&str> = answer.split("\r\n").collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        let section_end = lines[i + 1..]
            .iter()
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |n| i + 1 + n);
        if line.starts_with("m=video ") {
            let section = &lines[i + 1..section_end];
            let preferred = section.iter().find_map(|l| {
                let (pt, codec) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
                let name = codec.split('/').next()?;
                name.eq_ignore_ascii_case(PREFERRED_VIDEO).then_some(pt)
            });
            out.push(match preferred {
                Some(pt) => move_format_first(line, pt),
                None => line.to_string(),
            });
            out.extend(section.iter().map(|l| l.to_string()));
            i = section_end;
        } else {
            out.push(line.to_string());
            i += 1;
        }
    }
    out.join("\r\n")
}

/// `m=video 9 PROTO a b c` with format `pt` moved first.
fn move_format_first(mline: &str, pt: &str) -> String {
    let words: Vec<&str> = mline.split(' ').collect();
    if words.len() < 4 || !words[3..].contains(&pt) {
        return mline.to_string();
    }
    let mut formats = vec![pt];
    formats.extend(words[3..].iter().filter(|f| **f != pt));
    format!("{} {}", words[..3].join(" "), formats.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::format::{Codec, CodecSpec, FormatParams};
    use str0m::media::Frequency;

    fn video(pt: u8, codec: Codec, fmtp: FormatParams) -> PayloadParams {
        let spec = CodecSpec {
            codec,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: fmtp,
        };
        PayloadParams::new(Pt::from(pt), None, spec)
    }

    fn h264() -> FormatParams {
        FormatParams {
            level_asymmetry_allowed: Some(true),
            packetization_mode: Some(1),
            profile_level_id: Some(0x42e01f),
            ..Default::default()
        }
    }

    #[test]
    fn payload_type_comes_from_the_target_line() {
        // The subscriber's session knows VP8 (120, from its Firefox line) and H.264 (102, from
        // another line); the target line negotiated VP8 only.
        let session = CodecConfig::new_from_payload_params(vec![
            video(120, Codec::Vp8, FormatParams::default()),
            video(102, Codec::H264, h264()),
        ]);
        let h264_in = video(96, Codec::H264, h264());
        let vp8_in = video(97, Codec::Vp8, FormatParams::default());
        assert_eq!(
            session.match_params(h264_in).map(|p| p.pt()),
            Some(102.into())
        );
        assert_eq!(out_pt(&session, &[120.into()], h264_in), None);
        assert_eq!(out_pt(&session, &[120.into()], vp8_in), Some(120.into()));
        assert_eq!(
            out_pt(&session, &[120.into(), 102.into()], h264_in),
            Some(102.into())
        );
        assert_eq!(out_pt(&session, &[], vp8_in), None);
    }

    // A str0m answer to Safari's camera offer (H.264 first) and to an audio line.
    const ANSWER: &str = "v=0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 98 99 96 97\r\na=mid:1\r\n\
        a=rtpmap:98 H264/90000\r\na=rtpmap:99 rtx/90000\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:2\r\na=rtpmap:102 H264/90000\r\n";

    #[test]
    fn answers_put_vp8_first() {
        let out = prefer_video_codec(ANSWER);
        assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 98 99 97\r\na=mid:1"));
        // No VP8 on the line: unchanged. Audio: unchanged. Nothing else moves.
        assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:2"));
        assert_eq!(out.len(), ANSWER.len());
        assert_eq!(prefer_video_codec(&out), out);
        assert_eq!(prefer_video_codec(""), "");
        assert_eq!(
            prefer_video_codec("m=video\r\nm=video 9"),
            "m=video\r\nm=video 9"
        );
    }

    // The shape of Safari 17's camera offer: H.264 profiles first, then VP8, each with rtx.
    const SAFARI_OFFER: &str = "v=0\r\n\
        o=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\na=msid-semantic: WMS s\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101\r\n\
        c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sendonly\r\na=msid:s t\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
        a=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
        a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n\
        a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:98 H264/90000\r\na=rtcp-fb:98 nack\r\na=rtcp-fb:98 nack pli\r\n\
        a=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
        a=rtpmap:100 VP8/90000\r\na=rtcp-fb:100 nack\r\na=rtcp-fb:100 nack pli\r\n\
        a=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n\
        a=ssrc-group:FID 1 2\r\na=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\n";

    #[test]
    fn safari_is_answered_vp8_first() {
        use std::time::Instant;
        use str0m::change::SdpOffer;
        use str0m::Rtc;
        // The codecs a participant's Rtc enables (participant.rs).
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            .build(Instant::now());
        let offer = SdpOffer::from_sdp_string(SAFARI_OFFER).expect("valid offer");
        let answer = rtc.sdp_api().accept_offer(offer).expect("accepted");
        let answer = prefer_video_codec(&answer.to_sdp_string());
        let mline = answer
            .split("\r\n")
            .find(|l| l.starts_with("m=video"))
            .expect("a video line");
        let first = mline.split(' ').nth(3).expect("a format");
        let rtpmap = format!("a=rtpmap:{first} VP8/90000");
        assert!(
            answer.contains(&rtpmap),
            "{mline} leads with VP8:\n{answer}"
        );
        // H.264 stays negotiated behind it.
        assert!(answer.contains("H264/90000"));
    }
}
