//! The virtual-time cluster the relay tests drive: an origin room and edge rooms joined by the
//! real sealed datagrams both ways. The test plays the node layer (`server::relay_room`,
//! `cluster::edge`): track announcements or lists, layer needs, keyframe and resend requests
//! each way, and seeded loss of the datagrams in either direction.

use confab::media::relay::wire::RelayOpener;
use confab::media::relay::{
    LayerSet, RelayAnnounce, RelayCounters, RelayEvent, RelayId, RelayKey, RelayTrack,
};
use confab::media::RoomConfig;
use confab::protocol::TrackId;
use confab::sim::Sim;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// The origin's relay socket, where uplink datagrams go.
pub const ORIGIN_RELAY: ([u8; 4], u16) = ([10, 0, 0, 9], 9000);

/// Seeded loss of one direction's datagrams (xorshift64: the same drops on every run).
pub struct Loss {
    percent: u64,
    state: u64,
}

impl Loss {
    /// `percent` of the datagrams, chosen by `seed` (not 0).
    pub fn new(percent: u64, seed: u64) -> Self {
        Loss {
            percent,
            state: seed,
        }
    }

    fn drops(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % 100 < self.percent
    }
}

/// One edge room and what crossed its link.
pub struct Edge {
    pub sim: Sim,
    /// The link origin → edge.
    pub link: RelayId,
    /// The uplink's id (edge → origin).
    pub up: RelayId,
    pub addr: SocketAddr,
    /// The block of track ids the origin gave it (with an uplink).
    pub first: u64,
    /// Opens what the origin sends it: which tracks, kinds and layers crossed.
    pub tap: RelayOpener,
    pub crossed: BTreeSet<TrackId>,
    /// Video packets that crossed down, per layer; audio packets.
    pub video_crossed: [u64; 3],
    pub audio_crossed: u64,
    /// Keyframe requests the edge sent the origin.
    pub keyframes_asked: u64,
    /// Every needs message the edge sent.
    pub needs_sent: Vec<Vec<(TrackId, LayerSet)>>,
    /// Packets the edge asked the origin for again (numbers named).
    pub resends_asked: u64,
    /// Datagrams lost origin → edge, and edge → origin.
    pub down_lost: u64,
    pub up_lost: u64,
    /// Uplink datagrams that reached the origin.
    pub up_crossed: u64,
    /// Keyframe requests and resend numbers the origin sent the edge for its own tracks.
    pub uplink_keyframes: u64,
    pub uplink_resends_asked: u64,
    /// The local tracks last told to the origin.
    told: Vec<RelayTrack>,
}

/// The origin, its edges, and the loss between them.
pub struct Cluster {
    pub origin: Sim,
    pub edges: Vec<Edge>,
    /// Loss of origin → edge datagrams (all links), and of edge → origin ones.
    pub down_loss: Option<Loss>,
    pub up_loss: Option<Loss>,
    /// Tracks reach edges by the router's announcement queue (one edge, no uplink) rather
    /// than by whole lists (what the node layer sends).
    announcements: bool,
}

impl Cluster {
    /// One edge without an uplink, told of tracks by announcements (`relay.rs`).
    pub fn cascade(config: RoomConfig) -> Self {
        Cluster::build(config, 1, false)
    }

    /// `edges` edges, each with its uplink, told of tracks by lists (`relay_promote.rs`).
    pub fn with_uplinks(config: RoomConfig, edges: usize) -> Self {
        Cluster::build(config, edges, true)
    }

    fn build(config: RoomConfig, n: usize, uplink: bool) -> Self {
        let mut origin = Sim::new(config.clone());
        let mut edges = vec![];
        for i in 0..n {
            let (link, up) = (7 + i as u32, 70 + 10 * i as u32);
            let mut sim = Sim::new(config.clone());
            // Participant ids are the origin's on every node: the edges' viewers get theirs
            // from the origin's conference, never one of its publishers'.
            sim.start_ids_at(1000 * (i as u64 + 1));
            let salt = [i as u8 + 1; 16];
            let edge_id = format!("edge-{i}");
            let key = RelayKey::derive(b"cluster secret", &salt, "sim", &edge_id);
            let addr: SocketAddr = ([10, 0, 0, 2 + i as u8], 10001).into();
            let source = origin.server_addr();
            origin
                .with_room(|r, now| r.add_relay(RelayId(link), &key, source, addr, now))
                .expect("relay added");
            sim.with_room(|r, _| r.relay_attach(RelayId(link), &key))
                .expect("edge attached");
            let mut first = 0;
            if uplink {
                let up_key = RelayKey::derive_uplink(b"cluster secret", &salt, "sim", &edge_id);
                first = origin
                    .with_room(|r, now| r.uplink_attach(RelayId(link), up, &up_key, now))
                    .expect("uplink attached");
                let from = sim.server_addr();
                sim.with_room(|r, now| {
                    r.uplink_start(RelayId(up), first, &up_key, from, ORIGIN_RELAY.into(), now)
                })
                .expect("uplink started");
            }
            edges.push(Edge {
                sim,
                link: RelayId(link),
                up: RelayId(up),
                addr,
                first,
                tap: RelayOpener::new(link, &key).expect("opener"),
                crossed: BTreeSet::new(),
                video_crossed: [0; 3],
                audio_crossed: 0,
                keyframes_asked: 0,
                needs_sent: vec![],
                resends_asked: 0,
                down_lost: 0,
                up_lost: 0,
                up_crossed: 0,
                uplink_keyframes: 0,
                uplink_resends_asked: 0,
                told: vec![],
            });
        }
        Cluster {
            origin,
            edges,
            down_loss: None,
            up_loss: None,
            announcements: !uplink,
        }
    }

    /// Tells the edges of the origin's tracks, and the origin of the edges' own.
    fn sync_tracks(&mut self) {
        let origin = &mut self.origin;
        if self.announcements {
            while let Some(a) = origin.conf.room.poll_relay_announce() {
                for e in &mut self.edges {
                    match a.clone() {
                        RelayAnnounce::Added(t) => {
                            let added = e.sim.with_room(|r, now| r.relay_track_added(t, now));
                            assert!(added, "the edge refused an origin track");
                        }
                        RelayAnnounce::Removed(t) => {
                            e.sim.with_room(|r, now| r.relay_track_removed(t, now));
                        }
                        RelayAnnounce::Muted { track, muted } => {
                            e.sim
                                .with_room(|r, now| r.relay_track_muted(track, muted, now));
                        }
                    }
                }
            }
            // The announcements keep the edge's tracks those of the origin, mute included.
            let infos: Vec<_> = origin.conf.room.tracks().cloned().collect();
            for e in &self.edges {
                let edge: Vec<_> = e.sim.conf.room.tracks().cloned().collect();
                assert_eq!(infos, edge, "same info, mute included");
            }
            return;
        }
        while origin.conf.room.poll_relay_announce().is_some() {}
        for e in &mut self.edges {
            // Each edge hears of every track but its own.
            let list = origin.conf.room.relay_tracks_for(e.link);
            let link = e.link;
            origin.with_room(|r, _| r.relay_told(link, &list));
            let ids: Vec<TrackId> = list.iter().map(|t| t.info.id).collect();
            for t in list {
                assert!(e.sim.with_room(|r, now| r.relay_track_added(t, now)));
            }
            let gone: Vec<TrackId> = e
                .sim
                .conf
                .room
                .tracks()
                .filter(|t| !ids.contains(&t.id))
                .map(|t| t.id)
                .collect();
            for t in gone {
                e.sim.with_room(|r, now| r.relay_track_removed(t, now));
            }
            let local = e.sim.conf.room.uplink_local_tracks();
            if local != e.told {
                let (link, tracks) = (e.link, local.clone());
                let refused = origin.with_conf(|c, now| c.stage_uplink(link, tracks, now));
                assert_eq!(refused, 0, "{local:?}");
                e.told = local;
            }
        }
    }

    /// What the node layer does, both ways.
    pub fn carry(&mut self) {
        self.sync_tracks();
        let origin = &mut self.origin;
        for (to, d) in origin.take_foreign() {
            let e = self
                .edges
                .iter_mut()
                .find(|e| e.addr == to)
                .expect("relay datagrams go to edges only");
            if self.down_loss.as_mut().is_some_and(Loss::drops) {
                e.down_lost += 1;
                continue;
            }
            let (p, _) = e.tap.open(&d).expect("a well-formed relay datagram");
            e.crossed.insert(p.track);
            if p.audio_level.is_some() {
                e.audio_crossed += 1;
            } else {
                e.video_crossed[usize::from(p.layer.min(2))] += 1;
            }
            e.sim.with_room(|r, now| r.handle_link_datagram(&d, now));
        }
        for e in &mut self.edges {
            for (to, d) in e.sim.take_foreign() {
                assert_eq!(to, ORIGIN_RELAY.into(), "uplink datagrams go to the origin");
                if self.up_loss.as_mut().is_some_and(Loss::drops) {
                    e.up_lost += 1;
                    continue;
                }
                e.up_crossed += 1;
                origin.with_room(|r, now| r.handle_link_datagram(&d, now));
            }
            let link = e.link;
            while let Some(ev) = e.sim.conf.room.poll_relay_event() {
                match ev {
                    RelayEvent::Needs { needs } => {
                        e.needs_sent.push(needs.clone());
                        origin.with_room(|r, now| r.relay_needs(link, &needs, now))
                    }
                    RelayEvent::Keyframe { track, layer } => {
                        e.keyframes_asked += 1;
                        origin.with_room(|r, now| r.relay_keyframe(link, track, layer, now))
                    }
                    RelayEvent::Resend { track, layer, seqs } => {
                        e.resends_asked += seqs.len() as u64;
                        origin.with_room(|r, now| r.relay_resend(link, track, layer, &seqs, now))
                    }
                }
            }
        }
        while let Some((link, ev)) = origin.conf.room.poll_uplink_event() {
            let e = self
                .edges
                .iter_mut()
                .find(|e| e.link == link)
                .expect("a known link");
            let up = e.up;
            match ev {
                RelayEvent::Needs { needs } => {
                    e.sim.with_room(|r, now| r.relay_needs(up, &needs, now))
                }
                RelayEvent::Keyframe { track, layer } => {
                    e.uplink_keyframes += 1;
                    e.sim
                        .with_room(|r, now| r.relay_keyframe(up, track, layer, now))
                }
                RelayEvent::Resend { track, layer, seqs } => {
                    e.uplink_resends_asked += seqs.len() as u64;
                    e.sim
                        .with_room(|r, now| r.relay_resend(up, track, layer, &seqs, now))
                }
            }
        }
    }

    /// Runs every room in 5 ms steps, carrying between them after each.
    pub fn run_for(&mut self, d: Duration) {
        let step = Duration::from_millis(5);
        let mut done = Duration::ZERO;
        while done < d {
            self.origin.run_for(step);
            self.carry();
            for i in 0..self.edges.len() {
                self.edges[i].sim.run_for(step);
                self.carry();
            }
            done += step;
        }
    }

    /// Runs until `pred` holds (checked every 20 ms) or `limit` passed; says whether it held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Cluster) -> bool) -> bool {
        let mut waited = Duration::ZERO;
        while waited < limit {
            if pred(self) {
                return true;
            }
            self.run_for(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
        pred(self)
    }

    /// Datagrams the origin sealed for `link` so far (resent ones included).
    pub fn relay_sent(&self, link: RelayId) -> u64 {
        self.origin
            .conf
            .room
            .relay_counters(link)
            .map_or(0, |c| c.packets)
    }
}

/// The repair ledger of one link direction after seeded loss: `lost` datagrams (a resent one
/// included) went missing between `sender` and `receiver`; each was asked for and sealed
/// again, and the receiver refused nothing. Logs the figures under `what`.
pub fn assert_loss_repaired(
    what: &str,
    sender: &RelayCounters,
    receiver: &RelayCounters,
    lost: u64,
) {
    eprintln!(
        "{what} under 5 % loss: {} datagrams sent, {lost} lost, {} asked again, {} resent, \
         {} repaired, {} duplicates",
        sender.packets,
        receiver.repair_requests,
        sender.resent,
        receiver.repaired,
        receiver.duplicates
    );
    assert!(lost > 20, "{what} lost {lost}");
    assert!(
        sender.resent >= lost * 95 / 100,
        "{} resent for {lost} lost",
        sender.resent
    );
    assert_eq!(receiver.dropped.iter().sum::<u64>(), 0, "{receiver:?}");
}
