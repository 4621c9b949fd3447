//! The room API (`/api`, bearer key) and the join page's "New meeting" (`/new-meeting`):
//! create rooms and get their links, list rooms and participants, remove someone, end a room.
//!
//! Without `--api-key` there is no API: every `/api` call answers `404 api_disabled`. Every
//! error is JSON `{"error": {"code", "message"}}` with a stable code; calls are rate-limited
//! server-wide (checked before the key, so guessing keys is slow too).

use super::rooms::{CreateError, Created};
use super::Shared;
use crate::conference::record::Key;
use crate::conference::{ApiCall, ApiReply};
use crate::model::{ParticipantId, RoomMode};
use crate::rate::TokenBucket;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Calls per second the API (and "New meeting") accepts on average, server-wide, and the burst.
pub const API_PER_SEC: f64 = 10.0;
/// See [`API_PER_SEC`].
pub const API_BURST: f64 = 30.0;

/// Largest request body, in bytes.
const MAX_BODY: usize = 4096;

/// Everything the API handlers share.
pub(super) struct ApiState {
    pub(super) shared: Arc<Shared>,
    /// The server-wide rate limit of the API.
    bucket: Mutex<TokenBucket>,
}

/// An API failure: status, stable code, sentence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// The API's routes, for any outer router state.
pub fn router<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> Router<S> {
    let state = Arc::new(ApiState {
        shared,
        bucket: Mutex::new(TokenBucket::new(API_PER_SEC, API_BURST, Instant::now())),
    });
    Router::new()
        .route("/api/rooms", post(create).get(list))
        .route("/api/rooms/{room}", delete(end))
        .route("/api/rooms/{room}/participants", get(participants))
        .route("/api/rooms/{room}/participants/{id}", delete(remove))
        .merge(super::recordings_api::routes())
        .route("/api/cluster", get(cluster))
        .route("/api/cluster/drain", post(drain))
        .route("/api/{*rest}", get(unknown).post(unknown).delete(unknown))
        .route("/new-meeting", post(new_meeting))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

impl ApiState {
    pub(super) fn allow(&self) -> Result<(), ApiError> {
        let limited = || {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests; slow down.",
            )
        };
        let mut b = self.bucket.lock().map_err(|_| limited())?;
        if b.allow(Instant::now()) {
            Ok(())
        } else {
            Err(limited())
        }
    }

    /// Rate limit, then the bearer key.
    pub(super) fn authorise(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = self.shared.config.rooms.api_key.as_deref() else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "api_disabled",
                "This server has no room API (start it with --api-key).",
            ));
        };
        self.allow()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Send the API key as 'Authorization: Bearer <key>'.",
                )
            })?;
        if !Key::from_secret(key).matches(given.trim()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "The API key is not valid.",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mode: Option<RoomMode>,
}

fn parse_body(body: &Bytes) -> Result<CreateBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateBody::default());
    }
    serde_json::from_slice(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The body must be JSON like {\"name\": \"standup\", \"mode\": \"meeting\"} (both optional).",
        )
    })
}

/// The base URL links start with: the scheme the server serves and the Host the caller used.
pub(super) fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    let scheme = if shared.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| shared.config.listen.to_string());
    format!("{scheme}://{host}")
}

/// A created room's links. Keys ride in the fragment (`#key=`): browsers never send it to a
/// server, so it stays out of access logs and `Referer` headers.
fn links(base: &str, c: &Created) -> serde_json::Value {
    let invite = format!("{base}/?room={}", c.room);
    let mut v = json!({
        "room": c.room,
        "mode": c.mode,
        "invite_link": invite,
        "host_link": format!("{invite}#key={}", c.host_key),
        "host_key": c.host_key,
    });
    if c.mode == RoomMode::Webinar {
        v["presenter_link"] = json!(format!("{invite}#key={}", c.presenter_key));
        v["presenter_key"] = json!(c.presenter_key);
    }
    v
}

fn create_room(
    shared: &Shared,
    headers: &HeaderMap,
    body: CreateBody,
) -> Result<Response, ApiError> {
    let mode = body.mode.unwrap_or_default();
    let created = shared
        .rooms
        .create(shared, body.name.as_deref(), mode)
        .map_err(|e| match e {
            CreateError::Exists => {
                ApiError::new(StatusCode::CONFLICT, "room_exists", e.to_string())
            }
            CreateError::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                e.to_string(),
            ),
            CreateError::InvalidName => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_room", e.to_string())
            }
        })?;
    tracing::info!(room = created.room.as_str(), "room created");
    let body = links(&base_url(shared, headers), &created);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn create(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let body = parse_body(&body)?;
    create_room(&api.shared, &headers, body)
}

/// "New meeting" on the join page: in open mode with ad-hoc rooms allowed (where anyone may
/// open a room anyway), a room with an unguessable name and its links, no key needed.
async fn new_meeting(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cfg = &api.shared.config;
    if api.shared.auth.required() || !cfg.rooms.adhoc {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_allowed",
            "On this server meetings are created by its operators; ask for a link.",
        ));
    }
    api.allow()?;
    let mut body = parse_body(&body)?;
    // The name is always drawn at random here: a chosen one could be a guessable one.
    body.name = None;
    create_room(&api.shared, &headers, body)
}

async fn list(State(api): State<Arc<ApiState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let rooms: Vec<serde_json::Value> = api
        .shared
        .rooms
        .list(&api.shared)
        .await
        .into_iter()
        .map(|r| {
            json!({"room": r.room, "live": r.live, "participants": r.participants, "waiting": r.waiting})
        })
        .collect();
    Ok(axum::Json(json!({ "rooms": rooms })).into_response())
}

/// The cluster as Redis knows it: nodes with their load, rooms with their node.
async fn cluster(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let cluster = api.shared.cluster.as_ref().ok_or_else(no_cluster)?;
    match cluster.view().await {
        Some(view) => Ok(axum::Json(view).into_response()),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "redis_unavailable",
            "Redis does not answer; rooms on this node keep running.",
        )),
    }
}

fn no_cluster() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_cluster",
        "This server runs alone (start it with --redis-url to join a cluster).",
    )
}

/// Drains this node: it leaves placement and its participants rejoin on other nodes; it
/// keeps serving the sessions it relays and its health and metrics (stop it afterwards).
async fn drain(State(api): State<Arc<ApiState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let cluster = api.shared.cluster.as_ref().ok_or_else(no_cluster)?;
    let participants = api.shared.metrics.participants.get();
    cluster.drain_now(&api.shared).await;
    tracing::info!(
        node = cluster.id(),
        participants,
        "drained through the room API"
    );
    Ok(axum::Json(json!({
        "node": cluster.id(),
        "draining": true,
        "participants": participants,
    }))
    .into_response())
}

pub(super) fn no_room() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_room",
        "There is no such room.",
    )
}

async fn participants(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    match api.shared.rooms.call(&room, ApiCall::Participants).await {
        Some(ApiReply::Participants { joined, waiting }) => Ok(axum::Json(
            json!({"room": room, "participants": joined, "waiting": waiting}),
        )
        .into_response()),
        _ if api.shared.rooms.exists(&room) => Ok(axum::Json(
            json!({"room": room, "participants": [], "waiting": []}),
        )
        .into_response()),
        _ => Err(no_room()),
    }
}

async fn remove(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    let id = id.parse::<u64>().map(ParticipantId).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Participant ids are numbers (see the participants list).",
        )
    })?;
    match api.shared.rooms.call(&room, ApiCall::Remove(id)).await {
        Some(ApiReply::Done(true)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_participant",
            "Nobody with this id is in the room.",
        )),
        None if api.shared.rooms.exists(&room) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_participant",
            "Nobody is in the room.",
        )),
        None => Err(no_room()),
    }
}

async fn end(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    if api.shared.rooms.end(&room).await {
        tracing::info!(room = room.as_str(), "room ended by the API");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_room())
    }
}

async fn unknown(
    State(api): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.authorise(&headers)?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "No such API call; see the README's room API section.",
    ))
}
