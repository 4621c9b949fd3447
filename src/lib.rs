//! # confab — a video-conferencing server
//!
//! A WebRTC selective-forwarding unit (SFU) on [str0m] in RTP mode, an axum signalling endpoint,
//! and the browser client it serves itself.
//!
//! ## Two planes
//! ```text
//!  browser ──WS (JSON)──► server::session ──RoomMsg──► room task ──► media::Room (sans-IO)
//!  browser ──UDP (ICE/DTLS/SRTP)──► server::udp (ONE port) ──Datagram──► room task ──┤
//!  browser ──TCP (RFC 4571 frames, when UDP is blocked)──► server::tcp ──TcpFrame──┘
//!            (on the media port, or on the HTTP(S) port via server::web_port)
//!                                          ◄── media::Output::{Transmit, Signal, Timeout}
//! ```
//! - **Media core** ([`media`]) is sans-IO: no sockets, no clock reads, no locks. A
//!   [`media::Room`] is driven by one input at a time (`join`, `handle_client`,
//!   `handle_datagram`, `handle_timeout`, `leave`, each with `now`) and then drained through
//!   `poll_output` until [`media::Output::Timeout`]: the same contract as str0m's `Rtc`, which
//!   lets every media behaviour be tested in virtual time.
//! - **I/O shell** ([`server`]): axum for HTTP/WS, one UDP port (one socket per announced
//!   interface, all on that port) whose receiver demuxes by STUN ufrag then by source address
//!   (two hash lookups, no scan), and one tokio task per room that owns its `media::Room` and
//!   sends each burst of its datagrams (a fan-out) in as few `sendmmsg` calls as it can.
//!
//! ## Invariants
//! - A room has exactly one owner (its task): nothing in the packet path takes a lock.
//! - Every `Rtc` mutation is followed by a full drain of that `Rtc` before the next mutation.
//! - Every packet not forwarded has a [`media::DropReason`].
//! - Nothing a client sends can panic the server; a str0m panic ends only its room's task
//!   (the room's sessions get an `internal` error; the next join reopens the room).
//! - The client is always the SDP offerer (see [`protocol`]), so negotiation never has glare.
//!
//! ## Modules
//! | module | owns |
//! |---|---|
//! | [`protocol`] | every signalling message (the written-down protocol) |
//! | [`config`] | settings, defaults, CLI/env/TOML merge |
//! | [`auth`] | HS256 join tokens → room, name, role; open mode without a secret |
//! | [`conference`] | admission (mode, password, lock, lobby, bans), roles, moderation, hands |
//! | [`conference::talk`] | chat history and Q&A with upvotes |
//! | [`conference::roles`] | role → permissions table |
//! | [`conference::record`] | a room's lasting record: mode, password, lock, bans, host/presenter keys, expiry; what credentials grant |
//! | [`names`] | display-name rules (no control, bidi or zero-width characters) |
//! | [`media::room`] | membership, publications, the drain/pump loop, timeouts |
//! | `media::negotiation` | offers → answers, publications and subscriptions per m-line |
//! | `media::fanout` | the per-packet path: one incoming RTP packet to every subscriber |
//! | `media::layers` | applying allocation: layers per subscriber, last-N, publisher pauses |
//! | [`media::allocation`] | choosing layers within a bandwidth budget, by priority |
//! | [`media::simulcast`] | rid ↔ layer; switching layers only on a keyframe |
//! | [`media::speaker`] | dominant speaker from RFC 6464 audio levels |
//! | [`media::track`] | a published track, its layers and their measured rates |
//! | `media::audio_slots` | a few audio m-lines per subscriber, filled with the voices last heard |
//! | [`media::participant`] | one peer's `Rtc`, its mid ↔ track maps, parked forwarders |
//! | [`media::forwarder`] | `Forward` / `Drop(reason)` per (subscriber, track) |
//! | [`media::rewrite`] | 64-bit seq/timestamp continuity across source switches |
//! | [`media::keyframe`] | coalesced, throttled keyframe requests |
//! | [`media::codec`] | keyframe detection in VP8 / H.264 payloads |
//! | [`media::sdp_check`] | which m-lines an offer would send on (role enforcement) |
//! | [`server::udp`] | the one UDP port and its demux |
//! | [`server::recv_batch`] | many datagrams per receive call (`recvmmsg`) |
//! | [`server::tcp`] | ICE-TCP fallback on the same port number: framing, routing by ufrag |
//! | [`server::web_port`] | the HTTP(S) port shared with ICE-TCP: media told apart by its first byte |
//! | [`server::tls`] | rustls configuration from PEM files or a self-signed certificate |
//! | [`server::room_task`] | a room's task: inputs in, outputs carried out |
//! | [`server::rooms`] | room name → task (open on first join, close when empty), and kept room records until they expire; creation |
//! | [`server::api`] | the room API (`/api`, bearer key, rate-limited, JSON errors) and `/new-meeting` |
//! | [`api_client`] | a minimal HTTP client of the room API (`confab room create`, tests) |
//! | [`server::session`] | one WebSocket session, validation, rate limit, idle reaping |
//! | [`server::http`] | router: `/ws`, `/healthz`, `/metrics`, the API, embedded `web/` |
//! | [`server::metrics`] | Prometheus counters |
//! | [`bot`] | headless str0m client: sans-IO core + tokio shell (tests, load tester) |
//! | [`sim`] | virtual-time network of bot cores around a room (scenario tests, benches) |
//! | [`load`] | the load tester's engine behind `confab-load`: scenarios, probes, report; `crowd` fills a room; `ceiling` measures the kernel's own send cost; `compare` summarizes repeated runs |
//!
//! [str0m]: https://docs.rs/str0m

pub mod api_client;
pub mod auth;
pub mod bot;
pub mod conference;
pub mod config;
pub mod load;
pub mod media;
pub mod names;
pub mod protocol;
pub mod server;
pub mod sim;

pub use config::{Config, Settings};
pub use server::{Bound, StartError};

/// Runs the server until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let bound = Bound::bind(config).await?;
    let scheme = if bound.shared().config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        "confab listening on {scheme}://{} (media on udp {:?})",
        bound.http_addr(),
        bound.udp_addrs()
    );
    bound.serve(shutdown).await
}
