//! Egress batching on real loopback sockets: a fan-out wider than the old 64-datagram cap
//! leaves in one `sendmmsg` call, everything arrives, and the sent buffers go back to the lean
//! path's pool.

use confab::media::fast::pool;
use confab::server::transport::egress::{recycle, send_batch, MAX_BATCH, SOCKET_BUFFER};
use std::net::SocketAddr;
use std::time::Duration;
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "current_thread")]
async fn a_wide_fan_out_is_one_send_call_and_its_buffers_are_kept() {
    const RECEIVERS: usize = 3;
    const DATAGRAMS: usize = 300;
    const { assert!(DATAGRAMS <= MAX_BATCH) };
    let mut receivers = vec![];
    for _ in 0..RECEIVERS {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_recv_buffer_size(1 << 20).unwrap();
        s.set_nonblocking(true).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        receivers.push(UdpSocket::from_std(s.into()).unwrap());
    }
    let std_sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&std_sender)
        .set_send_buffer_size(SOCKET_BUFFER)
        .unwrap();
    std_sender.set_nonblocking(true).unwrap();
    let sender = UdpSocket::from_std(std_sender).unwrap();
    sender.writable().await.unwrap();
    let source = sender.local_addr().unwrap();
    let mut batch: Vec<Transmit> = (0..DATAGRAMS)
        .map(|i| {
            let mut buf = pool::take(1200);
            buf.extend_from_slice(&(i as u32).to_be_bytes());
            buf.resize(1100, 0x80);
            Transmit {
                proto: Protocol::Udp,
                source,
                destination: receivers[i % RECEIVERS].local_addr().unwrap(),
                contents: buf.into(),
            }
        })
        .collect();
    let sent = send_batch(&sender, &batch);
    assert_eq!(sent.datagrams, DATAGRAMS, "{sent:?}");
    assert_eq!(
        sent.calls, 1,
        "one sendmmsg for the whole fan-out: {sent:?}"
    );
    let kept_before = pool::kept();
    recycle(&mut batch);
    assert!(batch.is_empty());
    assert_eq!(
        pool::kept(),
        (kept_before + DATAGRAMS).min(pool::MAX_BUFFERS),
        "sent buffers are kept, up to the bound"
    );
    // Every datagram arrives, each once, with its bytes.
    let mut seen = vec![false; DATAGRAMS];
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.iter().any(|s| !s) && tokio::time::Instant::now() < deadline {
        for r in &receivers {
            while let Ok(n) = r.try_recv(&mut buf) {
                assert_eq!(n, 1100);
                let i = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                assert!(!seen[i], "datagram {i} twice");
                seen[i] = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} datagrams never arrived");
}
