//! Datagram buffers reused between the lean path's sealing and the egress that sends them.
//!
//! Every forwarded copy is one datagram whose bytes must be owned (str0m's `Transmit` holds a
//! `Vec<u8>`), so without reuse each packet costs an allocation and a free. The room task
//! seals and sends on the same thread within one poll, so a per-thread free list needs no
//! locking: [`take`] pops a buffer, and egress hands every sent datagram back through
//! [`give`]. Bounded: at most [`MAX_BUFFERS`] buffers of at most [`MAX_CAPACITY`] bytes each
//! per thread (2 MiB); anything past that, or larger, is freed as before. The bound is a
//! burst's worth: one packet at 1 → 300 is 300 copies sealed before any is sent, a frame of a
//! heavy layer several of those, and every copy past the bound was a `malloc` (under
//! callgrind at 1 → 300 with 256 kept, 0.46 allocations and ~150 instructions in them per
//! copy).
//!
//! When another thread sends them (the server's send thread), it hands a whole sent batch
//! back with [`give_all`] into one shared list, one lock per batch; a thread whose own list
//! is empty moves up to [`REFILL`] of them over in one lock ([`take`]). The shared list is
//! bounded too ([`MAX_SHARED`] buffers, 2 MiB).

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

/// Most buffers kept per thread.
pub const MAX_BUFFERS: usize = 1024;
/// Largest buffer kept, bytes (a datagram's MTU-sized packet plus slack); larger ones are
/// freed, so a rare big datagram cannot pin memory.
pub const MAX_CAPACITY: usize = 2048;

/// Most buffers kept in the list shared between threads.
pub const MAX_SHARED: usize = 1024;
/// Buffers a thread moves from the shared list to its own at once.
pub const REFILL: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

static SHARED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `len` bytes: a kept one when there is one.
pub fn take(len: usize) -> Vec<u8> {
    let kept = FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.is_empty() {
            refill(&mut f);
        }
        let b = f.pop();
        // The next copy seals into the next buffer, which the send thread last wrote on
        // another core: asking for it now overlaps those misses with this copy's work
        // (benches/seal.rs: a cold seal is 15-20 % cheaper with its buffer prefetched). The
        // next copy is nearly always of the same packet (a fan-out), so `len` bytes of it:
        // a fixed 1,280 asked 20 lines for a 100-byte audio copy, and the CPU stalled on
        // those prefetches (perf at 1 -> 100 light: 2.2 % of the server's CPU on them).
        if let Some(next) = f.last() {
            prefetch_buffer(next.as_ptr(), len);
        }
        b
    });
    match kept {
        Some(mut b) => {
            b.reserve(len);
            b
        }
        // New buffers get the kept size, so any of them fits any later packet.
        None => Vec::with_capacity(len.max(MAX_CAPACITY)),
    }
}

/// Most bytes of a buffer worth having in cache before a seal writes it: one video packet.
const PREFETCH_BYTES: usize = 1280;

/// A hint only: a prefetch never faults and nothing observable changes.
#[inline]
fn prefetch_buffer(at: *const u8, len: usize) {
    crate::media::peer_table::prefetch_lines(at, len.clamp(1, PREFETCH_BYTES));
}

/// Keeps `buf` for a later [`take`], or frees it when the list is full or it is too big.
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() > MAX_CAPACITY || buf.capacity() < 1024 {
        return;
    }
    buf.clear();
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < MAX_BUFFERS {
            f.push(buf);
        }
    });
}

/// Keeps every buffer of `bufs` (sent on another thread) in the shared list, up to its
/// bound, for any thread's later [`take`]: one lock for the lot.
pub fn give_all(bufs: impl Iterator<Item = Vec<u8>>) {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    for mut buf in bufs {
        if shared.len() >= MAX_SHARED {
            break;
        }
        if (1024..=MAX_CAPACITY).contains(&buf.capacity()) {
            buf.clear();
            shared.push(buf);
        }
    }
}

/// Moves up to [`REFILL`] buffers from the shared list into this thread's (empty) one.
fn refill(local: &mut Vec<Vec<u8>>) {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let from = shared.len().saturating_sub(REFILL);
    local.extend(shared.drain(from..));
}

/// Buffers kept on this thread now.
pub fn kept() -> usize {
    FREE.with(|f| f.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_list_is_bounded() {
        // A non-empty list never reaches for the shared one, which other tests fill.
        give(Vec::with_capacity(MAX_CAPACITY));
        let base = kept();
        let b = take(1200);
        assert!(b.is_empty() && b.capacity() >= 1200);
        let ptr = b.as_ptr();
        give(b);
        assert_eq!(kept(), base);
        let again = take(1300);
        assert_eq!(again.as_ptr(), ptr, "the kept buffer comes back");
        assert_eq!(kept(), base - 1);
        for _ in 0..MAX_BUFFERS + 10 {
            give(Vec::with_capacity(MAX_CAPACITY));
        }
        assert_eq!(kept(), MAX_BUFFERS);
        // Too big, or too small to be worth keeping: freed.
        give(Vec::with_capacity(MAX_CAPACITY + 1));
        give(Vec::with_capacity(16));
        assert_eq!(kept(), MAX_BUFFERS);
        while kept() > 0 {
            take(1);
        }
    }

    #[test]
    fn buffers_given_on_one_thread_are_taken_on_another() {
        let sent: Vec<Vec<u8>> = (0..3).map(|_| Vec::with_capacity(MAX_CAPACITY)).collect();
        let ptrs: Vec<*const u8> = sent.iter().map(|b| b.as_ptr()).collect();
        std::thread::spawn(move || give_all(sent.into_iter()))
            .join()
            .expect("giver");
        // Other tests may share the list: look for ours among what a fresh thread takes.
        let taken = std::thread::spawn(|| {
            let mut got = vec![];
            for _ in 0..MAX_SHARED {
                got.push(take(1).as_ptr() as usize);
            }
            got
        })
        .join()
        .expect("taker");
        for p in ptrs {
            assert!(taken.contains(&(p as usize)), "a shared buffer is reused");
        }
        give_all((0..MAX_SHARED + 10).map(|_| Vec::with_capacity(MAX_CAPACITY)));
        assert!(SHARED.lock().expect("list").len() <= MAX_SHARED, "bounded");
    }
}
