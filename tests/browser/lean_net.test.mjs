// The lean send path (`--send-path lean`) on a real, shaped link: a viewer's Chromium in a
// network namespace behind a veth pair (netns.mjs), the server → viewer direction capped (tc)
// or lossy (nftables), and what went on the wire captured. Chromium's getStats() says what it
// made of it: the layer it gets, the losses it had repaired, how far audio and video play apart.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, playoutSkews, undetectableSkew } from './browser.mjs';
import { netnsUnavailable, udpDatagrams } from './netns.mjs';
import { nonceRepeats, rtpCount } from './lean_wire.mjs';

const skip = await netnsUnavailable();
if (skip) console.log(`# lean_net: skipped: ${skip}`);
const options = skip ? { skip } : {};

// LEAN_NET_SEND_PATH=str0m runs the same scenarios on the str0m path, to compare figures.
const SEND_PATH = process.env.LEAN_NET_SEND_PATH || 'lean';
const world = useWorld({ serverArgs: ['--send-path', SEND_PATH], netns: !skip });
const room = `leannet-${process.pid}`;
const MEDIA_DEADLINE_MS = 30_000;
// The camera's lowest simulcast layer is 320×180 (web/media.js); an encoder short of CPU may
// scale any layer down, never up.
const LOW_LAYER_HEIGHT = 180;
const LOSS_WINDOW_MS = 15_000;
const MAX_STALL_MS = 3000;
const STALL_KEPT_MS = 500; // stalls reported; shorter ones are a frame interval or a look's jitter
const CAP_HOLD_MS = 5000;
const SYNC_WINDOW_MS = 6000;
// Each scenario goes on from where the one before left the viewer; without one, there is
// nothing to measure.
const scenario = (name, body, first = false) =>
  world.scenario(
    name,
    async () => {
      if (!first) assert.ok(baseline, 'no viewer decoding: the first scenario failed');
      await body();
    },
    options,
  );

// What is read of the viewer's inbound-rtp (0 where Chromium does not report it yet).
const COUNTERS = [
  'packetsReceived',
  'packetsLost',
  'bytesReceived',
  'nackCount',
  'framesDecoded',
  'frameHeight',
  'freezeCount',
  'totalFreezesDuration',
  'jitterBufferDelay',
  'jitterBufferEmittedCount',
  'totalProcessingDelay',
  'retransmittedPacketsReceived',
  'keyFramesDecoded',
  'pliCount',
];

// The viewer's busiest audio and video inbound-rtp, and the transport's cipher.
const viewerStats = (person) =>
  person.page.evaluate(async (counters) => {
    const pc = window.confab?.client?.pc;
    const out = { at: performance.now(), audio: null, video: null, ciphers: [], reports: {} };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport' && s.srtpCipher) out.ciphers.push(s.srtpCipher);
      // Sender reports Chromium opened (SRTCP) and read, per kind.
      if (s.type === 'remote-outbound-rtp') out.reports[s.kind] = Math.max(out.reports[s.kind] ?? 0, s.reportsSent ?? 0);
      if (s.type !== 'inbound-rtp') return;
      const kept = out[s.kind];
      if (kept && kept.packetsReceived >= (s.packetsReceived ?? 0)) return;
      out[s.kind] = {
        ssrc: s.ssrc,
        rtxSsrc: s.rtxSsrc ?? null,
        ...Object.fromEntries(counters.map((k) => [k, s[k] ?? 0])),
      };
    });
    return out;
  }, COUNTERS);

// `/metrics`' count in `family` for `reason` (0 when none yet).
const byReason = async (family, reason) => (await world.server.metric(`confab_${family}_total{reason="${reason}"}`)) || 0;

// Server-side figures read around a window: SRTCP the lean path opened, refused and refused as
// replays; video held back for congestion or until a keyframe; retransmissions sent, and the
// packets NACKed that were not (no longer held, resent within a round trip already, no RTX).
const serverFigures = async () => ({
  srtcpOpened: await world.server.metric('confab_lean_srtcp_opened_total'),
  srtcpRefused: await world.server.metric('confab_lean_srtcp_refused_total'),
  srtcpReplayed: await world.server.metric('confab_lean_srtcp_replayed_total'),
  congested: await byReason('rtp_dropped_packets', 'congested'),
  notKeyframeYet: await byReason('rtp_dropped_packets', 'not_keyframe_yet'),
  rtxSent: await world.server.metric('confab_lean_rtx_sent_total'),
  nackGone: await byReason('lean_nack_unanswered', 'gone'),
  nackRepeated: await byReason('lean_nack_unanswered', 'repeated'),
  nackNoRtx: await byReason('lean_nack_unanswered', 'no_rtx'),
});

// Video kbit/s between two samples.
const videoKbps = (a, b) => ((b.video.bytesReceived - a.video.bytesReceived) * 8) / (b.at - a.at);

let viewer;
let baseline; // the viewer's stats once it decodes on the unshaped link
let capture;

scenario('a viewer in its own network namespace decodes the presenter over the lean path', async () => {
  capture = await world.link.capture();
  await world.open('Host', `room=${room}&name=Host&role=host&mode=webinar`);
  // A small window: its tile asks for the middle layer (360p), which keeps decoding cheap on a
  // busy machine and leaves the cap a layer to take away.
  viewer = await world.open('Vee', `room=${room}&name=Vee`, { netns: true, viewport: { width: 640, height: 400 } });
  const first = await waitFor(
    'Vee to decode video and receive audio',
    () => viewerStats(viewer),
    (s) => s.video?.framesDecoded > 30 && s.audio?.packetsReceived > 50,
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  assert.ok(first.ciphers.length > 0 && first.ciphers.every((c) => /GCM/.test(c)), `SRTP cipher: ${first.ciphers}`);
  baseline = await waitFor(
    'Vee to decode a layer above the lowest',
    () => viewerStats(viewer),
    (s) => s.video.frameHeight > LOW_LAYER_HEIGHT && s.video.framesDecoded > first.video.framesDecoded + 30,
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  console.log(`# baseline: ${baseline.video.frameHeight}p, ${JSON.stringify(baseline.video)}`);
  // Nothing is lost on this link yet: a packet Chromium could not open (SRTP) would show here.
  for (const kind of ['audio', 'video']) {
    assert.ok(baseline[kind].packetsLost <= 2, `${kind}: ${baseline[kind].packetsLost} lost of ${baseline[kind].packetsReceived}`);
    // The lean path reports every second for both kinds (str0m: audio every 5 s).
    if (SEND_PATH === 'lean') assert.ok(baseline.reports[kind] > 0, `no ${kind} sender report opened: ${JSON.stringify(baseline.reports)}`);
  }
}, true);

// Chromium lip-syncs only an audio and a video track of one MediaStream (one msid): the server
// puts a person's microphone and camera in one (media/msid.rs). estimatedPlayoutTimestamp of
// both (sender NTP time of what plays now, from our sender reports) gives the skew. For the
// log only: how much longer video takes from arrival to playout than audio, video's processing
// delay (jitter buffer and decode) per frame against audio's jitter-buffer delay per sample.
scenario('audio and video play in sync', async () => {
  const from = await viewerStats(viewer);
  const { median, samples } = await playoutSkews(viewer, SYNC_WINDOW_MS);
  const to = await viewerStats(viewer);
  const per = (kind, total, count) => (1000 * (to[kind][total] - from[kind][total])) / (to[kind][count] - from[kind][count]);
  const audioMs = per('audio', 'jitterBufferDelay', 'jitterBufferEmittedCount');
  const videoMs = per('video', 'totalProcessingDelay', 'framesDecoded');
  console.log(
    `# A/V: playout-timestamp skew median ${median} ms over ${samples} samples; video ${videoMs.toFixed(1)} ms from arrival to decoded, audio ${audioMs.toFixed(1)} ms in its jitter buffer`,
  );
  assert.ok(samples >= SYNC_WINDOW_MS / 1000, `no sync group: ${samples} samples with both playout timestamps`);
  assert.ok(undetectableSkew(median), `audio and video play ${median} ms apart`);
});

scenario('under 5 % loss the viewer NACKs and the lean path repairs', async () => {
  const before = await viewerStats(viewer);
  const serverBefore = await serverFigures();
  const lossFrom = Date.now();
  await world.link.loss(5);
  const timeline = [];
  // Each time decoding stood still (from the look that saw frames grow to the next that did),
  // and whether Chromium asked for a keyframe meanwhile; looks every 250 ms, so a stall is
  // measured within that.
  let grew = before;
  const stalls = [];
  let longestLook = 0; // the longest time between two looks: a starved machine answers late
  const after = await waitFor(
    `${LOSS_WINDOW_MS / 1000} s of video under 5 % loss`,
    async () => {
      const s = await viewerStats(viewer);
      timeline.push({ at: s.at, height: s.video.frameHeight, frames: s.video.framesDecoded });
      longestLook = Math.max(longestLook, s.at - (timeline.at(-2)?.at ?? before.at));
      const ended = s.video.framesDecoded > grew.video.framesDecoded;
      if (ended || s.at - before.at >= LOSS_WINDOW_MS) {
        const ms = Math.round(s.at - grew.at);
        if (ms > STALL_KEPT_MS) stalls.push({ ms, keyframeAsked: s.video.pliCount > grew.video.pliCount });
        grew = s;
      }
      return s;
    },
    (s) => s.at - before.at >= LOSS_WINDOW_MS,
    { timeoutMs: 2 * LOSS_WINDOW_MS, intervalMs: 250 },
  );
  const longestStall = Math.max(0, ...stalls.map((s) => s.ms));
  const dropped = await world.link.dropped();
  const serverAfter = await serverFigures();
  await world.link.loss(0);
  const lossTo = Date.now();
  // What the server sent meanwhile, from the capture: the video stream, and on its RTX stream
  // retransmissions apart from padding-only probes (which Chromium counts as retransmitted too).
  const wire = udpDatagrams(capture.file);
  const media = rtpCount(wire, after.video.ssrc, lossFrom, lossTo);
  const rtx = after.video.rtxSsrc === null ? { plain: 0, padded: 0 } : rtpCount(wire, after.video.rtxSsrc, lossFrom, lossTo);
  const d = (k) => after.video[k] - before.video[k];
  const figures = {
    dropped,
    packetsReceived: d('packetsReceived'),
    packetsLost: d('packetsLost'),
    nacks: d('nackCount'),
    retransmittedReceived: d('retransmittedPacketsReceived'),
    videoSent: media.plain,
    rtxSent: rtx.plain,
    paddingSent: rtx.padded,
    plis: d('pliCount'),
    keyFrames: d('keyFramesDecoded'),
    framesDecoded: d('framesDecoded'),
    freezes: d('freezeCount'),
    freezeSeconds: Number(d('totalFreezesDuration').toFixed(2)),
    longestStallMs: longestStall,
    stalls,
    audioLost: after.audio.packetsLost - before.audio.packetsLost,
    audioReceived: after.audio.packetsReceived - before.audio.packetsReceived,
    // Whether the server held video back meanwhile, and what it did with the NACKs.
    server: Object.fromEntries(Object.keys(serverAfter).map((k) => [k, serverAfter[k] - serverBefore[k]])),
  };
  const seconds = timeline.filter((t, i) => i % 4 === 3);
  console.log(`# ${SEND_PATH}, 5 % loss, ${LOSS_WINDOW_MS / 1000} s: ${JSON.stringify(figures)}; height/frames each second: ${seconds.map((t) => `${t.height}p/${t.frames}`).join(' ')}`);
  assert.ok(figures.nacks > 0, 'Chromium sent no NACK under 5 % loss');
  // Chromium's SRTCP (NACKs among it) all opens: none refused, none taken for a replay.
  if (SEND_PATH === 'lean') {
    assert.ok(figures.server.srtcpOpened > 0, `no SRTCP opened: ${JSON.stringify(figures.server)}`);
    assert.equal(figures.server.srtcpRefused, 0, JSON.stringify(figures.server));
    assert.equal(figures.server.srtcpReplayed, 0, JSON.stringify(figures.server));
    // Every packet NACKed was retransmitted, or had been within the round trip: none on a
    // stream without RTX, and none too old to find unless the congestion gate skipped video
    // (then the pacer may have dropped held copies, and a keyframe is on its way instead).
    assert.ok(figures.server.rtxSent > 0, JSON.stringify(figures.server));
    assert.equal(figures.server.nackNoRtx, 0, JSON.stringify(figures.server));
    if (figures.server.congested === 0) assert.equal(figures.server.nackGone, 0, JSON.stringify(figures.server));
  }
  // Repair: the server retransmitted (RTX, not padding) at least half as many packets as the
  // link dropped of the video stream (5 % of what was sent). Chromium's packetsLost is not the
  // measure: it kept counting packets that RTX brought back (36 retransmitted, 38 lost of 672
  // in one run), so it stays near the link's 5 %; above twice that, more is lost than dropped.
  const droppedVideo = 0.05 * media.plain;
  assert.ok(media.plain > 100, `only ${media.plain} video packets captured in the window`);
  assert.ok(figures.rtxSent >= 0.5 * droppedVideo, `${figures.rtxSent} retransmitted for ~${droppedVideo} dropped`);
  assert.ok(figures.packetsLost < 0.1 * figures.packetsReceived, `lost ${figures.packetsLost} of ${figures.packetsReceived}`);
  // What the viewer sees: video going on, never standing still for long. Unrepaired, a lost
  // packet stalls decoding until the next keyframe (4-5 s stalls, ~90 frames in 15 s, measured
  // before NACK → RTX). A layer switch's keyframe wait is a shorter stall, and on a machine
  // loaded by other work the estimate does switch layers under loss, so this bound is on the
  // longest stall, not on Chromium's total freeze time (reported above).
  assert.ok(figures.framesDecoded > (LOSS_WINDOW_MS / 1000) * 5, `only ${figures.framesDecoded} frames decoded`);
  // A page that answers a look seconds late is on a machine too busy for real-time video; what
  // it shows is the machine, so the stall is then reported but not judged.
  if (longestLook > MAX_STALL_MS) {
    console.log(`# the page answered ${Math.round(longestLook)} ms apart: the stall is not judged`);
    return;
  }
  // On a machine short of CPU, Chromium's receiver now and then stops completing frames although
  // every packet it NACKed was retransmitted (asserted above on the lean path), and after 3 s
  // without a decodable frame asks for a keyframe (PLI), which ends the stall. Seen on both send
  // paths with a busy loop on one of the two cores: str0m's in 2 of 19 runs (two such stalls in
  // each), the lean path's in 1 of 34 (2026-12-02). One such stall is Chromium's; a second, or
  // a long stall that no keyframe request ended, is the server's to answer for.
  const long = stalls.filter((s) => s.ms >= MAX_STALL_MS);
  const chromiums = long.length === 1 && long[0].keyframeAsked;
  if (chromiums) console.log(`# one ${long[0].ms} ms stall ended by Chromium's own keyframe request`);
  else assert.equal(long.length, 0, `decoding stood still for ${longestStall} ms: ${JSON.stringify(stalls)}`);
});

scenario('a throttled link moves the viewer down a layer, and back up once lifted', async () => {
  await waitFor(
    'Vee above the lowest layer before the cap',
    () => viewerStats(viewer),
    (s) => s.video.frameHeight > LOW_LAYER_HEIGHT,
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  await world.link.cap('300kbit');
  const shapedAt = Date.now();
  const low = await waitFor(
    'Vee to drop to the lowest layer under the 300 kbit/s cap',
    () => viewerStats(viewer),
    (s) => s.video.frameHeight > 0 && s.video.frameHeight <= LOW_LAYER_HEIGHT,
    { timeoutMs: 20_000, intervalMs: 500 },
  );
  const downMs = Date.now() - shapedAt;
  // The cap holds a while: the viewer stays low (an estimate that climbed back under the cap
  // would move it up and freeze it again).
  const held = [];
  const later = await waitFor(
    `${CAP_HOLD_MS / 1000} s under the cap`,
    async () => {
      const s = await viewerStats(viewer);
      held.push(s.video.frameHeight);
      return s;
    },
    (s) => s.at - low.at >= CAP_HOLD_MS,
    { timeoutMs: 2 * CAP_HOLD_MS, intervalMs: 500 },
  );
  const lowKbps = videoKbps(low, later);
  await world.link.uncap();
  const liftedAt = Date.now();
  const high = await waitFor(
    'Vee back above the lowest layer after the cap lifts',
    () => viewerStats(viewer),
    (s) => s.video.frameHeight > LOW_LAYER_HEIGHT,
    { timeoutMs: 30_000, intervalMs: 500 },
  );
  const upMs = Date.now() - liftedAt;
  console.log(
    `# throttle: ${baseline.video.frameHeight}p → ${low.video.frameHeight}p after ${downMs} ms (${lowKbps.toFixed(0)} kbit/s video), heights under the cap ${held.join(' ')}, back to ${high.video.frameHeight}p ${upMs} ms after the cap lifts`,
  );
  assert.ok(later.video.frameHeight <= LOW_LAYER_HEIGHT, `at ${later.video.frameHeight}p at the end of the cap: ${held}`);
});

scenario('no SRTP or SRTCP nonce was used twice on the wire', async () => {
  const file = await capture.stop();
  const r = nonceRepeats(udpDatagrams(file));
  const { reports } = await viewerStats(viewer);
  console.log(`# wire: ${JSON.stringify(r.counts)}; sender reports Chromium read: ${JSON.stringify(reports)}`);
  // Every compound carries one SR per stream, and Chromium counts those it opened: short of the
  // compounds sent only by what the loss and the cap dropped (a few %), not by unopened ones.
  for (const kind of SEND_PATH === 'lean' ? ['audio', 'video'] : []) {
    assert.ok(reports[kind] >= 0.75 * r.counts.srtcp, `${kind}: Chromium read ${reports[kind]} SRs of ${r.counts.srtcp} SRTCP compounds sent`);
  }
  assert.ok(r.counts.srtp > 1000 && r.counts.srtcp > 10, `too little captured: ${JSON.stringify(r.counts)}`);
  assert.deepEqual(r.srtcpRepeats, [], 'an (SSRC, SRTCP index) pair was sealed twice');
  assert.deepEqual(r.srtpRepeats, [], 'an (SSRC, ROC||seq) pair was sealed twice');
});
