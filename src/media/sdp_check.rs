//! What an offer says about sending, read before str0m accepts it (role enforcement).

/// The mids of the m-lines on which the offerer would send media.
///
/// An m-line sends unless it is rejected (port 0) or says `recvonly` / `inactive`; with no
/// direction attribute at all SDP means `sendrecv`. Data channels never count.
pub fn sending_mids(sdp: &str) -> Vec<String> {
    let mut out = vec![];
    let mut section: Option<(bool, Option<String>, bool)> = None; // (sends, mid, is_media)
    let flush = |s: Option<(bool, Option<String>, bool)>, out: &mut Vec<String>| {
        if let Some((true, mid, true)) = s {
            out.push(mid.unwrap_or_default());
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            flush(section.take(), &mut out);
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            let is_media = kind == "audio" || kind == "video";
            section = Some((port != "0", None, is_media));
        } else if let Some((sends, mid, _)) = section.as_mut() {
            match line {
                "a=recvonly" | "a=inactive" => *sends = false,
                _ => {
                    if let Some(v) = line.strip_prefix("a=mid:") {
                        *mid = Some(v.to_string());
                    }
                }
            }
        }
    }
    flush(section.take(), &mut out);
    out
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
        } else if let Some(v) = line.strip_prefix("a=simulcast:send ") {
            // "q;h;f", alternatives with ',' and paused layers with '~'.
            let list = v.split_whitespace().next().unwrap_or("");
            rids = list
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
