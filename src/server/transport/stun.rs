//! The few bytes of STUN the shell reads itself: which participant a binding request names.

/// The part of a STUN binding request's USERNAME before the colon (the receiver's ufrag).
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    if !is_stun(data) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let value = body.get(i + 4..i + 4 + alen)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

/// Whether `data` is a STUN message (an ICE check or consent refresh, not DTLS or SRTP).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] & 0xC0 == 0 && data[4..8] == MAGIC
}

const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A binding request carrying only USERNAME (no integrity): enough to be routed.
    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = vec![];
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn reads_local_ufrag() {
        let m = binding_request("abcd:efgh");
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert!(is_stun(&m));
    }

    #[test]
    fn rejects_non_stun_and_truncated() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        assert!(!is_stun(&[0x80; 40]));
        let m = binding_request("abcd:efgh");
        for n in 0..m.len() {
            assert_eq!(stun_local_ufrag(&m[..n]), None);
        }
    }
}
