//! HTTPS/WSS certificates: PEM files, or a self-signed one made at startup (rcgen).

use crate::config::Tls;
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;

/// Loads or makes the certificate for the listener.
pub async fn rustls_config(source: &Tls, addrs: &[SocketAddr]) -> std::io::Result<RustlsConfig> {
    // Two rustls crypto backends are linked (via different crates); pick one explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match source {
        Tls::Files { cert, key } => RustlsConfig::from_pem_file(cert, key).await,
        Tls::SelfSigned => {
            let (cert, key) = self_signed(addrs).map_err(std::io::Error::other)?;
            RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes()).await
        }
    }
}

/// A self-signed certificate for `localhost` and the given addresses, as PEM (cert, key).
pub fn self_signed(addrs: &[SocketAddr]) -> Result<(String, String), rcgen::Error> {
    let mut names = vec!["localhost".to_string()];
    names.extend(addrs.iter().map(|a| a.ip().to_string()));
    names.sort();
    names.dedup();
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}
