//! The lean send path: media toward a subscriber rewritten, sealed and sent by confab itself.
//!
//! str0m keeps SDP, ICE-lite, DTLS and the receive side; for peers on this path it stays
//! silent on the send streams (nothing is written through `write_rtp`, its estimator is off
//! and its report intervals are very long). What this path owns, per subscriber:
//! - [`keys`]: the SRTP keying material, copied out of str0m's DTLS through a crypto
//!   provider that wraps the default one;
//! - [`srtp`]: RFC 3711 key derivation and RFC 7714 AEAD-GCM sealing of RTP and RTCP, with
//!   SRTCP nonces that are never reused (its own reporter SSRC heads every compound) and
//!   [`replay`] lists on what it opens, on [`gcm`]'s keys (aws-lc's context, owned: one-pass
//!   sealing into the datagram);
//! - [`ice`]: the nominated pair, taken from authenticated binding requests that carry
//!   USE-CANDIDATE (str0m does not expose it);
//! - [`rtp_out`]: the header rewrite (SSRC, payload type, numbers, negotiated extensions);
//! - [`sender`]: a subscriber's send state, sender reports with the RTP/NTP mapping; video
//!   through its [`pacer`] once it has an estimate; RTX answering its NACKs;
//! - [`rtcp_in`]: its SRTCP opened once, in our code, and walked packet by packet for the
//!   readers below and its PLI/FIR; str0m is not given it ([`receive`] joins it to the room);
//! - [`srtcp_guard`]: for every peer whose SRTCP str0m still opens (`--send-path str0m`,
//!   before the lean opener is keyed), each compound authenticated and checked
//!   against the same [`replay`] lists before str0m is given it;
//! - [`control`]: transport-cc feedback resolved against the send register
//!   (the one source of transport-wide numbers, estimation on or off) and fed to its
//!   estimator; NACKs queued; the round trip from its receiver reports;
//! - [`rtx`]: its NACKs answered from the per-source [`history`] the router fills once per
//!   incoming video packet (lean rooms only);
//! - [`reports`]: receive statistics of what the peer publishes and the receiver reports
//!   toward it (str0m's are silenced with its sender reports);
//! - [`pool`]: datagram buffers reused between sealing and egress;
//! - [`clock`]: instants as nanoseconds, converted once per fan-out for every copy's arithmetic;
//! - [`grid`]: the room's time grid its periodic work (ticks, reports) is scheduled on, so
//!   every subscriber's share of it is done in one wake.
//!
//! Beside them, pure parts with no I/O, each tested on its own: [`twcc`] (send register,
//! feedback parsing) and [`gcc`] (delay and loss estimator behind `Estimator`), driven through
//! [`control`]; [`pacer`] (burst-bounded token bucket: whole batches while within budget,
//! audio never held), driven by [`sender`] and woken from the router's timeouts; [`history`]
//! (per-source payloads bounded in bytes, age and count; a 9-byte-per-packet map per
//! subscriber m-line), driven by [`rtx`].

pub mod clock;
pub mod cm;
pub mod control;
pub mod gcc;
pub mod gcm;
pub mod grid;
pub mod history;
pub mod ice;
pub mod keys;
#[cfg(test)]
mod libsrtp_vectors;
pub mod pacer;
pub mod pool;
pub mod receive;
pub mod replay;
pub mod reports;
pub mod rtcp_in;
pub mod rtp_out;
pub mod rtx;
pub mod sender;
pub mod srtcp_guard;
pub mod srtp;
pub mod twcc;
