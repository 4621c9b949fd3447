//! A down-track: one (subscriber, track) pair deciding, per packet, forward or drop (and why).
//!
//! Four gates in order, each naming the [`DropReason`] of what it stops: the simulcast layer
//! selector, the payload-type map (the subscriber's m-line may number the codec differently),
//! the congestion gate (the subscriber's send queue is far behind), and the forwarder (wait for
//! a keyframe, continuous sequence numbers and timestamps). The decision comes in two calls,
//! [`DownTrack::admit`] then [`DownTrack::number`], because the caller looks the send stream up
//! once between them: str0m lends a stream and its codec table only one at a time.

use super::forwarder::{Decision, DropReason, Forwarder, PacketView};
use super::simulcast::{Layer, LayerDecision, LayerSelector};
use crate::model::TrackId;
use std::sync::Arc;
use std::time::Duration;
use str0m::format::PayloadParams;
use str0m::media::Pt;
use str0m::rtp::ExtensionValues;

/// Longest video may wait in a subscriber's pacer queue before new video is skipped.
const MAX_QUEUE_AGE: Duration = Duration::from_millis(400);

/// One incoming packet as every down-track of its up-track sees it: looked up once per packet.
pub struct Incoming {
    /// The up-track it belongs to.
    pub track: TrackId,
    /// Its payload (shared, not copied, by each write; owned, so that a burst's packets can
    /// be held for one fan-out: see `fanout::Held`).
    pub payload: Arc<[u8]>,
    /// Its RTP marker.
    pub marker: bool,
    /// What the decision needs to know of it.
    pub view: PacketView,
    /// `view.arrival` in `fast::clock::nanos`, converted once for every copy's arithmetic.
    pub arrival_ns: u64,
    /// Its simulcast layer (0 without simulcast).
    pub layer: Layer,
    /// Its payload type and what the publisher negotiated behind it.
    pub pt: Pt,
    /// The codec behind `pt`.
    pub params: PayloadParams,
    /// The header extensions passed on to subscribers.
    pub ext: ExtensionValues,
}

/// What the down-tracks of one packet ask of the router once the fan-out is done.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wishes {
    /// A keyframe of this layer would let a waiting subscriber start.
    pub keyframe: Option<Layer>,
    /// A subscriber switched layers: the publisher may stop encoding the one left.
    pub reallocate: bool,
}

/// One m-line of a subscriber that receives a remote track.
#[derive(Debug)]
pub struct DownTrack {
    /// The track it carries.
    pub track: TrackId,
    /// Sequence/timestamp rewriting and the wait for a keyframe.
    pub forwarder: Forwarder,
    /// Last (incoming pt → outgoing pt on this m-line, or none negotiated) mapping, so the
    /// codec lookup runs once per change.
    pub pt_cache: Option<(Pt, Option<Pt>)>,
    /// Which simulcast layer it forwards.
    pub selector: LayerSelector,
    /// Height the subscriber renders it at (device pixels); `u32::MAX` until it reports.
    pub height: u32,
    /// The layer allocation chose but the publisher does not send yet: asked of the
    /// publisher while the best layer that does arrive is forwarded.
    pub reaching: Option<Layer>,
    /// Where the lean sender keeps this m-line's stream (its own check corrects a stale one).
    pub lean_slot: u32,
}

impl DownTrack {
    /// A fresh down-track: nothing forwarded until allocation picks a layer. `height` is
    /// what the subscriber last reported for the track, if it did.
    pub fn new(track: TrackId, height: Option<u32>) -> Self {
        DownTrack {
            track,
            forwarder: Forwarder::new(),
            pt_cache: None,
            selector: LayerSelector::default(),
            height: height.unwrap_or(u32::MAX),
            reaching: None,
            lean_slot: 0,
        }
    }

    /// The m-line carries another track from now on: its numbering continues, and it starts
    /// again from a keyframe and a fresh layer choice.
    pub fn retarget(&mut self, track: TrackId, height: Option<u32>) {
        self.track = track;
        self.pt_cache = None;
        self.forwarder.switch_source();
        self.selector = LayerSelector::default();
        self.height = height.unwrap_or(u32::MAX);
        self.reaching = None;
    }

    /// First half of the decision: the layer selector and the payload-type map. `map_pt`
    /// finds the m-line's payload type for a codec; it runs only when the incoming payload
    /// type changed since the last packet.
    pub fn admit(
        &mut self,
        p: &Incoming,
        wishes: &mut Wishes,
        map_pt: impl FnOnce(PayloadParams) -> Option<Pt>,
    ) -> Result<Pt, DropReason> {
        if p.view.video {
            match self.selector.decide(p.layer, p.view.keyframe_start) {
                LayerDecision::Forward { switched } => {
                    if switched {
                        self.forwarder.switch_source();
                        wishes.reallocate = true;
                    }
                }
                LayerDecision::Drop(reason) => {
                    if self.selector.switching() {
                        wishes.keyframe = self.selector.target().or(wishes.keyframe);
                    }
                    return Err(reason);
                }
            }
        }
        let out = match self.pt_cache {
            Some((i, o)) if i == p.pt => o,
            _ => {
                let o = map_pt(p.params);
                self.pt_cache = Some((p.pt, o));
                o
            }
        };
        out.ok_or(DropReason::NoMatchingCodec)
    }

    /// Second half: the congestion gate, given how long the head of the subscriber's send
    /// queue has waited (asked only for video), then the forwarder's numbers.
    pub fn number(
        &mut self,
        p: &Incoming,
        wishes: &mut Wishes,
        queue_age: impl FnOnce() -> Option<Duration>,
    ) -> Result<(u64, u64), DropReason> {
        if p.view.video && queue_age().is_some_and(|a| a > MAX_QUEUE_AGE) {
            // The pacer is already far behind for this subscriber (estimate below demand):
            // adding video only adds delay. Skip it, and resume on a keyframe with continuous
            // numbering once the queue has drained.
            self.forwarder.switch_source();
            return Err(DropReason::Congested);
        }
        match self.forwarder.decide(&p.view) {
            Decision::Forward { seq, time } => Ok((seq, time)),
            Decision::Drop(reason) => {
                if reason == DropReason::NotKeyframeYet {
                    wishes.keyframe = Some(p.layer);
                }
                Err(reason)
            }
        }
    }
}
