//! AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2) for the lean path's [`super::srtp`]: the
//! profile a DTLS handshake may still choose (RFC 5764's mandatory one). Browsers pick GCM
//! against confab, so this is the rare case, and it is built from str0m's public pieces rather
//! than for speed: the provider's AES-CTR cipher, its HMAC-SHA1, and
//! [`Aes128CmSha1_80`]'s IV and tag helpers.
//!
//! Nonce reuse is not the hazard it is with GCM (the HMAC key is separate), but the same rule
//! holds: every compound sealed here starts with the sealer's own reporter SSRC, checked by
//! the caller before it gets here.

use super::srtp::{
    derive, LABEL_RTCP_AUTH, LABEL_RTCP_KEY, LABEL_RTCP_SALT, LABEL_RTP_AUTH, LABEL_RTP_KEY,
    LABEL_RTP_SALT,
};
use str0m::crypto::{Aes128CmSha1_80, Aes128CmSha1_80Cipher, CryptoProvider, Sha1HmacProvider};

/// Master key and salt lengths.
pub const KEY_LEN: usize = Aes128CmSha1_80::KEY_LEN;
pub const SALT_LEN: usize = Aes128CmSha1_80::SALT_LEN;
/// The 80-bit tag after every packet.
pub const TAG_LEN: usize = Aes128CmSha1_80::HMAC_TAG_LEN;
const AUTH_KEY_LEN: usize = Aes128CmSha1_80::HMAC_KEY_LEN;

/// `N` bytes of RFC 3711 §4.3 output for `label`: a key, salt or HMAC key by its length.
fn derived<const N: usize>(
    provider: &CryptoProvider,
    master: &[u8],
    salt: &[u8],
    label: u8,
) -> [u8; N] {
    let mut out = [0u8; N];
    derive(provider, master, salt, label, &mut out);
    out
}

/// One direction's AES-CM session keys.
pub(super) struct CmSession {
    rtp: Box<dyn Aes128CmSha1_80Cipher>,
    rtp_salt: [u8; SALT_LEN],
    rtp_auth: [u8; AUTH_KEY_LEN],
    rtcp: Box<dyn Aes128CmSha1_80Cipher>,
    rtcp_salt: [u8; SALT_LEN],
    rtcp_auth: [u8; AUTH_KEY_LEN],
    hmac: &'static dyn Sha1HmacProvider,
    /// The provider's cipher writes to a buffer apart from its input: RTCP is sealed and
    /// opened through this one (as long as the largest compound, so bounded by a datagram).
    scratch: Vec<u8>,
}

impl CmSession {
    /// Session keys from one side's master key and salt; `encrypt` for a sealer.
    pub(super) fn new(
        provider: &CryptoProvider,
        master: &[u8],
        salt: &[u8],
        encrypt: bool,
    ) -> Self {
        let ciphers = provider.srtp_provider.aes_128_cm_sha1_80();
        CmSession {
            rtp: ciphers.create_cipher(derived(provider, master, salt, LABEL_RTP_KEY), encrypt),
            rtp_salt: derived(provider, master, salt, LABEL_RTP_SALT),
            rtp_auth: derived(provider, master, salt, LABEL_RTP_AUTH),
            rtcp: ciphers.create_cipher(derived(provider, master, salt, LABEL_RTCP_KEY), encrypt),
            rtcp_salt: derived(provider, master, salt, LABEL_RTCP_SALT),
            rtcp_auth: derived(provider, master, salt, LABEL_RTCP_AUTH),
            hmac: provider.sha1_hmac_provider,
            scratch: Vec::new(),
        }
    }

    /// Appends `payload` encrypted after the header at `out[start..]`, then the tag over
    /// header, ciphertext and ROC. On a cipher failure `out` is left as it was, so no clear
    /// payload can leave.
    pub(super) fn seal_rtp(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        payload: &[u8],
        ssrc: u32,
        index: u64,
    ) {
        let iv = Aes128CmSha1_80::rtp_iv(self.rtp_salt, ssrc, index);
        let at = out.len();
        out.resize(at + payload.len() + TAG_LEN, 0);
        if self
            .rtp
            .encrypt(&iv, payload, &mut out[at..at + payload.len()])
            .is_err()
        {
            out.truncate(at);
            return;
        }
        let hmac = |k: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(k, parts);
        let tag_at = out.len() - TAG_LEN - start;
        Aes128CmSha1_80::rtp_hmac(hmac, &self.rtp_auth, &mut out[start..], index, tag_at);
    }

    /// Encrypts a compound after its first 8 bytes (RFC 3711 §3.4), then appends E flag and
    /// index and the tag over all of it.
    pub(super) fn seal_rtcp(&mut self, compound: &mut Vec<u8>, ssrc: u32, index: u32) -> bool {
        let iv = Aes128CmSha1_80::rtp_iv(self.rtcp_salt, ssrc, u64::from(index));
        self.scratch.clear();
        self.scratch.resize(compound.len() - 8, 0);
        if self
            .rtcp
            .encrypt(&iv, &compound[8..], &mut self.scratch)
            .is_err()
        {
            return false;
        }
        compound.truncate(8);
        compound.extend_from_slice(&self.scratch);
        compound.extend_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag_at = compound.len();
        compound.resize(tag_at + TAG_LEN, 0);
        let hmac = |k: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(k, parts);
        Aes128CmSha1_80::rtcp_hmac(hmac, &self.rtcp_auth, compound, tag_at);
        true
    }

    /// Checks the tag of an SRTP packet and returns header + clear payload.
    pub(super) fn open_rtp(
        &mut self,
        packet: &[u8],
        header_len: usize,
        index: u64,
    ) -> Option<Vec<u8>> {
        let split = packet
            .len()
            .checked_sub(TAG_LEN)
            .filter(|s| *s >= header_len)?;
        let (sealed, tag) = packet.split_at(split);
        let hmac = |k: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(k, parts);
        if !Aes128CmSha1_80::rtp_verify(hmac, &self.rtp_auth, sealed, index, tag) {
            return None;
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let iv = Aes128CmSha1_80::rtp_iv(self.rtp_salt, ssrc, index);
        let mut out = sealed.to_vec();
        self.rtp
            .decrypt(&iv, &sealed[header_len..], &mut out[header_len..])
            .ok()?;
        Some(out)
    }

    /// Whether the tag of an SRTCP compound (its last [`TAG_LEN`] bytes, over everything
    /// before them) matches. Checked before anything else is done with it.
    pub(super) fn rtcp_authentic(&self, packet: &[u8]) -> bool {
        let Some(split) = packet.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (authenticated, tag) = packet.split_at(split);
        let hmac = |k: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(k, parts);
        Aes128CmSha1_80::rtcp_verify(hmac, &self.rtcp_auth, authenticated, tag)
    }

    /// Decrypts an authenticated compound (`encrypted` is what follows its first 8 bytes, up
    /// to the E flag) into `out`, after the 8 clear bytes.
    pub(super) fn open_rtcp(
        &mut self,
        head: &[u8],
        encrypted: &[u8],
        ssrc: u32,
        index: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        let iv = Aes128CmSha1_80::rtp_iv(self.rtcp_salt, ssrc, u64::from(index));
        out.extend_from_slice(head);
        out.resize(head.len() + encrypted.len(), 0);
        self.rtcp
            .decrypt(&iv, encrypted, &mut out[head.len()..])
            .is_ok()
    }
}
