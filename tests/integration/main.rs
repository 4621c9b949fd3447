//! Server integration tests: real WebSocket and real UDP on loopback, headless str0m bots.

mod allhands;
mod audio_slots;
mod bad_input;
mod cluster;
mod cluster_promote;
mod cluster_relay;
mod common;
mod controls;
mod egress;
mod forward_delay;
mod fuzz;
mod host_tools;
mod hostile;
mod http_hold;
mod janus;
mod lean;
mod lean_cm;
mod lean_meet;
mod lean_replay;
mod lean_rtx;
mod limits;
mod lip_sync;
// Herds need Linux's epoll (`bot::herd_loop`); elsewhere `--herd true` is refused.
#[cfg(target_os = "linux")]
mod load_herd;
mod load_smoke;
mod lobby;
mod meeting;
mod record;
mod record_media;
mod record_sync;
mod recording_faults;
mod recording_room;
mod relay;
mod relay_harness;
mod relay_promote;
mod rooms;
mod srtcp_guard;
mod tls;
mod vtime;
mod webinar;
