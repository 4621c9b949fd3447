//! The lean send path: media toward a subscriber rewritten, sealed and sent by confab itself.
//!
//! str0m keeps SDP, ICE-lite, DTLS and the receive side; for peers on this path it stays
//! silent on the send streams (nothing is written through `write_rtp`, its estimator is off
//! and its report intervals are very long). What this path owns, per subscriber:
//! - [`keys`]: the SRTP keying material, copied out of str0m's DTLS through a crypto
//!   provider that wraps the default one;
//! - [`srtp`]: RFC 3711 key derivation and RFC 7714 AEAD-GCM sealing of RTP and RTCP, with
//!   SRTCP nonces that are never reused (its own reporter SSRC heads every compound);
//! - [`ice`]: the nominated pair, taken from authenticated binding requests that carry
//!   USE-CANDIDATE (str0m does not expose it);
//! - [`rtp_out`]: the header rewrite (SSRC, payload type, numbers, negotiated extensions);
//! - [`sender`]: a subscriber's send state, sender reports with the RTP/NTP mapping;
//! - [`control`]: its SRTCP opened, transport-cc feedback fed to its estimator;
//! - [`pool`]: datagram buffers reused between sealing and egress.
//!
//! Beside them, pure parts with no I/O: [`twcc`] (send register, feedback parsing) and [`gcc`]
//! (delay and loss estimator behind `Estimator`), driven through [`control`]; [`pacer`]
//! (burst-bounded) and [`history`] (per-source RTX payloads), tested on their own and not yet
//! driven by the sender.

pub mod control;
pub mod gcc;
pub mod history;
pub mod ice;
pub mod keys;
pub mod pacer;
pub mod pool;
pub mod rtp_out;
pub mod sender;
pub mod srtp;
pub mod twcc;
