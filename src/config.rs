//! Every setting, with its documented default: from the command line, the environment, or a
//! TOML file (in that order of precedence).

use crate::media::RoomConfig;
use clap::Args;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Settings as given (command line, environment, or file); unset ones take their default.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// HTTP/WebSocket listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "CONFAB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// UDP port for all media, on the listen address's IP [default: 10000]
    #[arg(long, env = "CONFAB_UDP_PORT")]
    pub udp_port: Option<u16>,
    /// IP announced in ICE candidates, when clients reach the server through NAT
    /// [default: the listen IP, or every local interface when listening on 0.0.0.0]
    #[arg(long, env = "CONFAB_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// PEM certificate chain: serve HTTPS/WSS (needs --tls-key) [default: plain HTTP]
    #[arg(long, env = "CONFAB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "CONFAB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS/WSS with a self-signed certificate made at startup (browsers will warn once)
    #[arg(long, env = "CONFAB_TLS_SELF_SIGNED", num_args = 0..=1, default_missing_value = "true")]
    pub tls_self_signed: Option<bool>,
    /// Most participants in one room [default: 300]
    #[arg(long, env = "CONFAB_MAX_PARTICIPANTS")]
    pub max_participants: Option<usize>,
    /// Largest signalling message accepted, in bytes [default: 524288]
    #[arg(long, env = "CONFAB_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Seconds without any signalling traffic before a session is reaped [default: 30]
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds ICE may stay disconnected before a participant is reaped [default: 4]
    #[arg(long, env = "CONFAB_ICE_GRACE")]
    pub ice_grace: Option<u64>,
    /// Seconds a connected participant may send no packet at all before it is reaped [default: 6]
    #[arg(long, env = "CONFAB_MEDIA_TIMEOUT")]
    pub media_timeout: Option<u64>,
    /// Seconds a participant whose offer was answered may take to connect its media before
    /// it is reaped [default: 20]
    #[arg(long, env = "CONFAB_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<u64>,
    /// Secret for HS256 join tokens; when set, joining needs a token (`confab token`)
    /// [default: none: open mode, for trusted networks only]
    #[arg(long, env = "CONFAB_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Per-subscriber bandwidth estimation (TWCC) and pacing; `false` forwards what tiles
    /// want without pacing [default: true]
    #[arg(long, env = "CONFAB_BANDWIDTH_ESTIMATION", action = clap::ArgAction::Set)]
    pub bandwidth_estimation: Option<bool>,
    /// Who seals and sends media toward peers: `lean` (confab's own rewrite + SRTP, pacing,
    /// estimation and receiver reports), or `str0m` (str0m's whole stack per peer, the old
    /// path) [default: lean]
    #[arg(long, env = "CONFAB_SEND_PATH")]
    pub send_path: Option<crate::media::config::SendPath>,
    /// Hand rooms' send batches to a thread of their own, so the kernel's send of one batch
    /// overlaps the sealing of the next; `false`: each room sends its own [default: true with
    /// two or more CPUs available to the process, false with one]
    #[arg(long, env = "CONFAB_SEND_THREAD", action = clap::ArgAction::Set)]
    pub send_thread: Option<bool>,
    /// Send threads serving the send lanes, 1 or 2 (with 1, rooms send the other lane) [default: 2]
    #[arg(long, env = "CONFAB_SEND_THREADS")]
    pub send_threads: Option<usize>,
    /// Send a burst's datagrams to one peer (a video frame's packets) as one UDP GSO message
    /// where the kernel and network interface allow (Linux; turned off by itself, and said in
    /// the log, when refused) [default: true]
    #[arg(long, env = "CONFAB_UDP_GSO", action = clap::ArgAction::Set)]
    pub udp_gso: Option<bool>,
    /// Queue RTCP arriving on the media port on a socket of its own (same port), read when
    /// media wakes the receiver or after 20 ms, so that RTCP alone never wakes it (Linux;
    /// one socket where the kernel refuses, said in the log) [default: true]
    #[arg(long, env = "CONFAB_SPLIT_RTCP", action = clap::ArgAction::Set)]
    pub split_rtcp: Option<bool>,
    /// Also accept media over TCP on the UDP port's number (ICE-TCP), for networks that block
    /// UDP; browsers use it only when UDP fails [default: true]
    #[arg(long, env = "CONFAB_ICE_TCP", action = clap::ArgAction::Set)]
    pub ice_tcp: Option<bool>,
    /// Also accept ICE-TCP media on the HTTP(S) port, told apart from web traffic by its first
    /// byte, for firewalls that let only web ports through [default: true]
    #[arg(long, env = "CONFAB_ICE_TCP_HTTP", action = clap::ArgAction::Set)]
    pub ice_tcp_http: Option<bool>,
    /// Let a typed room name that does not exist open a new room (its opener is host, in open
    /// mode); `false`: only rooms made by "New meeting", `confab room create` or the room API
    /// exist [default: true]
    #[arg(long, env = "CONFAB_ADHOC_ROOMS", action = clap::ArgAction::Set)]
    pub adhoc_rooms: Option<bool>,
    /// Hours a room's settings, bans and links last after its last participant left (or after
    /// its creation, if nobody came) [default: 24]
    #[arg(long, env = "CONFAB_ROOM_EXPIRY_HOURS")]
    pub room_expiry_hours: Option<u64>,
    /// Bearer key for the room API at /api; without one there is no API [default: none]
    #[arg(long, env = "CONFAB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Directory recordings are written to (created when the first recording starts)
    /// [default: recordings, under the working directory]
    #[arg(long, env = "CONFAB_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// Seconds a client may take to send a request's headers (slowloris) [default: 10]
    #[arg(long, env = "CONFAB_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<u64>,
    /// HTTP(S)/WebSocket connections open at once, lowered to fit the open-file limit
    /// [default: 10000]
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// HTTP(S)/WebSocket connections from one IP address [default: 256]
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Participants in all rooms together [default: 5000]
    #[arg(long, env = "CONFAB_MAX_SERVER_PARTICIPANTS")]
    pub max_server_participants: Option<usize>,
    /// Rooms the server holds, open or kept (their settings and links outlive the last
    /// participant until they expire); a new one beyond it is refused [default: 10000]
    #[arg(long, env = "CONFAB_MAX_ROOMS")]
    pub max_rooms: Option<usize>,
    /// Redis URL (`redis://127.0.0.1:6379`): run as one node of a cluster (README: cluster)
    /// [default: none: a single node]
    #[arg(long, env = "CONFAB_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// This node's name in the cluster [default: the listen address]
    #[arg(long, env = "CONFAB_NODE_ID")]
    pub node_id: Option<String>,
    /// The WebSocket URL other nodes reach this node's signalling on, plain `ws://`
    /// [default: ws://LISTEN/ws, LISTEN being --listen]
    #[arg(long, env = "CONFAB_NODE_URL")]
    pub node_url: Option<String>,
    /// Secret shared by every node of the cluster, at least 16 characters, required with
    /// `--redis-url`: it authenticates sessions one node relays to another [default: none]
    #[arg(long, env = "CONFAB_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Webinar audience one node serves for a room before new viewers go to an edge node
    /// that relays the stage (README: cluster) [default: 250]
    #[arg(long, env = "CONFAB_MAX_AUDIENCE_PER_NODE")]
    pub max_audience_per_node: Option<usize>,
    /// UDP port an edge node receives relayed stage media on (0: any free port; the port is
    /// told to the origin in the link hello) [default: 0]
    #[arg(long, env = "CONFAB_RELAY_PORT")]
    pub relay_port: Option<u16>,
    /// TOML file with any of these settings (kebab-case keys)
    #[arg(long, env = "CONFAB_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Made at startup for this machine's names and addresses.
    SelfSigned,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP/WebSocket listen address.
    pub listen: SocketAddr,
    /// UDP media port (0: any free port).
    pub udp_port: u16,
    /// IP announced in ICE candidates instead of the bound one.
    pub public_ip: Option<IpAddr>,
    /// Whether media is also accepted over TCP (ICE-TCP) on the UDP port's number.
    pub ice_tcp: bool,
    /// Whether ICE-TCP is also accepted on the HTTP(S) port.
    pub ice_tcp_http: bool,
    /// Whether rooms hand their send batches to the send thread.
    pub send_thread: bool,
    /// Send threads serving the lanes (`server::transport::send_thread`), 1 or 2.
    pub send_threads: usize,
    /// Whether runs of datagrams to one peer go as one UDP GSO message
    /// (`server::transport::coalesce`).
    pub udp_gso: bool,
    /// Whether the media port's RTCP is queued apart (`server::transport::rtcp_split`).
    pub split_rtcp: bool,
    /// Where HTTPS/WSS gets its certificate, if served.
    pub tls: Option<Tls>,
    /// Room media behaviour.
    pub room: RoomConfig,
    /// Largest signalling message accepted.
    pub max_message_bytes: usize,
    /// Silence after which a signalling session is reaped.
    pub idle_timeout: Duration,
    /// Time allowed between opening the socket and `join`.
    pub join_timeout: Duration,
    /// Secret for join tokens; `None` is open mode.
    pub auth_secret: Option<String>,
    /// Caps and timeouts of the server as a whole (connections, rooms, ICE-TCP).
    pub limits: Limits,
    /// Rooms: ad-hoc creation, expiry, API key.
    pub rooms: RoomsConfig,
    /// Cluster membership (`--redis-url`); `None`: a single node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// Caps and timeouts that protect the server as a whole (the README's "Limits and timeouts").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client may take to send a request's headers; then it is closed (slowloris).
    pub http_header_timeout: Duration,
    /// HTTP(S)/WebSocket connections open at once (lowered at start to fit the open-file
    /// limit); more wait in a small reserve that answers only `/healthz` and `/metrics`.
    pub max_connections: usize,
    /// HTTP(S)/WebSocket connections from one IP address.
    pub max_connections_per_address: usize,
    /// Participants in all rooms together; a join beyond it is refused.
    pub max_participants: usize,
    /// Rooms held, open or kept until they expire; a join or creation that would add another
    /// is refused.
    pub max_rooms: usize,
    /// ICE-TCP connections open at once, the media and HTTP(S) ports together.
    pub ice_tcp_max_connections: usize,
    /// ICE-TCP connections from one IP address.
    pub ice_tcp_max_per_address: usize,
    /// ICE-TCP connections carrying one participant.
    pub ice_tcp_max_per_participant: usize,
    /// Time a new ICE-TCP connection may take to send a first frame naming a participant.
    pub ice_tcp_first_frame: Duration,
    /// Time an ICE-TCP connection may go without STUN (ICE consent) before it is closed.
    pub ice_tcp_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            http_header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_participants: 5_000,
            max_rooms: 10_000,
            ice_tcp_max_connections: 2_048,
            ice_tcp_max_per_address: 32,
            ice_tcp_max_per_participant: 4,
            ice_tcp_first_frame: Duration::from_secs(5),
            ice_tcp_idle: Duration::from_secs(30),
        }
    }
}

/// How rooms come and go.
#[derive(Clone)]
pub struct RoomsConfig {
    /// Whether joining a name that does not exist opens a room.
    pub adhoc: bool,
    /// How long a room's record outlives its last participant.
    pub expiry: Duration,
    /// The room API's bearer key; `None`: no API.
    pub api_key: Option<String>,
    /// Where recordings are written.
    pub recordings_dir: PathBuf,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            adhoc: true,
            expiry: Duration::from_secs(24 * 3600),
            api_key: None,
            recordings_dir: PathBuf::from("recordings"),
        }
    }
}

impl std::fmt::Debug for RoomsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the API key.
        f.debug_struct("RoomsConfig")
            .field("adhoc", &self.adhoc)
            .field("expiry", &self.expiry)
            .field("api", &self.api_key.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            udp_port: 10000,
            public_ip: None,
            ice_tcp: true,
            ice_tcp_http: true,
            send_thread: true,
            send_threads: 2,
            udp_gso: true,
            split_rtcp: true,
            tls: None,
            room: RoomConfig::default(),
            max_message_bytes: 512 * 1024,
            idle_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
            auth_secret: None,
            limits: Limits::default(),
            rooms: RoomsConfig::default(),
            cluster: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The TOML file is not valid.
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Settings {
    /// Merges command line/env (self) over the optional file, over the defaults, and validates.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<Settings>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
            None => Settings::default(),
        };
        let d = Config::default();
        let self_signed = self
            .tls_self_signed
            .or(file.tls_self_signed)
            .unwrap_or(false);
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
            self_signed,
        ) {
            (Some(cert), Some(key), false) => Some(Tls::Files { cert, key }),
            (None, None, true) => Some(Tls::SelfSigned),
            (None, None, false) => None,
            (Some(_), Some(_), true) => {
                return Err(ConfigError::Invalid(
                    "--tls-self-signed and --tls-cert exclude each other".into(),
                ))
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "--tls-cert and --tls-key go together".into(),
                ))
            }
        };
        let config = Config {
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            udp_port: self.udp_port.or(file.udp_port).unwrap_or(d.udp_port),
            public_ip: self.public_ip.or(file.public_ip),
            ice_tcp: self.ice_tcp.or(file.ice_tcp).unwrap_or(d.ice_tcp),
            ice_tcp_http: self
                .ice_tcp_http
                .or(file.ice_tcp_http)
                .unwrap_or(d.ice_tcp_http),
            send_thread: self
                .send_thread
                .or(file.send_thread)
                .unwrap_or_else(|| d.send_thread && send_threads_pay_off()),
            udp_gso: self.udp_gso.or(file.udp_gso).unwrap_or(d.udp_gso),
            split_rtcp: self.split_rtcp.or(file.split_rtcp).unwrap_or(d.split_rtcp),
            send_threads: self
                .send_threads
                .or(file.send_threads)
                .unwrap_or(d.send_threads)
                .clamp(1, 2),
            tls,
            room: RoomConfig {
                max_participants: self
                    .max_participants
                    .or(file.max_participants)
                    .unwrap_or(d.room.max_participants),
                ice_grace: self
                    .ice_grace
                    .or(file.ice_grace)
                    .map(Duration::from_secs)
                    .unwrap_or(d.room.ice_grace),
                media_timeout: self
                    .media_timeout
                    .or(file.media_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(d.room.media_timeout),
                connect_timeout: self
                    .connect_timeout
                    .or(file.connect_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(d.room.connect_timeout),
                bwe: self
                    .bandwidth_estimation
                    .or(file.bandwidth_estimation)
                    .unwrap_or(d.room.bwe),
                send_path: self
                    .send_path
                    .or(file.send_path)
                    .unwrap_or(d.room.send_path),
                ..d.room
            },
            max_message_bytes: self
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(d.max_message_bytes),
            idle_timeout: self
                .idle_timeout
                .or(file.idle_timeout)
                .map(Duration::from_secs)
                .unwrap_or(d.idle_timeout),
            join_timeout: d.join_timeout,
            auth_secret: self.auth_secret.or(file.auth_secret),
            limits: Limits {
                http_header_timeout: self
                    .http_header_timeout
                    .or(file.http_header_timeout)
                    .map(Duration::from_secs)
                    .unwrap_or(d.limits.http_header_timeout),
                max_connections: self
                    .max_connections
                    .or(file.max_connections)
                    .unwrap_or(d.limits.max_connections),
                max_connections_per_address: self
                    .max_connections_per_address
                    .or(file.max_connections_per_address)
                    .unwrap_or(d.limits.max_connections_per_address),
                max_participants: self
                    .max_server_participants
                    .or(file.max_server_participants)
                    .unwrap_or(d.limits.max_participants),
                max_rooms: self
                    .max_rooms
                    .or(file.max_rooms)
                    .unwrap_or(d.limits.max_rooms),
                ..d.limits
            },
            rooms: RoomsConfig {
                adhoc: self
                    .adhoc_rooms
                    .or(file.adhoc_rooms)
                    .unwrap_or(d.rooms.adhoc),
                expiry: self
                    .room_expiry_hours
                    .or(file.room_expiry_hours)
                    .map(|h| Duration::from_secs(h.saturating_mul(3600)))
                    .unwrap_or(d.rooms.expiry),
                api_key: self.api_key.or(file.api_key).filter(|k| !k.is_empty()),
                recordings_dir: self
                    .recordings_dir
                    .or(file.recordings_dir)
                    .unwrap_or(d.rooms.recordings_dir),
            },
            cluster: None,
        };
        let listen = config.listen;
        let config = Config {
            cluster: crate::cluster::ClusterConfig::resolve(
                self.redis_url.or(file.redis_url),
                self.node_id.or(file.node_id),
                self.node_url.or(file.node_url),
                self.cluster_secret.or(file.cluster_secret),
                listen,
            )?
            .map(|c| {
                c.with_relay(
                    self.max_audience_per_node.or(file.max_audience_per_node),
                    self.relay_port.or(file.relay_port),
                )
            }),
            ..config
        };
        config.validate()?;
        Ok(config)
    }
}

/// Send threads overlap the kernel's sends with the rooms' sealing, which needs a second CPU:
/// on one (an affinity mask, a cgroup quota) they only preempt the rooms they serve (1 → 100
/// heavy pinned to one CPU: +8.6 % forwarded per CPU-second without them, README).
fn send_threads_pay_off() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        tracing::info!(
            "one CPU available: rooms send their own batches (--send-thread true overrides)"
        );
    }
    cpus >= 2
}

impl Config {
    /// The address clients are told for a socket bound at `local`: the public IP in its place
    /// when one is configured (a server behind NAT), the port unchanged.
    pub fn announced(&self, local: SocketAddr) -> SocketAddr {
        match self.public_ip {
            Some(ip) => SocketAddr::new(ip, local.port()),
            None => local,
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.room.max_participants == 0 {
            return Err(ConfigError::Invalid(
                "max-participants must be at least 1".into(),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(ConfigError::Invalid(
                "max-message-bytes must be between 1024 and 16777216".into(),
            ));
        }
        if self.rooms.api_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(ConfigError::Invalid(
                "api-key must be at least 16 characters".into(),
            ));
        }
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "idle-timeout must be at least 1 s".into(),
            ));
        }
        let l = &self.limits;
        if l.http_header_timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "http-header-timeout must be at least 1 s".into(),
            ));
        }
        for (name, v) in [
            ("max-connections", l.max_connections),
            ("max-connections-per-address", l.max_connections_per_address),
            ("max-server-participants", l.max_participants),
            ("max-rooms", l.max_rooms),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
