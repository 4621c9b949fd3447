//! The HTTP surface: `/ws` signalling, `/healthz`, `/metrics`, the room API (`/api`,
//! `/new-meeting`), and the embedded web client.

use super::{session, Shared};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use std::sync::Arc;

/// The browser client, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "web/"]
struct WebAssets;

/// Builds the application; tests can call it without binding sockets.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/cluster/link", get(crate::cluster::link::accept))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .merge(super::api::router(Arc::clone(&shared)))
        .fallback(get(asset))
        .with_state(shared)
}

/// What a connection over the caps may ask: health and metrics, nothing else.
pub fn health_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is at its connection limit; try again later.",
            )
        })
        .with_state(shared)
}

async fn ws(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Relayed by another node of the cluster: served here, never relayed again. A relay
    // header without the cluster secret is refused, never taken for a plain client.
    let relay = headers.get(crate::cluster::proxy::RELAY_HEADER);
    let relayed = match (relay, shared.cluster.as_ref()) {
        (None, _) | (Some(_), None) => session::Via::Client,
        (Some(value), Some(cluster)) => {
            if !crate::cluster::proxy::authentic(value.as_bytes(), &cluster.config.secret) {
                cluster.metrics.relay_forged.inc();
                return (
                    StatusCode::FORBIDDEN,
                    "relay header without the cluster secret",
                )
                    .into_response();
            }
            // Which relay: from an edge (media stays there) or to this node as an edge.
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            match (
                header(crate::cluster::edge::EDGE_HEADER),
                header(crate::cluster::edge::ORIGIN_HEADER),
            ) {
                (Some(_), _) => session::Via::Edge,
                (None, Some(origin)) => session::Via::ToEdge(origin),
                (None, None) => session::Via::Relay,
            }
        }
    };
    // axum's own limit sits above ours so that an oversize message gets our clear error
    // instead of a dropped connection.
    let limit = shared.config.max_message_bytes * 2;
    upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        // Signalling is small and rare; default 128 KiB buffers per socket would dominate the
        // memory of an idle participant.
        .read_buffer_size(8 << 10)
        .write_buffer_size(8 << 10)
        .on_upgrade(move |socket| session::run_routed(socket, shared, relayed))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = shared.metrics.render();
    if let Some(cluster) = &shared.cluster {
        cluster.metrics.append_to(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let data = match dev_web_dir() {
        Some(dir) => read_from_disk(dir, path).await,
        None => WebAssets::get(path).map(|file| file.data.into_owned()),
    };
    match data {
        Some(data) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_string()),
                    (header::CACHE_CONTROL, "no-cache".to_string()),
                ],
                data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// `CONFAB_WEB_DIR` serves the client from disk instead of the copy compiled in, so that
/// work on `web/` needs no rebuild of the release binary. A developer setting only.
fn dev_web_dir() -> Option<&'static std::path::Path> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("CONFAB_WEB_DIR").map(Into::into))
        .as_deref()
}

async fn read_from_disk(dir: &std::path::Path, path: &str) -> Option<Vec<u8>> {
    // Only plain names below the directory: no `..`, no absolute paths.
    let safe = path
        .split('/')
        .all(|part| !part.is_empty() && part != ".." && part != "." && !part.contains('\\'));
    if !safe {
        return None;
    }
    tokio::fs::read(dir.join(path)).await.ok()
}
