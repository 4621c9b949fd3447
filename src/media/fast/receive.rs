//! A datagram from a browser peer, before str0m. From a lean peer: its SRTCP opened once by the
//! lean path (and then not given to str0m), the nomination watched; then what follows for the
//! room: the estimate moved, NACKs answered, keyframe requests routed to the publishers. SRTCP
//! str0m is to open (any peer without a keyed lean opener) passes the replay guard first
//! ([`super::srtcp_guard`]).

use super::rtcp_in::is_rtcp;
use super::srtcp_guard::{SrtcpGuard, Verdict};
use crate::media::command::RoomCounters;
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

    /// SRTCP compounds from `id` its replay guard let through to str0m, refused, and of
    /// those refused the replays.
    pub fn srtcp_guarded(&self, id: ParticipantId) -> Option<(u64, u64, u64)> {
        let g = &self.peers.get(&id)?.webrtc()?.srtcp_guard;
        Some((g.fresh, g.refused, g.replayed))
    }

    /// Notes that `id` was heard and lets its lean sender, if it has one, take the datagram.
    /// `None` for a peer that is not here; `Some(true)` when the lean path took the datagram
    /// whole or the replay guard refused it (str0m must not see it).
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
        let counters = &mut self.counters;
        p.last_heard = now;
        self.timers.touch(id);
        let Some(fast) = p.fast.as_deref_mut() else {
            let refused =
                is_rtcp(contents) && guard_refuses(&mut p.srtcp_guard, contents, counters);
            return Some(refused);
        };
        let got = fast.on_receive(proto, source, destination, contents, now);
        if !got.taken {
            // Its lean opener has no keys (yet, or keys it cannot use): str0m opens it, once guarded.
            let refused = got.rtcp && guard_refuses(&mut p.srtcp_guard, contents, counters);
            return Some(refused);
        }
        match got.refused {
            true => {
                counters.srtcp_refused += 1;
                let replayed = fast.rtcp_in.last_refused_was_replay();
                counters.srtcp_replayed += u64::from(replayed);
            }
            false => counters.srtcp_opened += 1,
        }
        if got.moved {
            counters.twcc_feedbacks += 1;
            let (estimate, delivered, back) =
                (fast.estimate(), fast.delivered(), fast.recovering());
            if estimate.is_some_and(|e| p.note_lean_estimate(e, delivered, back, now)) {
                self.alloc_moved.push(id);
            }
        }
        if p.fast.as_deref().is_some_and(|f| f.has_nacks()) {
            super::rtx::answer_nacks(p, &self.tracks, now, counters, &mut self.out);
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

/// Whether the guard refused an SRTCP compound str0m was to open (counted with the lean path's:
/// a fresh one as opened, a refused one as refused, a replay also as replayed).
fn guard_refuses(guard: &mut SrtcpGuard, contents: &[u8], counters: &mut RoomCounters) -> bool {
    match guard.check(contents) {
        Verdict::Unkeyed => false,
        Verdict::Fresh => {
            counters.srtcp_opened += 1;
            false
        }
        Verdict::Refused { replayed } => {
            counters.srtcp_refused += 1;
            counters.srtcp_replayed += u64::from(replayed);
            true
        }
    }
}
