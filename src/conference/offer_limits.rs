//! What one offer may ask of a room, checked on the raw SDP text before anything parses it.
//!
//! Offers are handled on the room's own task, and what str0m spends on one grows with its
//! m-lines: 3,000 receive-only m-lines cost a room about half a second. An offer always lists
//! every m-line of its session (a browser recycles, never drops, a stopped one), so the cap per
//! offer is also the cap per participant.

/// Most m-lines one offer (and so one participant's session) may hold. The web client needs a
/// page of at most 25 video tiles, the audio slots and its own four sources (about 32); twice
/// that, and again, leaves room for recycled and stopped m-lines.
pub const MAX_OFFER_MLINES: usize = 128;

/// Most bytes of SDP one offer may hold: a browser's m-line is 1–4 KB with every codec listed.
pub const MAX_OFFER_SDP_BYTES: usize = 384 * 1024;

/// Refuses an offer over either bound, with a message saying which and by how much.
pub fn check(sdp: &str) -> Result<(), String> {
    if sdp.len() > MAX_OFFER_SDP_BYTES {
        return Err(format!(
            "The offer's SDP is {} bytes; at most {MAX_OFFER_SDP_BYTES} are accepted.",
            sdp.len()
        ));
    }
    let mlines = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if mlines > MAX_OFFER_MLINES {
        return Err(format!(
            "The offer has {mlines} m-lines; at most {MAX_OFFER_MLINES} are accepted per participant."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(mlines: usize) -> String {
        let mut s = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
        for i in 0..mlines {
            s.push_str(&format!(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na=recvonly\r\n"
            ));
        }
        s
    }

    #[test]
    fn counts_mlines_and_bytes() {
        assert_eq!(check(&sdp(MAX_OFFER_MLINES)), Ok(()));
        let err = check(&sdp(MAX_OFFER_MLINES + 1)).expect_err("one m-line too many");
        assert!(err.contains("129 m-lines"), "{err}");
        let huge = format!("{}a={}\r\n", sdp(1), "x".repeat(MAX_OFFER_SDP_BYTES));
        assert!(check(&huge).expect_err("too large").contains("bytes"));
        // An attribute that merely contains "m=" is not an m-line.
        assert_eq!(check(&format!("{}a=x m=y\r\n", sdp(1))), Ok(()));
    }
}
