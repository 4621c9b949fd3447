//! VP8 depacketizer (RFC 7741): RTP packets of one stream → whole frames, keyframes marked.
//!
//! Packets of a frame share an RTP timestamp; the first has S=1 and partition 0, the last the
//! marker bit. Packets within a frame may arrive out of order (they are sorted by sequence
//! number); a frame with a hole, or a frame lost whole, is dropped and everything after it is
//! dropped too until the next keyframe, because delta frames after a loss would decode to
//! garbage.

/// A bound on one frame's size; larger frames are dropped (a 1080p keyframe is ~200 KB).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// A bound on packets per frame.
pub const MAX_FRAME_PACKETS: usize = 4096;

/// A whole VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Extended (64-bit) RTP timestamp, 90 kHz.
    pub timestamp: u64,
    /// Whether it is a keyframe (decodable on its own).
    pub keyframe: bool,
    /// Width and height, present on keyframes.
    pub size: Option<(u16, u16)>,
    /// The VP8 bitstream of the frame.
    pub data: Vec<u8>,
}

/// Why a packet or frame did not become output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vp8Drop {
    /// The payload descriptor is malformed or the payload empty.
    Malformed,
    /// The packet belongs to a frame older than the one being assembled.
    Late,
    /// The same sequence number was seen already.
    Duplicate,
    /// A frame was incomplete when a newer one started.
    Incomplete,
    /// Waiting for a keyframe after a loss (or at the start).
    AwaitingKeyframe,
    /// A frame exceeded [`MAX_FRAME_BYTES`] or [`MAX_FRAME_PACKETS`].
    TooLarge,
}

/// Depacketizer state for one stream.
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// Packets of the frame being assembled: (seq, start-of-frame, marker, payload).
    parts: Vec<(u64, bool, bool, Vec<u8>)>,
    current_ts: Option<u64>,
    bytes: usize,
    /// Sequence number of the last packet of the last completed or abandoned frame.
    last_end_seq: Option<u64>,
    synced: bool,
    ts_ext: Option<u64>,
}

/// The payload descriptor's length and whether the packet starts a frame (S=1, PID=0).
fn descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let b0 = *payload.first()?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut len = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1)?;
        len += 1;
        if x & 0x80 != 0 {
            let pid = *payload.get(len)?;
            len += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            len += 1;
        }
        if x & 0x30 != 0 {
            len += 1;
        }
    }
    (payload.len() > len).then_some((len, start))
}

/// Whether a frame's first bytes are a keyframe, and its size if so (RFC 6386 §9.1).
pub fn keyframe_info(frame: &[u8]) -> Option<Option<(u16, u16)>> {
    let b0 = *frame.first()?;
    if b0 & 0x01 != 0 {
        return None;
    }
    let size = (frame.len() >= 10 && frame[3..6] == [0x9d, 0x01, 0x2a]).then(|| {
        (
            u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff,
            u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff,
        )
    });
    Some(size)
}

/// Splits a VP8 frame into RTP payloads of at most `max` bytes of frame data each, with an
/// RFC 7741 descriptor carrying a 15-bit picture id (for test media, benches and bots).
pub fn packetize(frame: &[u8], picture_id: u16, max: usize) -> Vec<Vec<u8>> {
    let pid = picture_id & 0x7fff;
    frame
        .chunks(max.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let start = if i == 0 { 0x10 } else { 0 };
            let mut p = vec![0x80 | start, 0x80, 0x80 | (pid >> 8) as u8, pid as u8];
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

impl Depacketizer {
    /// Extends a 32-bit RTP timestamp to 64 bits, assuming steps of less than 2^31.
    fn extend(&mut self, ts: u32) -> u64 {
        let ext = match self.ts_ext {
            None => u64::from(ts) + (1 << 32),
            Some(prev) => {
                let delta = ts.wrapping_sub(prev as u32) as i32;
                prev.wrapping_add_signed(i64::from(delta))
            }
        };
        self.ts_ext = Some(ext);
        ext
    }

    /// Takes one packet (`seq` extended to 64 bits); returns a frame when this completes one.
    pub fn push(
        &mut self,
        seq: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<Option<Frame>, Vp8Drop> {
        let (skip, start) = descriptor(payload).ok_or(Vp8Drop::Malformed)?;
        let ts = self.extend(timestamp);
        if let Some(cur) = self.current_ts {
            if ts < cur {
                return Err(Vp8Drop::Late);
            }
            if ts > cur {
                // A newer frame began while this one still had holes.
                self.abandon();
                self.current_ts = Some(ts);
                self.push_part(seq, start, marker, &payload[skip..])?;
                return self.try_complete().map(Some).or_else(incomplete_ok);
            }
        } else {
            if self.last_end_seq.is_some_and(|end| seq <= end) {
                return Err(Vp8Drop::Late);
            }
            self.current_ts = Some(ts);
        }
        if self.parts.iter().any(|p| p.0 == seq) {
            return Err(Vp8Drop::Duplicate);
        }
        self.push_part(seq, start, marker, &payload[skip..])?;
        self.try_complete().map(Some).or_else(incomplete_ok)
    }

    fn push_part(
        &mut self,
        seq: u64,
        start: bool,
        marker: bool,
        data: &[u8],
    ) -> Result<(), Vp8Drop> {
        if self.bytes + data.len() > MAX_FRAME_BYTES || self.parts.len() >= MAX_FRAME_PACKETS {
            self.abandon();
            return Err(Vp8Drop::TooLarge);
        }
        self.bytes += data.len();
        self.parts.push((seq, start, marker, data.to_vec()));
        Ok(())
    }

    fn abandon(&mut self) {
        if !self.parts.is_empty() {
            let end = self.parts.iter().map(|p| p.0).max();
            self.last_end_seq = self.last_end_seq.max(end);
            self.synced = false;
        }
        self.parts.clear();
        self.bytes = 0;
        self.current_ts = None;
    }

    /// A frame if its packets run without a hole from a start packet to a marker packet.
    fn try_complete(&mut self) -> Result<Frame, Vp8Drop> {
        self.parts.sort_unstable_by_key(|p| p.0);
        let first = self.parts.first().ok_or(Vp8Drop::Incomplete)?;
        let last = self.parts.last().ok_or(Vp8Drop::Incomplete)?;
        let contiguous = last.0 - first.0 + 1 == self.parts.len() as u64;
        if !(first.1 && last.2 && contiguous) {
            return Err(Vp8Drop::Incomplete);
        }
        let (first_seq, last_seq) = (first.0, last.0);
        // A whole frame lost between the previous one and this one breaks the chain.
        let follows = self.last_end_seq.is_none_or(|end| first_seq == end + 1);
        let mut data = Vec::with_capacity(self.bytes);
        for p in self.parts.drain(..) {
            data.extend_from_slice(&p.3);
        }
        let timestamp = self
            .current_ts
            .take()
            .expect("a frame in progress has a timestamp");
        self.bytes = 0;
        self.last_end_seq = Some(last_seq);
        if !follows {
            self.synced = false;
        }
        let key = keyframe_info(&data);
        if key.is_some() {
            self.synced = true;
        }
        if !self.synced {
            return Err(Vp8Drop::AwaitingKeyframe);
        }
        Ok(Frame {
            timestamp,
            keyframe: key.is_some(),
            size: key.flatten(),
            data,
        })
    }

    /// Whether the stream needs a keyframe before it yields frames again.
    pub fn awaiting_keyframe(&self) -> bool {
        !self.synced
    }
}

/// "Not complete yet" is not an error for the caller; anything else is.
fn incomplete_ok(e: Vp8Drop) -> Result<Option<Frame>, Vp8Drop> {
    match e {
        Vp8Drop::Incomplete => Ok(None),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake keyframe header for `w`×`h` followed by `n` bytes.
    fn key(w: u16, h: u16, n: usize) -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.resize(10 + n, 7);
        f
    }

    fn delta(n: usize) -> Vec<u8> {
        let mut f = vec![0x11];
        f.resize(n, 3);
        f
    }

    /// Splits a frame into packets with a minimal descriptor (no X), 100 bytes each.
    fn packets(frame: &[u8]) -> Vec<(bool, Vec<u8>)> {
        let chunks: Vec<_> = frame.chunks(100).collect();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                (i == chunks.len() - 1, p)
            })
            .collect()
    }

    #[test]
    fn reassembles_frames_out_of_order_and_reads_keyframe_size() {
        let mut d = Depacketizer::default();
        let frame = key(640, 360, 250);
        let mut pk = packets(&frame);
        pk.swap(0, 2);
        let seqs = [2u64, 1, 0];
        let mut out = None;
        for ((marker, p), seq) in pk.into_iter().zip(seqs) {
            out = d.push(10 + seq, 9000, marker, &p).unwrap();
        }
        let f = out.expect("frame complete");
        assert!(f.keyframe);
        assert_eq!(f.size, Some((640, 360)));
        assert_eq!(f.data, frame);
    }

    #[test]
    fn packetize_and_depacketize_round_trip() {
        let frame = key(1280, 720, 5000);
        let parts = packetize(&frame, 300, 1100);
        assert_eq!(parts.len(), 5);
        let mut d = Depacketizer::default();
        let mut out = None;
        for (i, p) in parts.iter().enumerate() {
            out = d.push(i as u64, 77, i == parts.len() - 1, p).unwrap();
        }
        assert_eq!(
            out.map(|f| (f.data, f.size)),
            Some((frame, Some((1280, 720))))
        );
    }

    #[test]
    fn after_a_loss_waits_for_the_next_keyframe() {
        let mut d = Depacketizer::default();
        let mut seq = 0u64;
        let mut feed = |d: &mut Depacketizer, frame: &[u8], ts: u32, skip: Option<usize>| {
            let mut last = Ok(None);
            for (i, (m, p)) in packets(frame).into_iter().enumerate() {
                seq += 1;
                if Some(i) == skip {
                    continue;
                }
                last = d.push(seq, ts, m, &p);
            }
            last
        };
        // A delta before any keyframe is useless.
        assert_eq!(
            feed(&mut d, &delta(50), 0, None),
            Err(Vp8Drop::AwaitingKeyframe)
        );
        assert!(feed(&mut d, &key(320, 180, 300), 3000, None)
            .unwrap()
            .is_some());
        assert!(feed(&mut d, &delta(150), 6000, None).unwrap().is_some());
        // Lose the middle of a delta frame: nothing comes out of it or the next delta.
        assert_eq!(feed(&mut d, &delta(250), 9000, Some(1)), Ok(None));
        assert_eq!(
            feed(&mut d, &delta(50), 12000, None),
            Err(Vp8Drop::AwaitingKeyframe)
        );
        assert!(d.awaiting_keyframe());
        let k = feed(&mut d, &key(320, 180, 300), 15000, None)
            .unwrap()
            .unwrap();
        assert!(k.keyframe);
        assert!(feed(&mut d, &delta(50), 18000, None).unwrap().is_some());
    }

    #[test]
    fn a_frame_lost_whole_breaks_the_chain() {
        let mut d = Depacketizer::default();
        let k = key(320, 180, 20);
        let (m, p) = &packets(&k)[0];
        assert!(d.push(1, 0, *m, p).unwrap().is_some());
        let dl = delta(20);
        let (m, p) = &packets(&dl)[0];
        // seq 2 (a whole frame) never arrives.
        assert_eq!(d.push(3, 6000, *m, p), Err(Vp8Drop::AwaitingKeyframe));
    }

    #[test]
    fn malformed_and_oversized_input_is_an_error_not_a_panic() {
        let mut d = Depacketizer::default();
        assert_eq!(d.push(1, 0, true, &[]), Err(Vp8Drop::Malformed));
        assert_eq!(d.push(1, 0, true, &[0x90]), Err(Vp8Drop::Malformed));
        assert_eq!(
            d.push(1, 0, true, &[0x90, 0x80, 0x80]),
            Err(Vp8Drop::Malformed)
        );
        let big = vec![0u8; 60_000];
        let mut p = vec![0x10];
        p.extend_from_slice(&big);
        let mut err = None;
        for i in 0..200 {
            if let Err(e) = d.push(10 + i, 90, false, &p) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(Vp8Drop::TooLarge));
    }
}
