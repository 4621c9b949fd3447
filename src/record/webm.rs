//! A streaming WebM muxer (one VP8 and one Opus track) that stays playable if cut at any point.
//!
//! Layout: EBML header, Segment of unknown size, a reserved Void (later a SeekHead to the Cues),
//! Info (with a reserved Void that becomes Duration), Tracks, then Clusters. Each Cluster is
//! opened with an unknown size and patched to its real size when the next one opens, so a file
//! cut by `kill -9` ends in one unknown-size Cluster, which demuxers read up to the cut. A clean
//! [`Webm::finish`] appends Cues and fills in Duration and the SeekHead.

use super::ebml::{self, ids};
use std::io;

/// Where the muxer's bytes go: appended in order, with earlier bytes patched in place.
pub trait Sink {
    /// Appends bytes at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Overwrites bytes at `pos` (which is before the end).
    fn patch(&mut self, pos: u64, bytes: &[u8]) -> io::Result<()>;
    /// Hands buffered bytes to the operating system.
    fn flush(&mut self) -> io::Result<()>;
    /// Bytes appended so far.
    fn written(&self) -> u64;
}

impl Sink for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn patch(&mut self, pos: u64, bytes: &[u8]) -> io::Result<()> {
        let at = pos as usize;
        self[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn written(&self) -> u64 {
        Vec::len(self) as u64
    }
}

/// Track numbers in the file.
pub const VIDEO_TRACK: u64 = 1;
/// Track numbers in the file.
pub const AUDIO_TRACK: u64 = 2;

/// A new Cluster at least this often even without a keyframe, so a cut file loses little and
/// relative block times stay far inside their 16-bit range.
pub const MAX_CLUSTER_MS: u64 = 5_000;
/// Cue points kept for the index; beyond this (about 55 hours at one per 2 s) new clusters are
/// not indexed, which bounds memory for very long recordings.
pub const MAX_CUES: usize = 100_000;

/// What the file header says about the tracks.
#[derive(Debug, Clone)]
pub struct TrackInfo {
    /// Width of the first video keyframe (a hint: VP8 keyframes carry their own size).
    pub width: u16,
    /// Height of the first video keyframe.
    pub height: u16,
    /// Audio channels of the Opus track.
    pub channels: u8,
    /// Opus encoder pre-skip in 48 kHz samples.
    pub pre_skip: u16,
}

/// One frame to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u64,
    /// Milliseconds since the recording started.
    pub time_ms: u64,
    /// A VP8 keyframe (audio blocks are all keyframes).
    pub keyframe: bool,
    /// The frame's bytes.
    pub data: Vec<u8>,
}

/// The muxer over a [`Sink`].
pub struct Webm<S: Sink> {
    sink: S,
    /// File offset of the Segment's data (Cue and Seek positions are relative to it).
    segment_data: u64,
    /// File offset of the reserved Void for the SeekHead.
    seek_void: u64,
    /// File offset of the reserved Void for Duration.
    duration_void: u64,
    /// The open Cluster: its file offset, its size field's offset and its base time.
    cluster: Option<(u64, u64, u64)>,
    cues: Vec<(u64, u64)>,
    last_ms: u64,
    buf: Vec<u8>,
}

const SEEK_VOID_LEN: usize = 64;
const DURATION_VOID_LEN: usize = 11;

impl<S: Sink> Webm<S> {
    /// Writes the header; `date_utc_ns` is nanoseconds since 2001-01-01 UTC (Matroska's epoch).
    pub fn start(mut sink: S, info: &TrackInfo, date_utc_ns: i64) -> io::Result<Self> {
        let mut out = Vec::with_capacity(512);
        let mut head = Vec::new();
        ebml::uint(&mut head, ids::EBML_VERSION, 1);
        ebml::uint(&mut head, ids::EBML_READ_VERSION, 1);
        ebml::uint(&mut head, ids::EBML_MAX_ID_LENGTH, 4);
        ebml::uint(&mut head, ids::EBML_MAX_SIZE_LENGTH, 8);
        ebml::bytes(&mut head, ids::DOC_TYPE, b"webm");
        ebml::uint(&mut head, ids::DOC_TYPE_VERSION, 4);
        ebml::uint(&mut head, ids::DOC_TYPE_READ_VERSION, 2);
        ebml::master(&mut out, ids::EBML, &head);

        ebml::id(&mut out, ids::SEGMENT);
        out.extend_from_slice(&ebml::UNKNOWN_SIZE);
        let segment_data = sink.written() + out.len() as u64;
        let seek_void = segment_data;
        ebml::void(&mut out, SEEK_VOID_LEN);

        let mut inf = Vec::new();
        ebml::uint(&mut inf, ids::TIMESTAMP_SCALE, 1_000_000);
        ebml::bytes(&mut inf, ids::MUXING_APP, b"confab");
        ebml::bytes(&mut inf, ids::WRITING_APP, b"confab");
        ebml::int8(&mut inf, ids::DATE_UTC, date_utc_ns);
        let void_at_in_info = inf.len();
        ebml::void(&mut inf, DURATION_VOID_LEN);
        ebml::id(&mut out, ids::INFO);
        ebml::size(&mut out, inf.len() as u64);
        let duration_void = sink.written() + (out.len() + void_at_in_info) as u64;
        out.extend_from_slice(&inf);

        let mut video = Vec::new();
        ebml::uint(&mut video, ids::PIXEL_WIDTH, u64::from(info.width));
        ebml::uint(&mut video, ids::PIXEL_HEIGHT, u64::from(info.height));
        let mut vt = Vec::new();
        ebml::uint(&mut vt, ids::TRACK_NUMBER, VIDEO_TRACK);
        ebml::uint(&mut vt, ids::TRACK_UID, VIDEO_TRACK);
        ebml::uint(&mut vt, ids::TRACK_TYPE, 1);
        ebml::uint(&mut vt, ids::FLAG_LACING, 0);
        ebml::bytes(&mut vt, ids::CODEC_ID, b"V_VP8");
        ebml::master(&mut vt, ids::VIDEO, &video);

        let mut audio = Vec::new();
        ebml::float(&mut audio, ids::SAMPLING_FREQUENCY, 48_000.0);
        ebml::uint(&mut audio, ids::CHANNELS, u64::from(info.channels));
        let mut at = Vec::new();
        ebml::uint(&mut at, ids::TRACK_NUMBER, AUDIO_TRACK);
        ebml::uint(&mut at, ids::TRACK_UID, AUDIO_TRACK);
        ebml::uint(&mut at, ids::TRACK_TYPE, 2);
        ebml::uint(&mut at, ids::FLAG_LACING, 0);
        ebml::bytes(&mut at, ids::CODEC_ID, b"A_OPUS");
        ebml::bytes(&mut at, ids::CODEC_PRIVATE, &opus_head(info));
        ebml::uint(
            &mut at,
            ids::CODEC_DELAY,
            u64::from(info.pre_skip) * 1_000_000_000 / 48_000,
        );
        ebml::uint(&mut at, ids::SEEK_PRE_ROLL, 80_000_000);
        ebml::master(&mut at, ids::AUDIO, &audio);

        let mut tracks = Vec::new();
        ebml::master(&mut tracks, ids::TRACK_ENTRY, &vt);
        ebml::master(&mut tracks, ids::TRACK_ENTRY, &at);
        ebml::master(&mut out, ids::TRACKS, &tracks);

        sink.append(&out)?;
        Ok(Webm {
            sink,
            segment_data,
            seek_void,
            duration_void,
            cluster: None,
            cues: Vec::new(),
            last_ms: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes one block, opening a new Cluster on a video keyframe, every [`MAX_CLUSTER_MS`],
    /// and whenever the relative time would not fit.
    pub fn write(&mut self, block: &Block) -> io::Result<()> {
        let t = block.time_ms;
        let new_cluster = match self.cluster {
            None => true,
            Some((_, _, base)) => {
                (block.track == VIDEO_TRACK && block.keyframe)
                    || t >= base + MAX_CLUSTER_MS
                    || t < base
            }
        };
        if new_cluster {
            self.open_cluster(t, block.track == VIDEO_TRACK && block.keyframe)?;
        }
        let (_, _, base) = self.cluster.expect("a cluster was just opened");
        let rel = t.saturating_sub(base).min(i16::MAX as u64) as i16;
        self.buf.clear();
        ebml::id(&mut self.buf, ids::SIMPLE_BLOCK);
        ebml::size(&mut self.buf, 4 + block.data.len() as u64);
        // Track number as a 1-byte vint, relative time, flags (keyframe bit).
        self.buf.push(0x80 | block.track as u8);
        self.buf.extend_from_slice(&rel.to_be_bytes());
        self.buf.push(if block.keyframe { 0x80 } else { 0 });
        self.sink.append(&self.buf)?;
        self.sink.append(&block.data)?;
        self.last_ms = self.last_ms.max(t);
        Ok(())
    }

    fn open_cluster(&mut self, time_ms: u64, indexed: bool) -> io::Result<()> {
        self.close_cluster()?;
        let at = self.sink.written();
        let mut out = Vec::with_capacity(24);
        ebml::id(&mut out, ids::CLUSTER);
        let size_at = at + out.len() as u64;
        out.extend_from_slice(&ebml::UNKNOWN_SIZE);
        ebml::uint(&mut out, ids::TIMESTAMP, time_ms);
        self.sink.append(&out)?;
        self.cluster = Some((at, size_at, time_ms));
        if indexed && self.cues.len() < MAX_CUES {
            self.cues.push((time_ms, at - self.segment_data));
        }
        Ok(())
    }

    /// Patches the open Cluster's size now that its end is known.
    fn close_cluster(&mut self) -> io::Result<()> {
        if let Some((_, size_at, _)) = self.cluster.take() {
            let body = self.sink.written() - (size_at + ebml::SIZE_LEN as u64);
            self.sink.patch(size_at, &ebml::size8(body))?;
        }
        Ok(())
    }

    /// Hands what is buffered to the operating system (it survives the process being killed).
    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.sink.written()
    }

    /// Closes the last Cluster, appends Cues, fills in Duration and the SeekHead, and returns
    /// the sink. `end_ms` is the recording's length (at least the last block's time).
    pub fn finish(mut self, end_ms: u64) -> io::Result<S> {
        self.close_cluster()?;
        let cues_at = self.sink.written() - self.segment_data;
        if !self.cues.is_empty() {
            let mut body = Vec::with_capacity(self.cues.len() * 16);
            for &(time, pos) in &self.cues {
                let mut tp = Vec::new();
                ebml::uint(&mut tp, ids::CUE_TRACK, VIDEO_TRACK);
                ebml::uint(&mut tp, ids::CUE_CLUSTER_POSITION, pos);
                let mut cp = Vec::new();
                ebml::uint(&mut cp, ids::CUE_TIME, time);
                ebml::master(&mut cp, ids::CUE_TRACK_POSITIONS, &tp);
                ebml::master(&mut body, ids::CUE_POINT, &cp);
            }
            let mut out = Vec::new();
            ebml::master(&mut out, ids::CUES, &body);
            self.sink.append(&out)?;

            let mut seek = Vec::new();
            ebml::bytes(&mut seek, ids::SEEK_ID, &ids::CUES.to_be_bytes());
            ebml::uint(&mut seek, ids::SEEK_POSITION, cues_at);
            let mut head = Vec::new();
            ebml::master(&mut head, ids::SEEK, &seek);
            let mut sh = Vec::new();
            ebml::master(&mut sh, ids::SEEK_HEAD, &head);
            let pad = SEEK_VOID_LEN - sh.len();
            ebml::void(&mut sh, pad);
            self.sink.patch(self.seek_void, &sh)?;
        }
        let mut d = Vec::new();
        ebml::float(&mut d, ids::DURATION, end_ms.max(self.last_ms) as f64);
        debug_assert_eq!(d.len(), DURATION_VOID_LEN);
        self.sink.patch(self.duration_void, &d)?;
        // The Segment's size: its data runs to the end of the file.
        let segment_size = self.sink.written() - self.segment_data;
        self.sink
            .patch(self.segment_data - 8, &ebml::size8(segment_size))?;
        self.sink.flush()?;
        Ok(self.sink)
    }
}

/// The Opus identification header (RFC 7845 §5.1) that WebM carries as CodecPrivate.
fn opus_head(info: &TrackInfo) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(info.channels);
    h.extend_from_slice(&info.pre_skip.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> TrackInfo {
        TrackInfo {
            width: 640,
            height: 360,
            channels: 1,
            pre_skip: 312,
        }
    }

    #[test]
    fn clusters_open_on_keyframes_and_are_patched_to_their_size() {
        let mut w = Webm::start(Vec::new(), &info(), 0).unwrap();
        let block = |track, time_ms, keyframe| Block {
            track,
            time_ms,
            keyframe,
            data: vec![0xAB; 10],
        };
        w.write(&block(VIDEO_TRACK, 0, true)).unwrap();
        w.write(&block(AUDIO_TRACK, 10, true)).unwrap();
        w.write(&block(VIDEO_TRACK, 33, false)).unwrap();
        w.write(&block(VIDEO_TRACK, 66, true)).unwrap();
        assert_eq!(w.cues.len(), 2);
        let first = w.cues[0].1 + w.segment_data;
        let second = w.cues[1].1 + w.segment_data;
        let file = w.finish(100).unwrap();
        // The first cluster's size field now says exactly where the second begins.
        let size_at = first as usize + 4;
        assert_eq!(file[size_at..size_at + 8], ebml::size8(second - first - 12));
        // Segment size is known after a clean finish.
        assert!(!file.windows(8).any(|w| w == ebml::UNKNOWN_SIZE));
    }

    #[test]
    fn a_long_gap_without_keyframes_still_opens_clusters() {
        let mut w = Webm::start(Vec::new(), &info(), 0).unwrap();
        for i in 0..600 {
            w.write(&Block {
                track: AUDIO_TRACK,
                time_ms: i * 20,
                keyframe: true,
                data: vec![1; 3],
            })
            .unwrap();
        }
        // 12 s of audio: clusters at 0, 5 s and 10 s, none indexed (no video keyframes).
        assert!(w.cues.is_empty());
        assert_eq!(w.cluster.map(|c| c.2), Some(10_000));
    }
}
