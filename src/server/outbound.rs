//! A session's outbound queue: messages serialised once (shared by every recipient of a
//! broadcast), bounded in bytes so that a client that does not read cannot pin memory.

use axum::extract::ws::Utf8Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes of serialised messages queued toward one session before the room drops it as too slow.
/// A single message larger than this (a full `joined`) is still queued when the queue is empty.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Messages queued toward one session, whatever their size (a bound on per-message overhead).
const MAX_QUEUED: usize = 4096;

/// One serialised message on its way to a session.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The JSON text; one reference-counted buffer shared by every recipient of a broadcast,
    /// handed to the WebSocket as it is (no copy per recipient).
    pub text: Utf8Bytes,
    /// The session ends after sending it (a fatal error).
    pub fatal: bool,
}

/// The room's end of a session's queue.
#[derive(Debug, Clone)]
pub struct OutboundTx {
    tx: mpsc::Sender<Frame>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The session's end of its queue.
#[derive(Debug)]
pub struct OutboundRx {
    rx: mpsc::Receiver<Frame>,
    queued: Arc<AtomicUsize>,
}

/// The queue is over its byte or message bound, or the session is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// A queue bounded at `limit` bytes.
pub fn channel(limit: usize) -> (OutboundTx, OutboundRx) {
    let (tx, rx) = mpsc::channel(MAX_QUEUED);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutboundTx {
            tx,
            queued: queued.clone(),
            limit,
        },
        OutboundRx { rx, queued },
    )
}

impl OutboundTx {
    /// Queues a frame unless that would take the queue over its bound.
    pub fn push(&self, frame: Frame) -> Result<(), Full> {
        let len = frame.text.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Full);
        }
        self.tx.try_send(frame).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            Full
        })
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl OutboundRx {
    /// The next frame; `None` once the room has dropped its end.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().await?;
        self.queued.fetch_sub(frame.text.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame if one is queued already; never waits.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(frame.text.len(), Ordering::AcqRel);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame {
            text: "x".repeat(n).into(),
            fatal: false,
        }
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_drained_by_receiving() {
        let (tx, mut rx) = channel(1000);
        // One message over the bound still passes on an empty queue.
        assert_eq!(tx.push(frame(1500)), Ok(()));
        assert_eq!(tx.push(frame(1)), Err(Full));
        assert_eq!(rx.recv().await.map(|f| f.text.len()), Some(1500));
        assert_eq!(tx.queued(), 0);
        for _ in 0..10 {
            assert_eq!(tx.push(frame(100)), Ok(()));
        }
        assert_eq!(tx.push(frame(1)), Err(Full));
        assert_eq!(tx.queued(), 1000);
        rx.recv().await;
        assert_eq!(tx.push(frame(100)), Ok(()));
    }

    #[tokio::test]
    async fn closed_receiver_refuses() {
        let (tx, rx) = channel(1000);
        drop(rx);
        assert_eq!(tx.push(frame(10)), Err(Full));
        assert_eq!(tx.queued(), 0);
    }
}
