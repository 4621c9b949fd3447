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
    /// Where joins were sent, by `decision`: `owner_local`, `owner_remote` (the room's node),
    /// `placed_local`, `placed_remote` (a new room), `fallback_local` (Redis unreachable),
    /// `reclaimed` (the owner was dead, unreachable or draining).
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
        ClusterMetrics {
            registry,
            placements,
            redis_errors,
            redis_up,
            nodes,
            relayed_out,
            relayed_in,
            relay_failures,
            relay_forged,
            conflicts,
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

    /// Appends these counters to the node's own exposition (one `# EOF` at the end).
    pub fn append_to(&self, text: &mut String) {
        let mut more = String::new();
        if encode(&mut more, &self.registry).is_err() {
            return;
        }
        if let Some(stripped) = text.strip_suffix("# EOF\n") {
            let keep = stripped.len();
            text.truncate(keep);
        }
        text.push_str(&more);
    }
}
