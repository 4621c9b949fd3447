//! Room name → room task, and the records rooms leave behind: a room's task starts on its first
//! join and ends when it empties; its record (mode, password, lock, bans, keys) stays until it
//! expires, so nothing a host set vanishes with the last participant.

use super::inbox::MEDIA_QUEUE;
use super::outbound::OutboundTx;
use super::room_task::{self, RoomMsg};
use super::Shared;
use crate::conference::record::{Origin, RoomRecord};
use crate::conference::{ApiCall, ApiReply, Conference, JoinRequest};
use crate::media::Router;
use crate::protocol::{ErrorCode, RoomMode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Signalling queued toward one room before a join is refused as "overloaded" (media has its
/// own inbox, [`MEDIA_QUEUE`], so datagrams never fill this one).
const ROOM_QUEUE: usize = 8192;

/// How long the room API waits for a live room's answer.
const API_WAIT: Duration = Duration::from_secs(2);

/// Expired records are looked for at most this often (each look is a pass over all rooms).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Handle {
    tx: mpsc::Sender<RoomMsg>,
    media: super::inbox::MediaTx,
    serial: u64,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Handle>,
    /// Records of rooms nobody is in: created and not yet used, or emptied and not expired.
    kept: HashMap<String, RoomRecord>,
    last_sweep: Option<Instant>,
}

impl Inner {
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.kept.retain(|name, r| {
            let keep = !r.expired(now, ttl, false);
            if !keep {
                tracing::info!(room = name.as_str(), "room expired");
            }
            keep
        });
    }

    fn count(&self) -> usize {
        self.live.len() + self.kept.len()
    }
}

/// A room made ahead of its meeting: its name and the keys for its links.
#[derive(Debug, Clone)]
pub struct Created {
    /// The room's name.
    pub room: String,
    /// Meeting or webinar.
    pub mode: RoomMode,
    /// Key of the host link.
    pub host_key: String,
    /// Key of the presenter link.
    pub presenter_key: String,
}

/// Why a room could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The name is taken (live or kept).
    #[error("A room with this name exists.")]
    Exists,
    /// The server holds as many rooms as it may.
    #[error("The server holds as many rooms as it may; try again later.")]
    Full,
    /// The name breaks the rules.
    #[error("Room names are 1–64 letters, digits, '-', '_' or '.'.")]
    InvalidName,
}

/// One room as the room API lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its name.
    pub room: String,
    /// Meeting or webinar, as last known (a live room may have changed it).
    pub live: bool,
    /// Participants in it, and waiting.
    pub participants: usize,
    /// Waiting in the lobby.
    pub waiting: usize,
}

/// The registry of rooms. Locked on join, on a room's exit and by the API, never per packet.
#[derive(Default)]
pub struct Rooms {
    inner: Mutex<Inner>,
    next_serial: std::sync::atomic::AtomicU64,
}

fn unavailable() -> (ErrorCode, String) {
    (
        ErrorCode::Internal,
        "Room registry unavailable.".to_string(),
    )
}

impl Rooms {
    /// Hands a join to the room, opening it first if needed. Returns the room's sender.
    pub fn join(
        &self,
        shared: &Arc<Shared>,
        room: &str,
        request: JoinRequest,
        tx: OutboundTx,
        elsewhere: bool,
    ) -> Result<mpsc::Sender<RoomMsg>, (ErrorCode, String)> {
        let cfg = &shared.config.rooms;
        let limits = &shared.config.limits;
        let mut inner = self.inner.lock().map_err(|_| unavailable())?;
        if shared.metrics.participants.get() >= limits.max_participants as i64 {
            shared.metrics.joins_refused_server.inc();
            return Err((
                ErrorCode::RoomFull,
                "The server is full; try again later.".into(),
            ));
        }
        let now = Instant::now();
        inner.sweep(now, cfg.expiry);
        let mut msg = RoomMsg::Join {
            request,
            tx,
            elsewhere,
        };
        for _ in 0..2 {
            if !inner.live.contains_key(room) {
                let record = match inner.kept.remove(room) {
                    Some(r) => r,
                    // An edge room: audience only, its authority is the origin's room.
                    None if crate::cluster::edge::relayed_room(room).is_some() => {
                        RoomRecord::new(RoomMode::Webinar, Origin::Created, now)
                    }
                    None if !cfg.adhoc => {
                        return Err((
                            ErrorCode::NoSuchRoom,
                            "There is no such room here; ask the host for the meeting link.".into(),
                        ))
                    }
                    None if inner.count() >= limits.max_rooms => {
                        shared.metrics.joins_refused_server.inc();
                        return Err((ErrorCode::RoomFull, CreateError::Full.to_string()));
                    }
                    None => {
                        let r = RoomRecord::new(RoomMode::Meeting, Origin::AdHoc, now);
                        if let (false, RoomMsg::Join { request, .. }) =
                            (shared.auth.required(), &mut msg)
                        {
                            // Open mode: whoever opens an ad-hoc room is its host; the key
                            // reaches them in `room_settings` and their browser keeps it.
                            request.credentials.key = Some(r.host_key.as_str().to_string());
                        }
                        r
                    }
                };
                let handle = self.open(shared, room, record);
                inner.live.insert(room.to_string(), handle);
            }
            let Some(handle) = inner.live.get(room) else {
                break;
            };
            match handle.tx.try_send(msg) {
                Ok(()) => return Ok(handle.tx.clone()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err((
                        ErrorCode::Internal,
                        "The room is overloaded; try again.".into(),
                    ))
                }
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    // The room's task ended abnormally (a panic); start a fresh one. Its
                    // record went with it: the room reopens as an ad-hoc one.
                    tracing::error!(room, "room task had died; reopening the room");
                    inner.live.remove(room);
                    msg = m;
                }
            }
        }
        Err((ErrorCode::Internal, "The room could not be opened.".into()))
    }

    fn open(&self, shared: &Arc<Shared>, name: &str, record: RoomRecord) -> Handle {
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let (media_tx, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let room = Router::new(name, shared.config.room.clone(), shared.candidates.clone());
        tokio::spawn(room_task::run(
            Conference::new(room, record),
            serial,
            rx,
            media_tx.clone(),
            media_rx,
            Arc::clone(shared),
        ));
        if let Some(relayed) = crate::cluster::edge::relayed_room(name) {
            // An edge room lives on its link to the origin.
            tokio::spawn(crate::cluster::link::edge_side(
                relayed.to_string(),
                tx.clone(),
                Arc::clone(shared),
            ));
        }
        tracing::info!(room = name, "room opened");
        Handle {
            tx,
            media: media_tx,
            serial,
        }
    }

    /// Called by an empty room: removes it unless a join is already queued for it, keeping its
    /// record until it expires (unless the room API ended it).
    pub fn remove_if_idle(
        &self,
        name: &str,
        serial: u64,
        rx: &mpsc::Receiver<RoomMsg>,
        conf: &Conference,
    ) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if !rx.is_empty() {
            return false;
        }
        if inner.live.get(name).is_some_and(|h| h.serial == serial) {
            inner.live.remove(name);
            let edge = crate::cluster::edge::relayed_room(name).is_some();
            if !conf.ended() && !edge {
                let mut record = conf.record().clone();
                record.emptied_at.get_or_insert_with(Instant::now);
                inner.kept.insert(name.to_string(), record);
            }
        }
        tracing::info!(room = name, "room closed");
        true
    }

    /// The queue of an open room (the relay's control link, and tests, reach a room's task
    /// through it).
    pub fn sender(&self, room: &str) -> Option<mpsc::Sender<RoomMsg>> {
        let inner = self.inner.lock().ok()?;
        inner.live.get(room).map(|h| h.tx.clone())
    }

    /// The media inbox of an open room (the relay socket feeds an edge room through it).
    pub fn media_inbox(&self, room: &str) -> Option<super::inbox::MediaTx> {
        let inner = self.inner.lock().ok()?;
        inner.live.get(room).map(|h| h.media.clone())
    }

    /// Makes a room ahead of its meeting (New meeting, `confab room create`, the API). `None`
    /// for the name picks an unguessable one.
    pub fn create(
        &self,
        shared: &Shared,
        name: Option<&str>,
        mode: RoomMode,
    ) -> Result<Created, CreateError> {
        let name = match name {
            Some(n) if crate::protocol::valid_room_name(n) => n.to_string(),
            Some(_) => return Err(CreateError::InvalidName),
            None => random_name(),
        };
        let mut inner = self.inner.lock().map_err(|_| CreateError::Full)?;
        let now = Instant::now();
        inner.sweep(now, shared.config.rooms.expiry);
        if inner.live.contains_key(&name) || inner.kept.contains_key(&name) {
            return Err(CreateError::Exists);
        }
        if inner.count() >= shared.config.limits.max_rooms {
            return Err(CreateError::Full);
        }
        let record = RoomRecord::new(mode, Origin::Created, now);
        let created = Created {
            room: name.clone(),
            mode,
            host_key: record.host_key.as_str().to_string(),
            presenter_key: record.presenter_key.as_str().to_string(),
        };
        inner.kept.insert(name, record);
        Ok(created)
    }

    /// Every room with its participant counts (live rooms are asked; a room that does not
    /// answer in time is listed with what is known: live, counts unknown as 0).
    pub async fn list(&self, shared: &Shared) -> Vec<Listed> {
        let (live, kept): (Vec<(String, mpsc::Sender<RoomMsg>)>, Vec<String>) = {
            let Ok(mut inner) = self.inner.lock() else {
                return vec![];
            };
            inner.sweep(Instant::now(), shared.config.rooms.expiry);
            (
                inner
                    .live
                    .iter()
                    .map(|(n, h)| (n.clone(), h.tx.clone()))
                    .collect(),
                inner.kept.keys().cloned().collect(),
            )
        };
        let mut out = vec![];
        for (room, tx) in live {
            let (participants, waiting) = match ask(&tx, ApiCall::Participants).await {
                Some(ApiReply::Participants { joined, waiting }) => (joined.len(), waiting.len()),
                _ => (0, 0),
            };
            out.push(Listed {
                room,
                live: true,
                participants,
                waiting,
            });
        }
        out.extend(kept.into_iter().map(|room| Listed {
            room,
            live: false,
            participants: 0,
            waiting: 0,
        }));
        out.sort_by(|a, b| a.room.cmp(&b.room));
        out
    }

    /// Whether a room exists (live or kept).
    pub fn exists(&self, name: &str) -> bool {
        self.inner
            .lock()
            .map(|i| i.live.contains_key(name) || i.kept.contains_key(name))
            .unwrap_or(false)
    }

    /// Asks a live room; `None` when it is not live or does not answer in time.
    pub async fn call(&self, name: &str, call: ApiCall) -> Option<ApiReply> {
        let tx = self.inner.lock().ok()?.live.get(name)?.tx.clone();
        ask(&tx, call).await
    }

    /// Ends a room: everyone out, its record forgotten. False when there is no such room.
    pub async fn end(&self, name: &str) -> bool {
        let (tx, kept) = {
            let Ok(mut inner) = self.inner.lock() else {
                return false;
            };
            (
                inner.live.get(name).map(|h| h.tx.clone()),
                inner.kept.remove(name).is_some(),
            )
        };
        match tx {
            Some(tx) => ask(&tx, ApiCall::End).await.is_some() || kept,
            None => kept,
        }
    }

    /// Every room this server holds, open or kept (the rooms it claims in a cluster).
    pub fn names(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.live.keys().chain(i.kept.keys()).cloned().collect())
            .unwrap_or_default()
    }

    /// How many rooms are open.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.live.len()).unwrap_or(0)
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn ask(tx: &mpsc::Sender<RoomMsg>, call: ApiCall) -> Option<ApiReply> {
    let (reply, rx) = oneshot::channel();
    tx.send_timeout(RoomMsg::Api { call, reply }, API_WAIT)
        .await
        .ok()?;
    tokio::time::timeout(API_WAIT, rx).await.ok()?.ok()
}

/// An unguessable room name (80 random bits), so that an invite link cannot be found by
/// trying names.
fn random_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let part = |rng: &mut rand::rngs::ThreadRng| -> String {
        (0..4)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!(
        "{}-{}-{}-{}",
        part(&mut rng),
        part(&mut rng),
        part(&mut rng),
        part(&mut rng)
    )
}
