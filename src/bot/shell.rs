//! What every bot shell (confab's in `run`, Janus's in `load::janus_shell`) does around its
//! [`ClientCore`]: datagrams taken in bursts, and the stats copy the load engine reads.

use super::core::ClientCore;
use super::BotStats;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How often the shared copy of the stats is refreshed.
const STATS_INTERVAL: Duration = Duration::from_millis(50);
/// Most datagrams taken per wake-up, so the timers and the WebSocket are never starved.
const BURST: usize = 64;

/// The core's stats as the bot's handle sees them.
pub(crate) struct StatsCopy {
    shared: Arc<Mutex<BotStats>>,
    at: Instant,
}

impl StatsCopy {
    pub(crate) fn new(shared: Arc<Mutex<BotStats>>) -> Self {
        StatsCopy {
            shared,
            at: Instant::now(),
        }
    }

    /// Copies the core's stats if the last copy is [`STATS_INTERVAL`] old: copying them for
    /// every packet would cost more than the bot's own work.
    pub(crate) fn refresh(&mut self, core: &ClientCore) {
        if self.at.elapsed() >= STATS_INTERVAL {
            self.at = Instant::now();
            if let Ok(mut s) = self.shared.lock() {
                *s = core.stats.clone();
            }
        }
    }
}

/// Hands `first` (what `recv_from` gave) to the core, then whatever else is queued, up to
/// [`BURST`]: one wake-up and one timer re-arm per burst instead of per datagram.
pub(crate) fn take_burst(
    core: &mut ClientCore,
    socket: &UdpSocket,
    buf: &mut [u8],
    first: io::Result<(usize, SocketAddr)>,
) -> io::Result<()> {
    let (n, source) = first?;
    core.handle_datagram(source, &buf[..n], Instant::now());
    for _ in 0..BURST {
        match socket.try_recv_from(buf) {
            Ok((n, source)) => core.handle_datagram(source, &buf[..n], Instant::now()),
            Err(_) => break,
        }
    }
    Ok(())
}
