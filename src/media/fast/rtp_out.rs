//! The RTP header a subscriber receives: its SSRC, payload type and numbers, and the
//! header extensions its m-line negotiated (mid, transport-wide sequence, abs-send-time).

use std::time::Duration;
use str0m::rtp::{Extension, ExtensionMap};

/// The negotiated ids of the extensions the fast path writes (one-byte form, 1..=14).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtIds {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid`
    pub mid: Option<u8>,
    /// transport-wide congestion control sequence number
    pub twcc: Option<u8>,
    /// abs-send-time
    pub abs_send_time: Option<u8>,
}

impl ExtIds {
    /// The ids an m-line's agreed extension map gives (ids past the one-byte form's 14 are
    /// left out rather than switching to the two-byte form).
    pub fn from_map(map: &ExtensionMap) -> Self {
        let one_byte = |e: Extension| map.id_of(e).filter(|id| (1..=14).contains(id));
        ExtIds {
            mid: one_byte(Extension::RtpMid),
            twcc: one_byte(Extension::TransportSequenceNumber),
            abs_send_time: one_byte(Extension::AbsoluteSendTime),
        }
    }
}

/// What one outgoing packet's header says.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Payload type of the subscriber's m-line.
    pub pt: u8,
    /// Marker bit, as the publisher set it.
    pub marker: bool,
    /// Sequence number on the wire (the low 16 bits of the 64-bit one).
    pub seq: u16,
    /// RTP timestamp on the wire.
    pub timestamp: u32,
    /// The subscriber's send stream.
    pub ssrc: u32,
    /// The m-line's mid as text (written when negotiated).
    pub mid: &'a [u8],
    /// This transport's next transport-wide sequence number.
    pub twcc_seq: u16,
    /// Time since the sender's epoch, for abs-send-time.
    pub since_epoch: Duration,
}

/// abs-send-time: seconds in 6.18 fixed point, 24 bits (in 64-bit arithmetic: a 128-bit
/// division per copy showed in the profile).
fn abs_send_time(t: Duration) -> [u8; 3] {
    let frac = (u64::from(t.subsec_nanos()) << 18) / 1_000_000_000;
    let v = ((t.as_secs() << 18) | frac) as u32 & 0x00FF_FFFF;
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Longest header written: 12 fixed bytes, the extension block's 4, mid (1 + 16), transport
/// sequence (1 + 2), abs-send-time (1 + 3), padded to a word.
const MAX_HEADER: usize = 12 + 4 + 17 + 3 + 4 + 4;

/// Writes the header, extensions included, at the end of `out`; returns its length.
pub fn write(out: &mut Vec<u8>, h: &Header, ids: &ExtIds) -> usize {
    let (b, n, _) = lay_out(h, ids);
    out.extend_from_slice(&b[..n]);
    n
}

/// Where the per-packet extension values sit in a laid-out header (0: not negotiated; the
/// fixed header takes the first 12 bytes, so 0 is never a value's place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Places {
    twcc: u8,
    abs_send_time: u8,
}

/// The header built on the stack (byte-wise pushes each check the capacity), its length and
/// where its per-packet extension values are.
fn lay_out(h: &Header, ids: &ExtIds) -> ([u8; MAX_HEADER], usize, Places) {
    let mut b = [0u8; MAX_HEADER];
    let mut places = Places::default();
    let has_ext = ids.mid.is_some() || ids.twcc.is_some() || ids.abs_send_time.is_some();
    b[0] = 0x80 | if has_ext { 0x10 } else { 0 };
    b[1] = h.pt & 0x7F | if h.marker { 0x80 } else { 0 };
    b[2..4].copy_from_slice(&h.seq.to_be_bytes());
    b[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    b[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    let mut n = 12;
    if has_ext {
        b[12..14].copy_from_slice(&[0xBE, 0xDE]);
        n = 16;
        if let Some(id) = ids.mid {
            let mid = &h.mid[..h.mid.len().min(16)];
            if !mid.is_empty() {
                b[n] = id << 4 | (mid.len() as u8 - 1);
                b[n + 1..n + 1 + mid.len()].copy_from_slice(mid);
                n += 1 + mid.len();
            }
        }
        if let Some(id) = ids.twcc {
            b[n] = id << 4 | 1;
            places.twcc = (n + 1) as u8;
            b[n + 1..n + 3].copy_from_slice(&h.twcc_seq.to_be_bytes());
            n += 3;
        }
        if let Some(id) = ids.abs_send_time {
            b[n] = id << 4 | 2;
            places.abs_send_time = (n + 1) as u8;
            b[n + 1..n + 4].copy_from_slice(&abs_send_time(h.since_epoch));
            n += 4;
        }
        // Zero padding to a whole word (the array starts zeroed).
        n = 16 + (n - 16).div_ceil(4) * 4;
        let words = ((n - 16) / 4) as u16;
        b[14..16].copy_from_slice(&words.to_be_bytes());
    }
    (b, n, places)
}

/// One stream's header with what never changes between its packets (version, SSRC, the
/// extension block, its mid) laid out once: a copy patches its payload type, marker, numbers
/// and extension values in place of [`write()`]'s byte-by-byte layout (~150 instructions per
/// forwarded copy, callgrind at 1 → 300). Same bytes as [`write()`] (tested).
#[derive(Debug, Clone, Copy)]
pub struct Template {
    bytes: [u8; MAX_HEADER],
    len: u8,
    places: Places,
}

impl Template {
    /// The template of the stream `ssrc` on an m-line `mid` that negotiated `ids`.
    pub fn new(ssrc: u32, mid: &[u8], ids: &ExtIds) -> Template {
        let h = Header {
            pt: 0,
            marker: false,
            seq: 0,
            timestamp: 0,
            ssrc,
            mid,
            twcc_seq: 0,
            since_epoch: Duration::ZERO,
        };
        let (bytes, len, places) = lay_out(&h, ids);
        Template {
            bytes,
            len: len as u8,
            places,
        }
    }

    /// Writes one packet's header at the end of `out` (`h.ssrc` and `h.mid` are the
    /// template's); returns its length.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>, h: &Header) -> usize {
        let mut b = self.bytes;
        b[1] = h.pt & 0x7F | if h.marker { 0x80 } else { 0 };
        b[2..4].copy_from_slice(&h.seq.to_be_bytes());
        b[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
        let t = usize::from(self.places.twcc);
        if t != 0 {
            b[t..t + 2].copy_from_slice(&h.twcc_seq.to_be_bytes());
        }
        let a = usize::from(self.places.abs_send_time);
        if a != 0 {
            b[a..a + 3].copy_from_slice(&abs_send_time(h.since_epoch));
        }
        let n = usize::from(self.len);
        out.extend_from_slice(&b[..n]);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_extensions_are_laid_out_as_rfc_3550_and_8285_say() {
        let mut map = ExtensionMap::empty();
        map.set(3, Extension::TransportSequenceNumber);
        map.set(4, Extension::RtpMid);
        map.set(2, Extension::AbsoluteSendTime);
        let ids = ExtIds::from_map(&map);
        let h = Header {
            pt: 96,
            marker: true,
            seq: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            mid: b"1",
            twcc_seq: 4242,
            since_epoch: Duration::from_millis(1500),
        };
        let mut out = vec![];
        let n = write(&mut out, &h, &ids);
        assert_eq!(n, out.len());
        assert_eq!(
            &out[..12],
            &[
                0x90,
                0x80 | 96,
                0xff,
                0xff,
                0xde,
                0xad,
                0xbe,
                0xef,
                0x12,
                0x34,
                0x56,
                0x78
            ]
        );
        // One-byte extension block: mid "1", twcc 4242, abs-send-time 1.5 s, padded.
        let ast = (1.5f64 * f64::from(1 << 18)) as u32;
        let mut ext = vec![0x40, b'1', 0x31, 0x10, 0x92, 0x22];
        ext.extend_from_slice(&ast.to_be_bytes()[1..]);
        ext.resize(12, 0);
        assert_eq!(&out[12..16], &[0xBE, 0xDE, 0, 3]);
        assert_eq!(&out[16..], &ext[..]);
    }

    #[test]
    fn without_negotiated_extensions_the_header_is_twelve_bytes() {
        let mut out = vec![];
        let h = Header {
            pt: 111,
            marker: false,
            seq: 1,
            timestamp: 2,
            ssrc: 3,
            mid: b"0",
            twcc_seq: 0,
            since_epoch: Duration::ZERO,
        };
        assert_eq!(write(&mut out, &h, &ExtIds::default()), 12);
        assert_eq!(out[0], 0x80);
    }

    #[test]
    fn a_template_writes_the_bytes_write_does() {
        let mut seed = 0x9e37_79b9_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2_000 {
            let r = next();
            let id = |bit: u64, v: u8| (r >> bit & 1 == 1).then_some(v);
            let ids = ExtIds {
                mid: id(0, 1 + (r >> 8) as u8 % 14),
                twcc: id(1, 1 + (r >> 16) as u8 % 14),
                abs_send_time: id(2, 1 + (r >> 24) as u8 % 14),
            };
            let mid_text = b"0123456789abcdefXYZ";
            let mid = &mid_text[..(r >> 32) as usize % 20];
            let ssrc = next() as u32;
            let t = Template::new(ssrc, mid, &ids);
            let v = next();
            let h = Header {
                pt: v as u8,
                marker: v >> 8 & 1 == 1,
                seq: (v >> 9) as u16,
                timestamp: (v >> 25) as u32,
                ssrc,
                mid,
                twcc_seq: (v >> 40) as u16,
                since_epoch: Duration::from_nanos(next() >> 20),
            };
            let (mut a, mut b) = (vec![7u8], vec![7u8]);
            assert_eq!(
                write(&mut a, &h, &ids),
                t.write(&mut b, &h),
                "round {round}"
            );
            assert_eq!(a, b, "round {round}: {ids:?}, mid {mid:?}");
        }
    }
}
