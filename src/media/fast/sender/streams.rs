//! Where a subscriber's per-m-line stream state is found: by the slot index its down-track
//! remembers, checked against the mid, so a copy costs no hash lookup.

use super::{FastSender, StreamOut};
use crate::media::fast::rtp_out::{ExtIds, Template};
use str0m::media::Mid;
use str0m::Rtc;

impl FastSender {
    /// An SSRC none of this peer's streams uses: the head of every compound sealed here.
    pub(super) fn reporter_ssrc(&self) -> u32 {
        let mut ssrc = rand::random::<u32>() | 1;
        while self.streams.iter().any(|s| s.ssrc == ssrc) {
            ssrc = ssrc.wrapping_add(2);
        }
        ssrc
    }

    /// Forgets cached stream parameters (a renegotiation may have changed extension ids).
    pub fn forget_streams(&mut self) {
        self.streams.clear();
    }

    /// The index of `mid`'s stream: `hint` when it still holds it, else found or made (the
    /// m-line's send stream must exist); `pt` is the payload type it starts with.
    pub(super) fn stream_slot(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        hint: u32,
        pt: u8,
    ) -> Option<usize> {
        let hint = hint as usize;
        if self.streams.get(hint).is_some_and(|s| s.mid == mid) {
            return Some(hint);
        }
        if let Some(i) = self.streams.iter().position(|s| s.mid == mid) {
            return Some(i);
        }
        let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        let ids = rtc
            .media(mid)
            .map(|m| ExtIds::from_map(m.remote_extmap()))
            .unwrap_or_default();
        let text = mid.as_bytes();
        let mut mid_text = [0u8; 16];
        let mid_len = text.len().min(16);
        mid_text[..mid_len].copy_from_slice(&text[..mid_len]);
        self.streams.push(StreamOut {
            mid,
            mid_text,
            mid_len: mid_len as u8,
            ssrc,
            pt,
            ids,
            template: Template::new(ssrc, &mid_text[..mid_len], &ids),
            last: None,
            packets: 0,
            octets: 0,
            seqs: None,
        });
        Some(self.streams.len() - 1)
    }
}
