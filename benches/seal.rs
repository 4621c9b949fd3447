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
    EVP_AEAD_CTX_new, EVP_AEAD_CTX_seal_scatter, EVP_CIPHER_CTX_ctrl, EVP_CIPHER_CTX_new,
    EVP_EncryptFinal_ex, EVP_EncryptInit_ex, EVP_EncryptUpdate, EVP_aead_aes_128_gcm,
    EVP_aead_aes_256_gcm, EVP_aes_256_gcm, EVP_CTRL_GCM_GET_TAG,
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

/// An `EVP_CIPHER_CTX` keyed once (its GCM state persists between packets, where the AEAD
/// call rebuilds it on the stack each time): the other public way into the same code.
fn evp_ctx(k: &[u8]) -> usize {
    // SAFETY: fresh context, static cipher, key of its length (AES-256).
    unsafe {
        let ctx = EVP_CIPHER_CTX_new();
        assert!(!ctx.is_null());
        let ok = EVP_EncryptInit_ex(
            ctx,
            EVP_aes_256_gcm(),
            std::ptr::null_mut(),
            k.as_ptr(),
            std::ptr::null(),
        );
        assert_eq!(ok, 1);
        ctx as usize
    }
}

/// Seals through the `EVP_CIPHER` calls: IV, header as AAD, payload, final, tag.
fn evp_seal(ctx: usize, iv: &[u8; 12], payload: &[u8], out: &mut Vec<u8>) {
    let len = out.len();
    out.reserve(payload.len() + 16);
    let ctx = ctx as *mut _;
    let mut n = 0;
    // SAFETY: a keyed context; room reserved above; every pointer and length describes a live
    // slice (the header read, the spare capacity written).
    let ok = unsafe {
        let base = out.as_mut_ptr();
        let dst = base.add(len);
        let mut ok = EVP_EncryptInit_ex(
            ctx,
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            iv.as_ptr(),
        ) == 1;
        ok &= EVP_EncryptUpdate(ctx, std::ptr::null_mut(), &mut n, base, len as i32) == 1;
        ok &= EVP_EncryptUpdate(ctx, dst, &mut n, payload.as_ptr(), payload.len() as i32) == 1;
        let mut m = 0;
        ok &= EVP_EncryptFinal_ex(ctx, dst.add(payload.len()), &mut m) == 1;
        ok &=
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, dst.add(payload.len()).cast()) == 1;
        ok
    };
    assert!(ok);
    // SAFETY: aws-lc wrote the ciphertext and tag.
    unsafe { out.set_len(len + payload.len() + 16) };
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
    evp: bool,
    prefetch: bool,
    bufs: Vec<Vec<u8>>,
    at: usize,
}

/// Shuffles `v` (a fixed LCG): subscribers' keys and buffers were allocated at different
/// times, so a fan-out does not walk them in address order, and the CPU's stride prefetcher
/// must not get the help a sequential walk would give it.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (x >> 33) as usize % (i + 1));
    }
}

impl Variant {
    fn new(name: &'static str, key_len: usize, n: usize, aws: bool, prefetch: bool) -> Variant {
        let mut v = Variant::ordered(name, key_len, n, aws, prefetch);
        shuffle(&mut v.keys, 1);
        shuffle(&mut v.raw, 2);
        shuffle(&mut v.bufs, 3);
        v
    }

    fn ordered(name: &'static str, key_len: usize, n: usize, aws: bool, prefetch: bool) -> Variant {
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
            evp: false,
            prefetch,
            bufs: buffers(n),
            at: 0,
        }
    }

    fn seal(&mut self, payload: &[u8], header: &[u8; HEADER], seq: u32) {
        let n = self.bufs.len();
        let at = self.at;
        self.at = if at + 1 == n { 0 } else { at + 1 };
        let next = self.bufs[self.at].as_ptr() as usize;
        let out = &mut self.bufs[at];
        out.clear();
        out.extend_from_slice(header);
        if self.raw.is_empty() {
            if self.prefetch {
                self.keys[self.at].prefetch();
            }
            if self.name.ends_with("+ buffer") {
                // The next datagram buffer too (what the seal writes), as the pool could.
                for line in (next & !63..next + HEADER + PAYLOAD + 16).step_by(64) {
                    // SAFETY: a prefetch never faults.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                            line as *const i8,
                        )
                    };
                }
            }
            assert!(self.keys[at].seal_append(&iv(seq), 0, payload, out));
        } else if self.evp {
            evp_seal(self.raw[at], &iv(seq), payload, out);
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
    // The EVP_CIPHER route must give the very bytes Gcm gives.
    let (mut a, mut b) = (header.to_vec(), header.to_vec());
    assert!(Gcm::new(&key(32, 5)).seal_append(&iv(9), 0, &payload, &mut a));
    evp_seal(evp_ctx(&key(32, 5)), &iv(9), &payload, &mut b);
    assert_eq!(a, b, "EVP_CIPHER seal differs");
    for n in [1usize, 300, 4000] {
        let mut vs = [
            Variant::new("aes256 aws-lc alloc", 32, n, true, false),
            Variant::new("aes256 (Gcm)", 32, n, false, false),
            Variant::new("aes128 (Gcm)", 16, n, false, false),
            Variant::new("aes256 + prefetch", 32, n, false, true),
            Variant::new("aes256 + prefetch + buffer", 32, n, false, true),
            Variant {
                name: "aes256 EVP_CIPHER",
                keys: Vec::new(),
                raw: {
                    let mut raw: Vec<usize> = (0..n).map(|i| evp_ctx(&key(32, i))).collect();
                    shuffle(&mut raw, 2);
                    raw
                },
                evp: true,
                prefetch: false,
                bufs: buffers(n),
                at: 0,
            },
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
                "contexts {n:5}  {:26} median {:6.1} ns  p10 {:6.1}  min {:6.1}",
                v.name,
                t[t.len() / 2],
                t[t.len() / 10],
                t[0]
            );
        }
    }
}

/// `SEAL_FRAMES=1`: a 1 → 300 fan-out's shape: each frame seals one copy per subscriber,
/// and between frames (untimed) 8 MiB are written, as the tester and the kernel running
/// between two frames would evict the server's working set from L1 and L2. Prints each
/// variant's median and p10 ns per seal over the frames.
fn frames() {
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 13) as u8).collect();
    let header = [0x80u8, 96, 0, 1, 0, 0, 0, 9, 0xAA, 0xBB, 0xCC, 0xDD];
    let n = 300;
    let mut vs = [
        Variant::new("aes256 (Gcm)", 32, n, false, false),
        Variant::new("aes256 + prefetch", 32, n, false, true),
        Variant::new("aes128 (Gcm)", 16, n, false, false),
        Variant::new("aes256 + prefetch + buffer", 32, n, false, true),
    ];
    let mut trash = vec![0u8; 8 << 20];
    let rounds = 300;
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); vs.len()];
    let mut seq = 0u32;
    for r in 0..rounds {
        for (v, t) in vs.iter_mut().zip(times.iter_mut()) {
            for chunk in trash.chunks_mut(64) {
                chunk[0] = chunk[0].wrapping_add(r as u8);
            }
            std::hint::black_box(&trash);
            let start = std::time::Instant::now();
            for _ in 0..n {
                seq = seq.wrapping_add(1);
                v.seal(&payload, &header, seq);
            }
            t.push(start.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    for (v, t) in vs.iter().zip(times.iter_mut()) {
        t.sort_by(f64::total_cmp);
        println!(
            "frames of {n}, evicted between  {:26} median {:6.1} ns  p10 {:6.1}",
            v.name,
            t[t.len() / 2],
            t[t.len() / 10]
        );
    }
}

fn main() {
    if std::env::var_os("SEAL_FRAMES").is_some() {
        frames();
        return;
    }
    if std::env::var_os("SEAL_AB").is_some() {
        ab();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
