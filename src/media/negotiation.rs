//! Negotiation: accepting a client's offer and syncing its publications and subscriptions.

use super::codec_map;
use super::command::{Event, OfferError};
use super::msid;
use super::peer::Peer;
use super::router::Router;
use super::sdp_check;
use super::track::UpTrack;
use crate::model::{Kind, ParticipantId, Source, TrackId, TrackInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};

impl Router {
    pub(super) fn accept_offer(
        &mut self,
        id: ParticipantId,
        sdp: &str,
        publish: &BTreeMap<String, Source>,
        subscribe: &BTreeMap<String, TrackId>,
        audio_slots: &[String],
        now: Instant,
    ) -> Result<(), OfferError> {
        let sending = sdp_check::sending_mids(sdp);
        let p = self
            .peers
            .get_mut(&id)
            .and_then(Peer::webrtc_mut)
            .ok_or(OfferError::NotJoined)?;
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| OfferError::BadSdp(e.to_string()))?;
        // str0m 0.25 asserts instead of erring on some payload-type clashes (one PT locked
        // to two codecs across m-lines, found by fuzzing): a panic here would end the whole
        // room's task. Its Rtc may be half-updated after one, so the conference removes the
        // offerer alone.
        let accepted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.rtc.sdp_api().accept_offer(offer)
        }))
        .map_err(|_| OfferError::Crashed)?;
        let answer = accepted.map_err(|e| OfferError::Refused(e.to_string()))?;
        if !p.connected && p.expected_since.is_none() {
            p.expected_since = Some(now);
        }
        let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != p.ufrag {
            // An ICE restart: the lean path must follow the browser to its new pair.
            if let Some(f) = p.fast.as_deref_mut() {
                f.follow_ice_credentials(&mut p.rtc);
            }
            p.ufrag = ufrag.clone();
            self.emit(Event::RouteUfrag(id, ufrag));
        }
        let answer = codec_map::prefer_video_codec(&answer.to_sdp_string());
        self.drain(id);
        let simulcast = sdp_check::simulcast_rids(sdp);
        self.sync_published(id, publish, &sending, &simulcast);
        let subscribed: BTreeSet<Mid> = subscribe.keys().map(|m| Mid::from(m.as_str())).collect();
        let slots = self.declared_slots(id, audio_slots, &subscribed);
        if let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) {
            p.audio_slots = slots;
        }
        self.sync_subscriptions(id, subscribe, now);
        // The answer names each m-line's sync group, so its audio slots must be filled first.
        if self.slots_dirty {
            self.assign_audio_slots();
            self.timers.touch_all();
        }
        let sdp = msid::regroup(&answer, &self.sync_groups(id));
        self.emit(Event::Answer { to: id, sdp });
        Ok(())
    }

    /// Makes the participant's published tracks match what its offer says it sends.
    fn sync_published(
        &mut self,
        id: ParticipantId,
        publish: &BTreeMap<String, Source>,
        sending: &[String],
        simulcast: &[(String, Vec<String>)],
    ) {
        let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
            return;
        };
        let mut wanted: HashMap<Mid, Source> = HashMap::new();
        // The conference refuses a sending offer from a peer that may not publish; this keeps
        // such a peer from publishing anything should one get through all the same.
        let publish = if p.may_publish {
            publish
        } else {
            &BTreeMap::new()
        };
        for (mid, source) in publish {
            if !sending.iter().any(|m| m == mid) {
                continue;
            }
            let mid = Mid::from(mid.as_str());
            let Some(media) = p.rtc.media(mid) else {
                continue;
            };
            let is_video = media.kind() == MediaKind::Video;
            if is_video == source.is_video() {
                wanted.insert(mid, *source);
            }
        }
        let stale: Vec<(Mid, TrackId)> = p
            .published
            .iter()
            .filter(|(mid, _)| !wanted.contains_key(mid))
            .map(|(m, t)| (*m, *t))
            .collect();
        let mut added = vec![];
        for (mid, source) in &wanted {
            if !p.published.contains_key(mid) {
                let track = self.uplink.mint(&mut self.next_track);
                p.published.insert(*mid, track);
                added.push((track, *mid, *source));
            }
        }
        for (mid, _) in &stale {
            p.published.remove(mid);
        }
        for (_, track) in stale {
            self.unpublish(track);
        }
        for (id_t, mid, source) in added {
            let info = TrackInfo {
                id: id_t,
                participant: id,
                kind: source.kind(),
                source,
                muted: false,
            };
            let rids = simulcast
                .iter()
                .find(|(m, _)| m.as_str() == mid.to_string().as_str())
                .map(|(_, r)| r.as_slice())
                .unwrap_or(&[]);
            self.tracks
                .insert(id_t, UpTrack::new(info.clone(), mid, rids));
            self.emit(Event::TrackPublished(info));
        }
    }

    /// Makes the participant's receiving m-lines carry what its offer asks for.
    fn sync_subscriptions(
        &mut self,
        id: ParticipantId,
        subscribe: &BTreeMap<String, TrackId>,
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
            return;
        };
        let mut keep: HashMap<Mid, TrackId> = HashMap::new();
        for (mid, track) in subscribe {
            let Some(t) = self.tracks.get(track) else {
                continue;
            };
            if t.info.participant == id {
                continue;
            }
            let mid = Mid::from(mid.as_str());
            let kind_ok = p
                .rtc
                .media(mid)
                .is_some_and(|m| (m.kind() == MediaKind::Video) == (t.info.kind == Kind::Video));
            if kind_ok {
                keep.insert(mid, *track);
            }
        }
        // Slots keep their voice across renegotiations; `assign_audio_slots` owns them.
        let slots = p.audio_slots.clone();
        p.park_where(|mid, _| !keep.contains_key(mid) && !slots.contains(mid));
        self.slots_dirty = true;
        self.index_dirty = true;
        for (mid, track) in keep {
            match p.down_tracks.get_mut(&mid) {
                Some(s) if s.track == track => {}
                Some(s) => s.retarget(track, p.video_sizes.get(&track).copied()),
                None => {
                    let height = p.video_sizes.get(&track).copied();
                    p.subscribe(mid, track, height);
                }
            }
        }
        // New or changed subscriptions get their layer (and keyframe) from allocation.
        self.reallocate(now);
    }
}
