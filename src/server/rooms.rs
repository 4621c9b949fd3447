//! Room name → room task; a room is created on its first join and removed when it empties.

use super::inbox::MEDIA_QUEUE;
use super::outbound::OutboundTx;
use super::room_task::{self, RoomMsg};
use super::Shared;
use crate::conference::{Conference, JoinRequest};
use crate::media::Router;
use crate::protocol::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Signalling queued toward one room before a join is refused as "overloaded" (media has its
/// own inbox, [`MEDIA_QUEUE`], so datagrams never fill this one).
const ROOM_QUEUE: usize = 8192;

struct Handle {
    tx: mpsc::Sender<RoomMsg>,
    serial: u64,
}

/// The registry of open rooms. Locked only on join and on a room's exit, never per packet.
#[derive(Default)]
pub struct Rooms {
    map: Mutex<HashMap<String, Handle>>,
    next_serial: std::sync::atomic::AtomicU64,
}

impl Rooms {
    /// Hands a join to the room, opening it first if needed. Returns the room's sender.
    pub fn join(
        &self,
        shared: &Arc<Shared>,
        room: &str,
        request: JoinRequest,
        tx: OutboundTx,
    ) -> Result<mpsc::Sender<RoomMsg>, (ErrorCode, String)> {
        let mut map = self.map.lock().map_err(|_| {
            (
                ErrorCode::Internal,
                "Room registry unavailable.".to_string(),
            )
        })?;
        let limits = &shared.config.limits;
        if shared.metrics.participants.get() >= limits.max_participants as i64 {
            shared.metrics.joins_refused_server.inc();
            return Err((
                ErrorCode::RoomFull,
                "The server is full; try again later.".into(),
            ));
        }
        if !map.contains_key(room) && map.len() >= limits.max_rooms {
            shared.metrics.joins_refused_server.inc();
            return Err((
                ErrorCode::RoomFull,
                "The server has as many rooms open as it may; try again later.".into(),
            ));
        }
        let mut msg = RoomMsg::Join { request, tx };
        for _ in 0..2 {
            let handle = map
                .entry(room.to_string())
                .or_insert_with(|| self.open(shared, room));
            match handle.tx.try_send(msg) {
                Ok(()) => return Ok(handle.tx.clone()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err((
                        ErrorCode::Internal,
                        "The room is overloaded; try again.".into(),
                    ))
                }
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    // The room's task ended abnormally (a panic); start a fresh one.
                    tracing::error!(room, "room task had died; reopening the room");
                    map.remove(room);
                    msg = m;
                }
            }
        }
        Err((ErrorCode::Internal, "The room could not be opened.".into()))
    }

    fn open(&self, shared: &Arc<Shared>, name: &str) -> Handle {
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let (media_tx, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let room = Router::new(name, shared.config.room.clone(), shared.candidates.clone());
        tokio::spawn(room_task::run(
            Conference::new(room),
            serial,
            rx,
            media_tx,
            media_rx,
            Arc::clone(shared),
        ));
        tracing::info!(room = name, "room opened");
        Handle { tx, serial }
    }

    /// Called by an empty room: removes it unless a join is already queued for it.
    pub fn remove_if_idle(&self, name: &str, serial: u64, rx: &mpsc::Receiver<RoomMsg>) -> bool {
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        if !rx.is_empty() {
            return false;
        }
        if map.get(name).is_some_and(|h| h.serial == serial) {
            map.remove(name);
        }
        tracing::info!(room = name, "room closed");
        true
    }

    /// The queue of an open room (tests reach a room's task through it).
    #[cfg(test)]
    pub(crate) fn sender(&self, room: &str) -> Option<mpsc::Sender<RoomMsg>> {
        let map = self.map.lock().ok()?;
        map.get(room).map(|h| h.tx.clone())
    }

    /// How many rooms are open.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
