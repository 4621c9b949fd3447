//! The cluster's counters, appended to the node's `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set of a placement decision.
pub type Decision = Vec<(&'static str, &'static str)>;

/// Counters of one node's part in the cluster.
pub struct ClusterMetrics {
    registry: Registry,
    relay: Registry,
    /// Relay control links open on this node (origin side).
    pub relay_links: Gauge,
    /// Relay datagrams sent to edges (origin): each stage packet once per edge that needs it.
    pub relay_sent_packets: Counter,
    /// Their bytes, sealed, with the link id.
    pub relay_sent_bytes: Counter,
    /// Relay datagrams opened and fed to edge rooms (edge).
    pub relay_received_packets: Counter,
    /// Relay packets sealed again because an edge said they did not arrive (origin).
    pub relay_resent: Counter,
    /// Relay packets an edge asked its origin for again, each try counted (edge).
    pub relay_repair_requests: Counter,
    /// Relay datagrams dropped (edge), by `reason`: `malformed`, `unknown_link`,
    /// `queue_full`, `forged`, `replayed`.
    pub relay_dropped: Family<Decision, Counter>,
    /// Uplink datagrams (a promoted edge viewer's) the origin's room refused, by `reason`:
    /// `forged`, `replayed`, `unknown_track` (e.g. before the edge's track list arrived),
    /// `unknown_codec`, `unknown_link`, `malformed`.
    pub relay_uplink_dropped: Family<Decision, Counter>,
    /// Uplink packets the origin asked an edge for again, each try counted (origin).
    pub relay_uplink_repair_requests: Counter,
    /// Uplink packets sealed again because the origin said they did not arrive (edge).
    pub relay_uplink_resent: Counter,
    /// Where joins were sent, by `decision`: `owner_local`, `owner_remote` (the room's node),
    /// `placed_local`, `placed_remote` (a new room), `fallback_local` (Redis unreachable),
    /// `reclaimed` (the owner was dead, unreachable or draining), `edge` (a webinar viewer
    /// past the origin's `--max-audience-per-node`, served by an edge node).
    pub placements: Family<Decision, Counter>,
    /// Redis calls that failed or timed out.
    pub redis_errors: Counter,
    /// 1 while the last Redis call succeeded.
    pub redis_up: Gauge,
    /// Live nodes Redis listed at this node's last heartbeat or placement of a new room.
    pub nodes: Gauge,
    /// Sessions this node relays to another node now.
    pub relayed_out: Gauge,
    /// Sessions relayed here by another node, in total.
    pub relayed_in: Counter,
    /// Relays that could not reach the room's node.
    pub relay_failures: Counter,
    /// WebSocket upgrades refused for a relay header without the cluster secret.
    pub relay_forged: Counter,
    /// Rooms this node serves that Redis names another node for (after Redis lost its data).
    pub conflicts: Counter,
    /// Viewer sessions this node serves as an edge now.
    pub edge_sessions: Gauge,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("confab_cluster");
        let placements = Family::<Decision, Counter>::default();
        registry.register(
            "placements",
            "Joins by where they were served",
            placements.clone(),
        );
        let c = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let g = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let redis_errors = c(&mut registry, "redis_errors", "Redis calls failed");
        let relayed_in = c(&mut registry, "relayed_in", "Sessions relayed here");
        let relay_failures = c(&mut registry, "relay_failures", "Relays failed");
        let relay_forged = c(&mut registry, "relay_forged", "Relay headers refused");
        let conflicts = c(&mut registry, "conflicts", "Rooms claimed by two nodes");
        let redis_up = g(&mut registry, "redis_up", "Redis reachable");
        let nodes = g(&mut registry, "nodes", "Live nodes");
        let relayed_out = g(&mut registry, "relayed_out", "Sessions relayed away now");
        let edge_sessions = g(
            &mut registry,
            "edge_sessions",
            "Viewers served as an edge now",
        );
        let mut relay = Registry::with_prefix("confab_relay");
        let relay_links = g(&mut relay, "links", "Relay control links open (origin)");
        let relay_sent_packets = c(&mut relay, "sent_packets", "Relay datagrams sent (origin)");
        let relay_sent_bytes = c(&mut relay, "sent_bytes", "Relay bytes sent (origin)");
        let relay_received_packets = c(
            &mut relay,
            "received_packets",
            "Relay datagrams opened (edge)",
        );
        let relay_resent = c(&mut relay, "resent", "Relay packets resealed (origin)");
        let relay_repair_requests = c(
            &mut relay,
            "repair_requests",
            "Relay packets asked again (edge)",
        );
        let relay_dropped = Family::<Decision, Counter>::default();
        relay.register(
            "dropped",
            "Relay datagrams dropped (edge), by reason",
            relay_dropped.clone(),
        );
        let relay_uplink_dropped = Family::<Decision, Counter>::default();
        relay.register(
            "uplink_dropped",
            "Uplink datagrams refused (origin), by reason",
            relay_uplink_dropped.clone(),
        );
        let relay_uplink_repair_requests = c(
            &mut relay,
            "uplink_repair_requests",
            "Uplink packets asked again (origin)",
        );
        let relay_uplink_resent = c(
            &mut relay,
            "uplink_resent",
            "Uplink packets resealed (edge)",
        );
        ClusterMetrics {
            registry,
            relay,
            relay_links,
            relay_sent_packets,
            relay_sent_bytes,
            relay_received_packets,
            relay_resent,
            relay_repair_requests,
            relay_dropped,
            relay_uplink_dropped,
            relay_uplink_repair_requests,
            relay_uplink_resent,
            placements,
            redis_errors,
            redis_up,
            nodes,
            relayed_out,
            relayed_in,
            relay_failures,
            relay_forged,
            conflicts,
            edge_sessions,
        }
    }
}

impl ClusterMetrics {
    /// Counts one placement.
    pub fn placed(&self, decision: &'static str) {
        self.placements
            .get_or_create(&vec![("decision", decision)])
            .inc();
    }

    /// Counts one relay datagram dropped.
    pub fn relay_dropped(&self, reason: &'static str) {
        self.relay_dropped
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Appends these counters to the node's own exposition (one `# EOF` at the end).
    pub fn append_to(&self, text: &mut String) {
        let mut more = String::new();
        if encode(&mut more, &self.registry).is_err() {
            return;
        }
        let mut relay = String::new();
        if encode(&mut relay, &self.relay).is_err() {
            return;
        }
        // Each exposition ends in `# EOF`; one goes at the very end.
        if let Some(body) = more.strip_suffix("# EOF\n") {
            let keep = body.len();
            more.truncate(keep);
        }
        more.push_str(&relay);
        if let Some(stripped) = text.strip_suffix("# EOF\n") {
            let keep = stripped.len();
            text.truncate(keep);
        }
        text.push_str(&more);
    }
}
