//! A lean peer's SRTCP, opened once and handed packet by packet to what reads it: its
//! feedback on what we send (`control`), its sender reports on what it publishes (`reports`),
//! its keyframe requests (for the router).

use super::FastSender;
use crate::media::fast::rtcp_in::{self, Opened};
use std::time::Instant;
use str0m::media::KeyframeRequestKind;

/// What the lean path took of one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Transport-cc feedback moved the estimate.
    pub moved: bool,
    /// It was SRTCP the lean path opened (or refused): str0m must not be given it.
    pub taken: bool,
    /// It was SRTCP that failed to open.
    pub refused: bool,
    /// It was SRTCP (taken or not): what the lean path leaves to str0m, the replay guard
    /// checks first (`fast::receive`).
    pub rtcp: bool,
}

impl FastSender {
    /// One SRTCP compound (`rtcp_in::is_rtcp` said so). Before the keys, or with a profile
    /// this path does not open, it is left to str0m.
    pub(super) fn on_rtcp(&mut self, contents: &[u8], now: Instant) -> Received {
        // A peer that only publishes is never asked `state()`: its keys are taken here.
        self.poll_keys();
        let clear = match self.rtcp_in.open(contents) {
            Opened::Unkeyed => {
                return Received {
                    rtcp: true,
                    ..Received::default()
                }
            }
            Opened::Refused => {
                return Received {
                    moved: false,
                    taken: true,
                    refused: true,
                    rtcp: true,
                }
            }
            Opened::Clear(clear) => clear,
        };
        let mut moved = false;
        for packet in rtcp_in::packets(clear) {
            moved |= self.control.on_packet(packet, now);
            self.reports.on_packet(packet, now);
            rtcp_in::keyframe_requests(packet, &mut self.keyframes);
        }
        if moved && self.pad_to == 0 {
            // A sender that pads follows the estimate on its ticks, every 50 ms; one that
            // does not has no tick until feedback goes missing, so it follows here.
            self.follow_estimate(now);
        }
        Received {
            moved,
            taken: true,
            refused: false,
            rtcp: true,
        }
    }

    /// Whether keyframe requests wait for [`Self::take_keyframe_requests`].
    pub fn has_keyframe_requests(&self) -> bool {
        !self.keyframes.is_empty()
    }

    /// Moves the waiting keyframe requests, (media SSRC, kind), into `out`.
    pub fn take_keyframe_requests(&mut self, out: &mut Vec<(u32, KeyframeRequestKind)>) {
        out.append(&mut self.keyframes);
    }
}
