//! Starting a real server on loopback ports for a test.

use confab::{Bound, Config};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

/// A running server; stops when dropped.
pub struct TestServer {
    pub http: SocketAddr,
    pub udp: SocketAddr,
    pub shared: std::sync::Arc<confab::server::Shared>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            udp_port: 0,
            ..Config::default()
        };
        config.room.ice_grace = Duration::from_secs(2);
        config.room.media_timeout = Duration::from_secs(3);
        tweak(&mut config);
        let bound = Bound::bind(config).await.expect("bind");
        let http = bound.http_addr();
        let udp = bound.udp_addrs()[0];
        let shared = bound.shared();
        let (stop, rx) = oneshot::channel();
        tokio::spawn(bound.serve(async {
            let _ = rx.await;
        }));
        TestServer {
            http,
            udp,
            shared,
            _stop: stop,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = self.shared.metrics.render();
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// A bot config for this server.
pub fn bot(server: &TestServer, room: &str, name: &str) -> confab::bot::BotConfig {
    confab::bot::BotConfig::new(server.ws_url(), room, name)
}
