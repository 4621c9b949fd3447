//! Soak: a long stretch of ordinary room life (join/leave churn, chat, Q&A, raised hands,
//! renegotiations) at bounded rates, with the server's memory sampled throughout; it must
//! come back to its baseline, and no resident session may be lost.
//!
//! Each room has `resident` bots that stay for the whole run (they publish, subscribe, and
//! are checked for lost sessions: a bot whose task ended or whose received packets stopped
//! growing between two samples) and `churners` places taken by bots that join, stay about
//! `stay`, and leave, alternately publishing (every resident renegotiates to subscribe, and
//! again when the track goes) and only watching. The baseline is the server's RSS once the
//! residents are in and settled; the end is its RSS after the churn stopped and the server
//! had `settle` to reap, with the residents still in: the same room population as the
//! baseline.

use crate::bot::{Bot, BotCmd, BotConfig, StreamShape};
use crate::load::probe::{self, proc_sample};
use crate::protocol::{QuestionId, ServerMsg};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Most rooms, and most bots in one room, a soak may start.
pub const MAX_ROOMS: usize = 20;
/// Most bots in one room (residents plus churn places).
pub const MAX_ROOM_BOTS: usize = 50;
/// Highest rate of chat / Q&A / hand / ICE-restart actions, per second over all rooms.
pub const MAX_ACTIONS_PER_SEC: f64 = 50.0;
/// Longest soak.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// How long one join or leave may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// What to soak, how hard and for how long.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server's `ws://host:port/ws`.
    pub url: String,
    /// The server's pid, for RSS from `/proc` (without it memory is not measured).
    pub server_pid: Option<u32>,
    /// Time with churn running (default 300 s).
    pub duration: Duration,
    /// Rooms (default 2).
    pub rooms: usize,
    /// Bots per room that stay throughout (default 3).
    pub resident: usize,
    /// Places per room taken by bots that come and go (default 3).
    pub churners: usize,
    /// How long a churning bot stays, on average (default 10 s; ±50 %).
    pub stay: Duration,
    /// Chat, Q&A, hand and ICE-restart actions per second over all rooms (default 2).
    pub actions_per_sec: f64,
    /// How often RSS is sampled (default 5 s).
    pub sample_every: Duration,
    /// Wait after the residents joined, and after the churn stopped, before measuring
    /// (default 10 s).
    pub settle: Duration,
    /// Room names start with this.
    pub room_prefix: String,
    /// The bots' streams.
    pub shape: StreamShape,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl SoakConfig {
    /// Defaults against `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SoakConfig {
            url: url.into(),
            server_pid: None,
            duration: Duration::from_secs(300),
            rooms: 2,
            resident: 3,
            churners: 3,
            stay: Duration::from_secs(10),
            actions_per_sec: 2.0,
            sample_every: Duration::from_secs(5),
            settle: Duration::from_secs(10),
            room_prefix: "soak".into(),
            shape: StreamShape::default(),
            progress: false,
        }
    }

    /// Checks the limits above.
    pub fn validate(&self) -> Result<(), String> {
        if self.rooms == 0 || self.rooms > MAX_ROOMS {
            return Err(format!("rooms must be 1..={MAX_ROOMS}"));
        }
        if self.resident == 0 || self.resident + self.churners > MAX_ROOM_BOTS {
            return Err(format!(
                "1 or more residents, and at most {MAX_ROOM_BOTS} bots per room"
            ));
        }
        if !(0.0..=MAX_ACTIONS_PER_SEC).contains(&self.actions_per_sec) {
            return Err(format!(
                "actions per second must be 0..={MAX_ACTIONS_PER_SEC}"
            ));
        }
        if self.duration > MAX_DURATION || self.stay.is_zero() || self.sample_every.is_zero() {
            return Err("duration at most 24 h; stay and sample interval above zero".into());
        }
        Ok(())
    }
}

/// One RSS sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RssSample {
    /// Seconds since the soak started.
    pub at_s: f64,
    /// The server's resident set, KiB.
    pub rss_kib: u64,
    /// `confab_participants` at that moment.
    pub participants: f64,
}

/// What a soak saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SoakReport {
    /// Seconds of churn.
    pub churn_s: f64,
    /// Churning joins that succeeded.
    pub joins: u64,
    /// Churning joins refused or timed out.
    pub join_failures: u64,
    /// Churning bots that left.
    pub leaves: u64,
    /// Chat messages sent.
    pub chats: u64,
    /// Questions asked.
    pub questions: u64,
    /// Votes toggled.
    pub votes: u64,
    /// Hands raised or lowered.
    pub hands: u64,
    /// ICE restarts asked of residents.
    pub ice_restarts: u64,
    /// Answers residents received (each a completed renegotiation).
    pub renegotiations: u64,
    /// Residents whose session ended or whose media stopped.
    pub lost_sessions: u64,
    /// Why each lost resident was lost, as far as it knows: when, its task's end, and the
    /// last error the server sent it.
    pub lost_reasons: Vec<String>,
    /// Errors the server sent residents (rate limits included).
    pub errors_to_residents: u64,
    /// Whether the server process went away or stopped answering `/healthz`.
    pub crashed: bool,
    /// RSS before any bot joined, KiB.
    pub rss_start_kib: Option<u64>,
    /// RSS with the residents in and settled, before the churn.
    pub rss_baseline_kib: Option<u64>,
    /// Highest RSS seen.
    pub rss_peak_kib: Option<u64>,
    /// RSS after the churn stopped and the server settled (residents still in).
    pub rss_end_kib: Option<u64>,
    /// Every sample.
    pub samples: Vec<RssSample>,
}

/// How far above the baseline the end may be and still count as returned: a fifth of the
/// baseline or 16 MiB, whichever is more (allocator caches, a grown hash table or two).
pub fn allowed_growth_kib(baseline_kib: u64) -> u64 {
    (baseline_kib / 5).max(16 * 1024)
}

impl SoakReport {
    /// Whether memory came back to its baseline; `None` when not measured.
    pub fn memory_returned(&self) -> Option<bool> {
        let (b, e) = (self.rss_baseline_kib?, self.rss_end_kib?);
        Some(e <= b + allowed_growth_kib(b))
    }

    /// No crash, no lost session, no failed join, and memory back (when measured).
    pub fn is_clean(&self) -> bool {
        !self.crashed
            && self.lost_sessions == 0
            && self.join_failures == 0
            && self.memory_returned() != Some(false)
    }

    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mib =
            |k: Option<u64>| k.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let mut s = String::new();
        s += &format!("soak: {:.0} s of churn\n", self.churn_s);
        s += &format!(
            "  joins {} (failed {}), leaves {}, renegotiations {}\n",
            self.joins, self.join_failures, self.leaves, self.renegotiations
        );
        s += &format!(
            "  chat {}, questions {}, votes {}, hands {}, ICE restarts {}, errors to residents {}\n",
            self.chats, self.questions, self.votes, self.hands, self.ice_restarts, self.errors_to_residents
        );
        s += &format!(
            "  server RSS: start {}, baseline {}, peak {}, end {}\n",
            mib(self.rss_start_kib),
            mib(self.rss_baseline_kib),
            mib(self.rss_peak_kib),
            mib(self.rss_end_kib)
        );
        s += &format!(
            "  memory back to baseline: {}\n",
            match self.memory_returned() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not measured (no server pid)",
            }
        );
        s += &format!(
            "  crashed: {}, lost sessions: {}\n",
            if self.crashed { "YES" } else { "no" },
            self.lost_sessions
        );
        s
    }
}

/// A resident bot and what it was last seen doing.
struct Resident {
    room: usize,
    bot: Bot,
    packets: u64,
    hand: bool,
    lost: bool,
    /// When it was found lost, seconds into the soak.
    lost_at_s: f64,
    /// The last error the server sent it.
    last_error: Option<String>,
}

/// A churning bot, or its join still under way.
enum Place {
    Joining(JoinHandle<Option<Bot>>),
    In(Bot, Instant),
}

fn total_packets(bot: &Bot) -> u64 {
    let s = bot.stats();
    s.tracks.values().map(|t| t.packets).sum::<u64>()
        + s.undecrypted.values().map(|t| t.packets).sum::<u64>()
}

/// Runs a soak; errors only when it cannot start (the residents cannot join).
pub async fn run(config: &SoakConfig) -> Result<SoakReport, String> {
    config.validate()?;
    let t0 = Instant::now();
    let host = probe::metrics_host(&config.url);
    let mut report = SoakReport {
        rss_start_kib: config.server_pid.and_then(proc_sample).map(|p| p.rss_kib),
        ..SoakReport::default()
    };
    let room = |r: usize| format!("{}{r}", config.room_prefix);
    let mut residents = vec![];
    for r in 0..config.rooms {
        for i in 0..config.resident {
            let mut b = BotConfig::new(&config.url, room(r), format!("resident{i}"));
            b.shape = config.shape;
            let bot = tokio::time::timeout(JOIN_TIMEOUT, Bot::join(b))
                .await
                .map_err(|_| format!("resident{i} of {} timed out joining", room(r)))?
                .map_err(|e| format!("resident{i} of {} could not join: {e}", room(r)))?;
            residents.push(Resident {
                room: r,
                bot,
                packets: 0,
                hand: false,
                lost: false,
                lost_at_s: 0.0,
                last_error: None,
            });
        }
    }
    tokio::time::sleep(config.settle).await;
    for r in &mut residents {
        r.packets = total_packets(&r.bot);
    }
    let mut sampler = Sampler::new(config, host.clone(), t0);
    sampler.sample(&mut report).await;
    report.rss_baseline_kib = report.samples.last().map(|s| s.rss_kib);
    if config.progress {
        eprintln!(
            "soak: residents in; baseline {:?} KiB",
            report.rss_baseline_kib
        );
    }

    let mut rng = StdRng::seed_from_u64(0x50A4);
    let mut places: Vec<Vec<Option<Place>>> = (0..config.rooms)
        .map(|_| (0..config.churners).map(|_| None).collect())
        .collect();
    let mut questions: Vec<VecDeque<QuestionId>> = vec![VecDeque::new(); config.rooms];
    let mut leaving: Vec<JoinHandle<()>> = vec![];
    let mut publish_next = true;
    let mut action_credit = 0.0;
    let churn_start = Instant::now();
    let mut last_tick = churn_start;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while churn_start.elapsed() < config.duration && !report.crashed {
        tick.tick().await;
        let now = Instant::now();
        // Churn: fill empty places, finish joins, send away those whose stay is over.
        for (r, room_places) in places.iter_mut().enumerate() {
            for place in room_places.iter_mut() {
                *place = match place.take() {
                    None => {
                        let mut b = BotConfig::new(&config.url, room(r), "churner");
                        b.publish = publish_next;
                        publish_next = !publish_next;
                        b.decrypt = false;
                        b.shape = config.shape;
                        Some(Place::Joining(tokio::spawn(async move {
                            tokio::time::timeout(JOIN_TIMEOUT, Bot::join(b))
                                .await
                                .ok()?
                                .ok()
                        })))
                    }
                    Some(Place::Joining(h)) if h.is_finished() => match h.await.ok().flatten() {
                        Some(bot) => {
                            report.joins += 1;
                            let stay = config.stay.mul_f64(rng.gen_range(0.5..1.5));
                            Some(Place::In(bot, now + stay))
                        }
                        None => {
                            report.join_failures += 1;
                            None
                        }
                    },
                    Some(Place::In(mut bot, until)) => {
                        while bot.next_event(Duration::ZERO).await.is_some() {}
                        if now >= until {
                            report.leaves += 1;
                            leaving.push(tokio::spawn(async move {
                                let _ = bot.leave().await;
                            }));
                            None
                        } else {
                            Some(Place::In(bot, until))
                        }
                    }
                    other => other,
                };
            }
        }
        leaving.retain(|h| !h.is_finished());
        // Talk: chat, questions, votes, hands, ICE restarts at the configured rate.
        action_credit += now.duration_since(last_tick).as_secs_f64() * config.actions_per_sec;
        last_tick = now;
        while action_credit >= 1.0 {
            action_credit -= 1.0;
            let i = rng.gen_range(0..residents.len());
            let r = &mut residents[i];
            let raw = match rng.gen_range(0..10) {
                0..=3 => {
                    report.chats += 1;
                    format!(r#"{{"type":"chat","text":"soak chat {}"}}"#, report.chats)
                }
                4 => {
                    report.questions += 1;
                    format!(
                        r#"{{"type":"ask","text":"soak question {}"}}"#,
                        report.questions
                    )
                }
                5..=7 => {
                    match questions[r.room].get(rng.gen_range(0..questions[r.room].len().max(1))) {
                        Some(q) => {
                            report.votes += 1;
                            let up = rng.gen_bool(0.5);
                            format!(r#"{{"type":"vote","question":{},"up":{up}}}"#, q.0)
                        }
                        None => continue,
                    }
                }
                8 => {
                    report.hands += 1;
                    r.hand = !r.hand;
                    format!(r#"{{"type":"raise_hand","raised":{}}}"#, r.hand)
                }
                _ => {
                    report.ice_restarts += 1;
                    r.bot.command(BotCmd::RestartIce);
                    continue;
                }
            };
            r.bot.command(BotCmd::SendRaw(raw));
        }
        // Residents' events: question ids to vote on, answers, errors (bounded queues).
        for r in &mut residents {
            while let Some(ev) = r.bot.next_event(Duration::ZERO).await {
                match ev {
                    ServerMsg::Question { question } => {
                        let ids = &mut questions[r.room];
                        // Votes go to the latest few questions: a bounded list to pick from.
                        if !ids.contains(&question.id) {
                            if ids.len() >= 64 {
                                ids.pop_front();
                            }
                            ids.push_back(question.id);
                        }
                    }
                    ServerMsg::Answer { .. } => report.renegotiations += 1,
                    ServerMsg::Error { code, message } => {
                        report.errors_to_residents += 1;
                        r.last_error = Some(format!("{code:?}: {message}"));
                    }
                    _ => {}
                }
            }
        }
        if sampler.due() {
            sampler.sample(&mut report).await;
            check_residents(&mut residents, &mut report, t0);
            if config.progress {
                if let Some(s) = report.samples.last() {
                    eprintln!(
                        "soak: {:>5.0} s  rss {:>7.1} MiB  participants {:>3}  joins {}  lost {}",
                        s.at_s,
                        s.rss_kib as f64 / 1024.0,
                        s.participants,
                        report.joins,
                        report.lost_sessions
                    );
                }
            }
        }
    }
    report.churn_s = churn_start.elapsed().as_secs_f64();
    // Stop the churn: everyone who came leaves, the server gets time to reap.
    for place in places.into_iter().flatten().flatten() {
        let bot = match place {
            Place::In(bot, _) => Some(bot),
            Place::Joining(h) => h.await.ok().flatten(),
        };
        if let Some(bot) = bot {
            report.leaves += 1;
            leaving.push(tokio::spawn(async move {
                let _ = bot.leave().await;
            }));
        }
    }
    for h in leaving {
        let _ = h.await;
    }
    let settle_end = Instant::now() + config.settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for r in &mut residents {
            while r.bot.next_event(Duration::ZERO).await.is_some() {}
        }
    }
    sampler.sample(&mut report).await;
    check_residents(&mut residents, &mut report, t0);
    report.rss_end_kib = report.samples.last().map(|s| s.rss_kib);
    for r in residents {
        let name = format!("{}{} resident", config.room_prefix, r.room);
        let (lost, at, last_error) = (r.lost, r.lost_at_s, r.last_error);
        let ended = r.bot.leave().await;
        if lost {
            let why = format!(
                "{name} lost at {at:.0} s: task {}, last server error {}",
                match ended {
                    Ok(()) => "still running or ended cleanly".to_string(),
                    Err(e) => e.to_string(),
                },
                last_error.as_deref().unwrap_or("none")
            );
            if config.progress {
                eprintln!("soak: {why}");
            }
            report.lost_reasons.push(why);
        }
    }
    Ok(report)
}

/// A resident is lost when its bot stopped or received nothing since the last check.
fn check_residents(residents: &mut [Resident], report: &mut SoakReport, t0: Instant) {
    for r in residents.iter_mut().filter(|r| !r.lost) {
        let packets = total_packets(&r.bot);
        if r.bot.is_finished() || packets <= r.packets {
            r.lost = true;
            r.lost_at_s = t0.elapsed().as_secs_f64();
            report.lost_sessions += 1;
        }
        r.packets = packets;
    }
}

/// Samples the server's RSS and health on a schedule.
struct Sampler {
    pid: Option<u32>,
    host: Option<String>,
    every: Duration,
    next: Instant,
    t0: Instant,
    unhealthy: u32,
}

impl Sampler {
    fn new(config: &SoakConfig, host: Option<String>, t0: Instant) -> Self {
        Sampler {
            pid: config.server_pid,
            host,
            every: config.sample_every,
            next: Instant::now() + config.sample_every,
            t0,
            unhealthy: 0,
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    async fn sample(&mut self, report: &mut SoakReport) {
        self.next = Instant::now() + self.every;
        let participants = match &self.host {
            Some(h) => probe::scrape(h).await.map_or(-1.0, |c| c.participants),
            None => -1.0,
        };
        // Three failed health probes in a row (each bounded to 1 s) count as a crash.
        match &self.host {
            Some(h) if !probe::healthy(h).await => self.unhealthy += 1,
            _ => self.unhealthy = 0,
        }
        if self.unhealthy >= 3 {
            report.crashed = true;
        }
        let Some(pid) = self.pid else { return };
        let Some(p) = proc_sample(pid) else {
            report.crashed = true;
            return;
        };
        report.rss_peak_kib = Some(report.rss_peak_kib.unwrap_or(0).max(p.rss_kib));
        report.samples.push(RssSample {
            at_s: self.t0.elapsed().as_secs_f64(),
            rss_kib: p.rss_kib,
            participants,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_returned_allows_a_bounded_growth() {
        let mut r = SoakReport {
            rss_baseline_kib: Some(100 * 1024),
            rss_end_kib: Some(110 * 1024),
            ..SoakReport::default()
        };
        assert_eq!(r.memory_returned(), Some(true));
        assert!(r.is_clean());
        r.rss_end_kib = Some(130 * 1024);
        assert_eq!(r.memory_returned(), Some(false));
        assert!(!r.is_clean());
        r.rss_end_kib = None;
        assert_eq!(r.memory_returned(), None);
        r.lost_sessions = 1;
        assert!(!r.is_clean());
    }

    #[test]
    fn limits_are_checked() {
        let mut c = SoakConfig::new("ws://127.0.0.1:1/ws");
        assert!(c.validate().is_ok());
        c.rooms = MAX_ROOMS + 1;
        assert!(c.validate().is_err());
        c.rooms = 1;
        c.actions_per_sec = MAX_ACTIONS_PER_SEC * 2.0;
        assert!(c.validate().is_err());
    }
}
