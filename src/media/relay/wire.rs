//! The relay's datagram: `[link id][SRTP packet]`, its key from HKDF, sealing, opening, replay.
//!
//! One datagram carries one publisher packet from the origin to an edge node:
//!
//! ```text
//!  0       4                16                                   48
//!  | link  | RTP header (12) | extension 0xBEDE, 7 words (28)     | sealed payload | tag (16)
//!  | id BE | V=2 X=1 M PT    | id 1 len 8: relay index (u64 BE)   |
//!  |       | seq (original)  | id 2 len 8: seq ROC, timestamp hi  |
//!  |       | ts (original)   | id 3 len 1: RFC 6464 level (audio) |
//!  |       | SSRC = track·4+layer  id 4 len 6: capture (µs, 48 bits) |
//!  |       |                 | one byte of padding                |
//! ```
//!
//! The capture is when the packet's publisher captured it on the sending node's clock
//! (`fast::clock`, `media::lipsync`); the receiving node carries it onto its own by one offset
//! per link, so a person's audio and video keep their relation across nodes (and a resent
//! packet its own moment).
//!
//! The RTP header keeps the publisher's marker, low sequence number and timestamp; the
//! extension completes them to str0m's extended values, so the edge needs no extender. The
//! payload type is the one the room's codec table ([`relay_pt`]) gives the publisher's codec,
//! the same table on every node. The SSRC names (track, layer), so no mapping is negotiated.
//!
//! Sealing is RFC 7714 AES-256-GCM through `media::fast::srtp` (header authenticated,
//! payload encrypted), with one deviation: the 48-bit SRTP index in the nonce is not the
//! packet's ROC‖seq but the link's own counter, carried in extension 1. The origin keeps it
//! strictly increasing per link, so no nonce repeats under one key even when a publisher's
//! sequence numbers repeat (retransmissions, a restarted encoder); the edge rejects any index
//! it has seen or that is older than its window ([`ReplayWindow`]). The link id in front is
//! not authenticated: a changed id only sends the datagram to a key that does not open it.
//!
//! The key: HKDF-SHA256 (aws-lc-rs, already in the build as str0m's crypto backend) with the
//! cluster secret as input key material, the edge's 16 random hello bytes as salt, and info
//! `"confab relay v1" ‖ u16 len ‖ room ‖ u16 len ‖ edge node id` (lengths keep two
//! (room, edge) pairs from meaning the same bytes), expanded to a 32-byte master key and a
//! 12-byte master salt, then RFC 3711 derivation as for any SRTP master key. The edge → origin
//! direction (a viewer promoted on the edge) has its own key: label `"confab relay up v1"`.

use super::super::fast::keys::{self, Keying};
use super::super::fast::pool;
pub use super::super::fast::replay::ReplayWindow;
use super::super::fast::srtp::{Opener, Sealer, SrtpError, RTP_OVERHEAD};
use super::super::simulcast::Layer;
use crate::model::TrackId;
use aws_lc_rs::hkdf;
use std::sync::OnceLock;
use str0m::crypto::dtls::SrtpProfile;
use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::Pt;

/// The datagram's layout, named in the link's hello (`cluster::link`) so that nodes of
/// different versions refuse each other there rather than drop every datagram as malformed:
/// 1 before the capture field (a 36-byte header; its hello named none), 2 with it.
pub const WIRE_VERSION: u32 = 2;
/// Bytes before the RTP header: the link id.
pub const LINK_ID_LEN: usize = 4;
/// RTP header plus the relay's extension block.
pub const HEADER_LEN: usize = 12 + 4 + 28;
/// The capture field's range: 48 bits of microseconds (8.9 years of a process's clock).
pub const CAPTURE_MASK: u64 = (1 << 48) - 1;
/// Bytes a relay datagram adds around a payload.
pub const OVERHEAD: usize = LINK_ID_LEN + HEADER_LEN + RTP_OVERHEAD;
/// Layers a track may have on the relay (the SSRC keeps two bits for it).
pub const MAX_LAYERS: usize = 4;
/// Highest track id the SSRC can name; later tracks are not relayed (a room would have to
/// publish a billion tracks first).
pub const MAX_TRACK: u64 = (u32::MAX >> 2) as u64;
/// Label in the HKDF info.
const INFO_LABEL: &[u8] = b"confab relay v1";
/// Label in the HKDF info of the edge → origin direction.
const UPLINK_LABEL: &[u8] = b"confab relay up v1";
/// A relay link's master key and salt. Never logged.
#[derive(Clone)]
pub struct RelayKey {
    master: [u8; 32],
    salt: [u8; 12],
}

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(..)")
    }
}

impl RelayKey {
    /// The link key of (`room`, `edge`) under the cluster secret and the edge's hello salt.
    pub fn derive(cluster_secret: &[u8], hello_salt: &[u8; 16], room: &str, edge: &str) -> Self {
        Self::derive_labelled(INFO_LABEL, cluster_secret, hello_salt, room, edge)
    }

    /// The same link's key for the other direction, edge → origin (a viewer promoted on the
    /// edge, `relay::uplink`): its own label, so the two directions never share a key and
    /// their independent indexes never make a GCM nonce repeat under one key.
    pub fn derive_uplink(
        cluster_secret: &[u8],
        hello_salt: &[u8; 16],
        room: &str,
        edge: &str,
    ) -> Self {
        Self::derive_labelled(UPLINK_LABEL, cluster_secret, hello_salt, room, edge)
    }

    fn derive_labelled(
        label: &[u8],
        cluster_secret: &[u8],
        hello_salt: &[u8; 16],
        room: &str,
        edge: &str,
    ) -> Self {
        let mut info = Vec::with_capacity(label.len() + 4 + room.len() + edge.len());
        info.extend_from_slice(label);
        for part in [room.as_bytes(), edge.as_bytes()] {
            // Room names and node ids are short; a longer one is cut, never a panic.
            let len = part.len().min(usize::from(u16::MAX));
            info.extend_from_slice(&(len as u16).to_be_bytes());
            info.extend_from_slice(&part[..len]);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, hello_salt).extract(cluster_secret);
        let mut okm = [0u8; 44];
        let info = [info.as_slice()];
        // 44 bytes is far below HKDF-SHA256's limit (255 × 32), so neither call can fail.
        let filled = prk
            .expand(&info, Len(okm.len()))
            .and_then(|o| o.fill(&mut okm));
        debug_assert!(filled.is_ok(), "HKDF of 44 bytes");
        let mut key = RelayKey {
            master: [0; 32],
            salt: [0; 12],
        };
        key.master.copy_from_slice(&okm[..32]);
        key.salt.copy_from_slice(&okm[32..]);
        key
    }

    /// The key as SRTP keying material (both halves alike: the link is one-way).
    fn keying(&self) -> Keying {
        let mut material = Vec::with_capacity(88);
        material.extend_from_slice(&self.master);
        material.extend_from_slice(&self.master);
        material.extend_from_slice(&self.salt);
        material.extend_from_slice(&self.salt);
        Keying {
            material,
            profile: SrtpProfile::AEAD_AES_256_GCM,
            active: true,
        }
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The codec table every node builds alike (the one browsers negotiate against): a relay
/// payload type means the same codec on both ends.
pub fn room_codecs() -> &'static CodecConfig {
    static CODECS: OnceLock<CodecConfig> = OnceLock::new();
    CODECS.get_or_init(|| {
        let mut config = super::super::webrtc::room_codecs(str0m::Rtc::builder());
        config.codec_config().clone()
    })
}

/// The relay payload type of a publisher's codec, if the room's table has it.
pub fn relay_pt(params: PayloadParams) -> Option<Pt> {
    room_codecs().match_params(params).map(|p| p.pt())
}

/// The codec behind a relay payload type.
pub fn params_of(pt: Pt) -> Option<PayloadParams> {
    room_codecs().find(|p| p.pt() == pt).copied()
}

/// The SSRC naming one layer of a track on the relay.
pub fn ssrc_of(track: TrackId, layer: Layer) -> Option<u32> {
    (track.0 <= MAX_TRACK && usize::from(layer) < MAX_LAYERS)
        .then(|| ((track.0 as u32) << 2) | u32::from(layer))
}

/// The track and layer an SSRC names.
pub fn track_of(ssrc: u32) -> (TrackId, Layer) {
    (TrackId(u64::from(ssrc >> 2)), (ssrc & 3) as Layer)
}

/// One publisher packet as the relay carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPacket {
    /// The track (the origin's id).
    pub track: TrackId,
    /// Its simulcast layer.
    pub layer: Layer,
    /// Relay payload type (see [`relay_pt`]).
    pub pt: u8,
    /// RTP marker.
    pub marker: bool,
    /// The publisher's extended sequence number.
    pub seq: u64,
    /// The publisher's extended RTP timestamp.
    pub time: u64,
    /// RFC 6464 byte (voice activity bit, level), audio only.
    pub audio_level: Option<u8>,
    /// When its publisher captured it, on the sending node's clock: `fast::clock` µs, within
    /// [`CAPTURE_MASK`].
    pub capture_us: u64,
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayDrop {
    /// Too short, or not the relay's header.
    Malformed,
    /// The link id is not this edge's.
    UnknownLink,
    /// Authentication failed (wrong key, altered bytes).
    Forged,
    /// An index already seen, or too old.
    Replayed,
    /// A track or layer the edge was not told about.
    UnknownTrack,
    /// A payload type outside the room's codec table.
    UnknownCodec,
}

impl RelayDrop {
    /// Every reason, in counter order.
    pub const ALL: [RelayDrop; 6] = [
        RelayDrop::Malformed,
        RelayDrop::UnknownLink,
        RelayDrop::Forged,
        RelayDrop::Replayed,
        RelayDrop::UnknownTrack,
        RelayDrop::UnknownCodec,
    ];

    /// Its metrics label.
    pub fn name(self) -> &'static str {
        match self {
            RelayDrop::Malformed => "malformed",
            RelayDrop::UnknownLink => "unknown_link",
            RelayDrop::Forged => "forged",
            RelayDrop::Replayed => "replayed",
            RelayDrop::UnknownTrack => "unknown_track",
            RelayDrop::UnknownCodec => "unknown_codec",
        }
    }
}

/// The link id a datagram is for, if it is long enough to be a relay datagram.
pub fn link_of(datagram: &[u8]) -> Option<u32> {
    (datagram.len() >= OVERHEAD)
        .then(|| u32::from_be_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]))
}

/// The origin's end of a link: seals each packet under the next index.
pub struct RelaySealer {
    link: u32,
    sealer: Sealer,
    next_index: u64,
}

impl RelaySealer {
    /// A sealer for `link` under `key`. A key must seal for one link's life only: a new link
    /// (a new hello) brings a new salt and so a new key.
    pub fn new(link: u32, key: &RelayKey) -> Result<Self, SrtpError> {
        let sealer = Sealer::new(&keys::provider(), &key.keying(), 0)?;
        Ok(RelaySealer {
            link,
            sealer,
            next_index: 0,
        })
    }

    /// One datagram: the header of `p`, then `payload` sealed. `None` for a track the SSRC
    /// cannot name, or when the 48-bit index is spent (never, at any real packet rate).
    pub fn seal(&mut self, p: &RelayPacket, payload: &[u8]) -> Option<Vec<u8>> {
        let ssrc = ssrc_of(p.track, p.layer)?;
        let index = self.next_index;
        if index >= 1 << 48 {
            return None;
        }
        self.next_index += 1;
        // From the datagram pool, which egress refills: no allocation per packet.
        let mut buf = pool::take(OVERHEAD + payload.len());
        buf.extend_from_slice(&self.link.to_be_bytes());
        buf.push(0x90);
        buf.push((u8::from(p.marker) << 7) | (p.pt & 0x7f));
        buf.extend_from_slice(&(p.seq as u16).to_be_bytes());
        buf.extend_from_slice(&(p.time as u32).to_be_bytes());
        buf.extend_from_slice(&ssrc.to_be_bytes());
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 7]);
        buf.push(0x17);
        buf.extend_from_slice(&index.to_be_bytes());
        buf.push(0x27);
        buf.extend_from_slice(&((p.seq >> 16) as u32).to_be_bytes());
        buf.extend_from_slice(&((p.time >> 32) as u32).to_be_bytes());
        match p.audio_level {
            Some(level) => buf.extend_from_slice(&[0x30, level]),
            None => buf.extend_from_slice(&[0, 0]),
        }
        buf.push(0x45);
        buf.extend_from_slice(&(p.capture_us & CAPTURE_MASK).to_be_bytes()[2..]);
        buf.push(0);
        debug_assert_eq!(buf.len(), LINK_ID_LEN + HEADER_LEN);
        // Sealed in place after the link id: the authenticated header is RTP's alone.
        self.sealer
            .seal_rtp_from(&mut buf, LINK_ID_LEN, payload, ssrc, index);
        Some(buf)
    }
}

/// The edge's end of a link: checks, opens and parses each datagram.
pub struct RelayOpener {
    link: u32,
    opener: Opener,
    window: ReplayWindow,
}

impl RelayOpener {
    /// An opener for `link` under `key`.
    pub fn new(link: u32, key: &RelayKey) -> Result<Self, SrtpError> {
        Ok(RelayOpener {
            link,
            opener: Opener::new(&keys::provider(), &key.keying())?,
            window: ReplayWindow::default(),
        })
    }

    /// The packet and its clear payload (`HEADER_LEN` bytes of header first, then payload).
    pub fn open(&mut self, datagram: &[u8]) -> Result<(RelayPacket, Vec<u8>), RelayDrop> {
        let link = link_of(datagram).ok_or(RelayDrop::Malformed)?;
        if link != self.link {
            return Err(RelayDrop::UnknownLink);
        }
        let d = &datagram[LINK_ID_LEN..];
        let ext_ok = d[0] == 0x90
            && d[12..16] == [0xBE, 0xDE, 0, 7]
            && d[16] == 0x17
            && d[25] == 0x27
            && (d[34] == 0x30 || d[34..36] == [0, 0])
            && d[36] == 0x45
            && d[43] == 0;
        if !ext_ok {
            return Err(RelayDrop::Malformed);
        }
        let be32 = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let mut index = [0u8; 8];
        index.copy_from_slice(&d[17..25]);
        let index = u64::from_be_bytes(index);
        if index >= 1 << 48 {
            return Err(RelayDrop::Malformed);
        }
        if !self.window.fresh(index) {
            return Err(RelayDrop::Replayed);
        }
        let clear = self
            .opener
            .open_rtp(d, HEADER_LEN, index)
            .map_err(|_| RelayDrop::Forged)?;
        self.window.mark(index);
        let (track, layer) = track_of(be32(8));
        let seq16 = u64::from(u16::from_be_bytes([d[2], d[3]]));
        let packet = RelayPacket {
            track,
            layer,
            pt: d[1] & 0x7f,
            marker: d[1] & 0x80 != 0,
            seq: (u64::from(be32(26)) << 16) | seq16,
            time: (u64::from(be32(30)) << 32) | u64::from(be32(4)),
            audio_level: (d[34] == 0x30).then_some(d[35]),
            capture_us: {
                let mut b = [0u8; 8];
                b[2..].copy_from_slice(&d[37..43]);
                u64::from_be_bytes(b)
            },
        };
        Ok((packet, clear))
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
