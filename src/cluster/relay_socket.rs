//! An edge node's relay socket: relayed stage datagrams arrive here, apart from the media
//! port, and go to their edge room by the link id in their first 4 bytes.
//!
//! Why its own socket rather than the media port demuxed by the link id: the media port's
//! receiver routes by source address and STUN, and every origin would look like one unknown
//! source sending tens of thousands of datagrams a second; a socket of its own keeps that
//! hot path untouched and lets the relay's traffic be firewalled apart (`--relay-port`).
//! The datagram is opened (authenticated, replay-checked) by the edge room, which holds the
//! link key; here only the routing happens, one hash lookup under a read lock.

use super::Cluster;
use crate::server::inbox::{MediaMsg, MediaTx};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::net::UdpSocket;

/// Link id → the edge room's media inbox. Written when a link opens or closes.
#[derive(Default)]
pub struct LinkTable {
    routes: RwLock<HashMap<u32, MediaTx>>,
}

/// Largest relay datagram taken (a media packet plus the relay's overhead fits well).
const MAX_DATAGRAM: usize = 2048;

impl Cluster {
    /// Routes a new link's datagrams to `inbox`; returns its id (random, non-zero, unique
    /// among this node's links).
    pub fn route_link(&self, inbox: MediaTx) -> u32 {
        let Ok(mut r) = self.links.routes.write() else {
            return 0;
        };
        loop {
            let id: u32 = rand::random();
            if id != 0 && !r.contains_key(&id) {
                r.insert(id, inbox);
                return id;
            }
        }
    }

    /// Stops routing a link.
    pub fn unroute_link(&self, link: u32) {
        if let Ok(mut r) = self.links.routes.write() {
            r.remove(&link);
        }
    }

    fn link_inbox(&self, link: u32) -> Option<MediaTx> {
        self.links.routes.read().ok()?.get(&link).cloned()
    }

    /// The address origins send this node's relayed media to.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay_addr.get().copied()
    }

    /// Binds the relay socket on `ip` (the port of `--relay-port`) and announces it as
    /// `announced_ip`.
    pub async fn bind_relay(
        &self,
        ip: std::net::IpAddr,
        announced_ip: std::net::IpAddr,
    ) -> std::io::Result<Arc<UdpSocket>> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, self.config.relay_port)).await?;
        let sock = socket2::SockRef::from(&socket);
        // Best effort, as for the media port: a smaller buffer drops earlier under bursts.
        let _ = sock.set_recv_buffer_size(crate::server::transport::egress::SOCKET_BUFFER);
        let local = socket.local_addr()?;
        let _ = self
            .relay_addr
            .set(SocketAddr::new(announced_ip, local.port()));
        Ok(Arc::new(socket))
    }

    /// Receives relayed datagrams until the server shuts down.
    pub async fn run_relay(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let got = tokio::select! {
                r = socket.recv_from(&mut buf) => r,
                _ = shutdown.changed() => return,
            };
            let Ok((n, source)) = got else {
                continue;
            };
            self.deliver(source, &buf[..n]);
        }
    }

    fn deliver(&self, source: SocketAddr, data: &[u8]) {
        let Some(link) = data
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            self.metrics.relay_dropped("malformed");
            return;
        };
        let Some(inbox) = self.link_inbox(link) else {
            self.metrics.relay_dropped("unknown_link");
            return;
        };
        let msg = MediaMsg::Relayed {
            link,
            source,
            contents: data.to_vec(),
            at: Instant::now(),
        };
        if inbox.try_send(msg).is_err() {
            self.metrics.relay_dropped("queue_full");
        }
    }
}
