//! What an offer says about sending, read before str0m accepts it (role enforcement).

/// The mids of the m-lines on which the offerer would send media.
///
/// An m-line sends unless it is rejected or says `recvonly` / `inactive`; with no direction
/// attribute at all SDP means `sendrecv`. Port 0 rejects an m-line, except one marked
/// `a=bundle-only` inside a BUNDLE group (RFC 8843 §6): Firefox writes every m-line after the
/// first as bundle-only, in the offer that adds it and in every later one, and str0m receives
/// on it. Data channels never count.
pub fn sending_mids(sdp: &str) -> Vec<String> {
    let bundled: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=group:BUNDLE"))
        .flat_map(str::split_whitespace)
        .collect();
    let mut out = vec![];
    let mut section: Option<Section> = None;
    let flush = |s: Option<Section>, out: &mut Vec<String>| {
        let Some(s) = s else {
            return;
        };
        let mid = s.mid.unwrap_or_default();
        let live = s.port_open || (s.bundle_only && bundled.contains(&mid.as_str()));
        if s.is_media && s.sends && live {
            out.push(mid);
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            flush(section.take(), &mut out);
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            section = Some(Section {
                is_media: kind == "audio" || kind == "video",
                port_open: port != "0",
                bundle_only: false,
                sends: true,
                mid: None,
            });
        } else if let Some(s) = section.as_mut() {
            match line {
                "a=recvonly" | "a=inactive" => s.sends = false,
                "a=bundle-only" => s.bundle_only = true,
                _ => {
                    if let Some(v) = line.strip_prefix("a=mid:") {
                        s.mid = Some(v.to_string());
                    }
                }
            }
        }
    }
    flush(section.take(), &mut out);
    out
}

/// What one m-line section says, as far as sending goes.
struct Section {
    is_media: bool,
    port_open: bool,
    bundle_only: bool,
    sends: bool,
    mid: Option<String>,
}

/// For each m-line offering simulcast (`a=simulcast:send …`), its mid and send rids.
pub fn simulcast_rids(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![];
    let mut mid: Option<String> = None;
    let mut rids: Vec<String> = vec![];
    let mut flush = |mid: &mut Option<String>, rids: &mut Vec<String>| {
        if let Some(m) = mid.take() {
            if !rids.is_empty() {
                out.push((m, std::mem::take(rids)));
            }
        }
        rids.clear();
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            flush(&mut mid, &mut rids);
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("a=simulcast:") {
            // RFC 8853: "send q;h;f", alternatives with ',' and paused layers with '~'; the send
            // and recv parts in either order; drafts (older Firefox) wrote "send rid=q;h".
            let mut words = v.split_whitespace();
            let Some(list) = words.by_ref().skip_while(|w| *w != "send").nth(1) else {
                continue;
            };
            rids = list
                .trim_start_matches("rid=")
                .split([';', ','])
                .map(|r| r.trim_start_matches('~').to_string())
                .filter(|r| !r.is_empty() && r.len() <= 16)
                .take(4)
                .collect();
        }
    }
    flush(&mut mid, &mut rids);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sending_lines() {
        let sdp = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendrecv\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:4\r\na=inactive\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:5\r\n";
        assert_eq!(sending_mids(sdp), vec!["0".to_string(), "2".to_string()]);
        assert!(sending_mids("garbage\nm=\nm=video").is_empty());
        assert_eq!(sending_mids(""), Vec::<String>::new());
    }

    // Offers captured from Debian's firefox-esr 153 in the browser harness: a camera publisher's
    // first offer; its fourth, receiving two people's tracks and adding its screen; a second
    // person's offer that publishes and receives.
    const FIREFOX_PUBLISH: &str = include_str!("testdata/firefox153_publish.sdp");
    const FIREFOX_SCREEN: &str = include_str!("testdata/firefox153_screen_share.sdp");
    const FIREFOX_SUBSCRIBE: &str = include_str!("testdata/firefox153_subscribe.sdp");

    #[test]
    fn firefox_bundle_only_lines_are_live() {
        assert_eq!(sending_mids(FIREFOX_PUBLISH), vec!["0", "1"]);
        // The screen's m-line is `m=video 0` with `a=bundle-only`: it sends.
        assert!(FIREFOX_SCREEN.contains("m=video 0 ") && FIREFOX_SCREEN.contains("a=bundle-only"));
        assert_eq!(sending_mids(FIREFOX_SCREEN), vec!["0", "1", "4"]);
        // Bundle-only receive lines stay receive-only.
        assert!(FIREFOX_SUBSCRIBE.contains("a=bundle-only\r\na=recvonly"));
        assert_eq!(sending_mids(FIREFOX_SUBSCRIBE), vec!["0", "1"]);
    }

    #[test]
    fn audience_check_sees_bundle_only_senders() {
        // An audience member whose camera and microphone lines receive, but who slips a
        // bundle-only send line in (what a promoted Firefox offers if demoted before answering).
        let audience = FIREFOX_SCREEN.replacen("a=sendonly", "a=recvonly", 2);
        assert_eq!(sending_mids(&audience), vec!["4"]);
        let all_receiving = audience.replace("a=sendonly", "a=recvonly");
        assert!(sending_mids(&all_receiving).is_empty());
    }

    #[test]
    fn port_zero_outside_bundle_is_rejected() {
        let sdp = "v=0\r\na=group:BUNDLE 0\r\n\
            m=audio 9 X 111\r\na=mid:0\r\n\
            m=video 0 X 96\r\na=bundle-only\r\na=mid:1\r\n\
            m=video 0 X 96\r\na=mid:2\r\n";
        assert_eq!(sending_mids(sdp), vec!["0"]);
    }

    #[test]
    fn firefox_simulcast_rids() {
        // Firefox: `a=rid:q send` … and `a=simulcast:send q;h;f` on the camera line only.
        assert_eq!(
            simulcast_rids(FIREFOX_SCREEN),
            vec![("1".to_string(), vec!["q".into(), "h".into(), "f".into()])]
        );
        // Chromium's older form `a=simulcast:send rid=q;h` and alternatives `q,h`.
        let sdp = "m=video 9 X 96\r\na=mid:v\r\na=simulcast: send rid=q;h,~f\r\n";
        assert_eq!(
            simulcast_rids(sdp),
            vec![("v".to_string(), vec!["q".into(), "h".into(), "f".into()])]
        );
        let sdp = "m=video 9 X 96\r\na=mid:v\r\na=simulcast:recv r send a;b\r\n";
        assert_eq!(
            simulcast_rids(sdp),
            vec![("v".to_string(), vec!["a".into(), "b".into()])]
        );
    }

    #[test]
    fn finds_simulcast_rids() {
        let sdp = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\n\
            m=video 9 X 96\r\na=mid:1\r\na=rid:q send\r\na=simulcast:send q;h;~f\r\n\
            m=video 9 X 96\r\na=mid:2\r\n";
        assert_eq!(
            simulcast_rids(sdp),
            vec![("1".to_string(), vec!["q".into(), "h".into(), "f".into()])]
        );
        assert!(simulcast_rids("a=simulcast:send ;;;").is_empty());
    }
}
