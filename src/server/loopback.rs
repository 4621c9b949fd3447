//! A real server on loopback for the shell's unit tests (`isolation`, `stall`), which reach
//! into its rooms through messages that exist only in test builds.

use super::{Bound, Shared};
use crate::bot::BotStats;
use crate::config::Config;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A served server; it shuts down when dropped.
pub(super) struct Loopback {
    /// The WebSocket URL bots join at.
    pub url: String,
    pub shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Loopback {
    /// Serves `tweak`ed defaults on ephemeral loopback ports.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Loopback {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            udp_port: 0,
            ..Config::default()
        };
        tweak(&mut config);
        let bound = Bound::bind(config).await.expect("bind");
        let url = format!("ws://{}/ws", bound.http_addr());
        let shared = bound.shared();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Loopback {
            url,
            shared,
            _stop: stop,
        }
    }
}

/// RTP packets a bot received, decrypted or only counted.
pub(super) fn packets(s: &BotStats) -> u64 {
    s.tracks
        .values()
        .chain(s.undecrypted.values())
        .map(|t| t.packets)
        .sum()
}
