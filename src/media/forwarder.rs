//! One (subscriber, track) pair: decides per packet whether and how it is forwarded.

use super::rewrite::Rewriter;
use std::time::Instant;

/// Declares [`DropReason`] and its [`DropReason::ALL`] from one list, so that no reason can
/// be left out of the counters sized by it.
macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $label:literal,)*) => {
        /// Why a packet was not forwarded. Every drop has one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in declaration order (`ALL[r as usize] == r`).
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// The reason as a `/metrics` label value.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// The subscriber needs a keyframe first, and this packet does not start one.
    NotKeyframeYet => "not_keyframe_yet",
    /// The packet is older than the point where the current source started.
    Stale => "stale",
    /// The subscriber's m-line has no send stream (not negotiated for sending).
    NoSendStream => "no_send_stream",
    /// The subscriber negotiated no codec matching the publisher's.
    NoMatchingCodec => "no_matching_codec",
    /// The subscriber's DTLS/SRTP is not up yet.
    NotConnected => "not_connected",
    /// A host muted the track.
    Muted => "muted",
    /// Nobody needs this video now (invisible tile, outside last-N, or no bandwidth).
    Paused => "paused",
    /// Another simulcast layer is the one selected for this subscriber.
    LayerMismatch => "layer_mismatch",
    /// The subscriber's send queue is too far behind (its downlink estimate is below what it
    /// is sent); video waits for the queue to drain.
    Congested => "congested",
    /// The packet came on a stream the publisher's `Rtc` maps to no m-line.
    UnknownStream => "unknown_stream",
    /// The packet's m-line carries no published track (not announced in `publish`, or the
    /// sender may not publish).
    NotPublished => "not_published",
    /// The packet's payload type was not negotiated with its sender.
    UnknownPayloadType => "unknown_payload_type",
    /// The subscription the packet was meant for ended while it was in flight.
    SubscriptionGone => "subscription_gone",
}

impl DropReason {
    /// How many reasons there are: the length of a per-reason counter array.
    pub const COUNT: usize = DropReason::ALL.len();
}

/// What to do with one packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it with these rewritten numbers.
    Forward {
        /// Outgoing extended sequence number.
        seq: u64,
        /// Outgoing extended RTP timestamp.
        time: u64,
    },
    /// Do not send it.
    Drop(DropReason),
}

/// The facts about an incoming packet the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct PacketView {
    /// Extended sequence number.
    pub seq: u64,
    /// Extended RTP timestamp.
    pub time: u64,
    /// Clock rate of the codec.
    pub clock_rate: u32,
    /// Whether the packet is video.
    pub video: bool,
    /// Whether the packet starts a keyframe.
    pub keyframe_start: bool,
    /// When it arrived.
    pub arrival: Instant,
    /// When its publisher captured it, on our clock (`lipsync`; its arrival until the
    /// publisher's first sender report): what sender reports pair with its RTP time.
    pub capture: Instant,
}

/// Forwarding state of one subscription.
#[derive(Debug, Clone)]
pub struct Forwarder {
    rewriter: Rewriter,
    needs_keyframe: bool,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    /// A forwarder that waits for a keyframe before its first video packet.
    pub fn new() -> Self {
        Forwarder {
            rewriter: Rewriter::new(),
            needs_keyframe: true,
        }
    }

    /// The subscription now carries another source (a reused m-line).
    pub fn switch_source(&mut self) {
        self.rewriter.switch_source();
        self.needs_keyframe = true;
    }

    /// Whether video is held back until a keyframe arrives.
    pub fn needs_keyframe(&self) -> bool {
        self.needs_keyframe
    }

    /// Decides for one packet. Inline: per copy, and its caller is in another file (see
    /// `Sealer::seal_rtp_from`).
    #[inline]
    pub fn decide(&mut self, p: &PacketView) -> Decision {
        if p.video && self.needs_keyframe {
            if !p.keyframe_start {
                return Decision::Drop(DropReason::NotKeyframeYet);
            }
            self.needs_keyframe = false;
        }
        match self
            .rewriter
            .rewrite(p.seq, p.time, p.arrival, p.clock_rate)
        {
            Some((seq, time)) => Decision::Forward { seq, time },
            None => Decision::Drop(DropReason::Stale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(seq: u64, key: bool, at: Instant) -> PacketView {
        PacketView {
            seq,
            time: seq * 3000,
            clock_rate: 90_000,
            video: true,
            keyframe_start: key,
            arrival: at,
            capture: at,
        }
    }

    #[test]
    fn video_waits_for_keyframe_then_flows() {
        let t = Instant::now();
        let mut f = Forwarder::new();
        assert_eq!(
            f.decide(&video(100, false, t)),
            Decision::Drop(DropReason::NotKeyframeYet)
        );
        assert!(matches!(
            f.decide(&video(101, true, t)),
            Decision::Forward { seq: 1, .. }
        ));
        assert!(matches!(
            f.decide(&video(102, false, t)),
            Decision::Forward { seq: 2, .. }
        ));
    }

    #[test]
    fn audio_flows_at_once() {
        let t = Instant::now();
        let mut f = Forwarder::new();
        let p = PacketView {
            seq: 9,
            time: 960,
            clock_rate: 48_000,
            video: false,
            keyframe_start: false,
            arrival: t,
            capture: t,
        };
        assert_eq!(f.decide(&p), Decision::Forward { seq: 1, time: 960 });
    }

    #[test]
    fn switch_needs_new_keyframe_and_continues_numbers() {
        let t = Instant::now();
        let mut f = Forwarder::new();
        f.decide(&video(10, true, t));
        f.decide(&video(11, false, t));
        f.switch_source();
        assert_eq!(
            f.decide(&video(500, false, t)),
            Decision::Drop(DropReason::NotKeyframeYet)
        );
        assert!(matches!(
            f.decide(&video(501, true, t)),
            Decision::Forward { seq: 3, .. }
        ));
    }
}
