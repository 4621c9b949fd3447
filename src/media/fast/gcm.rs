//! One AES-GCM key as aws-lc's own `EVP_AEAD_CTX`, owned here so a forwarded copy is sealed
//! in one pass from the shared payload into its datagram buffer.
//!
//! aws-lc-rs (whose aws-lc-sys build this is: same version, no new features, nothing more
//! compiled) seals in place only, so each copy first had its payload copied into the buffer
//! and then read and rewritten by the cipher; its out-of-place call wants an initialised
//! output slice (zeroing it first would be the pass saved).

use aws_lc_sys::{
    EVP_AEAD_CTX_free, EVP_AEAD_CTX_new, EVP_AEAD_CTX_open_gather, EVP_AEAD_CTX_seal_scatter,
    EVP_aead_aes_128_gcm, EVP_aead_aes_256_gcm, EVP_AEAD_CTX,
};
use std::ptr::{null, NonNull};

/// Bytes of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a GCM nonce as SRTP builds it (RFC 7714 §8.1).
const NONCE_LEN: usize = 12;

/// An AES-128- or AES-256-GCM key with a 16-byte tag.
pub struct Gcm {
    /// Made by `EVP_AEAD_CTX_new`, freed on drop, never moved (aws-lc aligns its state inside
    /// the allocation at initialisation).
    ctx: NonNull<EVP_AEAD_CTX>,
}

// SAFETY: the context is owned by this value alone; aws-lc's seal and open take it as
// `const` and keep no per-call state in it, so it may be used from any thread.
unsafe impl Send for Gcm {}
// SAFETY: as above: shared use only ever reads the context.
unsafe impl Sync for Gcm {}

impl Gcm {
    /// A key of 16 (AES-128) or 32 (AES-256) bytes.
    pub fn new(key: &[u8]) -> Gcm {
        assert!(key.len() == 16 || key.len() == 32, "AES-GCM key length");
        // SAFETY: the algorithm getters return static descriptors; the key pointer and length
        // describe `key`; aws-lc copies what it needs.
        let ctx = unsafe {
            let aead = match key.len() {
                16 => EVP_aead_aes_128_gcm(),
                _ => EVP_aead_aes_256_gcm(),
            };
            EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), TAG_LEN)
        };
        // Null only when allocation fails, which Rust's own allocations treat as fatal too.
        let ctx = NonNull::new(ctx).expect("aws-lc could not allocate an AES-GCM context");
        Gcm { ctx }
    }

    /// Asks the CPU to start bringing this key's state (AES round keys, GHASH key powers,
    /// function pointers: the whole 576-byte context, 10 cache lines as aws-lc allocates it)
    /// toward the cache, without waiting. A fan-out seals each copy with another
    /// subscriber's key, mostly out of cache; calling this on the next one's key before
    /// sealing the current copy overlaps those misses with the work (benches/seal.rs). A hint
    /// only: nothing observable changes.
    #[inline]
    pub fn prefetch(&self) {
        let ctx = self.ctx.as_ptr().cast::<u8>();
        crate::media::peer_table::prefetch_lines(ctx, std::mem::size_of::<EVP_AEAD_CTX>());
    }

    /// Seals `input` after the `out[aad_from..]` bytes already in `out`, which are the
    /// authenticated data: ciphertext then tag are written straight into `out`'s spare
    /// capacity, so the payload is read once and the buffer written once. Returns false (and
    /// leaves `out` as it was) only past GCM's length limit, which a datagram never nears.
    pub fn seal_append(
        &self,
        iv: &[u8; NONCE_LEN],
        aad_from: usize,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let len = out.len();
        let aad_from = aad_from.min(len);
        out.reserve(input.len() + TAG_LEN);
        let mut tag_len = 0usize;
        // One raw pointer for both the header (read) and the spare capacity (written): the
        // two ranges are disjoint, and `input` is not in `out` (it is borrowed separately).
        let base = out.as_mut_ptr();
        // SAFETY: `reserve` made room for `input.len() + TAG_LEN` bytes past `len`; the
        // ciphertext goes to `[len, len + input.len())`, the tag right after it, and the
        // authenticated data is `[aad_from, len)`, initialised. aws-lc writes at most
        // `TAG_LEN` tag bytes (the maximum passed) and reports how many.
        let ok = unsafe {
            let dst = base.add(len);
            EVP_AEAD_CTX_seal_scatter(
                self.ctx.as_ptr(),
                dst,
                dst.add(input.len()),
                &mut tag_len,
                TAG_LEN,
                iv.as_ptr(),
                NONCE_LEN,
                input.as_ptr(),
                input.len(),
                null(),
                0,
                base.add(aad_from),
                len - aad_from,
            ) == 1
        };
        if !ok || tag_len != TAG_LEN {
            return false;
        }
        // SAFETY: aws-lc initialised exactly these bytes above.
        unsafe { out.set_len(len + input.len() + TAG_LEN) };
        true
    }

    /// Seals `in_out` in place with `aad` authenticated; returns the tag.
    pub fn seal_in_place(
        &self,
        iv: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        let mut tag = [0u8; TAG_LEN];
        let mut tag_len = 0usize;
        // SAFETY: in and out are the same slice (aws-lc allows exact aliasing); the tag buffer
        // holds the maximum passed; every pointer and length describes a live slice.
        let ok = unsafe {
            let p = in_out.as_mut_ptr();
            EVP_AEAD_CTX_seal_scatter(
                self.ctx.as_ptr(),
                p,
                tag.as_mut_ptr(),
                &mut tag_len,
                TAG_LEN,
                iv.as_ptr(),
                NONCE_LEN,
                p,
                in_out.len(),
                null(),
                0,
                aad.as_ptr(),
                aad.len(),
            ) == 1
        };
        (ok && tag_len == TAG_LEN).then_some(tag)
    }

    /// Opens `input` (ciphertext then tag) into `out`, which must be the ciphertext's length;
    /// false when it is not authentic or the lengths do not fit.
    pub fn open(&self, iv: &[u8; NONCE_LEN], aad: &[u8], input: &[u8], out: &mut [u8]) -> bool {
        let Some(split) = input.len().checked_sub(TAG_LEN) else {
            return false;
        };
        if out.len() != split {
            return false;
        }
        let (ciphertext, tag) = input.split_at(split);
        // SAFETY: every pointer and length describes a live slice; `out` does not overlap
        // `input` (one is borrowed mutably, the other shared).
        unsafe {
            EVP_AEAD_CTX_open_gather(
                self.ctx.as_ptr(),
                out.as_mut_ptr(),
                iv.as_ptr(),
                NONCE_LEN,
                ciphertext.as_ptr(),
                ciphertext.len(),
                tag.as_ptr(),
                TAG_LEN,
                aad.as_ptr(),
                aad.len(),
            ) == 1
        }
    }
}

impl Drop for Gcm {
    fn drop(&mut self) {
        // SAFETY: made by `EVP_AEAD_CTX_new` and freed only here (which also wipes the key).
        unsafe { EVP_AEAD_CTX_free(self.ctx.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

    #[test]
    fn one_pass_sealing_matches_aws_lc_rs_and_opens_again() {
        for (alg, len) in [(&AES_128_GCM, 16), (&AES_256_GCM, 32)] {
            let key: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(29) ^ 0x33).collect();
            let ours = Gcm::new(&key);
            let theirs = LessSafeKey::new(UnboundKey::new(alg, &key).expect("key"));
            let iv = [7u8; 12];
            let header = [0x80u8, 96, 0, 1, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
            let payload: Vec<u8> = (0..1100u32).map(|i| (i * 7) as u8).collect();
            // Two bytes before the header are neither encrypted nor authenticated.
            let mut out = vec![0xEE, 0xFF];
            out.extend_from_slice(&header);
            // A prefetch is a hint only: the seal after it is the same.
            ours.prefetch();
            assert!(ours.seal_append(&iv, 2, &payload, &mut out));
            let mut expect = payload.clone();
            let tag = theirs
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(&header),
                    &mut expect,
                )
                .expect("seal");
            expect.extend_from_slice(tag.as_ref());
            assert_eq!(&out[2 + 12..], &expect[..], "same ciphertext and tag");
            let mut clear = vec![0u8; payload.len()];
            assert!(ours.open(&iv, &header, &out[14..], &mut clear));
            assert_eq!(clear, payload);
            // In place gives the same bytes; a flipped bit does not open.
            let mut again = payload.clone();
            let tag2 = ours.seal_in_place(&iv, &header, &mut again).expect("seal");
            assert_eq!((&again[..], &tag2[..]), (&expect[..1100], &expect[1100..]));
            out[20] ^= 1;
            assert!(!ours.open(&iv, &header, &out[14..], &mut clear));
        }
    }
}
