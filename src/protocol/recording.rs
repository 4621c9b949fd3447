//! The recording messages' payloads: one recording as a host sees it.

use serde::{Deserialize, Serialize};

/// One recording file of a room, as listed to its hosts (and by `GET /api/recordings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// Its id: the file name without `.webm` (room and UTC start, e.g. `standup-20261130T021500Z`).
    pub id: String,
    /// The room recorded.
    pub room: String,
    /// Start, UTC, RFC 3339 (`2026-11-30T02:15:00Z`).
    pub started: String,
    /// Length in ms; `None` while it records or when the server died before finishing it.
    pub duration_ms: Option<u64>,
    /// Size in bytes.
    pub bytes: u64,
    /// Where to download it: for a host a signed link that expires (no key needed); for the
    /// room API `/api/recordings/{id}` (with the API key).
    pub url: String,
    /// Whether it is still being written.
    #[serde(default)]
    pub recording: bool,
}
