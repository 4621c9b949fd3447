//! Tests of the send thread and its lanes, on real sockets on loopback.

use super::*;
use std::collections::HashMap;
use str0m::net::Protocol;

fn sender() -> Vec<(SocketAddr, Arc<MediaSocket>)> {
    let a = MediaSocket::bind("127.0.0.1:0".parse().expect("addr"), 4 << 20).expect("a");
    vec![(a.local_addr().expect("a"), Arc::new(a))]
}

fn receiver() -> std::net::UdpSocket {
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("b");
    let _ = socket2::SockRef::from(&b).set_recv_buffer_size(4 << 20);
    b.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    b
}

fn datagram(from: SocketAddr, to: SocketAddr, contents: Vec<u8>) -> Transmit {
    Transmit {
        proto: Protocol::Udp,
        source: from,
        destination: to,
        contents: contents.into(),
    }
}

fn burst(from: SocketAddr, to: SocketAddr, first: u16, n: u16) -> Vec<Transmit> {
    (first..first + n)
        .map(|i| datagram(from, to, i.to_be_bytes().to_vec()))
        .collect()
}

/// Waits (at most 5 s) until the threads have ended, so that their counters are final.
fn ended(st: Arc<SendThread>) {
    st.close();
    let gone = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&st) > 1 {
        assert!(Instant::now() < gone, "the threads end once closed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn batches_leave_in_order_and_their_copies_are_observed_when_sent() {
    let (socks, rx) = (sender(), receiver());
    let (from, to) = (socks[0].0, rx.local_addr().expect("b"));
    let metrics = Arc::new(Metrics::default());
    let (_tx, shutdown) = watch::channel(false);
    let st = SendThread::start(socks, Arc::clone(&metrics), shutdown, 1).expect("thread");
    let t0 = Instant::now();
    let mut next = 0;
    for n in [140, 3, 200, 1, 130] {
        let mut b = burst(from, to, next, n);
        let mut fwd = vec![(t0, u32::from(n), false)];
        st.submit(&mut b, &mut fwd, true);
        assert!(b.is_empty() && fwd.is_empty());
        next += n;
    }
    let mut buf = [0u8; 8];
    for i in 0..next {
        let n = rx.recv(&mut buf).expect("a datagram");
        assert_eq!(&buf[..n], &i.to_be_bytes(), "in order");
    }
    // The counters move after `sendmmsg` returns, which may be after the datagrams arrived.
    ended(st);
    assert_eq!(metrics.udp_out.get(), u64::from(next));
    assert_eq!(metrics.forward_delay.count(), u64::from(next));
    assert!(
        metrics.udp_send_handoffs.get() >= 3,
        "big batches were handed off"
    );
}

#[test]
fn a_split_keeps_each_lanes_order_and_shares_the_logged_copies() {
    let from: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let mut batch: Vec<Transmit> = (0..200u16)
        .map(|i| {
            let to = SocketAddr::from(([127, 0, 0, 1], 40_000 + i % 17));
            datagram(from, to, i.to_be_bytes().to_vec())
        })
        .collect();
    let t0 = Instant::now();
    let mut forwards = vec![(t0, 150, false), (t0, 7, true), (t0, 1, false)];
    let mut parts: [Job; LANES] = Default::default();
    split(&mut batch, &mut forwards, &mut parts);
    assert!(batch.is_empty() && forwards.is_empty());
    let mut seen = 0;
    for (lane, p) in parts.iter().enumerate() {
        assert!(!p.batch.is_empty(), "17 destinations use every lane");
        let mut last = None;
        for t in &p.batch {
            assert_eq!(lane_of(t.destination), lane);
            let i = u16::from_be_bytes([t.contents[0], t.contents[1]]);
            assert!(last < Some(i), "in the batch's order");
            last = Some(i);
        }
        assert_eq!(p.bytes, 2 * p.batch.len());
        seen += p.batch.len();
    }
    assert_eq!(seen, 200);
    for (n, held) in [(150, false), (7, true), (1, false)] {
        let got: u32 = parts
            .iter()
            .flat_map(|p| &p.forwards)
            .filter(|f| f.2 == held && (n == 7) == held)
            .map(|f| f.1)
            .sum();
        assert_eq!(got, if held { 7 } else { 151 }, "every logged copy is kept");
    }
}

/// Rooms on several threads submit batches of every size to destinations in both lanes,
/// handed off or not, while the send threads and the rooms' help send the lanes: every
/// destination gets every datagram once, in the order its room submitted them.
#[test]
fn lanes_keep_each_destinations_order_and_send_every_datagram_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _in_rt = rt.enter();
    for threads in [1, 2] {
        // Three receivers per lane.
        let mut rxs: Vec<std::net::UdpSocket> = vec![];
        let mut per_lane = [0; LANES];
        for _ in 0..200 {
            let r = receiver();
            let lane = lane_of(r.local_addr().expect("r"));
            if per_lane[lane] < 3 {
                per_lane[lane] += 1;
                rxs.push(r);
            }
        }
        assert_eq!(per_lane, [3; LANES], "ports in every lane");
        let socks = sender();
        let from = socks[0].0;
        let tos: Vec<SocketAddr> = rxs.iter().map(|r| r.local_addr().expect("r")).collect();
        let metrics = Arc::new(Metrics::default());
        let (_tx, shutdown) = watch::channel(false);
        let st = SendThread::start(socks, Arc::clone(&metrics), shutdown, threads).expect("thread");
        const ROOMS: u8 = 3;
        const BATCHES: u32 = 40;
        const SIZES: [usize; 6] = [1, 5, 20, 40, 120, 300];
        // Each room's datagrams per destination: what each receiver expects.
        let per_room_dest = |room: u8, dest: usize| -> u32 {
            let mut n = 0;
            let mut k = usize::from(room);
            for b in 0..BATCHES as usize {
                for _ in 0..SIZES[b % SIZES.len()] {
                    n += u32::from(k % tos.len() == dest);
                    k += 1;
                }
            }
            n
        };
        let readers: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(dest, rx)| {
                let want: Vec<u32> = (0..ROOMS).map(|r| per_room_dest(r, dest)).collect();
                std::thread::spawn(move || {
                    let mut next = vec![0u32; want.len()];
                    let mut buf = [0u8; 16];
                    while next != want {
                        let n = rx.recv(&mut buf).expect("every datagram arrives");
                        assert_eq!(n, 5);
                        let room = usize::from(buf[0]);
                        let seq = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                        assert_eq!(seq, next[room], "room {room}'s datagrams in order, once");
                        next[room] += 1;
                    }
                    rx.set_read_timeout(Some(Duration::from_millis(100)))
                        .expect("timeout");
                    assert!(rx.recv(&mut buf).is_err(), "nothing more");
                })
            })
            .collect();
        let rooms: Vec<_> = (0..ROOMS)
            .map(|room| {
                let (st, tos) = (Arc::clone(&st), tos.clone());
                std::thread::spawn(move || {
                    let mut seq: HashMap<usize, u32> = HashMap::new();
                    let mut k = usize::from(room);
                    let t0 = Instant::now();
                    for b in 0..BATCHES as usize {
                        let size = SIZES[b % SIZES.len()];
                        let mut batch = Vec::with_capacity(size);
                        for _ in 0..size {
                            let dest = k % tos.len();
                            let s = seq.entry(dest).or_default();
                            let mut c = vec![room];
                            c.extend_from_slice(&s.to_be_bytes());
                            *s += 1;
                            batch.push(datagram(from, tos[dest], c));
                            k += 1;
                        }
                        let mut fwd = vec![(t0, size as u32, false)];
                        st.submit(&mut batch, &mut fwd, b % 3 != 0);
                        assert!(batch.is_empty() && fwd.is_empty());
                        if b % 4 == 0 {
                            st.help();
                        }
                    }
                    st.help();
                })
            })
            .collect();
        for r in rooms {
            r.join().expect("a room");
        }
        for r in readers {
            r.join().expect("a receiver");
        }
        let total: u64 = (0..BATCHES as usize)
            .map(|b| SIZES[b % SIZES.len()] as u64)
            .sum::<u64>()
            * u64::from(ROOMS);
        ended(st);
        assert_eq!(metrics.udp_send_dropped.get(), 0, "{threads} threads");
        assert_eq!(metrics.udp_out.get(), total);
        assert_eq!(
            metrics.forward_delay.count(),
            total,
            "every copy observed once"
        );
        // Failed 1 run in 8 with two threads while a starting thread could take the
        // transport for gone and close the lanes (every batch then sent by its room).
        assert!(
            metrics.udp_send_handoffs.get() > 0,
            "{threads} threads: the lanes stayed open"
        );
    }
}

#[tokio::test]
async fn once_the_thread_is_gone_rooms_send_themselves() {
    let (socks, rx) = (sender(), receiver());
    let (from, to) = (socks[0].0, rx.local_addr().expect("b"));
    let metrics = Arc::new(Metrics::default());
    let (tx, shutdown) = watch::channel(false);
    let st = SendThread::start(socks, Arc::clone(&metrics), shutdown, 1).expect("thread");
    tx.send(true).expect("shutdown");
    let gone = Instant::now() + Duration::from_secs(5);
    while !st.lock().closed {
        assert!(Instant::now() < gone, "the thread ends on shutdown");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut b = burst(from, to, 0, 50);
    st.submit(&mut b, &mut vec![], true);
    assert!(b.is_empty());
    let mut buf = [0u8; 8];
    for i in 0..50u16 {
        let n = rx.recv(&mut buf).expect("a datagram");
        assert_eq!(&buf[..n], &i.to_be_bytes());
    }
    assert_eq!(metrics.udp_send_handoffs.get(), 0);
}
