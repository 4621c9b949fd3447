//! Safe rooms over a real WebSocket and HTTP: host rights come only from keys or host tokens,
//! room records outlive their participants until they expire, and the room API.

use crate::common::{expect_error, next_json, raw_join, send, wait_type, TestServer, Ws};
use confab::api_client::{call, Answer};
use confab::auth::{unix_now, Auth, Claims};
use confab::protocol::Role;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "rooms-test-secret";
const API_KEY: &str = "rooms-api-key-0123456789";

fn token(room: &str, name: &str, role: Role) -> String {
    Auth::new(Some(SECRET))
        .issue(&Claims {
            room: room.into(),
            name: name.into(),
            role,
            exp: unix_now() + 600,
            sub: None,
            mode: None,
        })
        .expect("signs")
}

/// Joins and returns the socket, `joined`, and the `room_settings` that follows it.
async fn enter(server: &TestServer, room: &str, name: &str, extra: Value) -> (Ws, Value, Value) {
    let (mut ws, joined) = raw_join(server, room, name, extra).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let settings = wait_type(&mut ws, "room_settings").await;
    (ws, joined, settings)
}

async fn cmd(ws: &mut Ws, msg: Value) {
    send(ws, &msg.to_string()).await;
}

/// Waits until the server holds no live room (the last socket's leave was handled).
async fn until_no_live_room(server: &TestServer) {
    for _ in 0..100 {
        if server.shared.rooms.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the room never closed");
}

#[tokio::test]
async fn asking_for_host_never_grants_it_even_into_locked_or_password_rooms() {
    let server = TestServer::start().await;
    // The opener of an ad-hoc room is its host and gets the keys; the next joiner is not.
    let (mut ana, joined, settings) = enter(&server, "acme", "Ana", json!({})).await;
    assert_eq!(joined["you"]["role"], "host");
    assert!(settings["host_key"].as_str().is_some_and(|k| k.len() == 32));
    let (_ben, joined, settings) = enter(&server, "acme", "Ben", json!({"role": "host"})).await;
    assert_eq!(joined["you"]["role"], "presenter", "{joined}");
    assert!(settings.get("host_key").is_none(), "{settings}");
    // A password set during the meeting shows, and is asked of a would-be host.
    cmd(
        &mut ana,
        json!({"type": "set_password", "password": "s3same"}),
    )
    .await;
    let s = wait_type(&mut ana, "room_settings").await;
    assert_eq!(s["has_password"], true);
    let (_m, m) = raw_join(&server, "acme", "Mallory", json!({"role": "host"})).await;
    assert_eq!(m["code"], "wrong_password", "{m}");
    // Locked too: with the password, `role=host` still only waits in the lobby.
    cmd(&mut ana, json!({"type": "lock_room", "locked": true})).await;
    wait_type(&mut ana, "room_locked").await;
    let (_m, m) = raw_join(
        &server,
        "acme",
        "Mallory",
        json!({"role": "host", "password": "s3same"}),
    )
    .await;
    assert_eq!(m["type"], "waiting", "{m}");
    assert_eq!(m["host_present"], true);
    let lobby = wait_type(&mut ana, "lobby_changed").await;
    assert_eq!(lobby["waiting"][0]["role"], "presenter", "{lobby}");
}

#[tokio::test]
async fn a_host_key_works_only_in_its_own_room_and_brings_the_host_back() {
    let server = TestServer::start().await;
    let (_a, _, sa) = enter(&server, "room-a", "Ana", json!({})).await;
    let (_b, _, _) = enter(&server, "room-b", "Bea", json!({})).await;
    let key_a = sa["host_key"].as_str().expect("host key").to_string();
    let (_c, joined, _) = enter(&server, "room-b", "Cy", json!({"key": key_a})).await;
    assert_eq!(
        joined["you"]["role"], "presenter",
        "another room's key: {joined}"
    );
    let (_d, joined, _) = enter(&server, "room-a", "Ana", json!({"key": key_a})).await;
    assert_eq!(
        joined["you"]["role"], "host",
        "a second session with the key"
    );
}

#[tokio::test]
async fn hosts_make_co_hosts_who_get_the_keys() {
    let server = TestServer::start().await;
    let (mut ana, _, settings) = enter(&server, "co", "Ana", json!({})).await;
    let (mut ben, joined, _) = enter(&server, "co", "Ben", json!({})).await;
    cmd(
        &mut ben,
        json!({"type": "set_password", "password": "nope"}),
    )
    .await;
    expect_error(&mut ben, "forbidden").await;
    cmd(
        &mut ana,
        json!({"type": "set_role", "participant": joined["you"]["id"], "role": "host"}),
    )
    .await;
    let s = wait_type(&mut ben, "room_settings").await;
    assert_eq!(s["host_key"], settings["host_key"], "{s}");
    cmd(&mut ben, json!({"type": "set_mode", "mode": "webinar"})).await;
    let s = wait_type(&mut ana, "room_settings").await;
    assert_eq!(s["mode"], "webinar");
    // Later joiners without a key are audience now.
    let (_c, joined, _) = enter(&server, "co", "Cy", json!({"role": "presenter"})).await;
    assert_eq!(joined["you"]["role"], "audience");
}

#[tokio::test]
async fn an_audience_token_that_joins_first_cannot_set_password_or_mode() {
    let server = TestServer::with(|c| c.auth_secret = Some(SECRET.into())).await;
    let early = token("t", "Early", Role::Audience);
    let (_e, joined, settings) = enter(
        &server,
        "t",
        "x",
        json!({"token": early, "password": "mine", "mode": "webinar"}),
    )
    .await;
    assert_eq!(joined["you"]["role"], "audience");
    assert_eq!(settings["has_password"], false, "{settings}");
    assert_eq!(settings["mode"], "meeting");
    // Presenters still get in without any password.
    let p = token("t", "Pia", Role::Presenter);
    let (_p, joined, _) = enter(&server, "t", "x", json!({"token": p})).await;
    assert_eq!(joined["you"]["role"], "presenter");
    // The first host token configures the room.
    let h = token("t", "Hal", Role::Host);
    let (_h, _, settings) = enter(&server, "t", "x", json!({"token": h, "password": "pw"})).await;
    assert_eq!(settings["has_password"], true);
    let q = token("t", "Quinn", Role::Presenter);
    let (_q, m) = raw_join(&server, "t", "x", json!({"token": q})).await;
    assert_eq!(m["code"], "wrong_password", "{m}");
    // `role=host` with a non-host token stays what the token says.
    let (_q, joined, _) = enter(
        &server,
        "t",
        "x",
        json!({"token": q, "password": "pw", "role": "host"}),
    )
    .await;
    assert_eq!(joined["you"]["role"], "presenter");
}

#[tokio::test]
async fn a_removed_identity_loses_every_session_and_stays_out_after_the_room_empties() {
    let server = TestServer::with(|c| c.auth_secret = Some(SECRET.into())).await;
    let host = token("rm", "Host", Role::Host);
    let eve = token("rm", "Eve", Role::Presenter);
    let (mut h, _, _) = enter(&server, "rm", "x", json!({"token": host})).await;
    let (mut eve1, joined, _) = enter(&server, "rm", "x", json!({"token": eve})).await;
    let (mut eve2, _, _) = enter(&server, "rm", "x", json!({"token": eve})).await;
    cmd(
        &mut h,
        json!({"type": "remove_participant", "participant": joined["you"]["id"]}),
    )
    .await;
    for ws in [&mut eve1, &mut eve2] {
        let m = wait_type(ws, "error").await;
        assert_eq!(m["code"], "removed", "{m}");
        assert!(next_json(ws).await.is_none(), "socket closed");
    }
    drop(h);
    until_no_live_room(&server).await;
    let (_again, m) = raw_join(&server, "rm", "x", json!({"token": eve})).await;
    assert_eq!(m["code"], "removed", "after the room emptied: {m}");
}

#[tokio::test]
async fn settings_last_until_the_room_expires_then_it_is_gone() {
    let server = TestServer::with(|c| c.rooms.expiry = Duration::from_millis(1500)).await;
    let (mut ana, _, s) = enter(&server, "exp", "Ana", json!({})).await;
    let key = s["host_key"].clone();
    cmd(&mut ana, json!({"type": "set_password", "password": "pw"})).await;
    wait_type(&mut ana, "room_settings").await;
    drop(ana);
    until_no_live_room(&server).await;
    // Kept: the password still holds, and the host key still gives host.
    let (_b, m) = raw_join(&server, "exp", "Ben", json!({})).await;
    assert_eq!(m["code"], "wrong_password", "{m}");
    let (a, joined, _) = enter(&server, "exp", "Ana", json!({"key": key})).await;
    assert_eq!(joined["you"]["role"], "host");
    drop(a);
    until_no_live_room(&server).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    // Expired: the name opens a fresh room, whose opener is host; the old key is worthless.
    let (_c, joined, s) = enter(&server, "exp", "Cy", json!({"key": key})).await;
    assert_eq!(joined["you"]["role"], "host");
    assert_eq!(s["has_password"], false);
    assert_ne!(s["host_key"], key);
}

#[tokio::test]
async fn last_host_leaving_a_locked_room_tells_the_waiting_and_a_returning_host_finds_them() {
    let server = TestServer::start().await;
    let (mut ana, _, s) = enter(&server, "wait", "Ana", json!({})).await;
    let key = s["host_key"].clone();
    cmd(&mut ana, json!({"type": "lock_room", "locked": true})).await;
    wait_type(&mut ana, "room_locked").await;
    let (mut bob, m) = raw_join(&server, "wait", "Bob", json!({})).await;
    assert_eq!(m["type"], "waiting");
    cmd(&mut ana, json!({"type": "leave"})).await;
    let m = wait_type(&mut bob, "waiting").await;
    assert_eq!(m["host_present"], false, "{m}");
    let (mut back, _, _) = enter(&server, "wait", "Ana", json!({"key": key})).await;
    let lobby = wait_type(&mut back, "lobby").await;
    assert_eq!(lobby["waiting"][0]["name"], "Bob");
    let m = wait_type(&mut bob, "waiting").await;
    assert_eq!(m["host_present"], true);
}

#[tokio::test]
async fn names_with_direction_or_invisible_characters_are_refused_clearly() {
    let server = TestServer::start().await;
    for (name, word) in [
        ("Ana\u{202E}nimda", "direction"),
        ("Ho\u{200B}st", "invisible"),
    ] {
        let (_ws, m) = raw_join(&server, "names", name, json!({})).await;
        assert_eq!(m["code"], "invalid_name", "{m}");
        assert!(
            m["message"].as_str().is_some_and(|s| s.contains(word)),
            "{m}"
        );
    }
}

#[tokio::test]
async fn without_adhoc_rooms_only_created_rooms_exist() {
    let server = TestServer::with(|c| {
        c.rooms.adhoc = false;
        c.rooms.api_key = Some(API_KEY.into());
    })
    .await;
    let (_ws, m) = raw_join(&server, "typed", "Ana", json!({})).await;
    assert_eq!(m["code"], "no_such_room", "{m}");
    let a = api(
        &server,
        "POST",
        "/api/rooms",
        Some(API_KEY),
        Some(json!({"name": "typed"})),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let (_ws, joined, _) = enter(&server, "typed", "Ana", json!({})).await;
    assert_eq!(
        joined["you"]["role"], "presenter",
        "no opener's privilege in a created room"
    );
    // "New meeting" is for open servers with ad-hoc rooms only.
    let a = api(&server, "POST", "/new-meeting", None, None).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.body["error"]["code"], "not_allowed");
}

fn base(server: &TestServer) -> String {
    format!("http://{}", server.http)
}

async fn api(
    server: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    call(&base(server), method, path, key, body.as_ref())
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn every_api_call_with_a_missing_or_wrong_key_is_refused() {
    let server = TestServer::with(|c| c.rooms.api_key = Some(API_KEY.into())).await;
    let calls = [
        ("POST", "/api/rooms"),
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/x/participants"),
        ("DELETE", "/api/rooms/x/participants/1"),
        ("DELETE", "/api/rooms/x"),
    ];
    for (method, path) in calls {
        for key in [None, Some("wrong-key-wrong-key-wrong"), Some("")] {
            let a = api(&server, method, path, key, None).await;
            assert_eq!(a.status, 401, "{method} {path} with {key:?}: {:?}", a.body);
            assert_eq!(a.body["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(server.shared.rooms.list(&server.shared).await.len(), 0);
    // No key configured: no API at all.
    let closed = TestServer::start().await;
    let a = api(&closed, "GET", "/api/rooms", Some(API_KEY), None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["error"]["code"], "api_disabled");
}

#[tokio::test]
async fn api_rooms_have_host_invite_and_presenter_links_and_can_be_managed() {
    let server = TestServer::with(|c| c.rooms.api_key = Some(API_KEY.into())).await;
    let k = Some(API_KEY);
    let a = api(
        &server,
        "POST",
        "/api/rooms",
        k,
        Some(json!({"mode": "webinar"})),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let room = a.body["room"].as_str().expect("a name").to_string();
    let invite = a.body["invite_link"].as_str().expect("invite");
    assert!(invite.ends_with(&format!("/?room={room}")), "{invite}");
    let host_link = a.body["host_link"].as_str().expect("host link");
    let host_key = host_link.split("#key=").nth(1).expect("key in fragment");
    let presenter_link = a.body["presenter_link"].as_str().expect("presenter link");
    let presenter_key = presenter_link.split("#key=").nth(1).expect("key");
    // The invite link gives a guest; the host link a host; the presenter link the stage.
    let (_g, joined, _) = enter(&server, &room, "Gus", json!({})).await;
    assert_eq!(joined["you"]["role"], "audience");
    let (mut h, joined, _) = enter(&server, &room, "Hana", json!({"key": host_key})).await;
    assert_eq!(joined["you"]["role"], "host");
    let (mut p, joined, _) = enter(&server, &room, "Pat", json!({"key": presenter_key})).await;
    assert_eq!(joined["you"]["role"], "presenter");
    let pat_id = joined["you"]["id"].as_u64().expect("id");
    // Bad requests get JSON errors with stable codes.
    let dup = api(
        &server,
        "POST",
        "/api/rooms",
        k,
        Some(json!({"name": room})),
    )
    .await;
    assert_eq!(
        (dup.status, &dup.body["error"]["code"]),
        (409, &json!("room_exists"))
    );
    let bad = api(
        &server,
        "POST",
        "/api/rooms",
        k,
        Some(json!({"mode": "party"})),
    )
    .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    // Listing.
    let list = api(&server, "GET", "/api/rooms", k, None).await;
    let listed = &list.body["rooms"][0];
    assert_eq!(
        (listed["room"].as_str(), &listed["participants"]),
        (Some(room.as_str()), &json!(3))
    );
    let people = api(
        &server,
        "GET",
        &format!("/api/rooms/{room}/participants"),
        k,
        None,
    )
    .await;
    let roles: Vec<&str> = people.body["participants"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["role"].as_str())
        .collect();
    assert_eq!(roles.len(), 3, "{:?}", people.body);
    assert!(roles.contains(&"host") && roles.contains(&"presenter") && roles.contains(&"audience"));
    // Removing.
    let path = format!("/api/rooms/{room}/participants/{pat_id}");
    assert_eq!(api(&server, "DELETE", &path, k, None).await.status, 204);
    assert_eq!(wait_type(&mut p, "error").await["code"], "removed");
    let again = api(&server, "DELETE", &path, k, None).await;
    assert_eq!(again.body["error"]["code"], "no_such_participant");
    // Ending.
    let path = format!("/api/rooms/{room}");
    assert_eq!(api(&server, "DELETE", &path, k, None).await.status, 204);
    assert_eq!(wait_type(&mut h, "error").await["code"], "closed");
    until_no_live_room(&server).await;
    let gone = api(
        &server,
        "GET",
        &format!("/api/rooms/{room}/participants"),
        k,
        None,
    )
    .await;
    assert_eq!(gone.body["error"]["code"], "no_such_room");
}

#[tokio::test]
async fn new_meeting_on_an_open_server_gives_links_and_is_rate_limited() {
    let server = TestServer::start().await;
    let a = api(
        &server,
        "POST",
        "/new-meeting",
        None,
        Some(json!({"mode": "meeting"})),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert!(a.body.get("presenter_link").is_none());
    let room = a.body["room"].as_str().expect("room").to_string();
    assert_eq!(
        room.len(),
        19,
        "four groups of four random characters: {room}"
    );
    let key = a.body["host_key"].clone();
    // Not the opener's privilege: a created room's host is whoever holds its key.
    let (_g, joined, _) = enter(&server, &room, "Gus", json!({})).await;
    assert_eq!(joined["you"]["role"], "presenter");
    let (_h, joined, _) = enter(&server, &room, "Hana", json!({"key": key})).await;
    assert_eq!(joined["you"]["role"], "host");
    // A burst beyond the limit is refused, bounded in count.
    let mut limited = false;
    for _ in 0..(confab::server::api::API_BURST as usize + 5) {
        let a = api(&server, "POST", "/new-meeting", None, None).await;
        if a.status == 429 {
            assert_eq!(a.body["error"]["code"], "rate_limited");
            limited = true;
            break;
        }
    }
    assert!(limited, "no rate limit");
}
