//! One peer inside a room: its str0m `Rtc`, its published tracks and its subscriptions.

use super::forwarder::Forwarder;
use crate::protocol::{ParticipantInfo, TrackId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Rtc, RtcError};

/// One m-line of a subscriber that receives a remote track.
#[derive(Debug)]
pub struct Subscription {
    /// The track it carries.
    pub track: TrackId,
    /// Forwarding state.
    pub forwarder: Forwarder,
    /// Last (incoming pt → outgoing pt) mapping, so the codec lookup runs once per change.
    pub pt_cache: Option<(Pt, Pt)>,
}

/// One participant's media state.
pub struct Participant {
    /// Who it is.
    pub info: ParticipantInfo,
    /// Its WebRTC endpoint (ICE-lite, RTP mode).
    pub rtc: Rtc,
    /// Its local ICE username fragment: the key the UDP demux routes STUN by.
    pub ufrag: String,
    /// Its published tracks by the mid they arrive on.
    pub published: HashMap<Mid, TrackId>,
    /// What each of its receiving m-lines carries.
    pub subscriptions: HashMap<Mid, Subscription>,
    /// Incoming SSRC → mid, filled as streams appear.
    pub rx_mids: HashMap<Ssrc, Mid>,
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
    /// Creates the peer with an ICE-lite, RTP-mode `Rtc` announcing `candidates`.
    pub fn new(
        info: ParticipantInfo,
        candidates: &[SocketAddr],
        now: Instant,
    ) -> Result<Self, RtcError> {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(now);
        for addr in candidates {
            let candidate = Candidate::host(*addr, "udp")?;
            rtc.add_local_candidate(candidate);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Ok(Participant {
            info,
            rtc,
            ufrag,
            published: HashMap::new(),
            subscriptions: HashMap::new(),
            rx_mids: HashMap::new(),
            next_timeout: now,
            disconnected_since: None,
            connected: false,
            last_heard: now,
        })
    }

    /// The mid an incoming SSRC belongs to.
    pub fn mid_of(&mut self, ssrc: Ssrc) -> Option<Mid> {
        if let Some(mid) = self.rx_mids.get(&ssrc) {
            return Some(*mid);
        }
        let mid = self.rtc.direct_api().stream_rx(&ssrc)?.mid();
        self.rx_mids.insert(ssrc, mid);
        Some(mid)
    }

    /// The codec behind one of this peer's payload types.
    pub fn codec_of(&self, pt: Pt) -> Option<(Codec, u32)> {
        let params = self.rtc.codec_config().find(|p| p.pt() == pt)?;
        let spec = params.spec();
        Some((spec.codec, spec.clock_rate.get()))
    }
}
