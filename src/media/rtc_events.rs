//! What a peer's `Rtc` reports, handled: its packets go to the fan-out, keyframe requests
//! to the publisher, ICE state and downlink estimates to the peer; silent peers are reaped.

use super::room::Room;
use super::simulcast::Layer;
use crate::model::{LeaveReason, ParticipantId, TrackId};
use std::time::Instant;
use str0m::bwe::BweKind;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::{Event, IceConnectionState};

impl Room {
    pub(super) fn handle_event(&mut self, id: ParticipantId, e: Event, now: Instant) {
        match e {
            Event::RtpPacket(pkt) => self.forward(id, pkt),
            Event::KeyframeRequest(req) => {
                // A subscriber's decoder needs a keyframe of the layer it is receiving.
                let wanted = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.subscriptions.get(&req.mid))
                    .and_then(|s| Some((s.track, s.selector.current().or(s.selector.target())?)));
                if let Some((track, layer)) = wanted {
                    self.request_keyframe(track, layer, req.kind, now);
                }
            }
            Event::IceConnectionStateChange(state) => {
                let Some(p) = self.participants.get_mut(&id) else {
                    return;
                };
                match state {
                    IceConnectionState::Disconnected => {
                        p.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        p.connected = true;
                        p.disconnected_since = None;
                    }
                    _ => {}
                }
            }
            Event::Connected => {
                // Subscriptions made before the connection was up start with a fresh keyframe.
                let wanted: Vec<(TrackId, Layer)> = self
                    .participants
                    .get(&id)
                    .map(|p| {
                        p.subscriptions
                            .values()
                            .filter_map(|s| Some((s.track, s.selector.target()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                for (track, layer) in wanted {
                    self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let Some(p) = self.participants.get_mut(&id) else {
                    return;
                };
                let new = estimate.as_u64();
                // Small wobbles do not deserve a reallocation.
                let moved = p.bwe.is_none_or(|old| new.abs_diff(old) * 10 > old);
                if moved {
                    p.bwe = Some(new);
                    self.alloc_dirty = true;
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video && m.direction.is_receiving() => {
                // A fresh publisher's first frames may be lost before DTLS is up; ask early.
                let track = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.published.get(&m.mid))
                    .copied();
                let layers = track
                    .and_then(|t| self.tracks.get(&t))
                    .map(|t| t.layers.len())
                    .unwrap_or(0);
                for layer in 0..layers {
                    if let Some(track) = track {
                        self.request_keyframe(track, layer as Layer, KeyframeRequestKind::Pli, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Removes participants whose media path went silent or whose ICE stayed disconnected.
    pub(super) fn reap(&mut self, now: Instant) {
        let c = &self.config;
        let dead: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| {
                p.disconnected_since.is_some_and(|t| now >= t + c.ice_grace)
                    || (p.connected && now >= p.last_heard + c.media_timeout)
                    || !p.rtc.is_alive()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            tracing::info!(participant = %id, "media went silent; reaping");
            self.drop_peer(id, LeaveReason::Timeout);
        }
    }
}
