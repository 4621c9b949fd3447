//! ICE-TCP (RFC 6544) for networks that let no UDP through: passive candidates on the media
//! port number and on the HTTP(S) port (see `web_port`), over which the browser connects and
//! sends RFC 4571 frames (a 2-byte length, then one STUN, DTLS or SRTP packet).
//!
//! A connection is tied to its participant by the first frame, which must be a STUN binding
//! request naming a local ufrag, exactly as the UDP demux does for a new address. Frames then
//! go to the room as packets from the connection's address; the room hands transmits for that
//! address back through the connection's queue. A slow connection loses packets instead of
//! stalling the room, as a congested UDP path would.
//!
//! Nothing unauthenticated can hold the shared cap: a connection needs a first frame naming a
//! live participant within a few seconds, one source address gets only its share of the
//! slots, one participant only a few connections, and they close when it goes quiet (no STUN:
//! ICE consent lapsed) or leaves. Caps and timeouts are [`crate::config::Limits`].

use super::stun::{is_stun, stun_local_ufrag};
use super::{Route, Transport};
use crate::server::inbox::{Link, MediaMsg};
use crate::server::limits::{Refused, Slot};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Packets queued toward one connection before new ones are dropped: a few hundred
/// milliseconds of a high-rate video subscription.
const OUT_QUEUE: usize = 512;

/// Accepts connections on `listener` until the server shuts down.
pub async fn run_listener(listener: TcpListener, announced: SocketAddr, t: Arc<Transport>) {
    accept_until_shutdown(listener, &t.shutdown, |stream, peer| {
        take(stream, peer, announced, &t)
    })
    .await;
}

/// Accepts on `listener` until the server shuts down, handing each connection to `take`.
pub async fn accept_until_shutdown(
    listener: TcpListener,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    mut take: impl FnMut(TcpStream, SocketAddr),
) {
    let mut shutdown = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        take(stream, peer);
    }
}

/// Serves an accepted ICE-TCP connection on its own task, unless the connection caps (in
/// total, per source address) are reached: then it is closed and counted.
pub fn take(stream: TcpStream, peer: SocketAddr, announced: SocketAddr, t: &Arc<Transport>) {
    let slot = match t.tcp_slots.take(peer.ip()) {
        Ok(slot) => slot,
        Err(why) => {
            match why {
                Refused::Total => t.metrics.tcp_refused_full.inc(),
                Refused::Address => t.metrics.tcp_refused_address.inc(),
            };
            return;
        }
    };
    let t = Arc::clone(t);
    tokio::spawn(async move {
        serve(stream, peer, announced, &t, slot).await;
    });
}

/// How long a connection to the HTTP(S) port may stay silent before it is taken for web
/// traffic (browsers and TLS clients speak first, at once).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a connection to the HTTP(S) port carries ICE-TCP: its first byte is the high
/// byte of an RFC 4571 length, 0 for any STUN or DTLS frame, where an HTTP request starts
/// with a letter and a TLS handshake with 0x16. The frame itself is checked by `serve`.
pub async fn is_ice_tcp(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0
    )
}

/// The address a connection to the HTTP(S) port came in on, as the participant's TCP
/// candidate announces it (the public IP when one is configured).
pub fn announced_http(stream: &TcpStream, t: &Transport) -> Option<SocketAddr> {
    Some(t.announced(stream.local_addr().ok()?))
}

/// Reads one RFC 4571 frame into `buf`; `None` at the end of the stream or on an error.
pub async fn read_frame<'a>(
    rd: &mut (impl AsyncReadExt + Unpin),
    buf: &'a mut [u8; 65535],
) -> Option<&'a [u8]> {
    let len = usize::from(rd.read_u16().await.ok()?);
    let frame = &mut buf[..len];
    rd.read_exact(frame).await.ok()?;
    Some(frame)
}

/// Prefixes `packet` with its length, ready for one write.
pub fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut out = Vec::with_capacity(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

/// Links the connection to the participant its first frame names, then carries frames both
/// ways until it closes, goes idle, or the participant leaves.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    announced: SocketAddr,
    t: &Transport,
    _slot: Slot,
) {
    // Media is latency-bound: never hold a small packet back to fill a segment.
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Box::new([0u8; 65535]);
    let first_frame = t.limits().ice_tcp_first_frame;
    let first = tokio::time::timeout(first_frame, read_frame(&mut rd, &mut buf)).await;
    let Ok(Some(first)) = first else {
        t.metrics.tcp_refused.inc();
        return;
    };
    let Some(route) = stun_local_ufrag(first).and_then(|u| t.routes.lookup(u)) else {
        t.metrics.tcp_refused.inc();
        return;
    };
    if !route
        .presence
        .take_tcp(t.limits().ice_tcp_max_per_participant)
    {
        t.metrics.tcp_refused_participant.inc();
        return;
    }
    let first = first.to_vec();
    let (tx, out) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let link = MediaMsg::TcpLink {
        peer,
        link: Link { id: route.id, tx },
    };
    if let Ok(Ok(())) = tokio::time::timeout(first_frame, route.inbox.send(link)).await {
        t.metrics.tcp_connections.inc();
        let end = tokio::select! {
            // A leave also drops the room's queue: name the cause, not the effect.
            biased;
            () = route.presence.left() => End::Left,
            () = write_all(&mut wr, out) => End::Unlinked,
            end = read_all(&mut rd, &mut buf, first, &route, peer, announced, t) => end,
        };
        match end {
            End::Idle => t.metrics.tcp_closed_idle.inc(),
            End::Left => t.metrics.tcp_closed_left.inc(),
            End::Unlinked | End::Closed => 0,
        };
        // Bounded: a room too busy to take this in time drops the link when the
        // participant leaves anyway.
        let unlink = route.inbox.send(MediaMsg::TcpUnlink { peer });
        let _ = tokio::time::timeout(first_frame, unlink).await;
        t.metrics.tcp_connections.dec();
    }
    route.presence.untake_tcp();
    // Closing our half ends the browser's.
    let _ = wr.shutdown().await;
}

/// Why a linked connection ended.
enum End {
    /// The peer closed it or sent a broken frame.
    Closed,
    /// No STUN for the idle timeout.
    Idle,
    /// Its participant left.
    Left,
    /// The room let go of it.
    Unlinked,
}

/// Writes what the room queues for this connection until the room drops the queue.
async fn write_all(wr: &mut (impl AsyncWriteExt + Unpin), mut out: mpsc::Receiver<Vec<u8>>) {
    while let Some(packet) = out.recv().await {
        if wr.write_all(&packet).await.is_err() {
            break;
        }
    }
}

/// Hands frames to the room, starting with `first`, until the connection closes or goes idle.
async fn read_all(
    rd: &mut (impl AsyncReadExt + Unpin),
    buf: &mut [u8; 65535],
    first: Vec<u8>,
    route: &Route,
    peer: SocketAddr,
    announced: SocketAddr,
    t: &Transport,
) -> End {
    let mut next = Some(first);
    let mut last_stun = Instant::now();
    loop {
        let contents = match next.take() {
            Some(c) => c,
            None => {
                let idle = (last_stun + t.limits().ice_tcp_idle).into();
                match tokio::time::timeout_at(idle, read_frame(rd, buf)).await {
                    Err(_) => return End::Idle,
                    Ok(None) => return End::Closed,
                    Ok(Some(f)) => f.to_vec(),
                }
            }
        };
        if is_stun(&contents) {
            last_stun = Instant::now();
        }
        let msg = MediaMsg::Datagram {
            id: route.id,
            proto: Protocol::Tcp,
            source: peer,
            destination: announced,
            contents,
            at: Instant::now(),
        };
        match route.inbox.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                t.metrics.tcp_dropped_full.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return End::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_refuse_oversized() {
        let a = frame(b"hello").expect("small frame");
        assert_eq!(&a[..2], &[0, 5]);
        let b = frame(&[7u8; 300]).expect("frame");
        let mut stream: &[u8] = &[a.as_slice(), b.as_slice()].concat();
        let mut buf = Box::new([0u8; 65535]);
        assert_eq!(read_frame(&mut stream, &mut buf).await, Some(&b"hello"[..]));
        assert_eq!(
            read_frame(&mut stream, &mut buf).await.map(<[u8]>::len),
            Some(300)
        );
        assert_eq!(read_frame(&mut stream, &mut buf).await, None);
        assert!(frame(&vec![0u8; 70_000]).is_none());
    }

    #[tokio::test]
    async fn truncated_frame_is_the_end() {
        let mut stream: &[u8] = &[0, 10, 1, 2, 3];
        let mut buf = Box::new([0u8; 65535]);
        assert_eq!(read_frame(&mut stream, &mut buf).await, None);
    }
}
