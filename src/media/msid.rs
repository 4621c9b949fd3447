//! Lip-sync groups: an answer names one media stream per person's microphone and camera.
//!
//! Browsers lip-sync only an audio and a video track of the same MediaStream, which the SDP
//! names with `a=msid:<stream> <track>`. str0m gives every m-line the client offers a random
//! stream of its own, so nothing would ever be synced. The answer is rewritten instead: an
//! m-line that carries a microphone or a camera names its owner's stream, one carrying a
//! screen share (or its audio) the owner's share stream, so a share plays on its own clock.
//!
//! The groups are those at the moment of the answer. An audio slot that passes to another
//! voice between renegotiations keeps its old group until the next offer; both paths time
//! their sender reports on the server's clock, so such a stale pairing aligns two people by
//! their arrival at the server, costing at most the difference of their delays.

use super::peer::Peer;
use super::router::Router;
use crate::model::{ParticipantId, Source};
use std::collections::BTreeMap;

/// The stream id (`msid-id`, at most 64 token characters) of a participant's `source`.
fn stream_of(participant: ParticipantId, source: Source) -> String {
    match source {
        Source::Camera | Source::Microphone => format!("confab-{}", participant.0),
        Source::Screen | Source::ScreenAudio => format!("confab-{}-share", participant.0),
    }
}

impl Router {
    /// mid → stream id for every m-line that carries a track to `id` now.
    pub(super) fn sync_groups(&self, id: ParticipantId) -> BTreeMap<String, String> {
        let Some(p) = self.peers.get(&id).and_then(Peer::webrtc) else {
            return BTreeMap::new();
        };
        p.down_tracks
            .iter()
            .filter_map(|(mid, sub)| {
                let info = &self.tracks.get(&sub.track)?.info;
                Some((mid.to_string(), stream_of(info.participant, info.source)))
            })
            .collect()
    }
}

/// `sdp` with each listed m-line's stream renamed (its `a=msid` and `a=ssrc … msid` lines)
/// and the session's `a=msid-semantic` listing the streams that remain. Lines end in CRLF.
pub fn regroup(sdp: &str, streams: &BTreeMap<String, String>) -> String {
    let mut sections: Vec<Vec<String>> = vec![vec![]];
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(vec![]);
        }
        if let Some(section) = sections.last_mut() {
            section.push(line.to_string());
        }
    }
    let mut used: Vec<String> = vec![];
    for section in sections.iter_mut().skip(1) {
        let mid = section.iter().find_map(|l| l.strip_prefix("a=mid:"));
        let stream = mid.and_then(|m| streams.get(m)).cloned();
        for line in section.iter_mut() {
            if let Some(stream) = &stream {
                *line = renamed(line, stream);
            }
            if let Some((s, _)) = line.strip_prefix("a=msid:").and_then(|r| r.split_once(' ')) {
                if !used.iter().any(|u| u == s) {
                    used.push(s.to_string());
                }
            }
        }
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    for (i, section) in sections.iter().enumerate() {
        for line in section {
            if i == 0 && line.starts_with("a=msid-semantic:") {
                out.push_str(&format!("a=msid-semantic: WMS {}", used.join(" ")));
            } else {
                out.push_str(line);
            }
            out.push_str("\r\n");
        }
    }
    out
}

/// `line` naming `stream` if it is one of an m-line's msid lines.
fn renamed(line: &str, stream: &str) -> String {
    if let Some((_, track)) = line.strip_prefix("a=msid:").and_then(|r| r.split_once(' ')) {
        return format!("a=msid:{stream} {track}");
    }
    if let Some((ssrc, rest)) = line.strip_prefix("a=ssrc:").and_then(|r| r.split_once(' ')) {
        if let Some((_, track)) = rest.strip_prefix("msid:").and_then(|r| r.split_once(' ')) {
            return format!("a=ssrc:{ssrc} msid:{stream} {track}");
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1 2\r\na=msid-semantic: WMS r0 r1 r2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:r0 t0\r\n\
        a=ssrc:11 cname:c\r\na=ssrc:11 msid:r0 t0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:r1 t1\r\n\
        a=ssrc:22 cname:c\r\na=ssrc:22 msid:r1 t1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\na=msid:r2 t2\r\n";

    #[test]
    fn a_persons_audio_and_camera_share_one_stream_and_the_rest_keep_theirs() {
        let streams = BTreeMap::from([
            (
                "0".to_string(),
                stream_of(ParticipantId(7), Source::Microphone),
            ),
            ("1".to_string(), stream_of(ParticipantId(7), Source::Camera)),
        ]);
        let out = regroup(ANSWER, &streams);
        for line in [
            "a=msid:confab-7 t0",
            "a=ssrc:11 msid:confab-7 t0",
            "a=msid:confab-7 t1",
            "a=ssrc:22 msid:confab-7 t1",
            "a=msid:r2 t2",
            "a=ssrc:22 cname:c",
            "a=msid-semantic: WMS confab-7 r2",
        ] {
            assert!(
                out.contains(&format!("{line}\r\n")),
                "{line} missing from\n{out}"
            );
        }
        assert!(!out.contains("r0") && !out.contains("r1"), "{out}");
        // Everything else is left as it was, line for line.
        assert_eq!(out.lines().count(), ANSWER.lines().count());
        assert!(out.ends_with("a=msid:r2 t2\r\n"));
    }

    #[test]
    fn a_share_is_a_stream_of_its_own() {
        let camera = stream_of(ParticipantId(3), Source::Camera);
        assert_eq!(camera, stream_of(ParticipantId(3), Source::Microphone));
        let share = stream_of(ParticipantId(3), Source::Screen);
        assert_ne!(camera, share);
        assert_eq!(share, stream_of(ParticipantId(3), Source::ScreenAudio));
        assert!(share.len() <= 64 && share.chars().all(|c| c.is_ascii_graphic()));
        // An answer naming no stream comes back unchanged.
        assert_eq!(regroup(ANSWER, &BTreeMap::new()), ANSWER);
    }
}
