//! The bot asking for keyframes on its own, as a browser's decoder does after losing its
//! picture (tests: a subscriber's PLI must reach the publisher on either send path).

use super::ClientCore;
use str0m::media::{KeyframeRequestKind, Mid};

impl ClientCore {
    /// Sends a PLI for every video it receives (with its next RTCP); returns how many.
    pub fn request_keyframes(&mut self) -> usize {
        let mids: Vec<Mid> = self
            .subs
            .iter()
            .filter(|(_, (_, video))| *video)
            .map(|(mid, _)| *mid)
            .collect();
        let mut api = self.rtc.direct_api();
        let mut asked = 0;
        for mid in mids {
            if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                asked += 1;
            }
        }
        asked
    }
}
