//! The answering side of the bot core, for servers that offer (a Janus subscriber handle).
//!
//! Toward confab the bot is always the offerer; nothing here runs then.

use super::ClientCore;
use crate::protocol::TrackId;
use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};
use str0m::RtcError;

impl ClientCore {
    /// Answers the server's offer and returns the answer's SDP. Every m-line the offer brings
    /// becomes a received track (numbered in offer order), so decrypted media is counted
    /// per track as it is toward confab.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, RtcError> {
        let offer = SdpOffer::from_sdp_string(sdp)?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        let mids = sdp
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .map(Mid::from);
        for mid in mids {
            if self.subs.contains_key(&mid) {
                continue;
            }
            let Some(video) = self.rtc.media(mid).map(|m| m.kind() == MediaKind::Video) else {
                continue;
            };
            let track = TrackId(self.subs.len() as u64 + 1);
            self.subs.insert(mid, (track, video));
        }
        self.drain()?;
        Ok(answer.to_sdp_string())
    }
}
