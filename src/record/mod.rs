//! Server-side recording: RTP in, one WebM file (stage video + mixed audio) out, off the room task.
//!
//! ```text
//!  room task ──RecordingHandle::send(Input) (never blocks; bounded in bytes, drops counted)──►
//!    writer thread: Recorder (sans-IO core: depacketize VP8, stage, mix Opus, interleave)
//!      └─► Webm muxer ─► FileSink (appends; patches a Cluster's size when the next one opens)
//!  room task ◄── RecordEvent::{KeyframeWanted(source), Stopped(Result<Summary, RecordError>)}
//! ```
//! - [`vp8`]: RFC 7741 depacketizer; incomplete frames dropped, then wait for a keyframe.
//! - [`stage`]: which source is shown; switches on the new source's keyframe, one timeline.
//! - [`mix`]: decode every voice, mix by RTP timestamp with a jitter delay, encode 20 ms Opus.
//! - [`webm`] over [`ebml`]: clusters of unknown size patched as they close, so a file cut at
//!   any point plays up to there; Cues, Duration and SeekHead written on a clean finish.
//! - [`recorder`]: the core tying them together, driven by inputs and `now`.
//! - [`writer`]: the file (name, directory, errors) and the thread that owns a [`Recorder`].
//!
//! Video is VP8 only, and the depacketizer cannot tell another codec's payload from VP8, so
//! the room must send only VP8 tracks as `Input::Video`: an H.264 stage source is not sent,
//! the video track holds its last frame while audio goes on (transcoding is out of scope).

pub mod ebml;
pub mod mix;
pub mod recorder;
pub mod stage;
pub mod vp8;
pub mod webm;
pub mod writer;

pub use recorder::{Input, RecordStats, Recorder, RecorderConfig, RtpIn};
pub use writer::{RecordEvent, Recording, RecordingConfig, RecordingHandle, Summary};

use std::io;
use std::path::PathBuf;

/// A published track as the recorder knows it (the room maps its track ids onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

/// Why a recording could not start or had to stop; its `Display` is fit to show the host.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The recordings directory could not be created or is not a directory.
    #[error("cannot use the recordings directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file could not be created (permissions, read-only file system).
    #[error("cannot create the recording file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The disk (or quota) is full: what was written up to here is kept.
    #[error("the recordings disk is full; the recording stopped")]
    DiskFull,
    /// Any other write error.
    #[error("writing the recording failed: {0}")]
    Write(io::Error),
    /// libopus failed to start (or encode).
    #[error("audio encoder: {0}")]
    Opus(#[from] mix::OpusError),
    /// The writer thread could not be started.
    #[error("cannot start the recording thread: {0}")]
    Thread(io::Error),
}

impl RecordError {
    /// Classifies a write error: a full disk or quota is its own case.
    pub fn from_write(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => RecordError::DiskFull,
            _ => RecordError::Write(e),
        }
    }
}
