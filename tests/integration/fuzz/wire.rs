//! Wire targets of the shell: the STUN ufrag the UDP demux and ICE-TCP route by, RFC 4571
//! framing, and real connections to the ports where media and web traffic are told apart.

use super::config;
use crate::common::TestServer;
use confab::server::transport::stun::stun_local_ufrag;
use confab::server::transport::tcp::{frame, read_frame};
use proptest::prelude::*;
use std::time::Duration;

const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;

/// One attribute; `declared` lies about the value's length when set.
#[derive(Debug, Clone)]
pub struct Attr {
    kind: u16,
    value: Vec<u8>,
    declared: Option<u16>,
    padded: bool,
}

/// A STUN message with mutated attributes; `honest` when no field lies.
#[derive(Debug, Clone)]
pub struct Stun {
    first: u8,
    second: u8,
    length: Option<u16>,
    magic: bool,
    attrs: Vec<Attr>,
    tail: Vec<u8>,
}

impl Stun {
    fn honest(&self) -> bool {
        self.first & 0xC0 == 0
            && self.length.is_none()
            && self.magic
            && self.tail.is_empty()
            && self.attrs.iter().all(|a| a.declared.is_none() && a.padded)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut body = vec![];
        for a in &self.attrs {
            body.extend_from_slice(&a.kind.to_be_bytes());
            let len = a.declared.unwrap_or(a.value.len() as u16);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(&a.value);
            if a.padded {
                body.resize(body.len().div_ceil(4) * 4, 0);
            }
        }
        let mut m = vec![self.first, self.second];
        let len = self.length.unwrap_or(body.len() as u16);
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(if self.magic {
            &MAGIC
        } else {
            &[0x21, 0x12, 0xA4, 0x43]
        });
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m.extend_from_slice(&self.tail);
        m
    }
}

fn username() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => (ice_chars(), ice_chars()).prop_map(|(a, b)| [a, b":".to_vec(), b].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(b"::::".to_vec()),
        1 => Just(vec![0xff, b':', 0xfe]),
        1 => (0usize..600).prop_map(|n| "u".repeat(n).into_bytes()),
    ]
    .boxed()
}

/// Up to 8 characters of the ICE ufrag alphabet.
fn ice_chars() -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"abcXYZ019+/".to_vec()), 0..8).boxed()
}

fn attr() -> BoxedStrategy<Attr> {
    (
        prop_oneof![
            3 => Just(USERNAME),
            1 => prop::sample::select(vec![0x0008u16, 0x8028, 0x0024, 0x8029, 0x802A, 0x0025]),
            1 => any::<u16>(),
        ],
        prop_oneof![3 => username(), 1 => prop::collection::vec(any::<u8>(), 0..32)],
        prop::option::weighted(0.1, any::<u16>()),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(kind, value, declared, padded)| Attr {
            kind,
            value,
            declared,
            padded,
        })
        .boxed()
}

pub fn stun() -> BoxedStrategy<Stun> {
    (
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        prop_oneof![4 => Just(1u8), 1 => any::<u8>()],
        prop::option::weighted(0.1, any::<u16>()),
        prop::bool::weighted(0.9),
        prop::collection::vec(attr(), 0..6),
        prop_oneof![9 => Just(vec![]), 1 => prop::collection::vec(any::<u8>(), 0..16)],
    )
        .prop_map(|(first, second, length, magic, attrs, tail)| Stun {
            first,
            second,
            length,
            magic,
            attrs,
            tail,
        })
        .boxed()
}

/// What an honest message's first USERNAME says before its colon.
fn expected_ufrag(s: &Stun) -> Option<String> {
    let a = s.attrs.iter().find(|a| a.kind == USERNAME)?;
    let u = std::str::from_utf8(&a.value).ok()?;
    u.split(':').next().map(str::to_string)
}

proptest! {
    #![proptest_config(config(5000))]

    /// The demux's ufrag reader never panics, returns only bytes of the message, and reads
    /// honest messages exactly.
    #[test]
    fn stun_ufrag_is_read_exactly_or_not_at_all(s in stun(), blind in prop::collection::vec(any::<u8>(), 0..64)) {
        let m = s.bytes();
        let got = stun_local_ufrag(&m);
        if let Some(u) = got {
            prop_assert!(!u.contains(':'));
            prop_assert!(u.is_empty() || m.windows(u.len()).any(|w| w == u.as_bytes()));
        }
        if s.honest() {
            prop_assert_eq!(got.map(str::to_string), expected_ufrag(&s));
        }
        let _ = stun_local_ufrag(&blind);
    }

    /// RFC 4571 reading never panics or reads past a frame, and what `frame` writes reads back.
    #[test]
    fn framing_reads_back_what_was_framed(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        junk in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut stream: Vec<u8> = packets
            .iter()
            .map(|p| frame(p).expect("small packets frame"))
            .collect::<Vec<_>>()
            .concat();
        stream.extend_from_slice(&junk);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let read = rt.block_on(async {
            let mut rd: &[u8] = &stream;
            let mut buf = Box::new([0u8; 65535]);
            let mut out = vec![];
            while let Some(f) = read_frame(&mut rd, &mut buf).await {
                out.push(f.to_vec());
                prop_assert!(out.len() <= stream.len() / 2);
            }
            Ok(out)
        })?;
        prop_assert!(read.len() >= packets.len());
        prop_assert_eq!(&read[..packets.len()], &packets[..]);
        // Junk parses as frames only where its own length prefix says so.
        let extra: usize = read[packets.len()..].iter().map(|f| f.len() + 2).sum();
        prop_assert!(extra <= junk.len());
    }
}

/// What a hostile client opens a TCP connection with.
fn opening() -> BoxedStrategy<Vec<u8>> {
    let framed = |p: Vec<u8>| [&(p.len() as u16).to_be_bytes()[..], &p].concat();
    prop_oneof![
        3 => stun().prop_map(move |s| framed(s.bytes())),
        1 => (stun(), any::<u16>()).prop_map(|(s, lie)| [&lie.to_be_bytes()[..], &s.bytes()].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::sample::select(vec![
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            b"POST /ws HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n".to_vec(),
            b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00".to_vec(),
            b"\x00".to_vec(),
            vec![],
        ]),
    ]
    .boxed()
}

/// Opens a connection, writes `opening`, half-closes; the server must close within 10 s, and
/// must not answer media-looking openings (first byte 0) or anything on the media port.
async fn try_opening(
    addr: std::net::SocketAddr,
    opening: Vec<u8>,
    web: bool,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = conn.write_all(&opening).await;
    let _ = conn.shutdown().await;
    let mut rest = vec![];
    match tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await {
        Err(_) => Err(format!("kept open after {opening:?}")),
        Ok(_) if !rest.is_empty() && (!web || opening.first() == Some(&0)) => {
            Err(format!("answered {opening:?} with {} bytes", rest.len()))
        }
        Ok(_) => Ok(()),
    }
}

/// Hostile openings on both ports where media arrives over TCP, many at once; afterwards the
/// web still answers and no ICE-TCP connection is left open.
#[test]
fn hostile_tcp_openings_are_closed_and_the_web_still_answers() {
    let cases = std::env::var("CONFAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(2, |n| (n / 500).max(2));
    let mut runner = proptest::test_runner::TestRunner::new(config(cases));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runner
        .run(
            &prop::collection::vec((opening(), any::<bool>()), 24),
            |openings| {
                let result: Result<(), String> = rt.block_on(async {
                    let server = TestServer::start().await;
                    let tasks: Vec<_> = openings
                        .into_iter()
                        .map(|(o, web)| {
                            let addr = if web { server.http } else { server.udp };
                            tokio::spawn(try_opening(addr, o, web))
                        })
                        .collect();
                    for t in tasks {
                        t.await.map_err(|e| e.to_string())??;
                    }
                    healthz(server.http).await?;
                    if server.metric("confab_ice_tcp_connections") != 0.0 {
                        return Err("an ICE-TCP connection stayed open".into());
                    }
                    Ok(())
                });
                result.map_err(proptest::test_runner::TestCaseError::fail)
            },
        )
        .expect("hostile openings");
}

async fn healthz(addr: std::net::SocketAddr) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut body)).await;
    if body.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("healthz: {body}"))
    }
}
