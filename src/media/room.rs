//! The room state machine: membership, who publishes, who receives what, and the packet path.
//!
//! Driven like str0m's `Rtc`: one input (`join`, `handle_client`, `handle_datagram`,
//! `handle_timeout`, `leave`), then drain [`Room::poll_output`] until it returns
//! [`Output::Timeout`]. Inside, every `Rtc` mutation is followed by a full drain of that `Rtc`
//! before the next one; events found while draining are queued and handled in order.

use super::codec::VideoCodec;
use super::forwarder::{Decision, DropReason, Forwarder, PacketView};
use super::keyframe::{KeyframeConfig, KeyframeThrottle};
use super::participant::{Participant, Subscription};
use super::sdp_check;
use crate::protocol::{
    ChatEntry, ClientMsg, ErrorCode, Kind, LeaveReason, ParticipantId, ParticipantInfo, Question,
    Role, RoomMode, ServerMsg, Source, TrackId, TrackInfo,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
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
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_participants: 100,
            ice_grace: Duration::from_secs(4),
            media_timeout: Duration::from_secs(6),
            keyframe: KeyframeConfig::default(),
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
    /// Packets dropped, by reason.
    pub dropped: HashMap<DropReason, u64>,
    /// Datagrams str0m refused.
    pub bad_datagrams: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
}

/// A published track.
#[derive(Debug)]
struct Track {
    info: TrackInfo,
    mid: Mid,
    keyframes: KeyframeThrottle,
    /// A host muted it: nothing is forwarded until its owner unmutes.
    forced_mute: bool,
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
enum Work {
    Event(ParticipantId, Event),
    Keyframe(TrackId, KeyframeRequestKind),
}

/// One meeting's media and membership.
pub struct Room {
    name: String,
    config: RoomConfig,
    candidates: Vec<SocketAddr>,
    participants: BTreeMap<ParticipantId, Participant>,
    tracks: BTreeMap<TrackId, Track>,
    next_track: u64,
    out: VecDeque<Output>,
    work: VecDeque<Work>,
    counters: RoomCounters,
}

impl Room {
    /// An empty room whose peers announce `candidates` (the server's one UDP port).
    pub fn new(name: impl Into<String>, config: RoomConfig, candidates: Vec<SocketAddr>) -> Self {
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
        let participant = Participant::new(info.clone(), &self.candidates, now).map_err(|e| {
            (
                ErrorCode::Internal,
                format!("Could not set up media for you: {e}"),
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
        Ok(())
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
                    self.broadcast(
                        None,
                        ServerMsg::TrackMuted {
                            id: track,
                            muted: true,
                            forced: true,
                        },
                    );
                }
            }
        }
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
        p.rtc.disconnect();
        let gone: Vec<TrackId> = p.published.values().copied().collect();
        for track in &gone {
            self.unpublish(*track);
        }
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
            } => {
                if let Err((code, message)) = self.offer(id, &sdp, &publish, &subscribe, now) {
                    self.out
                        .push_back(Output::Signal(id, ServerMsg::error(code, message)));
                }
            }
            ClientMsg::Mute { source, muted } => self.mute(id, source, muted),
            ClientMsg::Leave {} => self.leave(id, LeaveReason::Left),
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
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.last_heard = now;
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, contents) else {
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
        let due: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.next_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.participants.get_mut(&id) {
                if p.rtc.handle_input(str0m::Input::Timeout(now)).is_err() {
                    self.leave(id, LeaveReason::Error);
                    continue;
                }
                self.drain(id);
            }
        }
        self.pump(now);
        self.reap(now);
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing more for now.
    pub fn poll_output(&mut self, now: Instant) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = self
            .participants
            .values()
            .flat_map(|p| {
                let grace = p.disconnected_since.map(|t| t + self.config.ice_grace);
                let silence = p
                    .connected
                    .then(|| p.last_heard + self.config.media_timeout);
                [Some(p.next_timeout), grace, silence]
            })
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
        Output::Timeout(next)
    }

    fn offer(
        &mut self,
        id: ParticipantId,
        sdp: &str,
        publish: &BTreeMap<String, Source>,
        subscribe: &BTreeMap<String, TrackId>,
        now: Instant,
    ) -> Result<(), (ErrorCode, String)> {
        let sending = sdp_check::sending_mids(sdp);
        let p = self.participants.get_mut(&id).ok_or((
            ErrorCode::NotJoined,
            "You are not in this room.".to_string(),
        ))?;
        if !p.info.role.may_publish() && (!sending.is_empty() || !publish.is_empty()) {
            return Err((
                ErrorCode::Forbidden,
                "Your role cannot publish media; offer receive-only m-lines.".into(),
            ));
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| {
            (
                ErrorCode::SdpRejected,
                format!("The offer is not valid SDP: {e}"),
            )
        })?;
        let answer = p.rtc.sdp_api().accept_offer(offer).map_err(|e| {
            (
                ErrorCode::SdpRejected,
                format!("The offer was refused: {e}"),
            )
        })?;
        let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != p.ufrag {
            p.ufrag = ufrag.clone();
            self.out.push_back(Output::RouteUfrag(id, ufrag));
        }
        self.out.push_back(Output::Signal(
            id,
            ServerMsg::Answer {
                sdp: answer.to_sdp_string(),
            },
        ));
        self.drain(id);
        self.sync_published(id, publish, &sending);
        self.sync_subscriptions(id, subscribe, now);
        Ok(())
    }

    /// Makes the participant's published tracks match what its offer says it sends.
    fn sync_published(
        &mut self,
        id: ParticipantId,
        publish: &BTreeMap<String, Source>,
        sending: &[String],
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let mut wanted: HashMap<Mid, Source> = HashMap::new();
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
                let track = TrackId(self.next_track);
                self.next_track += 1;
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
                kind: if source.is_video() {
                    Kind::Video
                } else {
                    Kind::Audio
                },
                source,
                muted: false,
            };
            self.tracks.insert(
                id_t,
                Track {
                    info: info.clone(),
                    mid,
                    keyframes: KeyframeThrottle::default(),
                    forced_mute: false,
                },
            );
            self.broadcast(Some(id), ServerMsg::TrackPublished { track: info });
        }
    }

    /// Makes the participant's receiving m-lines carry what its offer asks for.
    fn sync_subscriptions(
        &mut self,
        id: ParticipantId,
        subscribe: &BTreeMap<String, TrackId>,
        now: Instant,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
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
        p.subscriptions.retain(|mid, _| keep.contains_key(mid));
        let mut need_keyframe = vec![];
        for (mid, track) in keep {
            match p.subscriptions.get_mut(&mid) {
                Some(s) if s.track == track => {}
                Some(s) => {
                    s.track = track;
                    s.pt_cache = None;
                    s.forwarder.switch_source();
                    need_keyframe.push(track);
                }
                None => {
                    p.subscriptions.insert(
                        mid,
                        Subscription {
                            track,
                            forwarder: Forwarder::new(),
                            pt_cache: None,
                        },
                    );
                    need_keyframe.push(track);
                }
            }
        }
        for track in need_keyframe {
            self.request_keyframe(track, KeyframeRequestKind::Pli, now);
        }
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
                self.broadcast(
                    None,
                    ServerMsg::TrackMuted {
                        id: track,
                        muted,
                        forced: false,
                    },
                );
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

    fn unpublish(&mut self, track: TrackId) {
        let Some(t) = self.tracks.remove(&track) else {
            return;
        };
        for p in self.participants.values_mut() {
            p.subscriptions.retain(|_, s| s.track != track);
        }
        self.broadcast(
            Some(t.info.participant),
            ServerMsg::TrackUnpublished { id: track },
        );
    }

    /// Drains one `Rtc` to its timeout, queueing transmits and events.
    fn drain(&mut self, id: ParticipantId) {
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
    fn pump(&mut self, now: Instant) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Event(id, e) => self.handle_event(id, e, now),
                Work::Keyframe(track, kind) => self.send_keyframe_request(track, kind),
            }
        }
    }

    fn handle_event(&mut self, id: ParticipantId, e: Event, now: Instant) {
        match e {
            Event::RtpPacket(pkt) => self.forward(id, pkt),
            Event::KeyframeRequest(req) => {
                let track = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.subscriptions.get(&req.mid))
                    .map(|s| s.track);
                if let Some(track) = track {
                    self.request_keyframe(track, req.kind, now);
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
                let tracks: Vec<TrackId> = self
                    .participants
                    .get(&id)
                    .map(|p| p.subscriptions.values().map(|s| s.track).collect())
                    .unwrap_or_default();
                for track in tracks {
                    self.request_keyframe(track, KeyframeRequestKind::Pli, now);
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video && m.direction.is_receiving() => {
                // A fresh publisher's first frames may be lost before DTLS is up; ask early.
                let track = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.published.get(&m.mid))
                    .copied();
                if let Some(track) = track {
                    self.request_keyframe(track, KeyframeRequestKind::Pli, now);
                }
            }
            _ => {}
        }
    }

    fn request_keyframe(&mut self, track: TrackId, kind: KeyframeRequestKind, now: Instant) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.info.kind == Kind::Video && t.keyframes.should_request(now, &self.config.keyframe) {
            self.work.push_back(Work::Keyframe(track, kind));
        }
    }

    fn send_keyframe_request(&mut self, track: TrackId, kind: KeyframeRequestKind) {
        let Some(t) = self.tracks.get(&track) else {
            return;
        };
        let (publisher, mid) = (t.info.participant, t.mid);
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        let mut api = p.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, None) else {
            return;
        };
        rx.request_keyframe(kind);
        self.counters.keyframe_requests += 1;
        self.drain(publisher);
    }

    /// Fans one publisher packet out to every subscription of its track.
    fn forward(&mut self, from: ParticipantId, pkt: RtpPacket) {
        self.counters.rtp_in += 1;
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let Some(mid) = p.mid_of(pkt.header.ssrc) else {
            return;
        };
        let Some(track) = p.published.get(&mid).copied() else {
            return;
        };
        if self.tracks.get(&track).is_none_or(|t| t.forced_mute) {
            *self.counters.dropped.entry(DropReason::Muted).or_default() += 1;
            return;
        }
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let in_pt = pkt.header.payload_type;
        let Some((codec, clock_rate)) = p.codec_of(in_pt) else {
            return;
        };
        let in_params = p.rtc.codec_config().find(|c| c.pt() == in_pt).copied();
        let video = codec.is_video();
        let view = PacketView {
            seq: *pkt.seq_no,
            time: pkt.time.numer(),
            clock_rate,
            video,
            keyframe_start: video && VideoCodec::from_str0m(codec).is_keyframe_start(&pkt.payload),
            arrival: pkt.timestamp,
        };
        let mut ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            video_content_type: pkt.header.ext_vals.video_content_type,
            ..Default::default()
        };
        ext.abs_capture_time = pkt.header.ext_vals.abs_capture_time;

        let subscribers: Vec<(ParticipantId, Mid)> = self
            .participants
            .iter()
            .flat_map(|(sid, s)| {
                s.subscriptions
                    .iter()
                    .filter(|(_, sub)| sub.track == track)
                    .map(move |(m, _)| (*sid, *m))
            })
            .collect();
        let mut wants_keyframe = false;
        for (sid, out_mid) in subscribers {
            let Some(s) = self.participants.get_mut(&sid) else {
                continue;
            };
            if !s.rtc.is_connected() {
                // Anything written before DTLS is up would be lost, keyframe included.
                *self
                    .counters
                    .dropped
                    .entry(DropReason::NotConnected)
                    .or_default() += 1;
                continue;
            }
            let Some(sub) = s.subscriptions.get_mut(&out_mid) else {
                continue;
            };
            let out_pt = match sub.pt_cache {
                Some((i, o)) if i == in_pt => Some(o),
                _ => {
                    let o = in_params
                        .and_then(|params| s.rtc.codec_config().match_params(params))
                        .map(|c| c.pt());
                    if let Some(o) = o {
                        sub.pt_cache = Some((in_pt, o));
                    }
                    o
                }
            };
            let decision = match out_pt {
                None => Decision::Drop(DropReason::NoMatchingCodec),
                Some(_) => sub.forwarder.decide(&view),
            };
            let (seq, time) = match decision {
                Decision::Forward { seq, time } => (seq, time),
                Decision::Drop(reason) => {
                    if reason == DropReason::NotKeyframeYet {
                        wants_keyframe = true;
                    }
                    *self.counters.dropped.entry(reason).or_default() += 1;
                    continue;
                }
            };
            let Some(pt) = out_pt else { continue };
            let mut api = s.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                *self
                    .counters
                    .dropped
                    .entry(DropReason::NoSendStream)
                    .or_default() += 1;
                continue;
            };
            tx.write_rtp(
                RtpWrite::new(
                    pt,
                    seq.into(),
                    time as u32,
                    pkt.timestamp,
                    pkt.payload.clone(),
                )
                .marker(pkt.header.marker)
                .ext_vals(ext.clone())
                .nackable(video),
            );
            self.counters.rtp_forwarded += 1;
            self.drain(sid);
        }
        if wants_keyframe {
            self.request_keyframe(track, KeyframeRequestKind::Pli, pkt.timestamp);
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
