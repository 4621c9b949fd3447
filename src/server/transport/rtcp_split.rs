//! One UDP port, two sockets: the kernel queues the port's RTCP apart from the rest, so that
//! RTCP alone never wakes the receiver.
//!
//! Most datagrams arriving at an SFU are its subscribers' RTCP (receiver reports and
//! transport-wide feedback: a browser sends feedback every 50–100 ms, 10–20 a second per
//! viewer), and nothing in them is needed within milliseconds. Each one that arrives alone
//! costs a wake-up of the receiver and a pass of its room. Both sockets are bound to the same
//! address with `SO_REUSEPORT`, and a classic BPF program attached to the group hands the
//! kernel, per datagram, the socket to queue it on: RTCP (the second byte 192–223, RFC 5761
//! §4) on the second, everything else (RTP, STUN, DTLS) on the first. The runtime watches
//! only the first; the receiver drains the second whenever it wakes for the first, and on a
//! slow timer when the first is quiet ([`super::udp`]). Sending is unchanged (the first
//! socket), so peers see one port as before.
//!
//! On by default (`--split-rtcp false` turns it off).

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Why the pair was not bound.
#[derive(Debug)]
pub enum Error {
    /// The address cannot be bound at all (taken, not local): as a plain bind would fail.
    Bind(io::Error),
    /// The kernel refused the split (no `SO_REUSEPORT` or no BPF steering): one socket will do.
    Refused(io::Error),
}

/// Binds `addr` as two sockets on one port: media (and everything not RTCP), then RTCP.
#[cfg(target_os = "linux")]
pub fn bind(addr: SocketAddr) -> Result<(UdpSocket, UdpSocket), Error> {
    use socket2::{Domain, Protocol, Socket, Type};
    // With `SO_REUSEPORT`, a second server of the same user on this port would join the group
    // and share its traffic instead of failing: a plain bind first fails as it would have.
    if addr.port() != 0 {
        drop(UdpSocket::bind(addr).map_err(Error::Bind)?);
    }
    let open = |at: SocketAddr| -> Result<Socket, Error> {
        let s = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))
            .map_err(Error::Refused)?;
        s.set_reuse_port(true).map_err(Error::Refused)?;
        s.bind(&at.into()).map_err(Error::Bind)?;
        Ok(s)
    };
    let media = open(addr)?;
    let local = media
        .local_addr()
        .map_err(Error::Bind)?
        .as_socket()
        .ok_or_else(|| Error::Bind(io::Error::other("not an IP address")))?;
    // Joined second: index 1 in the group, which is what the program returns for RTCP.
    let rtcp = open(local).map_err(|e| match e {
        Error::Bind(e) | Error::Refused(e) => Error::Refused(e),
    })?;
    steer(&media).map_err(Error::Refused)?;
    Ok((media.into(), rtcp.into()))
}

/// Not Linux: one socket.
#[cfg(not(target_os = "linux"))]
pub fn bind(_addr: SocketAddr) -> Result<(UdpSocket, UdpSocket), Error> {
    Err(Error::Refused(io::Error::new(
        io::ErrorKind::Unsupported,
        "steering RTCP to a socket of its own needs Linux",
    )))
}

/// Socket index for a datagram, by its second byte: 1 for RTCP's packet types (192–223),
/// else 0; a datagram shorter than two bytes fails the load, which returns 0.
#[cfg(target_os = "linux")]
const PROGRAM: [(u32, u8, u8, u32); 5] = [
    (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 1),
    (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, 0, 2, 192),
    (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K, 1, 0, 223),
    (libc::BPF_RET | libc::BPF_K, 0, 0, 1),
    (libc::BPF_RET | libc::BPF_K, 0, 0, 0),
];

/// Attaches [`PROGRAM`] to the reuseport group of `socket`.
#[cfg(target_os = "linux")]
fn steer(socket: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut code: Vec<libc::sock_filter> = PROGRAM
        .iter()
        .map(|&(code, jt, jf, k)| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `code`, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Everything that arrives on `s` within a short wait after the last datagram.
    fn read_all(s: &UdpSocket) -> Vec<Vec<u8>> {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut got = vec![];
        let mut buf = [0u8; 64];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn rtcp_is_queued_on_the_second_socket_and_everything_else_on_the_first() {
        let (media, rtcp) = bind("127.0.0.1:0".parse().expect("addr")).expect("split");
        let port = media.local_addr().expect("addr");
        assert_eq!(rtcp.local_addr().expect("addr"), port, "one port");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
        let rtp = [0x80u8, 96]; // RTP, payload type 96
        let marked = [0x80u8, 0x80 | 127]; // RTP with the marker bit: 255
        let low = [0x80u8, 0x80 | 63]; // 191: just below RTCP's range
        let sr = [0x80u8, 200];
        let rr = [0x81u8, 201];
        let feedback = [0x8fu8, 205]; // transport-wide feedback
        let last = [0x80u8, 223];
        let stun = [0x00u8, 0x01];
        let dtls = [0x16u8, 0xfe];
        let short = [0x80u8];
        let all: [&[u8]; 10] = [
            &rtp, &sr, &marked, &rr, &low, &feedback, &stun, &last, &dtls, &short,
        ];
        for d in all {
            peer.send_to(d, port).expect("send");
        }
        let started = Instant::now();
        let on_media = read_all(&media);
        let on_rtcp = read_all(&rtcp);
        assert!(started.elapsed() < Duration::from_secs(5));
        let expect_media: Vec<Vec<u8>> = [&rtp[..], &marked, &low, &stun, &dtls, &short]
            .iter()
            .map(|d| d.to_vec())
            .collect();
        let expect_rtcp: Vec<Vec<u8>> = [&sr[..], &rr, &feedback, &last]
            .iter()
            .map(|d| d.to_vec())
            .collect();
        assert_eq!(on_media, expect_media);
        assert_eq!(on_rtcp, expect_rtcp);
        // Replies leave from the one port whichever socket sends them.
        media
            .send_to(b"x", peer.local_addr().expect("peer"))
            .expect("send");
        let mut buf = [0u8; 4];
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (_, from) = peer.recv_from(&mut buf).expect("reply");
        assert_eq!(from, port);
    }

    #[test]
    fn a_port_in_use_is_refused_as_a_plain_bind_would_be() {
        let taken = UdpSocket::bind("127.0.0.1:0").expect("taken");
        let addr = taken.local_addr().expect("addr");
        assert!(matches!(bind(addr), Err(Error::Bind(_))));
        // And a split port is not joined by a second server of the same user, split or not.
        let (media, _rtcp) = bind("127.0.0.1:0".parse().expect("addr")).expect("split");
        let addr = media.local_addr().expect("addr");
        assert!(matches!(bind(addr), Err(Error::Bind(_))));
        assert!(UdpSocket::bind(addr).is_err());
    }
}
