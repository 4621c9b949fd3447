//! The cluster's state in Redis: node registrations with their load, and the room → node map.
//!
//! Keys (all expire after [`LEASE`] unless refreshed by their owner's heartbeat):
//! - `confab:node:<id>`: the node's [`NodeInfo`] as JSON; `confab:nodes` lists the ids.
//! - `confab:room:<name>`: the id of the node that serves the room. Claimed with `SET NX`, so
//!   two nodes placing one new room at once agree on a single owner; taken over from a dead or
//!   draining node only if it still names that node (compare-and-delete in a script).

use super::config::LEASE;
use redis::aio::ConnectionManager;
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

const NODES: &str = "confab:nodes";
/// Most room claims the cluster view lists.
pub const MAX_LISTED_ROOMS: usize = 10_000;

/// A node as the cluster sees it: where to reach it and how loaded it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// Unique name.
    pub id: String,
    /// Where other nodes relay signalling to (`ws://…/ws`).
    pub url: String,
    /// Media addresses announced to clients.
    pub media: Vec<SocketAddr>,
    /// Participants in its rooms.
    pub participants: i64,
    /// Rooms it holds open.
    pub rooms: usize,
    /// RTP packets it forwarded per second over the last heartbeat.
    pub forwarded_per_sec: f64,
    /// CPU it used over the last heartbeat, in cores (1.0 = one core busy).
    pub cpu: f64,
    /// Takes no new rooms.
    pub draining: bool,
}

impl NodeInfo {
    /// Orders candidates for a new room: fewest participants, then fewest rooms, then CPU.
    pub fn load_key(&self) -> (i64, usize, u64) {
        (self.participants, self.rooms, (self.cpu * 1000.0) as u64)
    }
}

fn node_key(id: &str) -> String {
    format!("confab:node:{id}")
}

fn room_key(room: &str) -> String {
    format!("confab:room:{room}")
}

fn lease_ms() -> u64 {
    LEASE.as_millis() as u64
}

/// Claims the room for `owner` unless it is free or already `owner`'s; answers the owner.
const RENEW: &str = "local o = redis.call('GET', KEYS[1]) \
    if (not o) or o == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end \
    return o";

/// Deletes the claim only if it still names ARGV[1].
const EVICT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Registers (or refreshes) a node for one lease.
pub async fn register(con: &mut ConnectionManager, info: &NodeInfo) -> RedisResult<()> {
    let json = serde_json::to_string(info).unwrap_or_default();
    redis::pipe()
        .cmd("SADD")
        .arg(NODES)
        .arg(&info.id)
        .ignore()
        .cmd("SET")
        .arg(node_key(&info.id))
        .arg(json)
        .arg("PX")
        .arg(lease_ms())
        .ignore()
        .query_async(con)
        .await
}

/// Removes a node's registration at once (a clean stop).
pub async fn deregister(con: &mut ConnectionManager, id: &str) -> RedisResult<()> {
    redis::pipe()
        .cmd("SREM")
        .arg(NODES)
        .arg(id)
        .ignore()
        .cmd("DEL")
        .arg(node_key(id))
        .ignore()
        .query_async(con)
        .await
}

/// One node, if it is registered (alive).
pub async fn node(con: &mut ConnectionManager, id: &str) -> RedisResult<Option<NodeInfo>> {
    let json: Option<String> = redis::cmd("GET").arg(node_key(id)).query_async(con).await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Every live node; ids whose registration expired are dropped from the list.
pub async fn nodes(con: &mut ConnectionManager) -> RedisResult<Vec<NodeInfo>> {
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(con).await?;
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(con).await?;
    let mut out = vec![];
    let mut gone = vec![];
    for (id, v) in ids.into_iter().zip(values) {
        match v.and_then(|j| serde_json::from_str::<NodeInfo>(&j).ok()) {
            Some(info) => out.push(info),
            None => gone.push(id),
        }
    }
    if !gone.is_empty() {
        let _: () = redis::cmd("SREM")
            .arg(NODES)
            .arg(&gone)
            .query_async(con)
            .await?;
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The node that serves `room`, if any.
pub async fn owner(con: &mut ConnectionManager, room: &str) -> RedisResult<Option<String>> {
    redis::cmd("GET").arg(room_key(room)).query_async(con).await
}

/// Claims a free room for `node`; false when another claim was first.
pub async fn claim(con: &mut ConnectionManager, room: &str, node: &str) -> RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(room_key(room))
        .arg(node)
        .arg("NX")
        .arg("PX")
        .arg(lease_ms())
        .query_async(con)
        .await?;
    Ok(set.is_some())
}

/// Frees `room` if `node` still holds it (dead, unreachable or draining).
pub async fn evict(con: &mut ConnectionManager, room: &str, node: &str) -> RedisResult<bool> {
    let n: i64 = redis::cmd("EVAL")
        .arg(EVICT)
        .arg(1)
        .arg(room_key(room))
        .arg(node)
        .query_async(con)
        .await?;
    Ok(n == 1)
}

/// Renews `node`'s claims on the rooms it serves, claiming free ones; answers each room's
/// owner (another node's id where two nodes hold one room, after Redis lost its data).
pub async fn renew(
    con: &mut ConnectionManager,
    rooms: &[String],
    node: &str,
) -> RedisResult<Vec<String>> {
    if rooms.is_empty() {
        return Ok(vec![]);
    }
    let mut pipe = redis::pipe();
    for room in rooms {
        pipe.cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(room_key(room))
            .arg(node)
            .arg(lease_ms());
    }
    pipe.query_async(con).await
}

/// Every claimed room and its node (at most [`MAX_LISTED_ROOMS`]).
pub async fn rooms(con: &mut ConnectionManager) -> RedisResult<Vec<(String, String)>> {
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = vec![];
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("confab:room:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= MAX_LISTED_ROOMS {
            break;
        }
    }
    keys.truncate(MAX_LISTED_ROOMS);
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let owners: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(con).await?;
    let mut out: Vec<(String, String)> = keys
        .into_iter()
        .zip(owners)
        .filter_map(|(k, o)| Some((k.strip_prefix("confab:room:")?.to_string(), o?)))
        .collect();
    out.sort();
    Ok(out)
}
