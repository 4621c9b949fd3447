//! Known answers both SRTP test modules share: RFC 3711 Appendix B.3's master key and salt,
//! and libsrtp `test/srtp_driver.c` `srtp_validate`'s AES_CM_128_HMAC_SHA1_80 packets under
//! them (an RTP packet and an RTCP sender report from 0xcafebabe, each then 16 bytes of `ab`).

use super::keys::Keying;
use str0m::crypto::dtls::SrtpProfile;

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub const MASTER: &str = "E1F97A0D3E018BE0D64FA32C06DE4139";
pub const SALT: &str = "0EC675AD498AFEEBB6960B3AABE6";

pub const RTP_PLAIN: &str = "800f1234decafbadcafebabeabababababababababababababababab";
pub const SRTP: &str =
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb";
pub const RTCP_PLAIN: &str = "81c8000bcafebabeabababababababababababababababab";
/// Protected as SRTCP index 1: encrypted body, `80000001` (E flag, index), tag.
pub const SRTCP: &str =
    "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798";

/// RFC 5764 §4.2 material around [`MASTER`]/[`SALT`] as the DTLS client's halves (client key,
/// server key, client salt, server salt): the libsrtp packets are the client's. `active`
/// says whether we are the client (our sealer then reproduces them, our opener cannot open
/// them).
pub fn keying(active: bool) -> Keying {
    let mut material = hex(MASTER);
    material.extend_from_slice(&[0x11; 16]);
    material.extend_from_slice(&hex(SALT));
    material.extend_from_slice(&[0x22; 14]);
    Keying {
        material,
        profile: SrtpProfile::AES128_CM_SHA1_80,
        active,
    }
}
