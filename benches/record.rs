//! CPU cost of one recording-second: the recorder core fed one second of a stage camera
//! (30 fps VP8, 1.2 Mbit/s, one keyframe) and N voices (20 ms Opus from libopus), muxed to memory.

use confab::record::vp8::packetize;
use confab::record::{Input, Recorder, RecorderConfig, RtpIn, SourceId};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

/// Inputs of one second: video frames at 30 fps and `voices` Opus streams at 50 packets/s,
/// with arrival offsets from `start`.
fn one_second(voices: u64) -> Vec<(Duration, Input)> {
    let mut out = Vec::new();
    let mut seq = 0;
    for i in 0..30u32 {
        // A keyframe then deltas, shaped like a 720p camera at 1.2 Mbit/s.
        let mut frame = if i == 0 {
            let mut k = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02];
            k.resize(30_000, 0x55);
            k
        } else {
            vec![0x11; 4_000]
        };
        frame[2] = i as u8;
        let at = Duration::from_micros(u64::from(i) * 33_333);
        let parts = packetize(&frame, i as u16, 1100);
        let n = parts.len();
        for (k, payload) in parts.into_iter().enumerate() {
            seq += 1;
            out.push((
                at,
                Input::Video(
                    SourceId(1),
                    RtpIn {
                        seq,
                        timestamp: i * 3000,
                        marker: k == n - 1,
                        payload,
                        arrival: Instant::now(),
                        capture: None,
                    },
                ),
            ));
        }
    }
    for v in 0..voices {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        for p in 0..50u64 {
            let pcm: Vec<f32> = (0..960)
                .map(|s| {
                    let t = (p * 960 + s) as f32 / 48_000.0;
                    0.2 * (t * (200.0 + 50.0 * v as f32) * std::f32::consts::TAU).sin()
                })
                .collect();
            out.push((
                Duration::from_millis(p * 20),
                Input::Audio(
                    SourceId(100 + v),
                    RtpIn {
                        seq: p,
                        timestamp: (p * 960) as u32,
                        marker: false,
                        payload: enc.encode_vec_float(&pcm, 1500).unwrap(),
                        arrival: Instant::now(),
                        capture: None,
                    },
                ),
            ));
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

fn record_second(c: &mut Criterion) {
    for (name, voices) in [("webinar_1_voice", 1), ("meeting_10_voices", 10)] {
        let inputs = one_second(voices);
        c.bench_function(&format!("record_second/{name}"), |b| {
            b.iter(|| {
                let start = Instant::now();
                let mut rec =
                    Recorder::new(RecorderConfig::default(), Vec::new(), start, 0).unwrap();
                rec.handle(Input::Stage(Some(SourceId(1))), start).unwrap();
                for (at, input) in &inputs {
                    let mut input = input.clone();
                    let now = start + *at;
                    if let Input::Video(_, p) | Input::Audio(_, p) = &mut input {
                        p.arrival = now;
                    }
                    rec.handle(input, now).unwrap();
                }
                rec.finish(start + Duration::from_secs(1)).unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = record_second
}
criterion_main!(benches);
