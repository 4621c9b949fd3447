//! The lean sender's part of the fan-out's prefetch (see `media::peer_table::prefetch`): the
//! fields one copy reads, then what they point to.

use super::{FastSender, Keys};
use crate::media::fast::ice::Pair;
use crate::media::peer_table::prefetch;

impl FastSender {
    /// The fields a copy reads: keys and pair, the stream list, pacer, send register, clock
    /// epoch, counters.
    #[inline]
    pub fn prefetch_fields(&self) {
        prefetch(&self.keys, std::mem::size_of::<Keys>());
        // All of it: a copy reads the whole pair, which straddles two lines (perf found the
        // second one missing).
        prefetch(&self.pair, std::mem::size_of::<Option<Pair>>());
        prefetch(&self.epoch_ns, 8);
        prefetch(&self.streams, 24);
        prefetch(&self.pacer, 8);
        prefetch(&self.control, 64);
        prefetch(&self.rtp_sent, 8);
        prefetch(&self.sent_since_pad, 8);
    }

    /// What those fields point to: the stream at `slot` (the down-track's memory of it), the
    /// pacer's state, the send register's next record and the AES-GCM context.
    #[inline]
    pub fn prefetch_state(&self, slot: u32) {
        self.control.prefetch_next_record();
        if let Some(s) = self.streams.get(slot as usize) {
            prefetch(s, std::mem::size_of_val(s));
        }
        if let Some(p) = self.pacer.as_deref() {
            prefetch(p, 128);
        }
        if let Keys::Ready(sealer) = &self.keys {
            sealer.prefetch();
        }
    }
}
