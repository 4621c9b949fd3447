//! NACK → RTX for lean subscribers: their NACKs answered from the per-source histories.
//!
//! Each video layer of an up-track keeps its recent payloads once ([`Histories`], stored by
//! the router as packets arrive, only in rooms on the lean path); each subscriber's sender
//! maps its own sequence numbers back to (layer, source sequence number) and sends what is
//! still held as RTX ([`FastSender::answer_nacks`]). This file joins the two for one peer.

#[cfg(doc)]
use super::history::Histories;
#[cfg(doc)]
use super::sender::FastSender;
use crate::media::command::{Output, RoomCounters};
use crate::media::router::Router;
use crate::media::track::UpTrack;
use crate::media::webrtc::WebRtcPeer;
use crate::model::{ParticipantId, TrackId};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Answers the NACKs waiting at `peer`'s lean sender from the histories of the tracks its
/// m-lines carry; the retransmissions join `out`, and are counted in `counters` with the
/// packets left unanswered.
pub(in crate::media) fn answer_nacks(
    peer: &mut WebRtcPeer,
    tracks: &BTreeMap<TrackId, UpTrack>,
    now: Instant,
    counters: &mut RoomCounters,
    out: &mut VecDeque<Output>,
) {
    let WebRtcPeer {
        fast,
        rtc,
        down_tracks,
        ..
    } = peer;
    let Some(fast) = fast.as_deref_mut() else {
        return;
    };
    let mut sent = Vec::new();
    let n = fast.answer_nacks(
        rtc,
        now,
        |mid, r| {
            let track = tracks.get(&down_tracks.get(&mid)?.track)?;
            let history = track.histories.layer(r.source)?;
            history.get_rtp(now, history.unwrap_low32(r.seq_low32)?)
        },
        &mut counters.nacks_unanswered,
        &mut sent,
    );
    counters.rtx_sent += n as u64;
    out.extend(sent.into_iter().map(Output::Transmit));
}

impl Router {
    /// Bytes the room's retransmission histories hold (0 on str0m's send path).
    pub fn rtx_history_bytes(&self) -> usize {
        self.tracks.values().map(|t| t.histories.bytes()).sum()
    }

    /// Video packets the lean path's pacer held for `id`, and those it dropped, if it is on it.
    pub fn fast_paced(&self, id: ParticipantId) -> Option<(u64, u64)> {
        let f = self.peers.get(&id)?.webrtc()?.fast.as_deref()?;
        Some((f.paced, f.pace_dropped))
    }

    /// Retransmissions the lean send path sent to `id`, if it is on it.
    pub fn fast_resent(&self, id: ParticipantId) -> Option<u64> {
        let f = self.peers.get(&id)?.webrtc()?.fast.as_deref()?;
        Some(f.rtx_sent)
    }
}
