//! # confab — a video-conferencing server
//!
//! A WebRTC selective-forwarding unit (SFU) on [str0m] in RTP mode, an axum signalling endpoint,
//! and the browser client it serves itself.
//!
//! ## Layers and planes
//! ```text
//!  browser ──WS (JSON)──► server::session ──RoomMsg (signalling inbox)──► room task ──► Conference
//!                                                                                 │ media calls
//!                                                                                 ▼
//!  browser ──UDP (ICE/DTLS/SRTP)──► server::transport::udp (ONE port) ─┐            media::Router
//!  browser ──TCP (RFC 4571 frames, when UDP is blocked)──► transport::tcp ─┴─MediaMsg (media inbox)─► room task ─► media::Router::handle_receive
//!            (on the media port, or on the HTTP(S) port via transport::web_port)
//!
//!  media::Router ──media::Output::{Transmit, Event, Timeout}──► Conference::poll_output
//!  Conference  ──conference::Output::{Transmit, Signal, RouteUfrag, Removed, Timeout}──► room task ──► transport::egress
//! ```
//! A room task takes signalling before media, from separate inboxes ([`server::inbox`]): a
//! burst of datagrams never delays or refuses a join. Transport never imports the room task.
//!
//! - **Model** ([`model`]): ids, roles and the one permission table, sources, room mode;
//!   shared by every layer. **Protocol** ([`protocol`]): the wire messages only, used by the
//!   conference and the session.
//! - **Conference** ([`conference`]) is the room as people see it: admission, roster, roles,
//!   moderation, hands, chat, Q&A. It is the only producer of [`protocol::ServerMsg`] and
//!   handles every [`protocol::ClientMsg`] in one exhaustive match. Sans-IO.
//! - **Media core** ([`media`]) is sans-IO: no sockets, no clock reads, no locks, no wire
//!   messages. A [`media::Router`] is driven by one input at a time (`join`, `offer`, `mute`,
//!   `video_sizes`, `pin`, `set_may_publish`, `force_mute`, `remove`, `handle_receive`,
//!   `handle_timeout`, each with `now` where time matters) and then drained through
//!   `poll_output` until [`media::Output::Timeout`]: the same contract as str0m's `Rtc`, which
//!   lets every media behaviour be tested in virtual time ([`sim`]). It reports what happened
//!   as [`media::Event`]s, which the conference turns into messages.
//! - **I/O shell** ([`server`]): axum for HTTP/WS, one UDP port (one socket per announced
//!   interface, all on that port) whose receiver routes by STUN ufrag (one table shared with
//!   ICE-TCP) then by source address (two hash lookups, no scan), and one tokio task per room
//!   that owns its `Conference` and
//!   sends each burst of its datagrams (a fan-out) in as few `sendmmsg` calls as it can.
//!
//! ## Invariants
//! - A room has exactly one owner (its task): nothing in the packet path takes a lock.
//! - Every `Rtc` input is followed by a full drain of that `Rtc` before the next input, except
//!   the fan-out's RTP writes: str0m releases written media only from a timeout, so the
//!   subscriber is marked due instead and drained by the room's next `handle_timeout`.
//! - Every packet a router receives and does not forward to a subscriber is counted under a
//!   [`media::DropReason`]: before the fan-out once (unknown stream, not published, muted, …),
//!   then once per down-track that drops it (each gate of [`media::downtrack`] names its own).
//! - The per-packet path is router (`rtc_events::route`, held until the room task's burst
//!   ends: `Router::hold_fan_outs`) → `fanout::fan_out` → `Peer::forward`
//!   → `DownTrack` → str0m write: no allocation, hashing beyond the subscriber's map lookups,
//!   or dynamic dispatch is added per packet (the peer kind is an enum `match`). On the lean
//!   send path the write is `fast::sender` instead: rewrite, seal in place, and a `Transmit`
//!   straight into the router's output (its datagram buffer taken from `fast::pool` and given
//!   back by egress after the send; the room task takes a fan-out's output every full send
//!   batch, between two subscribers: `media::Spill`). A relay peer (`Peer::Relay`) seals once
//!   per edge, not per viewer; the edge feeds what it opens into the same path (`relay::edge`
//!   → `deliver`).
//! - In `media/`, no file imports from a file that imports it: the fan-out takes the peers and
//!   counters as arguments and knows nothing of the router.
//! - Nothing a client sends can panic the server; a str0m panic ends only its room's task
//!   (the room's sessions get an `internal` error; the next join reopens the room).
//! - The client is always the SDP offerer (see [`protocol`]), so negotiation never has glare.
//!
//! ## Modules
//! | module | owns |
//! |---|---|
//! | [`model`] | ids, roles + the permission table, sources, kinds, room mode, leave reasons |
//! | [`protocol`] | every signalling message (the written-down protocol) and its version |
//! | [`protocol::host`], [`protocol::polls`] | payloads of the host tools, stage invitations, reactions and polls |
//! | `protocol::changes`, `protocol::recording`, `protocol::errors` | lobby/hand deltas, recording payloads, the stable error codes |
//! | `protocol::keyed` | serde helpers for maps keyed by ids (JSON keys only strings) |
//! | [`rate`] | the token bucket behind every rate limit |
//! | [`config`] | settings, defaults, CLI/env/TOML merge |
//! | [`auth`] | HS256 join tokens → room, name, role; open mode without a secret |
//! | [`conference`] | admission (mode, password, lock, lobby, bans), roster, roles, moderation, hands |
//! | `conference::handle` | the one exhaustive match over client messages |
//! | `conference::output` | media events → server messages; the conference's outputs (and its tick) |
//! | `conference::lists` | raised hands and the lobby sent as coalesced changes; the lobby's wait timeout |
//! | [`conference::talk`] | chat history and Q&A with upvotes |
//! | `conference::host` | role changes, spotlight, ask to unmute, mute all, stage invitations, join-muted setting, reactions |
//! | [`conference::polls`] | the room's poll: one vote each, results coalesced |
//! | `conference::recording` | recording as people see it: `joined.recording`, start/stop/failure announced, host answers |
//! | `conference::stage` | promotion from an edge: the origin takes an edge's tracks only from members served there who may publish; an edge room mirrors the origin's role |
//! | `conference::admin` | room settings per role (keys to hosts), removal with bans, the room API's calls |
//! | [`conference::record`] | a room's lasting record: mode, password, lock, bans, host/presenter keys, expiry; what credentials grant |
//! | [`names`] | display-name rules (no control, bidi or zero-width characters) |
//! | [`conference::offer_limits`] | m-lines and SDP bytes one offer may hold, checked before parsing |
//! | [`media`] | the sans-IO media core: a room's `Router` and everything it drives (the `media::` rows) |
//! | [`media::command`] | the media core's `Event`s, `Output`s, command errors and packet counters |
//! | [`media::config`] | a room's media settings (`RoomConfig`) |
//! | [`media::router`] | `Router`: a room's peers and up-tracks, the drain/pump loop, the next timeout |
//! | `media::router_timeout` | `Router::handle_timeout`: the due peers visited (lean reports, ticks, pacer releases; their `Rtc`'s timeouts), then the room's periodic work (speaker, allocation, recording, reaping) |
//! | [`media::peer`] | `enum Peer` (one variant per kind: `WebRtc`, `Relay`; how a recorder plugs in) |
//! | [`media::peer_table`] | a room's peers by id in stable boxed slots; each subscriber list entry carries its slot (checked by id), so a copy reaches its peer by one array read; the fan-out's staged prefetch of the next subscribers' state |
//! | [`media::relay`] | cross-node relay, media half: the origin's `Peer::Relay` per edge link (every track, the layers the edge needs, sealed), the edge's relayed up-tracks and what it asks back |
//! | `media::relay::origin` | the origin's end of a link: a peer subscribed to every track, sending what the edge needs, sealed, to its relay address |
//! | `media::relay::edge` | the edge's end of a link: relayed up-tracks fed from opened datagrams into the normal fan-out; the needs and keyframe requests the origin must hear |
//! | [`media::relay::wire`] | the relay datagram `[link id][SRTP packet]`: HKDF link key, sealing, opening, replay window; each packet's capture instant on the sending node's clock |
//! | [`media::relay::repair`] | relay loss repair: the edge's gap detection per relayed source and its resend requests, the origin's bounded per-source history resealed under fresh indexes |
//! | `media::relay::uplink` | promotion from an edge: the edge's relay peer toward the origin (local tracks only, its own key, ids from a block the origin gave the link), the origin's opener feeding them in as the promoted participant's tracks, needs and keyframe requests back to the edge |
//! | [`media::record_tap`] | the room's recording tap: every up-track's RTP (Opus voices, the stage's VP8), stage choice, keyframe asks |
//! | [`media::webrtc`] | `WebRtcPeer`: a browser's `Rtc`, mid ↔ track maps, down-tracks, parked forwarders; its write |
//! | `media::rtc_events` | what a peer's `Rtc` reports: packets routed, keyframe requests, ICE, estimates; reaping |
//! | `media::negotiation` | offers → answers, publications and subscriptions per m-line |
//! | [`media::msid`] | lip-sync groups: the answer names one stream per person's microphone and camera (a share its own) |
//! | `media::timers` | each peer's next deadline in a heap with lazy deletion (a deadline on a grid boundary, as lean viewers' are, in that boundary's queue instead), with the slot the peer was read in: a wake visits only the due peers, each by one array read; who must touch a peer when |
//! | `media::fanout` | the fan-out loop: for each subscriber of the up-track, decide, write, count, a packet or a burst's packets of the track in turn (a burst is held while the room task reads it: `Held`) |
//! | [`media::forward_log`] | arrival times of the forwarded copies put out (one entry per fan-out or pacer release), for the forward-delay histogram |
//! | [`media::downtrack`] | `DownTrack`: layer selector + payload-type map + congestion gate + forwarder → forward or a named drop |
//! | [`media::midmap`] | a peer's down-tracks by mid: a `Vec` reached by the index the subscriber index remembers (no hash lookup per copy) |
//! | [`media::lipsync`] | when a publisher captured a packet, on our clock: its sender reports' NTP clock carried onto ours by one offset per publisher, which our sender reports (str0m's `write_rtp` wallclock, the lean sender's) pair with the RTP time, and the recording (`record_tap`) places voices and stage video at; also a relay link's clock (the sending node's captures in each datagram) carried onto the receiving node's |
//! | `media::layers` | applying allocation: layers per subscriber, last-N, publisher pauses |
//! | [`media::allocation`] | choosing layers within a bandwidth budget, by priority |
//! | [`media::simulcast`] | rid ↔ layer; switching layers only on a keyframe |
//! | [`media::speaker`] | dominant speaker from RFC 6464 audio levels |
//! | [`media::track`] | a published track (up-track): its layers, their measured rates, its subscribers |
//! | `media::audio_slots` | a few audio m-lines per subscriber, filled with the voices last heard |
//! | [`media::fast`] | the lean send path (the default; `--send-path str0m` keeps str0m's own): SRTP keys copied out of str0m's DTLS, RFC 3711/7714 sealing, the nominated ICE pair, header rewrite, sender reports, TWCC feedback → GCC estimate (`control`, whose send register numbers every packet), NACK → RTX from a per-source history (`rtx`, `history`), a burst-bounded pacer for video (`pacer`, woken from the router's timeout), datagram buffers reused with egress (`pool`) |
//! | [`media::fast::keys`] | SRTP keying material copied out of str0m's DTLS (every browser peer's: the lean path and `srtcp_guard` read it) by a crypto provider that wraps the default one; `with_aes_cm`, the simulator's way to give both ends AES-CM keys |
//! | [`media::fast::srtp`] | RFC 3711 key derivation, RFC 7714 AEAD-GCM SRTP/SRTCP (and AES-CM through `cm`); no SRTCP nonce used twice (its own reporter SSRC heads every compound), replay lists on what it opens |
//! | [`media::fast::cm`] | AES_CM_128_HMAC_SHA1_80 SRTP/SRTCP for a peer whose DTLS chose it: str0m's provider's AES-CTR and HMAC-SHA1, its public IV and tag helpers |
//! | [`media::fast::ice`] | the nominated ICE pair, from authenticated binding requests carrying USE-CANDIDATE (str0m does not expose it): the highest pair priority of those nominated and checked within 15 s, as str0m ranks them; an ICE restart starts over under the new credentials |
//! | [`media::fast::rtp_out`] | the RTP header a subscriber receives: SSRC, payload type, numbers, negotiated extensions (mid, transport-wide sequence, abs-send-time) |
//! | [`media::fast::sender`] | a subscriber's send state: keys, nominated pair, sender reports; `streams`: per-m-line state by the down-track's slot; `paced`: video through the pacer; `resend`: NACKs answered as RTX; `feedback`: its SRTCP handed to its readers; `prefetch`: its part of the fan-out's prefetch |
//! | [`media::fast::receive`] | a lean peer's datagram before str0m: SRTCP opened once, the nomination watched; then the estimate moved, NACKs answered, keyframe requests routed to publishers |
//! | [`media::fast::twcc`] | the send register (transport-wide number, send time, size of every packet) and transport-cc feedback parsing |
//! | [`media::fast::gcc`] | the GCC-style delay and loss estimator behind a trait (AIMD, loss cap, recovery from a spurious cut); `gcc::trend`: its trendline filter and overuse detector |
//! | [`media::fast::clock`] | instants as nanoseconds on one process-wide scale: converted once per fan-out, subtracted per copy |
//! | [`media::fast::gcm`] | one AES-GCM key as aws-lc's own context (aws-lc-sys, the build aws-lc-rs links): each copy sealed in one pass from the shared payload into its datagram buffer |
//! | [`media::fast::grid`] | the room's 50 ms time grid every lean subscriber's periodic work (estimator ticks, sender and receiver reports) and the router's reallocation and reaping are scheduled on, so a slot's work is one wake and one batch |
//! | [`media::fast::reports`] | lean peers' receive statistics (RFC 3550 loss, jitter, LSR/DLSR) and our receiver reports toward what they publish |
//! | [`media::fast::replay`] | RFC 3711 replay lists: the SRTCP the lean path opens or `srtcp_guard` checks (per source) and the relay's links |
//! | [`media::fast::srtcp_guard`] | RFC 3711 replay protection for the SRTCP str0m opens (str0m 0.25 has none): each compound authenticated by opening it with the lean path's `srtp::Opener` (either profile), then its (SSRC, index) checked and recorded in `replay`'s lists; a replay is refused before str0m sees it |
//! | [`media::fast::rtcp_in`] | a lean peer's SRTCP opened once and walked for its readers (`control`, `reports`, PLI/FIR); str0m is not given it (`fast::receive` joins it to the router) |
//! | [`media::forwarder`] | keyframe wait + renumbering per down-track; `Decision`; the drop reasons |
//! | [`media::rewrite`] | 64-bit seq/timestamp continuity across source switches |
//! | [`media::keyframe`] | coalesced, throttled keyframe requests |
//! | [`media::codec`] | keyframe detection in VP8 / H.264 payloads |
//! | [`media::codec_map`] | room video codec policy (VP8 first); payload type per subscriber m-line |
//! | [`media::sdp_check`] | which m-lines an offer would send on (role enforcement) |
//! | [`server`] | the I/O shell: `Bound` (sockets bound) → serving; `Shared`, what every task shares (the `server::` rows) |
//! | [`server::transport`] | the media sockets and the one routing table (ufrag → room) for UDP and ICE-TCP |
//! | [`server::transport::udp`] | UDP ingress: the one port, routed by ufrag then by address |
//! | [`server::transport::egress`] | UDP egress: a room's burst in `sendmmsg` batches |
//! | [`server::transport::coalesce`] | a burst's datagrams to one peer as one UDP GSO message (`--udp-gso`) |
//! | [`server::transport::send_thread`] | send threads send rooms' big batches in destination lanes, overlapping their sealing (`--send-thread`, `--send-threads`; threads `confab-send0`, `confab-send1`) |
//! | [`server::transport::media_socket`] | the UDP media socket, registered for reading only (no wake per send) |
//! | [`server::transport::recv_batch`] | many datagrams per receive call (`recvmmsg`) |
//! | [`server::transport::rtcp_split`] | the media port's RTCP queued on a second socket of the same port, read with media |
//! | [`server::transport::stun`] | the ufrag a STUN binding request names |
//! | [`server::transport::tcp`] | ICE-TCP fallback on the same port number: framing, caps, idle and leave closes |
//! | [`server::transport::web_port`] | the HTTP(S) port shared with ICE-TCP: media told apart by its first byte |
//! | [`server::inbox`] | what transport hands a room: its media inbox, apart from signalling |
//! | [`server::gate`] | HTTP(S) admission: connection caps, a reserve for `/healthz` and `/metrics` |
//! | [`server::limits`] | connection slots per address; the open-file limit and caps that fit it |
//! | [`server::tls`] | rustls configuration from PEM files or a self-signed certificate |
//! | [`server::room_task`] | a room's task: inputs in, the conference's outputs carried out |
//! | `server::relay_room` | a room task's side of the cluster relay: origin links, the edge's link, track announcements |
//! | `server::edge_offers` | an edge room's viewer offers naming stage tracks not yet announced there, held until the origin's track list names them (2 s at most) |
//! | [`server::rooms`] | room name → task (open on first join, close when empty), and kept room records until they expire; creation |
//! | [`server::api`] | the room API (`/api`, bearer key, rate-limited, JSON errors) and `/new-meeting` |
//! | [`api_client`] | a minimal HTTP client of the room API (`confab room create`, tests) |
//! | [`server::session`] | one WebSocket session, validation, version, rate limit, idle reaping, write timeout |
//! | [`server::outbound`] | a session's outbound queue: serialised once per broadcast, bounded in bytes |
//! | [`server::http`] | router: `/ws`, `/healthz`, `/metrics`, the API, embedded `web/` |
//! | [`server::metrics`] | Prometheus counters |
//! | [`server::forward_delay`] | `confab_forward_delay_seconds`: arrival → hand-off to `sendmmsg` per forwarded copy, an atomic fixed-bucket histogram |
//! | [`server::recordings`] | the recordings directory, listing, signed download links; a room task's recording (start, events, close) |
//! | `server::recordings_api` | recording HTTP calls: API start/stop/list/download (Range)/delete, signed host downloads, public room status |
//! | `server::isolation` | (unit tests) a panic in one room's task leaves the other rooms forwarding |
//! | `server::stall` | (unit tests) a room that runs late keeps the peers whose datagrams it has not read yet |
//! | `server::loopback` | (unit tests) a served server on loopback ports for `isolation` and `stall` |
//! | [`record`] | server-side recording: VP8 depacketizer, stage video, Opus mix, streaming WebM, writer thread (fed by `media::record_tap`) |
//! | [`record::vp8`], [`record::stage`], [`record::mix`] | RFC 7741 depacketizing into whole frames; the stage video switched on the new source's keyframe, on one timeline; every voice mixed into one Opus track; both laid on their publishers' capture instants (lip sync) |
//! | [`record::recorder`], [`record::writer`] | the sans-IO recording core (packets and stage choices in, WebM blocks out); the file and the thread that owns a recorder |
//! | [`record::webm`], [`record::ebml`] | the streaming WebM muxer (playable if cut anywhere) and its EBML (RFC 8794) primitives |
//! | [`cluster`] | several nodes as one (`--redis-url`): heartbeats with load, room → node map in Redis, least-loaded placement, failover, drain |
//! | [`cluster::registry`] | the Redis keys: node registrations, room claims (`SET NX`, compare-and-delete), the cluster view |
//! | [`cluster::proxy`] | the signalling relay from the node that accepted a WebSocket to the room's node |
//! | [`cluster::placement`] | webinar viewers past `--max-audience-per-node` placed on edge nodes: audience counts, seat reservations, edge sets in Redis |
//! | [`cluster::edge`] | an edge's viewer session: signalling on to the origin, media messages to the edge room |
//! | [`cluster::link`] | the relay's control link (origin ⇄ edge WebSocket): hello, tracks, needs, keyframes |
//! | [`cluster::relay_socket`] | the edge's relay UDP socket: datagrams routed to edge rooms by link id |
//! | [`cluster::config`] | a node's cluster settings: where Redis is, its name, the URL other nodes relay to |
//! | [`cluster::metrics`] | the cluster's counters, appended to the node's `/metrics` |
//! | [`bot`] | headless str0m client: sans-IO core + tokio shell (tests, load tester); `bot::real` sends real VP8/Opus from a clip |
//! | [`bot::core`] | the bot's sans-IO core: negotiation, synthetic media clock, receive statistics; `core::answer`: the answering side for a server that offers (Janus); `core::keyframe`: keyframe requests of its own, as a decoder's |
//! | `bot::shell` | what both bot shells (`bot::run`, `load::janus_shell`) do around a core: datagrams in batches, the WebSocket read in its own task, the core's timer, the stats copy |
//! | `bot::herd` | many counting bots driven by one task: their sockets in one `epoll` set, one timer, signalling read when a reader announces it (`confab-load`'s viewers); `bot::herd_loop` is that task (Linux only) |
//! | `bot::recv` | a bot's datagrams in `recvmmsg` batches with the kernel's arrival stamps (`SO_TIMESTAMPNS`) |
//! | `bot::copy` | bringing a bot's stats copy up to date in place (only new `by_seq` entries) |
//! | `bot::core::send` | the bot's outgoing media: Opus every 20 ms, VP8 frames per simulcast layer |
//! | `bot::media` | synthetic VP8- and Opus-shaped payloads carrying their send time |
//! | `bot::delays` | a fixed-size log-linear histogram of one-way delays, cheap to copy |
//! | `bot::seq` | received 16-bit RTP sequence numbers extended to 64 bits, for loss counting |
//! | [`sim`] | virtual-time network of bot cores around a conference (scenario tests) |
//! | `sim::burst` | the server's side of the simulated network: datagrams read in bursts, fan-outs released (and handed over) as the room task does |
//! | `sim::net` | the simulator's links (delay, loss, bottleneck), datagrams in flight, seeded losses |
//! | [`load`] | the load tester's engine behind `confab-load`: scenarios, probes, report; `crowd` fills a room; `soak` churns rooms for a long time and checks the server's memory returns; `ceiling` measures the kernel's own send cost; `compare` summarizes repeated runs |
//! | `load::plan` | scenarios (meeting, webinar, rooms) turned into the bots to start, in join order |
//! | [`load::probe`] | what the tester reads from the server: CPU and memory from `/proc`, counters from `/metrics` |
//! | `load::report` | a run's result: one flat record, printed as a table or as JSON |
//! | [`load::delay`] | the SFU-added delay of a load window, from two scrapes of the server's forward-delay histogram |
//! | [`load::janus`] | the same bots against Janus's videoroom (`confab-load --target janus`): Janus API over WebSocket, publisher offers, viewers answer; `load::janus_shell` runs them |
//! | `conference::tests` (and `tests::host`), `protocol::tests`, `…_tests` | unit tests in files of their own: the conference's behaviour, the wire messages; `bot::shell_tests`, `config_tests`, `media::fast::gcc_tests`, `history_tests`, `reports_tests`, `srtcp_guard_tests`, `srtp_tests`, `twcc_tests`, `media::relay::wire_tests`, `server::transport::send_thread_tests`: each the `tests` of the module its name begins with; `media::fast::libsrtp_vectors`: the known answers `srtp_tests` and `srtcp_guard_tests` share |
//!
//! [str0m]: https://docs.rs/str0m

pub mod api_client;
pub mod auth;
pub mod bot;
pub mod cluster;
pub mod conference;
pub mod config;
pub mod load;
pub mod media;
pub mod model;
pub mod names;
pub mod protocol;
pub mod rate;
pub mod record;
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
