//! Codec-specific reading of RTP payloads: is this packet the start of a keyframe?

/// The video codecs the SFU forwards, as far as keyframe detection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 (RFC 6184).
    H264,
    /// Anything else: every packet is treated as a possible start.
    Other,
}

impl VideoCodec {
    /// Maps str0m's codec to ours.
    pub fn from_str0m(codec: str0m::format::Codec) -> Self {
        match codec {
            str0m::format::Codec::Vp8 => VideoCodec::Vp8,
            str0m::format::Codec::H264 => VideoCodec::H264,
            _ => VideoCodec::Other,
        }
    }

    /// Whether `payload` begins a keyframe a decoder can start from.
    pub fn is_keyframe_start(self, payload: &[u8]) -> bool {
        match self {
            VideoCodec::Vp8 => vp8_keyframe_start(payload),
            VideoCodec::H264 => h264_keyframe(payload),
            VideoCodec::Other => true,
        }
    }
}

/// VP8: the payload descriptor says "start of partition 0", and the payload header's
/// P bit is 0 (key frame).
fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if extended {
        let Some(&x) = p.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&pid) = p.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    matches!(p.get(i), Some(h) if h & 0x01 == 0)
}

/// H.264: an IDR slice or SPS, alone, aggregated (STAP-A) or as the first fragment (FU-A).
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else {
        return false;
    };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: 16-bit sizes, each followed by a NAL unit.
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if matches!(p[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => matches!(p.get(1), Some(h) if h & 0x80 != 0 && matches!(h & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes() {
        // X=1 S=1, I=1, 15-bit picture id, then payload header with P=0.
        assert!(VideoCodec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81, 0x02, 0x10]));
        // Same, P=1: inter frame.
        assert!(!VideoCodec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81, 0x02, 0x11]));
        // Not a start of partition.
        assert!(!VideoCodec::Vp8.is_keyframe_start(&[0x80, 0x80, 0x81, 0x02, 0x10]));
        // No extension, keyframe.
        assert!(VideoCodec::Vp8.is_keyframe_start(&[0x10, 0x10]));
        // With TL0PICIDX and TID.
        assert!(VideoCodec::Vp8.is_keyframe_start(&[0x90, 0xE0, 0x05, 0x01, 0x20, 0x10]));
        // Truncated input never panics.
        for n in 0..5 {
            let _ = VideoCodec::Vp8.is_keyframe_start(&[0x90, 0xE0, 0x85, 0x01, 0x20][..n]);
        }
    }

    #[test]
    fn h264_keyframes() {
        assert!(VideoCodec::H264.is_keyframe_start(&[0x65, 0]));
        assert!(!VideoCodec::H264.is_keyframe_start(&[0x41, 0]));
        // STAP-A with SPS inside.
        assert!(VideoCodec::H264.is_keyframe_start(&[0x78, 0, 2, 0x67, 0]));
        // FU-A start of IDR, and a middle fragment.
        assert!(VideoCodec::H264.is_keyframe_start(&[0x7c, 0x85]));
        assert!(!VideoCodec::H264.is_keyframe_start(&[0x7c, 0x05]));
        assert!(!VideoCodec::H264.is_keyframe_start(&[]));
        assert!(!VideoCodec::H264.is_keyframe_start(&[0x78, 0xff]));
    }
}
