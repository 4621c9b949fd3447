//! The UDP media socket, registered with the runtime for reading only.
//!
//! A `tokio::net::UdpSocket` is registered for both readiness kinds, and on Linux every
//! datagram a socket sends fires its write-space callback when the kernel frees the buffer
//! (at once, on loopback): a runtime thread parked in `epoll_wait` is woken for an
//! `EPOLLOUT` nobody waits for, once per `sendmmsg` burst. Measured on 1 → 100 (light
//! camera), 1,638 of 3,760 `epoll_wait` returns carried nothing but that. Registered for
//! reading alone, those callbacks stop at the epoll filter. Sends never wait for writability:
//! a full socket buffer drops the rest of a burst, as the network would ([`egress`]).
//!
//! [`egress`]: super::egress

use super::rtcp_split as split;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

/// A non-blocking UDP socket whose reads wait on the runtime and whose writes never do.
pub struct MediaSocket {
    fd: AsyncFd<std::net::UdpSocket>,
    /// The same port's RTCP side (see [`split`]), read without readiness.
    rtcp: Option<std::net::UdpSocket>,
}

impl MediaSocket {
    /// Binds `addr` with send and receive buffers of `buffer` bytes (the kernel caps them at
    /// `net.core.{w,r}mem_max`; a smaller buffer only means earlier drops under bursts). Needs
    /// a runtime.
    pub fn bind(addr: SocketAddr, buffer: usize) -> io::Result<MediaSocket> {
        MediaSocket::bind_split(addr, buffer, false)
    }

    /// As [`MediaSocket::bind`]; with `split_rtcp` (Linux), RTCP arriving on the port is
    /// queued on a second socket that the receiver reads only when it wakes for the rest
    /// ([`split`]). Falls back to one socket, with a warning, where the kernel refuses.
    pub fn bind_split(
        addr: SocketAddr,
        buffer: usize,
        split_rtcp: bool,
    ) -> io::Result<MediaSocket> {
        let (socket, rtcp) = if split_rtcp {
            match split::bind(addr) {
                Ok((s, r)) => (s, Some(r)),
                Err(split::Error::Bind(e)) => return Err(e),
                Err(split::Error::Refused(e)) => {
                    // The port works as it did before the split; only the wake-ups it saves are lost.
                    tracing::warn!(error = %e, "RTCP shares the media socket: split refused");
                    (std::net::UdpSocket::bind(addr)?, None)
                }
            }
        } else {
            (std::net::UdpSocket::bind(addr)?, None)
        };
        for s in std::iter::once(&socket).chain(rtcp.as_ref()) {
            let sock = socket2::SockRef::from(s);
            let _ = sock.set_send_buffer_size(buffer);
            let _ = sock.set_recv_buffer_size(buffer);
        }
        let mut m = MediaSocket::from_std(socket)?;
        if let Some(r) = rtcp {
            r.set_nonblocking(true)?;
            m.rtcp = Some(r);
        }
        Ok(m)
    }

    /// The port's RTCP side, when split: a non-blocking socket the runtime never watches.
    pub fn rtcp(&self) -> Option<BorrowedFd<'_>> {
        self.rtcp.as_ref().map(|r| r.as_fd())
    }

    /// Wraps a bound socket (made non-blocking here). Needs a runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<MediaSocket> {
        socket.set_nonblocking(true)?;
        // SAFETY: a `std::net::UdpSocket` owns its descriptor and returns that same one for as
        // long as it lives; the `AsyncFd` owns the socket and never hands it out by value.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(MediaSocket { fd, rtcp: None })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }

    /// Waits until the runtime saw the socket readable. The guard's `clear_ready` must be
    /// called once a read found the queue empty (or short: see [`super::udp`]).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, std::net::UdpSocket>> {
        self.fd.readable().await
    }
}

impl AsFd for MediaSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::transport::egress::send_batch_fd;
    use str0m::net::{Protocol, Transmit};

    #[tokio::test]
    async fn sends_a_burst_and_reads_what_arrives() {
        let a = MediaSocket::bind("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("a");
        let b = MediaSocket::bind("127.0.0.1:0".parse().expect("addr"), 1 << 20).expect("b");
        let (from, to) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        let burst: Vec<Transmit> = (0..5u8)
            .map(|i| Transmit {
                proto: Protocol::Udp,
                source: from,
                destination: to,
                contents: vec![i; 10].into(),
            })
            .collect();
        let sent = send_batch_fd(a.as_fd(), &burst);
        assert_eq!((sent.datagrams, sent.calls), (5, 1));
        let mut got = vec![];
        let mut buf = [0u8; 64];
        while got.len() < 5 {
            let mut guard = tokio::time::timeout(std::time::Duration::from_secs(5), b.readable())
                .await
                .expect("readable in time")
                .expect("readable");
            match guard.get_inner().recv_from(&mut buf) {
                Ok((n, source)) => got.push((source, buf[..n].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => panic!("{e}"),
            }
        }
        for (i, (source, data)) in got.into_iter().enumerate() {
            assert_eq!((source, data), (from, vec![i as u8; 10]));
        }
    }
}
