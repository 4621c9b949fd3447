//! A herd's loop (see [`super::herd`]): one task, one `epoll` set holding its bots' sockets;
//! Linux only.

use super::core::ClientOutput;
use super::herd::{Done, Member};
use super::shell::{take_queued, CoreTimer, Inbound, STATS_INTERVAL};
use super::{BotCmd, BotError};
use crate::protocol::ClientMsg;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, Notify};

/// Ready sockets taken per `epoll_wait`.
const EVENTS: usize = 64;
/// Rounds of `epoll_wait` per wake-up, so timers and signalling are never starved.
const ROUNDS: usize = 8;

/// An `epoll` set the runtime watches for readiness.
struct Epoll(AsyncFd<OwnedFd>);

impl Epoll {
    fn new() -> io::Result<Self> {
        // SAFETY: plain system call; a non-negative result is a descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else; the `OwnedFd` keeps it
        // open, the same descriptor, for as long as the `AsyncFd` holds it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: as above.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Epoll(fd))
    }

    fn ctl(&self, op: libc::c_int, fd: &impl AsRawFd, slot: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: slot as u64,
        };
        // SAFETY: both descriptors are open; `ev` is a valid event for the call.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The slots of the sockets ready now, without waiting.
    fn ready(&self, out: &mut Vec<usize>) -> usize {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: the buffer holds `EVENTS` events; a zero timeout never blocks.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), EVENTS as _, 0) };
        let n = usize::try_from(n).unwrap_or(0);
        out.extend(evs[..n].iter().map(|e| e.u64 as usize));
        n
    }
}

/// A member as its herd keeps it.
struct Slot {
    m: Member,
    done: Done,
    deadline: Instant,
}

pub(super) async fn run(mut adopt: mpsc::UnboundedReceiver<(Member, Done)>, notify: Arc<Notify>) {
    let epoll = match Epoll::new() {
        Ok(e) => e,
        Err(e) => {
            // Every member's handle then reports this as its end.
            tracing::warn!(error = %e, "herd: no epoll set");
            return;
        }
    };
    let mut slots: Vec<Option<Slot>> = vec![];
    let mut open = true;
    let mut timer = CoreTimer::new();
    let mut stats_at = Instant::now();
    let mut ready = Vec::with_capacity(EVENTS);
    // Members to flush after this turn (reused: a turn per burst, hundreds per second).
    let mut touched: Vec<usize> = vec![];
    while open || slots.iter().any(Option::is_some) {
        let next = slots.iter().flatten().map(|s| s.deadline).min();
        timer.set(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
        let mut failed: Vec<(usize, BotError)> = vec![];
        tokio::select! {
            m = adopt.recv(), if open => match m {
                None => open = false,
                Some((m, done)) => {
                    let i = slots.iter().position(Option::is_none).unwrap_or(slots.len());
                    if let Err(e) = epoll.ctl(libc::EPOLL_CTL_ADD, &m.socket, i) {
                        let _ = done.send(Err(e.into()));
                    } else {
                        let s = Slot { m, done, deadline: Instant::now() };
                        if i == slots.len() {
                            slots.push(Some(s));
                        } else {
                            slots[i] = Some(s);
                        }
                        touched.push(i);
                        // Its reader may have queued something before it was here to see
                        // the wake-up: look at every inbox once more.
                        notify.notify_one();
                    }
                }
            },
            guard = epoll.0.readable() => {
                let Ok(mut guard) = guard else { return };
                let mut drained = false;
                for _ in 0..ROUNDS {
                    ready.clear();
                    if epoll.ready(&mut ready) == 0 {
                        drained = true;
                        break;
                    }
                    for &i in &ready {
                        if let Some(Some(s)) = slots.get_mut(i) {
                            take_queued(&mut s.m.core, s.m.socket.as_fd());
                            touched.push(i);
                        }
                    }
                }
                if drained {
                    guard.clear_ready();
                }
            }
            _ = notify.notified() => {
                for (i, slot) in slots.iter_mut().enumerate() {
                    if let Some(s) = slot.as_mut() {
                        match inbound(s).await {
                            Ok(true) => touched.push(i),
                            Ok(false) => {}
                            Err(r) => end(&epoll, slot, r),
                        }
                    }
                }
            }
            _ = timer.wait() => {
                let now = Instant::now();
                for (i, s) in slots.iter_mut().enumerate() {
                    if let Some(s) = s.as_mut().filter(|s| s.deadline <= now) {
                        match s.m.core.handle_timeout(now) {
                            Ok(()) => touched.push(i),
                            Err(e) => failed.push((i, BotError::Rtc(e.to_string()))),
                        }
                    }
                }
            }
        }
        for (i, e) in failed {
            end(&epoll, &mut slots[i], Err(e));
        }
        touched.sort_unstable();
        touched.dedup();
        for i in touched.drain(..) {
            let Some(s) = slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            match flush(&mut s.m).await {
                Ok(t) => s.deadline = t,
                Err(e) => end(&epoll, &mut slots[i], Err(e)),
            }
        }
        if stats_at.elapsed() >= STATS_INTERVAL {
            stats_at = Instant::now();
            for s in slots.iter_mut().flatten() {
                s.m.stats.copy(&s.m.core);
            }
        }
    }
}

/// Handles what the member's reader queued: `Ok(true)` if the core has something new,
/// `Err` with the result the member ends with.
async fn inbound(s: &mut Slot) -> Result<bool, Result<(), BotError>> {
    let mut any = false;
    loop {
        match s.m.inbox.try_recv() {
            Err(false) => return Ok(any),
            Err(true) => return Err(Ok(())),
            Ok(Inbound::Msg(msg)) => {
                let msg = msg.map_err(Err)?;
                s.m.core
                    .handle_signal(&msg)
                    .map_err(|e| Err(BotError::Rtc(e.to_string())))?;
                let _ = s.m.events.send(msg);
                any = true;
            }
            Ok(Inbound::Cmd(BotCmd::Leave)) => {
                let _ = super::run::send_split(&mut s.m.ws, &ClientMsg::Leave {}).await;
                let _ = futures_util::SinkExt::close(&mut s.m.ws).await;
                return Err(Ok(()));
            }
            // A frozen bot leaves the herd: its sockets stay open, unread, until its handle
            // is gone.
            Ok(Inbound::Cmd(BotCmd::Freeze)) => return Err(Ok(())),
            Ok(Inbound::Cmd(BotCmd::SendRaw(text))) => {
                let frame = tokio_tungstenite::tungstenite::Message::Text(text.into());
                futures_util::SinkExt::send(&mut s.m.ws, frame)
                    .await
                    .map_err(|e| Err(BotError::Ws(e.to_string())))?;
            }
            Ok(Inbound::Cmd(BotCmd::RestartIce | BotCmd::Move)) => {
                s.m.core.restart_ice();
                any = true;
            }
        }
    }
}

/// Removes a member, which ends with `r`. A frozen one keeps its sockets open until its
/// reader stops (its handle is gone), as a bot of its own would.
fn end(epoll: &Epoll, slot: &mut Option<Slot>, r: Result<(), BotError>) {
    let Some(s) = slot.take() else { return };
    let _ = epoll.ctl(libc::EPOLL_CTL_DEL, &s.m.socket, 0);
    let Slot { m, done, .. } = s;
    let Member {
        mut inbox,
        socket,
        ws,
        ..
    } = m;
    if r.is_ok() {
        tokio::spawn(async move {
            let _keep = (socket, ws);
            while inbox.recv().await.is_some() {}
            let _ = done.send(Ok(()));
        });
    } else {
        let _ = done.send(r);
    }
}

/// Carries out the member's outputs; when it next wants time.
async fn flush(m: &mut Member) -> Result<Instant, BotError> {
    loop {
        match m.core.poll_output() {
            ClientOutput::Timeout(t) => return Ok(t),
            ClientOutput::Transmit(t) => {
                let _ = m.socket.send_to(&t.contents, t.destination);
            }
            ClientOutput::Signal(msg) => super::run::send_split(&mut m.ws, &msg).await?,
        }
    }
}
