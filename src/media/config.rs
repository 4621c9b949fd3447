//! Settings of a room's media behaviour.

use super::keyframe::KeyframeConfig;
use super::speaker::SpeakerConfig;
use std::time::Duration;

/// Settings of a room's media behaviour.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Most peers at once; the next join gets `room_full`.
    pub max_participants: usize,
    /// How long ICE may stay disconnected before the participant is reaped.
    pub ice_grace: Duration,
    /// How long a connected participant may send nothing at all (browsers send STUN consent
    /// checks every few seconds even when they publish nothing) before it is reaped.
    pub media_timeout: Duration,
    /// How long a participant whose offer was answered may take to connect its media (ICE
    /// and DTLS) before it is reaped: a joined session that never connects holds a seat.
    pub connect_timeout: Duration,
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
    /// Who rewrites, seals and sends media toward receive-only peers.
    pub send_path: SendPath,
}

/// Who sends media toward a subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    /// str0m's whole stack per subscriber (its pacer, estimator, reports, retransmissions);
    /// the previous default, kept to compare against and as a fallback.
    Str0m,
    /// confab's own rewrite + SRTP toward every peer, publishers included ([`super::fast`],
    /// which also sends the receiver reports toward publishers); str0m keeps negotiation,
    /// ICE, DTLS and the receive side. The default: it forwards about twice as many packets
    /// per CPU-second as `Str0m` in every measured scenario (issue 16).
    #[default]
    Lean,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            max_participants: 300,
            ice_grace: Duration::from_secs(4),
            media_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(20),
            keyframe: KeyframeConfig::default(),
            last_n: 25,
            speaker: SpeakerConfig::default(),
            bwe: true,
            ice_tcp: false,
            ice_tcp_http_port: None,
            send_path: SendPath::default(),
        }
    }
}
