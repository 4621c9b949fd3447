// A meeting on the lean send path (`--send-path lean`): two Chromium pages publish and
// receive; each decodes the other over what confab sealed itself, and each reads confab's
// own receiver reports on what it publishes (`remote-inbound-rtp`, with a round trip from
// their LSR/DLSR echo), which str0m no longer sends for lean peers.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { decodesOverLean } from './lean_pages.mjs';

const world = useWorld({ serverArgs: ['--send-path', 'lean'] });
const { people } = world;
const room = `lean-meeting-${process.pid}`;
const PAIR = ['Ana', 'Ben'];

world.scenario('two lean participants decode each other and read our receiver reports', async () => {
  for (const label of PAIR) await world.open(label, `room=${room}&name=${label}`);

  for (const label of PAIR) {
    const later = await decodesOverLean(people.get(label), label, {
      first: {
        what: ', and to read receiver reports on its own audio and video',
        until: (s) => ['audio', 'video'].every((k) => s.remote.some((r) => r.kind === k && r.measurements > 0)),
      },
      later: {
        what: ' and more reports to arrive',
        until: (s) => s.remote.some((r) => r.kind === 'video' && r.measurements >= 3),
      },
    });
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
