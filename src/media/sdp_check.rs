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
}
