//! Many bots driven by one task: a load run's counting viewers, whose sockets one `epoll` set
//! watches, so a frame sent to hundreds of them wakes one task per herd instead of one per bot.
//!
//! A bot that only counts what it receives (see [`super::BotConfig::decrypt`]) does a few
//! hundred nanoseconds of work per datagram, and each datagram woke its own task: the wake-up
//! (readiness, scheduling, polling every branch of its `select!`) cost more than the work.
//! Here one task waits on an `epoll` descriptor holding the sockets of up to [`HERD_MAX`] bots,
//! reads every socket that is ready, runs every core whose deadline passed under one timer,
//! and reads signalling when a bot's reader says it queued something. What each bot does and
//! counts is unchanged: the same [`ClientCore`], fed the same datagrams.
//!
//! The loop (`herd_loop`) needs Linux's `epoll`; elsewhere [`Herd::AVAILABLE`] is false and
//! a bot handed to a herd runs in a task of its own.

use super::core::ClientCore;
use super::shell::{StatsCopy, WsReader};
use super::BotError;
use crate::protocol::ServerMsg;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Bots per herd: a herd runs on one thread at a time, so a large run is split into several
/// the runtime's threads can share.
const HERD_MAX: usize = 64;

/// What a bot hands its herd: everything its own task would own.
pub(super) struct Member {
    pub(super) core: ClientCore,
    pub(super) ws: super::run::WsTx,
    pub(super) socket: std::net::UdpSocket,
    pub(super) inbox: WsReader<ServerMsg>,
    pub(super) events: mpsc::UnboundedSender<ServerMsg>,
    pub(super) stats: StatsCopy,
}

/// Where a member's end is reported (its handle's task waits on it).
pub(super) type Done = oneshot::Sender<Result<(), BotError>>;

/// The herd bots join now: its queue, its wake-up and how many joined it.
type Current = Option<(mpsc::UnboundedSender<(Member, Done)>, Arc<Notify>, usize)>;

/// Where bots join a herd; cloned into each bot's config. Herds are started on the runtime
/// of the bot that needs one, and end once their bots are gone and every handle is dropped.
#[derive(Clone, Default)]
pub struct Herd(Arc<Mutex<Current>>);

impl std::fmt::Debug for Herd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Herd")
    }
}

impl Herd {
    /// Whether herds run on this system (they need `epoll`).
    pub const AVAILABLE: bool = cfg!(target_os = "linux");

    /// A herd for bots to join (none started yet).
    pub fn new() -> Self {
        Herd::default()
    }

    /// Hands the bot `make` builds, given the wake-up its reader must give when it queues
    /// something, to a herd with room (starting one if none has); gives it back if that herd
    /// is gone.
    pub(super) fn adopt(
        &self,
        make: impl FnOnce(Arc<Notify>) -> (Member, Done),
    ) -> Result<(), Box<(Member, Done)>> {
        if !Self::AVAILABLE {
            return Err(Box::new(make(Arc::new(Notify::new()))));
        }
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, notify, count) = match &mut *g {
            Some((tx, n, count)) if *count < HERD_MAX && !tx.is_closed() => (tx, n, count),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                let n = Arc::new(Notify::new());
                #[cfg(target_os = "linux")]
                tokio::spawn(super::herd_loop::run(rx, Arc::clone(&n)));
                #[cfg(not(target_os = "linux"))]
                drop(rx);
                let (tx, n, count) = g.insert((tx, n, 0));
                (tx, n, count)
            }
        };
        *count += 1;
        tx.send(make(Arc::clone(notify))).map_err(|e| Box::new(e.0))
    }
}
