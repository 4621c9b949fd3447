//! A published track and its simulcast layers: rid, measured bitrate, keyframe throttle.

use super::fast::history::Histories;
use super::keyframe::KeyframeThrottle;
use super::peer_table::Subscriber;
use super::simulcast::{layer_of, Layer};
use crate::model::{Encoding, Source, TrackInfo};
use std::time::{Duration, Instant};
use str0m::media::{Mid, Rid};

/// The camera's simulcast layers, lowest first: rid, how much smaller than the capture, and the
/// bitrate browsers are asked to cap it at. The one source of these numbers: clients receive
/// them in `joined` (see [`encodings`]) and the allocator assumes them until it has measured.
const CAMERA_LAYERS: [(&str, u32, u64); 3] =
    [("q", 4, 150_000), ("h", 2, 500_000), ("f", 1, 1_500_000)];

/// A camera sent without simulcast (the client's choice), before it has been measured.
const CAMERA_SINGLE_BPS: u64 = 800_000;

/// A screen share's one encoding. It keeps its resolution (often 1080p or more, captured at the
/// screen's own size) and gives up frame rate instead; 1.5 Mbit/s left text blurred for a
/// second after every scroll, so clients send and the allocator budgets 2.5 Mbit/s.
const SCREEN_BPS: u64 = 2_500_000;

/// Frame-rate cap of every video encoding; captures ask for no more.
const MAX_FRAMERATE: u32 = 30;

/// Bitrate assumed for a layer that has not been measured yet (paused, or just started).
fn nominal_rate(source: Source, layer: Layer, layers: usize) -> u64 {
    match (source, layers) {
        (Source::Screen, _) => SCREEN_BPS,
        (_, 1) => CAMERA_SINGLE_BPS,
        (_, _) => CAMERA_LAYERS[usize::from(layer.min(2))].2,
    }
}

/// What a client sends for `source`: its encodings, lowest first (`Camera` and `Screen` only;
/// audio has no layers).
pub fn encodings(source: Source) -> Vec<Encoding> {
    match source {
        Source::Camera => CAMERA_LAYERS
            .iter()
            .map(|&(rid, scale_down_by, max_bitrate)| Encoding {
                rid: rid.to_string(),
                scale_down_by,
                max_bitrate,
                max_framerate: MAX_FRAMERATE,
            })
            .collect(),
        Source::Screen => vec![Encoding {
            rid: String::new(),
            scale_down_by: 1,
            max_bitrate: SCREEN_BPS,
            max_framerate: MAX_FRAMERATE,
        }],
        _ => Vec::new(),
    }
}

/// Measured bitrate over half-second windows.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    window_start: Option<Instant>,
    bytes: u64,
    rate: Option<u64>,
    last_packet: Option<Instant>,
}

const WINDOW: Duration = Duration::from_millis(500);

/// A layer silent this long is not arriving: its publisher paused it, or its uplink cannot
/// carry it (Chromium drops its top layers while its send estimate is low).
const LAYER_STALL: Duration = Duration::from_secs(1);

/// Bytes of headers around a media payload on the wire (RTP 12 + extensions ~16 + SRTP tag 16
/// + UDP 8 + IPv4 20).
const PACKET_OVERHEAD: usize = 72;

impl RateMeter {
    /// Counts a packet of `bytes` payload.
    pub fn add(&mut self, bytes: usize, now: Instant) {
        // What the link carries: payload plus RTP, SRTP, UDP and IP headers.
        let bytes = bytes + PACKET_OVERHEAD;
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            self.rate = Some(self.bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64);
            self.window_start = Some(now);
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
        self.last_packet = Some(now);
    }

    /// Whether a packet came within `within` of `now`.
    pub fn fresh(&self, now: Instant, within: Duration) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < within)
    }

    /// Bits per second, if measured recently.
    pub fn rate(&self, now: Instant) -> Option<u64> {
        let fresh = self
            .last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(2));
        self.rate.filter(|_| fresh)
    }
}

/// One simulcast layer (or the only encoding).
#[derive(Debug, Clone, Default)]
pub struct LayerState {
    /// Its rid, `None` without simulcast.
    pub rid: Option<Rid>,
    /// Keyframe requests for this layer.
    pub keyframes: KeyframeThrottle,
    /// Its measured bitrate.
    pub meter: RateMeter,
}

/// A published track.
#[derive(Debug)]
pub struct UpTrack {
    /// What everyone is told about it.
    pub info: TrackInfo,
    /// The publisher's m-line it arrives on.
    pub mid: Mid,
    /// A host muted it: nothing is forwarded until its owner unmutes.
    pub forced_mute: bool,
    /// Layers, lowest quality first (one without simulcast).
    pub layers: Vec<LayerState>,
    /// The layer set last announced to the publisher.
    pub announced: Option<Vec<String>>,
    /// Its subscribers (who, in which peer slot, on which m-line at which index of its
    /// `down_tracks`), so a packet finds them without a scan or a lookup. Rebuilt by the router
    /// when subscriptions change.
    pub subscribers: Vec<Subscriber>,
    /// Recent payloads per layer, for the lean path's retransmissions (empty on str0m's).
    pub histories: Histories,
    /// Fed by an origin node's relay (this room is an edge): its publisher is not a peer
    /// here, so layer needs and keyframe requests go to the origin instead.
    pub relayed: bool,
    /// On an origin: the relay link (its number) whose edge publishes this track for a
    /// viewer promoted there (`relay::uplink`); that link is never sent it back.
    pub uplink: Option<u32>,
}

impl UpTrack {
    /// A track with these simulcast rids (empty: no simulcast).
    pub fn new(info: TrackInfo, mid: Mid, rids: &[String]) -> Self {
        let mut layers: Vec<LayerState> = rids
            .iter()
            .map(|r| LayerState {
                rid: Some(Rid::from(r.as_str())),
                ..Default::default()
            })
            .collect();
        layers.sort_by_key(|l| layer_of(l.rid));
        if layers.is_empty() {
            layers.push(LayerState::default());
        }
        UpTrack {
            info,
            mid,
            forced_mute: false,
            layers,
            announced: None,
            subscribers: Vec::new(),
            histories: Histories::default(),
            relayed: false,
            uplink: None,
        }
    }

    /// `layer` if it arrives, else the best layer below it that does; `None` when none of
    /// them does (nothing is known, so nothing is ruled out).
    pub fn arriving_up_to(&self, layer: Layer, now: Instant) -> Option<Layer> {
        let top = usize::from(layer).min(self.layers.len().saturating_sub(1));
        (0..=top)
            .rev()
            .find(|i| self.layers[*i].meter.fresh(now, LAYER_STALL))
            .map(|i| i as Layer)
    }

    /// The layer a packet with this rid belongs to.
    pub fn layer_index(&self, rid: Option<Rid>) -> Layer {
        self.layers.iter().position(|l| l.rid == rid).unwrap_or(0) as Layer
    }

    /// Bitrate per layer, measured where possible.
    pub fn rates(&self, now: Instant) -> Vec<u64> {
        let n = self.layers.len();
        let mut rates: Vec<u64> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.meter
                    .rate(now)
                    .unwrap_or_else(|| nominal_rate(self.info.source, i as Layer, n))
            })
            .collect();
        // Allocation assumes a higher layer never costs less than a lower one.
        for i in 1..rates.len() {
            rates[i] = rates[i].max(rates[i - 1]);
        }
        rates
    }

    /// The rid strings of the given layers, for `publish_layers`.
    pub fn rids_of(&self, layers: impl Iterator<Item = Layer>) -> Vec<String> {
        let mut v: Vec<String> = layers
            .filter_map(|l| self.layers.get(usize::from(l)))
            .map(|l| l.rid.map(|r| r.to_string()).unwrap_or_default())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, ParticipantId, TrackId};

    /// A camera's up-track announcing the simulcast layers `rids`.
    fn camera(rids: &[&str]) -> UpTrack {
        let info = TrackInfo {
            id: TrackId(1),
            participant: ParticipantId(1),
            kind: Kind::Video,
            source: Source::Camera,
            muted: false,
        };
        let rids: Vec<String> = rids.iter().map(|r| r.to_string()).collect();
        UpTrack::new(info, Mid::from("1"), &rids)
    }

    #[test]
    fn layers_sorted_and_rates_monotonic() {
        let t = camera(&["f", "q", "h"]);
        assert_eq!(t.layer_index(Some(Rid::from("q"))), 0);
        assert_eq!(t.layer_index(Some(Rid::from("f"))), 2);
        let now = Instant::now();
        assert_eq!(t.rates(now), vec![150_000, 500_000, 1_500_000]);
        // What clients are told to send is what the allocator assumes before measuring.
        let told: Vec<u64> = encodings(Source::Camera)
            .iter()
            .map(|e| e.max_bitrate)
            .collect();
        assert_eq!(t.rates(now), told);
        let rids: Vec<String> = encodings(Source::Camera)
            .into_iter()
            .map(|e| e.rid)
            .collect();
        assert_eq!(rids, ["q", "h", "f"]);
        assert_eq!(
            t.rids_of([2, 0].into_iter()),
            vec!["f".to_string(), "q".to_string()]
        );
    }

    #[test]
    fn meter_measures() {
        let mut m = RateMeter::default();
        let t0 = Instant::now();
        for i in 0..=50 {
            m.add(1250 - PACKET_OVERHEAD, t0 + Duration::from_millis(i * 10));
        }
        // 1250 bytes every 10 ms (with headers) = 1 Mbit/s.
        let r = m.rate(t0 + Duration::from_millis(500)).expect("measured");
        assert!((950_000..=1_050_000).contains(&r), "{r}");
        assert_eq!(m.rate(t0 + Duration::from_secs(5)), None);
    }

    /// A publisher whose uplink cannot carry its top layer sends the others: a subscriber
    /// that wants the top one is forwarded the best that arrives (see `layers.rs`).
    #[test]
    fn the_best_arriving_layer_at_or_below_a_choice() {
        let mut t = camera(&["q", "h", "f"]);
        let t0 = Instant::now();
        assert_eq!(t.arriving_up_to(2, t0), None, "nothing known yet");
        t.layers[0].meter.add(500, t0);
        t.layers[1].meter.add(500, t0);
        t.layers[2].meter.add(500, t0);
        assert_eq!(t.arriving_up_to(2, t0), Some(2));
        assert_eq!(t.arriving_up_to(1, t0), Some(1));
        // The top layer stops; the others go on.
        let later = t0 + Duration::from_millis(1500);
        t.layers[0].meter.add(500, later);
        t.layers[1].meter.add(500, later);
        assert_eq!(t.arriving_up_to(2, later), Some(1));
        assert_eq!(t.arriving_up_to(0, later), Some(0));
        assert_eq!(t.arriving_up_to(2, later + Duration::from_secs(2)), None);
    }
}
