//! Software prefetch for the fan-out: the state a copy touches, fetched a few copies ahead.
//!
//! At a wide fan-out every subscriber's state is cold when its copy is made (the server
//! sleeps between frames while the tester and the kernel run), and each copy reads it as a
//! chain of dependent misses: the peer, then its down-track and lean sender, then the
//! sender's stream slot and AES key state. Prefetching the whole chain for the next copy
//! would stall on the chain itself, so it is staged: three copies ahead the peer's own lines
//! (their address needs no cold load), two ahead the down-track and sender (their pointers
//! read from the now-cached peer), one ahead the stream slot and key state (read from the
//! now-cached sender). Hints only: nothing here changes what a copy computes.
//!
//! `CONFAB_PREFETCH=0` turns it off, for A/B measurement of the same binary.

use super::fast::gcm::prefetch_range;
use super::peer::Peer;
use crate::model::ParticipantId;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use str0m::media::Mid;

/// Whether the fan-out prefetches (on unless `CONFAB_PREFETCH=0`; read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("CONFAB_PREFETCH").map_or(true, |v| v != "0"))
}

fn line<T>(v: &T) {
    prefetch_range((v as *const T).cast::<u8>(), 1);
}

/// What of a subscriber's state one call brings in.
#[derive(Clone, Copy)]
pub(super) enum Stage {
    /// Three copies ahead: the peer's own lines.
    Peer,
    /// Two ahead: its down-track and lean sender.
    Sender,
    /// One ahead: the sender's stream slot and key state.
    Keys,
}

/// Copies ahead of the current one each stage runs.
pub(super) const STAGES: [(Stage, usize); 3] =
    [(Stage::Peer, 3), (Stage::Sender, 2), (Stage::Keys, 1)];

/// Prefetches `stage` of subscriber `index` (nothing past the end, or for a relay peer). One
/// shared lookup: the map's nodes are warm at a fan-out, the peers are not.
pub(super) fn stage(
    peers: &BTreeMap<ParticipantId, Peer>,
    subscribers: &[(ParticipantId, Mid, u32)],
    index: usize,
    stage: Stage,
) {
    let Some(&(id, mid, at)) = subscribers.get(index) else {
        return;
    };
    let Some(Peer::WebRtc(w)) = peers.get(&id) else {
        return;
    };
    match stage {
        Stage::Peer => {
            line(&w.ice_up);
            line(&w.down_tracks);
            line(&w.fast);
        }
        Stage::Sender => {
            w.down_tracks.prefetch_at(at);
            if let Some(fast) = w.fast.as_deref() {
                fast.prefetch_state();
            }
        }
        Stage::Keys => {
            let down = w.down_tracks.get_at(&mid, at);
            if let (Some(fast), Some(down)) = (w.fast.as_deref(), down) {
                fast.prefetch_stream(down.lean_slot);
            }
        }
    }
}
