//! A node's cluster settings: where Redis is, its name, and the URL other nodes relay to.

use crate::config::ConfigError;
use std::net::SocketAddr;
use std::time::Duration;

/// How often a node refreshes its registration and its room claims.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a registration or a room claim lives without a refresh: a node that stops
/// heartbeating is out of the cluster (and its rooms free) after this.
pub const LEASE: Duration = Duration::from_secs(10);
/// Longest one Redis call may take before the node treats Redis as unreachable.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(800);

/// Cluster membership of this node.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`.
    pub redis_url: String,
    /// This node's unique name.
    pub node_id: String,
    /// `ws://host:port/ws` where other nodes reach this node's signalling.
    pub node_url: String,
    /// Shared by every node: proves a relayed session comes from another node.
    pub secret: String,
    /// Audience members one node serves per webinar before viewers go to edge nodes.
    pub max_audience_per_node: usize,
    /// UDP port relayed stage media arrives on at an edge (0: any free port).
    pub relay_port: u16,
}

/// Default of `--max-audience-per-node`.
pub const MAX_AUDIENCE_PER_NODE: usize = 250;

/// Shortest cluster secret accepted.
pub const MIN_SECRET: usize = 16;

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may carry a password.
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("node_url", &self.node_url)
            .finish()
    }
}

impl ClusterConfig {
    /// The cluster settings, or `None` without a Redis URL (a single node).
    ///
    /// The secret is required rather than generated and kept in Redis: a node must check
    /// relays while Redis is down (each node then serves rooms itself, but relays already
    /// placed keep arriving), a secret in Redis would change with a Redis that lost its data,
    /// and anything able to read Redis would then be able to bypass the per-address cap.
    pub fn resolve(
        redis_url: Option<String>,
        node_id: Option<String>,
        node_url: Option<String>,
        secret: Option<String>,
        listen: SocketAddr,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(redis_url) = redis_url.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let secret = secret.unwrap_or_default();
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        if secret.len() < MIN_SECRET || !printable {
            return Err(ConfigError::Invalid(format!(
                "cluster-secret is needed with redis-url: at least {MIN_SECRET} printable ASCII characters without spaces, the same on every node"
            )));
        }
        if redis::Client::open(redis_url.as_str()).is_err() {
            return Err(ConfigError::Invalid(
                "redis-url is not a valid redis:// URL".into(),
            ));
        }
        let node_url = match node_url {
            Some(u) => u,
            None if listen.ip().is_unspecified() => {
                return Err(ConfigError::Invalid(
                    "node-url is needed when listening on every interface: the address other nodes reach this one on".into(),
                ))
            }
            None => format!("ws://{listen}/ws"),
        };
        if !node_url.starts_with("ws://") {
            return Err(ConfigError::Invalid(
                "node-url must be a plain ws:// URL (nodes relay to each other without TLS)".into(),
            ));
        }
        let node_id = node_id.unwrap_or_else(|| listen.to_string());
        let valid_id = !node_id.is_empty()
            && node_id.len() <= 64
            && node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !valid_id {
            return Err(ConfigError::Invalid(
                "node-id must be 1–64 letters, digits, '-', '_', '.' or ':'".into(),
            ));
        }
        Ok(Some(ClusterConfig {
            redis_url,
            node_id,
            node_url,
            secret,
            max_audience_per_node: MAX_AUDIENCE_PER_NODE,
            relay_port: 0,
        }))
    }

    /// The relay's settings (`None`: defaults); a cap of 0 is taken as 1.
    pub fn with_relay(mut self, max_audience: Option<usize>, relay_port: Option<u16>) -> Self {
        self.max_audience_per_node = max_audience.unwrap_or(MAX_AUDIENCE_PER_NODE).max(1);
        self.relay_port = relay_port.unwrap_or(0);
        self
    }
}
