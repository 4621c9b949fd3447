//! EBML (RFC 8794) encoding primitives: element ids, sizes and the value types WebM uses.

/// The size field a streaming writer uses for an element whose end is not known yet (8 bytes,
/// all value bits set): Segment and Cluster are written this way and patched later if possible.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Length of the fixed-width size field used for patchable sizes.
pub const SIZE_LEN: usize = 8;

/// Appends an element id (ids carry their own length marker, so they are written as-is).
pub fn id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a data size as the shortest variable-length integer.
pub fn size(out: &mut Vec<u8>, size: u64) {
    // A value of all ones is reserved for "unknown", so each width holds up to 2^(7n) - 2.
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    assert!(
        size < (1u64 << 56) - 1,
        "EBML size {size} exceeds 8-byte vint"
    );
    size_fixed(out, size, len);
}

/// Appends a data size in exactly `len` bytes (for fields patched later).
pub fn size_fixed(out: &mut Vec<u8>, size: u64, len: usize) {
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// The 8-byte size field for `size`, to overwrite an [`UNKNOWN_SIZE`] placeholder.
pub fn size8(size: u64) -> [u8; 8] {
    let mut out = Vec::with_capacity(8);
    size_fixed(&mut out, size, 8);
    let mut a = [0u8; 8];
    a.copy_from_slice(&out);
    a
}

/// Appends an unsigned-integer element in its shortest form.
pub fn uint(out: &mut Vec<u8>, el: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    id(out, el);
    size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a signed-integer element as 8 bytes (used only for DateUTC).
pub fn int8(out: &mut Vec<u8>, el: u32, value: i64) {
    id(out, el);
    size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a 64-bit float element.
pub fn float(out: &mut Vec<u8>, el: u32, value: f64) {
    id(out, el);
    size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a string or binary element.
pub fn bytes(out: &mut Vec<u8>, el: u32, value: &[u8]) {
    id(out, el);
    size(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a master element whose children were encoded into `body`.
pub fn master(out: &mut Vec<u8>, el: u32, body: &[u8]) {
    bytes(out, el, body);
}

/// Appends a Void element occupying exactly `total` bytes (at least 2), header included.
pub fn void(out: &mut Vec<u8>, total: usize) {
    assert!(total >= 2, "a Void element needs at least 2 bytes");
    // One id byte, then a size field of 1 byte (payload < 127) or 8 bytes.
    if total - 2 < 127 {
        out.push(ids::VOID);
        size_fixed(out, (total - 2) as u64, 1);
        out.resize(out.len() + total - 2, 0);
    } else {
        out.push(ids::VOID);
        size_fixed(out, (total - 9) as u64, 8);
        out.resize(out.len() + total - 9, 0);
    }
}

/// The Matroska element ids the WebM writer uses.
pub mod ids {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const VOID: u8 = 0xEC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const DURATION: u32 = 0x4489;
    pub const DATE_UTC: u32 = 0x4461;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_shortest_vint_and_avoid_the_reserved_value() {
        let enc = |n| {
            let mut v = Vec::new();
            size(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0x80]);
        assert_eq!(enc(126), [0xFE]);
        // 127 in one byte would be 0xFF, which means "unknown".
        assert_eq!(enc(127), [0x40, 0x7F]);
        assert_eq!(enc(300), [0x41, 0x2C]);
        assert_eq!(size8(5), [0x01, 0, 0, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn ids_and_uints_are_minimal() {
        let mut v = Vec::new();
        uint(&mut v, ids::TRACK_NUMBER, 1);
        assert_eq!(v, [0xD7, 0x81, 0x01]);
        v.clear();
        uint(&mut v, ids::TIMESTAMP_SCALE, 1_000_000);
        assert_eq!(v, [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
    }

    #[test]
    fn void_fills_exactly_the_requested_space() {
        for total in [2, 50, 128, 129, 400] {
            let mut v = Vec::new();
            void(&mut v, total);
            assert_eq!(v.len(), total, "void of {total}");
        }
    }
}
