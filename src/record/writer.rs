//! The recording file and the thread that owns a [`Recorder`]: the room only ever `send`s.

use super::recorder::{Input, RecordStats, Recorder, RecorderConfig};
use super::webm::Sink;
use super::{RecordError, SourceId};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings of recordings.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Where files go (created if missing). Default `recordings`.
    pub dir: PathBuf,
    /// Bytes of inputs queued between the room and the writer; beyond it inputs are dropped and
    /// counted. Default 8 MiB (a few seconds of a 1080p stage and forty voices).
    pub queue_bytes: usize,
    /// How often the writer wakes without input (the audio mix's clock). Default 20 ms.
    pub tick: Duration,
    /// The core's settings.
    pub core: RecorderConfig,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: PathBuf::from("recordings"),
            queue_bytes: 8 * 1024 * 1024,
            tick: Duration::from_millis(20),
            core: RecorderConfig::default(),
        }
    }
}

/// A file that is appended to through a buffer, with earlier bytes patched in place.
pub struct FileSink {
    file: File,
    buf: Vec<u8>,
    flushed: u64,
}

/// Appends are handed to the OS when this much is buffered (and at least every flush interval).
const SINK_BUFFER: usize = 256 * 1024;

impl FileSink {
    /// A sink writing `file` from its start.
    pub fn new(file: File) -> Self {
        FileSink {
            file,
            buf: Vec::with_capacity(SINK_BUFFER),
            flushed: 0,
        }
    }
}

impl Sink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= SINK_BUFFER {
            self.flush()?;
        }
        Ok(())
    }
    fn patch(&mut self, pos: u64, bytes: &[u8]) -> io::Result<()> {
        // Patches are rare (one per cluster): write out what is buffered, then overwrite.
        self.flush()?;
        self.file.write_all_at(bytes, pos)
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.flushed)?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        self.file.flush()
    }
    fn written(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }
}

/// A finished recording.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// Its length in ms.
    pub duration_ms: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// What happened on the way.
    pub stats: RecordStats,
}

/// What the writer tells the room.
#[derive(Debug)]
pub enum RecordEvent {
    /// Ask this source's publisher for a keyframe (a stage switch, or a loss).
    KeyframeWanted(SourceId),
    /// The recording ended: finished cleanly, or stopped by an error (tell the host); what was
    /// written before an error is kept and plays.
    Stopped(Result<Summary, RecordError>),
}

enum Msg {
    Input(Input, usize),
    Stop,
}

/// The room's end of a recording: non-blocking, bounded in bytes.
pub struct RecordingHandle {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    cap: usize,
    path: PathBuf,
}

impl RecordingHandle {
    /// Queues an input; false (and counted) when the queue is full or the writer has stopped.
    pub fn send(&self, input: Input) -> bool {
        let cost = input.cost();
        let control = matches!(input, Input::Stage(_) | Input::Removed(_));
        // Control inputs are tiny and must not be lost, so only media is refused when full.
        if !control && self.queued.load(Ordering::Relaxed) + cost > self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.queued.fetch_add(cost, Ordering::Relaxed);
        if self.tx.send(Msg::Input(input, cost)).is_err() {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Inputs dropped so far because the queue was full.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks the writer to finish; its [`RecordEvent::Stopped`] follows.
    pub fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// Starting recordings.
pub struct Recording;

impl Recording {
    /// Creates the file for `room` under the configured directory and starts its writer.
    /// Events come on `events` (keyframe requests may be dropped when it is full; `Stopped` is
    /// always delivered unless the receiver is gone).
    pub fn start(
        config: &RecordingConfig,
        room: &str,
        events: tokio::sync::mpsc::Sender<RecordEvent>,
    ) -> Result<RecordingHandle, RecordError> {
        let (file, path) = create_file(&config.dir, room, SystemTime::now())?;
        Self::spawn_on(config, file, path, events)
    }

    /// Starts the writer on a file opened by the caller (tests use this with `/dev/full`).
    pub fn spawn_on(
        config: &RecordingConfig,
        file: File,
        path: PathBuf,
        events: tokio::sync::mpsc::Sender<RecordEvent>,
    ) -> Result<RecordingHandle, RecordError> {
        let start = Instant::now();
        let core = Recorder::new(
            config.core.clone(),
            FileSink::new(file),
            start,
            matroska_date(SystemTime::now()),
        )?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let job = Job {
            core,
            rx,
            queued: queued.clone(),
            dropped: dropped.clone(),
            tick: config.tick,
            path: path.clone(),
            events,
        };
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || job.run())
            .map_err(RecordError::Thread)?;
        Ok(RecordingHandle {
            tx,
            queued,
            dropped,
            cap: config.queue_bytes,
            path,
        })
    }
}

struct Job {
    core: Recorder<FileSink>,
    rx: mpsc::Receiver<Msg>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    tick: Duration,
    path: PathBuf,
    events: tokio::sync::mpsc::Sender<RecordEvent>,
}

impl Job {
    fn run(self) {
        let events = self.events.clone();
        let result = self.record();
        let _ = events.blocking_send(RecordEvent::Stopped(result));
    }

    fn record(self) -> Result<Summary, RecordError> {
        let Job {
            mut core,
            rx,
            queued,
            dropped,
            tick,
            path,
            events,
        } = self;
        loop {
            match rx.recv_timeout(tick) {
                Ok(Msg::Input(input, cost)) => {
                    queued.fetch_sub(cost, Ordering::Relaxed);
                    core.handle(input, Instant::now())?;
                }
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => core.handle_timeout(Instant::now())?,
            }
            while let Some(source) = core.poll_keyframe_request() {
                let _ = events.try_send(RecordEvent::KeyframeWanted(source));
            }
        }
        let (sink, duration_ms, mut stats) = core.finish(Instant::now())?;
        stats.channel_drops = dropped.load(Ordering::Relaxed) as u64;
        Ok(Summary {
            path,
            duration_ms,
            bytes: sink.written(),
            stats,
        })
    }
}

/// Creates `dir` if needed and a new file named after the room and the UTC start time.
pub fn create_file(dir: &Path, room: &str, at: SystemTime) -> Result<(File, PathBuf), RecordError> {
    std::fs::create_dir_all(dir).map_err(|source| RecordError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let base = format!("{}-{}", file_safe(room), utc_stamp(at));
    for n in 1..100 {
        let name = if n == 1 {
            format!("{base}.webm")
        } else {
            format!("{base}-{n}.webm")
        };
        let path = dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(RecordError::Create { path, source }),
        }
    }
    Err(RecordError::Create {
        path: dir.join(format!("{base}.webm")),
        source: io::Error::new(io::ErrorKind::AlreadyExists, "99 recordings in one second"),
    })
}

/// A room name made safe for a file name: letters, digits, `-` and `_`, at most 64 characters.
fn file_safe(room: &str) -> String {
    let s: String = room
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "room".into()
    } else {
        s
    }
}

/// `YYYYMMDDTHHMMSSZ` for a time (UTC).
pub fn utc_stamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (the well-known era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Nanoseconds since 2001-01-01T00:00:00Z, Matroska's DateUTC.
fn matroska_date(at: SystemTime) -> i64 {
    const EPOCH_2001: i64 = 978_307_200;
    let unix_ns = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    unix_ns - EPOCH_2001 * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_room_and_utc_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_stamp(at), "20261118T110640Z");
        assert_eq!(file_safe("../etc/pass wd"), "___etc_pass_wd");
        assert_eq!(file_safe(""), "room");
        let dir = std::env::temp_dir().join(format!("confab-rec-names-{}", std::process::id()));
        let (_, a) = create_file(&dir, "standup", at).unwrap();
        let (_, b) = create_file(&dir, "standup", at).unwrap();
        assert!(a.ends_with("standup-20261118T110640Z.webm"), "{a:?}");
        assert!(b.ends_with("standup-20261118T110640Z-2.webm"), "{b:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
