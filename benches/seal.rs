//! The lean path's per-copy SRTP seal (`media::fast::gcm`) on its own: one ~1.1 kB video
//! payload sealed after its 12-byte RTP header, AES-128-GCM against AES-256-GCM, with hot and
//! with cold keys.
//!
//! "Hot" seals with one key into one buffer, as a 1 → 1 forward would. A fan-out seals each
//! copy with another subscriber's key into another datagram buffer, so the other rows rotate
//! through `contexts` keys and as many buffers: 300 (a 1 → 300 webinar: ~180 kB of keys, in
//! L2) and 4,000 (keys and buffers well past L2, as when the tester ran between two frames and
//! evicted the server's working set).
//!
//! Rows: `aes128`/`aes256` seal with [`Gcm`]; `aes256_prefetch` also calls [`Gcm::prefetch`]
//! on the next key first, as a fan-out can; `aes256_aws_alloc` seals the same way through a
//! context from aws-lc's own `EVP_AEAD_CTX_new` (Gcm's layout before it boxed the context on
//! a cache line), for the A/B; `aes256_one_buffer` rotates keys but seals into one (hot)
//! buffer, to tell the keys' misses from the output's.

use aws_lc_sys::{
    EVP_AEAD_CTX_new, EVP_AEAD_CTX_seal_scatter, EVP_aead_aes_128_gcm, EVP_aead_aes_256_gcm,
};
use confab::media::fast::gcm::Gcm;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

const PAYLOAD: usize = 1100;
const HEADER: usize = 12;

fn key(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + seed * 7 + 1) as u8).collect()
}

fn iv(seq: u32) -> [u8; 12] {
    let mut iv = [7u8; 12];
    iv[8..].copy_from_slice(&seq.to_be_bytes());
    iv
}

fn buffers(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| Vec::with_capacity(HEADER + PAYLOAD + 64))
        .collect()
}

/// A context from aws-lc's own allocator (never freed: a bench's life).
fn aws_ctx(k: &[u8]) -> usize {
    // SAFETY: static descriptor, key of the AEAD's length.
    let ctx = unsafe {
        let aead = if k.len() == 16 {
            EVP_aead_aes_128_gcm()
        } else {
            EVP_aead_aes_256_gcm()
        };
        EVP_AEAD_CTX_new(aead, k.as_ptr(), k.len(), 16) as usize
    };
    assert!(ctx != 0);
    ctx
}

/// `Gcm::seal_append`'s call, on an aws-lc-allocated context.
fn aws_seal(ctx: usize, iv: &[u8; 12], payload: &[u8], out: &mut Vec<u8>) {
    let len = out.len();
    out.reserve(payload.len() + 16);
    let mut tag_len = 0usize;
    // SAFETY: room reserved above, header initialised, input disjoint from the output.
    let ok = unsafe {
        let dst = out.as_mut_ptr().add(len);
        EVP_AEAD_CTX_seal_scatter(
            ctx as *const _,
            dst,
            dst.add(payload.len()),
            &mut tag_len,
            16,
            iv.as_ptr(),
            12,
            payload.as_ptr(),
            payload.len(),
            std::ptr::null(),
            0,
            out.as_ptr(),
            len,
        ) == 1
    };
    assert!(ok && tag_len == 16);
    // SAFETY: aws-lc wrote the ciphertext and tag.
    unsafe { out.set_len(len + payload.len() + 16) };
}

fn seal(c: &mut Criterion) {
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 13) as u8).collect();
    let header = [0x80u8, 96, 0, 1, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    let rows = [
        ("aes128", 16usize),
        ("aes256", 32),
        ("aes256_prefetch", 32),
        ("aes256_one_buffer", 32),
    ];
    for (name, key_len) in rows {
        let prefetch = name.ends_with("prefetch");
        let one_buffer = name.ends_with("one_buffer");
        for contexts in [1usize, 300, 4000] {
            let keys: Vec<Gcm> = (0..contexts).map(|i| Gcm::new(&key(key_len, i))).collect();
            let mut bufs = buffers(contexts);
            let (mut at, mut seq) = (0usize, 0u32);
            group.bench_function(BenchmarkId::new(name, contexts), |b| {
                b.iter(|| {
                    let (gcm, out) = (&keys[at], &mut bufs[if one_buffer { 0 } else { at }]);
                    at = if at + 1 == contexts { 0 } else { at + 1 };
                    if prefetch {
                        keys[at].prefetch();
                    }
                    seq = seq.wrapping_add(1);
                    out.clear();
                    out.extend_from_slice(&header);
                    assert!(gcm.seal_append(&iv(seq), 0, &payload, out));
                    out.len()
                })
            });
        }
    }
    for contexts in [1usize, 300, 4000] {
        let keys: Vec<usize> = (0..contexts).map(|i| aws_ctx(&key(32, i))).collect();
        let mut bufs = buffers(contexts);
        let (mut at, mut seq) = (0usize, 0u32);
        group.bench_function(BenchmarkId::new("aes256_aws_alloc", contexts), |b| {
            b.iter(|| {
                let (ctx, out) = (keys[at], &mut bufs[at]);
                at = if at + 1 == contexts { 0 } else { at + 1 };
                seq = seq.wrapping_add(1);
                out.clear();
                out.extend_from_slice(&header);
                aws_seal(ctx, &iv(seq), &payload, out);
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, seal);

/// One way of sealing, for the interleaved A/B ([`ab`]).
struct Variant {
    name: &'static str,
    keys: Vec<Gcm>,
    raw: Vec<usize>,
    prefetch: bool,
    bufs: Vec<Vec<u8>>,
    at: usize,
}

impl Variant {
    fn new(name: &'static str, key_len: usize, n: usize, aws: bool, prefetch: bool) -> Variant {
        Variant {
            name,
            keys: if aws {
                Vec::new()
            } else {
                (0..n).map(|i| Gcm::new(&key(key_len, i))).collect()
            },
            raw: if aws {
                (0..n).map(|i| aws_ctx(&key(key_len, i))).collect()
            } else {
                Vec::new()
            },
            prefetch,
            bufs: buffers(n),
            at: 0,
        }
    }

    fn seal(&mut self, payload: &[u8], header: &[u8; HEADER], seq: u32) {
        let n = self.bufs.len();
        let at = self.at;
        self.at = if at + 1 == n { 0 } else { at + 1 };
        let out = &mut self.bufs[at];
        out.clear();
        out.extend_from_slice(header);
        if self.raw.is_empty() {
            if self.prefetch {
                self.keys[self.at].prefetch();
            }
            assert!(self.keys[at].seal_append(&iv(seq), 0, payload, out));
        } else {
            aws_seal(self.raw[at], &iv(seq), payload, out);
        }
    }
}

/// `SEAL_AB=1`: the variants interleaved in blocks of 32 seals, so the machine's load (other
/// processes on a shared machine) falls on all alike; prints each one's median and lowest ns
/// per seal over the blocks.
fn ab() {
    // SEAL_PAYLOAD=16 shows the fixed cost of a call (IV, header, tag) without the bulk.
    let len = std::env::var("SEAL_PAYLOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PAYLOAD);
    let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
    let header = [0x80u8, 96, 0, 1, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
    for n in [1usize, 300, 4000] {
        let mut vs = [
            Variant::new("aes256 aws-lc alloc", 32, n, true, false),
            Variant::new("aes256 (Gcm)", 32, n, false, false),
            Variant::new("aes128 (Gcm)", 16, n, false, false),
            Variant::new("aes256 + prefetch", 32, n, false, true),
        ];
        let blocks = 4000;
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(blocks); vs.len()];
        let mut seq = 0u32;
        for _ in 0..blocks {
            for (v, t) in vs.iter_mut().zip(times.iter_mut()) {
                let start = std::time::Instant::now();
                for _ in 0..32 {
                    seq = seq.wrapping_add(1);
                    v.seal(&payload, &header, seq);
                }
                t.push(start.elapsed().as_nanos() as f64 / 32.0);
            }
        }
        for (v, t) in vs.iter().zip(times.iter_mut()) {
            t.sort_by(f64::total_cmp);
            println!(
                "contexts {n:5}  {:22} median {:6.1} ns  p10 {:6.1}  min {:6.1}",
                v.name,
                t[t.len() / 2],
                t[t.len() / 10],
                t[0]
            );
        }
    }
}

fn main() {
    if std::env::var_os("SEAL_AB").is_some() {
        ab();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
