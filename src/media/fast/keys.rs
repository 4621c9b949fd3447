//! SRTP keying material copied out of str0m's DTLS by a provider that wraps the default one.
//!
//! str0m's crypto backend is a public extension point whose parts are `&'static`, so the
//! wrapper is one process-wide provider. Which `Rtc` an instance belongs to is told by the
//! thread that builds it: [`build_tapped`] leaves a [`KeySlot`] in a thread-local the
//! provider takes from as str0m creates that `Rtc`'s DTLS instance (synchronously, inside
//! `RtcConfig::build`). Every other `Rtc` built with the provider simply has no slot.
//!
//! dimpl (str0m 0.25's DTLS) offers every profile and, as the server, prefers GCM; neither side
//! can be told to pick AES-CM. [`with_aes_cm`] lets the simulator give both ends of a
//! connection AES_CM_128_HMAC_SHA1_80 keys all the same, so that str0m's own AES-CM SRTP runs
//! against the lean path's (`cm`).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::crypto::dtls::{
    DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, KeyingMaterial,
    ProtocolVersion, SrtpProfile,
};
use str0m::crypto::CryptoError;
use str0m::{Rtc, RtcConfig};

/// What the DTLS handshake agreed for SRTP, as the fast path needs it.
#[derive(Clone)]
pub struct Keying {
    /// RFC 5764 layout: client key, server key, client salt, server salt.
    pub material: Vec<u8>,
    /// The protection profile the handshake chose.
    pub profile: SrtpProfile,
    /// Whether this side was the DTLS client (it then sends with the client half).
    pub active: bool,
}

impl std::fmt::Debug for Keying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key bytes never reach a log.
        f.debug_struct("Keying")
            .field("len", &self.material.len())
            .field("profile", &self.profile)
            .field("active", &self.active)
            .finish()
    }
}

/// Where one `Rtc`'s keying material lands once its handshake completes (set once: WebRTC
/// does not renegotiate DTLS on a live transport).
pub type KeySlot = Arc<OnceLock<Keying>>;

thread_local! {
    static NEXT_SLOT: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
    static AES_CM: Cell<bool> = const { Cell::new(false) };
}

/// Bytes of AES_CM_128_HMAC_SHA1_80 keying material (RFC 5764 §4.2: two 128-bit keys, two
/// 112-bit salts).
const AES_CM_MATERIAL: usize = 2 * 16 + 2 * 14;

/// Runs `f` with every DTLS instance built through this provider on this thread (the
/// server's `Rtc` in [`build_tapped`], a bot's in `bot::core`) handing str0m, and the key
/// slot, AES_CM_128_HMAC_SHA1_80 keys: the first 60 bytes of what the handshake exported,
/// which under DTLS 1.2 (str0m's default; its PRF output is a stream) are the 60 bytes the
/// same handshake exports for AES-CM. Both ends must be built inside `f`. For the
/// simulator's tests only: no production path calls it.
#[doc(hidden)]
pub fn with_aes_cm<R>(f: impl FnOnce() -> R) -> R {
    let was = AES_CM.with(|c| c.replace(true));
    let r = f();
    AES_CM.with(|c| c.set(was));
    r
}

/// The default provider, with its DTLS part wrapped.
fn tapped_provider() -> Arc<CryptoProvider> {
    static DEFAULT: OnceLock<CryptoProvider> = OnceLock::new();
    static TAP: OnceLock<TapProvider> = OnceLock::new();
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let d = DEFAULT.get_or_init(str0m::crypto::from_feature_flags);
            let tap: &'static TapProvider = TAP.get_or_init(|| TapProvider {
                inner: d.dtls_provider,
            });
            Arc::new(CryptoProvider {
                srtp_provider: d.srtp_provider,
                sha1_hmac_provider: d.sha1_hmac_provider,
                sha1_provider: d.sha1_provider,
                sha256_provider: d.sha256_provider,
                dtls_provider: tap,
            })
        })
        .clone()
}

/// The default provider's parts (SRTP ciphers and HMAC) for the fast path's own use.
pub fn provider() -> Arc<CryptoProvider> {
    tapped_provider()
}

/// Builds an `Rtc` whose SRTP keying material will land in the returned slot.
pub fn build_tapped(config: RtcConfig, now: Instant) -> (Rtc, KeySlot) {
    let slot = KeySlot::default();
    NEXT_SLOT.with(|s| *s.borrow_mut() = Some(slot.clone()));
    let rtc = config.set_crypto_provider(tapped_provider()).build(now);
    // Taken by the provider during `build`; cleared here should it ever not be.
    NEXT_SLOT.with(|s| s.borrow_mut().take());
    (rtc, slot)
}

#[derive(Debug)]
struct TapProvider {
    inner: &'static dyn DtlsProvider,
}

impl DtlsProvider for TapProvider {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = self.inner.new_dtls(cert, now, dtls_version, mtu)?;
        let slot = NEXT_SLOT.with(|s| s.borrow_mut().take());
        let aes_cm = AES_CM.with(Cell::get);
        Ok(match (slot, aes_cm) {
            (None, false) => inner,
            (slot, aes_cm) => Box::new(TapInstance {
                inner,
                slot,
                aes_cm,
            }),
        })
    }
}

#[derive(Debug)]
struct TapInstance {
    inner: Box<dyn DtlsInstance>,
    slot: Option<KeySlot>,
    /// See [`with_aes_cm`].
    aes_cm: bool,
}

impl DtlsInstance for TapInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active)
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let active = self.inner.is_active();
        let mut out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(km, _) = &out {
            if self.aes_cm && km.len() >= AES_CM_MATERIAL {
                let km = KeyingMaterial::new(&km[..AES_CM_MATERIAL]);
                out = DtlsOutput::KeyingMaterial(km, SrtpProfile::AES128_CM_SHA1_80);
            }
        }
        if let (DtlsOutput::KeyingMaterial(km, profile), Some(slot)) = (&out, &self.slot) {
            let _ = slot.set(Keying {
                material: km.to_vec(),
                profile: *profile,
                active,
            });
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}
