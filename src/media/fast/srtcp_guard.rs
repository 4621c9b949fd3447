//! RFC 3711 §3.3.2 replay protection for the SRTCP str0m opens: every peer whose compounds
//! the lean path does not open itself (every peer of a room on `--send-path str0m`, on either
//! profile its DTLS chose; any peer before its lean opener is keyed). str0m 0.25 keeps replay
//! windows for SRTP but none for SRTCP, so without this a captured NACK replayed on path would
//! be answered with RTX again, and a replayed PLI/FIR would ask the publisher for another
//! keyframe.
//!
//! The guard only decides whether str0m is given a compound; str0m still decrypts and reads
//! it. The lean path's [`Opener`] (either profile) opens it into a scratch buffer first, which
//! authenticates it (AES-CM: the 80-bit HMAC-SHA1 tag before anything is decrypted) and only
//! then records (heading SSRC, SRTCP index) in its per-source [`super::replay::SrtcpReplay`]
//! lists: a forged compound can never move a window and so never block a real one. A compound
//! that is a replay, fails authentication, is unencrypted (E flag clear: never sent by
//! browsers) or is malformed is refused before str0m sees it. Opening a compound a second
//! time costs a few microseconds, a few times a second per peer.

use super::keys::{KeySlot, Keying};
use super::srtp::{Opener, SrtpError};

/// What the guard says about one SRTCP compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No keys yet: str0m has none either and drops it; nothing to record.
    Unkeyed,
    /// Authentic and new: recorded, str0m may take it.
    Fresh,
    /// Not for str0m: malformed or unauthenticated, or (`replayed`) an index already seen
    /// from its source or older than the window.
    Refused { replayed: bool },
}

/// A peer's SRTCP replay guard.
pub struct SrtcpGuard {
    keys: Keys,
    /// Compounds found fresh, refused, and of those refused the replays.
    pub fresh: u64,
    pub refused: u64,
    pub replayed: u64,
}

enum Keys {
    /// DTLS has not finished; its keys land in the slot (see `keys::build_tapped`).
    Waiting(KeySlot),
    /// The lean path's opener, and the buffer it opens into (reused; as long as the largest
    /// compound, so bounded by a datagram).
    Open(Box<(Opener, Vec<u8>)>),
    /// Keys no opener here can use (material of the wrong length): str0m alone.
    Off,
}

impl SrtcpGuard {
    /// A guard for the `Rtc` whose keys land in `slot`.
    pub fn new(slot: KeySlot) -> Self {
        SrtcpGuard {
            keys: Keys::Waiting(slot),
            fresh: 0,
            refused: 0,
            replayed: 0,
        }
    }

    /// Checks one SRTCP compound (`rtcp_in::is_rtcp` said so) and records it if it is fresh.
    pub fn check(&mut self, packet: &[u8]) -> Verdict {
        if let Keys::Waiting(slot) = &self.keys {
            let Some(keying) = slot.get() else {
                return Verdict::Unkeyed;
            };
            self.keys = keyed(keying);
        }
        let checked = match &mut self.keys {
            Keys::Waiting(_) | Keys::Off => return Verdict::Unkeyed,
            Keys::Open(open) => {
                let (opener, scratch) = &mut **open;
                opener.open_rtcp_into(packet, scratch).map(drop)
            }
        };
        match checked {
            Ok(()) => {
                self.fresh += 1;
                Verdict::Fresh
            }
            Err(e) => {
                let replayed = e == SrtpError::Replayed;
                self.refused += 1;
                self.replayed += u64::from(replayed);
                Verdict::Refused { replayed }
            }
        }
    }
}

/// The guard's keys for what the peer sends.
fn keyed(keying: &Keying) -> Keys {
    match Opener::new(&super::keys::provider(), keying) {
        Ok(opener) => Keys::Open(Box::new((opener, Vec::new()))),
        Err(e) => {
            tracing::warn!(error = %e, "SRTCP replay guard unavailable; str0m reads SRTCP unchecked");
            Keys::Off
        }
    }
}

#[cfg(test)]
#[path = "srtcp_guard_tests.rs"]
mod tests;
