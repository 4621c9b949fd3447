//! Three confab processes on loopback as one cluster on a real `redis-server` (issue 15):
//! one room joined through three nodes, a node killed with SIGKILL, Redis stopped for 10 s.
//! Each test starts its own Redis on a free port (no persistence) and kills it at the end.

use crate::limits::{free_port, http_get, metric_in, receives, Kill};
use confab::bot::{Bot, BotConfig};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const API_KEY: &str = "cluster-test-api-key";
pub(crate) const SECRET: &str = "cluster-test-secret-0123456789";
/// The metric families of refused relay datagrams: an edge's of the origin's, an origin's of
/// an edge's uplink.
const RELAY_DROPS: [&str; 2] = [
    "confab_relay_dropped_total",
    "confab_relay_uplink_dropped_total",
];

/// A `redis-server` on a loopback port, without persistence; killed when dropped.
pub(crate) struct Redis {
    port: u16,
    proc: Option<Kill>,
}

impl Redis {
    pub(crate) async fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            proc: None,
        };
        r.restart().await;
        r
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.proc = Some(Kill(child));
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        let until = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < until, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        self.proc = None;
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Where a node's log goes: `$CONFAB_TEST_NODE_LOGS/<id>.log` when that is set (to see
/// what a failing cluster test's nodes did), else nowhere.
fn node_log(id: &str) -> Stdio {
    std::env::var_os("CONFAB_TEST_NODE_LOGS")
        .filter(|dir| !dir.is_empty())
        .and_then(|dir| {
            std::fs::File::create(std::path::Path::new(&dir).join(format!("{id}.log"))).ok()
        })
        .map_or_else(Stdio::null, Stdio::from)
}

/// One confab node of the cluster.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) http: SocketAddr,
    proc: Option<Kill>,
}

impl Node {
    async fn start(redis: &Redis, id: &str) -> Node {
        Node::start_with(redis, id, &[]).await
    }

    pub(crate) async fn start_with(redis: &Redis, id: &str, extra: &[&str]) -> Node {
        let http_port = free_port();
        let udp_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["--listen", &format!("127.0.0.1:{http_port}")])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--redis-url", &redis.url(), "--node-id", id])
            .args(["--api-key", API_KEY, "--cluster-secret", SECRET])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(node_log(id))
            .spawn()
            .expect("spawn confab");
        let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().expect("addr");
        let node = Node {
            id: id.to_string(),
            http,
            proc: Some(Kill(child)),
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !http_get(http, "/healthz").await.starts_with("HTTP/1.1 200") {
            assert!(Instant::now() < until, "node {id} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub(crate) fn ws(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        metric_in(&http_get(self.http, "/metrics").await, name)
    }

    /// Relay datagrams refused as of a track or layer not (yet) announced, both ways.
    pub(crate) async fn unknown_track_drops(&self) -> f64 {
        let mut n = 0.0;
        for family in RELAY_DROPS {
            n += self
                .metric(&format!("{family}{{reason=\"unknown_track\"}}"))
                .await;
        }
        n
    }

    /// No relay datagram was refused as forged, replayed or malformed, either way (an edge's
    /// refusals of the origin's, an origin's of an edge's uplink); up to `early_max` of a
    /// track whose announcement (over the control link) was still on its way are expected,
    /// more the busier the machine.
    pub(crate) async fn assert_relay_drops_benign(&self, early_max: f64) {
        for family in RELAY_DROPS {
            for reason in [
                "malformed",
                "unknown_link",
                "forged",
                "replayed",
                "unknown_codec",
            ] {
                let n = self
                    .metric(&format!("{family}{{reason=\"{reason}\"}}"))
                    .await;
                assert_eq!(n, 0.0, "{}: {family} refused as {reason}", self.id);
            }
        }
        let early = self.unknown_track_drops().await;
        assert!(
            early <= early_max,
            "{}: {early} relay datagrams of unknown tracks",
            self.id
        );
    }

    /// `GET /api/cluster`'s JSON body.
    pub(crate) async fn cluster(&self) -> serde_json::Value {
        let mut c = tokio::net::TcpStream::connect(self.http)
            .await
            .expect("connect");
        let req = format!(
            "GET /api/cluster HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n"
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(req.as_bytes()).await.expect("write");
        let mut text = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_string(&mut text)).await;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }

    /// SIGKILL: no goodbye to Redis or to anyone.
    fn kill(&mut self) {
        self.proc = None;
    }
}

/// The node Redis names for `room`.
pub(crate) async fn owner(node: &Node, room: &str) -> Option<String> {
    let view = node.cluster().await;
    view["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["room"] == room)
        .and_then(|r| r["node"].as_str().map(str::to_string))
}

async fn three_nodes(redis: &Redis) -> Vec<Node> {
    three_nodes_with(redis, &[]).await
}

/// Three nodes started with `extra` arguments, once all have registered.
pub(crate) async fn three_nodes_with(redis: &Redis, extra: &[&str]) -> Vec<Node> {
    let mut nodes = vec![];
    for id in ["n1", "n2", "n3"] {
        nodes.push(Node::start_with(redis, id, extra).await);
    }
    // Every node registered (its first heartbeat is sent at start).
    let until = Instant::now() + Duration::from_secs(10);
    while nodes[0].cluster().await["nodes"]
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < until, "nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes
}

/// Tracks from other participants that delivered media lately: every bot receives, and
/// (within the same time) has an audio and a video track of each other bot. Media of one
/// participant may arrive before the other's negotiation is done, so both are waited for.
async fn all_receive(bots: &[Bot], within: Duration) {
    let want = 2 * bots.len().saturating_sub(1);
    for b in bots {
        assert!(receives(b, within).await, "{:?}", b.stats());
        let all = b.wait_until(within, |s| s.tracks.len() >= want).await;
        let remote = b.stats().tracks.len();
        assert!(all, "{remote} tracks: {:?}", b.stats());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_through_three_nodes() {
    let redis = Redis::start().await;
    let nodes = three_nodes(&redis).await;
    let mut bots = vec![];
    for (i, node) in nodes.iter().enumerate() {
        let config = BotConfig::new(node.ws(), "standup", format!("bot{i}"));
        bots.push(Bot::join(config).await.expect("bot joins"));
    }
    all_receive(&bots, Duration::from_secs(15)).await;
    // One node serves the room; the two others relay their session to it.
    let served = owner(&nodes[0], "standup").await.expect("room claimed");
    let mut relayed = 0.0;
    for n in &nodes {
        let out = n.metric("confab_cluster_relayed_out ").await;
        if n.id == served {
            assert_eq!(out, 0.0, "the room's node relays nothing");
            assert_eq!(n.metric("confab_participants ").await, 3.0);
        } else {
            assert_eq!(n.metric("confab_participants ").await, 0.0);
        }
        relayed += out;
    }
    assert_eq!(relayed, 2.0, "two sessions relayed to {served}");
    let view = nodes[2].cluster().await;
    assert_eq!(view["nodes"].as_array().map(Vec::len), Some(3), "{view}");
    for b in bots {
        let _ = b.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_rooms_return_on_other_nodes() {
    let redis = Redis::start().await;
    let mut nodes = three_nodes(&redis).await;
    let mut bots = vec![];
    for (i, node) in nodes.iter().enumerate() {
        let config = BotConfig::new(node.ws(), "failover", format!("bot{i}"));
        bots.push(Bot::join(config).await.expect("bot joins"));
    }
    all_receive(&bots, Duration::from_secs(15)).await;
    let served = owner(&nodes[0], "failover").await.expect("room claimed");
    let dead = nodes.iter().position(|n| n.id == served).expect("a node");
    let killed = Instant::now();
    nodes[dead].kill();
    // Every session ends (relays see their upstream vanish); each client rejoins through a
    // live node, as the web client does by itself.
    let live: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while !bots.iter().all(Bot::is_finished) {
        assert!(Instant::now() < until, "sessions did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut back = vec![];
    for i in 0..bots.len() {
        let node = &nodes[live[i % live.len()]];
        let config = BotConfig::new(node.ws(), "failover", format!("again{i}"));
        back.push(Bot::join(config).await.expect("bot rejoins"));
    }
    all_receive(&back, Duration::from_secs(15)).await;
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "back in the room after {took:?}"
    );
    let now = owner(&nodes[live[0]], "failover")
        .await
        .expect("room claimed again");
    assert_ne!(now, served, "the room moved off the dead node");
    eprintln!("room back on {now} after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_rooms_and_placement_recovers() {
    let mut redis = Redis::start().await;
    let nodes = three_nodes(&redis).await;
    let mut bots = vec![];
    for (i, node) in nodes.iter().take(2).enumerate() {
        let config = BotConfig::new(node.ws(), "steady", format!("bot{i}"));
        bots.push(Bot::join(config).await.expect("bot joins"));
    }
    all_receive(&bots, Duration::from_secs(15)).await;

    redis.stop();
    let stopped = Instant::now();
    // A new room while Redis is down: served where it was asked, and said so.
    let lone = Bot::join(BotConfig::new(nodes[2].ws(), "during", "lone"))
        .await
        .expect("joins without redis");
    assert!(
        nodes[2]
            .metric("confab_cluster_placements_total{decision=\"fallback_local\"}")
            .await
            >= 1.0
    );
    while stopped.elapsed() < Duration::from_secs(10) {
        all_receive(&bots, Duration::from_secs(5)).await;
    }
    assert!(nodes[0].metric("confab_cluster_redis_errors_total").await >= 1.0);
    assert_eq!(nodes[0].metric("confab_cluster_redis_up ").await, 0.0);

    redis.restart().await;
    // Heartbeats register the nodes and re-claim the running rooms.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let view = nodes[1].cluster().await;
        let nodes_up = view["nodes"].as_array().map_or(0, Vec::len);
        let rooms = view["rooms"].as_array().map_or(0, Vec::len);
        if nodes_up == 3 && rooms == 2 {
            break;
        }
        assert!(Instant::now() < until, "cluster did not recover: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(owner(&nodes[0], "during").await.as_deref(), Some("n3"));
    // Placement works again: a new room joined through two nodes meets on one.
    let a = Bot::join(BotConfig::new(nodes[0].ws(), "after", "a"))
        .await
        .expect("joins");
    let b = Bot::join(BotConfig::new(nodes[1].ws(), "after", "b"))
        .await
        .expect("joins");
    all_receive(&[a, b], Duration::from_secs(15)).await;
    all_receive(&bots, Duration::from_secs(5)).await;
    let _ = lone.leave().await;
}

/// Writes `request` on a new connection to `addr`; what came back within 5 s.
async fn raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut c) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    c.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A WebSocket upgrade of `/ws` with the relay header set to `value`.
fn upgrade_with_relay(value: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         x-confab-relay: {value}\r\n\r\n"
    )
}

/// Every session one node relays to another comes from the relaying node's address: with
/// the cluster secret they pass the per-address cap; a forged relay header gets nothing a
/// plain client would not (refused below the cap, the health-only reserve above it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_pass_the_per_address_cap_and_forged_relays_do_not() {
    let redis = Redis::start().await;
    // Everything here, n1's relays included, comes from 127.0.0.1: n2 admits 3 from it.
    let n2 = Node::start_with(&redis, "n2", &["--max-connections-per-address", "3"]).await;
    let first = Bot::join(BotConfig::new(n2.ws(), "capped", "first"))
        .await
        .expect("joins");
    let n1 = Node::start(&redis, "n1").await;
    let until = Instant::now() + Duration::from_secs(10);
    while n1.cluster().await["nodes"].as_array().map_or(0, Vec::len) < 2 {
        assert!(Instant::now() < until, "nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(owner(&n1, "capped").await.as_deref(), Some("n2"));
    let mut bots = vec![first];
    for i in 0..4 {
        let config = BotConfig::new(n1.ws(), "capped", format!("relayed{i}"));
        bots.push(Bot::join(config).await.expect("relayed bot joins"));
    }
    all_receive(&bots, Duration::from_secs(20)).await;
    assert_eq!(n1.metric("confab_cluster_relayed_out ").await, 4.0);
    // /metrics answers from the reserve: 127.0.0.1 holds its 3 slots on n2.
    assert_eq!(n2.metric("confab_participants ").await, 5.0);
    assert_eq!(n2.metric("confab_cluster_relayed_in_total").await, 4.0);

    // Over the cap, a wrong secret gets the reserve's health-only answer.
    let forged = raw(n2.http, &upgrade_with_relay("not-the-cluster-secret")).await;
    assert!(forged.starts_with("HTTP/1.1 503"), "{forged}");
    let empty = raw(n2.http, &upgrade_with_relay("")).await;
    assert!(empty.starts_with("HTTP/1.1 503"), "{empty}");
    // Below the cap (n1 admits 256 from one address), a wrong secret is refused outright.
    let forged = raw(n1.http, &upgrade_with_relay("not-the-cluster-secret")).await;
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    assert_eq!(n1.metric("confab_cluster_relay_forged_total").await, 1.0);
    // The right secret over the cap: admitted and upgraded.
    let genuine = raw(n2.http, &upgrade_with_relay(SECRET)).await;
    assert!(genuine.starts_with("HTTP/1.1 101"), "{genuine}");
    all_receive(&bots, Duration::from_secs(5)).await;
    for b in bots {
        let _ = b.leave().await;
    }
}

/// Drained through the room API, a node leaves placement and tells its participants to
/// rejoin (`shutting_down`, as on SIGTERM), and keeps running: the room comes back on the
/// other node, joined through both. The nodes gauge follows the heartbeats meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_node_hands_its_rooms_over_and_stays_up() {
    let redis = Redis::start().await;
    let n1 = Node::start(&redis, "n1").await;
    let a = Bot::join(BotConfig::new(n1.ws(), "drained", "a"))
        .await
        .expect("joins");
    let n2 = Node::start(&redis, "n2").await;
    let until = Instant::now() + Duration::from_secs(10);
    while n1.metric("confab_cluster_nodes ").await < 2.0
        || n2.metric("confab_cluster_nodes ").await < 2.0
    {
        assert!(
            Instant::now() < until,
            "nodes gauge not refreshed by heartbeats"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(owner(&n2, "drained").await.as_deref(), Some("n1"));
    let b = Bot::join(BotConfig::new(n2.ws(), "drained", "b"))
        .await
        .expect("joins");
    let bots = vec![a, b];
    all_receive(&bots, Duration::from_secs(15)).await;

    let request = format!(
        "POST /api/cluster/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(n1.http, &request).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"draining\":true"), "{reply}");
    let until = Instant::now() + Duration::from_secs(10);
    while !bots.iter().all(Bot::is_finished) {
        assert!(Instant::now() < until, "sessions were not told to rejoin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Rejoining through both nodes, as the web client does by itself.
    let mut back = vec![];
    for (i, node) in [&n1, &n2].iter().enumerate() {
        let config = BotConfig::new(node.ws(), "drained", format!("again{i}"));
        back.push(Bot::join(config).await.expect("rejoins"));
    }
    all_receive(&back, Duration::from_secs(15)).await;
    assert_eq!(owner(&n1, "drained").await.as_deref(), Some("n2"));
    assert_eq!(n1.metric("confab_participants ").await, 0.0);
    assert_eq!(n2.metric("confab_participants ").await, 2.0);
    assert_eq!(n1.metric("confab_cluster_relayed_out ").await, 1.0);
    let view = n2.cluster().await;
    let drained = view["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["id"] == "n1"))
        .map(|n| n["draining"].clone());
    assert_eq!(drained, Some(serde_json::json!(true)), "{view}");
    for b in back {
        let _ = b.leave().await;
    }
}
