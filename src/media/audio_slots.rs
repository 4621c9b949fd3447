//! Audio slots: a few receive-only audio m-lines per subscriber, filled by the server with the
//! most recently heard voices, so a large room costs each browser a handful of m-lines.
//!
//! Every remote microphone gets a slot of its own while there are no more of them than slots,
//! so small meetings never switch. Beyond that, a slot keeps its voice while that voice stays
//! among the most recently heard, and passes to a new voice within one speaker bucket
//! (100 ms) of it being heard. A switch continues the slot's numbering and timestamps, so the
//! browser's jitter buffer and Opus decoder see one stream.

use super::command::Event;
use super::peer::Peer;
use super::router::Router;
use crate::model::{Kind, ParticipantId, TrackId, MAX_AUDIO_SLOTS};
use std::collections::{BTreeMap, BTreeSet};
use str0m::media::{MediaKind, Mid};

impl Router {
    /// The audio slots a participant's latest offer declares: receive-only audio m-lines
    /// that are not explicitly subscribed, at most [`MAX_AUDIO_SLOTS`].
    pub(super) fn declared_slots(
        &self,
        id: ParticipantId,
        slots: &[String],
        subscribed: &BTreeSet<Mid>,
    ) -> Vec<Mid> {
        let Some(p) = self.peers.get(&id).and_then(Peer::webrtc) else {
            return vec![];
        };
        let mut out: Vec<Mid> = vec![];
        for mid in slots {
            let mid = Mid::from(mid.as_str());
            // The client's receive-only m-line is one the server sends on.
            let audio_out = p
                .rtc
                .media(mid)
                .is_some_and(|m| m.kind() == MediaKind::Audio && m.direction().is_sending());
            if audio_out && !subscribed.contains(&mid) && !out.contains(&mid) {
                out.push(mid);
            }
            if out.len() == MAX_AUDIO_SLOTS {
                break;
            }
        }
        out
    }

    /// Re-decides which voice every subscriber's slots carry and tells those whose changed.
    pub(super) fn assign_audio_slots(&mut self) {
        self.slots_dirty = false;
        let heard: BTreeMap<ParticipantId, usize> = self
            .speaker
            .heard()
            .enumerate()
            .map(|(rank, p)| (*p, rank))
            .collect();
        // Unmuted before muted, then most recently heard, then oldest track first.
        let mut ranking: Vec<(bool, usize, TrackId, ParticipantId)> = self
            .tracks
            .values()
            .filter(|t| t.info.kind == Kind::Audio)
            .map(|t| {
                let rank = heard.get(&t.info.participant).copied();
                let muted = t.info.muted || t.forced_mute;
                (
                    muted,
                    rank.unwrap_or(usize::MAX),
                    t.info.id,
                    t.info.participant,
                )
            })
            .collect();
        ranking.sort_unstable();
        let ids: Vec<ParticipantId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.webrtc().is_some_and(|p| !p.audio_slots.is_empty()))
            .map(|(id, _)| *id)
            .collect();
        for sid in ids {
            let Some(p) = self.peers.get_mut(&sid).and_then(Peer::webrtc_mut) else {
                continue;
            };
            let wanted: Vec<TrackId> = ranking
                .iter()
                .filter(|(_, _, _, owner)| *owner != sid)
                .map(|(_, _, track, _)| *track)
                .take(p.audio_slots.len())
                .collect();
            // Slots whose voice is still wanted keep it; the others take the rest in rank order.
            let assigned: BTreeSet<TrackId> = p
                .audio_slots
                .iter()
                .filter_map(|m| p.down_tracks.get(m).map(|s| s.track))
                .collect();
            let mut newcomers = wanted
                .iter()
                .filter(|t| !assigned.contains(t))
                .copied()
                .collect::<Vec<_>>()
                .into_iter();
            let mut changed = false;
            for mid in p.audio_slots.clone() {
                let keeps = p
                    .down_tracks
                    .get(&mid)
                    .is_some_and(|s| wanted.contains(&s.track));
                if keeps {
                    continue;
                }
                match newcomers.next() {
                    Some(track) => match p.down_tracks.get_mut(&mid) {
                        Some(s) => s.retarget(track, None),
                        None => p.subscribe(mid, track, None),
                    },
                    None => {
                        if !p.park(mid) {
                            continue;
                        }
                    }
                }
                changed = true;
            }
            if changed {
                self.index_dirty = true;
            }
            let now: BTreeMap<String, TrackId> = p
                .audio_slots
                .iter()
                .filter_map(|m| Some((m.to_string(), p.down_tracks.get(m)?.track)))
                .collect();
            if now != p.announced_slots {
                p.announced_slots = now.clone();
                self.events.push_back(Event::AudioSlots {
                    to: sid,
                    slots: now,
                });
            }
        }
    }
}
