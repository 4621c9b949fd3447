//! A room task's side of the cluster relay: on the origin, one link per edge (its key, the
//! track list last announced to it); on an edge, the link to the origin. The media itself is
//! the router's (`media::relay`); this carries the control link's messages to and from it.

use crate::cluster::link::{LinkEvent, LinkMsg};
use crate::conference::Conference;
use crate::media::relay::{RelayDrop, RelayEvent, RelayId, RelayKey, RelayTrack};
use crate::protocol::{ErrorCode, LeaveReason, ParticipantId, ServerMsg};
use crate::server::outbound::OutboundTx;
use crate::server::Shared;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::mpsc;

/// One edge's link, on the origin.
struct ToEdge {
    out: mpsc::Sender<LinkMsg>,
    /// The tracks last announced, to send only changes.
    told: Vec<RelayTrack>,
    /// Counters already added to `/metrics`.
    counted: (u64, u64),
    /// Resent packets already added to `/metrics`.
    resent: u64,
}

/// The room's relay state.
#[derive(Default)]
pub struct RelayRoom {
    edges: HashMap<u32, ToEdge>,
    origin: Option<(u32, mpsc::Sender<LinkMsg>)>,
    /// Edge: received counters already added to `/metrics`.
    received: u64,
    dropped: [u64; RelayDrop::ALL.len()],
    /// Edge: repair requests already added to `/metrics`.
    repair_requests: u64,
    last_check: Option<Instant>,
    /// Edge: whether the origin's track list arrived (viewers' media messages wait for it).
    tracks_seen: bool,
    /// Edge: media messages that arrived before the track list, replayed after it.
    held: Vec<(ParticipantId, crate::protocol::ClientMsg)>,
    /// Edge: offers naming tracks still on their way from the origin.
    early: super::edge_offers::EdgeOffers,
}

/// Media messages an edge room holds until its link is up (a few per viewer at most: an
/// offer, sizes, a pin); past it they are handled at once (their subscriptions to tracks
/// not yet relayed are then ignored, as for any unknown track).
const MAX_HELD: usize = 1024;

/// How often track lists and counters are compared while only media flows.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl RelayRoom {
    /// Whether the room has any link (nothing to do per loop otherwise).
    pub fn is_linked(&self) -> bool {
        !self.edges.is_empty() || self.origin.is_some()
    }

    /// A control-link event for this room.
    pub fn event(
        &mut self,
        conf: &mut Conference,
        sessions: &HashMap<ParticipantId, OutboundTx>,
        shared: &Shared,
        ev: LinkEvent,
    ) {
        let now = Instant::now();
        let Some(cluster) = shared.cluster.as_ref() else {
            return;
        };
        match ev {
            LinkEvent::Opened {
                link,
                edge,
                relay,
                salt,
                out,
            } => {
                let key = RelayKey::derive(
                    cluster.config.secret.as_bytes(),
                    &salt,
                    conf.room.name(),
                    &edge,
                );
                let source = media_source(shared, relay);
                match conf.room.add_relay(RelayId(link), &key, source, relay, now) {
                    Ok(()) => {
                        // Told at once, even when the stage is empty: the edge room holds its
                        // viewers' offers until it has heard the list.
                        let told = conf.room.relay_tracks();
                        let _ = out.try_send(LinkMsg::Tracks {
                            tracks: told.clone(),
                        });
                        self.edges.insert(
                            link,
                            ToEdge {
                                out,
                                told,
                                counted: (0, 0),
                                resent: 0,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(link, error = ?e, "relay link refused");
                        let _ = out.try_send(LinkMsg::Close {
                            reason: "link key refused".into(),
                        });
                    }
                }
            }
            LinkEvent::Message { link, msg } => match msg {
                LinkMsg::Needs { needs } => conf.room.relay_needs(RelayId(link), &needs, now),
                LinkMsg::Keyframe { track, layer } => {
                    conf.room.relay_keyframe(RelayId(link), track, layer, now)
                }
                LinkMsg::Resend { track, layer, seqs } => {
                    conf.room
                        .relay_resend(RelayId(link), track, layer, &seqs, now)
                }
                LinkMsg::Tracks { tracks } => self.tracks(conf, tracks, now),
                _ => {}
            },
            LinkEvent::Linked { link, salt, out } => {
                let key = RelayKey::derive(
                    cluster.config.secret.as_bytes(),
                    &salt,
                    crate::cluster::edge::relayed_room(conf.room.name()).unwrap_or_default(),
                    cluster.id(),
                );
                match conf.room.relay_attach(RelayId(link), &key) {
                    Ok(()) => self.origin = Some((link, out)),
                    Err(e) => tracing::warn!(link, error = ?e, "relay link key refused"),
                }
            }
            LinkEvent::Closed { link } => {
                if self.edges.remove(&link).is_some() {
                    conf.room.remove_relay(RelayId(link), now);
                    return;
                }
                if crate::cluster::edge::relayed_room(conf.room.name()).is_some() {
                    // The origin is gone (or never answered): viewers rejoin, and are placed
                    // again through a live node.
                    self.origin = None;
                    let msg = ServerMsg::error(
                        ErrorCode::ShuttingDown,
                        "The link to the room's server was lost; reconnecting.",
                    );
                    let text = serde_json::to_string(&msg).unwrap_or_default();
                    for tx in sessions.values() {
                        let _ = tx.push(crate::server::outbound::Frame {
                            text: text.clone().into(),
                            fatal: true,
                        });
                    }
                    let ids: Vec<ParticipantId> = conf.members().map(|m| m.id).collect();
                    for id in ids {
                        conf.leave(id, LeaveReason::Error);
                    }
                }
            }
        }
    }

    /// A viewer's message for the room, or `None` when it waits for the link: an edge room's
    /// offers subscribe to the origin's track ids, which exist here once the origin has
    /// announced them.
    pub fn hold(
        &mut self,
        conf: &Conference,
        id: ParticipantId,
        msg: crate::protocol::ClientMsg,
    ) -> Option<crate::protocol::ClientMsg> {
        if crate::cluster::edge::relayed_room(conf.room.name()).is_none() {
            return Some(msg);
        }
        if self.tracks_seen || self.held.len() >= MAX_HELD {
            // An offer for a track announced to the viewer but not yet here waits for it.
            let known = |t| conf.room.tracks().any(|i| i.id == t);
            return self.early.hold(id, msg, Instant::now(), known);
        }
        self.held.push((id, msg));
        None
    }

    /// Edge: handles held offers whose tracks arrived (or that waited long enough).
    fn release_early(&mut self, conf: &mut Conference, now: Instant) {
        if self.early.is_empty() {
            return;
        }
        let ready = {
            let room = &conf.room;
            self.early
                .release(now, |t| room.tracks().any(|i| i.id == t))
        };
        for (id, msg) in ready {
            if conf.members().any(|m| m.id == id) {
                conf.handle(id, msg, now);
            }
        }
    }

    /// Edge: the origin's track list; tracks not in it are gone.
    fn tracks(&mut self, conf: &mut Conference, tracks: Vec<RelayTrack>, now: Instant) {
        let listed: Vec<_> = tracks.iter().map(|t| t.info.id).collect();
        self.early.announced(listed.iter().copied());
        let gone: Vec<_> = conf
            .room
            .tracks()
            .map(|t| t.id)
            .filter(|id| !listed.contains(id))
            .collect();
        for id in gone {
            conf.room.relay_track_removed(id, now);
        }
        for t in tracks {
            let id = t.info.id;
            if !conf.room.relay_track_added(t, now) {
                tracing::warn!(room = conf.room.name(), track = %id, "relayed track refused");
            }
        }
        if !self.tracks_seen {
            self.tracks_seen = true;
            for (id, msg) in std::mem::take(&mut self.held) {
                conf.handle(id, msg, now);
            }
        }
        self.release_early(conf, now);
    }

    /// After the room handled an input: the edge's needs and keyframe requests go to the
    /// origin; with `full` (after signalling, and every [`CHECK_EVERY`]), track changes go to
    /// every edge and counters to `/metrics`; a packet alone costs no more than a poll.
    pub fn after(&mut self, conf: &mut Conference, shared: &Shared, full: bool) {
        let Some(cluster) = shared.cluster.as_ref() else {
            return;
        };
        let full = full || self.last_check.is_none_or(|t| t.elapsed() >= CHECK_EVERY);
        if full {
            self.last_check = Some(Instant::now());
            self.release_early(conf, Instant::now());
        }
        // The router's own announcement queue (bounded) is not used: every edge gets the
        // whole track list when it differs from what it was last told, which also covers a
        // link that missed a change while its queue was full.
        while conf.room.poll_relay_announce().is_some() {}
        if full && !self.edges.is_empty() {
            let now = conf.room.relay_tracks();
            for (link, e) in self.edges.iter_mut() {
                if e.told != now {
                    // Full: the link is stuck; the next change tries again.
                    if e.out
                        .try_send(LinkMsg::Tracks {
                            tracks: now.clone(),
                        })
                        .is_ok()
                    {
                        e.told = now.clone();
                    }
                }
                if let Some(c) = conf.room.relay_counters(RelayId(*link)) {
                    cluster
                        .metrics
                        .relay_sent_packets
                        .inc_by(c.packets.saturating_sub(e.counted.0));
                    cluster
                        .metrics
                        .relay_sent_bytes
                        .inc_by(c.bytes.saturating_sub(e.counted.1));
                    e.counted = (c.packets, c.bytes);
                    cluster
                        .metrics
                        .relay_resent
                        .inc_by(c.resent.saturating_sub(e.resent));
                    e.resent = c.resent;
                }
            }
        }
        if let Some((_, out)) = &self.origin {
            while let Some(ev) = conf.room.poll_relay_event() {
                let msg = match ev {
                    RelayEvent::Needs { needs } => LinkMsg::Needs { needs },
                    RelayEvent::Keyframe { track, layer } => LinkMsg::Keyframe { track, layer },
                    RelayEvent::Resend { track, layer, seqs } => {
                        LinkMsg::Resend { track, layer, seqs }
                    }
                };
                let _ = out.try_send(msg);
            }
            if let Some(c) = conf.room.relay_edge_counters().filter(|_| full) {
                // By reason, so a forgery never hides among tracks the edge was not yet told of.
                for (i, reason) in RelayDrop::ALL.iter().enumerate() {
                    let now = c.dropped[i];
                    if now > self.dropped[i] {
                        cluster
                            .metrics
                            .relay_dropped
                            .get_or_create(&vec![("reason", reason.name())])
                            .inc_by(now - self.dropped[i]);
                    }
                }
                cluster
                    .metrics
                    .relay_received_packets
                    .inc_by(c.packets.saturating_sub(self.received));
                cluster
                    .metrics
                    .relay_repair_requests
                    .inc_by(c.repair_requests.saturating_sub(self.repair_requests));
                self.received = c.packets;
                self.dropped = c.dropped;
                self.repair_requests = c.repair_requests;
            }
        }
    }
}

/// The room's media address relay datagrams leave from: the socket of the edge's family.
fn media_source(shared: &Shared, to: SocketAddr) -> SocketAddr {
    shared
        .candidates
        .iter()
        .find(|a| a.is_ipv4() == to.is_ipv4())
        .or(shared.candidates.first())
        .copied()
        .unwrap_or(to)
}
