//! A room full of talking heads: bots that publish a camera and a microphone and receive
//! nothing, so a client (a browser, a test) can be tried in a large meeting on one machine.
//! It holds the room for a while and leaves; it measures nothing.

use crate::bot::{Bot, BotConfig, StreamShape};
use std::time::Duration;

/// −dBov of a bot that talks, and of one that sits in a quiet room.
const TALKING: i8 = 25;
const SILENT: i8 = 110;

/// What to fill and for how long.
#[derive(Debug, Clone)]
pub struct CrowdConfig {
    /// Signalling URL.
    pub url: String,
    /// Room to fill (a meeting: the bots join on stage).
    pub room: String,
    /// Bots.
    pub size: usize,
    /// How many of them talk (the first ones); the rest are silent.
    pub talking: usize,
    /// How long they stay.
    pub hold: Duration,
    /// Their streams (the audio level is set per bot).
    pub shape: StreamShape,
}

/// Joins the crowd one by one (named `crowd0`, `crowd1`, …), holds, then leaves.
pub async fn run(config: &CrowdConfig, progress: bool) -> Result<(), String> {
    let mut bots = Vec::with_capacity(config.size);
    for i in 0..config.size {
        let mut bot = BotConfig::new(&config.url, &config.room, format!("crowd{i}"));
        bot.subscribe = false;
        bot.decrypt = false;
        bot.shape = StreamShape {
            audio_level: if i < config.talking { TALKING } else { SILENT },
            ..config.shape
        };
        let joined = Bot::join(bot)
            .await
            .map_err(|e| format!("crowd{i} could not join: {e}"))?;
        bots.push(joined);
    }
    if progress {
        eprintln!(
            "crowd: {} in room {} ({} talking) for {} s",
            config.size,
            config.room,
            config.talking,
            config.hold.as_secs()
        );
    }
    tokio::time::sleep(config.hold).await;
    for bot in bots {
        let _ = bot.leave().await;
    }
    Ok(())
}
