//! Lip sync in a recording: a person's voice and picture written at the moment they were
//! captured, not when each reached the room. One white frame and the onset of a tone are
//! captured at the same instant; the picture reaches the room 100 ms after its capture (a
//! camera's encoding and a keyframe's size), the sound 20 ms after; ffmpeg then finds both in
//! the file.

use crate::record_media::*;
use confab::record::{Input, SourceId};
use std::path::Path;
use std::time::{Duration, Instant};

/// When the person's media starts, in the recording's time (ms).
const FIRST_CAPTURE_MS: u64 = 200;
/// The frame, counted from the first, that is white; the tone starts at its capture.
const FLASH: u32 = 45;
/// From capture to arrival: the camera's and the microphone's.
const VIDEO_LAG_MS: u64 = 100;
const AUDIO_LAG_MS: u64 = 20;
const SECS: u32 = 3;

/// Records the flash and the tone, with captures as the sender reports give them or (as
/// before a publisher's first report) none; returns where ffmpeg finds (picture, sound) in
/// the file, in seconds.
fn record(dir: &Path, with_captures: bool) -> (f64, f64) {
    let path = dir.join(format!("sync-{with_captures}.webm"));
    let start = Instant::now();
    let mut rec = file_recorder(&path, start);
    let mut cam = VideoSender::new(SourceId(1), flash_clip(dir, SECS, FLASH), 0x8000_0000);
    let onset = u64::from(FLASH) * 48_000 / 30;
    let mut voice = VoiceSender::from_sample(SourceId(2), 1_000.0, onset);
    rec.handle(Input::Stage(Some(cam.source)), start)
        .expect("stage");
    let ms = |t: u64| start + Duration::from_millis(t);
    let captured = |t: u64| with_captures.then(|| ms(t));
    let (mut frames, mut packets) = (0u64, 0u64);
    let end = FIRST_CAPTURE_MS + u64::from(SECS) * 1000;
    for t in 0..end + VIDEO_LAG_MS {
        let now = ms(t);
        // Frame i is captured at i/30 s (rounded to the ms), packet k at k·20 ms.
        while frames < u64::from(SECS) * 30
            && FIRST_CAPTURE_MS + (frames * 1000 + 15) / 30 + VIDEO_LAG_MS == t
        {
            let c = FIRST_CAPTURE_MS + (frames * 1000 + 15) / 30;
            for input in cam.frame_captured(now, captured(c)) {
                rec.handle(input, now).expect("recording goes on");
            }
            frames += 1;
        }
        let c = FIRST_CAPTURE_MS + packets * 20;
        if c < end && c + AUDIO_LAG_MS == t {
            let input = voice.packet_captured(now, captured(c));
            rec.handle(input, now).expect("recording goes on");
            packets += 1;
        }
        rec.handle_timeout(now).expect("recording goes on");
    }
    let (_, _, stats) = rec.finish(ms(end + VIDEO_LAG_MS)).expect("finish");
    assert_eq!(stats.video_frames, u64::from(SECS) * 30, "{stats:?}");
    assert_eq!((stats.mix.late, stats.mix.resyncs), (0, 0), "{stats:?}");
    assert_eq!(decode_errors(&path), "", "ffmpeg decodes without complaint");
    let picture = bright_frames(&path);
    let sound = sound_onsets(&path);
    assert_eq!(
        (picture.len(), sound.len()),
        (1, 1),
        "{picture:?} {sound:?}"
    );
    (picture[0], sound[0])
}

#[test]
fn a_voice_and_its_picture_captured_together_play_together() {
    let dir = scratch("sync");
    let flash_at = (FIRST_CAPTURE_MS as f64 + f64::from(FLASH) * 1000.0 / 30.0) / 1000.0;
    let (picture, sound) = record(&dir, true);
    let skew_ms = (picture - sound) * 1000.0;
    eprintln!(
        "captures: picture {picture:.3} s, sound {sound:.3} s, picture − sound {skew_ms:.1} ms"
    );
    // Within a frame's rounding and the codecs' own few ms, and where they were captured.
    assert!(skew_ms.abs() < 20.0, "picture − sound {skew_ms:.1} ms");
    assert!(
        (picture - flash_at).abs() < 0.02,
        "picture at {picture} s, captured at {flash_at} s"
    );
    // The same media placed by arrival (a publisher before its first sender report, and
    // every recording before this change): the picture trails by the difference of the lags.
    let (picture, sound) = record(&dir, false);
    let skew_ms = (picture - sound) * 1000.0;
    eprintln!(
        "arrivals: picture {picture:.3} s, sound {sound:.3} s, picture − sound {skew_ms:.1} ms"
    );
    let lag_gap = (VIDEO_LAG_MS - AUDIO_LAG_MS) as f64;
    assert!(
        (skew_ms - lag_gap).abs() < 20.0,
        "by arrival the picture trails by {lag_gap} ms: {skew_ms:.1} ms"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A room's recording of a real bot whose camera frames leave it 80 ms after their capture
/// (its sender reports say so, as a browser's do): every half second of each second the
/// picture flashes white while the voice starts a tone, both captured at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_recording_plays_a_speakers_voice_with_their_picture() {
    use crate::common::{bot, TestServer};
    use confab::api_client::call;
    use confab::bot::real::RealMedia;
    use confab::bot::Bot;
    use confab::protocol::ServerMsg;

    const KEY: &str = "recording-sync-api-key-0123456789";
    const LAG: Duration = Duration::from_millis(80);
    let dir = scratch("room-sync");
    let rec_dir = dir.join("recordings");
    let server = TestServer::with(|c| {
        c.rooms.api_key = Some(KEY.into());
        c.rooms.recordings_dir = rec_dir.clone();
    })
    .await;
    // One second of video looped: a keyframe first, frame 15 white. The bot sends frame k at
    // k/30 s of its clock and says it was captured LAG before; the tone must start then.
    let video = flash_clip(&dir, 1, 15)
        .into_iter()
        .map(|f| f.data)
        .collect();
    let onset = (15 * 48_000 / 30) - LAG.as_millis() as usize * 48;
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .expect("opus encoder");
    let audio = (0..50usize)
        .map(|n| {
            let pcm: Vec<f32> = (n * 960..(n + 1) * 960)
                .map(|i| {
                    let on = (onset..onset + 14_400).contains(&i);
                    let a = if on { 0.4 } else { 0.0 };
                    a * (i as f32 * 1_000.0 * std::f32::consts::TAU / 48_000.0).sin()
                })
                .collect();
            enc.encode_vec_float(&pcm, 1500).expect("encode")
        })
        .collect();
    let mut c = bot(&server, "rec-sync", "Ada");
    c.real = Some(std::sync::Arc::new(RealMedia { video, audio }));
    c.shape.video_lag = LAG;
    let mut ada = Bot::join(c).await.expect("bot joins");
    assert!(
        ada.wait_until(Duration::from_secs(10), |s| s.connected)
            .await,
        "connects"
    );
    // Both streams' sender reports have reached the room before it records (str0m, as
    // Chromium, reports on audio every ~5 s; until then the recording can only place the
    // voice by its arrival).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let base = format!("http://{}", server.http);
    let path = "/api/rooms/rec-sync/recording";
    let r = call(&base, "POST", path, Some(KEY), None)
        .await
        .expect("api");
    assert_eq!(r.status, 204, "{:?}", r.body);
    let on = ada
        .wait_event(Duration::from_secs(5), |m| {
            matches!(m, ServerMsg::Recording { on: true, .. })
        })
        .await;
    assert!(on.is_some(), "recording");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = call(&base, "DELETE", path, Some(KEY), None)
        .await
        .expect("api");
    assert_eq!(r.status, 204, "{:?}", r.body);
    let mut file = None;
    for _ in 0..50 {
        let l = call(&base, "GET", "/api/recordings", Some(KEY), None)
            .await
            .expect("api");
        let entry = &l.body["recordings"][0];
        if entry["duration_ms"].is_u64() {
            let id = entry["id"].as_str().expect("an id");
            file = Some(rec_dir.join(format!("{id}.webm")));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = file.expect("the recording is listed once written");
    assert_eq!(decode_errors(&file), "", "decodes without a complaint");
    let pictures = bright_frames(&file);
    let sounds = sound_onsets(&file);
    // Each flash against the nearest onset of the tone.
    let mut skews: Vec<f64> = pictures
        .iter()
        .filter_map(|p| {
            let s = sounds
                .iter()
                .min_by(|a, b| (*a - p).abs().total_cmp(&(*b - p).abs()))?;
            Some((p - s) * 1000.0)
        })
        .collect();
    skews.sort_by(f64::total_cmp);
    eprintln!("flashes {pictures:?}\nonsets {sounds:?}\npicture − sound, ms: {skews:?}");
    assert!(
        skews.len() >= 3,
        "a flash a second: {pictures:?} / {sounds:?}"
    );
    let median = skews[skews.len() / 2];
    // By arrival the picture would trail by the camera's 80 ms.
    assert!(
        median.abs() < 30.0,
        "picture − sound {median:.1} ms (median of {skews:?})"
    );
    std::fs::remove_dir_all(&dir).ok();
}
