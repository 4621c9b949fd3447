//! The pacer on a subscriber's send path: video held while over the budget, released from
//! the router's timeouts; audio and retransmissions charged to it but never held.

use super::{FastSender, Packet};
use crate::media::fast::clock::Now;
use crate::media::fast::gcc::Bitrate;
use crate::media::fast::pacer::{Class, Paced, Pacer, PacerConfig};
use crate::media::fast::pool;
use crate::media::fast::srtp::RTP_OVERHEAD;
use crate::media::forward_log::ForwardLog;
use std::time::{Duration, Instant};
use str0m::media::Mid;
use str0m::net::Transmit;
use str0m::Rtc;

/// Video the pacer holds: sealed only when it leaves, so its transport-wide number and send
/// time are those the wire sees.
pub(super) struct Held {
    mid: Mid,
    slot: u32,
    pkt: Packet,
    payload: Vec<u8>,
    /// When the packet arrived (the forward-delay histogram's start).
    arrival: Instant,
}

/// What became of a packet offered to [`FastSender::send_paced`].
pub enum Out {
    /// Sealed: send it.
    Now(Transmit),
    /// The pacer holds it; [`FastSender::release`] sends it.
    Held,
}

impl FastSender {
    /// The pacer follows the estimate; it starts with the first one.
    pub(super) fn follow_estimate(&mut self, now: Instant) {
        let Some(bps) = self.control.estimate() else {
            return;
        };
        match self.pacer.as_deref_mut() {
            Some(p) => p.set_rate(now, Bitrate(bps)),
            None => {
                let p = Pacer::new(PacerConfig::default(), Bitrate(bps), now);
                self.pacer = Some(Box::new(p));
            }
        }
    }

    /// [`Self::send`] through the pacer: audio goes at once (charged to the bucket); video
    /// goes at once while within the budget, else a copy of it waits for [`Self::release`].
    /// Without an estimate yet nothing is paced. Video is what has a source layer
    /// ([`Packet::source`]). `None` as [`Self::send`].
    pub fn send_paced(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        slot: &mut u32,
        pkt: Packet,
        payload: &[u8],
        now: Now,
    ) -> Option<Out> {
        if let Some(pacer) = self.pacer.as_deref_mut() {
            let class = match pkt.source {
                Some(_) => Class::Video,
                None => Class::Audio,
            };
            let bytes = 12 + 16 + payload.len() + RTP_OVERHEAD;
            if !pacer.try_send_at(now, class, bytes) {
                // A kept datagram buffer (`pool`), given back when the copy leaves: no
                // allocation per held copy.
                let mut copy = pool::take(payload.len());
                copy.extend_from_slice(payload);
                let held = Held {
                    mid,
                    slot: *slot,
                    pkt,
                    payload: copy,
                    arrival: now.at,
                };
                match pacer.enqueue(now.at, bytes, held) {
                    Ok(()) => self.paced += 1,
                    Err(h) => {
                        pool::give(h.payload);
                        self.pace_dropped += 1;
                    }
                }
                return Some(Out::Held);
            }
        }
        self.send(rtc, mid, slot, pkt, payload, now).map(Out::Now)
    }

    /// Sends the held video the budget allows now (and drops what waited too long), logging
    /// when each copy sent had arrived.
    pub fn release(
        &mut self,
        rtc: &mut Rtc,
        now: Instant,
        out: &mut Vec<Transmit>,
        log: &mut ForwardLog,
    ) {
        // Nothing held (nearly every visit): the bucket's refill waits for its next use, which
        // accrues the same time.
        let Some(mut pacer) = self.pacer.take_if(|p| !p.is_idle()) else {
            return;
        };
        let at = Now::of(now);
        while let Some(r) = pacer.poll(now) {
            match r {
                Paced::Send(mut h) => {
                    if let Some(t) = self.send(rtc, h.mid, &mut h.slot, h.pkt, &h.payload, at) {
                        out.push(t);
                        log.released(h.arrival);
                    }
                    pool::give(h.payload);
                }
                Paced::Dropped(h, _) => {
                    pool::give(h.payload);
                    self.pace_dropped += 1;
                }
                Paced::Queued => {}
            }
        }
        self.pacer = Some(pacer);
    }

    /// How long the oldest held video has waited (the congestion gate's measure).
    pub fn queue_age(&self, now: Instant) -> Option<Duration> {
        self.pacer.as_deref()?.queue_age(now)
    }
}
