//! Recording a real meeting: bots sending real VP8 (ffmpeg) and Opus (libopus), started and
//! stopped through the room API and by hosts, files checked with ffprobe/ffmpeg; who may list
//! and fetch; an unusable directory tells the host while the meeting goes on.

use crate::common::{bot, raw_join, send, wait_type, TestServer};
use crate::record_media::{decode_errors, ffprobe, scratch, vp8_clip};
use confab::api_client::{call, Answer};
use confab::bot::real::RealMedia;
use confab::bot::Bot;
use confab::protocol::ServerMsg;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "recording-test-api-key-0123456789";

async fn api(server: &TestServer, method: &str, path: &str, key: Option<&str>) -> Answer {
    call(&format!("http://{}", server.http), method, path, key, None)
        .await
        .expect("the server answers")
}

/// Starts (`POST`) or stops (`DELETE`) a room's recording through the API, with the key.
async fn recording_call(server: &TestServer, method: &str, room: &str) -> Answer {
    api(
        server,
        method,
        &format!("/api/rooms/{room}/recording"),
        Some(KEY),
    )
    .await
}

/// `curl` a URL (optionally with the API key and a byte range): status and body.
fn fetch(url: &str, key: Option<&str>, range: Option<&str>, out: &Path) -> (u16, Vec<u8>) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o"]).arg(out).args(["-w", "%{http_code}"]);
    if let Some(k) = key {
        c.args(["-H", &format!("Authorization: Bearer {k}")]);
    }
    if let Some(r) = range {
        c.args(["-r", r]);
    }
    let o = c.arg(url).output().expect("curl is installed");
    let status = String::from_utf8_lossy(&o.stdout).parse().unwrap_or(0);
    (status, std::fs::read(out).unwrap_or_default())
}

async fn real_bot(server: &TestServer, room: &str, name: &str, media: Arc<RealMedia>) -> Bot {
    let mut c = bot(server, room, name);
    c.real = Some(media);
    let b = Bot::join(c).await.expect("bot joins");
    assert!(
        b.wait_until(Duration::from_secs(10), |s| s.connected).await,
        "{name} connects"
    );
    b
}

async fn wait_recording(b: &mut Bot, on: bool) {
    let got = b
        .wait_event(
            Duration::from_secs(5),
            |m| matches!(m, ServerMsg::Recording { on: o, .. } if *o == on),
        )
        .await;
    assert!(got.is_some(), "told that recording is {on}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_recorded_through_the_api_plays_for_the_recorded_time() {
    let dir = scratch("room-api");
    let rec_dir = dir.join("recordings");
    let server = TestServer::with(|c| {
        c.rooms.api_key = Some(KEY.into());
        c.rooms.recordings_dir = rec_dir.clone();
    })
    .await;
    let clip: Vec<Vec<u8>> = vp8_clip(&dir, 640, 360, 2)
        .into_iter()
        .map(|f| f.data)
        .collect();
    let room = "rec-api";
    let mut a = real_bot(
        &server,
        room,
        "Ada",
        Arc::new(RealMedia::new(clip.clone(), 440.0).unwrap()),
    )
    .await;
    let mut b = real_bot(
        &server,
        room,
        "Bo",
        Arc::new(RealMedia::new(clip, 660.0).unwrap()),
    )
    .await;
    // Before: nothing recorded, and the public status says so.
    let st = api(&server, "GET", &format!("/api/rooms/{room}/status"), None).await;
    assert_eq!(st.body, json!({"recording": false}));

    let started = Instant::now();
    let r = recording_call(&server, "POST", room).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    wait_recording(&mut a, true).await;
    wait_recording(&mut b, true).await;
    let st = api(&server, "GET", &format!("/api/rooms/{room}/status"), None).await;
    assert_eq!(
        st.body,
        json!({"recording": true}),
        "newcomers are told before they enter"
    );
    let again = recording_call(&server, "POST", room).await;
    assert_eq!(again.status, 409, "one recording per room");
    // A host joining now learns it in `joined`.
    let (_late, joined) = raw_join(&server, room, "Late", json!({})).await;
    assert_eq!(joined["recording"], true, "{joined}");

    tokio::time::sleep(Duration::from_secs(8)).await;
    let r = recording_call(&server, "DELETE", room).await;
    let recorded = started.elapsed().as_secs_f64();
    assert_eq!(r.status, 204, "{:?}", r.body);
    wait_recording(&mut a, false).await;

    // Listed (once the writer finished) with its duration, size and download URL.
    let mut entry = json!(null);
    for _ in 0..50 {
        let l = api(&server, "GET", "/api/recordings", Some(KEY)).await;
        assert_eq!(l.status, 200);
        entry = l.body["recordings"][0].clone();
        if entry["duration_ms"].is_u64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(entry["room"], room, "{entry}");
    let id = entry["id"].as_str().expect("an id").to_string();
    assert!(
        id.starts_with("rec-api-2"),
        "file named after room and UTC start: {id}"
    );
    let file = rec_dir.join(format!("{id}.webm"));
    assert_eq!(
        entry["bytes"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len())
    );

    let probe = ffprobe(&file);
    let err = (probe.duration - recorded).abs() / recorded;
    assert!(
        err < 0.05,
        "file lasts {:.2} s, recorded {recorded:.2} s",
        probe.duration
    );
    let mut codecs = probe.codecs.clone();
    codecs.sort();
    assert_eq!(
        codecs,
        vec![
            ("audio".to_string(), "opus".to_string()),
            ("video".to_string(), "vp8".to_string())
        ]
    );
    assert_eq!(decode_errors(&file), "", "decodes without a complaint");

    // Download with the key, with a Range (players seek).
    let url = entry["url"].as_str().expect("url").to_string();
    let out = dir.join("dl");
    let (status, body) = fetch(&url, Some(KEY), Some("0-99"), &out);
    assert_eq!((status, body.len()), (206, 100), "a range request");
    let (status, body) = fetch(&url, Some(KEY), None, &out);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());
    // Without the key: nothing.
    assert_eq!(
        api(&server, "GET", "/api/recordings", None).await.status,
        401
    );
    assert_eq!(fetch(&url, None, None, &out).0, 401);
    let forged = format!("http://{}/recordings/{id}?t=abc.def.ghi", server.http);
    assert_eq!(fetch(&forged, None, None, &out).0, 403);
    let r = api(
        &server,
        "DELETE",
        &format!("/api/recordings/{id}"),
        Some(KEY),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(!file.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_record_and_download_from_the_client_and_nobody_else_can() {
    let dir = scratch("room-host");
    let rec_dir = dir.join("recordings");
    let server = TestServer::with(|c| c.rooms.recordings_dir = rec_dir.clone()).await;
    let clip: Vec<Vec<u8>> = vp8_clip(&dir, 320, 240, 1)
        .into_iter()
        .map(|f| f.data)
        .collect();
    let room = "rec-host";
    // The room's opener is its host.
    let (mut host, joined) = raw_join(&server, room, "Host", json!({})).await;
    assert_eq!(joined["you"]["role"], "host", "{joined}");
    assert_eq!(joined["recording"], false);
    let mut viewer = real_bot(
        &server,
        room,
        "Pat",
        Arc::new(RealMedia::new(clip, 500.0).unwrap()),
    )
    .await;
    let (mut other, _) = raw_join(&server, room, "Other", json!({"role": "presenter"})).await;

    // A presenter may neither record nor list.
    send(&mut other, r#"{"type":"record","on":true}"#).await;
    let e = wait_type(&mut other, "error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    send(&mut other, r#"{"type":"list_recordings"}"#).await;
    let e = wait_type(&mut other, "error").await;
    assert_eq!(e["code"], "forbidden", "{e}");

    send(&mut host, r#"{"type":"record","on":true}"#).await;
    let m = wait_type(&mut host, "recording").await;
    assert_eq!(
        (m["on"].clone(), m["by"].clone()),
        (json!(true), json!("Host")),
        "{m}"
    );
    wait_recording(&mut viewer, true).await;
    let m = wait_type(&mut other, "recording").await;
    assert_eq!(m["on"], true, "everyone is told");
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(&mut host, r#"{"type":"record","on":false}"#).await;
    let m = wait_type(&mut host, "recording").await;
    assert_eq!(m["on"], false, "{m}");
    wait_recording(&mut viewer, false).await;

    let mut list = json!([]);
    for _ in 0..50 {
        send(&mut host, r#"{"type":"list_recordings"}"#).await;
        list = wait_type(&mut host, "recordings").await["recordings"].clone();
        if list[0]["duration_ms"].is_u64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entry = &list[0];
    assert_eq!(entry["room"], room, "{list}");
    let url = entry["url"].as_str().expect("a signed link");
    assert!(url.starts_with("/recordings/"), "{url}");
    let out = dir.join("dl");
    let (status, body) = fetch(&format!("http://{}{url}", server.http), None, None, &out);
    assert_eq!(status, 200, "the host's link needs no key");
    assert_eq!(body.len() as u64, entry["bytes"].as_u64().unwrap());
    // The link is for that file only.
    let other_id = format!("{}x", entry["id"].as_str().unwrap());
    let token = url.split("?t=").nth(1).unwrap();
    let wrong = format!("http://{}/recordings/{other_id}?t={token}", server.http);
    assert_eq!(fetch(&wrong, None, None, &out).0, 403);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_directory_tells_the_host_and_the_meeting_goes_on() {
    let dir = scratch("room-bad-dir");
    // A file where the directory should be: unusable for root too.
    let not_dir = dir.join("not-a-dir");
    std::fs::write(&not_dir, b"x").unwrap();
    let server = TestServer::with(|c| {
        c.rooms.api_key = Some(KEY.into());
        c.rooms.recordings_dir = not_dir.clone();
    })
    .await;
    let room = "rec-bad";
    let (mut host, _) = raw_join(&server, room, "Host", json!({})).await;
    let (mut guest, _) = raw_join(&server, room, "Guest", json!({})).await;
    send(&mut host, r#"{"type":"record","on":true}"#).await;
    let m = wait_type(&mut host, "recording").await;
    assert_eq!(m["on"], false, "{m}");
    let why = m["error"].as_str().expect("a reason");
    assert!(why.contains("recordings directory"), "{why}");
    let r = recording_call(&server, "POST", room).await;
    assert_eq!(r.status, 409);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("directory"));
    // The meeting goes on.
    send(&mut guest, r#"{"type":"chat","text":"still here"}"#).await;
    let c = wait_type(&mut host, "chat").await;
    assert_eq!(c["entry"]["text"], "still here", "{c}");
    std::fs::remove_dir_all(&dir).ok();
}
