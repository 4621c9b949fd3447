//! Retransmissions on a subscriber's send path: its NACKs answered as RTX (RFC 4588).

use super::{transmit, FastSender, Keys};
use crate::media::command::NacksUnanswered;
use crate::media::fast::history::{rtx_payload, SourceRef};
use crate::media::fast::rtp_out::{self, Header};
use crate::media::fast::srtp::RTP_OVERHEAD;
use std::time::Instant;
use str0m::media::Mid;
use str0m::net::Transmit;
use str0m::Rtc;

impl FastSender {
    /// Whether NACKs wait for [`Self::answer_nacks`].
    pub fn has_nacks(&self) -> bool {
        self.control.has_nacks()
    }

    /// Answers the waiting NACKs: each lost video packet still in its source's history
    /// (`payload_of` finds it: marker bit and payload) goes again as RTX on the m-line's RTX
    /// stream (RFC 4588: the original sequence number, then the payload), at most once per
    /// round trip, numbered and counted in the send register like any packet. Returns how many
    /// went; the packets named and not sent are counted in `unanswered`.
    ///
    /// A subscriber without RTX is not repaired: a plain retransmission would seal the same
    /// SRTP index again under a different header (a new transport-wide number), and AES-GCM
    /// must never see a (key, nonce) pair twice.
    pub fn answer_nacks<'h>(
        &mut self,
        rtc: &mut Rtc,
        now: Instant,
        mut payload_of: impl FnMut(Mid, SourceRef) -> Option<(bool, &'h [u8])>,
        unanswered: &mut NacksUnanswered,
        out: &mut Vec<Transmit>,
    ) -> usize {
        let mut nacks = Vec::new();
        self.control.take_nacks(&mut nacks);
        let (Some(pair), Keys::Ready(sealer)) = (self.pair, &mut self.keys) else {
            unanswered.gone += nacks.len() as u64;
            return 0;
        };
        let window = self.control.rtt();
        let mut body = Vec::new();
        let before = out.len();
        for (ssrc, wire) in nacks {
            let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) else {
                unanswered.gone += 1;
                continue;
            };
            let Some(map) = s.seqs.as_mut() else {
                unanswered.gone += 1;
                continue;
            };
            let Some((out_seq, r)) = map
                .unwrap_wire(wire)
                .and_then(|q| Some((q, map.lookup(q)?)))
            else {
                unanswered.gone += 1;
                continue;
            };
            let Some(rtx_pt) = rtc
                .codec_config()
                .find(|p| *p.pt() == s.pt)
                .and_then(|p| p.resend())
            else {
                unanswered.no_rtx += 1;
                continue;
            };
            let Some(rtx) = rtc
                .direct_api()
                .stream_tx_by_mid(s.mid, None)
                .and_then(|t| t.rtx())
            else {
                unanswered.no_rtx += 1;
                continue;
            };
            let Some((marker, payload)) = payload_of(s.mid, r) else {
                unanswered.gone += 1;
                continue;
            };
            if !map.first_resend(out_seq, now, window) {
                unanswered.repeated += 1;
                continue;
            }
            let seq = self.rtx_seq.next_seq();
            let header = Header {
                pt: *rtx_pt,
                marker,
                seq: seq as u16,
                timestamp: r.time,
                ssrc: *rtx,
                mid: &s.mid_text[..usize::from(s.mid_len)],
                twcc_seq: self.control.next_seq() as u16,
                since_epoch: now.saturating_duration_since(self.epoch),
            };
            rtx_payload(out_seq as u16, payload, &mut body);
            let mut buf = Vec::with_capacity(12 + 16 + body.len() + RTP_OVERHEAD);
            rtp_out::write(&mut buf, &header, &s.ids);
            sealer.seal_rtp(&mut buf, &body, *rtx, seq);
            if s.ids.twcc.is_some() {
                self.control.on_send(now, buf.len());
            }
            self.sent_since_pad = self.sent_since_pad.saturating_add(buf.len());
            if let Some(p) = self.pacer.as_deref_mut() {
                p.charge(buf.len());
            }
            self.rtp_sent += 1;
            self.rtx_sent += 1;
            out.push(transmit(pair, buf));
        }
        out.len() - before
    }
}
