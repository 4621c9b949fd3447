//! The sans-IO media core, in an SFU's words: no sockets, no clocks, no locks; time is an input.
//!
//! A [`Router`] (one per room) owns its [`peer::Peer`]s and their published up-tracks
//! ([`track::UpTrack`]) and routes each incoming packet to the up-track's down-tracks
//! ([`downtrack::DownTrack`]), each deciding [`Decision::Forward`] or [`Decision::Drop`] with a
//! [`DropReason`]. The I/O shell feeds it datagrams, signalling and time, and carries out its
//! [`Output`]s.

pub mod allocation;
mod audio_slots;
pub mod codec;
pub mod codec_map;
pub mod command;
pub mod config;
pub mod downtrack;
mod fanout;
pub mod fast;
pub mod forward_log;
pub mod forwarder;
pub mod keyframe;
mod layers;
pub mod lipsync;
pub mod midmap;
pub mod msid;
mod negotiation;
pub mod peer;
pub mod peer_table;
pub mod record_tap;
pub mod relay;
pub mod rewrite;
pub mod router;
mod router_timeout;
mod rtc_events;
pub mod sdp_check;
pub mod simulcast;
pub mod speaker;
mod timers;
pub mod track;
pub mod webrtc;

pub use command::{Event, JoinError, OfferError, Output, RoomCounters};
pub use config::RoomConfig;
pub use fanout::Spill;
pub use forwarder::{Decision, DropReason, Forwarder};
pub use router::Router;
