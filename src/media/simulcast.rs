//! Which simulcast layer a subscription forwards: a target set by allocation, a current one
//! that changes only on a keyframe of the target so the picture never freezes or corrupts.

use super::forwarder::DropReason;
use str0m::media::Rid;

/// Index of a layer in a track, 0 = lowest quality.
pub type Layer = u8;

/// Orders a rid among its track's layers: `q` < `h` < `f` (also `l` < `m` < `h`).
pub fn layer_of(rid: Option<Rid>) -> Layer {
    match rid.as_ref().map(|r| r.as_ref()) {
        None | Some("q") | Some("l") | Some("0") => 0,
        Some("h") if rid_is_half(rid) => 1,
        Some("m") | Some("1") => 1,
        Some("f") | Some("h") | Some("2") => 2,
        Some(_) => 0,
    }
}

fn rid_is_half(_rid: Option<Rid>) -> bool {
    // `h` means "half" in the q/h/f scheme our client uses; it is the middle layer.
    true
}

/// What to do with a packet of some layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerDecision {
    /// Forward it; `switched` when it starts the newly selected layer.
    Forward {
        /// This packet begins a new layer (rewrite continuity from here).
        switched: bool,
    },
    /// Not forwarded.
    Drop(DropReason),
}

/// Target and current layer of one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerSelector {
    current: Option<Layer>,
    target: Option<Layer>,
}

impl LayerSelector {
    /// A selector aiming at `target` (None: forward nothing).
    pub fn new(target: Option<Layer>) -> Self {
        LayerSelector {
            current: None,
            target,
        }
    }

    /// The layer allocation wants.
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// Sets the target; returns whether a keyframe of the target is now needed.
    pub fn set_target(&mut self, target: Option<Layer>) -> bool {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
        target.is_some() && target != self.current
    }

    /// Whether the selector waits for a keyframe of its target.
    pub fn switching(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// Decides for one packet of `layer`.
    pub fn decide(&mut self, layer: Layer, keyframe_start: bool) -> LayerDecision {
        let Some(target) = self.target else {
            return LayerDecision::Drop(DropReason::Paused);
        };
        if layer == target && self.current != Some(target) {
            if keyframe_start {
                self.current = Some(target);
                return LayerDecision::Forward { switched: true };
            }
            if self.current.is_none() {
                return LayerDecision::Drop(DropReason::NotKeyframeYet);
            }
            return LayerDecision::Drop(DropReason::LayerMismatch);
        }
        if Some(layer) == self.current {
            LayerDecision::Forward { switched: false }
        } else {
            LayerDecision::Drop(DropReason::LayerMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_order() {
        assert_eq!(layer_of(None), 0);
        assert_eq!(layer_of(Some("q".into())), 0);
        assert_eq!(layer_of(Some("h".into())), 1);
        assert_eq!(layer_of(Some("f".into())), 2);
        assert_eq!(layer_of(Some("m".into())), 1);
    }

    #[test]
    fn switches_only_on_a_keyframe_of_the_target() {
        let mut s = LayerSelector::new(Some(2));
        assert_eq!(
            s.decide(2, false),
            LayerDecision::Drop(DropReason::NotKeyframeYet)
        );
        assert_eq!(
            s.decide(0, true),
            LayerDecision::Drop(DropReason::LayerMismatch)
        );
        assert_eq!(s.decide(2, true), LayerDecision::Forward { switched: true });
        assert_eq!(
            s.decide(2, false),
            LayerDecision::Forward { switched: false }
        );
        // Down-switch: the high layer keeps flowing until the low one has a keyframe.
        assert!(s.set_target(Some(0)));
        assert_eq!(
            s.decide(2, false),
            LayerDecision::Forward { switched: false }
        );
        assert_eq!(
            s.decide(0, false),
            LayerDecision::Drop(DropReason::LayerMismatch)
        );
        assert_eq!(s.decide(0, true), LayerDecision::Forward { switched: true });
        assert_eq!(
            s.decide(2, false),
            LayerDecision::Drop(DropReason::LayerMismatch)
        );
        assert!(!s.switching());
    }

    #[test]
    fn pausing_drops_everything() {
        let mut s = LayerSelector::new(Some(0));
        s.decide(0, true);
        assert!(!s.set_target(None));
        assert_eq!(s.decide(0, true), LayerDecision::Drop(DropReason::Paused));
        assert_eq!(s.current(), None);
    }
}
