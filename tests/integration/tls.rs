//! HTTPS and WSS through rustls, with a certificate the test makes and trusts.

use crate::common::{assert_closed_unanswered, TestServer};
use confab::config::Tls;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn serves_https_and_wss() {
    let dir = std::env::temp_dir().join(format!("confab-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) =
        confab::server::tls::self_signed(&["127.0.0.1:0".parse().expect("addr")]).expect("cert");
    std::fs::write(dir.join("cert.pem"), &cert).expect("write");
    std::fs::write(dir.join("key.pem"), &key).expect("write");
    let files = Tls::Files {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let server = TestServer::with(|c| c.tls = Some(files)).await;

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.as_bytes()).expect("pem"))
        .expect("trusted");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").expect("name");

    // HTTPS
    let tcp = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("tcp");
    let mut tls = connector
        .connect(name.clone(), tcp)
        .await
        .expect("tls handshake");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    tls.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok"), "{body}");

    // ICE-TCP shares the HTTPS port: junk opening like a media frame is closed before any
    // TLS, and counted.
    assert_closed_unanswered(server.http, &[0, 5, 0x80, 0x60, 1, 2, 3]).await;
    assert_eq!(
        server.metric("confab_ice_tcp_refused_connections_total"),
        1.0
    );

    // WSS
    let tcp = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("tcp");
    let tls = connector.connect(name, tcp).await.expect("tls handshake");
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .expect("wss upgrade");
    ws.send(Message::Text(
        r#"{"type":"join","room":"secure","name":"Ana"}"#.into(),
    ))
    .await
    .expect("send");
    let reply = ws.next().await.expect("reply").expect("frame");
    let text = reply.into_text().expect("text");
    assert!(text.contains(r#""type":"joined""#), "{text}");
}
