//! The router: one room's media. It owns the peers and the up-tracks they publish, and routes.
//!
//! Driven like str0m's `Rtc`: one input (`join`, `offer`, `mute`, `handle_receive`,
//! `handle_timeout`, `remove`, …), then drain [`Router::poll_output`] until it returns
//! [`Output::Timeout`]. Inside, every `Rtc` input is followed by a drain of that `Rtc` before
//! the next one, except the fan-out's RTP writes (see `fanout.rs`): those mark the subscriber
//! due instead. str0m events found while draining are queued and handled in order: packets are
//! routed (`rtc_events.rs`) to the fan-out, which the router calls with the up-track's
//! subscriber list and the peers. What the router has to say comes out as [`MediaEvent`]s;
//! the conference above turns them into messages. What time passing does
//! ([`Router::handle_timeout`]) is in `router_timeout.rs`.

use super::command::{Event as MediaEvent, JoinError, OfferError, Output, RoomCounters};
use super::config::RoomConfig;
use super::peer::Peer;
use super::peer_table::PeerTable;
use super::record_tap::RecordTap;
use super::relay::{EdgeLink, RelayAnnounce};
use super::simulcast::Layer;
use super::speaker::SpeakerDetector;
use super::timers::Timers;
use super::track::UpTrack;
use super::webrtc::WebRtcPeer;
use crate::model::{LeaveReason, ParticipantId, Source, TrackId, TrackInfo};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::media::KeyframeRequestKind;
use str0m::net::{Protocol, Receive};
use str0m::Event;

/// Work found while draining, handled after the drain that found it.
// Boxing the event would cost an allocation per forwarded packet; the queue stays short.
#[allow(clippy::large_enum_variant)]
pub(super) enum Work {
    Event(ParticipantId, Event),
    Keyframe(TrackId, Layer, KeyframeRequestKind),
}

/// One meeting's media and membership.
pub struct Router {
    pub(super) name: String,
    pub(super) config: RoomConfig,
    pub(super) candidates: Vec<SocketAddr>,
    pub(super) peers: PeerTable,
    pub(super) tracks: BTreeMap<TrackId, UpTrack>,
    pub(super) next_track: u64,
    pub(super) out: VecDeque<Output>,
    /// Events for the conference, handed out before any transmit.
    pub(super) events: VecDeque<MediaEvent>,
    pub(super) work: VecDeque<Work>,
    pub(super) counters: RoomCounters,
    /// Arrival times of the forwarded copies in `out` (see `forward_log`).
    pub(super) forward_log: super::forward_log::ForwardLog,
    /// Packets routed while the room task reads a burst, fanned out at its end (see
    /// [`Router::hold_fan_outs`]).
    pub(super) held: super::fanout::Held,
    pub(super) speaker: SpeakerDetector,
    pub(super) alloc_dirty: bool,
    /// Subscribers whose estimate moved since the last allocation: only theirs is re-decided
    /// unless `alloc_dirty` asks for everyone's (see `Router::reallocate_moved`).
    pub(super) alloc_moved: Vec<ParticipantId>,
    /// Audio slots need re-deciding (voices heard, tracks came or went).
    pub(super) slots_dirty: bool,
    pub(super) next_alloc: Option<Instant>,
    /// Some track's subscriber list is out of date (subscriptions changed).
    pub(super) index_dirty: bool,
    pub(super) next_reap: Option<Instant>,
    /// Arrival time of the last datagram read while the room's inbox is behind (see
    /// [`Router::media_read_until`]); reaping judges silence up to it, not up to now.
    pub(super) read_until: Option<Instant>,
    /// Scratch list of the peers due in one [`Router::handle_timeout`], kept for its
    /// allocation.
    pub(super) due: Vec<(ParticipantId, u32)>,
    /// Each peer's next deadline, so a wake visits only the due peers (see `timers.rs`).
    pub(super) timers: Timers,
    /// The recording being fed, if the room records (see `record_tap.rs`).
    pub(super) tap: Option<RecordTap>,
    /// The origin link feeding this room, when it is an edge room (see `relay`).
    pub(super) edge: Option<Box<EdgeLink>>,
    /// Track changes for the edges, while the room has relay links (see `relay`).
    pub(super) announce: VecDeque<RelayAnnounce>,
    /// Tracks published on an edge for a promoted viewer (see `relay::uplink`).
    pub(super) uplink: super::relay::Uplinks,
}

impl Router {
    /// An empty room whose peers announce `candidates` (the server's one UDP port).
    pub fn new(name: impl Into<String>, config: RoomConfig, candidates: Vec<SocketAddr>) -> Self {
        let config_speaker = config.speaker;
        Router {
            name: name.into(),
            config,
            candidates,
            peers: PeerTable::default(),
            tracks: BTreeMap::new(),
            next_track: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            work: VecDeque::new(),
            counters: RoomCounters::default(),
            forward_log: Default::default(),
            held: Default::default(),
            speaker: SpeakerDetector::new(config_speaker),
            alloc_dirty: false,
            alloc_moved: Vec::new(),
            slots_dirty: false,
            next_alloc: None,
            index_dirty: false,
            next_reap: None,
            read_until: None,
            due: Vec::new(),
            timers: Timers::default(),
            tap: None,
            edge: None,
            announce: VecDeque::new(),
            uplink: Default::default(),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many peers are in.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether nobody is in.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether outputs are queued (poll before sleeping).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.events.is_empty()
    }

    /// The next event, if one is queued (the conference takes them right after each command,
    /// so that what it says itself stays in order with what the room reports).
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    pub(super) fn emit(&mut self, event: MediaEvent) {
        self.relay_mirror(&event);
        self.events.push_back(event);
    }

    /// RTP packets and RTCP compounds the fast send path sealed for `id`, if it is on it.
    pub fn fast_sent(&self, id: ParticipantId) -> Option<(u64, u64)> {
        let f = self.peers.get(&id)?.webrtc()?.fast.as_deref()?;
        Some((f.rtp_sent, f.rtcp_sent))
    }

    /// The lean estimator's own estimate toward `id`, before allocation's hold on rises.
    pub fn fast_estimate(&self, id: ParticipantId) -> Option<u64> {
        self.peers.get(&id)?.webrtc()?.fast.as_deref()?.estimate()
    }

    /// Peers the timer index would have woken late, found by its audits (see `timers.rs`).
    pub fn timer_misses(&self) -> u64 {
        self.timers.misses
    }

    /// What happened to packets so far.
    pub fn counters(&self) -> &RoomCounters {
        &self.counters
    }

    /// A peer enters; `may_publish` says whether its offers may send media.
    pub fn join(
        &mut self,
        id: ParticipantId,
        may_publish: bool,
        now: Instant,
    ) -> Result<(), JoinError> {
        if self.peers.len() >= self.config.max_participants {
            return Err(JoinError::Full(self.config.max_participants));
        }
        let mut browser = WebRtcPeer::new(may_publish, &self.candidates, &self.config, now)
            .map_err(|e| JoinError::Media(e.to_string()))?;
        if let Some(f) = browser.fast.as_deref_mut() {
            f.align(self.timers.lean_grid(now), now);
        }
        self.emit(MediaEvent::RouteUfrag(id, browser.ufrag.clone()));
        self.peers.insert(id, Peer::WebRtc(browser));
        self.timers.touch(id);
        Ok(())
    }

    /// Every published track.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.tracks.values().map(|t| &t.info)
    }

    /// Who is speaking now, if anyone.
    pub fn dominant_speaker(&self) -> Option<ParticipantId> {
        self.speaker.dominant()
    }

    /// The downlink estimate toward a participant (TWCC), bits per second.
    pub fn bwe_of(&self, id: ParticipantId) -> Option<u64> {
        self.peers
            .get(&id)
            .and_then(Peer::webrtc)
            .and_then(|p| p.bwe)
    }

    /// Whether this participant is in the room.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.peers.contains_key(&id)
    }

    /// Whether a peer's offers may send media; taking the right away unpublishes its tracks.
    pub fn set_may_publish(&mut self, id: ParticipantId, may: bool) {
        if !may {
            self.uplink_revoke(id);
        }
        let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
            return;
        };
        p.may_publish = may;
        if !may {
            let tracks: Vec<TrackId> = p.published.drain().map(|(_, t)| t).collect();
            for t in tracks {
                self.unpublish(t);
            }
        }
    }

    /// A host stops forwarding one of someone's sources.
    pub fn force_mute(&mut self, id: ParticipantId, source: Source) {
        for track in self.tracks_of(id, source) {
            if let Some(t) = self.tracks.get_mut(&track) {
                if !t.forced_mute {
                    t.forced_mute = true;
                    t.info.muted = true;
                    self.announce_mute(track, id, source, true, true);
                }
            }
        }
    }

    fn announce_mute(
        &mut self,
        track: TrackId,
        owner: ParticipantId,
        source: Source,
        muted: bool,
        forced: bool,
    ) {
        self.emit(MediaEvent::TrackMuted {
            track,
            owner,
            source,
            muted,
            forced,
        });
    }

    fn tracks_of(&self, id: ParticipantId, source: Source) -> Vec<TrackId> {
        self.peers
            .get(&id)
            .and_then(Peer::webrtc)
            .map(|p| {
                p.published
                    .values()
                    .filter(|t| self.tracks.get(t).is_some_and(|t| t.info.source == source))
                    .copied()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain(self.uplinked_of(id, source))
            .collect()
    }

    /// A peer leaves (the conference decided: goodbye, socket closed, removed by a host).
    /// Returns whether it was in.
    pub fn remove(&mut self, id: ParticipantId) -> bool {
        self.uplink_revoke(id);
        let Some(peer) = self.peers.remove(&id) else {
            return false;
        };
        self.index_dirty = true;
        self.timers.touch(id);
        let gone: Vec<TrackId> = match peer {
            Peer::WebRtc(mut p) => {
                p.rtc.disconnect();
                p.published.values().copied().collect()
            }
            Peer::Relay(_) => vec![],
        };
        for track in &gone {
            self.unpublish(*track);
        }
        self.speaker.remove(id);
        self.alloc_dirty = true;
        true
    }

    /// The room removes a peer on its own and says so.
    pub(super) fn drop_peer(&mut self, id: ParticipantId, reason: LeaveReason) {
        if self.remove(id) {
            self.emit(MediaEvent::PeerRemoved { id, reason });
        }
    }

    /// A peer's SDP offer: `publish` names the m-lines it sends on, `subscribe` those that
    /// receive remote tracks, `audio_slots` those the room fills with voices.
    pub fn offer(
        &mut self,
        id: ParticipantId,
        sdp: &str,
        publish: &BTreeMap<String, Source>,
        subscribe: &BTreeMap<String, TrackId>,
        audio_slots: &[String],
        now: Instant,
    ) -> Result<(), OfferError> {
        let result = self.accept_offer(id, sdp, publish, subscribe, audio_slots, now);
        self.pump(now);
        result
    }

    /// A peer muted or unmuted one of its sources.
    pub fn mute(&mut self, id: ParticipantId, source: Source, muted: bool, now: Instant) {
        self.mute_source(id, source, muted);
        self.pump(now);
    }

    /// A subscriber reported how tall it renders each video.
    pub fn video_sizes(&mut self, id: ParticipantId, sizes: &BTreeMap<TrackId, u32>, now: Instant) {
        self.set_video_sizes(id, sizes);
        self.pump(now);
    }

    /// A subscriber pins someone's video (or nobody).
    pub fn pin(&mut self, id: ParticipantId, pinned: Option<ParticipantId>, now: Instant) {
        self.set_pin(id, pinned);
        self.pump(now);
    }

    /// A packet that came over `proto`: UDP, or one RFC 4571 frame of an ICE-TCP connection.
    pub fn handle_receive(
        &mut self,
        id: ParticipantId,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) {
        // A lean peer's SRTCP is read once, by the lean path (`fast::receive`); any other
        // SRTCP passes the peer's replay guard there before str0m sees it. What it moves
        // touches itself: this peer (touched there), publishers asked for keyframes through
        // `drain`.
        let Some(taken) = self.heard(id, proto, source, destination, contents, now) else {
            return;
        };
        if taken {
            self.timers.hot = true;
            self.pump(now);
            self.timers.hot = false;
            return;
        }
        let Ok(receive) = Receive::new(proto, source, destination, contents) else {
            self.counters.bad_datagrams += 1;
            return;
        };
        let Some(p) = self.peers.get_mut(&id).and_then(Peer::webrtc_mut) else {
            return;
        };
        if p.rtc
            .handle_input(str0m::Input::Receive(now, receive))
            .is_err()
        {
            self.counters.bad_datagrams += 1;
        }
        self.drain(id);
        self.timers.hot = true;
        self.pump(now);
        self.timers.hot = false;
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing more for now.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        self.timers.refresh(&self.peers);
        let peers = self.timers.next();
        // Reaping runs on its own schedule (see `REAP_EVERY`) while anyone is in.
        let busy = !self.peers.is_empty();
        let next = [
            peers,
            self.speaker.next_tick(),
            self.next_alloc.filter(|_| busy),
            self.next_reap.filter(|_| busy),
            self.tap.as_ref().map(|t| t.next_stage),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(1));
        Output::Timeout(next)
    }

    fn mute_source(&mut self, id: ParticipantId, source: Source, muted: bool) {
        for track in self.tracks_of(id, source) {
            let Some(t) = self.tracks.get_mut(&track) else {
                continue;
            };
            let resumed = t.forced_mute && !muted;
            if resumed {
                t.forced_mute = false;
            }
            if t.info.muted != muted || resumed {
                t.info.muted = muted;
                self.slots_dirty = true;
                self.announce_mute(track, id, source, muted, false);
            }
            if resumed {
                // Forwarding restarts after a gap: continue the numbering, start on a keyframe.
                for p in self.peers.values_mut().filter_map(Peer::webrtc_mut) {
                    for s in p.down_tracks.values_mut().filter(|s| s.track == track) {
                        s.forwarder.switch_source();
                    }
                }
            }
        }
    }

    pub(super) fn unpublish(&mut self, track: TrackId) {
        let Some(t) = self.tracks.remove(&track) else {
            return;
        };
        for p in self.peers.values_mut().filter_map(Peer::webrtc_mut) {
            p.park_where(|_, s| s.track == track);
            self.index_dirty = true;
        }
        self.slots_dirty = true;
        if let Some(tap) = &mut self.tap {
            tap.removed(track);
        }
        self.emit(MediaEvent::TrackUnpublished {
            track,
            owner: t.info.participant,
        });
    }

    /// Drains one `Rtc` to its timeout, queueing transmits and events.
    pub(super) fn drain(&mut self, id: ParticipantId) {
        self.drain_at(id, u32::MAX);
    }

    /// [`Self::drain`] for a peer the caller knows to be in `slot` (checked by id; any slot,
    /// such as `u32::MAX`, when unknown): found there, and touched with it.
    pub(super) fn drain_at(&mut self, id: ParticipantId, slot: u32) {
        let Some(p) = self.peers.at_mut(slot, id).and_then(Peer::webrtc_mut) else {
            return;
        };
        loop {
            match p.rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => {
                    p.next_timeout = t;
                    self.timers.touch_at(id, slot);
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => self.out.push_back(Output::Transmit(t)),
                Ok(str0m::Output::Event(e)) => self.work.push_back(Work::Event(id, e)),
                Err(e) => {
                    tracing::warn!(participant = %id, error = %e, "media failed; removing");
                    self.drop_peer(id, LeaveReason::Error);
                    break;
                }
            }
        }
    }

    /// Handles queued work until none is left.
    pub(super) fn pump(&mut self, now: Instant) {
        if !self.timers.hot {
            // An input that does not touch what it changes (see `timers.rs`).
            self.timers.touch_all();
        }
        loop {
            while let Some(w) = self.work.pop_front() {
                match w {
                    Work::Event(id, e) => self.handle_event(id, e, now),
                    Work::Keyframe(track, layer, kind) => {
                        self.send_keyframe_request(track, layer, kind)
                    }
                }
            }
            if self.slots_dirty {
                self.assign_audio_slots();
                self.timers.touch_all();
                continue;
            }
            if self.alloc_dirty {
                self.reallocate(now);
                self.timers.touch_all();
            } else if !self.alloc_moved.is_empty() {
                self.reallocate_moved(now);
            } else {
                return;
            }
        }
    }
}
