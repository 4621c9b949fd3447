// A meeting on the lean send path (`--send-path lean`): two Chromium pages publish and
// receive; each decodes the other over what confab sealed itself, and each reads confab's
// own receiver reports on what it publishes (`remote-inbound-rtp`, with a round trip from
// their LSR/DLSR echo), which str0m no longer sends for lean peers.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

const world = useWorld({ serverArgs: ['--send-path', 'lean'] });
const { people } = world;
const room = `lean-meeting-${process.pid}`;
const PAIR = ['Ana', 'Ben'];

// What a page receives, and what the server reported about what it sends.
const stats = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab?.client?.pc;
    if (!pc) return { inbound: [], remote: [], outbound: [], ciphers: [] };
    const inbound = [];
    const remote = [];
    const outbound = [];
    const ciphers = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport' && s.srtpCipher) ciphers.push(s.srtpCipher);
      if (s.type === 'inbound-rtp') {
        inbound.push({
          kind: s.kind,
          framesDecoded: s.framesDecoded ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
        });
      }
      if (s.type === 'outbound-rtp') outbound.push({ kind: s.kind, ssrc: s.ssrc, packetsSent: s.packetsSent ?? 0 });
      if (s.type === 'remote-inbound-rtp') {
        remote.push({
          kind: s.kind,
          ssrc: s.ssrc,
          packetsLost: s.packetsLost ?? 0,
          fractionLost: s.fractionLost ?? 0,
          jitter: s.jitter ?? 0,
          roundTripTime: s.roundTripTime,
          measurements: s.roundTripTimeMeasurements ?? 0,
        });
      }
    });
    return { inbound, remote, outbound, ciphers };
  });

world.scenario('two lean participants decode each other and read our receiver reports', async () => {
  for (const label of PAIR) await world.open(label, `room=${room}&name=${label}`);

  for (const label of PAIR) {
    const p = people.get(label);
    const first = await waitFor(
      `${label} to decode the other's video, receive audio, and read receiver reports on its own audio and video`,
      () => stats(p),
      (s) =>
        s.inbound.some((x) => x.kind === 'video' && x.framesDecoded > 10) &&
        s.inbound.some((x) => x.kind === 'audio' && x.packetsReceived > 20) &&
        ['audio', 'video'].every((k) => s.remote.some((r) => r.kind === k && r.measurements > 0)),
      { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
    );
    const video = (s) => s.inbound.find((x) => x.kind === 'video' && x.framesDecoded > 0);
    const later = await waitFor(
      `${label}'s decoded frames to grow and more reports to arrive`,
      () => stats(p),
      (s) =>
        video(s) &&
        video(s).framesDecoded > video(first).framesDecoded + 30 &&
        s.remote.some((r) => r.kind === 'video' && r.measurements >= 3),
      { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
    );
    // Only AEAD-GCM is sealed by the lean path: the frames above are confab's own SRTP.
    assert.ok(later.ciphers.length > 0 && later.ciphers.every((c) => /GCM/.test(c)), `${label} SRTP cipher: ${later.ciphers}`);
    for (const s of later.inbound.filter((x) => x.packetsReceived > 0)) {
      // Loopback loses nothing: anything missing would be packets Chromium could not open.
      assert.ok(s.packetsLost <= 2, `${label} ${s.kind}: ${s.packetsLost} lost of ${s.packetsReceived}`);
    }
    console.log(`${label} remote-inbound-rtp: ${JSON.stringify(later.remote)}`);
    const sent = new Set(later.outbound.map((o) => o.ssrc));
    for (const r of later.remote) {
      // Blocks name what the page sends, count (almost) nothing lost on loopback, and echo
      // its sender reports: a round trip measured, and short.
      assert.ok(sent.has(r.ssrc), `${label}: a report on ${r.ssrc}, which it does not send (${[...sent]})`);
      assert.ok(r.packetsLost <= 2 && r.fractionLost <= 0.05, `${label} ${r.kind}: ${JSON.stringify(r)}`);
      assert.ok(r.jitter < 0.2, `${label} ${r.kind}: jitter ${r.jitter} s`);
      if (r.measurements > 0) {
        assert.ok(r.roundTripTime >= 0 && r.roundTripTime < 0.5, `${label} ${r.kind}: rtt ${r.roundTripTime} s`);
      }
    }
  }
});
