//! The server's recordings: the directory, what is listed, who may fetch a file, and the
//! room task's side of starting and stopping one.
//!
//! Each recording is `{dir}/{id}.webm` with a small `{id}.json` beside it (room, start, and the
//! duration once finished; a server killed mid-recording leaves none, the file still plays).
//! An id is the file name's stem: the room made file-safe and the UTC start
//! (`standup-20261130T021500Z`). Hosts get download links signed with a key made at startup
//! (HS256 over id, room and expiry; [`LINK_TTL`]), so a browser needs no API key; the room API
//! fetches with its key. Nothing else serves the directory.

use super::Shared;
use crate::conference::Conference;
use crate::model::ParticipantId;
use crate::protocol::RecordingEntry;
use crate::record::{RecordEvent, Recording, RecordingConfig, Summary};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How long a host's download link works.
pub const LINK_TTL: Duration = Duration::from_secs(3600);

/// Most recordings listed (newest first): the answer stays small.
pub const MAX_LISTED: usize = 500;

/// The recordings directory and the download-link key.
pub struct Recordings {
    dir: PathBuf,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Ids being written now.
    active: Mutex<HashSet<String>>,
    /// Rooms recording now (what the public room status tells).
    rooms: Mutex<HashSet<String>>,
}

/// What `{id}.json` holds.
#[derive(Serialize, Deserialize)]
struct Sidecar {
    room: String,
    started: String,
    #[serde(default)]
    duration_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct LinkClaims {
    sub: String,
    exp: u64,
}

impl Recordings {
    /// Recordings under `dir`, with a fresh link key.
    pub fn new(dir: PathBuf) -> Self {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        Recordings {
            dir,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            active: Mutex::new(HashSet::new()),
            rooms: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `room` records now (false for a room that does not exist).
    pub fn room_records(&self, room: &str) -> bool {
        self.rooms.lock().is_ok_and(|r| r.contains(room))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of an id, if the id is well-formed and the file exists.
    pub fn file(&self, id: &str) -> Option<PathBuf> {
        let ok = !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let path = self.dir.join(format!("{id}.webm"));
        (ok && path.is_file()).then_some(path)
    }

    /// A download link for a host: `/recordings/{id}?t=…`, valid for [`LINK_TTL`].
    pub fn signed_url(&self, id: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + LINK_TTL.as_secs();
        let claims = LinkClaims {
            sub: id.to_string(),
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default();
        format!("/recordings/{id}?t={token}")
    }

    /// Whether `token` is an unexpired link to `id`.
    pub fn link_valid(&self, id: &str, token: &str) -> bool {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        jsonwebtoken::decode::<LinkClaims>(token, &self.decoding, &v)
            .is_ok_and(|d| d.claims.sub == id)
    }

    /// Recordings, newest first; of one room only when `room` is given. `url` makes each
    /// entry's download link.
    pub fn list(&self, room: Option<&str>, url: impl Fn(&str) -> String) -> Vec<RecordingEntry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let active = self.active.lock().map(|a| a.clone()).unwrap_or_default();
        let mut out: Vec<RecordingEntry> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".webm")?.to_string();
                let meta = e.metadata().ok()?;
                let side: Option<Sidecar> = std::fs::read(self.dir.join(format!("{id}.json")))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let (r, started) = match side.as_ref() {
                    Some(s) => (s.room.clone(), s.started.clone()),
                    None => parse_id(&id)?,
                };
                if room.is_some_and(|want| want != r) {
                    return None;
                }
                Some(RecordingEntry {
                    url: url(&id),
                    recording: active.contains(&id),
                    id,
                    room: r,
                    started,
                    duration_ms: side.and_then(|s| s.duration_ms),
                    bytes: meta.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
        out.truncate(MAX_LISTED);
        out
    }

    /// Deletes a recording (not one being written). False when there is no such one.
    pub fn delete(&self, id: &str) -> Result<bool, String> {
        let Some(path) = self.file(id) else {
            return Ok(false);
        };
        if self.active.lock().is_ok_and(|a| a.contains(id)) {
            return Err("This recording is still being written; stop it first.".into());
        }
        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        Ok(true)
    }

    fn sidecar(&self, id: &str, side: &Sidecar) {
        if let Ok(json) = serde_json::to_vec(side) {
            // Best effort: the file plays without it (the listing then reads the name).
            let _ = std::fs::write(self.dir.join(format!("{id}.json")), json);
        }
    }
}

/// Room and RFC 3339 start from an id `{room}-{YYYYMMDDTHHMMSSZ}[-n]`.
fn parse_id(id: &str) -> Option<(String, String)> {
    let mut parts: Vec<&str> = id.rsplitn(3, '-').collect();
    parts.reverse();
    let (room, stamp) = match parts.as_slice() {
        [room, stamp] => (*room, *stamp),
        [room, stamp, n] if n.bytes().all(|b| b.is_ascii_digit()) => (*room, *stamp),
        [a, b, stamp] => (&id[..a.len() + 1 + b.len()], *stamp),
        _ => return None,
    };
    let s = stamp.as_bytes();
    if s.len() != 16 || s[8] != b'T' || s[15] != b'Z' {
        return None;
    }
    let started = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    Some((room.to_string(), started))
}

/// The room task's recording: its events and the id being written.
pub struct RoomRecording {
    tx: mpsc::Sender<RecordEvent>,
    /// Events from the writer (keyframe requests, `Stopped`).
    pub rx: mpsc::Receiver<RecordEvent>,
    current: Option<(String, Sidecar)>,
    /// The writer's drop count already added to the metrics.
    dropped_seen: usize,
}

/// Keyframe requests and the final report waiting for the room task.
const EVENTS: usize = 64;

/// Longest the room task waits, when it closes, for its writer to finish the file.
pub const FINISH_WAIT: Duration = Duration::from_secs(5);

impl Default for RoomRecording {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(EVENTS);
        RoomRecording {
            tx,
            rx,
            current: None,
            dropped_seen: 0,
        }
    }
}

impl RoomRecording {
    /// Starts (`on`) or stops the room's recording, as asked by a host (`by`) or the API.
    pub fn ask(
        &mut self,
        conf: &mut Conference,
        shared: &Shared,
        on: bool,
        by: Option<ParticipantId>,
    ) -> Result<(), String> {
        if !on {
            return if conf.stop_recording(by) {
                Ok(())
            } else {
                Err("The room is not being recorded.".into())
            };
        }
        if conf.is_recording() {
            return Err("The room is already being recorded.".into());
        }
        let rec = &shared.recordings;
        let config = RecordingConfig {
            dir: rec.dir.clone(),
            ..RecordingConfig::default()
        };
        let room = conf.room.name().to_string();
        let handle =
            Recording::start(&config, &room, self.tx.clone()).map_err(|e| e.to_string())?;
        let id = id_of(handle.path());
        let side = Sidecar {
            room: room.clone(),
            started: parse_id(&id).map(|(_, s)| s).unwrap_or_default(),
            duration_ms: None,
        };
        rec.sidecar(&id, &side);
        if let Ok(mut a) = rec.active.lock() {
            a.insert(id.clone());
        }
        if let Ok(mut r) = rec.rooms.lock() {
            r.insert(room.clone());
        }
        tracing::info!(room = room.as_str(), file = %handle.path().display(), "recording started");
        shared.metrics.recordings.inc();
        self.current = Some((id, side));
        self.dropped_seen = 0;
        conf.recording_started(handle, by, Instant::now());
        Ok(())
    }

    /// The writer reported: a keyframe wanted, or the end (finished, or failed).
    pub fn event(&mut self, conf: &mut Conference, shared: &Shared, ev: RecordEvent) {
        match ev {
            RecordEvent::KeyframeWanted(source) => {
                conf.room.recording_keyframe(source, Instant::now())
            }
            RecordEvent::Stopped(result) => {
                self.finished(shared, result.as_ref().ok());
                if let Err(e) = result {
                    tracing::warn!(room = conf.room.name(), error = %e, "recording stopped");
                    conf.recording_failed(&e.to_string());
                }
            }
        }
    }

    /// Adds the running recording's new drops to `/metrics`.
    pub fn count_drops(&mut self, conf: &Conference, shared: &Shared) {
        if let Some(h) = conf.room.recording() {
            let d = h.dropped();
            shared
                .metrics
                .recording_dropped
                .inc_by(d.saturating_sub(self.dropped_seen) as u64);
            self.dropped_seen = d;
        }
    }

    fn finished(&mut self, shared: &Shared, summary: Option<&Summary>) {
        let Some((id, mut side)) = self.current.take() else {
            return;
        };
        side.duration_ms = summary.map(|s| s.duration_ms);
        shared.recordings.sidecar(&id, &side);
        if let Ok(mut a) = shared.recordings.active.lock() {
            a.remove(&id);
        }
        if let Ok(mut r) = shared.recordings.rooms.lock() {
            r.remove(&side.room);
        }
        shared.metrics.recordings.dec();
    }

    /// The room closes: stop and wait (bounded) for the writer to finish the file.
    pub async fn close(&mut self, conf: &mut Conference, shared: &Shared) {
        if !conf.stop_recording(None) && self.current.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        while self.current.is_some() {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(RecordEvent::Stopped(r))) => self.finished(shared, r.as_ref().ok()),
                Ok(Some(_)) => {}
                _ => {
                    // The file is still whole up to its last cluster; only its length is unknown.
                    self.finished(shared, None);
                }
            }
        }
    }
}

fn id_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_give_room_and_start() {
        let s = "2026-11-30T02:15:00Z".to_string();
        assert_eq!(
            parse_id("standup-20261130T021500Z"),
            Some(("standup".into(), s.clone()))
        );
        assert_eq!(
            parse_id("standup-20261130T021500Z-2"),
            Some(("standup".into(), s.clone()))
        );
        assert_eq!(
            parse_id("team-a-20261130T021500Z"),
            Some(("team-a".into(), s))
        );
        assert_eq!(parse_id("nonsense"), None);
    }

    #[test]
    fn links_are_signed_per_id_and_ids_are_checked() {
        let r = Recordings::new(std::env::temp_dir());
        let url = r.signed_url("a-20261130T021500Z");
        let token = url.split("?t=").nth(1).unwrap();
        assert!(r.link_valid("a-20261130T021500Z", token));
        assert!(!r.link_valid("b-20261130T021500Z", token));
        assert!(!r.link_valid("a-20261130T021500Z", "x.y.z"));
        let other = Recordings::new(std::env::temp_dir());
        assert!(!other.link_valid("a-20261130T021500Z", token));
        assert_eq!(r.file("../etc/passwd"), None);
        assert_eq!(r.file(""), None);
    }
}
