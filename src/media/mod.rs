//! The sans-IO media core: no sockets, no clocks, no locks; time is an input.
//!
//! [`Room`] owns the participants' str0m `Rtc`s and decides, per packet and per subscriber,
//! [`Decision::Forward`] or [`Decision::Drop`] with a [`DropReason`]. The I/O shell feeds it
//! datagrams, signalling and time, and carries out its [`Output`]s.

pub mod allocation;
mod audio_slots;
pub mod codec;
pub mod codec_map;
pub mod command;
mod fanout;
pub mod forwarder;
pub mod keyframe;
mod layers;
mod negotiation;
pub mod participant;
pub mod rewrite;
pub mod room;
mod rtc_events;
pub mod sdp_check;
pub mod simulcast;
pub mod speaker;
pub mod track;

pub use command::{Event, JoinError, OfferError, Output};
pub use forwarder::{Decision, DropReason, Forwarder};
pub use room::{Room, RoomConfig, RoomCounters};
