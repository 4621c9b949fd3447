//! Server integration tests: real WebSocket and real UDP on loopback, headless str0m bots.

mod allhands;
mod audio_slots;
mod bad_input;
mod cluster;
mod common;
mod controls;
mod fuzz;
mod host_tools;
mod hostile;
mod http_hold;
mod lean;
mod lean_rtx;
mod limits;
mod load_smoke;
mod lobby;
mod meeting;
mod record;
mod record_media;
mod recording_faults;
mod recording_room;
mod rooms;
mod tls;
mod vtime;
mod webinar;
