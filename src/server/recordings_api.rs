//! The recordings' HTTP side: the room API's calls (bearer key), hosts' signed download links,
//! and the public room status a pre-join screen reads to warn that a room records.
//!
//! | call | auth | |
//! |---|---|---|
//! | `POST /api/rooms/{room}/recording` | key | start (room must be open: someone in it) |
//! | `DELETE /api/rooms/{room}/recording` | key | stop |
//! | `GET /api/recordings` | key | list: id, room, started, duration_ms, bytes, url |
//! | `GET /api/recordings/{id}` | key | the WebM file (Range requests) |
//! | `DELETE /api/recordings/{id}` | key | delete (not while it records) |
//! | `GET /recordings/{id}?t=…` | signed link | the file, for a host's browser |
//! | `GET /api/rooms/{room}/status` | none | `{"recording": bool}` and nothing else |

use super::api::{base_url, no_room, ApiError, ApiState};
use crate::conference::{ApiCall, ApiReply};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// The routes, merged into the room API's router (they share its state and rate limit).
pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/rooms/{room}/recording", post(start).delete(stop))
        .route("/api/rooms/{room}/status", get(status))
        .route("/api/recordings", get(list))
        .route("/api/recordings/{id}", get(download).delete(delete))
        .route("/recordings/{id}", get(signed_download))
}

async fn record(api: &ApiState, room: &str, on: bool) -> Result<Response, ApiError> {
    match api.shared.rooms.call(room, ApiCall::Record(on)).await {
        Some(ApiReply::Recording(Ok(()))) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(ApiReply::Recording(Err(why))) => {
            Err(ApiError::new(StatusCode::CONFLICT, "recording", why))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "The room gave an unexpected answer.",
        )),
        None if api.shared.rooms.exists(room) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "room_empty",
            "Nobody is in the room: there is nothing to record.",
        )),
        None => Err(no_room()),
    }
}

async fn start(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    record(&api, &room, true).await
}

async fn stop(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    record(&api, &room, false).await
}

/// Public: whether a room records, so that people are told before they enter. It says the
/// same (`false`) for a room that does not exist as for one that does not record.
async fn status(State(api): State<Arc<ApiState>>, Path(room): Path<String>) -> Response {
    let recording = api.shared.recordings.room_records(&room);
    axum::Json(json!({ "recording": recording })).into_response()
}

async fn list(State(api): State<Arc<ApiState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let base = base_url(&api.shared, &headers);
    let list = api
        .shared
        .recordings
        .list(None, |id| format!("{base}/api/recordings/{id}"));
    Ok(axum::Json(json!({ "recordings": list })).into_response())
}

fn no_recording() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_recording",
        "There is no such recording.",
    )
}

/// Serves a recording file with Range support (players seek with it).
async fn serve(api: &ApiState, id: &str, req: Request) -> Result<Response, ApiError> {
    let path = api.shared.recordings.file(id).ok_or_else(no_recording)?;
    let mut res = ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(|_| no_recording())?
        .map(Body::new);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.webm\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

async fn download(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    api.authorise(req.headers())?;
    serve(&api, &id, req).await
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    t: String,
}

async fn signed_download(
    State(api): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(link): Query<Link>,
    req: Request,
) -> Result<Response, ApiError> {
    // Rate-limited like the API, so that guessing links is slow too.
    api.allow()?;
    if !api.shared.recordings.link_valid(&id, &link.t) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This download link is not valid or has expired; ask for the list again.",
        ));
    }
    serve(&api, &id, req).await
}

async fn delete(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    match api.shared.recordings.delete(&id) {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Err(no_recording()),
        Err(why) => Err(ApiError::new(StatusCode::CONFLICT, "recording", why)),
    }
}
