//! SRTP/SRTCP for the fast path: RFC 3711 key derivation and RFC 7714 AEAD-GCM, on aws-lc-rs
//! (the version str0m's crypto provider already builds, called directly); and, for a peer
//! whose handshake chose it, AES_CM_128_HMAC_SHA1_80 ([`super::cm`]).
//!
//! SRTCP nonces are built from (SSRC of the compound's first packet, SRTCP index). str0m keeps
//! one index per context on the same key, so every compound sealed here must start with a
//! packet from [`Sealer::reporter`], an SSRC str0m never uses; [`Sealer::seal_rtcp`] refuses
//! anything else, and refuses to wrap its 31-bit index, so no nonce is ever used twice.
//!
//! [`Opener::open_rtcp_into`] keeps RFC 3711's replay list per source ([`SrtcpReplay`]): a
//! compound whose index it saw, or that is older than the window, is refused before it is
//! opened, and the list moves only for compounds that authenticated.

use super::cm::{self, CmSession};
use super::gcm::Gcm;
use super::keys::Keying;
use super::replay::SrtcpReplay;
use str0m::config::CryptoProvider;
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{AeadAes128Gcm, AeadAes256Gcm};

/// Bytes a sealed RTP packet grows by at most (the GCM tag; AES-CM's is 10).
pub const RTP_OVERHEAD: usize = super::gcm::TAG_LEN;
/// Bytes a sealed RTCP compound grows by at most (GCM: tag, then E flag and index; AES-CM:
/// E flag and index, then a 10-byte tag).
pub const RTCP_OVERHEAD: usize = 16 + 4;
/// What AES-CM SRTCP adds after the compound.
const CM_RTCP_TRAILER: usize = 4 + cm::TAG_LEN;
/// The last SRTCP index; past it the key would have to change (RFC 3711 §9.2).
const MAX_SRTCP_INDEX: u32 = (1 << 31) - 1;

// RFC 3711 §4.3.2 key derivation labels.
pub(super) const LABEL_RTP_KEY: u8 = 0;
pub(super) const LABEL_RTP_AUTH: u8 = 1;
pub(super) const LABEL_RTP_SALT: u8 = 2;
pub(super) const LABEL_RTCP_KEY: u8 = 3;
pub(super) const LABEL_RTCP_AUTH: u8 = 4;
pub(super) const LABEL_RTCP_SALT: u8 = 5;

/// Why a context could not be made or a packet not sealed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrtpError {
    /// The handshake chose a profile the fast path does not implement (none that str0m 0.25
    /// negotiates); such a peer would stay on str0m's path.
    #[error("SRTP profile {0} is not supported by the fast path")]
    Profile(String),
    /// The keying material has the wrong length for its profile.
    #[error("keying material of {0} bytes does not fit its profile")]
    Material(usize),
    /// A compound must start with the reporter's own packet (see the module comment).
    #[error("an RTCP compound sealed here must start with the reporter SSRC")]
    NotReporter,
    /// The SRTCP index is exhausted; sealing more would reuse a nonce.
    #[error("SRTCP index exhausted")]
    IndexExhausted,
    /// A packet too short, or failing authentication (opening only).
    #[error("malformed or unauthenticated packet")]
    Malformed,
    /// An SRTCP index already seen from its source, or older than its replay window.
    #[error("replayed SRTCP compound")]
    Replayed,
}

/// One direction's session keys.
enum Session {
    Gcm(GcmSession),
    /// Boxed: rare, and larger than the GCM keys every other sender carries.
    Cm(Box<CmSession>),
}

struct GcmSession {
    rtp: Gcm,
    rtp_salt: [u8; 12],
    rtcp: Gcm,
    rtcp_salt: [u8; 12],
}

/// Which half of the keying material a context uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What this side sends.
    Send,
    /// What the other side sends.
    Receive,
}

/// RFC 3711 §4.3: AES in counter mode over (master salt XOR label) as the PRF, with a key
/// derivation rate of zero (what DTLS-SRTP uses). Also the AES-CM profile's SRTCP
/// authentication key (`srtcp_guard`).
pub(super) fn derive(
    provider: &CryptoProvider,
    master: &[u8],
    salt: &[u8],
    label: u8,
    out: &mut [u8],
) {
    // The master salt (112 bits for AES-CM, 96 for GCM) sits at the block's start.
    let mut input = [0u8; 16];
    input[..salt.len().min(14)].copy_from_slice(&salt[..salt.len().min(14)]);
    input[7] ^= label;
    let mut block = [0u8; 32];
    for (round, chunk) in out.chunks_mut(16).enumerate() {
        input[14..].copy_from_slice(&(round as u16).to_be_bytes());
        match master.len() {
            16 => provider
                .srtp_provider
                .srtp_aes_128_ecb_round(master, &input, &mut block),
            _ => provider
                .srtp_provider
                .srtp_aes_256_ecb_round(master, &input, &mut block),
        }
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

fn session(
    provider: &CryptoProvider,
    keying: &Keying,
    dir: Direction,
) -> Result<Session, SrtpError> {
    // The DTLS client's half comes first (RFC 5764 §4.2).
    let client = keying.active == (dir == Direction::Send);
    let key_len = match keying.profile {
        SrtpProfile::AEAD_AES_128_GCM => AeadAes128Gcm::KEY_LEN,
        SrtpProfile::AEAD_AES_256_GCM => AeadAes256Gcm::KEY_LEN,
        SrtpProfile::AES128_CM_SHA1_80 => {
            let (key, salt) = (cm::KEY_LEN, cm::SALT_LEN);
            let m = &keying.material;
            if m.len() != 2 * key + 2 * salt {
                return Err(SrtpError::Material(m.len()));
            }
            let (k, s) = if client { (0, 0) } else { (key, salt) };
            let master = &m[k..k + key];
            let salt = &m[2 * key + s..2 * key + s + salt];
            let sealing = dir == Direction::Send;
            let keys = CmSession::new(provider, master, salt, sealing);
            return Ok(Session::Cm(Box::new(keys)));
        }
        other => return Err(SrtpError::Profile(format!("{other:?}"))),
    };
    let m = &keying.material;
    if m.len() != 2 * key_len + 2 * 12 {
        return Err(SrtpError::Material(m.len()));
    }
    let (k, s) = if client { (0, 0) } else { (key_len, 12) };
    let master = &m[k..k + key_len];
    let mut salt = [0u8; 12];
    salt.copy_from_slice(&m[2 * key_len + s..2 * key_len + s + 12]);
    let mut rtp_salt = [0u8; 12];
    let mut rtcp_salt = [0u8; 12];
    derive(provider, master, &salt, LABEL_RTP_SALT, &mut rtp_salt);
    derive(provider, master, &salt, LABEL_RTCP_SALT, &mut rtcp_salt);
    let cipher = |label: u8| -> Gcm {
        let mut key = [0u8; 32];
        derive(provider, master, &salt, label, &mut key[..key_len]);
        Gcm::new(&key[..key_len])
    };
    Ok(Session::Gcm(GcmSession {
        rtp: cipher(LABEL_RTP_KEY),
        rtp_salt,
        rtcp: cipher(LABEL_RTCP_KEY),
        rtcp_salt,
    }))
}

/// RFC 7714 §8.1: 0x0000, SSRC, ROC, SEQ, XOR the salt. Here, not str0m's (a call into
/// another crate per copy that showed in the profile): the 48-bit index sits in the last six
/// bytes as ROC then SEQ, so it is one big-endian XOR.
#[inline]
fn rtp_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = *salt;
    let ssrc = ssrc.to_be_bytes();
    let index = (index & 0xFFFF_FFFF_FFFF).to_be_bytes();
    for i in 0..4 {
        iv[2 + i] ^= ssrc[i];
    }
    for i in 0..6 {
        iv[6 + i] ^= index[2 + i];
    }
    iv
}

/// The sealing side of one subscriber's transport.
pub struct Sealer {
    keys: Session,
    reporter: u32,
    srtcp_index: u32,
}

impl Sealer {
    /// A sealer for what this side sends; `reporter` heads every RTCP compound it seals.
    pub fn new(
        provider: &CryptoProvider,
        keying: &Keying,
        reporter: u32,
    ) -> Result<Self, SrtpError> {
        Ok(Sealer {
            keys: session(provider, keying, Direction::Send)?,
            reporter,
            srtcp_index: 0,
        })
    }

    /// Starts bringing the RTP key's state toward the cache ([`Gcm::prefetch`]): a fan-out
    /// calls it on the next subscriber's sealer before sealing the current copy.
    #[inline]
    pub fn prefetch(&self) {
        if let Session::Gcm(keys) = &self.keys {
            keys.rtp.prefetch();
        }
    }

    /// The SSRC every compound sealed here starts with.
    pub fn reporter(&self) -> u32 {
        self.reporter
    }

    /// Appends `payload` sealed after the RTP header already in `out` (the header is the
    /// authenticated data). `index` is the packet's 64-bit sequence number (ROC and seq).
    pub fn seal_rtp(&mut self, out: &mut Vec<u8>, payload: &[u8], ssrc: u32, index: u64) {
        self.seal_rtp_from(out, 0, payload, ssrc, index);
    }

    /// [`Self::seal_rtp`] for a header that starts at `start` in `out` (bytes before it, such
    /// as the relay's link id, are neither encrypted nor authenticated). Inline: a per-copy
    /// call whose cross-unit inlining otherwise comes and goes with unrelated edits (~35
    /// instructions a copy under callgrind).
    #[inline]
    pub fn seal_rtp_from(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        payload: &[u8],
        ssrc: u32,
        index: u64,
    ) {
        match &mut self.keys {
            Session::Gcm(keys) => {
                let iv = rtp_iv(&keys.rtp_salt, ssrc, index);
                // GCM refuses only inputs past 64 GiB; a datagram is never near that.
                keys.rtp.seal_append(&iv, start, payload, out);
            }
            Session::Cm(keys) => keys.seal_rtp(out, start, payload, ssrc, index),
        }
    }

    /// Seals a plain RTCP compound in place; returns the SRTCP index it used.
    pub fn seal_rtcp(&mut self, compound: &mut Vec<u8>) -> Result<u32, SrtpError> {
        if compound.len() < 8 {
            return Err(SrtpError::Malformed);
        }
        let first = u32::from_be_bytes([compound[4], compound[5], compound[6], compound[7]]);
        if first != self.reporter {
            return Err(SrtpError::NotReporter);
        }
        if self.srtcp_index > MAX_SRTCP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        // The index moves before sealing: one that failed half-way is never used again.
        let index = self.srtcp_index;
        self.srtcp_index += 1;
        let keys = match &mut self.keys {
            Session::Gcm(keys) => keys,
            Session::Cm(keys) => {
                return match keys.seal_rtcp(compound, first, index) {
                    true => Ok(index),
                    false => Err(SrtpError::Malformed),
                };
            }
        };
        let e_index = (index | 0x8000_0000).to_be_bytes();
        let mut aad = [0u8; 12];
        aad[..8].copy_from_slice(&compound[..8]);
        aad[8..].copy_from_slice(&e_index);
        let iv = AeadAes128Gcm::rtcp_iv(keys.rtcp_salt, first, index);
        let Some(tag) = keys.rtcp.seal_in_place(&iv, &aad, &mut compound[8..]) else {
            return Err(SrtpError::Malformed);
        };
        compound.extend_from_slice(&tag);
        compound.extend_from_slice(&e_index);
        Ok(index)
    }
}

/// The opening side: what the other end sends (its RTCP toward us; tests' receivers).
pub struct Opener {
    keys: Session,
    replay: SrtcpReplay,
}

impl Opener {
    /// An opener for what the other side sends.
    pub fn new(provider: &CryptoProvider, keying: &Keying) -> Result<Self, SrtpError> {
        Ok(Opener {
            keys: session(provider, keying, Direction::Receive)?,
            replay: SrtcpReplay::default(),
        })
    }

    /// Opens an SRTP packet whose header is `header_len` bytes and whose 64-bit index the
    /// caller estimated; returns header + clear payload.
    pub fn open_rtp(
        &mut self,
        packet: &[u8],
        header_len: usize,
        index: u64,
    ) -> Result<Vec<u8>, SrtpError> {
        if header_len < 12 || packet.len() < header_len {
            return Err(SrtpError::Malformed);
        }
        let keys = match &mut self.keys {
            Session::Gcm(keys) => keys,
            Session::Cm(keys) => {
                return keys
                    .open_rtp(packet, header_len, index)
                    .ok_or(SrtpError::Malformed)
            }
        };
        if packet.len() < header_len + RTP_OVERHEAD {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let (header, body) = packet.split_at(header_len);
        let mut out = header.to_vec();
        out.resize(header_len + body.len() - RTP_OVERHEAD, 0);
        let iv = rtp_iv(&keys.rtp_salt, ssrc, index);
        let clear = &mut out[header_len..];
        if !keys.rtp.open(&iv, header, body, clear) {
            return Err(SrtpError::Malformed);
        }
        Ok(out)
    }

    /// Opens an SRTCP compound; returns the clear compound and its index.
    pub fn open_rtcp(&mut self, packet: &[u8]) -> Result<(Vec<u8>, u32), SrtpError> {
        let mut out = Vec::new();
        let index = self.open_rtcp_into(packet, &mut out)?;
        Ok((out, index))
    }

    /// Opens an SRTCP compound into `out` (cleared first, its allocation reused: a lean peer
    /// opens every compound it receives); returns its index.
    pub fn open_rtcp_into(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<u32, SrtpError> {
        out.clear();
        // Where the E flag and index sit (last for GCM, before the tag for AES-CM), and what
        // the shortest compound is: 8 clear bytes and what sealing adds.
        let (trailer, least) = match self.keys {
            Session::Gcm(_) => (4, 8 + RTCP_OVERHEAD),
            Session::Cm(_) => (CM_RTCP_TRAILER, 8 + CM_RTCP_TRAILER),
        };
        if packet.len() < least {
            return Err(SrtpError::Malformed);
        }
        let (ssrc, index) = self.fresh_index(packet, trailer)?;
        let e_at = packet.len() - trailer;
        let opened = match &mut self.keys {
            Session::Gcm(keys) => {
                let (rest, e_index) = packet.split_at(e_at);
                let iv = AeadAes128Gcm::rtcp_iv(keys.rtcp_salt, ssrc, index);
                out.extend_from_slice(&rest[..8]);
                out.resize(rest.len() - 16, 0);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&rest[..8]);
                aad[8..].copy_from_slice(e_index);
                keys.rtcp.open(&iv, &aad, &rest[8..], &mut out[8..])
            }
            // The tag first: nothing is decrypted that did not authenticate.
            Session::Cm(keys) => {
                keys.rtcp_authentic(packet)
                    && keys.open_rtcp(&packet[..8], &packet[8..e_at], ssrc, index, out)
            }
        };
        if !opened {
            out.clear();
            return Err(SrtpError::Malformed);
        }
        self.replay.mark(ssrc, index);
        Ok(index)
    }

    /// The heading SSRC and the index of a compound (at least 8 + `trailer` bytes) whose E
    /// flag and index are `trailer` bytes from its end, if its replay list has not seen it.
    /// Asked before anything is computed; the list moves only once the compound authenticated.
    fn fresh_index(&self, packet: &[u8], trailer: usize) -> Result<(u32, u32), SrtpError> {
        let e = &packet[packet.len() - trailer..];
        let e_index = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        if e_index & 0x8000_0000 == 0 {
            // Unencrypted SRTCP is never sent by browsers nor by this server.
            return Err(SrtpError::Malformed);
        }
        let index = e_index & MAX_SRTCP_INDEX;
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        match self.replay.fresh(ssrc, index) {
            true => Ok((ssrc, index)),
            false => Err(SrtpError::Replayed),
        }
    }
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
