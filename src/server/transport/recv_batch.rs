//! Receiving several datagrams per system call: `recvmmsg(2)` on Linux, one `recvfrom`
//! elsewhere.
//!
//! Media arrives in bursts (a video frame is several packets back to back, RTCP from many
//! subscribers lands together), so one wake-up of the receiver usually finds more than one
//! datagram queued; taking them in one call saves a system call for each of the others.

use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

/// Most datagrams taken per call.
pub const RECV_BATCH: usize = 16;

/// Largest datagram kept whole; media datagrams stay under the path MTU (~1,200 bytes), and a
/// longer one is cut here exactly as it was with a single buffer.
const DATAGRAM_MAX: usize = 2048;

/// Buffers for one batch, reused from call to call.
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM_MAX]; RECV_BATCH]>,
    got: [(usize, Option<SocketAddr>); RECV_BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: Box::new([[0; DATAGRAM_MAX]; RECV_BATCH]),
            got: [(0, None); RECV_BATCH],
        }
    }
}

impl RecvBatch {
    /// Takes what is queued on the non-blocking socket `fd`, up to [`RECV_BATCH`] datagrams;
    /// how many it took, or `WouldBlock` when nothing was queued.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.recv_some(fd)
    }

    /// Datagram `i` of the last batch: who sent it, and its bytes.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let (len, source) = *self.got.get(i)?;
        Some((source?, &self.bufs[i][..len.min(DATAGRAM_MAX)]))
    }

    #[cfg(target_os = "linux")]
    fn recv_some(&mut self, socket: BorrowedFd<'_>) -> io::Result<usize> {
        use std::mem::MaybeUninit;
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut addrs: [libc::sockaddr_storage; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; RECV_BATCH];
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (i, ((buf, addr), hdr)) in self
            .bufs
            .iter_mut()
            .zip(addrs.iter_mut())
            .zip(hdrs.iter_mut())
            .enumerate()
        {
            let iov = iovs[i].write(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            });
            hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live, writable buffer, address slot and iovec of
        // this frame or of `self.bufs`, none moved until the call returns; the kernel writes at
        // most `iov_len` bytes into each buffer and `msg_namelen` into each address.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                RECV_BATCH as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        for i in 0..n {
            self.got[i] = (hdrs[i].msg_len as usize, socket_addr(&addrs[i]));
        }
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    fn recv_some(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: the descriptor stays open while borrowed, and ManuallyDrop never closes it.
        let socket = std::mem::ManuallyDrop::new(unsafe {
            std::net::UdpSocket::from_raw_fd(fd.as_raw_fd())
        });
        let (len, source) = socket.recv_from(&mut self.bufs[0])?;
        self.got[0] = (len, Some(source));
        Ok(1)
    }
}

/// The address the kernel wrote, if it is IPv4 or IPv6 (also the load tester's batches,
/// `bot::recv`).
#[cfg(target_os = "linux")]
pub(crate) fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(
                SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )
                .into(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::server::transport::media_socket::MediaSocket;
    use std::os::fd::AsFd;

    #[tokio::test]
    async fn takes_a_burst_in_one_call_with_each_sender_and_length() {
        let rx = MediaSocket::bind("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("bind");
        let to = rx.local_addr().expect("addr");
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..20u8 {
            let from = if i.is_multiple_of(2) { &a } else { &b };
            from.send_to(&vec![i; 100 + usize::from(i)], to)
                .expect("send");
        }
        let mut batch = RecvBatch::default();
        let mut seen = vec![];
        while seen.len() < 20 {
            let mut guard = rx.readable().await.expect("readable");
            let n = match batch.recv(rx.as_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert!(n <= RECV_BATCH);
            for i in 0..n {
                let (source, data) = batch.get(i).expect("datagram");
                seen.push((source, data.len(), data[0]));
            }
        }
        let (a, b) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        for (i, (source, len, first)) in seen.iter().enumerate() {
            let i = i as u8;
            assert_eq!(*source, if i.is_multiple_of(2) { a } else { b });
            assert_eq!((*len, *first), (100 + usize::from(i), i));
        }
        // Nothing left: the next call would block.
        let empty = batch.recv(rx.as_fd()).expect_err("drained");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }
}
