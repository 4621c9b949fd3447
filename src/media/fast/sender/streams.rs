//! Where a subscriber's per-m-line stream state is found: by the slot index its down-track
//! remembers, checked against the mid, so a copy costs no hash lookup; and its prefetch.

use super::{FastSender, Held, Keys, StreamOut};
use crate::media::fast::control::Control;
use crate::media::fast::gcm::prefetch_range;
use crate::media::fast::ice::Pair;
use crate::media::fast::pacer::Pacer;
use crate::media::fast::rtp_out::ExtIds;
use std::time::Instant;
use str0m::media::Mid;
use str0m::Rtc;

impl FastSender {
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
            last: None,
            packets: 0,
            octets: 0,
            seqs: None,
        });
        Some(self.streams.len() - 1)
    }
}

impl FastSender {
    /// Prefetches the sender's own lines a copy reads (see `media::prefetch`): keys, pair,
    /// epoch, register, stream list, pacer and counters; field order is the compiler's, so
    /// each is asked for by address.
    pub fn prefetch_state(&self) {
        let line = |p: *const u8| prefetch_range(p, 1);
        line((&self.keys as *const Keys).cast());
        line((&self.pair as *const Option<Pair>).cast());
        line((&self.epoch as *const Instant).cast());
        line((&self.control as *const Control).cast());
        line((&self.streams as *const Vec<StreamOut>).cast());
        line((&self.pacer as *const Option<Box<Pacer<Held>>>).cast());
        line((&self.rtp_sent as *const u64).cast());
        line((&self.sent_since_pad as *const usize).cast());
    }

    /// Prefetches the stream at `slot` and the sealing key's state (its pointers are read
    /// from this sender, which [`Self::prefetch_state`] brought in a copy earlier).
    pub fn prefetch_stream(&self, slot: u32) {
        if let Keys::Ready(sealer) = &self.keys {
            sealer.prefetch();
        }
        if let Some(s) = self.streams.get(slot as usize) {
            prefetch_range(
                (s as *const StreamOut).cast(),
                std::mem::size_of::<StreamOut>(),
            );
        }
    }
}
