//! The room state machine: membership, who publishes, who receives what, and the packet path.
//!
//! Driven like str0m's `Rtc`: one input (`join`, `handle_client`, `handle_datagram`,
//! `handle_timeout`, `leave`), then drain [`Room::poll_output`] until it returns
//! [`Output::Timeout`]. Inside, every `Rtc` mutation is followed by a full drain of that `Rtc`
//! before the next one; events found while draining are queued and handled in order.

use super::forwarder::DropReason;
use super::keyframe::KeyframeConfig;
use super::participant::Participant;
use super::simulcast::Layer;
use super::speaker::{SpeakerConfig, SpeakerDetector};
use super::track::Track;
use crate::protocol::{
    ChatEntry, ClientMsg, ErrorCode, LeaveReason, ParticipantId, ParticipantInfo, Question, Role,
    RoomMode, ServerMsg, Source, TrackId,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::bwe::BweKind;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, IceConnectionState};

/// Settings of a room's media behaviour.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Most participants at once; the next join gets `room_full`.
    pub max_participants: usize,
    /// How long ICE may stay disconnected before the participant is reaped.
    pub ice_grace: Duration,
    /// How long a connected participant may send nothing at all (browsers send STUN consent
    /// checks every few seconds even when they publish nothing) before it is reaped.
    pub media_timeout: Duration,
    /// Keyframe request throttling.
    pub keyframe: KeyframeConfig,
    /// Most videos forwarded to one subscriber (last-N).
    pub last_n: usize,
    /// Dominant-speaker detection.
    pub speaker: SpeakerConfig,
    /// Estimate each subscriber's downlink (TWCC) and allocate layers within it; off, every
    /// subscriber gets what its tiles want and nothing is paced.
    pub bwe: bool,
    /// Also announce a passive TCP candidate on each media address (ICE-TCP, for networks
    /// that block UDP); the shell sets it when it listens there.
    pub ice_tcp: bool,
    /// Also announce a passive TCP candidate on this port (the HTTP(S) one) of each media
    /// address, for firewalls that let only web ports through; the shell sets it when it
    /// tells ICE-TCP apart from web traffic there.
    pub ice_tcp_http_port: Option<u16>,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_participants: 300,
            ice_grace: Duration::from_secs(4),
            media_timeout: Duration::from_secs(6),
            keyframe: KeyframeConfig::default(),
            last_n: 25,
            speaker: SpeakerConfig::default(),
            bwe: true,
            ice_tcp: false,
            ice_tcp_http_port: None,
        }
    }
}

/// What the room asks its owner to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Send a signalling message to one participant.
    Signal(ParticipantId, ServerMsg),
    /// Route STUN carrying this local ufrag to this participant.
    RouteUfrag(ParticipantId, String),
    /// The participant is gone from the room: stop routing to it and end its session.
    Removed(ParticipantId, LeaveReason),
    /// Nothing more until this time (or the next input).
    Timeout(Instant),
}

/// Counters of what the room did with packets.
#[derive(Debug, Default, Clone)]
pub struct RoomCounters {
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets handed to subscribers' send streams.
    pub rtp_forwarded: u64,
    /// Packets dropped, indexed by `DropReason as usize`: an array, because the packet path
    /// counts a drop for most subscribers of every simulcast packet (the other layers).
    pub dropped: [u64; DropReason::COUNT],
    /// Datagrams str0m refused.
    pub bad_datagrams: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
}

impl RoomCounters {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason as usize).copied().unwrap_or(0)
    }
}

/// Room-level state a newcomer's `joined` carries besides members and tracks.
#[derive(Debug, Clone, Default)]
pub struct Welcome {
    /// Meeting or webinar.
    pub mode: RoomMode,
    /// Whether the room is locked.
    pub locked: bool,
    /// Recent chat.
    pub chat: Vec<ChatEntry>,
    /// Q&A.
    pub questions: Vec<Question>,
    /// Raised hands.
    pub hands: Vec<ParticipantId>,
}

/// Work found while draining, handled after the drain that found it.
// Boxing the event would cost an allocation per forwarded packet; the queue stays short.
#[allow(clippy::large_enum_variant)]
pub(super) enum Work {
    Event(ParticipantId, Event),
    Keyframe(TrackId, Layer, KeyframeRequestKind),
}

/// How often allocation runs even when nothing asked for it (bitrates drift).
const REALLOCATE_EVERY: Duration = Duration::from_secs(1);

/// How often the room looks for silent or disconnected participants. Their deadlines are
/// seconds long; checking on every wake-up made each one scan every participant twice.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// Most timeouts one `Rtc` gets in a row within one [`Room::handle_timeout`]; bounded so a
/// peer that keeps asking for time now cannot stall the room.
const TIMEOUT_ROUNDS: usize = 8;

/// One meeting's media and membership.
pub struct Room {
    pub(super) name: String,
    pub(super) config: RoomConfig,
    pub(super) candidates: Vec<SocketAddr>,
    pub(super) participants: BTreeMap<ParticipantId, Participant>,
    pub(super) tracks: BTreeMap<TrackId, Track>,
    pub(super) next_track: u64,
    pub(super) out: VecDeque<Output>,
    pub(super) work: VecDeque<Work>,
    pub(super) counters: RoomCounters,
    pub(super) speaker: SpeakerDetector,
    pub(super) alloc_dirty: bool,
    /// Audio slots need re-deciding (voices heard, tracks came or went).
    pub(super) slots_dirty: bool,
    pub(super) next_alloc: Option<Instant>,
    /// Track → its (subscriber, m-line) pairs, so a packet finds them without a scan.
    pub(super) sub_index: HashMap<TrackId, Vec<(ParticipantId, Mid)>>,
    pub(super) index_dirty: bool,
    pub(super) next_reap: Option<Instant>,
    /// Scratch list of the participants due in one [`Room::handle_timeout`], kept for its
    /// allocation.
    pub(super) due: Vec<ParticipantId>,
}

impl Room {
    /// An empty room whose peers announce `candidates` (the server's one UDP port).
    pub fn new(name: impl Into<String>, config: RoomConfig, candidates: Vec<SocketAddr>) -> Self {
        let config_speaker = config.speaker;
        Room {
            name: name.into(),
            config,
            candidates,
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_track: 1,
            out: VecDeque::new(),
            work: VecDeque::new(),
            counters: RoomCounters::default(),
            speaker: SpeakerDetector::new(config_speaker),
            alloc_dirty: false,
            slots_dirty: false,
            next_alloc: None,
            sub_index: HashMap::new(),
            index_dirty: false,
            next_reap: None,
            due: Vec::new(),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many participants are in.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is in.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Whether outputs are queued (poll before sleeping).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// What happened to packets so far.
    pub fn counters(&self) -> &RoomCounters {
        &self.counters
    }

    /// Someone enters. Refused with `room_full` when at capacity.
    pub fn join(
        &mut self,
        info: ParticipantInfo,
        welcome: Welcome,
        now: Instant,
    ) -> Result<(), (ErrorCode, String)> {
        if self.participants.len() >= self.config.max_participants {
            return Err((
                ErrorCode::RoomFull,
                format!(
                    "Room {} is full ({} participants).",
                    self.name, self.config.max_participants
                ),
            ));
        }
        let id = info.id;
        let participant = Participant::new(info.clone(), &self.candidates, &self.config, now)
            .map_err(|e| {
                // The detail is for the log, not the client (rooms change).
                tracing::warn!(error = %e, "participant media setup failed");
                (
                    ErrorCode::Internal,
                    "Could not set up media for you.".to_string(),
                )
            })?;
        self.out
            .push_back(Output::RouteUfrag(id, participant.ufrag.clone()));
        let participants = self.participants.values().map(|p| p.info.clone()).collect();
        let tracks = self.tracks.values().map(|t| t.info.clone()).collect();
        self.broadcast(
            None,
            ServerMsg::ParticipantJoined {
                participant: info.clone(),
            },
        );
        self.participants.insert(id, participant);
        self.out.push_back(Output::Signal(
            id,
            ServerMsg::Joined {
                room: self.name.clone(),
                you: info,
                participants,
                tracks,
                mode: welcome.mode,
                locked: welcome.locked,
                chat: welcome.chat,
                questions: welcome.questions,
                hands: welcome.hands,
            },
        ));
        if let Some(speaker) = self.speaker.dominant() {
            // A newcomer learns who is talking now, not only at the next change.
            self.out.push_back(Output::Signal(
                id,
                ServerMsg::ActiveSpeaker {
                    participant: speaker,
                },
            ));
        }
        Ok(())
    }

    /// The downlink estimate toward a participant (TWCC), bits per second.
    pub fn bwe_of(&self, id: ParticipantId) -> Option<u64> {
        self.participants.get(&id).and_then(|p| p.bwe)
    }

    /// Whether this participant is in the room.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }

    /// A participant's public info.
    pub fn info(&self, id: ParticipantId) -> Option<&ParticipantInfo> {
        self.participants.get(&id).map(|p| &p.info)
    }

    /// Everyone's public info.
    pub fn members(&self) -> impl Iterator<Item = &ParticipantInfo> {
        self.participants.values().map(|p| &p.info)
    }

    /// Queues a message to one participant (or to a session not in the room, e.g. the lobby).
    pub fn signal(&mut self, to: ParticipantId, msg: ServerMsg) {
        self.out.push_back(Output::Signal(to, msg));
    }

    /// Queues a message to everyone in the room except `except`.
    pub fn broadcast(&mut self, except: Option<ParticipantId>, msg: ServerMsg) {
        for id in self.participants.keys() {
            if Some(*id) != except {
                self.out.push_back(Output::Signal(*id, msg.clone()));
            }
        }
    }

    /// Ends a session that is not (or no longer) in the room, e.g. someone refused in the lobby.
    pub fn dismiss(&mut self, id: ParticipantId, reason: LeaveReason) {
        self.out.push_back(Output::Removed(id, reason));
    }

    /// Changes a role live; a role that may not publish loses its tracks at once.
    pub fn set_role(&mut self, id: ParticipantId, role: Role) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.info.role == role {
            return;
        }
        p.info.role = role;
        let info = p.info.clone();
        if !role.may_publish() {
            let tracks: Vec<TrackId> = p.published.drain().map(|(_, t)| t).collect();
            for t in tracks {
                self.unpublish(t);
            }
        }
        self.broadcast(None, ServerMsg::ParticipantUpdated { participant: info });
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
        let msg = ServerMsg::TrackMuted {
            id: track,
            participant: owner,
            source,
            muted,
            forced,
        };
        self.broadcast(None, msg);
    }

    fn tracks_of(&self, id: ParticipantId, source: Source) -> Vec<TrackId> {
        self.participants
            .get(&id)
            .map(|p| {
                p.published
                    .values()
                    .filter(|t| self.tracks.get(t).is_some_and(|t| t.info.source == source))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Someone leaves (said goodbye, socket closed, or reaped).
    pub fn leave(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(mut p) = self.participants.remove(&id) else {
            return;
        };
        self.index_dirty = true;
        p.rtc.disconnect();
        let gone: Vec<TrackId> = p.published.values().copied().collect();
        for track in &gone {
            self.unpublish(*track);
        }
        self.speaker.remove(id);
        self.alloc_dirty = true;
        self.out.push_back(Output::Removed(id, reason));
        self.broadcast(None, ServerMsg::ParticipantLeft { id, reason });
    }

    /// A signalling message from a participant that has joined.
    pub fn handle_client(&mut self, id: ParticipantId, msg: ClientMsg, now: Instant) {
        match msg {
            ClientMsg::Offer {
                sdp,
                publish,
                subscribe,
                audio_slots,
            } => {
                if let Err((code, message)) =
                    self.offer(id, &sdp, &publish, &subscribe, &audio_slots, now)
                {
                    self.out
                        .push_back(Output::Signal(id, ServerMsg::error(code, message)));
                }
            }
            ClientMsg::Mute { source, muted } => self.mute(id, source, muted),
            ClientMsg::Leave {} => self.leave(id, LeaveReason::Left),
            ClientMsg::VideoSizes { sizes } => self.set_video_sizes(id, &sizes),
            ClientMsg::Pin { participant } => self.set_pin(id, participant),
            ClientMsg::Join { .. } => self.out.push_back(Output::Signal(
                id,
                ServerMsg::error(ErrorCode::NotJoined, "You have already joined."),
            )),
            // Control messages belong to the conference layer above.
            _ => {}
        }
        self.pump(now);
    }

    /// A datagram the demux routed to a participant.
    pub fn handle_datagram(
        &mut self,
        id: ParticipantId,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        now: Instant,
    ) {
        self.handle_receive(id, Protocol::Udp, source, destination, contents, now);
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
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.last_heard = now;
        let Ok(receive) = Receive::new(proto, source, destination, contents) else {
            self.counters.bad_datagrams += 1;
            return;
        };
        if p.rtc
            .handle_input(str0m::Input::Receive(now, receive))
            .is_err()
        {
            self.counters.bad_datagrams += 1;
        }
        self.drain(id);
        self.pump(now);
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(
            self.participants
                .iter()
                .filter(|(_, p)| p.next_timeout <= now)
                .map(|(id, _)| *id),
        );
        for &id in &due {
            // The pacer releases one packet per timeout and then asks for another at once;
            // answering here saves a trip through the room's wake-up for every paced packet.
            for _ in 0..TIMEOUT_ROUNDS {
                let Some(p) = self.participants.get_mut(&id) else {
                    break;
                };
                if p.next_timeout > now {
                    break;
                }
                if p.rtc.handle_input(str0m::Input::Timeout(now)).is_err() {
                    self.leave(id, LeaveReason::Error);
                    break;
                }
                self.drain(id);
            }
        }
        if let Some(speaker) = self.speaker.tick(now) {
            self.broadcast(
                None,
                ServerMsg::ActiveSpeaker {
                    participant: speaker,
                },
            );
            self.alloc_dirty = true;
        }
        if self.speaker.take_heard_changed() {
            self.slots_dirty = true;
        }
        if self.next_alloc.is_none_or(|t| t <= now) {
            self.alloc_dirty = true;
            self.next_alloc = Some(now + REALLOCATE_EVERY);
        }
        self.due = due;
        self.pump(now);
        if self.next_reap.is_none_or(|t| t <= now) {
            self.next_reap = Some(now + REAP_EVERY);
            self.reap(now);
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing more for now.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let peers = self.participants.values().map(|p| p.next_timeout).min();
        // Reaping runs on its own schedule (see `REAP_EVERY`) while anyone is in.
        let busy = !self.participants.is_empty();
        let next = [
            peers,
            self.speaker.next_tick(),
            self.next_alloc.filter(|_| busy),
            self.next_reap.filter(|_| busy),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(1));
        Output::Timeout(next)
    }

    fn mute(&mut self, id: ParticipantId, source: Source, muted: bool) {
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
                for p in self.participants.values_mut() {
                    for s in p.subscriptions.values_mut().filter(|s| s.track == track) {
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
        for p in self.participants.values_mut() {
            p.park_where(|_, s| s.track == track);
            self.index_dirty = true;
        }
        self.slots_dirty = true;
        self.broadcast(
            Some(t.info.participant),
            ServerMsg::TrackUnpublished { id: track },
        );
    }

    /// Drains one `Rtc` to its timeout, queueing transmits and events.
    pub(super) fn drain(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        loop {
            match p.rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => {
                    p.next_timeout = t;
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => self.out.push_back(Output::Transmit(t)),
                Ok(str0m::Output::Event(e)) => self.work.push_back(Work::Event(id, e)),
                Err(e) => {
                    tracing::warn!(participant = %id, error = %e, "media failed; removing");
                    self.leave(id, LeaveReason::Error);
                    break;
                }
            }
        }
    }

    /// Handles queued work until none is left.
    pub(super) fn pump(&mut self, now: Instant) {
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
                continue;
            }
            if !self.alloc_dirty {
                return;
            }
            self.reallocate(now);
        }
    }

    fn handle_event(&mut self, id: ParticipantId, e: Event, now: Instant) {
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
    fn reap(&mut self, now: Instant) {
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
            self.out.push_back(Output::Signal(
                id,
                ServerMsg::error(ErrorCode::Closed, "Your connection timed out."),
            ));
            self.leave(id, LeaveReason::Timeout);
        }
    }
}
