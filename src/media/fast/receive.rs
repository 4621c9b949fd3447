//! A datagram from a lean peer, before str0m: its SRTCP opened once by the lean path (and then
//! not given to str0m), the nomination watched; then what follows for the room: the estimate
//! moved, NACKs answered, keyframe requests routed to the publishers.

use crate::media::peer::Peer;
use crate::media::router::Router;
use crate::model::ParticipantId;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::media::Mid;
use str0m::net::Protocol;

impl Router {
    /// SRTCP compounds from `id` the lean path opened, and those it refused, if it is on it.
    pub fn fast_rtcp_in(&self, id: ParticipantId) -> Option<(u64, u64)> {
        let f = self.peers.get(&id)?.webrtc()?.fast.as_deref()?;
        Some((f.rtcp_in.opened, f.rtcp_in.refused))
    }

    /// Notes that `id` was heard and lets its lean sender, if it has one, take the datagram.
    /// `None` for a peer that is not here; `Some(true)` when the lean path took the datagram
    /// whole (str0m must not see it).
    pub(in crate::media) fn heard(
        &mut self,
        id: ParticipantId,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) -> Option<bool> {
        let p = self.peers.get_mut(&id).and_then(Peer::webrtc_mut)?;
        p.last_heard = now;
        self.timers.touch(id);
        let Some(fast) = p.fast.as_deref_mut() else {
            return Some(false);
        };
        let got = fast.on_receive(proto, source, destination, contents, now);
        if !got.taken {
            return Some(false);
        }
        match got.refused {
            true => {
                self.counters.srtcp_refused += 1;
                let replayed = fast.rtcp_in.last_refused_was_replay();
                self.counters.srtcp_replayed += u64::from(replayed);
            }
            false => self.counters.srtcp_opened += 1,
        }
        if got.moved {
            let (estimate, delivered, back) =
                (fast.estimate(), fast.delivered(), fast.recovering());
            if estimate.is_some_and(|e| p.note_lean_estimate(e, delivered, back, now)) {
                self.alloc_dirty = true;
            }
        }
        if p.fast.as_deref().is_some_and(|f| f.has_nacks()) {
            super::rtx::answer_nacks(p, &self.tracks, now, &mut self.out);
        }
        let Some(fast) = p.fast.as_deref_mut().filter(|f| f.has_keyframe_requests()) else {
            return Some(true);
        };
        // Rare (a decoder lost its picture): the lists are made only then.
        let mut wanted = Vec::new();
        fast.take_keyframe_requests(&mut wanted);
        let mut api = p.rtc.direct_api();
        let mids: Vec<(Mid, _)> = wanted
            .into_iter()
            .filter_map(|(ssrc, kind)| Some((api.stream_tx(&ssrc.into())?.mid(), kind)))
            .collect();
        for (mid, kind) in mids {
            self.keyframe_wanted(id, mid, kind, now);
        }
        Some(true)
    }
}
