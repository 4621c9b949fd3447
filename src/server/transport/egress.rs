//! UDP egress: a room's burst of datagrams in as few system calls as the platform allows.
//!
//! A fan-out produces one datagram per subscriber, all at once, so a room hands its whole
//! burst to [`send_batch`], which on Linux makes one `sendmmsg(2)` call per [`MAX_BATCH`]
//! datagrams instead of one `sendto(2)` each. It calls libc directly on the tokio socket's
//! fd: `quinn-udp` batches only GSO segments to *one* destination, which a fan-out (every
//! datagram to another peer) cannot use.

use str0m::net::Transmit;
use tokio::net::UdpSocket;

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
