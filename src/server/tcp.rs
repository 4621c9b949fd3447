//! ICE-TCP (RFC 6544) for networks that let no UDP through: passive candidates on the media
//! port number and on the HTTP(S) port (see `web_port`), over which the browser connects and
//! sends RFC 4571 frames (a 2-byte length, then one STUN, DTLS or SRTP packet).
//!
//! A connection is tied to its participant by the first frame, which must be a STUN binding
//! request naming a local ufrag, exactly as the UDP demux does for a new address. Frames then
//! go to the room as packets from the connection's address; the room hands transmits for that
//! address back through the connection's queue. A slow connection loses packets instead of
//! stalling the room, as a congested UDP path would.

use super::room_task::RoomMsg;
use super::udp::stun_local_ufrag;
use super::Shared;
use crate::protocol::ParticipantId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Most ICE-TCP connections at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 2048;

/// How long a new connection may take to send its first (STUN) frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Packets queued toward one connection before new ones are dropped: a few hundred
/// milliseconds of a high-rate video subscription.
const OUT_QUEUE: usize = 512;

/// What the room task keeps of a connection: where its transmits go.
#[derive(Debug)]
pub struct Link {
    /// The participant it carries.
    pub id: ParticipantId,
    /// Packets to frame and write.
    pub tx: mpsc::Sender<Vec<u8>>,
}

/// ufrag → the participant and room an ICE-TCP connection naming it belongs to. Locked once
/// per connection and per join or leave, never per packet.
pub type TcpRoutes = Mutex<HashMap<String, (ParticipantId, mpsc::Sender<RoomMsg>)>>;

impl Shared {
    pub(super) fn add_tcp_route(
        &self,
        ufrag: &str,
        id: ParticipantId,
        room: &mpsc::Sender<RoomMsg>,
    ) {
        if !self.config.room.ice_tcp && self.config.room.ice_tcp_http_port.is_none() {
            return;
        }
        if let Ok(mut routes) = self.tcp_routes.lock() {
            routes.insert(ufrag.to_string(), (id, room.clone()));
        }
    }

    pub(super) fn forget_tcp_route(&self, id: ParticipantId) {
        if let Ok(mut routes) = self.tcp_routes.lock() {
            routes.retain(|_, (owner, _)| *owner != id);
        }
    }

    fn tcp_route(&self, ufrag: &str) -> Option<(ParticipantId, mpsc::Sender<RoomMsg>)> {
        self.tcp_routes.lock().ok()?.get(ufrag).cloned()
    }
}

/// Accepts connections on `listener` until the server shuts down.
pub async fn run_listener(listener: TcpListener, announced: SocketAddr, shared: Arc<Shared>) {
    accept_until_shutdown(listener, &shared, |stream, peer| {
        take(stream, peer, announced, &shared)
    })
    .await;
}

/// Accepts on `listener` until the server shuts down, handing each connection to `take`.
pub async fn accept_until_shutdown(
    listener: TcpListener,
    shared: &Shared,
    mut take: impl FnMut(TcpStream, SocketAddr),
) {
    let mut shutdown = shared.shutdown.clone();
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

/// Serves an accepted ICE-TCP connection on its own task, unless [`MAX_CONNECTIONS`] are
/// open already (then it is closed).
pub fn take(stream: TcpStream, peer: SocketAddr, announced: SocketAddr, shared: &Arc<Shared>) {
    if shared.tcp_open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
        shared.tcp_open.fetch_sub(1, Ordering::Relaxed);
        shared.metrics.tcp_refused.inc();
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        serve(stream, peer, announced, &shared).await;
        shared.tcp_open.fetch_sub(1, Ordering::Relaxed);
    });
}

/// How long a connection to the HTTP(S) port may stay silent before it is taken for web
/// traffic (browsers and TLS clients speak first, at once).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a connection to the HTTP(S) port carries ICE-TCP: its first byte is the high
/// byte of an RFC 4571 length, 0 for any STUN or DTLS frame, where an HTTP request starts
/// with a letter and a TLS handshake with 0x16. The frame itself is checked by [`serve`].
pub async fn is_ice_tcp(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0
    )
}

/// The address a connection to the HTTP(S) port came in on, as the participant's TCP
/// candidate announces it (the public IP when one is configured).
pub fn announced_http(stream: &TcpStream, shared: &Shared) -> Option<SocketAddr> {
    Some(shared.config.announced(stream.local_addr().ok()?))
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

async fn serve(stream: TcpStream, peer: SocketAddr, announced: SocketAddr, shared: &Shared) {
    // Media is latency-bound: never hold a small packet back to fill a segment.
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Box::new([0u8; 65535]);
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut rd, &mut buf)).await;
    let Ok(Some(first)) = first else {
        shared.metrics.tcp_refused.inc();
        return;
    };
    let Some((id, room)) = stun_local_ufrag(first).and_then(|u| shared.tcp_route(u)) else {
        shared.metrics.tcp_refused.inc();
        return;
    };
    let (tx, mut out) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    if room
        .send(RoomMsg::TcpLink {
            peer,
            link: Link { id, tx },
        })
        .await
        .is_err()
    {
        return;
    }
    shared.metrics.tcp_connections.inc();
    let writer = tokio::spawn(async move {
        while let Some(packet) = out.recv().await {
            if wr.write_all(&packet).await.is_err() {
                break;
            }
        }
        // The room let go (the participant left): closing our half ends the browser's.
        let _ = wr.shutdown().await;
    });
    let mut next = Some(first.to_vec());
    loop {
        let contents = match next.take() {
            Some(c) => c,
            None => match read_frame(&mut rd, &mut buf).await {
                Some(f) => f.to_vec(),
                None => break,
            },
        };
        let msg = RoomMsg::Datagram {
            id,
            proto: Protocol::Tcp,
            source: peer,
            destination: announced,
            contents,
            at: Instant::now(),
        };
        match room.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared.metrics.tcp_dropped_full.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    let _ = room.send(RoomMsg::TcpUnlink { peer }).await;
    writer.abort();
    shared.metrics.tcp_connections.dec();
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
