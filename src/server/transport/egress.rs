//! UDP egress: a room's burst of datagrams in as few system calls as the platform allows.
//!
//! A fan-out produces one datagram per subscriber, all at once, so a room hands its whole
//! burst to [`send_batch`], which on Linux makes one `sendmmsg(2)` call per [`MAX_BATCH`]
//! datagrams instead of one `sendto(2)` each. It calls libc directly on the tokio socket's
//! fd: `quinn-udp` batches only GSO segments to *one* destination, which a fan-out (every
//! datagram to another peer) cannot use. Sent datagrams' buffers go back to the lean path's
//! pool ([`recycle`]).

use crate::media::fast::pool;
use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd};
use str0m::net::Transmit;
use tokio::net::UdpSocket;

/// Most datagrams handed to the kernel in one call: Linux's own cap on `sendmmsg`'s count
/// (`UIO_MAXIOV`), so a fan-out's whole burst (its width) goes in one call. The tables for it
/// are kept per thread (~220 KiB at the largest batch seen), not on the stack.
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
    send_with(batch, |rest| {
        socket.try_io(tokio::io::Interest::WRITABLE, || {
            send_some(socket.as_fd(), rest)
        })
    })
}

/// Sends every datagram of `batch` from the socket `fd` (non-blocking), without asking the
/// runtime whether it is writable (see [`super::media_socket`]); as [`send_batch`] otherwise.
pub fn send_batch_fd(fd: BorrowedFd<'_>, batch: &[Transmit]) -> Sent {
    send_with(batch, |rest| send_some(fd, rest))
}

fn send_with(
    batch: &[Transmit],
    mut send: impl FnMut(&[Transmit]) -> std::io::Result<usize>,
) -> Sent {
    let mut sent = Sent::default();
    let mut rest = batch;
    while !rest.is_empty() {
        match send(rest) {
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

/// The `sendmmsg(2)` argument tables, reused between calls on one thread.
#[cfg(target_os = "linux")]
#[derive(Default)]
struct Tables {
    addrs: Vec<socket2::SockAddr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

#[cfg(target_os = "linux")]
thread_local! {
    static TABLES: RefCell<Tables> = RefCell::new(Tables::default());
}

/// One `sendmmsg(2)` of up to [`MAX_BATCH`] datagrams; how many were sent (at least one).
#[cfg(target_os = "linux")]
fn send_some(fd: BorrowedFd<'_>, batch: &[Transmit]) -> std::io::Result<usize> {
    use socket2::SockAddr;
    use std::os::fd::AsRawFd;
    if batch.len() == 1 {
        // Nothing to batch (small rooms): a plain sendto, without the tables below.
        return send_one(fd, &batch[0]);
    }
    let n = batch.len().min(MAX_BATCH);
    TABLES.with(|tables| {
        let mut tables = tables.borrow_mut();
        let Tables { addrs, iovs, hdrs } = &mut *tables;
        addrs.clear();
        iovs.clear();
        hdrs.clear();
        // All addresses and iovecs first: the headers point into them, so neither may
        // reallocate once the first header is made.
        addrs.extend(batch[..n].iter().map(|t| SockAddr::from(t.destination)));
        iovs.extend(batch[..n].iter().map(|t| libc::iovec {
            iov_base: t.contents.as_ptr() as *mut _,
            iov_len: t.contents.len(),
        }));
        for (addr, iov) in addrs.iter().zip(iovs.iter_mut()) {
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid (empty) value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = addr.as_ptr() as *mut _;
            h.msg_hdr.msg_namelen = addr.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            hdrs.push(h);
        }
        // SAFETY: the `n` headers point into `addrs`, `iovs` and the transmits' bytes, all
        // alive and unmoved until the call returns; the kernel reads them and writes only
        // `msg_len` of those `n` headers.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(r as usize)
    })
}

#[cfg(not(target_os = "linux"))]
fn send_some(fd: BorrowedFd<'_>, batch: &[Transmit]) -> std::io::Result<usize> {
    send_one(fd, &batch[0])
}

/// One datagram in one `sendto(2)`; 1 once the kernel took it.
fn send_one(fd: BorrowedFd<'_>, t: &Transmit) -> std::io::Result<usize> {
    socket2::SockRef::from(&fd)
        .send_to(&t.contents, &t.destination.into())
        .map(|_| 1)
}
