//! The bot's sans-IO core: negotiation, synthetic media clock and receive statistics.
//!
//! Driven like the media room: one input (`handle_signal`, `handle_datagram`,
//! `handle_timeout`), then drain `poll_output` until [`ClientOutput::Timeout`]. The tokio bot
//! and the virtual-time simulator both wrap this one core.

mod answer;
mod feedback;
mod keyframe;
mod send;

use super::media::{read_stamp, StreamShape};
use super::{seq::extend_seq, BotStats, TrackStats};
use crate::media::codec::VideoCodec;
use crate::protocol::{ClientMsg, ErrorCode, Kind, Role, ServerMsg, Source, TrackId, TrackInfo};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};

/// Simulcast rids, lowest layer first.
const RIDS: [&str; 3] = ["q", "h", "f"];

fn rid_layer(rid: &Rid) -> u8 {
    RIDS.iter().position(|r| *r == &**rid).unwrap_or(0) as u8
}

/// What the core asks its shell to do.
#[derive(Debug)]
pub enum ClientOutput {
    /// Send a datagram.
    Transmit(Transmit),
    /// Send a signalling message.
    Signal(ClientMsg),
    /// Nothing more until then.
    Timeout(Instant),
}

/// What the client does.
#[derive(Debug, Clone, Copy)]
pub struct ClientBehaviour {
    /// Publish a microphone and a camera.
    pub publish: bool,
    /// Subscribe to every remote track.
    pub subscribe: bool,
    /// Shape of the synthetic streams.
    pub shape: StreamShape,
    /// Offer to send even when the role forbids it (a hostile client, for tests).
    pub ignore_role: bool,
    /// Receive audio on this many server-filled slots instead of one m-line per remote
    /// microphone (0: per-track audio subscriptions), as the web client does.
    pub audio_slots: usize,
}

/// A headless WebRTC client without I/O.
pub struct ClientCore {
    behaviour: ClientBehaviour,
    rtc: Rtc,
    local: SocketAddr,
    own_id: crate::protocol::ParticipantId,
    role: Role,
    pending: Option<SdpPendingOffer>,
    dirty: bool,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    subs: HashMap<Mid, (TrackId, bool)>,
    /// Audio slot m-lines, once added.
    slots: Vec<Mid>,
    wanted: Vec<TrackInfo>,
    to_stop: Vec<Mid>,
    /// Receive m-lines whose track went: made inactive with the next offer.
    to_idle: Vec<(Mid, bool)>,
    /// Inactive receive m-lines (mid, video), reused for the next tracks of their kind as a
    /// browser recycles transceivers: without this every track that ever came would add an
    /// m-line for good, on both ends, and a long-lived bot would reach the server's cap.
    idle: Vec<(Mid, bool)>,
    out: VecDeque<ClientOutput>,
    /// What it observed.
    pub stats: BotStats,
    seq_audio: u64,
    seq_video: [u64; 3],
    frames: u64,
    force_key: [bool; 3],
    /// Layers the server asked for; `None` until it says (send everything).
    active_rids: Option<Vec<String>>,
    last_key: Instant,
    /// Where the media clock's slots count from: real media is chosen by slot, as a capture
    /// device's frames are, so a clip's audio and video stay aligned whatever is skipped.
    media_start: Instant,
    next_audio: Instant,
    next_video: Instant,
    rtc_timeout: Instant,
    connected: bool,
    restart_ice: bool,
    decrypt: bool,
    /// Where this client's SRTP keys land once DTLS is done.
    keys: crate::media::fast::keys::KeySlot,
    /// Transport-wide feedback of a client that does not decrypt (`None` while it does).
    feedback: Option<feedback::TwccFeedback>,
    /// When the datagram being handled reached the socket, if its shell knows.
    arrived: Option<Instant>,
    /// Real frames and packets to send instead of synthetic ones.
    pub real: Option<std::sync::Arc<super::real::RealMedia>>,
}

impl ClientCore {
    /// A client at `local` that has just received `joined` with these `tracks`.
    pub fn new(
        behaviour: ClientBehaviour,
        local: SocketAddr,
        own_id: crate::protocol::ParticipantId,
        role: Role,
        tracks: Vec<TrackInfo>,
        now: Instant,
    ) -> Result<Self, RtcError> {
        let config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            // Egress stats carry what the server's receiver reports say (see `reported`).
            .set_stats_interval(Some(Duration::from_secs(1)));
        // The default provider's parts, through the wrapper that lets the simulator give a bot
        // AES-CM keys (`keys::with_aes_cm`) and hands over the keys a count-only client seals
        // its feedback with.
        let (mut rtc, keys) = crate::media::fast::keys::build_tapped(config, now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut core = ClientCore {
            behaviour,
            rtc,
            local,
            own_id,
            role,
            pending: None,
            dirty: false,
            audio_mid: None,
            video_mid: None,
            subs: HashMap::new(),
            slots: vec![],
            wanted: vec![],
            to_stop: vec![],
            to_idle: vec![],
            idle: vec![],
            out: VecDeque::new(),
            stats: BotStats::default(),
            seq_audio: 1,
            seq_video: [1; 3],
            frames: 0,
            force_key: [true; 3],
            active_rids: None,
            last_key: now,
            media_start: now,
            next_audio: now,
            next_video: now,
            rtc_timeout: now,
            connected: false,
            restart_ice: false,
            decrypt: true,
            keys,
            feedback: None,
            arrived: None,
            real: None,
        };
        if behaviour.subscribe {
            core.wanted
                .extend(tracks.into_iter().filter(|t| t.participant != own_id));
        }
        core.negotiate();
        Ok(core)
    }

    /// Restarts ICE with the next offer (new credentials on both sides), as after a network
    /// change.
    pub fn restart_ice(&mut self) {
        self.restart_ice = true;
        self.negotiate();
    }

    /// Moves to a new local address (its socket the caller's), as after a network change: the
    /// old candidate is dropped, the new one added, and ICE restarts.
    pub fn move_to(&mut self, local: SocketAddr) -> Result<(), RtcError> {
        let old = Candidate::host(self.local, "udp")?;
        self.rtc.direct_api().invalidate_candidate(&old);
        self.rtc.add_local_candidate(Candidate::host(local, "udp")?);
        self.local = local;
        self.restart_ice();
        Ok(())
    }

    /// Changes the level sent with audio from now on.
    pub fn set_audio_level(&mut self, level: i8) {
        self.behaviour.shape.audio_level = level;
    }

    /// Whether ICE has connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A signalling message from the server.
    pub fn handle_signal(&mut self, msg: &ServerMsg) -> Result<(), RtcError> {
        match msg {
            ServerMsg::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(sdp)?;
                if let Some(pending) = self.pending.take() {
                    self.rtc.sdp_api().accept_answer(pending, answer)?;
                }
                self.learn_feedback_ext();
                self.drain()?;
                if std::mem::take(&mut self.dirty) {
                    self.negotiate();
                }
            }
            ServerMsg::Error {
                code:
                    ErrorCode::SdpRejected
                    | ErrorCode::Forbidden
                    | ErrorCode::BadMessage
                    | ErrorCode::TooLarge,
                ..
            } => {
                // A refused offer is abandoned; the client keeps what it has. Other errors
                // (a chat over the talk limit) answer other messages: dropping the offer
                // then would apply its answer to nothing, and the next offer's to the
                // wrong one.
                self.pending = None;
            }
            ServerMsg::TrackPublished { track }
                if self.behaviour.subscribe && track.participant != self.own_id =>
            {
                self.wanted.push(track.clone());
                self.negotiate();
            }
            ServerMsg::PublishLayers { active, .. } => {
                self.active_rids = Some(active.clone());
            }
            ServerMsg::AudioSlots { slots } => {
                for mid in &self.slots {
                    match slots.get(&mid.to_string()) {
                        Some(track) => self.subs.insert(*mid, (*track, false)),
                        None => self.subs.remove(mid),
                    };
                }
            }
            ServerMsg::ParticipantUpdated { participant } if participant.id == self.own_id => {
                self.role = participant.role;
                if !self.may_send() {
                    // Demoted: the next offer stops the sending m-lines (it must be receive-only).
                    let sending = [self.audio_mid.take(), self.video_mid.take()];
                    self.to_stop.extend(sending.into_iter().flatten());
                }
                self.negotiate();
            }
            ServerMsg::TrackUnpublished { id } => {
                let gone: Vec<(Mid, bool)> = self
                    .subs
                    .iter()
                    .filter(|(m, (t, _))| t == id && !self.slots.contains(m))
                    .map(|(m, (_, video))| (*m, *video))
                    .collect();
                self.wanted.retain(|t| t.id != *id);
                if !gone.is_empty() {
                    for (m, video) in gone {
                        self.subs.remove(&m);
                        self.to_idle.push((m, video));
                    }
                    self.negotiate();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether received media is decrypted (on by default); see [`super::BotConfig::decrypt`].
    pub fn set_decrypt(&mut self, decrypt: bool) {
        self.decrypt = decrypt;
        self.feedback = match decrypt {
            true => None,
            false => Some(feedback::TwccFeedback::new(self.keys.clone())),
        };
        self.learn_feedback_ext();
    }

    /// Reads the transport-wide extension's id from what the answer agreed (every m-line of
    /// one transport shares it).
    fn learn_feedback_ext(&mut self) {
        let Some(fb) = self.feedback.as_mut().filter(|f| !f.has_ext_id()) else {
            return;
        };
        let id = self.subs.keys().chain(&self.slots).find_map(|mid| {
            self.rtc
                .media(*mid)
                .and_then(|m| m.remote_extmap().id_of(Extension::TransportSequenceNumber))
        });
        fb.set_ext_id(id);
    }

    /// Publishes from the next offer on (a viewer on the stage turning its camera on).
    pub fn start_publishing(&mut self) {
        self.behaviour.publish = true;
        self.negotiate();
    }

    /// A datagram from the server.
    pub fn handle_datagram(&mut self, source: SocketAddr, contents: &[u8], now: Instant) {
        if !self.decrypt && self.count_undecrypted(contents) {
            let arrived = self.arrived.unwrap_or(now);
            if let Some(fb) = self.feedback.as_mut() {
                if fb.on_rtp(contents, source, arrived) {
                    self.send_feedback(now, true);
                }
            }
            return;
        }
        if let Ok(rx) = Receive::new(Protocol::Udp, source, self.local, contents) {
            // Garbage from the network is the network's problem, not the client's.
            let _ = self.rtc.handle_input(Input::Receive(now, rx));
        }
        let _ = self.drain();
    }

    /// A datagram that reached the socket at `arrived` (the kernel's stamp) and is handled at
    /// `now`: the latency of what it carries is measured to `arrived`, so the time the shell
    /// took to get round to it is not counted.
    pub fn handle_datagram_arrived(
        &mut self,
        source: SocketAddr,
        contents: &[u8],
        now: Instant,
        arrived: Instant,
    ) {
        self.arrived = Some(arrived.min(now));
        self.handle_datagram(source, contents, now);
        self.arrived = None;
    }

    /// Counts an SRTP packet from its clear header; `false` when it is not RTP (STUN, DTLS,
    /// RTCP), which str0m must still see.
    fn count_undecrypted(&mut self, d: &[u8]) -> bool {
        // RFC 7983: 128–191 is RTP or RTCP; RTCP packet types 192–223 sit where RTP's
        // marker bit and payload type are, and dynamic RTP payload types are ≥ 96.
        if d.len() < 12 || !(128..=191).contains(&d[0]) || (192..=223).contains(&d[1]) {
            return false;
        }
        let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        let seq16 = u16::from_be_bytes([d[2], d[3]]);
        let t = self.stats.undecrypted.entry(ssrc).or_default();
        if t.packets == 0 {
            let pt = d[1] & 0x7f;
            t.video = self
                .rtc
                .codec_config()
                .find(|p| *p.pt() == pt)
                .is_some_and(|p| p.spec().codec.is_video());
        }
        let seq = extend_seq(t.seq_range.map(|(_, hi)| hi), seq16);
        t.packets += 1;
        t.bytes += d.len() as u64;
        t.seq_range = Some(match t.seq_range {
            None => (seq, seq),
            Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
        });
        true
    }

    /// Time passes: str0m's timers and the media clock.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtcError> {
        self.rtc.handle_input(Input::Timeout(now))?;
        self.drain()?;
        self.send_feedback(now, false);
        if self.connected {
            if let Some(mid) = self.audio_mid {
                while self.next_audio <= now {
                    self.send_audio(mid, now)?;
                    self.next_audio += Duration::from_millis(20);
                }
            }
            if let Some(mid) = self.video_mid {
                let frame = Duration::from_secs(1) / self.behaviour.shape.fps.max(1);
                while self.next_video <= now {
                    self.send_video(mid, now)?;
                    self.next_video += frame;
                }
            }
        }
        Ok(())
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> ClientOutput {
        match self.out.pop_front() {
            Some(o) => o,
            None => ClientOutput::Timeout(self.next_timeout()),
        }
    }

    /// When the core next wants time, without taking any queued output.
    pub fn next_timeout(&self) -> Instant {
        let mut next = self.rtc_timeout;
        if let Some(due) = self.feedback.as_ref().and_then(|f| f.next_due()) {
            next = next.min(due);
        }
        if self.connected {
            if self.audio_mid.is_some() {
                next = next.min(self.next_audio);
            }
            if self.video_mid.is_some() {
                next = next.min(self.next_video);
            }
        }
        next
    }

    /// Queues the feedback packet if it is due (or `force`).
    fn send_feedback(&mut self, now: Instant, force: bool) {
        let local = self.local;
        if let Some(t) = self
            .feedback
            .as_mut()
            .and_then(|f| f.poll(local, now, force))
        {
            self.out.push_back(ClientOutput::Transmit(t));
        }
    }

    fn drain(&mut self) -> Result<(), RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => self.out.push_back(ClientOutput::Transmit(t)),
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::IceConnectionStateChange(IceConnectionState::Connected)
            | Event::IceConnectionStateChange(IceConnectionState::Completed)
            | Event::Connected => {
                self.connected = true;
                self.stats.connected = true;
            }
            Event::KeyframeRequest(req) => {
                let layer = req.rid.map(|r| rid_layer(&r)).unwrap_or(0);
                self.force_key[usize::from(layer)] = true;
                self.stats.keyframe_requests += 1;
            }
            Event::MediaEgressStats(s) => self.stats.note_egress(&s),
            Event::RtpPacket(p) => {
                let Some(mid) = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid())
                else {
                    return;
                };
                let Some((track, video)) = self.subs.get(&mid).copied() else {
                    return;
                };
                let t: &mut TrackStats = self.stats.tracks.entry(track).or_default();
                let seq = *p.seq_no;
                t.video = video;
                t.packets += 1;
                t.bytes += p.payload.len() as u64;
                t.seq_range = Some(match t.seq_range {
                    None => (seq, seq),
                    Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
                });
                let key = video && VideoCodec::Vp8.is_keyframe_start(&p.payload);
                if key {
                    t.keyframes += 1;
                }
                let at = self.arrived.unwrap_or(p.timestamp);
                if let Some(info) = &p.last_sender_info {
                    t.note_report_time(info, p.time, at);
                }
                if let Some(stamp) = read_stamp(&p.payload, video, at) {
                    t.delays_us.record(stamp.age_us);
                    if video {
                        let layer = stamp.layer.min(2);
                        t.layer_packets[usize::from(layer)] += 1;
                        if t.by_seq.len() < 200_000 {
                            t.by_seq.insert(seq, (layer, key));
                        }
                        // Retransmissions arrive late; the highest sequence tells the layer now.
                        if t.seq_range.is_some_and(|(_, hi)| hi == seq) {
                            t.last_layer = Some(layer);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn negotiate(&mut self) {
        if self.pending.is_some() {
            self.dirty = true;
            return;
        }
        let may_send = self.may_send();
        let mut change = self.rtc.sdp_api();
        if self.behaviour.publish && may_send && self.audio_mid.is_none() {
            let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let simulcast = self.behaviour.shape.simulcast.then(|| {
                let mut s = Simulcast::new();
                for rid in RIDS {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            let v = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
            self.audio_mid = Some(a);
            self.video_mid = Some(v);
        }
        if self.slots.is_empty() {
            for _ in 0..self.behaviour.audio_slots {
                let mid = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
                self.slots.push(mid);
            }
        }
        let slotted = self.behaviour.audio_slots > 0;
        for t in self.wanted.drain(..) {
            if slotted && t.kind == Kind::Audio {
                continue;
            }
            let video = t.kind == Kind::Video;
            // Only m-lines made inactive by an earlier, answered offer are reused: turning one
            // back to receiving is then a change, so this offer carries the new subscription.
            let mid = match self.idle.iter().position(|(_, v)| *v == video) {
                Some(i) => {
                    let (mid, _) = self.idle.swap_remove(i);
                    change.set_direction(mid, Direction::RecvOnly);
                    mid
                }
                None => {
                    let kind = if video {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    };
                    change.add_media(kind, Direction::RecvOnly, None, None, None)
                }
            };
            self.subs.insert(mid, (t.id, video));
        }
        for (m, video) in self.to_idle.drain(..) {
            change.set_direction(m, Direction::Inactive);
            self.idle.push((m, video));
        }
        for m in self.to_stop.drain(..) {
            change.stop_media(m);
        }
        if std::mem::take(&mut self.restart_ice) {
            change.ice_restart(true);
        }
        let Some((offer, pending)) = change.apply() else {
            return;
        };
        let mut publish = BTreeMap::new();
        if let Some(a) = self.audio_mid {
            publish.insert(a.to_string(), Source::Microphone);
        }
        if let Some(v) = self.video_mid {
            publish.insert(v.to_string(), Source::Camera);
        }
        let subscribe = self
            .subs
            .iter()
            .map(|(m, (t, _))| (m.to_string(), *t))
            .collect();
        self.pending = Some(pending);
        self.out.push_back(ClientOutput::Signal(ClientMsg::Offer {
            sdp: offer.to_sdp_string(),
            publish,
            subscribe,
            audio_slots: self.slots.iter().map(|m| m.to_string()).collect(),
        }));
    }

    fn may_send(&self) -> bool {
        self.behaviour.ignore_role || self.role.may_publish()
    }
}
