//! Datagram buffers reused between the lean path's sealing and the egress that sends them.
//!
//! Every forwarded copy is one datagram whose bytes must be owned (str0m's `Transmit` holds a
//! `Vec<u8>`), so without reuse each packet costs an allocation and a free. The room task
//! seals and sends on the same thread within one poll, so a per-thread free list needs no
//! locking: [`take`] pops a buffer, and egress hands every sent datagram back through
//! [`give`]. Bounded: at most [`MAX_BUFFERS`] buffers of at most [`MAX_CAPACITY`] bytes each
//! per thread (512 KiB); anything past that, or larger, is freed as before.

use std::cell::RefCell;

/// Most buffers kept per thread.
pub const MAX_BUFFERS: usize = 256;
/// Largest buffer kept, bytes (a datagram's MTU-sized packet plus slack); larger ones are
/// freed, so a rare big datagram cannot pin memory.
pub const MAX_CAPACITY: usize = 2048;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `len` bytes: a kept one when there is one.
pub fn take(len: usize) -> Vec<u8> {
    let kept = FREE.with(|f| f.borrow_mut().pop());
    match kept {
        Some(mut b) => {
            b.reserve(len);
            b
        }
        // New buffers get the kept size, so any of them fits any later packet.
        None => Vec::with_capacity(len.max(MAX_CAPACITY)),
    }
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

/// Buffers kept on this thread now.
pub fn kept() -> usize {
    FREE.with(|f| f.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_list_is_bounded() {
        let b = take(1200);
        assert!(b.is_empty() && b.capacity() >= 1200);
        let ptr = b.as_ptr();
        give(b);
        assert_eq!(kept(), 1);
        let again = take(1300);
        assert_eq!(again.as_ptr(), ptr, "the kept buffer comes back");
        assert_eq!(kept(), 0);
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
}
