//! The nominated ICE pair, from authenticated binding requests that carry USE-CANDIDATE.
//!
//! str0m (ICE-lite) answers the browser's checks but does not say which pair the browser
//! nominated; the fast path must send where the browser listens. Like mediasoup, it takes
//! the pair from a binding request whose USERNAME names our ufrag, whose MESSAGE-INTEGRITY
//! verifies with our password and which carries USE-CANDIDATE; the latest such request wins.

use std::net::SocketAddr;
use str0m::net::Protocol;

const BINDING_REQUEST: u16 = 0x0001;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const HEADER_LEN: usize = 20;
const HMAC_LEN: usize = 20;

/// Where the fast path sends: the local address the request arrived on, and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// UDP, or an ICE-TCP connection.
    pub proto: Protocol,
    /// Our address (the request's destination).
    pub local: SocketAddr,
    /// The browser's address (the request's source).
    pub remote: SocketAddr,
}

/// Whether `msg` is a binding request for `ufrag` carrying USE-CANDIDATE whose integrity
/// verifies with `pass`. Anything malformed is simply not a nomination.
pub fn nominates(
    msg: &[u8],
    ufrag: &str,
    pass: &str,
    hmac: impl Fn(&[u8], &[&[u8]]) -> [u8; 20],
) -> bool {
    if msg.len() < HEADER_LEN || msg[0] & 0xC0 != 0 {
        return false;
    }
    let kind = u16::from_be_bytes([msg[0], msg[1]]);
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let cookie = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if kind != BINDING_REQUEST || cookie != MAGIC_COOKIE || HEADER_LEN + len > msg.len() {
        return false;
    }
    let mut at = HEADER_LEN;
    let end = HEADER_LEN + len;
    let mut user_ok = false;
    let mut use_candidate = false;
    while at + 4 <= end {
        let t = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let l = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let value = at + 4;
        if value + l > end {
            return false;
        }
        match t {
            ATTR_USERNAME => {
                // "<our ufrag>:<their ufrag>"
                let name = &msg[value..value + l];
                user_ok = name.len() > ufrag.len()
                    && name.starts_with(ufrag.as_bytes())
                    && name[ufrag.len()] == b':';
            }
            ATTR_USE_CANDIDATE => use_candidate = true,
            ATTR_MESSAGE_INTEGRITY => {
                if l != HMAC_LEN || !user_ok || !use_candidate {
                    return false;
                }
                // The HMAC covers the message up to this attribute, with the header's
                // length as if the message ended right after it (RFC 5389 §15.4).
                let covered = u16::try_from(value + l - HEADER_LEN).unwrap_or(u16::MAX);
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&msg[..HEADER_LEN]);
                header[2..4].copy_from_slice(&covered.to_be_bytes());
                let tag = hmac(pass.as_bytes(), &[&header, &msg[HEADER_LEN..at]]);
                return constant_time_eq(&tag, &msg[value..value + l]);
            }
            _ => {}
        }
        at = value + l.div_ceil(4) * 4;
    }
    false
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
        let p = crate::media::fast::keys::provider();
        p.sha1_hmac_provider.sha1_hmac(key, parts)
    }

    /// A binding request as a browser builds it.
    fn request(user: &str, use_candidate: bool, pass: &str) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0, 0];
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7u8; 12]);
        let attr = |m: &mut Vec<u8>, t: u16, v: &[u8]| {
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&(v.len() as u16).to_be_bytes());
            m.extend_from_slice(v);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        };
        attr(&mut m, ATTR_USERNAME, user.as_bytes());
        attr(&mut m, 0x0024, &[0, 0, 0, 1]); // PRIORITY
        if use_candidate {
            attr(&mut m, ATTR_USE_CANDIDATE, &[]);
        }
        let len = (m.len() - HEADER_LEN + 4 + HMAC_LEN) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        let tag = hmac(pass.as_bytes(), &[&m]);
        attr(&mut m, ATTR_MESSAGE_INTEGRITY, &tag);
        // FINGERPRINT follows MESSAGE-INTEGRITY in real requests.
        let len = (m.len() - HEADER_LEN + 8) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        attr(&mut m, 0x8028, &[1, 2, 3, 4]);
        m
    }

    #[test]
    fn an_authenticated_nomination_is_recognised() {
        let m = request("abcd:wxyz", true, "secretpass");
        assert!(nominates(&m, "abcd", "secretpass", hmac));
    }

    #[test]
    fn wrong_password_other_ufrag_or_no_use_candidate_is_not_a_nomination() {
        assert!(!nominates(
            &request("abcd:wxyz", true, "other"),
            "abcd",
            "secretpass",
            hmac
        ));
        assert!(!nominates(
            &request("abce:wxyz", true, "secretpass"),
            "abcd",
            "secretpass",
            hmac
        ));
        assert!(!nominates(
            &request("abcd:wxyz", false, "secretpass"),
            "abcd",
            "secretpass",
            hmac
        ));
    }

    #[test]
    fn truncated_or_garbage_input_is_refused_without_panicking() {
        let m = request("abcd:wxyz", true, "secretpass");
        for n in 0..m.len() {
            assert!(!nominates(&m[..n], "abcd", "secretpass", hmac));
        }
        let mut bad = m.clone();
        bad[2] = 0xff;
        assert!(!nominates(&bad, "abcd", "secretpass", hmac));
    }
}
