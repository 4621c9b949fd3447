//! UDP egress: a room's burst of datagrams in as few system calls as the platform allows.
//!
//! A fan-out produces one datagram per subscriber, all at once, so a room hands its whole
//! burst to [`send_batch`], which on Linux makes one `sendmmsg(2)` call per [`MAX_BATCH`]
//! datagrams instead of one `sendto(2)` each; datagrams of the burst that go to the same
//! peer (a video frame's packets) go as one GSO message ([`super::coalesce`]). It calls libc
//! directly on the tokio socket's fd: `quinn-udp` batches GSO segments to *one* destination
//! per call, while a fan-out's burst goes to every peer at once. Sent datagrams' buffers go
//! back to the lean path's pool ([`recycle`]).

use super::coalesce;
use crate::media::fast::pool;
#[cfg(target_os = "linux")]
use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd};
use str0m::net::Transmit;
use tokio::net::UdpSocket;

/// Most datagrams handed to the kernel in one call: Linux's own cap on `sendmmsg`'s count
/// (`UIO_MAXIOV`), so a fan-out's whole burst (its width) goes in one call. The tables for it
/// are kept per thread (~250 KiB at the largest batch seen), not on the stack.
pub const MAX_BATCH: usize = 1024;

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
    /// Of `datagrams`, those that went as a later segment of a GSO message (one kernel send
    /// for several datagrams to one peer: see [`super::coalesce`]).
    pub coalesced: usize,
    /// The socket's buffer was full: the datagrams not counted were dropped.
    pub blocked: bool,
}

/// Empties `batch`, handing its buffers back for the lean path to seal into again.
pub fn recycle(batch: &mut Vec<Transmit>) {
    for t in batch.drain(..) {
        pool::give(t.contents.into());
    }
}

/// Sends every datagram of `batch` from a tokio `socket`, while tokio knows it writable. A
/// full socket buffer drops the rest, as the network would; RTX repairs it.
pub fn send_batch(socket: &UdpSocket, batch: &[Transmit]) -> Sent {
    let mut sent = Sent::default();
    // A full buffer must clear tokio's readiness, so that waiting for `writable` waits.
    let _ = socket.try_io(tokio::io::Interest::WRITABLE, || {
        sent = send_all(socket.as_fd(), batch);
        match sent.blocked {
            true => Err(std::io::ErrorKind::WouldBlock.into()),
            false => Ok(()),
        }
    });
    sent
}

/// Sends every datagram of `batch` from the socket `fd` (non-blocking), without asking the
/// runtime whether it is writable (see [`super::media_socket`]); as [`send_batch`] otherwise.
pub fn send_batch_fd(fd: BorrowedFd<'_>, batch: &[Transmit]) -> Sent {
    send_all(fd, batch)
}

/// Whether a failed send tells that this path cannot segment (no checksum offload: EIO; an
/// older kernel: EINVAL or ENOPROTOOPT), so that GSO is turned off and the datagrams resent
/// one by one.
#[cfg(target_os = "linux")]
fn gso_refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EMSGSIZE)
    )
}

/// Every datagram of `batch` in `sendmmsg(2)` calls of up to [`MAX_BATCH`] messages, a run of
/// datagrams to one peer as one GSO message where the kernel allows (see
/// [`super::coalesce`]). A full socket buffer (`WouldBlock`) drops the rest; a message the
/// kernel refuses for its destination (unreachable, refused) is skipped, not the batch.
#[cfg(target_os = "linux")]
fn send_all(fd: BorrowedFd<'_>, batch: &[Transmit]) -> Sent {
    let mut sent = Sent::default();
    if batch.len() == 1 {
        // Nothing to batch (small rooms): a plain sendto, without the tables.
        match send_one(fd, &batch[0]) {
            Ok(_) => (sent.datagrams, sent.calls) = (1, 1),
            Err(e) => sent.blocked = e.kind() == std::io::ErrorKind::WouldBlock,
        }
        return sent;
    }
    // Chunks bound the tables (a 1 -> 300 keyframe is a burst of ~1,500 datagrams).
    for chunk in batch.chunks(MAX_BATCH) {
        TABLES.with(|tables| send_chunk(fd, chunk, &mut tables.borrow_mut(), &mut sent));
        if sent.blocked {
            break;
        }
    }
    sent
}

/// [`send_all`] of at most [`MAX_BATCH`] datagrams: one `sendmmsg(2)` unless one fails.
#[cfg(target_os = "linux")]
fn send_chunk(fd: BorrowedFd<'_>, chunk: &[Transmit], t: &mut coalesce::Tables, sent: &mut Sent) {
    use std::os::fd::AsRawFd;
    let mut gso = t.gso();
    t.plan(chunk, gso);
    t.build(chunk, 0, gso);
    let mut m = 0;
    while m < t.hdrs.len() {
        let n = t.hdrs.len() - m;
        // SAFETY: headers m..m+n point into `t`'s address, iovec and control tables and the
        // transmits' bytes, all alive and unmoved until the call returns (`build` filled
        // every table before taking a pointer); the kernel writes only `msg_len`.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                t.hdrs.as_mut_ptr().add(m),
                n as _,
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            let r = r as usize;
            sent.calls += 1;
            for &k in &t.segments[m..m + r] {
                sent.datagrams += usize::from(k);
                sent.coalesced += usize::from(k) - 1;
            }
            m += r;
            continue;
        }
        let e = std::io::Error::last_os_error();
        if r == 0 || e.kind() == std::io::ErrorKind::WouldBlock {
            sent.blocked = true;
            return;
        }
        if gso && t.segments[m] > 1 && gso_refused(&e) {
            t.refuse(&e);
            gso = false;
            let from = t.first_of(m);
            t.build(chunk, from, false);
            m = 0;
            continue;
        }
        // One bad destination must not stop the others.
        m += 1;
    }
}

#[cfg(not(target_os = "linux"))]
fn send_all(fd: BorrowedFd<'_>, batch: &[Transmit]) -> Sent {
    let mut sent = Sent::default();
    for t in batch {
        match send_one(fd, t) {
            Ok(_) => {
                sent.datagrams += 1;
                sent.calls += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                sent.blocked = true;
                break;
            }
            Err(_) => {}
        }
    }
    sent
}

#[cfg(target_os = "linux")]
thread_local! {
    /// The `sendmmsg(2)` argument tables, reused between calls on one thread.
    static TABLES: RefCell<coalesce::Tables> = RefCell::new(coalesce::Tables::default());
}

/// One datagram in one `sendto(2)`; 1 once the kernel took it.
fn send_one(fd: BorrowedFd<'_>, t: &Transmit) -> std::io::Result<usize> {
    socket2::SockRef::from(&fd)
        .send_to(&t.contents, &t.destination.into())
        .map(|_| 1)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;
    use str0m::net::Protocol;

    /// Packet-major, as a fan-out makes it: a frame's two full packets and its short last
    /// one, each to every receiver in turn. Byte 0 names the receiver, the rest the packet.
    fn burst(from: &StdSocket, to: &[StdSocket]) -> Vec<Transmit> {
        let mut out = vec![];
        for (p, len) in [1100, 1100, 300].into_iter().enumerate() {
            for (r, rx) in to.iter().enumerate() {
                let mut contents = vec![p as u8; len];
                contents[0] = r as u8;
                out.push(Transmit {
                    proto: Protocol::Udp,
                    source: from.local_addr().expect("addr"),
                    destination: rx.local_addr().expect("addr"),
                    contents: contents.into(),
                });
            }
        }
        out
    }

    fn sockets() -> (StdSocket, Vec<StdSocket>) {
        let tx = StdSocket::bind("127.0.0.1:0").expect("bind");
        tx.set_nonblocking(true).expect("nonblocking");
        let rx: Vec<StdSocket> = (0..3)
            .map(|_| {
                let s = StdSocket::bind("127.0.0.1:0").expect("bind");
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                s
            })
            .collect();
        (tx, rx)
    }

    /// Every receiver got its three datagrams, whole and in order.
    fn all_arrived(rx: &[StdSocket]) {
        let mut buf = [0u8; 2048];
        for (r, s) in rx.iter().enumerate() {
            for (p, len) in [1100, 1100, 300].into_iter().enumerate() {
                let n = s.recv(&mut buf).expect("a datagram in time");
                assert_eq!(n, len, "receiver {r}, packet {p}");
                assert_eq!(buf[0], r as u8);
                assert!(
                    buf[1..n].iter().all(|b| *b == p as u8),
                    "receiver {r}, packet {p}"
                );
            }
        }
    }

    #[test]
    fn a_frame_to_each_peer_is_one_message_and_arrives_as_its_datagrams() {
        let (tx, rx) = sockets();
        let sent = send_batch_fd(tx.as_fd(), &burst(&tx, &rx));
        assert_eq!((sent.datagrams, sent.calls, sent.blocked), (9, 1, false));
        // Three messages of three: six datagrams rode as later segments.
        assert_eq!(sent.coalesced, 6);
        all_arrived(&rx);
    }

    #[test]
    fn a_refused_gso_message_is_resent_one_datagram_each() {
        let (tx, rx) = sockets();
        // Without UDP checksums the kernel refuses to segment (EINVAL), as an interface
        // without checksum offload does (EIO).
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the size given.
        let r = unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as _,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        let sent = send_batch_fd(tx.as_fd(), &burst(&tx, &rx));
        assert_eq!((sent.datagrams, sent.coalesced), (9, 0));
        all_arrived(&rx);
        // This thread remembers: the next burst goes without GSO from the start.
        let sent = send_batch_fd(tx.as_fd(), &burst(&tx, &rx));
        assert_eq!((sent.datagrams, sent.calls, sent.coalesced), (9, 1, 0));
        all_arrived(&rx);
    }
}
