//! Extending the 16-bit RTP sequence numbers a bot receives to 64 bits, for loss counting.

/// The 64-bit sequence number closest to `reference` whose low 16 bits are `seq16`.
pub(super) fn extend_seq(reference: Option<u64>, seq16: u16) -> u64 {
    // Start high enough that a few reordered packets before the first never go negative.
    let Some(r) = reference else {
        return (1 << 16) + u64::from(seq16);
    };
    let delta = seq16.wrapping_sub(r as u16) as i16;
    r.saturating_add_signed(i64::from(delta))
}

#[cfg(test)]
mod tests {
    use super::extend_seq;

    #[test]
    fn sequence_numbers_extend_across_wraps_and_reordering() {
        let a = extend_seq(None, 65_535);
        let b = extend_seq(Some(a), 0);
        assert_eq!(b, a + 1);
        assert_eq!(extend_seq(Some(b), 65_534), a - 1);
        assert_eq!(extend_seq(Some(b), 5), b + 5);
    }
}
