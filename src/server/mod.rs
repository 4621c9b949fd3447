//! The I/O shell: sockets, tasks and HTTP around the sans-IO media core.

pub mod api;
mod edge_offers;
pub mod forward_delay;
pub mod gate;
pub mod http;
pub mod inbox;
#[cfg(test)]
mod isolation;
pub mod limits;
#[cfg(test)]
mod loopback;
pub mod metrics;
pub mod outbound;
pub mod recordings;
mod recordings_api;
mod relay_room;
pub mod room_task;
pub mod rooms;
pub mod session;
#[cfg(test)]
mod stall;
pub mod tls;
pub mod transport;

use crate::config::Config;
use metrics::Metrics;
use rooms::Rooms;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use transport::media_socket::MediaSocket;
use transport::{tcp, udp, web_port, Transport};

/// What every task shares. Nothing here is locked per packet.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// Open rooms.
    pub rooms: Rooms,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The ICE candidates every participant announces.
    pub candidates: Vec<SocketAddr>,
    /// Next participant id.
    pub next_participant: AtomicU64,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Join-token checker.
    pub auth: crate::auth::Auth,
    /// Media sockets and the routing table.
    pub transport: Arc<Transport>,
    /// The recordings directory and download links.
    pub recordings: recordings::Recordings,
    /// Cluster membership (`--redis-url`); `None`: a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The TLS certificate or key could not be loaded.
    #[error("cannot load TLS certificate/key: {0}")]
    Tls(std::io::Error),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The cluster settings could not be used.
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A server with its sockets bound, not yet serving.
pub struct Bound {
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown_tx: watch::Sender<bool>,
    receivers: Vec<(Arc<MediaSocket>, SocketAddr)>,
    tcp_listeners: Vec<(TcpListener, SocketAddr)>,
    /// The cluster relay's socket (edge side), in a cluster.
    relay: Option<Arc<UdpSocket>>,
}

impl Bound {
    /// Binds the HTTP listener and the UDP media port.
    pub async fn bind(mut config: Config) -> Result<Bound, StartError> {
        if let Some(open_files) = limits::raise_open_files() {
            limits::fit_to_open_files(&mut config.limits, open_files);
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Bind(config.listen, e))?;
        let listen_ip = config.listen.ip();
        let bind_ips: Vec<IpAddr> = if listen_ip.is_unspecified() && config.public_ip.is_none() {
            local_ipv4s()
        } else {
            vec![listen_ip]
        };
        let mut sockets = vec![];
        let mut port = config.udp_port;
        for ip in bind_ips {
            let addr = SocketAddr::new(ip, port);
            let buffer = transport::egress::SOCKET_BUFFER;
            let socket = MediaSocket::bind_split(addr, buffer, config.split_rtcp)
                .map_err(|e| StartError::Bind(addr, e))?;
            let local = socket.local_addr().map_err(|e| StartError::Bind(addr, e))?;
            // Every interface shares the first socket's port: one port for all media.
            port = local.port();
            let announced = config.announced(local);
            sockets.push((announced, Arc::new(socket)));
        }
        let tcp_listeners = if config.ice_tcp {
            bind_ice_tcp(&sockets).await
        } else {
            vec![]
        };
        config.room.ice_tcp = !tcp_listeners.is_empty();
        if config.ice_tcp && config.ice_tcp_http {
            let http = listener
                .local_addr()
                .map_err(|e| StartError::Bind(config.listen, e))?;
            config.room.ice_tcp_http_port = Some(http.port());
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        let receivers = sockets
            .iter()
            .map(|(announced, socket)| (Arc::clone(socket), *announced))
            .collect();
        let candidates: Vec<SocketAddr> = sockets.iter().map(|(a, _)| *a).collect();
        let cluster = match config.cluster.clone() {
            Some(c) => Some(Arc::new(crate::cluster::Cluster::new(
                c,
                candidates.clone(),
            )?)),
            None => None,
        };
        let relay = match &cluster {
            Some(c) => {
                // Bound where the HTTP listener is (every interface if it is), announced at
                // the media address origins already reach.
                let announced = candidates.first().map_or(listen_ip, |a| a.ip());
                let ip = listen_ip;
                let bind = SocketAddr::new(ip, c.config.relay_port);
                Some(
                    c.bind_relay(ip, announced)
                        .await
                        .map_err(|e| StartError::Bind(bind, e))?,
                )
            }
            None => None,
        };
        let auth = crate::auth::Auth::new(config.auth_secret.as_deref());
        let metrics = Arc::new(Metrics::default());
        let transport = Arc::new(Transport::new(
            config.clone(),
            sockets,
            Arc::clone(&metrics),
            shutdown.clone(),
        ));
        let shared = Arc::new(Shared {
            recordings: recordings::Recordings::new(config.rooms.recordings_dir.clone()),
            auth,
            config,
            rooms: Rooms::default(),
            metrics,
            candidates,
            next_participant: AtomicU64::new(1),
            shutdown,
            transport,
            cluster,
        });
        Ok(Bound {
            shared,
            listener,
            shutdown_tx,
            receivers,
            tcp_listeners,
            relay,
        })
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// The media addresses announced to clients.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.shared.candidates.clone()
    }

    /// The shared state (for tests and metrics).
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves until `shutdown` completes, then ends every session cleanly.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Bound {
            shared,
            listener,
            shutdown_tx,
            receivers,
            tcp_listeners,
            relay,
        } = self;
        for (listener, announced) in tcp_listeners {
            let t = Arc::clone(&shared.transport);
            tokio::spawn(tcp::run_listener(listener, announced, t));
        }
        for (socket, announced) in receivers {
            let t = Arc::clone(&shared.transport);
            tokio::spawn(udp::run_receiver(socket, announced, t));
        }
        let app = http::router(Arc::clone(&shared));
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        if let Some(cluster) = &shared.cluster {
            tokio::spawn(Arc::clone(cluster).run(Arc::clone(&shared)));
            tokio::spawn(Arc::clone(cluster).publish_counts(shared.shutdown.clone()));
            if let Some(socket) = relay {
                tokio::spawn(Arc::clone(cluster).run_relay(socket, shared.shutdown.clone()));
            }
        }
        let leaving = Arc::clone(&shared);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            if let Some(cluster) = &leaving.cluster {
                // Its rooms are placed again as their participants rejoin through other nodes.
                cluster.leave(&leaving).await;
            }
            let _ = shutdown_tx.send(true);
            h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        });
        let gate = |inner| admission(inner, &shared);
        let tls_gate = |inner| admission(inner, &shared);
        let std_listener = listener.into_std().map_err(StartError::Serve)?;
        let header_timeout = shared.config.limits.http_header_timeout;
        let app = app.into_make_service();
        match shared.config.tls.clone() {
            None => {
                let mut server = axum_server::from_tcp(std_listener).map(gate);
                http_limits(server.http_builder(), header_timeout);
                server.handle(handle).serve(app).await
            }
            Some(source) => {
                let tls = tls::rustls_config(&source, &shared.candidates)
                    .await
                    .map_err(StartError::Tls)?;
                let mut server = axum_server::from_tcp_rustls(std_listener, tls).map(tls_gate);
                http_limits(server.http_builder(), header_timeout);
                server.handle(handle).serve(app).await
            }
        }
        .map_err(StartError::Serve)
    }
}

/// The web port's acceptor chain: connection caps, then ICE-TCP sniffing, then `inner`.
fn admission<A>(inner: A, shared: &Arc<Shared>) -> gate::Gate<web_port::SniffAcceptor<A>> {
    let sniff = shared
        .config
        .room
        .ice_tcp_http_port
        .map(|_| Arc::clone(&shared.transport));
    let limits = &shared.config.limits;
    gate::Gate::new(
        web_port::SniffAcceptor::new(inner, sniff),
        limits.max_connections,
        limits.max_connections_per_address,
        shared
            .config
            .cluster
            .as_ref()
            .map(|c| Arc::from(c.secret.as_str())),
        http::health_router(Arc::clone(shared)),
        Arc::clone(&shared.metrics),
        limits.http_header_timeout,
    )
}

/// The header-read timeout closes a client that trickles its request (slowloris); the gate
/// bounds the first request of both protocols (see [`gate`]), this every later HTTP/1 one.
/// HTTP/2 is kept (a proxy in front may speak it) with fewer streams than hyper's default,
/// its 16 KiB header list, and pings that drop a peer gone silent.
fn http_limits(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: std::time::Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .keep_alive_interval(HTTP2_PING)
        .keep_alive_timeout(header_timeout);
}

/// Requests in flight on one HTTP/2 connection (hyper's default: 200).
const HTTP2_MAX_STREAMS: u32 = 32;
/// How often an HTTP/2 connection is pinged; unanswered within the header timeout, it closes.
const HTTP2_PING: std::time::Duration = std::time::Duration::from_secs(30);

/// A TCP listener beside each UDP socket, on the same address and port number. ICE-TCP is a
/// fallback: when a port is taken, the server runs without it rather than not at all.
async fn bind_ice_tcp(
    sockets: &[(SocketAddr, Arc<MediaSocket>)],
) -> Vec<(TcpListener, SocketAddr)> {
    let mut listeners = vec![];
    for (announced, socket) in sockets {
        let Ok(local) = socket.local_addr() else {
            return vec![];
        };
        match TcpListener::bind(local).await {
            Ok(l) => listeners.push((l, *announced)),
            Err(e) => {
                tracing::warn!(%local, error = %e, "ICE-TCP disabled: cannot listen on the media port over TCP");
                return vec![];
            }
        }
    }
    listeners
}

/// Every IPv4 address of this machine's interfaces, loopback last; loopback alone if none.
fn local_ipv4s() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .collect();
    ips.sort();
    ips.dedup();
    ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    ips
}
