//! One peer inside a room: its str0m `Rtc`, its published tracks and its subscriptions.

use super::forwarder::Forwarder;
use super::room::RoomConfig;
use super::simulcast::LayerSelector;
use crate::model::{ParticipantId, TrackId};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::bwe::Bitrate;
use str0m::format::{Codec, FormatParams, PayloadParams};
use str0m::media::{Frequency, MediaKind, Mid, Pt, Rid};
use str0m::net::TcpType;
use str0m::rtp::Ssrc;
use str0m::{Candidate, Rtc, RtcError};

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

/// One m-line of a subscriber that receives a remote track.
#[derive(Debug)]
pub struct Subscription {
    /// The track it carries.
    pub track: TrackId,
    /// Forwarding state.
    pub forwarder: Forwarder,
    /// Last (incoming pt → outgoing pt on this m-line, or none negotiated) mapping, so the
    /// codec lookup runs once per change.
    pub pt_cache: Option<(Pt, Option<Pt>)>,
    /// Which simulcast layer it forwards.
    pub selector: LayerSelector,
    /// Height the subscriber renders it at (device pixels); `u32::MAX` until it reports.
    pub height: u32,
}

impl Subscription {
    /// A fresh subscription: nothing forwarded until allocation picks a layer. `height` is
    /// what the subscriber last reported for the track, if it did.
    pub fn new(track: TrackId, height: Option<u32>) -> Self {
        Subscription {
            track,
            forwarder: Forwarder::new(),
            pt_cache: None,
            selector: LayerSelector::default(),
            height: height.unwrap_or(u32::MAX),
        }
    }

    /// The m-line carries another track from now on: its numbering continues, and it starts
    /// again from a keyframe and a fresh layer choice.
    pub fn retarget(&mut self, track: TrackId, height: Option<u32>) {
        self.track = track;
        self.pt_cache = None;
        self.forwarder.switch_source();
        self.selector = LayerSelector::default();
        self.height = height.unwrap_or(u32::MAX);
    }
}

/// One participant's media state.
pub struct Participant {
    /// Whether its offers may send media (the conference decides, by role).
    pub may_publish: bool,
    /// Its WebRTC endpoint (ICE-lite, RTP mode).
    pub rtc: Rtc,
    /// Its local ICE username fragment: the key the UDP demux routes STUN by.
    pub ufrag: String,
    /// Its published tracks by the mid they arrive on.
    pub published: HashMap<Mid, TrackId>,
    /// What each of its receiving m-lines carries.
    pub subscriptions: HashMap<Mid, Subscription>,
    /// Incoming SSRC → (mid, rid), filled as streams appear.
    pub rx_mids: HashMap<Ssrc, (Mid, Option<Rid>)>,
    /// Downlink estimate (TWCC) in bits per second.
    pub bwe: Option<u64>,
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
    pub parked: HashMap<Mid, Forwarder>,
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
    /// When the last datagram from it arrived.
    pub last_heard: Instant,
}

impl Participant {
    /// `mid` carries `track` from now on, continuing the numbering it had if it carried
    /// something before.
    pub fn subscribe(&mut self, mid: Mid, track: TrackId, height: Option<u32>) {
        let mut sub = Subscription::new(track, height);
        if let Some(mut forwarder) = self.parked.remove(&mid) {
            forwarder.switch_source();
            sub.forwarder = forwarder;
        } else {
            self.bound_resend_history(mid);
        }
        self.subscriptions.insert(mid, sub);
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
    pub fn park_where(&mut self, gone: impl Fn(&Mid, &Subscription) -> bool) {
        let mids: Vec<Mid> = self
            .subscriptions
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
        match self.subscriptions.remove(&mid) {
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
        let config = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            // Capped here; aged by `bound_resend_history` once the m-line is used.
            .set_send_buffer_video(RESEND_PACKETS);
        // TWCC bandwidth estimation toward this peer drives its layer allocation (and paces
        // what is sent to it).
        let mut config = if room.bwe {
            config.enable_bwe(Some(Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
        } else {
            config
        };
        // Opus with in-band FEC (loss resilience) and DTX (silence costs almost nothing).
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
        let mut rtc = config.build(now);
        for addr in candidates {
            let candidate = Candidate::host(*addr, "udp")?;
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
                rtc.add_local_candidate(tcp);
            }
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Ok(Participant {
            may_publish,
            rtc,
            ufrag,
            published: HashMap::new(),
            subscriptions: HashMap::new(),
            rx_mids: HashMap::new(),
            bwe: None,
            pinned: None,
            forwarded: vec![],
            video_sizes: BTreeMap::new(),
            parked: HashMap::new(),
            audio_slots: vec![],
            announced_slots: BTreeMap::new(),
            next_timeout: now,
            disconnected_since: None,
            connected: false,
            last_heard: now,
        })
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
