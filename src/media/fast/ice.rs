//! The nominated ICE pair, from authenticated binding requests that carry USE-CANDIDATE.
//!
//! str0m (ICE-lite) answers the browser's checks but does not say which pair it sends on;
//! the fast path must send where the browser listens. It takes the pair from a binding
//! request whose USERNAME names our ufrag, whose MESSAGE-INTEGRITY verifies with our password
//! and which carries USE-CANDIDATE. A browser may nominate several pairs (Firefox nominates
//! its UDP pair and then its TCP ones): of those still checked within 15 s, the pair with the
//! highest pair priority (RFC 8445 §6.1.2.3, from the request's PRIORITY and our candidate's)
//! is the one it uses, and the one str0m's ICE-lite agent picks; the latest checked wins
//! among equals. An ICE restart brings new credentials: the pair in use stays until one is
//! nominated under them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::net::Protocol;
use str0m::IceCreds;

const BINDING_REQUEST: u16 = 0x0001;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_PRIORITY: u16 = 0x0024;
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

/// How long a nominated pair stays a candidate for sending without an authenticated binding
/// request on it: str0m's ICE-lite agent drops such a pair after 15 s, and so does this, so
/// both send on the same one. Browsers check consent every 4–6 s (RFC 7675 §5.1).
const ALIVE: Duration = Duration::from_secs(15);

/// Nominated pairs remembered (a browser nominates one per protocol and address it has;
/// more only from a peer playing games, whose oldest are forgotten).
const MAX_NOMINATED: usize = 8;

/// Which pair the fast path sends on, and what decides it: the pairs the browser nominated
/// and when each was last checked.
pub struct Nomination {
    creds: IceCreds,
    /// Each local candidate's protocol, address and priority, as offered in our SDP.
    local: Vec<(Protocol, SocketAddr, u32)>,
    /// (pair, its pair priority, last authenticated binding request on it).
    nominated: Vec<(Pair, u64, Instant)>,
}

impl Nomination {
    /// For a peer with our ICE credentials `creds` and local candidates `local`.
    pub fn new(creds: IceCreds, local: Vec<(Protocol, SocketAddr, u32)>) -> Self {
        Nomination {
            creds,
            local,
            nominated: Vec::new(),
        }
    }

    /// A STUN datagram from the peer: the pair to send on from now (the best nominated pair
    /// still checked), or `None` when the datagram is no authenticated binding request or
    /// nothing is nominated yet under the current credentials.
    pub fn on_stun(
        &mut self,
        msg: &[u8],
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        now: Instant,
        hmac: impl Fn(&[u8], &[&[u8]]) -> [u8; 20],
    ) -> Option<Pair> {
        let check = check(msg, &self.creds.ufrag, &self.creds.pass, hmac)?;
        let pair = Pair {
            proto,
            local: destination,
            remote: source,
        };
        match self.nominated.iter_mut().find(|n| n.0 == pair) {
            Some(n) => n.2 = now,
            None if check.use_candidate => {
                if self.nominated.len() >= MAX_NOMINATED {
                    if let Some(i) = (0..self.nominated.len()).min_by_key(|&i| self.nominated[i].2)
                    {
                        self.nominated.swap_remove(i);
                    }
                }
                // A destination that is none of our candidates ranks lowest.
                let local = self
                    .local
                    .iter()
                    .find(|(p, a, _)| *p == proto && *a == destination)
                    .map_or(0, |c| c.2);
                let priority = pair_priority(check.priority, local);
                self.nominated.push((pair, priority, now));
            }
            None => {}
        }
        self.nominated
            .retain(|n| now.saturating_duration_since(n.2) < ALIVE);
        // The latest checked among equals.
        let best = self.nominated.iter().max_by_key(|n| (n.1, n.2))?;
        Some(best.0)
    }

    /// An ICE restart: our new credentials. The pair in use stays until the browser
    /// nominates one under them.
    pub fn restart(&mut self, creds: IceCreds) {
        if creds.ufrag != self.creds.ufrag {
            self.creds = creds;
            self.nominated.clear();
        }
    }
}

/// A pair's priority as the controlled agent computes it (RFC 8445 §6.1.2.3): G is the
/// controlling agent's candidate priority (the browser's, from its PRIORITY attribute), D
/// ours.
pub fn pair_priority(remote: u32, local: u32) -> u64 {
    let (g, d) = (u64::from(remote), u64::from(local));
    (g.min(d) << 32) + 2 * g.max(d) + u64::from(g > d)
}

/// What an authenticated binding request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Its PRIORITY (0 when it has none).
    pub priority: u32,
    /// Whether it carries USE-CANDIDATE.
    pub use_candidate: bool,
}

/// `msg` when it is a binding request for `ufrag` whose integrity verifies with `pass`.
/// Anything malformed is simply not a check.
pub fn check(
    msg: &[u8],
    ufrag: &str,
    pass: &str,
    hmac: impl Fn(&[u8], &[&[u8]]) -> [u8; 20],
) -> Option<Check> {
    if msg.len() < HEADER_LEN || msg[0] & 0xC0 != 0 {
        return None;
    }
    let kind = u16::from_be_bytes([msg[0], msg[1]]);
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let cookie = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if kind != BINDING_REQUEST || cookie != MAGIC_COOKIE || HEADER_LEN + len > msg.len() {
        return None;
    }
    let mut at = HEADER_LEN;
    let end = HEADER_LEN + len;
    let mut user_ok = false;
    let mut use_candidate = false;
    let mut priority = 0;
    while at + 4 <= end {
        let t = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let l = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let value = at + 4;
        if value + l > end {
            return None;
        }
        match t {
            ATTR_USERNAME => {
                // "<our ufrag>:<their ufrag>"
                let name = &msg[value..value + l];
                user_ok = name.len() > ufrag.len()
                    && name.starts_with(ufrag.as_bytes())
                    && name[ufrag.len()] == b':';
            }
            ATTR_PRIORITY if l == 4 => {
                priority = u32::from_be_bytes([
                    msg[value],
                    msg[value + 1],
                    msg[value + 2],
                    msg[value + 3],
                ]);
            }
            ATTR_USE_CANDIDATE => use_candidate = true,
            ATTR_MESSAGE_INTEGRITY => {
                if l != HMAC_LEN || !user_ok {
                    return None;
                }
                // The HMAC covers the message up to this attribute, with the header's
                // length as if the message ended right after it (RFC 5389 §15.4).
                let covered = u16::try_from(value + l - HEADER_LEN).unwrap_or(u16::MAX);
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&msg[..HEADER_LEN]);
                header[2..4].copy_from_slice(&covered.to_be_bytes());
                let tag = hmac(pass.as_bytes(), &[&header, &msg[HEADER_LEN..at]]);
                let ok = constant_time_eq(&tag, &msg[value..value + l]);
                return ok.then_some(Check {
                    priority,
                    use_candidate,
                });
            }
            _ => {}
        }
        at = value + l.div_ceil(4) * 4;
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nominates(
        msg: &[u8],
        ufrag: &str,
        pass: &str,
        hmac: impl Fn(&[u8], &[&[u8]]) -> [u8; 20],
    ) -> Option<u32> {
        let c = check(msg, ufrag, pass, hmac)?;
        c.use_candidate.then_some(c.priority)
    }

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
        let p = crate::media::fast::keys::provider();
        p.sha1_hmac_provider.sha1_hmac(key, parts)
    }

    /// A binding request as a browser builds it.
    fn request(user: &str, use_candidate: bool, pass: &str) -> Vec<u8> {
        request_at(user, use_candidate, pass, 1)
    }

    fn request_at(user: &str, use_candidate: bool, pass: &str, priority: u32) -> Vec<u8> {
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
        attr(&mut m, ATTR_PRIORITY, &priority.to_be_bytes());
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
    fn an_authenticated_nomination_is_recognised_with_its_priority() {
        let m = request_at("abcd:wxyz", true, "secretpass", FOX_UDP);
        assert_eq!(nominates(&m, "abcd", "secretpass", hmac), Some(FOX_UDP));
    }

    #[test]
    fn wrong_password_other_ufrag_or_no_use_candidate_is_not_a_nomination() {
        for (user, use_candidate, pass) in [
            ("abcd:wxyz", true, "other"),
            ("abce:wxyz", true, "secretpass"),
            ("abcd:wxyz", false, "secretpass"),
        ] {
            let m = request(user, use_candidate, pass);
            assert_eq!(nominates(&m, "abcd", "secretpass", hmac), None, "{user}");
        }
    }

    #[test]
    fn truncated_or_garbage_input_is_refused_without_panicking() {
        let m = request("abcd:wxyz", true, "secretpass");
        for n in 0..m.len() {
            assert_eq!(nominates(&m[..n], "abcd", "secretpass", hmac), None);
        }
        let mut bad = m.clone();
        bad[2] = 0xff;
        assert_eq!(nominates(&bad, "abcd", "secretpass", hmac), None);
    }

    #[test]
    fn the_pair_priority_is_rfc_8445s() {
        // 2^32·min(G, D) + 2·max(G, D) + (G > D), G the controlling side's.
        assert_eq!(pair_priority(3, 5), (3 << 32) + 10);
        assert_eq!(pair_priority(5, 3), (3 << 32) + 10 + 1);
        assert!(pair_priority(100, 90) > pair_priority(100, 80));
    }

    fn creds(ufrag: &str) -> IceCreds {
        IceCreds {
            ufrag: ufrag.into(),
            pass: "secretpass".into(),
        }
    }

    /// What the server offers: a UDP and a passive TCP candidate on one address, as
    /// `webrtc.rs` builds them.
    fn local() -> (SocketAddr, SocketAddr, Vec<(Protocol, SocketAddr, u32)>) {
        let udp: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        let tcp: SocketAddr = "127.0.0.1:4001".parse().expect("address");
        let prio = |c: str0m::Candidate| c.prio();
        let u = prio(str0m::Candidate::host(udp, "udp").expect("udp candidate"));
        let t = prio(
            str0m::Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(str0m::net::TcpType::Passive)
                .build()
                .expect("tcp candidate"),
        );
        assert!(u > t, "UDP ranks above TCP: {u} vs {t}");
        (
            udp,
            tcp,
            vec![(Protocol::Udp, udp, u), (Protocol::Tcp, tcp, t)],
        )
    }

    /// What a browser's PRIORITY says of its UDP and TCP host candidates (RFC 8445 §5.1.2.1 as
    /// peer-reflexive, type preference 110 for UDP and less for TCP, as Firefox ranks them).
    const FOX_UDP: u32 = (110 << 24) | (65_535 << 8) | 255;
    const FOX_TCP: u32 = (109 << 24) | (65_535 << 8) | 255;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_tcp_nomination_after_the_udp_one_does_not_take_the_pair() {
        // What failed the Firefox stage scenario under load: Firefox nominated its UDP pair,
        // then its TCP pairs; the latest won, and media went where Firefox was not reading.
        let (udp, tcp, local) = local();
        let (browser_udp, browser_tcp) = (addr(50000), addr(50001));
        let t0 = Instant::now();
        let m = |p| request_at("abcd:wxyz", true, "secretpass", p);
        let mut n = Nomination::new(creds("abcd"), local.clone());
        let first = n.on_stun(&m(FOX_UDP), Protocol::Udp, browser_udp, udp, t0, hmac);
        assert_eq!(first.map(|p| p.remote), Some(browser_udp));
        let then = n.on_stun(&m(FOX_TCP), Protocol::Tcp, browser_tcp, tcp, t0, hmac);
        assert_eq!(
            then.map(|p| p.proto),
            Some(Protocol::Udp),
            "a lower pair does not take over"
        );
        // In the other order UDP takes over.
        let mut n = Nomination::new(creds("abcd"), local);
        let first = n.on_stun(&m(FOX_TCP), Protocol::Tcp, browser_tcp, tcp, t0, hmac);
        assert_eq!(first.map(|p| p.proto), Some(Protocol::Tcp));
        let later = n.on_stun(&m(FOX_UDP), Protocol::Udp, browser_udp, udp, t0, hmac);
        assert_eq!(later.map(|p| p.proto), Some(Protocol::Udp));
    }

    #[test]
    fn a_pair_no_longer_checked_gives_way_after_15_s_as_in_str0m() {
        // UDP stops getting through; the browser goes on checking its TCP pair.
        let (udp, tcp, local) = local();
        let (browser_udp, browser_tcp) = (addr(50000), addr(50001));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let nominate = |p| request_at("abcd:wxyz", true, "secretpass", p);
        let consent = request_at("abcd:wxyz", false, "secretpass", FOX_TCP);
        // The browser nominates UDP, then TCP a second later.
        let nominated = || {
            let mut n = Nomination::new(creds("abcd"), local.clone());
            let udp_n = nominate(FOX_UDP);
            n.on_stun(&udp_n, Protocol::Udp, browser_udp, udp, t0, hmac);
            let tcp_n = nominate(FOX_TCP);
            n.on_stun(&tcp_n, Protocol::Tcp, browser_tcp, tcp, at(1), hmac);
            n
        };
        let on = |n: &mut Nomination, s| {
            n.on_stun(&consent, Protocol::Tcp, browser_tcp, tcp, at(s), hmac)
                .map(|p| p.proto)
        };
        let mut n = nominated();
        assert_eq!(on(&mut n, 6), Some(Protocol::Udp));
        assert_eq!(on(&mut n, 14), Some(Protocol::Udp));
        assert_eq!(
            on(&mut n, 16),
            Some(Protocol::Tcp),
            "15 s without a check on UDP"
        );
        // A check on the UDP pair in time keeps it.
        let mut n = nominated();
        let udp_consent = request_at("abcd:wxyz", false, "secretpass", FOX_UDP);
        n.on_stun(&udp_consent, Protocol::Udp, browser_udp, udp, at(10), hmac);
        assert_eq!(on(&mut n, 16), Some(Protocol::Udp));
        // A check alone nominates nothing.
        let mut n = Nomination::new(creds("abcd"), local);
        assert_eq!(on(&mut n, 0), None);
    }

    #[test]
    fn after_an_ice_restart_only_the_new_credentials_nominate_and_the_first_wins() {
        let (udp, tcp, local) = local();
        let (before, after) = (addr(50000), addr(50002));
        let t0 = Instant::now();
        let mut n = Nomination::new(creds("abcd"), local);
        let old = request_at("abcd:wxyz", true, "secretpass", FOX_UDP);
        assert!(n
            .on_stun(&old, Protocol::Udp, before, udp, t0, hmac)
            .is_some());
        n.restart(creds("efgh"));
        assert_eq!(
            n.on_stun(&old, Protocol::Udp, before, udp, t0, hmac),
            None,
            "the old credentials no longer check"
        );
        // The network changed: only TCP gets through now, a lower pair than the old one.
        let new = request_at("efgh:wxyz", true, "secretpass", FOX_TCP);
        let pair = n.on_stun(&new, Protocol::Tcp, after, tcp, t0, hmac);
        assert_eq!(
            pair.map(|p| (p.proto, p.remote)),
            Some((Protocol::Tcp, after))
        );
    }
}
