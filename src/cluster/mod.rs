//! Several nodes as one (`--redis-url`): membership with heartbeats and load, the room → node
//! map, placement of new rooms on the least-loaded node, and the signalling relay to a room's
//! node. Without a Redis URL none of this runs.
//!
//! Redis is used through the `redis` crate's `ConnectionManager` (redis-rs, the most used and
//! actively maintained Rust client): it reconnects by itself, so a Redis restart needs nothing
//! from us, and every call here is wrapped in [`config::REDIS_TIMEOUT`] so an unreachable Redis
//! costs a join at most that long before the node falls back to serving the room itself.

pub mod config;
pub mod edge;
pub mod link;
pub mod metrics;
pub mod placement;
pub mod proxy;
pub mod registry;
pub mod relay_socket;

pub use config::ClusterConfig;

use crate::server::Shared;
use config::{HEARTBEAT, REDIS_TIMEOUT};
use metrics::ClusterMetrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use registry::NodeInfo;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a join goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node serves the room.
    Local,
    /// Another node does: relay the session to it.
    Remote {
        /// Its id.
        node: String,
        /// Its signalling URL.
        url: String,
    },
}

/// This node's membership: its Redis connection, state and counters.
pub struct Cluster {
    /// Settings.
    pub config: ClusterConfig,
    /// Counters for `/metrics`.
    pub metrics: ClusterMetrics,
    con: ConnectionManager,
    media: Vec<SocketAddr>,
    draining: AtomicBool,
    /// Turns true when the room API drains this node: its sessions are told to rejoin.
    drained: tokio::sync::watch::Sender<bool>,
    /// Nodes a relay could not reach, until when they are treated as gone (their
    /// registration may outlive them by up to a lease). Bounded: one entry per node.
    unreachable: Mutex<HashMap<String, Instant>>,
    /// Audience counts for placement, written to Redis as they change.
    counts: placement::Counts,
    /// Rooms this node is an edge of → their origin's id and URL (one entry per edge room).
    origins: Mutex<HashMap<String, (String, String)>>,
    /// Relay link id → edge room, for datagrams arriving on the relay socket.
    links: relay_socket::LinkTable,
    /// The relay socket's announced address, once bound.
    relay_addr: std::sync::OnceLock<SocketAddr>,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct ClusterError(String);

impl Cluster {
    /// Prepares the membership; connects to Redis lazily, so a node starts even while Redis
    /// is down (it serves every room itself until Redis answers).
    pub fn new(config: ClusterConfig, media: Vec<SocketAddr>) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| ClusterError(e.to_string()))?;
        let cm = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let con = ConnectionManager::new_lazy_with_config(client, cm)
            .map_err(|e| ClusterError(e.to_string()))?;
        Ok(Cluster {
            config,
            metrics: ClusterMetrics::default(),
            con,
            media,
            draining: AtomicBool::new(false),
            drained: tokio::sync::watch::Sender::new(false),
            unreachable: Mutex::new(HashMap::new()),
            counts: placement::Counts::default(),
            origins: Mutex::new(HashMap::new()),
            links: relay_socket::LinkTable::default(),
            relay_addr: std::sync::OnceLock::new(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    /// This node is an edge of `room`, whose origin is `origin` at `url`.
    pub fn set_edge_origin(&self, room: &str, origin: &str, url: &str) {
        if let Ok(mut o) = self.origins.lock() {
            o.insert(room.to_string(), (origin.to_string(), url.to_string()));
        }
    }

    /// The origin (id, URL) of a room this node is an edge of.
    pub fn edge_origin(&self, room: &str) -> Option<(String, String)> {
        self.origins.lock().ok()?.get(room).cloned()
    }

    /// This node's edge of `room` closed.
    pub fn edge_closed(&self, room: &str) {
        if let Ok(mut o) = self.origins.lock() {
            o.remove(room);
        }
    }

    /// The origin's URL for a session relayed here to be served as an edge of `room`.
    pub async fn origin_url(&self, origin: &str) -> Option<String> {
        let info = self
            .call(|mut c| async move { registry::node(&mut c, origin).await })
            .await??;
        Some(info.url)
    }

    /// Whether this node takes no new rooms.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Runs one Redis call with the timeout, counting failures.
    async fn call<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(REDIS_TIMEOUT, f(self.con.clone())).await {
            Ok(Ok(v)) => {
                self.metrics.redis_up.set(1);
                Some(v)
            }
            Ok(Err(e)) => {
                self.redis_failed(&e.to_string());
                None
            }
            Err(_) => {
                self.redis_failed("timed out");
                None
            }
        }
    }

    fn redis_failed(&self, why: &str) {
        self.metrics.redis_errors.inc();
        if self.metrics.redis_up.set(0) != 0 {
            tracing::warn!(
                node = self.id(),
                "redis unreachable ({why}): new rooms stay on this node until it answers"
            );
        }
    }

    /// Decides which node serves `room`: its current owner if alive and not draining,
    /// otherwise the least-loaded live node claims it. Redis unreachable: this node.
    pub async fn route(&self, room: &str) -> Route {
        for _ in 0..3 {
            match self.try_route(room).await {
                Ok(Some(route)) => return route,
                Ok(None) => continue, // lost a race for the claim: read the winner
                Err(()) => break,
            }
        }
        self.metrics.placed("fallback_local");
        tracing::warn!(
            room,
            "cluster placement unavailable: serving the room on this node"
        );
        Route::Local
    }

    async fn try_route(&self, room: &str) -> Result<Option<Route>, ()> {
        let owner = self
            .call(|mut c| async move { registry::owner(&mut c, room).await })
            .await
            .ok_or(())?;
        if let Some(owner) = owner {
            if owner == self.id() && !self.is_draining() {
                self.metrics.placed("owner_local");
                return Ok(Some(Route::Local));
            }
            let info = self
                .call(|mut c| {
                    let owner = owner.clone();
                    async move { registry::node(&mut c, &owner).await }
                })
                .await
                .ok_or(())?;
            match info {
                Some(n) if !n.draining && !self.is_unreachable(&n.id) => {
                    self.metrics.placed("owner_remote");
                    return Ok(Some(Route::Remote {
                        node: n.id,
                        url: n.url,
                    }));
                }
                _ => {
                    // Dead (lease expired) or draining: free the room for a new placement.
                    self.metrics.placed("reclaimed");
                    tracing::info!(room, %owner, "room's node is gone or draining: placing the room again");
                    self.evict(room, &owner).await;
                }
            }
        }
        let nodes = self
            .call(|mut c| async move { registry::nodes(&mut c).await })
            .await
            .ok_or(())?;
        self.metrics.nodes.set(nodes.len() as i64);
        let target = nodes
            .into_iter()
            .filter(|n| !n.draining && !self.is_unreachable(&n.id))
            .min_by_key(|n| n.load_key());
        let (id, url) = match target {
            Some(n) => (n.id, n.url),
            // No live node registered yet (Redis just came back): this one.
            None => (self.id().to_string(), self.config.node_url.clone()),
        };
        let won = self
            .call(|mut c| {
                let id = id.clone();
                async move { registry::claim(&mut c, room, &id).await }
            })
            .await
            .ok_or(())?;
        if !won {
            return Ok(None);
        }
        if id == self.id() {
            self.metrics.placed("placed_local");
            tracing::info!(room, "new room placed on this node");
            Ok(Some(Route::Local))
        } else {
            self.metrics.placed("placed_remote");
            tracing::info!(room, node = %id, "new room placed on another node");
            Ok(Some(Route::Remote { node: id, url }))
        }
    }

    /// A relay could not reach `node`: no placements there for a lease, and `room` is freed
    /// if that node still holds it.
    pub async fn unreachable(&self, room: &str, node: &str) {
        if let Ok(mut u) = self.unreachable.lock() {
            let now = Instant::now();
            u.retain(|_, until| *until > now);
            u.insert(node.to_string(), now + config::LEASE);
        }
        self.evict(room, node).await;
    }

    fn is_unreachable(&self, node: &str) -> bool {
        self.unreachable
            .lock()
            .map(|u| u.get(node).is_some_and(|until| *until > Instant::now()))
            .unwrap_or(false)
    }

    /// Frees `room` if `node` still holds it.
    pub async fn evict(&self, room: &str, node: &str) {
        self.call(|mut c| async move { registry::evict(&mut c, room, node).await })
            .await;
    }

    /// Stops taking rooms: others see it at the next heartbeat, which is sent at once.
    pub async fn drain(&self, shared: &Shared) {
        self.draining.store(true, Ordering::Relaxed);
        tracing::info!(node = self.id(), "draining: no new rooms on this node");
        let info = self.info(shared, 0.0, 0.0);
        self.call(|mut c| async move { registry::register(&mut c, &info).await })
            .await;
    }

    /// Drains this node while it keeps running (the room API's `POST /api/cluster/drain`):
    /// no new rooms, its room claims freed, and every session here told `shutting_down`, on
    /// which clients rejoin and are placed on other nodes. Sessions it relays elsewhere go on.
    pub async fn drain_now(&self, shared: &Shared) {
        self.drain(shared).await;
        for room in claimed(shared) {
            self.evict(&room, self.id()).await;
        }
        self.drained.send_replace(true);
    }

    /// Fires once this node has been drained by [`Cluster::drain_now`].
    pub fn drained(&self) -> tokio::sync::watch::Receiver<bool> {
        self.drained.subscribe()
    }

    /// Leaves the cluster at a clean stop: its registration and its room claims go at once,
    /// so the rooms' participants are placed elsewhere when they rejoin.
    pub async fn leave(&self, shared: &Shared) {
        self.draining.store(true, Ordering::Relaxed);
        for room in claimed(shared) {
            self.evict(&room, self.id()).await;
        }
        self.call(|mut c| async move { registry::deregister(&mut c, &self.config.node_id).await })
            .await;
    }

    fn info(&self, shared: &Shared, forwarded_per_sec: f64, cpu: f64) -> NodeInfo {
        NodeInfo {
            id: self.config.node_id.clone(),
            url: self.config.node_url.clone(),
            media: self.media.clone(),
            participants: shared.metrics.participants.get(),
            rooms: shared.rooms.len(),
            forwarded_per_sec,
            cpu,
            draining: self.is_draining(),
        }
    }

    /// Heartbeats until the server shuts down: registration with load, room claims renewed.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>) {
        let mut shutdown = shared.shutdown.clone();
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (
            Instant::now(),
            shared.metrics.rtp_forwarded.get(),
            cpu_seconds(),
        );
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = (
                Instant::now(),
                shared.metrics.rtp_forwarded.get(),
                cpu_seconds(),
            );
            let secs = now.0.duration_since(last.0).as_secs_f64().max(0.001);
            let rate = now.1.saturating_sub(last.1) as f64 / secs;
            let cpu = (now.2 - last.2).max(0.0) / secs;
            last = now;
            self.heartbeat(&shared, rate, cpu).await;
        }
    }

    async fn heartbeat(&self, shared: &Shared, rate: f64, cpu: f64) {
        let info = self.info(shared, rate, cpu);
        if self
            .call(|mut c| async move { registry::register(&mut c, &info).await })
            .await
            .is_none()
        {
            return;
        }
        if let Some(nodes) = self
            .call(|mut c| async move { registry::nodes(&mut c).await })
            .await
        {
            self.metrics.nodes.set(nodes.len() as i64);
        }
        if self.is_draining() {
            return;
        }
        self.refresh_counts().await;
        let rooms = claimed(shared);
        let owners = self
            .call(|mut c| {
                let rooms = &rooms;
                async move { registry::renew(&mut c, rooms, &self.config.node_id).await }
            })
            .await
            .unwrap_or_default();
        for (room, owner) in rooms.iter().zip(owners) {
            if owner != self.id() {
                self.metrics.conflicts.inc();
                tracing::warn!(room, %owner, "another node serves this room too (Redis lost its data); new joins go there");
            }
        }
    }

    /// The cluster as Redis knows it, for the room API.
    pub async fn view(&self) -> Option<serde_json::Value> {
        let nodes = self
            .call(|mut c| async move { registry::nodes(&mut c).await })
            .await?;
        let rooms = self
            .call(|mut c| async move { registry::rooms(&mut c).await })
            .await?;
        let rooms: Vec<serde_json::Value> = rooms
            .into_iter()
            .map(|(room, node)| serde_json::json!({"room": room, "node": node}))
            .collect();
        Some(serde_json::json!({
            "node": self.id(),
            "nodes": nodes,
            "rooms": rooms,
        }))
    }
}

/// The rooms this node claims in Redis: its rooms, not the edge rooms it holds for others.
fn claimed(shared: &Shared) -> Vec<String> {
    let mut rooms = shared.rooms.names();
    rooms.retain(|r| edge::relayed_room(r).is_none());
    rooms
}

/// Completes once `drained` (a session's [`Cluster::drained`], if in a cluster) fires; never
/// for a single node.
pub async fn until_drained(drained: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    if let Some(rx) = drained {
        if rx.wait_for(|d| *d).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// CPU seconds this process has used (user + system), from /proc; 0 where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the state (field 3) is index 0 here.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return 0.0;
    }
    ticks / hz as f64
}
