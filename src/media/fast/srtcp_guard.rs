//! RFC 3711 §3.3.2 replay protection for the SRTCP str0m opens: every peer whose compounds
//! the lean path does not open itself (every peer of a room on `--send-path str0m`, on either
//! profile its DTLS chose; any peer before its lean opener is keyed). str0m 0.25 keeps replay windows for SRTP but none for SRTCP, so without
//! this a captured NACK replayed on path would be answered with RTX again, and a replayed
//! PLI/FIR would ask the publisher for another keyframe.
//!
//! The guard only decides whether str0m is given a compound; str0m still decrypts and reads
//! it. It authenticates the compound first (GCM: opened into a scratch buffer by the lean
//! path's [`Opener`]; AES-CM: its 80-bit HMAC-SHA1 tag checked with the SRTCP authentication
//! key derived here), and only then records (heading SSRC, SRTCP index) in the same per-source
//! [`SrtcpReplay`] lists the lean path keeps: a forged compound can never move a window and
//! so never block a real one. A compound that is a replay, fails authentication or is
//! malformed is refused before str0m sees it (str0m would refuse the last two as well).

use super::keys::{KeySlot, Keying};
use super::replay::SrtcpReplay;
use super::srtp::{self, Opener, SrtpError};
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{Aes128CmSha1_80, CryptoProvider, Sha1HmacProvider};

/// Bytes of the SRTCP authentication key of AES_CM_128_HMAC_SHA1_80 (RFC 3711 §8.2: 160 bits).
const AUTH_KEY_LEN: usize = Aes128CmSha1_80::HMAC_KEY_LEN;
/// What AES-CM SRTCP adds after the compound: E flag + index, then the 80-bit tag.
const CM_TRAILER: usize = 4 + Aes128CmSha1_80::HMAC_TAG_LEN;
/// The SRTCP index's mask below the E flag.
const INDEX_MASK: u32 = 0x7fff_ffff;

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
    /// GCM: the lean path's opener, and the buffer it opens into (reused; as long as the
    /// largest compound, so bounded by a datagram).
    Gcm(Box<(Opener, Vec<u8>)>),
    AesCm(Box<CmAuth>),
    /// Keys no opener here can use (a profile str0m 0.25 does not negotiate): str0m alone.
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
            Keys::Gcm(gcm) => {
                let (opener, scratch) = &mut **gcm;
                opener.open_rtcp_into(packet, scratch).map(drop)
            }
            Keys::AesCm(cm) => cm.check(packet).map(drop),
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
    let provider = super::keys::provider();
    let made = match keying.profile {
        SrtpProfile::AES128_CM_SHA1_80 => CmAuth::new(&provider, keying).map(Keys::AesCm),
        _ => Opener::new(&provider, keying).map(|o| Keys::Gcm(Box::new((o, Vec::new())))),
    };
    made.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "SRTCP replay guard unavailable; str0m reads SRTCP unchecked");
        Keys::Off
    })
}

/// AES_CM_128_HMAC_SHA1_80 SRTCP authentication (RFC 3711 §3.4, §4.2) of what the other side
/// sends, with its replay lists. Nothing is decrypted: str0m does that.
pub struct CmAuth {
    key: [u8; AUTH_KEY_LEN],
    hmac: &'static dyn Sha1HmacProvider,
    replay: SrtcpReplay,
}

impl CmAuth {
    /// From the handshake's keys: the other side's half of the material (RFC 5764 §4.2).
    pub fn new(provider: &CryptoProvider, keying: &Keying) -> Result<Box<Self>, SrtpError> {
        const KEY: usize = Aes128CmSha1_80::KEY_LEN;
        const SALT: usize = Aes128CmSha1_80::SALT_LEN;
        if keying.profile != SrtpProfile::AES128_CM_SHA1_80 {
            return Err(SrtpError::Profile(format!("{:?}", keying.profile)));
        }
        let m = &keying.material;
        if m.len() != 2 * KEY + 2 * SALT {
            return Err(SrtpError::Material(m.len()));
        }
        // The other side sends with the DTLS client's half when we are the server.
        let (k, s) = if keying.active { (KEY, SALT) } else { (0, 0) };
        let master = &m[k..k + KEY];
        let salt = &m[2 * KEY + s..2 * KEY + s + SALT];
        Ok(Box::new(Self::from_master(provider, master, salt)))
    }

    /// From a master key and salt (RFC 3711 §4.3.1 with a key derivation rate of zero).
    pub fn from_master(provider: &CryptoProvider, master: &[u8], salt: &[u8]) -> Self {
        let mut key = [0u8; AUTH_KEY_LEN];
        srtp::derive(provider, master, salt, srtp::LABEL_RTCP_AUTH, &mut key);
        CmAuth {
            key,
            hmac: provider.sha1_hmac_provider,
            replay: SrtcpReplay::default(),
        }
    }

    /// Authenticates one SRTCP compound and records its index; returns the index. A replay
    /// is refused before the HMAC is computed; the list moves only once the tag matched.
    pub fn check(&mut self, packet: &[u8]) -> Result<u32, SrtpError> {
        // The clear header (8 bytes: what names the heading SSRC) and the trailer.
        if packet.len() < 8 + CM_TRAILER {
            return Err(SrtpError::Malformed);
        }
        let (authenticated, tag) = packet.split_at(packet.len() - Aes128CmSha1_80::HMAC_TAG_LEN);
        let e = &authenticated[authenticated.len() - 4..];
        let index = u32::from_be_bytes([e[0], e[1], e[2], e[3]]) & INDEX_MASK;
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if !self.replay.fresh(ssrc, index) {
            return Err(SrtpError::Replayed);
        }
        // The tag covers the compound with its E flag and index (RFC 3711 §3.4); compared in
        // constant time by str0m's own check.
        let hmac = |k: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(k, parts);
        if !Aes128CmSha1_80::rtcp_verify(hmac, &self.key, authenticated, tag) {
            return Err(SrtpError::Malformed);
        }
        self.replay.mark(ssrc, index);
        Ok(index)
    }
}

#[cfg(test)]
#[path = "srtcp_guard_tests.rs"]
mod tests;
