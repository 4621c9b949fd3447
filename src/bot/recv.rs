//! A bot's datagrams taken in batches (`recvmmsg(2)`), each with the time the kernel queued it
//! on the socket (`SO_TIMESTAMPNS`), so a receiver's latency ends where the network's part
//! ends, not when a tester sharing the CPU with the server got round to reading it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::time::Instant;
#[cfg(target_os = "linux")]
use std::time::{Duration, SystemTime};

/// Most datagrams taken per call.
pub(crate) const BATCH: usize = 16;
/// Largest datagram kept whole (media stays under ~1,200 bytes); a longer one is cut here.
const DATAGRAM_MAX: usize = 2048;
/// Room for one `SCM_TIMESTAMPNS` control message (16-byte header, 16-byte timespec) with
/// slack for alignment.
const CONTROL_MAX: usize = 64;
/// An arrival stamp older than this is not believed (the wall clock was stepped meanwhile):
/// the datagram counts as arriving when it was read.
#[cfg(target_os = "linux")]
const MAX_AGE: Duration = Duration::from_secs(10);

/// Asks the kernel to stamp every datagram `socket` receives with its arrival time.
pub(crate) fn stamp_arrivals(socket: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor, and an int option of the size given.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
    Ok(())
}

/// Buffers for one batch, reused from call to call.
pub(crate) struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM_MAX]; BATCH]>,
    // Arrival stamps come only with `recvmmsg`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    control: Box<[[u64; CONTROL_MAX / 8]; BATCH]>,
    got: [(usize, Option<SocketAddr>, Option<Instant>); BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: Box::new([[0; DATAGRAM_MAX]; BATCH]),
            control: Box::new([[0; CONTROL_MAX / 8]; BATCH]),
            got: [(0, None, None); BATCH],
        }
    }
}

impl RecvBatch {
    /// Datagram `i` of the last batch: who sent it, its bytes, and when it arrived (when the
    /// socket stamps arrivals, see [`stamp_arrivals`]).
    pub(crate) fn get(&self, i: usize) -> Option<(SocketAddr, &[u8], Option<Instant>)> {
        let (len, source, arrived) = *self.got.get(i)?;
        Some((source?, &self.bufs[i][..len.min(DATAGRAM_MAX)], arrived))
    }

    /// Takes what is queued on the non-blocking socket `fd`, up to [`BATCH`] datagrams; how
    /// many it took, or `WouldBlock` when nothing was queued.
    #[cfg(target_os = "linux")]
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: DATAGRAM_MAX,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_MAX as _;
        }
        // SAFETY: every header points at a live, writable buffer, address slot, iovec and
        // control buffer of this frame or of `self`, none moved until the call returns; the
        // kernel writes at most the lengths given into each.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        // One reading of both clocks per batch turns the kernel's wall-clock stamps into
        // `Instant`s: arrival = now - (wall now - stamp).
        let (now, wall) = (Instant::now(), SystemTime::now());
        for i in 0..n {
            let arrived = stamp(&hdrs[i].msg_hdr)
                .and_then(|at| wall.duration_since(at).ok())
                .filter(|age| *age <= MAX_AGE)
                .and_then(|age| now.checked_sub(age));
            self.got[i] = (
                hdrs[i].msg_len as usize,
                crate::server::transport::recv_batch::socket_addr(&addrs[i]),
                arrived,
            );
        }
        Ok(n)
    }

    /// One `recvfrom` elsewhere, without arrival stamps.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: the descriptor stays open while borrowed, and ManuallyDrop never closes it.
        let socket = std::mem::ManuallyDrop::new(unsafe {
            std::net::UdpSocket::from_raw_fd(fd.as_raw_fd())
        });
        let (len, source) = socket.recv_from(&mut self.bufs[0])?;
        self.got[0] = (len, Some(source), None);
        Ok(1)
    }
}

/// The `SCM_TIMESTAMPNS` stamp among a received message's control messages.
#[cfg(target_os = "linux")]
fn stamp(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `msg` is a header the kernel filled in, its control buffer still live; the
    // CMSG macros stay within `msg_controllen`, and a timestamp message carries a timespec
    // (read unaligned: the buffer promises no alignment for it).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                let d = Duration::new(u64::try_from(ts.tv_sec).ok()?, ts.tv_nsec as u32);
                return SystemTime::UNIX_EPOCH.checked_add(d);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_burst_comes_in_one_call_with_senders_lengths_and_arrival_times() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("nonblocking");
        stamp_arrivals(rx.as_fd()).expect("timestamps");
        let to = rx.local_addr().expect("addr");
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut batch = RecvBatch::default();
        // The kernel turns arrival stamping on for the whole stack in a deferred work item;
        // until then it stamps a datagram when it is read. Wait (bounded) until it stamps on
        // arrival.
        let mut on_arrival = false;
        for _ in 0..40 {
            a.send_to(b"probe", to).expect("send");
            std::thread::sleep(Duration::from_millis(25));
            let read = Instant::now();
            batch.recv(rx.as_fd()).expect("the probe");
            let (_, _, at) = batch.get(0).expect("got");
            if at.expect("stamped") + Duration::from_millis(15) <= read {
                on_arrival = true;
                break;
            }
        }
        assert!(on_arrival, "the kernel never stamped on arrival");
        let before = Instant::now();
        for i in 0..20u8 {
            let from = if i.is_multiple_of(2) { &a } else { &b };
            from.send_to(&vec![i; 100 + usize::from(i)], to)
                .expect("send");
        }
        // The stamps are when they were queued, not when they are read.
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now() - Duration::from_millis(40);
        let first = batch.recv(rx.as_fd()).expect("queued");
        assert_eq!(first, BATCH);
        let mut seen = vec![];
        for i in 0..first {
            seen.push(
                batch
                    .get(i)
                    .map(|(s, d, t)| (s, d.to_vec(), t))
                    .expect("got"),
            );
        }
        let rest = batch.recv(rx.as_fd()).expect("the rest");
        assert_eq!(rest, 20 - BATCH);
        for i in 0..rest {
            seen.push(
                batch
                    .get(i)
                    .map(|(s, d, t)| (s, d.to_vec(), t))
                    .expect("got"),
            );
        }
        let (a, b) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        for (i, (source, data, arrived)) in seen.iter().enumerate() {
            let i = i as u8;
            assert_eq!(*source, if i.is_multiple_of(2) { a } else { b });
            assert_eq!((data.len(), data[0]), (100 + usize::from(i), i));
            // Wall and monotonic clocks are read at slightly different moments: allow 5 ms.
            let arrived = arrived.expect("stamped");
            assert!(
                arrived + Duration::from_millis(5) >= before,
                "{i}: stamped too early"
            );
            assert!(arrived <= sent, "{i}: stamped when read, not when queued");
        }
        let empty = batch.recv(rx.as_fd()).expect_err("drained");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }
}
