//! A burst's datagrams to one peer, sent as one UDP GSO message.
//!
//! A room sends, in one burst, every copy it forwarded in one poll: a video frame is several
//! packets (a keyframe tens), so a subscriber gets several datagrams of the same burst. The
//! kernel's per-datagram send (route lookup, socket buffer, queueing, checksum setup) is most
//! of a forwarded packet's cost (`confab-load ceiling`). With UDP generic segmentation
//! offload (`UDP_SEGMENT`, Linux 4.18) one message carries several datagrams to one
//! destination, all of one size but the last, which may be shorter; the kernel (or the
//! interface) cuts it into separate datagrams, so the network and the receiver see exactly
//! what separate sends would have given. Sizes fit that rule by construction: a packetizer
//! fills every packet of a frame but the last (libwebrtc splits a frame about equally, the
//! larger packets first), and audio, shorter, can close a run.
//!
//! [`Tables::plan`] groups a burst by destination (peers in the order they first appear, each
//! peer's own datagrams in their order: reordering between peers changes nothing any peer
//! sees), and [`Tables::build`] cuts each peer's run into messages by the size rule, at most
//! [`MAX_SEGMENTS`] and [`MAX_GSO_BYTES`] each. If the kernel refuses a GSO message (no
//! checksum offload on that interface, an old kernel), the sending thread stops using GSO
//! (each thread finds out for itself, at the cost of one refused call), it is said once in
//! the log, and the rest goes one datagram per message.

use rustc_hash::FxHashMap;
use socket2::SockAddr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use str0m::net::Transmit;

/// Most datagrams in one GSO message: the kernel's `UDP_MAX_SEGMENTS` (64 until Linux 6.?,
/// larger since; the smaller is safe everywhere).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO message: an IP packet's limit (65,535) less IPv4's and UDP's headers,
/// rounded down.
pub const MAX_GSO_BYTES: usize = 65_000;

static ON: AtomicBool = AtomicBool::new(true);
static REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// Whether bursts are sent with GSO (the `udp_gso` setting).
pub fn enabled() -> bool {
    cfg!(target_os = "linux") && ON.load(Ordering::Relaxed)
}

/// Sets whether GSO is used (the `udp_gso` setting).
pub fn set_enabled(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Space for one `UDP_SEGMENT` control message (a `u16`), 8-byte aligned as `cmsghdr` wants.
#[cfg(target_os = "linux")]
type Control = [u64; 3];
#[cfg(target_os = "linux")]
// SAFETY: CMSG_SPACE is arithmetic on its argument.
const CONTROL_LEN: usize = unsafe { libc::CMSG_SPACE(2) } as usize;
#[cfg(target_os = "linux")]
const _: () = assert!(CONTROL_LEN <= std::mem::size_of::<Control>());

/// The tables one burst's `sendmmsg(2)` points into, kept per thread between bursts. Each is
/// as long as the largest burst seen (the caller's chunks: at most `egress::MAX_BATCH`).
#[derive(Default)]
pub struct Tables {
    /// Peer (group) of each datagram of the burst.
    group: Vec<u32>,
    /// Per peer: its datagrams, then where its next one goes in `order`.
    slots: Vec<u32>,
    peers: FxHashMap<SocketAddr, u32>,
    /// The burst's indexes, grouped by peer.
    order: Vec<u32>,
    /// Per message: its destination, its first datagram's position in `order`, its datagrams.
    addrs: Vec<SockAddr>,
    firsts: Vec<u32>,
    /// Datagrams in each message.
    pub segments: Vec<u16>,
    #[cfg(target_os = "linux")]
    iovs: Vec<libc::iovec>,
    #[cfg(target_os = "linux")]
    controls: Vec<Control>,
    /// The messages, pointing into the tables above.
    #[cfg(target_os = "linux")]
    pub hdrs: Vec<libc::mmsghdr>,
    /// The kernel refused a GSO message from this thread: it sends one datagram per message.
    refused: bool,
}

impl Tables {
    /// Whether this thread sends with GSO.
    pub fn gso(&self) -> bool {
        enabled() && !self.refused
    }

    /// The kernel refused a GSO message with `e`: this thread stops using GSO (said once).
    pub fn refuse(&mut self, e: &std::io::Error) {
        self.refused = true;
        if !REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "UDP GSO refused by the kernel; sending one datagram per message");
        }
    }

    /// Orders `burst` by peer when `gso` (as it is otherwise). O(n): one hash per datagram.
    pub fn plan(&mut self, burst: &[Transmit], gso: bool) {
        let n = burst.len();
        self.order.clear();
        self.group.clear();
        if !gso {
            // `group` is read only by `run`, which only GSO calls.
            self.order.extend(0..n as u32);
            return;
        }
        self.peers.clear();
        self.slots.clear();
        for t in burst {
            let next = self.slots.len() as u32;
            let g = *self.peers.entry(t.destination).or_insert(next);
            if g == next {
                self.slots.push(0);
            }
            self.slots[g as usize] += 1;
            self.group.push(g);
        }
        if self.slots.len() == n {
            // Every datagram to another peer (audio, small rooms): nothing to group.
            self.order.extend(0..n as u32);
            return;
        }
        let mut at = 0;
        for s in &mut self.slots {
            let count = *s;
            *s = at;
            at += count;
        }
        self.order.resize(n, 0);
        for (i, g) in self.group.iter().enumerate() {
            let slot = &mut self.slots[*g as usize];
            self.order[*slot as usize] = i as u32;
            *slot += 1;
        }
    }

    /// Messages for the datagrams of `burst` from position `from` of the plan on: with `gso`,
    /// each peer's run cut by the size rule; without, one datagram each.
    #[cfg(target_os = "linux")]
    pub fn build(&mut self, burst: &[Transmit], from: usize, gso: bool) {
        self.addrs.clear();
        self.firsts.clear();
        self.segments.clear();
        self.iovs.clear();
        self.controls.clear();
        self.hdrs.clear();
        let order = &self.order[from..];
        self.iovs.extend(order.iter().map(|&i| {
            let t = &burst[i as usize];
            libc::iovec {
                iov_base: t.contents.as_ptr() as *mut _,
                iov_len: t.contents.len(),
            }
        }));
        let mut p = 0;
        while p < order.len() {
            let first = order[p] as usize;
            let size = burst[first].contents.len();
            // The segment size travels as a u16 (`UDP_SEGMENT`).
            let k = match gso && size > 0 && size <= usize::from(u16::MAX) {
                true => self.run(burst, &order[p..], size),
                false => 1,
            };
            self.addrs.push(SockAddr::from(burst[first].destination));
            self.firsts.push((from + p) as u32);
            self.segments.push(k as u16);
            self.controls.push([0; 3]);
            p += k;
        }
        // All tables are full: no pointer taken below can move.
        let mut iov = 0;
        for m in 0..self.addrs.len() {
            let k = usize::from(self.segments[m]);
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid (empty) value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = self.addrs[m].as_ptr() as *mut _;
            h.msg_hdr.msg_namelen = self.addrs[m].len();
            h.msg_hdr.msg_iov = self.iovs[iov..].as_mut_ptr();
            h.msg_hdr.msg_iovlen = k as _;
            if k > 1 {
                let size = self.iovs[iov].iov_len as u16;
                h.msg_hdr.msg_control = self.controls[m].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = CONTROL_LEN as _;
                // SAFETY: the control buffer is CONTROL_LEN bytes, 8-byte aligned and owned
                // by `controls`, which is not resized again before the send; CMSG_FIRSTHDR of
                // a header with that buffer is its start, and CMSG_DATA lies within it.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
                }
            }
            self.hdrs.push(h);
            iov += k;
        }
    }

    /// How many datagrams from the start of `order` (the rest of the plan) go in one message
    /// led by one of `size` bytes: the same peer's next ones while they have that size, and
    /// one shorter to close it; within the kernel's limits.
    fn run(&self, burst: &[Transmit], order: &[u32], size: usize) -> usize {
        let peer = self.group[order[0] as usize];
        let (mut k, mut bytes) = (1, size);
        while let Some(&i) = order.get(k) {
            let len = burst[i as usize].contents.len();
            let fits = k < MAX_SEGMENTS && bytes + len <= MAX_GSO_BYTES;
            if self.group[i as usize] != peer || len > size || len == 0 || !fits {
                break;
            }
            k += 1;
            bytes += len;
            if len < size {
                break;
            }
        }
        k
    }

    /// Position in the plan of message `m`'s first datagram.
    pub fn first_of(&self, m: usize) -> usize {
        self.firsts[m] as usize
    }

    /// The plan's order: the burst's indexes as they are sent.
    pub fn order(&self) -> &[u32] {
        &self.order
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use str0m::net::Protocol;

    fn t(to: u16, len: usize, tag: u8) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "127.0.0.1:1".parse().expect("addr"),
            destination: SocketAddr::from(([127, 0, 0, 1], to)),
            contents: vec![tag; len].into(),
        }
    }

    /// (destination port, datagrams) of each message.
    fn messages(burst: &[Transmit], gso: bool) -> Vec<(u16, Vec<u8>)> {
        let mut tables = Tables::default();
        tables.plan(burst, gso);
        tables.build(burst, 0, gso);
        let mut out = vec![];
        for m in 0..tables.segments.len() {
            let first = tables.first_of(m);
            let k = usize::from(tables.segments[m]);
            let tags = tables.order()[first..first + k]
                .iter()
                .map(|&i| burst[i as usize].contents[0])
                .collect();
            out.push((
                burst[tables.order()[first] as usize].destination.port(),
                tags,
            ));
        }
        out
    }

    #[test]
    fn a_peers_frame_is_one_message_and_peers_keep_their_order() {
        // Two packets of a frame fanned out to three peers (packet-major, as a fan-out makes
        // them), then an audio packet to the first.
        let burst = [
            t(1, 1100, 0),
            t(2, 1100, 1),
            t(3, 1100, 2),
            t(1, 400, 3),
            t(2, 400, 4),
            t(3, 400, 5),
            t(1, 90, 6),
        ];
        assert_eq!(
            messages(&burst, true),
            [
                (1, vec![0, 3]),
                (1, vec![6]),
                (2, vec![1, 4]),
                (3, vec![2, 5])
            ]
        );
        // Off: as given, one each.
        let off: Vec<_> = messages(&burst, false).into_iter().map(|m| m.1).collect();
        assert_eq!(off, (0..7).map(|i| vec![i]).collect::<Vec<_>>());
    }

    #[test]
    fn the_size_rule_and_the_limits_cut_runs() {
        // Equal sizes then a shorter one closes the run; a longer one starts the next.
        let burst = [
            t(1, 500, 0),
            t(1, 500, 1),
            t(1, 499, 2),
            t(1, 500, 3),
            t(1, 501, 4),
        ];
        let got: Vec<_> = messages(&burst, true).into_iter().map(|m| m.1).collect();
        assert_eq!(got, [vec![0, 1, 2], vec![3], vec![4]]);
        // At most MAX_SEGMENTS per message.
        let many: Vec<_> = (0..MAX_SEGMENTS + 3).map(|i| t(9, 100, i as u8)).collect();
        let sizes: Vec<_> = messages(&many, true).iter().map(|m| m.1.len()).collect();
        assert_eq!(sizes, [MAX_SEGMENTS, 3]);
        // At most MAX_GSO_BYTES per message.
        let big: Vec<_> = (0..60).map(|i| t(9, 1400, i as u8)).collect();
        let sizes: Vec<_> = messages(&big, true).iter().map(|m| m.1.len()).collect();
        assert_eq!(sizes, [MAX_GSO_BYTES / 1400, 60 - MAX_GSO_BYTES / 1400]);
    }
}
