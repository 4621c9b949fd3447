//! Recording with real media: VP8 clips from ffmpeg and Opus from libopus, packetized into RTP,
//! recorded to WebM and checked with ffprobe/ffmpeg.

use crate::record_media::*;
use confab::record::writer::FileSink;
use confab::record::{
    Input, RecordError, RecordEvent, Recorder, Recording, RecordingConfig, SourceId,
};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

/// Drives a core in virtual time for `ms`, 10 ms per step: `step(t_ms, now)` gives the inputs
/// of that step. Returns the finished recording's length in ms.
fn drive(
    rec: &mut Recorder<FileSink>,
    start: Instant,
    ms: u64,
    mut step: impl FnMut(u64, Instant) -> Vec<Input>,
) {
    let mut t = 0;
    while t < ms {
        let now = start + Duration::from_millis(t);
        for input in step(t, now) {
            rec.handle(input, now).expect("recording goes on");
        }
        rec.handle_timeout(now).expect("recording goes on");
        t += STEP.as_millis() as u64;
    }
}

/// A camera frame is due at `t` (30 fps on a 10 ms step clock).
fn frames_due(sent: &mut u64, t: u64) -> u64 {
    let due = (t * 30).div_ceil(1000);
    let n = due.saturating_sub(*sent);
    *sent = due.max(*sent);
    n
}

/// A recorder writing `path`, with one camera on the stage (from `clip`, RTP timestamps from
/// `ts_base`) and one voice at `hz`, driven for `ms` of virtual time and not finished.
fn camera_and_voice(
    path: &Path,
    clip: Vec<ClipFrame>,
    start: Instant,
    ms: u64,
    ts_base: u32,
    hz: f32,
) -> Recorder<FileSink> {
    let mut rec = file_recorder(path, start);
    let mut cam = VideoSender::new(SourceId(1), clip, ts_base);
    let mut voice = VoiceSender::new(SourceId(2), hz);
    rec.handle(Input::Stage(Some(cam.source)), start)
        .expect("stage");
    assert_eq!(rec.poll_keyframe_request(), Some(cam.source));
    let mut sent = 0;
    drive(&mut rec, start, ms, |t, now| {
        let mut v = Vec::new();
        for _ in 0..frames_due(&mut sent, t) {
            v.extend(cam.frame(now));
        }
        if t % 20 == 0 {
            v.push(voice.packet(now));
        }
        v
    });
    rec
}

fn one_camera_one_voice(dir: &Path, secs: u32) -> (std::path::PathBuf, Instant) {
    let clip = vp8_clip(dir, 640, 360, secs);
    let path = dir.join("meeting.webm");
    let start = Instant::now();
    let rec = camera_and_voice(
        &path,
        clip,
        start,
        u64::from(secs) * 1000,
        0xFFFF_0000,
        440.0,
    );
    let (_, len, stats) = rec
        .finish(start + Duration::from_secs(u64::from(secs)))
        .expect("finish");
    assert_eq!(len, u64::from(secs) * 1000);
    assert_eq!(stats.video_frames, u64::from(secs) * 30, "{stats:?}");
    assert_eq!(stats.mix.late, 0, "{stats:?}");
    (path, start)
}

#[test]
fn a_real_vp8_and_opus_meeting_records_to_a_clean_webm() {
    let dir = scratch("clean");
    let (path, _) = one_camera_one_voice(&dir, 3);
    let probe = ffprobe(&path);
    assert!(
        (probe.duration - 3.0).abs() <= 0.15,
        "duration {} s within 5 % of 3 s",
        probe.duration
    );
    assert_eq!(
        probe.codecs,
        [
            ("video".to_string(), "vp8".to_string()),
            ("audio".to_string(), "opus".to_string())
        ]
    );
    assert_eq!(decode_errors(&path), "", "ffmpeg decodes without complaint");
    let frames = video_frames(&path);
    assert_eq!(frames.len(), 90);
    assert!(frames.iter().all(|f| (f.1, f.2) == (640, 360)));
    let volume = mean_volume(&path);
    assert!(volume > -20.0, "a 0.4 sine is loud: mean {volume} dB");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_stage_switches_from_640x360_to_1280x720_on_a_keyframe() {
    let dir = scratch("switch");
    let small = vp8_clip(&dir, 640, 360, 2);
    let large = vp8_clip(&dir, 1280, 720, 2);
    let path = dir.join("switch.webm");
    let start = Instant::now();
    let mut rec = file_recorder(&path, start);
    let mut cam = VideoSender::new(SourceId(1), small, 1_000);
    let mut screen = VideoSender::new(SourceId(3), large, 3_000_000_000);
    let mut voice = VoiceSender::new(SourceId(2), 330.0);
    rec.handle(Input::Stage(Some(cam.source)), start)
        .expect("stage");
    let (mut sent, mut wanted) = (0, Vec::new());
    // The screen starts at 1.5 s in the middle of its GOP; the switch waits for its keyframe.
    drive(&mut rec, start, 4_000, |t, now| {
        let mut v = Vec::new();
        let n = frames_due(&mut sent, t);
        for _ in 0..n {
            v.extend(cam.frame(now));
            if t >= 1_500 {
                v.extend(screen.frame(now));
            } else {
                // Keep the screen clip advancing so it is mid-GOP at 1.5 s.
                let _ = screen.frame(now);
            }
        }
        if t == 1_500 {
            v.push(Input::Stage(Some(screen.source)));
        }
        if t % 20 == 0 {
            v.push(voice.packet(now));
        }
        v
    });
    while let Some(s) = rec.poll_keyframe_request() {
        wanted.push(s);
    }
    let (_, _, stats) = rec.finish(start + Duration::from_secs(4)).expect("finish");
    assert_eq!(stats.switches, 2, "camera, then screen: {stats:?}");
    assert!(
        wanted.contains(&screen.source),
        "a keyframe was asked of the screen"
    );
    assert_eq!(decode_errors(&path), "", "decodes across the switch");
    let frames = video_frames(&path);
    let first_large = frames
        .iter()
        .position(|f| (f.1, f.2) == (1280, 720))
        .expect("the screen's frames are in the file");
    assert!(frames[..first_large]
        .iter()
        .all(|f| (f.1, f.2) == (640, 360)));
    assert!(frames[first_large..]
        .iter()
        .all(|f| (f.1, f.2) == (1280, 720)));
    // The switch happened at the screen's first keyframe after 1.5 s (its GOP is 1 s, so 2 s).
    let at = frames[first_large].0;
    assert!((1.9..=2.2).contains(&at), "switched at {at} s");
    assert!(
        frames.windows(2).all(|w| w[1].0 > w[0].0),
        "timestamps grow across the switch"
    );
    let probe = ffprobe(&path);
    assert!(
        (probe.duration - 4.0).abs() <= 0.2,
        "duration {}",
        probe.duration
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_file_cut_anywhere_decodes_up_to_the_cut() {
    let dir = scratch("cut");
    let (path, _) = one_camera_one_voice(&dir, 4);
    let whole = std::fs::read(&path).expect("read");
    for fraction in [0.37, 0.61, 0.9] {
        let cut_at = (whole.len() as f64 * fraction) as usize;
        let cut = dir.join(format!("cut-{fraction}.webm"));
        std::fs::write(&cut, &whole[..cut_at]).expect("write");
        let frames = video_frames(&cut);
        let expected = (120.0 * fraction * 0.8) as usize;
        assert!(
            frames.len() >= expected,
            "cut at {fraction}: {} frames decoded, at least {expected} expected",
            frames.len()
        );
        // Only the last, cut-off block may be reported.
        let errors = decode_errors(&cut);
        assert!(errors.lines().count() <= 2, "cut at {fraction}: {errors}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_killed_recording_left_unfinished_still_plays() {
    // The process dies mid-recording: no finish, whatever the core handed to the OS is the file.
    let dir = scratch("killed");
    let clip = vp8_clip(&dir, 640, 360, 3);
    let path = dir.join("killed.webm");
    let start = Instant::now();
    let rec = camera_and_voice(&path, clip, start, 3_000, 5, 500.0);
    std::mem::forget(rec);
    let frames = video_frames(&path);
    // Flushed every second: at least the first 2 s are on disk.
    assert!(frames.len() >= 55, "{} frames survive", frames.len());
    assert_eq!(
        decode_errors(&path),
        "",
        "an unfinished file decodes cleanly"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unusable_directory_is_a_typed_error_at_start() {
    let dir = scratch("baddir");
    let not_a_dir = dir.join("plain-file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let config = RecordingConfig {
        dir: not_a_dir.join("recordings"),
        ..RecordingConfig::default()
    };
    let err = Recording::start(&config, "standup", tx)
        .err()
        .expect("refused");
    assert!(matches!(err, RecordError::Dir { .. }), "{err}");
    assert!(err.to_string().contains("recordings directory"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_full_disk_stops_the_recording_with_a_message_for_the_host() {
    let full = File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let mut config = RecordingConfig::default();
    config.core.flush_interval = Duration::from_millis(50);
    let handle = Recording::spawn_on(&config, full, "/dev/full".into(), tx).expect("started");
    let mut voice = VoiceSender::new(SourceId(2), 440.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stopped = loop {
        assert!(
            Instant::now() < deadline,
            "the writer reports the full disk within 10 s"
        );
        handle.send(voice.packet(Instant::now()));
        std::thread::sleep(Duration::from_millis(20));
        match rx.try_recv() {
            Ok(RecordEvent::Stopped(r)) => break r,
            _ => continue,
        }
    };
    let err = stopped.expect_err("an error");
    assert!(matches!(err, RecordError::DiskFull), "{err}");
    // The room's side stays usable: sending to a stopped writer is refused, not blocked.
    assert!(!handle.send(voice.packet(Instant::now())));
}

#[test]
fn the_writer_thread_records_in_real_time_and_never_blocks_the_sender() {
    let dir = scratch("thread");
    let clip = vp8_clip(&dir, 640, 360, 1);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let config = RecordingConfig {
        dir: dir.clone(),
        ..RecordingConfig::default()
    };
    let handle = Recording::start(&config, "all hands/2", tx).expect("started");
    let name = handle
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("all_hands_2-") && name.ends_with("Z.webm"),
        "{name}"
    );
    let mut cam = VideoSender::new(SourceId(1), clip, 0);
    let mut voice = VoiceSender::new(SourceId(2), 440.0);
    assert!(handle.send(Input::Stage(Some(cam.source))));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let now = Instant::now();
        if n % 3 != 1 {
            // 20 ms audio steps with a camera frame two steps out of three (≈ 33 fps).
            for i in cam.frame(now) {
                assert!(handle.send(i));
            }
        }
        assert!(handle.send(voice.packet(now)));
        n += 1;
        std::thread::sleep(Duration::from_millis(20).saturating_sub(now.elapsed()));
    }
    let path = handle.path().to_path_buf();
    handle.stop();
    let mut wanted = false;
    let summary = loop {
        match rx.blocking_recv().expect("writer reports") {
            RecordEvent::KeyframeWanted(s) => wanted |= s == cam.source,
            RecordEvent::Stopped(r) => break r.expect("finished cleanly"),
        }
    };
    assert!(wanted, "the stage's first source was asked for a keyframe");
    assert_eq!(summary.path, path);
    assert_eq!(summary.bytes, std::fs::metadata(&path).expect("file").len());
    assert_eq!(summary.stats.channel_drops, 0);
    assert_eq!(decode_errors(&path), "");
    let probe = ffprobe(&path);
    assert!(
        (probe.duration - summary.duration_ms as f64 / 1000.0).abs() < 0.1,
        "{probe:?} vs {summary:?}"
    );
    assert!((1.9..2.5).contains(&probe.duration), "{probe:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let config = RecordingConfig {
        queue_bytes: 64 * 1024,
        ..RecordingConfig::default()
    };
    let handle = Recording::spawn_on(&config, null, "/dev/null".into(), tx).expect("started");
    let big = confab::record::RtpIn {
        seq: 0,
        timestamp: 0,
        marker: true,
        payload: vec![0x10; 1200],
        arrival: Instant::now(),
        capture: None,
    };
    let mut refused = 0;
    for seq in 0..10_000u64 {
        let mut p = big.clone();
        p.seq = seq;
        if !handle.send(Input::Video(SourceId(9), p)) {
            refused += 1;
        }
        assert!(handle.queued_bytes() <= 64 * 1024);
    }
    assert!(refused > 0, "12 MB offered to a 64 KiB queue");
    assert_eq!(handle.dropped(), refused);
}
