//! Where a webinar viewer's media is served: on the room's node (its origin) while that node
//! serves fewer than `--max-audience-per-node` audience members, else on an edge node that
//! relays the stage.
//!
//! Keys (each expires after [`LEASE`] unless its node refreshes it):
//! - `confab:aud:<room>:<node>`: audience members `node` serves for `room`. The origin writes
//!   it only for webinars (a meeting never overflows to edges), an edge always. A placement
//!   reserves a seat by incrementing it (a script: only under the cap), so joins arriving
//!   together cannot all pass a cap read before any of them landed; the node's own count,
//!   written on change, then replaces the reservations.
//! - `confab:edge:<room>`: the edge nodes of a room, preferred for the next viewers so that a
//!   room's audience gathers on few edges (each edge costs the origin one copy of the stage).

use super::config::LEASE;
use redis::aio::ConnectionManager;
use redis::RedisResult;

/// An audience counter's key.
pub fn audience_key(room: &str, node: &str) -> String {
    format!("confab:aud:{room}:{node}")
}

fn edge_key(room: &str) -> String {
    format!("confab:edge:{room}")
}

fn lease_ms() -> u64 {
    LEASE.as_millis() as u64
}

/// Takes a seat under the cap ARGV[1]. ARGV[3] = "origin": a missing counter means the room
/// is no webinar (or not yet counted): the seat is given without counting. Otherwise a
/// missing counter starts at 0.
const RESERVE: &str = "local v = redis.call('GET', KEYS[1]) \
    if (not v) and ARGV[3] == 'origin' then return 1 end \
    local n = tonumber(v or '0') \
    if n < tonumber(ARGV[1]) then redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    return 0";

/// Reserves one audience seat on `node` for `room` under `cap`; true when there is room.
pub async fn reserve(
    con: &mut ConnectionManager,
    room: &str,
    node: &str,
    cap: usize,
    origin: bool,
) -> RedisResult<bool> {
    // EVAL, not the `script` feature's EVALSHA: one round trip either way for a script this
    // short, and no feature to add.
    let n: i64 = redis::cmd("EVAL")
        .arg(RESERVE)
        .arg(1)
        .arg(audience_key(room, node))
        .arg(cap)
        .arg(lease_ms())
        .arg(if origin { "origin" } else { "edge" })
        .query_async(con)
        .await?;
    Ok(n == 1)
}

/// Writes the audience counts this node serves (`None`: the room is no webinar here; its
/// counter is removed so joins are not capped).
pub async fn publish(
    con: &mut ConnectionManager,
    node: &str,
    counts: &[(String, Option<usize>)],
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    for (room, n) in counts {
        let key = audience_key(room, node);
        match n {
            Some(n) => pipe.cmd("SET").arg(key).arg(*n).arg("PX").arg(lease_ms()),
            None => pipe.cmd("DEL").arg(key),
        }
        .ignore();
    }
    pipe.query_async(con).await
}

/// The edge nodes `room` has.
pub async fn edges(con: &mut ConnectionManager, room: &str) -> RedisResult<Vec<String>> {
    redis::cmd("SMEMBERS")
        .arg(edge_key(room))
        .query_async(con)
        .await
}

/// `node` is (still) an edge of `room`: listed for a lease.
pub async fn add_edge(con: &mut ConnectionManager, room: &str, node: &str) -> RedisResult<()> {
    redis::pipe()
        .cmd("SADD")
        .arg(edge_key(room))
        .arg(node)
        .ignore()
        .cmd("PEXPIRE")
        .arg(edge_key(room))
        .arg(lease_ms())
        .ignore()
        .query_async(con)
        .await
}

/// `node` no longer serves `room`'s audience.
pub async fn remove_edge(con: &mut ConnectionManager, room: &str, node: &str) -> RedisResult<()> {
    redis::pipe()
        .cmd("SREM")
        .arg(edge_key(room))
        .arg(node)
        .ignore()
        .cmd("DEL")
        .arg(audience_key(room, node))
        .ignore()
        .query_async(con)
        .await
}

/// Whether a join may be served on an edge: it brings no stage credentials (no link key, no
/// token granting host or presenter; an asked role only ever lowers). A join the room turns
/// into a meeting participant is never sent away: the origin counts audience only in
/// webinars, so its counter is absent and every seat is given.
pub fn may_be_edge(c: &crate::conference::record::Credentials) -> bool {
    use crate::model::Role;
    let keyed = c.key.as_deref().is_some_and(|k| !k.is_empty());
    !keyed && !matches!(c.token_role, Some(Role::Host | Role::Presenter))
}

/// Audience counts waiting to be written: room → count (`None`: remove the counter).
#[derive(Default)]
pub struct Counts {
    dirty: std::sync::Mutex<std::collections::HashMap<String, Option<usize>>>,
    /// The last count written per room, rewritten each heartbeat so it outlives its lease.
    known: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    changed: tokio::sync::Notify,
}

/// Most rooms whose counts wait to be written; past it a change waits for the next one
/// written (the heartbeat rewrites every live room's count anyway).
const MAX_DIRTY: usize = 10_000;

/// How long count changes gather before one write: a burst of joins costs one round trip.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

impl super::Cluster {
    /// A room task's audience count changed (`None`: not a webinar, or the room closed).
    pub fn audience_changed(&self, room: &str, count: Option<usize>) {
        if let Ok(mut d) = self.counts.dirty.lock() {
            if d.len() < MAX_DIRTY || d.contains_key(room) {
                d.insert(room.to_string(), count);
            }
        }
        self.counts.changed.notify_one();
    }

    /// Writes audience counts as they change, until the server shuts down.
    pub async fn publish_counts(
        self: std::sync::Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.counts.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            tokio::time::sleep(GATHER).await;
            let batch: Vec<(String, Option<usize>)> = match self.counts.dirty.lock() {
                Ok(mut d) => d.drain().collect(),
                Err(_) => continue,
            };
            // A wake-up whose changes an earlier one already wrote (an empty pipeline is an
            // error to Redis).
            if batch.is_empty() {
                continue;
            }
            if let Ok(mut k) = self.counts.known.lock() {
                for (name, n) in &batch {
                    match n {
                        Some(n) => k.insert(name.clone(), *n),
                        None => k.remove(name),
                    };
                }
            }
            let mut counts = Vec::with_capacity(batch.len());
            let mut gone_edges = vec![];
            for (name, n) in batch {
                match super::edge::relayed_room(&name) {
                    Some(room) => {
                        if n.is_none() {
                            gone_edges.push(room.to_string());
                        }
                        counts.push((room.to_string(), n));
                    }
                    None => counts.push((name, n)),
                }
            }
            let id = self.id().to_string();
            self.call(|mut c| {
                let (id, counts) = (&id, &counts);
                async move { publish(&mut c, id, counts).await }
            })
            .await;
            for room in gone_edges {
                self.call(|mut c| {
                    let (room, id) = (&room, &id);
                    async move { remove_edge(&mut c, room, id).await }
                })
                .await;
            }
        }
    }

    /// Rewrites every known count and edge listing (from the heartbeat: keys live a lease).
    pub async fn refresh_counts(&self) {
        let known: Vec<(String, usize)> = match self.counts.known.lock() {
            Ok(k) => k.iter().map(|(r, n)| (r.clone(), *n)).collect(),
            Err(_) => return,
        };
        let id = self.id().to_string();
        let mut counts = vec![];
        for (name, n) in known {
            match super::edge::relayed_room(&name) {
                Some(room) => {
                    let room = room.to_string();
                    self.call(|mut c| {
                        let (room, id) = (&room, &id);
                        async move { add_edge(&mut c, room, id).await }
                    })
                    .await;
                    counts.push((room, Some(n)));
                }
                None => counts.push((name, Some(n))),
            }
        }
        if !counts.is_empty() {
            self.call(|mut c| {
                let (id, counts) = (&id, &counts);
                async move { publish(&mut c, id, counts).await }
            })
            .await;
        }
    }

    /// Where a viewer of `room` (whose origin is `origin`) is served: `None` on the origin
    /// (under its cap, not a webinar, or Redis unreachable), else an edge node's id and URL.
    /// Edges the room has come first, then the least-loaded other nodes, each under the
    /// cap; when every node is full, the least-loaded one anyway.
    pub async fn place_viewer(&self, room: &str, origin: &str) -> Option<(String, String)> {
        let cap = self.config.max_audience_per_node;
        let seat = self
            .call(|mut c| async move { reserve(&mut c, room, origin, cap, true).await })
            .await?;
        if seat {
            return None;
        }
        let edges = self
            .call(|mut c| async move { edges(&mut c, room).await })
            .await?;
        let mut nodes = self
            .call(|mut c| async move { super::registry::nodes(&mut c).await })
            .await?;
        nodes.retain(|n| n.id != origin && !n.draining && !self.is_unreachable(&n.id));
        nodes.sort_by_key(|n| (!edges.contains(&n.id), n.load_key()));
        let mut chosen = None;
        for n in &nodes {
            let id = n.id.as_str();
            let seat = self
                .call(|mut c| async move { reserve(&mut c, room, id, cap, false).await })
                .await?;
            if seat {
                chosen = Some(n);
                break;
            }
        }
        let n = chosen.or_else(|| nodes.iter().min_by_key(|n| n.load_key()))?;
        let (id, url) = (n.id.clone(), n.url.clone());
        self.call(|mut c| {
            let id = &id;
            async move { add_edge(&mut c, room, id).await }
        })
        .await;
        self.metrics.placed("edge");
        Some((id, url))
    }
}
