//! What every bot shell (confab's in `run`, Janus's in `load::janus_shell`) does around its
//! [`ClientCore`]: datagrams taken in batches, the WebSocket read in a task of its own, the
//! core's timer, and the stats copy the load engine reads.
//!
//! A load run has hundreds of bots on one tokio runtime, on the same two cores as the server
//! it measures, so whatever a bot does per wake-up is paid hundreds of times per fan-out.

use super::core::ClientCore;
use super::recv::{RecvBatch, BATCH as RECV_BATCH};
use super::{BotCmd, BotError, BotStats};
use futures_util::{Stream, StreamExt};
use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

/// How often the shared copy of the stats is refreshed.
pub(crate) const STATS_INTERVAL: Duration = Duration::from_millis(50);
/// Most datagrams taken per wake-up, so the timers and the WebSocket are never starved.
const BURST: usize = 64;
/// Signalling messages read ahead of the bot's loop; the reader waits (and so stops reading
/// the socket) when this many are queued.
const READ_AHEAD: usize = 64;

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
            self.copy(core);
        }
    }

    /// Copies the core's stats now (a herd times the copies of all its bots at once).
    pub(crate) fn copy(&mut self, core: &ClientCore) {
        self.at = Instant::now();
        if let Ok(mut s) = self.shared.lock() {
            s.refresh_from(&core.stats);
        }
    }
}

thread_local! {
    /// One receive batch per runtime thread, not per bot: its buffers stay in this core's
    /// cache from one bot's wake-up to the next (hundreds of per-bot buffers would not), and
    /// nothing survives a call (the datagrams are handed over before it returns).
    static BATCH: RefCell<RecvBatch> = RefCell::new(RecvBatch::default());
}

/// Hands the core what is queued on `socket` once it is readable, up to [`BURST`] datagrams
/// in `recvmmsg` batches: one wake-up, and one system call per batch instead of per datagram.
/// Datagrams the kernel stamped (see [`super::recv::stamp_arrivals`]) are handed over with
/// their arrival time.
/// A batch that comes back short emptied the queue, so it clears the socket's readiness
/// itself instead of paying one more call to learn that it would block (a datagram arriving
/// meanwhile sets it again: tokio only clears the readiness it reported).
pub(crate) fn take_burst(core: &mut ClientCore, socket: &UdpSocket) {
    BATCH.with(|batch| {
        let Ok(mut batch) = batch.try_borrow_mut() else {
            return; // not reentrant: the core never calls back into a shell
        };
        let mut taken = 0;
        while taken < BURST {
            let mut got = 0;
            let r = socket.try_io(Interest::READABLE, || {
                got = batch.recv(socket.as_fd())?;
                if got < RECV_BATCH {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            hand_over(core, &batch, got);
            taken += got;
            if r.is_err() {
                break;
            }
        }
    });
}

/// Hands the core what is queued on the non-blocking socket `fd`, up to [`BURST`] datagrams,
/// as [`take_burst`] does for a socket a herd watches itself (see [`super::herd`]). Whether it
/// emptied the queue.
#[cfg(target_os = "linux")]
pub(crate) fn take_queued(core: &mut ClientCore, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    BATCH.with(|batch| {
        let Ok(mut batch) = batch.try_borrow_mut() else {
            return true;
        };
        let mut taken = 0;
        while taken < BURST {
            let got = batch.recv(fd).unwrap_or(0);
            hand_over(core, &batch, got);
            taken += got;
            if got < RECV_BATCH {
                return true;
            }
        }
        false
    })
}

fn hand_over(core: &mut ClientCore, batch: &RecvBatch, got: usize) {
    let now = Instant::now();
    for i in 0..got {
        match batch.get(i) {
            Some((source, data, Some(at))) => core.handle_datagram_arrived(source, data, now, at),
            Some((source, data, None)) => core.handle_datagram(source, data, now),
            None => {}
        }
    }
}

/// Has the kernel stamp arrivals on a bot's socket when the bot measures latency: the time
/// a starved tester took to read a datagram is then not counted as the network's.
pub(crate) fn stamp_arrivals(socket: &UdpSocket, decrypt: bool) -> io::Result<()> {
    if decrypt {
        super::recv::stamp_arrivals(socket.as_fd())?;
    }
    Ok(())
}

/// What reaches a bot's loop besides datagrams and its timer.
pub(crate) enum Inbound<T> {
    /// A signalling message (or the error that ended the WebSocket).
    Msg(Result<T, BotError>),
    /// A command from the bot's handle; a handle that is gone reads as [`BotCmd::Leave`].
    Cmd(BotCmd),
}

/// Signalling messages and the handle's commands, read by a task of their own and handed to
/// the bot's loop through one channel.
///
/// Polling a WebSocket costs a memset of its whole read buffer (tungstenite zeroes 128 KiB
/// before every read attempt), and a bot's `select!` polls every branch at every datagram
/// wake-up: an empty channel's poll still reads its blocks, a few cold cache lines per bot per
/// wake. So the reader counts what it sends in `sent` before sending it, and the loop polls the
/// channel only while it has received fewer; its waker stays registered in between, so a new
/// message still wakes it.
pub(crate) struct WsReader<T> {
    rx: mpsc::Receiver<Inbound<T>>,
    sent: Arc<AtomicU64>,
    received: u64,
    /// The channel was seen empty with this task's waker registered, and nothing was
    /// announced since.
    armed: bool,
    task: JoinHandle<()>,
}

/// Announces one more item (or the end) before it is sent, and the end when the reader stops
/// however it stops (an abort drops it too).
struct Announce(Arc<AtomicU64>, Option<Arc<Notify>>);

impl Announce {
    fn one(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// Wakes a herd's loop (see [`super::herd`]) once the item is in the channel.
    fn sent(&self) {
        if let Some(n) = &self.1 {
            n.notify_one();
        }
    }
}

impl Drop for Announce {
    fn drop(&mut self) {
        self.one();
        self.sent();
    }
}

impl<T: Send + 'static> WsReader<T> {
    /// Reads `stream` until it ends, fails or this reader is dropped, turning each text frame
    /// into a message with `parse` (other frames are skipped; the first error ends it), and
    /// forwards `cmds`. After [`BotCmd::Freeze`] it reads nothing more from the WebSocket (a
    /// frozen peer: the socket stays open but nothing is read or answered) and ends when the
    /// handle is gone.
    pub(crate) fn spawn<S>(
        mut stream: S,
        mut cmds: mpsc::UnboundedReceiver<BotCmd>,
        parse: fn(&str) -> Result<T, BotError>,
        notify: Option<Arc<Notify>>,
    ) -> Self
    where
        S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let sent = Arc::new(AtomicU64::new(0));
        let announce = Announce(Arc::clone(&sent), notify);
        let task = tokio::spawn(async move {
            // Dropped in reverse: the end is announced before the channel closes, so a loop
            // the close wakes (on another thread) sees it announced, not an armed `Pending`.
            let tx = tx;
            let announce = announce;
            loop {
                let item = tokio::select! {
                    cmd = cmds.recv() => {
                        let cmd = cmd.unwrap_or(BotCmd::Leave);
                        let (leave, freeze) =
                            (matches!(cmd, BotCmd::Leave), matches!(cmd, BotCmd::Freeze));
                        announce.one();
                        if tx.send(Inbound::Cmd(cmd)).await.is_err() || leave {
                            return;
                        }
                        announce.sent();
                        if freeze {
                            while cmds.recv().await.is_some() {}
                            return;
                        }
                        continue;
                    }
                    msg = stream.next() => match msg {
                        None | Some(Ok(Message::Close(_))) => return,
                        Some(Err(e)) => Err(BotError::Ws(e.to_string())),
                        Some(Ok(Message::Text(t))) => parse(t.as_str()),
                        Some(Ok(_)) => continue,
                    },
                };
                let failed = item.is_err();
                announce.one();
                if tx.send(Inbound::Msg(item)).await.is_err() || failed {
                    return;
                }
                announce.sent();
            }
        });
        WsReader {
            rx,
            sent,
            received: 0,
            armed: false,
            task,
        }
    }

    /// The next message or command; `None` once the WebSocket closed (or, after a freeze, the
    /// handle is gone).
    pub(crate) async fn recv(&mut self) -> Option<Inbound<T>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message or command if one is queued: `Err(true)` once the reader stopped
    /// (see [`Self::recv`]), `Err(false)` when nothing is queued.
    #[cfg(target_os = "linux")]
    pub(crate) fn try_recv(&mut self) -> Result<Inbound<T>, bool> {
        self.rx.try_recv().map_err(|e| match e {
            mpsc::error::TryRecvError::Empty => false,
            mpsc::error::TryRecvError::Disconnected => true,
        })
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound<T>>> {
        if self.armed && self.sent.load(Ordering::Acquire) == self.received {
            return Poll::Pending;
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(item) => {
                self.armed = false;
                self.received += 1;
                Poll::Ready(item)
            }
            Poll::Pending => {
                self.armed = true;
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for WsReader<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The core's next deadline as one timer re-armed only when the deadline moves: a fresh
/// `sleep_until` per loop turn registered and cancelled a timer entry at every wake-up.
pub(crate) struct CoreTimer(Pin<Box<tokio::time::Sleep>>);

impl CoreTimer {
    pub(crate) fn new() -> Self {
        CoreTimer(Box::pin(tokio::time::sleep(Duration::from_secs(3600))))
    }

    /// Fires at `at` (at once if it passed).
    pub(crate) fn set(&mut self, at: Instant) {
        let at = tokio::time::Instant::from_std(at);
        if self.0.deadline() != at {
            self.0.as_mut().reset(at);
        }
    }

    /// Waits for the deadline.
    pub(crate) async fn wait(&mut self) {
        self.0.as_mut().await
    }
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
