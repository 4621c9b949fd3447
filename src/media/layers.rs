//! Applying allocation: each subscriber's layer per video, last-N, what publishers must encode.

use super::allocation::{allocate, layer_for_height, Candidate, Priority};
use super::command::Event;
use super::peer::Peer;
use super::router::Router;
use super::simulcast::Layer;
use crate::model::{Kind, ParticipantId, Source, TrackId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use str0m::bwe::Bitrate;
use str0m::media::KeyframeRequestKind;

/// Downlink kept for each audio stream (Opus ~32 kbit/s plus headers) before video.
const AUDIO_RESERVE_BPS: u64 = 64_000;

/// Share of the estimate allocation may use: the rest absorbs RTX and estimate error.
const HEADROOM_PERCENT: u64 = 90;

/// Subscribers whose estimates moved that one pass re-decides alone; past it, everyone's
/// (a bound on the list between passes, which is one entry per move).
const MOST_MOVED: usize = 4096;

impl Router {
    /// Re-decides every subscriber's layers and tells publishers what to encode.
    pub(super) fn reallocate(&mut self, now: Instant) {
        self.alloc_dirty = false;
        self.alloc_moved.clear();
        let ids: Vec<ParticipantId> = self.peers.keys().copied().collect();
        self.allocate_for(&ids, now);
        self.announce_layers();
    }

    /// Re-decides the layers of the subscribers whose estimates moved, and only theirs:
    /// nothing another subscriber's allocation reads has changed. Every viewer's estimate
    /// moves while it climbs after joining and whenever its network changes; re-deciding the
    /// whole room for each move (and asking every peer for its next deadline after) made a
    /// room's work grow with the square of its size then. Publishers are told only when a
    /// layer wanted or reached changed.
    pub(super) fn reallocate_moved(&mut self, now: Instant) {
        let mut ids = std::mem::take(&mut self.alloc_moved);
        if ids.len() > MOST_MOVED {
            self.reallocate(now);
            self.timers.touch_all();
            return;
        }
        ids.sort_unstable();
        ids.dedup();
        if self.allocate_for(&ids, now) {
            self.announce_layers();
        }
        for id in ids {
            self.timers.touch(id);
        }
    }

    /// Decides the layers of subscribers `ids`; whether any layer one of them wants or is
    /// reaching for changed (which publishers may need to hear).
    fn allocate_for(&mut self, ids: &[ParticipantId], now: Instant) -> bool {
        let dominant = self.speaker.dominant();
        let recent: Vec<ParticipantId> = self.speaker.recent().copied().collect();
        let mut keyframes = vec![];
        let mut changed = false;
        for &sid in ids {
            let Some(s) = self.peers.get(&sid).and_then(Peer::webrtc) else {
                continue;
            };
            self.counters.allocations += 1;
            let mut audio = 0u64;
            let mut entries = vec![];
            let mut candidates = vec![];
            let mut tracks = vec![];
            for (mid, sub) in &s.down_tracks {
                let Some(t) = self.tracks.get(&sub.track) else {
                    continue;
                };
                if t.info.kind == Kind::Audio {
                    audio += 1;
                    continue;
                }
                let publisher = t.info.participant;
                let priority = if t.info.source == Source::Screen {
                    Priority::Screen
                } else if Some(publisher) == dominant {
                    Priority::Speaker
                } else if Some(publisher) == s.pinned {
                    Priority::Pinned
                } else if let Some(rank) = recent.iter().position(|p| *p == publisher) {
                    Priority::Recent(rank)
                } else {
                    Priority::Other(t.info.id.0)
                };
                entries.push((*mid, sub.track));
                tracks.push(t);
                candidates.push(Candidate {
                    priority,
                    wanted: layer_for_height(sub.height, t.layers.len()),
                    rates: t.rates(now),
                });
            }
            let budget = s.bwe.map(|b| b.saturating_sub(audio * AUDIO_RESERVE_BPS));
            let mut chosen = allocate(budget, self.config.last_n, &candidates);
            // A chosen layer the publisher does not send (paused until now, or its uplink
            // cannot carry it yet) would leave the subscriber waiting for a keyframe that
            // never comes: forward the best layer below it that arrives, and keep asking
            // the publisher for the chosen one (`reaching`) until it does.
            let mut reaching = vec![None; chosen.len()];
            for (i, c) in candidates.iter_mut().enumerate() {
                let Some(l) = chosen[i] else { continue };
                if let Some(a) = tracks[i].arriving_up_to(l, now).filter(|a| *a < l) {
                    c.wanted = Some(a);
                    reaching[i] = Some(l);
                }
            }
            if reaching.iter().any(Option::is_some) {
                chosen = allocate(budget, self.config.last_n, &candidates);
            }
            tracing::trace!(
                subscriber = sid.0,
                ?budget,
                wanted = ?candidates.iter().map(|c| c.wanted).collect::<Vec<_>>(),
                rates = ?candidates.iter().map(|c| c.rates.clone()).collect::<Vec<_>>(),
                ?chosen,
                "allocation"
            );
            let rate_of = |c: &Candidate, l: Option<Layer>| {
                l.map(|l| c.rates[usize::from(l).min(c.rates.len() - 1)])
                    .unwrap_or(0)
            };
            let allocated: u64 = candidates
                .iter()
                .zip(&chosen)
                .map(|(c, l)| rate_of(c, *l))
                .sum::<u64>()
                + audio * AUDIO_RESERVE_BPS;
            // The cheapest step up that a visible video still wants: padding up to it lets the
            // estimate discover whether the network now carries it.
            let next_step = candidates
                .iter()
                .zip(&chosen)
                .filter_map(|(c, l)| {
                    let wanted = c.wanted?;
                    match l {
                        None => Some(c.rates[0]),
                        Some(l) if *l < wanted => {
                            Some(rate_of(c, Some(*l + 1)).saturating_sub(rate_of(c, Some(*l))))
                        }
                        Some(_) => None,
                    }
                })
                .min()
                .unwrap_or(0);
            let desired: u64 = candidates.iter().map(|c| rate_of(c, c.wanted)).sum::<u64>()
                + audio * AUDIO_RESERVE_BPS;
            let Some(s) = self.peers.get_mut(&sid).and_then(Peer::webrtc_mut) else {
                continue;
            };
            let mut forwarded = vec![];
            for (((mid, track), target), reach) in entries.into_iter().zip(chosen).zip(reaching) {
                if let Some(sub) = s.down_tracks.get_mut(&mid) {
                    let reaching = reach.filter(|_| target.is_some());
                    changed |= sub.reaching != reaching || sub.selector.target() != target;
                    sub.reaching = reaching;
                    if sub.selector.set_target(target) {
                        if let Some(layer) = target {
                            keyframes.push((track, layer));
                        }
                    }
                }
                if target.is_some() {
                    forwarded.push(track);
                }
            }
            forwarded.sort();
            // Pad toward the next step only when there is one: padding is how the estimate
            // learns the network carries more, and pure waste when everyone has what they want.
            let minimum = if next_step == 0 {
                0
            } else {
                (allocated + next_step) * 100 / HEADROOM_PERCENT
            };
            if let Some(f) = s.fast.as_deref_mut() {
                f.set_padding(minimum.min(desired));
            }
            // One line per subscriber and pass: why a viewer gets fewer videos than it shows.
            tracing::debug!(
                subscriber = sid.0,
                ?budget,
                delivered = ?s.fast.as_deref().and_then(|f| f.delivered()),
                allocated,
                desired,
                padding = minimum.min(desired),
                videos = forwarded.len(),
                "allocation"
            );
            s.rtc.bwe().set_bitrate(
                Bitrate::bps(minimum.min(desired)),
                Bitrate::bps(desired.max(300_000)),
            );
            if s.forwarded != forwarded {
                s.forwarded = forwarded.clone();
                self.emit(Event::Forwarded {
                    to: sid,
                    tracks: forwarded,
                });
            }
            self.drain(sid);
        }
        for (track, layer) in keyframes {
            self.request_keyframe(track, layer, KeyframeRequestKind::Pli, now);
        }
        changed
    }

    /// Tells each publisher which layers of its tracks anybody receives.
    fn announce_layers(&mut self) {
        let mut needed: BTreeMap<TrackId, BTreeSet<Layer>> = BTreeMap::new();
        for s in self.peers.values().filter_map(Peer::webrtc) {
            for sub in s.down_tracks.values() {
                let set = needed.entry(sub.track).or_default();
                set.extend(sub.selector.target());
                set.extend(sub.selector.current());
                set.extend(sub.reaching);
            }
        }
        // Edge links need what their viewers need.
        for r in self.peers.values().filter_map(Peer::relay) {
            r.add_needs(&mut needed);
        }
        // A recording receives the stage's top layer even when no viewer does.
        if let Some(track) = self.tap.as_ref().and_then(|t| t.stage_track()) {
            if let Some(top) = self.tracks.get(&track).map(|t| t.layers.len() - 1) {
                needed.entry(track).or_default().insert(top as Layer);
            }
        }
        let mut msgs = vec![];
        let mut relayed = vec![];
        for (id, t) in self.tracks.iter_mut() {
            if t.info.kind != Kind::Video {
                continue;
            }
            let layers = needed.get(id).cloned().unwrap_or_default();
            if t.relayed {
                // The publisher is on the origin node: this edge tells the origin instead.
                relayed.push((*id, layers.into_iter().collect()));
                continue;
            }
            let active = t.rids_of(layers.into_iter());
            if t.announced.as_ref() != Some(&active) {
                t.announced = Some(active.clone());
                msgs.push(Event::PublishLayers {
                    to: t.info.participant,
                    track: *id,
                    source: t.info.source,
                    active,
                });
            }
        }
        for e in msgs {
            self.emit(e);
        }
        self.uplink_needs_now(&relayed);
        self.relay_needs_now(relayed);
    }

    /// A subscriber reported how large it renders each video.
    pub(super) fn set_video_sizes(&mut self, id: ParticipantId, sizes: &BTreeMap<TrackId, u32>) {
        let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
            return;
        };
        // Only tracks that exist: the map is bounded by the room, not by what a client sends.
        p.video_sizes = sizes
            .iter()
            .filter(|(t, _)| {
                self.tracks
                    .get(t)
                    .is_some_and(|t| t.info.kind == Kind::Video)
            })
            .map(|(t, h)| (*t, *h))
            .collect();
        for sub in p.down_tracks.values_mut() {
            if self
                .tracks
                .get(&sub.track)
                .is_some_and(|t| t.info.kind == Kind::Video)
            {
                sub.height = sizes.get(&sub.track).copied().unwrap_or(0);
            }
        }
        self.alloc_dirty = true;
    }

    /// A subscriber pinned someone (or nobody).
    pub(super) fn set_pin(&mut self, id: ParticipantId, pinned: Option<ParticipantId>) {
        if let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) {
            p.pinned = pinned;
            self.alloc_dirty = true;
        }
    }
}
