//! The one UDP port: receive, route each datagram to its room without a linear scan, send.
//!
//! STUN binding requests carry `USERNAME = <our ufrag>:<their ufrag>`; the first one from a new
//! address maps that address to the participant owning the ufrag. Everything after (DTLS, SRTP)
//! is routed by source address in one hash lookup. Unknown traffic is counted and dropped.
//!
//! Receiving takes what is queued in one `recvmmsg(2)` ([`super::recv_batch`]).
//! Sending is batched: a fan-out produces one datagram per subscriber, all at once, so a room
//! hands its whole burst to [`send_batch`], which on Linux makes one `sendmmsg(2)` call per
//! [`MAX_BATCH`] datagrams instead of one `sendto(2)` each. It calls libc directly on the
//! tokio socket's fd: `quinn-udp` batches only GSO segments to *one* destination, which a
//! fan-out (every datagram to another peer) cannot use.

use super::metrics::Metrics;
use super::recv_batch::{RecvBatch, RECV_BATCH};
use super::room_task::RoomMsg;
use crate::protocol::ParticipantId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Most datagrams handed to the kernel in one call.
pub const MAX_BATCH: usize = 64;

/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`): a keyframe
/// fanned out to hundreds of peers is a burst of megabytes.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// What one [`send_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams the kernel took.
    pub datagrams: usize,
    /// System calls that took some (datagrams / calls is the batching achieved).
    pub calls: usize,
}

/// Sends every datagram of `batch` from `socket`. A full socket buffer drops the rest, as the
/// network would; RTX repairs it.
pub fn send_batch(socket: &UdpSocket, batch: &[Transmit]) -> Sent {
    let mut sent = Sent::default();
    let mut rest = batch;
    while !rest.is_empty() {
        match socket.try_io(tokio::io::Interest::WRITABLE, || send_some(socket, rest)) {
            Ok(n) => {
                sent.datagrams += n;
                sent.calls += 1;
                rest = &rest[n.max(1).min(rest.len())..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // One bad destination (unreachable, refused) must not stop the others.
            Err(_) => rest = &rest[1..],
        }
    }
    sent
}

/// One `sendmmsg(2)` of up to [`MAX_BATCH`] datagrams; how many were sent (at least one).
#[cfg(target_os = "linux")]
fn send_some(socket: &UdpSocket, batch: &[Transmit]) -> std::io::Result<usize> {
    use socket2::SockAddr;
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    if batch.len() == 1 {
        // Nothing to batch (small rooms): a plain sendto, without the tables below.
        let t = &batch[0];
        return socket.try_send_to(&t.contents, t.destination).map(|_| 1);
    }
    let n = batch.len().min(MAX_BATCH);
    // Only the first `n` entries are written and read: initialising all of them would cost
    // ~13 KiB of stores per call, more than a small batch saves.
    let mut addrs = [const { MaybeUninit::<SockAddr>::uninit() }; MAX_BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_BATCH];
    let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; MAX_BATCH];
    for (i, t) in batch[..n].iter().enumerate() {
        let addr = addrs[i].write(SockAddr::from(t.destination));
        let iov = iovs[i].write(libc::iovec {
            iov_base: t.contents.as_ptr() as *mut _,
            iov_len: t.contents.len(),
        });
        // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid (empty) value.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = addr.as_ptr() as *mut _;
        h.msg_hdr.msg_namelen = addr.len();
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        hdrs[i].write(h);
    }
    // SAFETY: the first `n` headers are initialised and point into `addrs`, `iovs` and the
    // transmits' bytes, all alive and unmoved until the call returns; the kernel reads them
    // and writes only `msg_len` of those `n` headers.
    let r = unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr().cast(), n as _, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as usize)
}

#[cfg(not(target_os = "linux"))]
fn send_some(socket: &UdpSocket, batch: &[Transmit]) -> std::io::Result<usize> {
    let t = &batch[0];
    socket.try_send_to(&t.contents, t.destination).map(|_| 1)
}

/// Changes to the routing table, sent by room tasks.
#[derive(Debug)]
pub enum DemuxCmd {
    /// STUN for this ufrag goes to this participant's room.
    Route {
        /// Local ICE ufrag of the participant.
        ufrag: String,
        /// The participant.
        id: ParticipantId,
        /// Its room.
        room: mpsc::Sender<RoomMsg>,
    },
    /// The participant is gone.
    Forget {
        /// The participant.
        id: ParticipantId,
    },
}

#[derive(Clone)]
struct Route {
    id: ParticipantId,
    room: mpsc::Sender<RoomMsg>,
}

/// The routing table of one socket.
#[derive(Default)]
struct Demux {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
    owned: HashMap<ParticipantId, (Vec<String>, Vec<SocketAddr>)>,
}

impl Demux {
    fn apply(&mut self, cmd: DemuxCmd) {
        match cmd {
            DemuxCmd::Route { ufrag, id, room } => {
                self.owned.entry(id).or_default().0.push(ufrag.clone());
                self.by_ufrag.insert(ufrag, Route { id, room });
            }
            DemuxCmd::Forget { id } => self.forget(id),
        }
    }

    fn forget(&mut self, id: ParticipantId) {
        if let Some((ufrags, addrs)) = self.owned.remove(&id) {
            for u in ufrags {
                self.by_ufrag.remove(&u);
            }
            for a in addrs {
                self.by_addr.remove(&a);
            }
        }
    }

    fn route(&mut self, source: SocketAddr, data: &[u8]) -> Option<Route> {
        if let Some(r) = self.by_addr.get(&source) {
            return Some(r.clone());
        }
        let ufrag = stun_local_ufrag(data)?;
        let r = self.by_ufrag.get(ufrag)?.clone();
        self.by_addr.insert(source, r.clone());
        self.owned.entry(r.id).or_default().1.push(source);
        Some(r)
    }
}

/// The part of a STUN binding request's USERNAME before the colon (the receiver's ufrag).
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    if data.len() < 20 || data[0] & 0xC0 != 0 || data[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let value = body.get(i + 4..i + 4 + alen)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

/// Receives on one socket until the command channel closes.
pub async fn run_receiver(
    socket: Arc<UdpSocket>,
    announced: SocketAddr,
    mut cmds: mpsc::UnboundedReceiver<DemuxCmd>,
    metrics: Arc<Metrics>,
) {
    let mut demux = Demux::default();
    let mut batch = RecvBatch::default();
    loop {
        tokio::select! {
            biased;
            cmd = cmds.recv() => match cmd {
                Some(c) => demux.apply(c),
                None => return,
            },
            ready = socket.readable() => {
                if ready.is_err() {
                    continue;
                }
                // A few batches, then routing commands get their turn again.
                for _ in 0..BATCHES_PER_WAKE {
                    let n = match batch.recv(&socket) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP port-unreachable surfaces here on Linux; it is not fatal.
                            tracing::debug!(error = %e, "udp receive error");
                            break;
                        }
                    };
                    for i in 0..n {
                        if let Some((source, data)) = batch.get(i) {
                            deliver(&mut demux, &metrics, announced, source, data);
                        }
                    }
                    if n < RECV_BATCH {
                        break;
                    }
                }
            }
        }
    }
}

/// Batches taken per wake-up of the receiver before it looks at its commands again.
const BATCHES_PER_WAKE: usize = 4;

/// Hands one datagram to its participant's room, or counts why not.
fn deliver(
    demux: &mut Demux,
    metrics: &Metrics,
    announced: SocketAddr,
    source: SocketAddr,
    data: &[u8],
) {
    metrics.udp_in.inc();
    let Some(route) = demux.route(source, data) else {
        metrics.udp_unroutable.inc();
        return;
    };
    let msg = RoomMsg::Datagram {
        id: route.id,
        proto: Protocol::Udp,
        source,
        destination: announced,
        contents: data.to_vec(),
        at: Instant::now(),
    };
    match route.room.try_send(msg) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics.udp_dropped_full.inc();
        }
        Err(mpsc::error::TrySendError::Closed(_)) => demux.forget(route.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = vec![];
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn reads_local_ufrag() {
        assert_eq!(
            stun_local_ufrag(&binding_request("abcd:efgh")),
            Some("abcd")
        );
    }

    #[test]
    fn rejects_non_stun_and_truncated() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let m = binding_request("abcd:efgh");
        for n in 0..m.len() {
            assert_eq!(stun_local_ufrag(&m[..n]), None);
        }
    }

    #[tokio::test]
    async fn routes_by_ufrag_then_by_address() {
        let (tx, _rx) = mpsc::channel(4);
        let mut d = Demux::default();
        d.apply(DemuxCmd::Route {
            ufrag: "u1".into(),
            id: ParticipantId(1),
            room: tx,
        });
        let a: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(d.route(a, b"\x17dtls").is_none());
        assert_eq!(
            d.route(a, &binding_request("u1:x")).map(|r| r.id),
            Some(ParticipantId(1))
        );
        assert_eq!(
            d.route(a, b"\x17dtls").map(|r| r.id),
            Some(ParticipantId(1))
        );
        d.apply(DemuxCmd::Forget {
            id: ParticipantId(1),
        });
        assert!(d.route(a, b"\x17dtls").is_none());
        assert!(d.route(a, &binding_request("u1:x")).is_none());
    }
}
