//! A browser peer: its str0m `Rtc` (ICE-lite, RTP mode), its mid ↔ track maps, its down-tracks
//! and the m-lines parked between tracks; and how a packet a down-track forwards is written.

use super::codec_map;
use super::command::Output;
use super::config::{RoomConfig, SendPath};
use super::downtrack::{DownTrack, Incoming, Wishes};
use super::fast::clock::Now;
use super::fast::keys;
use super::fast::sender::{FastSender, Out, Packet, State};
use super::fast::srtcp_guard::SrtcpGuard;
use super::forwarder::{DropReason, Forwarder};
use super::lipsync::CaptureClock;
use super::midmap::MidMap;
use super::peer::Stage;
use super::peer_table::prefetch;
use crate::model::{ParticipantId, TrackId};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::bwe::Bitrate;
use str0m::format::{Codec, FormatParams, PayloadParams};
use str0m::media::{Frequency, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, TcpType};
use str0m::rtp::{RtpWrite, Ssrc, StreamTx};
use str0m::{Candidate, Rtc, RtcConfig, RtcError};

/// How long a rise of the lean estimate must last before allocation spends it.
const UP_HOLD: Duration = Duration::from_secs(1);

/// Where the downlink estimate starts before feedback refines it: a typical office downlink.
/// Starting low would make str0m's pacer (1.1 × estimate) queue media until the estimate
/// climbs; TWCC brings it down within a second where the path is worse.
const INITIAL_ESTIMATE_KBPS: u64 = 8000;

/// How far back a subscriber's NACK can reach: a few round trips on a bad network, and the
/// receiver's jitter buffer has moved on from anything older.
const RESEND_HISTORY: Duration = Duration::from_secs(1);
/// At most this many video packets remembered per m-line (1 s of a ~1.5 Mbit/s camera; a
/// heavier one keeps less than the full second).
const RESEND_PACKETS: usize = 150;
/// str0m's own default: stop answering NACKs when retransmissions pass 15 % of the traffic.
const RESEND_RATIO_CAP: Option<f32> = Some(0.15);

/// str0m's report interval on the fast path: it must stay silent on the streams the fast
/// path sends (its sender reports would carry a mapping it never saw), so: once a day.
const SILENT_REPORTS: Duration = Duration::from_secs(86_400);

/// A pacer sample older than this says nothing about the queue now.
const FRESH_SAMPLE: Duration = Duration::from_millis(250);

/// How long the oldest packet has waited in a send stream's queue, when str0m sampled it
/// recently.
fn queue_age(tx: &StreamTx, now: Instant) -> Option<Duration> {
    let info = tx.queue_info()?;
    if now.saturating_duration_since(info.created_at()) > FRESH_SAMPLE {
        return None;
    }
    info.first_unsent()
        .map(|t| now.saturating_duration_since(t))
}

/// The room's codecs on `config`: VP8 and H.264, and Opus with in-band FEC (loss
/// resilience) and DTX (silence costs almost nothing). The relay numbers codecs by this table.
pub(super) fn room_codecs(config: RtcConfig) -> RtcConfig {
    let mut config = config.clear_codecs().enable_vp8(true).enable_h264(true);
    config.codec_config().add_config(
        Pt::from(111),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            use_dtx: Some(true),
            ..Default::default()
        },
    );
    config
}

/// A browser's media state.
pub struct WebRtcPeer {
    /// Whether its offers may send media (the conference decides, by role).
    pub may_publish: bool,
    /// Its WebRTC endpoint (ICE-lite, RTP mode).
    pub rtc: Rtc,
    /// Its local ICE username fragment: the key the UDP demux routes STUN by.
    pub ufrag: String,
    /// Its published tracks by the mid they arrive on.
    ///
    /// The per-m-line maps here are looked up per packet, so they hash with FxHash, not
    /// SipHash: their keys come from the peer (mids from its SDP, SSRCs from its packets) but
    /// their size is bounded by its negotiated m-lines and streams (an SSRC enters `rx_mids`
    /// only once str0m knows its stream), so colliding keys cannot grow a probe past that.
    pub published: FxHashMap<Mid, TrackId>,
    /// What each of its receiving m-lines carries.
    pub down_tracks: MidMap<DownTrack>,
    /// Incoming SSRC → (mid, rid), filled as streams appear.
    pub rx_mids: FxHashMap<Ssrc, (Mid, Option<Rid>)>,
    /// Downlink estimate (TWCC) in bits per second.
    pub bwe: Option<u64>,
    /// A lean estimate above `bwe`: since when, and its lowest value since.
    pub rising: Option<(Instant, u64)>,
    /// Whose video it pinned.
    pub pinned: Option<ParticipantId>,
    /// The video tracks it was last told are forwarded.
    pub forwarded: Vec<TrackId>,
    /// The rendered heights it last reported, by track. Kept apart from the subscriptions so
    /// an m-line re-assigned by a renegotiation starts from what the client already said
    /// (clients only report when their layout changes).
    pub video_sizes: BTreeMap<TrackId, u32>,
    /// Forwarding state of m-lines that carry nothing now, so that when one carries a track
    /// again its numbering continues where it stopped: the browser keeps the m-line's stream
    /// and would drop packets that seem to go back in time. Bounded by the m-lines of the SDP.
    pub parked: FxHashMap<Mid, Forwarder>,
    /// Receive-only audio m-lines the server fills with voices (see `audio_slots`).
    pub audio_slots: Vec<Mid>,
    /// What it was last told its audio slots carry.
    pub announced_slots: BTreeMap<String, TrackId>,
    /// When its `Rtc` wants time next.
    pub next_timeout: Instant,
    /// Since when ICE has been disconnected, if it is.
    pub disconnected_since: Option<Instant>,
    /// Whether ICE ever connected.
    pub connected: bool,
    /// Whether ICE is connected now, as its last state change said: what `forward` reads
    /// per copy instead of the `Rtc`'s own state (a cold cache line at a wide fan-out).
    pub ice_up: bool,
    /// When its first offer was answered while it had not connected: from then on it is
    /// expected to connect within `connect_timeout`. A client with nothing to send or receive
    /// yet (alone with no camera, an audience before anyone presents) does not offer, and is
    /// not expected to connect.
    pub expected_since: Option<Instant>,
    /// When the last datagram from it arrived.
    pub last_heard: Instant,
    /// Its media is rewritten, sealed and sent by confab itself (every peer when the room's
    /// send path is lean); str0m's send streams stay silent.
    pub fast: Option<Box<FastSender>>,
    /// Replay protection for the SRTCP str0m opens (`fast::receive`): all of it on the str0m
    /// send path; on the lean path only what comes before its keys.
    pub srtcp_guard: SrtcpGuard,
    /// Its clock carried onto ours, from its sender reports: when it captured what it
    /// publishes, which our sender reports pair with the RTP time (`lipsync`).
    pub capture_clock: CaptureClock,
}

impl WebRtcPeer {
    /// `mid` carries `track` from now on, continuing the numbering it had if it carried
    /// something before.
    pub fn subscribe(&mut self, mid: Mid, track: TrackId, height: Option<u32>) {
        let mut sub = DownTrack::new(track, height);
        if let Some(fast) = self.fast.as_deref_mut() {
            // A renegotiation may have moved the m-line's extension ids.
            fast.forget_streams();
        }
        if let Some(mut forwarder) = self.parked.remove(&mid) {
            forwarder.switch_source();
            sub.forwarder = forwarder;
        } else {
            self.bound_resend_history(mid);
        }
        self.down_tracks.insert(mid, sub);
    }

    /// Keeps a video m-line's retransmission history to [`RESEND_HISTORY`] instead of str0m's
    /// 3 s: a retransmission older than that arrives after the receiver has given the frame
    /// up, and each remembered packet costs ~0.5 KB per subscriber (its header; the payload is
    /// shared), the largest part of a viewer's memory after the TWCC register. Done once,
    /// on the m-line's first subscription: setting it again would forget the history.
    fn bound_resend_history(&mut self, mid: Mid) {
        let video = self
            .rtc
            .media(mid)
            .is_some_and(|m| m.kind() == MediaKind::Video);
        if !video {
            return;
        }
        if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.set_rtx_cache(RESEND_PACKETS, RESEND_HISTORY, RESEND_RATIO_CAP);
        }
    }

    /// Parks every m-line whose subscription `gone` picks.
    pub fn park_where(&mut self, gone: impl Fn(&Mid, &DownTrack) -> bool) {
        let mids: Vec<Mid> = self
            .down_tracks
            .iter()
            .filter(|(mid, sub)| gone(mid, sub))
            .map(|(mid, _)| *mid)
            .collect();
        for mid in mids {
            self.park(mid);
        }
    }

    /// `mid` carries nothing from now on; returns whether it carried something.
    pub fn park(&mut self, mid: Mid) -> bool {
        match self.down_tracks.remove(&mid) {
            Some(sub) => {
                self.parked.insert(mid, sub.forwarder);
                true
            }
            None => false,
        }
    }

    /// Creates the peer with an ICE-lite, RTP-mode `Rtc` announcing `candidates`.
    pub fn new(
        may_publish: bool,
        candidates: &[SocketAddr],
        room: &RoomConfig,
        now: Instant,
    ) -> Result<Self, RtcError> {
        let config = room_codecs(Rtc::builder())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            // Capped here; aged by `bound_resend_history` once the m-line is used.
            .set_send_buffer_video(RESEND_PACKETS);
        // Every peer on the lean path (audience, meeting participants, a viewer promoted to
        // the stage later): str0m must not send on their streams, so its estimator (which
        // brings its pacer) stays off and the fast path sends. Silencing its sender reports
        // silences its receiver reports toward what the peer publishes too: `fast::reports`
        // sends those.
        let lean = room.send_path == SendPath::Lean;
        // TWCC bandwidth estimation toward this peer drives its layer allocation (and paces
        // what is sent to it).
        let config = if room.bwe && !lean {
            config.enable_bwe(Some(Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
        } else {
            config
        };
        let config = if lean {
            config
                .set_rtcp_report_interval_audio(SILENT_REPORTS)
                .set_rtcp_report_interval_video(SILENT_REPORTS)
        } else {
            config
        };
        // Every peer's keys are tapped: the lean path seals with them, and the SRTCP replay
        // guard checks what str0m opens on any path.
        let (mut rtc, slot) = keys::build_tapped(config, now);
        // What the lean path ranks nominations by (see `fast::ice`).
        let mut local = Vec::new();
        for addr in candidates {
            let candidate = Candidate::host(*addr, "udp")?;
            local.push((Protocol::Udp, *addr, candidate.prio()));
            rtc.add_local_candidate(candidate);
            // Passive TCP: the browser connects; its ICE ranks these below UDP, so they are
            // used only where UDP does not get through.
            let tcp_ports = room
                .ice_tcp
                .then_some(addr.port())
                .into_iter()
                .chain(room.ice_tcp_http_port);
            for port in tcp_ports {
                let tcp = Candidate::builder()
                    .tcp()
                    .host(SocketAddr::new(addr.ip(), port))
                    .tcptype(TcpType::Passive)
                    .build()?;
                local.push((Protocol::Tcp, tcp.addr(), tcp.prio()));
                rtc.add_local_candidate(tcp);
            }
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let estimate_from = room.bwe.then_some(INITIAL_ESTIMATE_KBPS * 1_000);
        let srtcp_guard = SrtcpGuard::new(slot.clone());
        let fast =
            lean.then(|| Box::new(FastSender::new(&mut rtc, local, slot, estimate_from, now)));
        Ok(WebRtcPeer {
            may_publish,
            rtc,
            ufrag,
            published: FxHashMap::default(),
            down_tracks: MidMap::default(),
            rx_mids: FxHashMap::default(),
            bwe: None,
            rising: None,
            pinned: None,
            forwarded: vec![],
            video_sizes: BTreeMap::new(),
            parked: FxHashMap::default(),
            audio_slots: vec![],
            announced_slots: BTreeMap::new(),
            next_timeout: now,
            disconnected_since: None,
            connected: false,
            ice_up: false,
            expected_since: None,
            last_heard: now,
            fast,
            srtcp_guard,
            capture_clock: CaptureClock::default(),
        })
    }

    /// One stage of the fan-out's prefetch (see [`super::peer::Peer::prefetch`]).
    #[inline]
    pub fn prefetch(&self, stage: Stage, at: u32) {
        match stage {
            // `Peer::prefetch` brings in the line its tag is on, whatever the kind.
            Stage::Head => {}
            Stage::Far => {
                prefetch(&self.ice_up, 1);
                prefetch(&self.down_tracks, 24);
                prefetch(&self.fast, 8);
            }
            Stage::Mid => {
                self.down_tracks.prefetch_at(at);
                if let Some(f) = self.fast.as_deref() {
                    f.prefetch_fields();
                }
            }
            Stage::Near => {
                if let (Some(f), Some(d)) = (self.fast.as_deref(), self.down_tracks.get_at(at)) {
                    f.prefetch_state(d.lean_slot);
                }
            }
        }
    }

    /// Lets the down-track on `mid` (at index `at` of `down_tracks` when the subscriber index
    /// was built) decide about one packet and writes it if forwarded;
    /// `Ok(true)` when the write made it want time sooner (str0m's write makes it due now;
    /// video the pacer holds gives it a pacer wake): the router's timer index must know.
    pub fn forward(
        &mut self,
        mid: Mid,
        at: u32,
        p: &Incoming,
        wishes: &mut Wishes,
        out: &mut VecDeque<Output>,
    ) -> Result<bool, DropReason> {
        if !self.ice_up {
            // Anything written before DTLS is up would be lost, keyframe included.
            return Err(DropReason::NotConnected);
        }
        let Some(down) = self.down_tracks.get_mut_at(&mid, at) else {
            return Err(DropReason::SubscriptionGone);
        };
        let rtc = &mut self.rtc;
        let pt = down.admit(p, wishes, |params| {
            // What this m-line negotiated, not the subscriber's whole session.
            let line_pts = rtc.media(mid).map_or(&[][..], |m| m.remote_pts());
            codec_map::out_pt(rtc.codec_config(), line_pts, params)
        })?;
        let now = p.view.arrival;
        if let Some(fast) = self.fast.as_deref_mut() {
            match fast.state() {
                State::Str0m => {}
                State::Waiting => return Err(DropReason::NotConnected),
                State::Ready => {
                    // The congestion gate sees how long the pacer has held video.
                    let (seq, time) = down.number(p, wishes, || fast.queue_age(now))?;
                    let pkt = Packet {
                        pt: *pt,
                        marker: p.marker,
                        seq,
                        time,
                        clock_rate: p.view.clock_rate,
                        captured: p.view.capture,
                        source: p.view.video.then_some((p.layer, p.view.seq)),
                    };
                    let payload = &p.payload[..];
                    let slot = &mut down.lean_slot;
                    let now = Now {
                        at: now,
                        ns: p.arrival_ns,
                    };
                    return match fast.send_paced(rtc, mid, slot, pkt, payload, now) {
                        Some(Out::Now(t)) => {
                            out.push_back(Output::Transmit(t));
                            Ok(false)
                        }
                        Some(Out::Held) => Ok(true),
                        None => Err(DropReason::NoSendStream),
                    };
                }
            }
        }
        // One send-stream lookup serves the congestion gate and the write.
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return Err(DropReason::NoSendStream);
        };
        let (seq, time) = down.number(p, wishes, || queue_age(tx, now))?;
        tx.write_rtp(
            RtpWrite::new(
                pt,
                seq.into(),
                time as u32,
                p.view.capture,
                p.payload.clone(),
            )
            .marker(p.marker)
            .ext_vals(p.ext.clone())
            .nackable(p.view.video),
        );
        // str0m releases written media only from a timeout, so draining now would find
        // nothing to send and cost a full poll. The subscriber is due instead: every packet
        // written to it before the router next takes time leaves in that one pass.
        self.next_timeout = self.next_timeout.min(now);
        Ok(true)
    }

    /// A new downlink estimate; returns whether it moved enough to reallocate layers.
    pub fn note_estimate(&mut self, new: u64) -> bool {
        // Small wobbles do not deserve a reallocation.
        let moved = self.bwe.is_none_or(|old| new.abs_diff(old) * 10 > old);
        if moved {
            self.bwe = Some(new);
        }
        moved
    }

    /// A new estimate from the lean path's own estimator: a fall counts at once; a rise only
    /// once it has held for `UP_HOLD`, then at its lowest over that time and never past 1.25 ×
    /// what the subscriber acknowledged receiving (`delivered`). Under a cap the estimator may
    /// run up to 1.5 × the acknowledged rate before its delay detector reacts (measured in
    /// virtual time: 243 → 466 kbit/s over 3 s on a 300 kbit/s link), and a layer bought on
    /// such a peak overloads the link until the next fall (issue 16: a capped viewer went
    /// back up a layer). Padding toward the next step is what lets `delivered` grow where the
    /// path does carry more. A rise while the estimator climbs back after a cut the path did
    /// not confirm (`recovering`: a stall read as a queue) counts at once: it only returns to
    /// a rate the path carried, and waiting for `delivered` there would take a step per second.
    pub fn note_lean_estimate(
        &mut self,
        new: u64,
        delivered: Option<u64>,
        recovering: bool,
        now: Instant,
    ) -> bool {
        match self.bwe {
            Some(old) if new > old && !recovering => {
                let (since, lowest) = self.rising.get_or_insert((now, new));
                *lowest = (*lowest).min(new);
                if now.saturating_duration_since(*since) < UP_HOLD {
                    return false;
                }
                let spend = delivered.map_or(*lowest, |d| (d * 5 / 4).min(*lowest));
                self.rising = None;
                spend > old && self.note_estimate(spend)
            }
            _ => {
                self.rising = None;
                self.note_estimate(new)
            }
        }
    }

    /// The mid and rid an incoming SSRC belongs to.
    pub fn mid_of(&mut self, ssrc: Ssrc) -> Option<(Mid, Option<Rid>)> {
        if let Some(found) = self.rx_mids.get(&ssrc) {
            return Some(*found);
        }
        let mut api = self.rtc.direct_api();
        let rx = api.stream_rx(&ssrc)?;
        let found = (rx.mid(), rx.rid());
        self.rx_mids.insert(ssrc, found);
        Some(found)
    }

    /// The negotiated parameters behind one of this peer's payload types.
    pub fn params_of(&self, pt: Pt) -> Option<PayloadParams> {
        self.rtc.codec_config().find(|p| p.pt() == pt).copied()
    }
}
