// A large meeting from one browser's seat: thirty others on camera (headless bots from
// `confab-load crowd`, one of them talking). The browser receives video only for the tiles on
// its page and audio on a few slots that carry whoever is heard, so its SDP stays small
// instead of growing two m-lines per person.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after } from 'node:test';
import { useWorld } from './harness.mjs';
import { serverBinary } from './server.mjs';
import { waitFor, inboundStats, tileIds } from './browser.mjs';

const CROWD = 30;
const DEADLINE_MS = 30_000;

const world = useWorld();
const room = `allhands-crowd-${process.pid}`;
let crowd = null;

after(() => crowd?.kill('SIGKILL'));

world.scenario(`among ${CROWD} others, a browser receives the page it shows and the voice it hears`, async () => {
  const bin = path.join(path.dirname(serverBinary()), 'confab-load');
  const url = `${world.server.url.replace('http', 'ws')}/ws`;
  const args = ['--url', url, '--quiet', '--duration', '120', 'crowd', '--room', room, '--size', String(CROWD), '--talking', '1'];
  crowd = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor(`${CROWD} bots in the room`, () => world.server.metric('confab_participants'), (n) => n >= CROWD, { timeoutMs: DEADLINE_MS });

  const me = await world.open('Me', `room=${room}&name=Me`, { devices: false });
  await waitFor('a tile for everyone, over several pages', () => tileIds(me), (ids) => ids.length === CROWD + 1, { timeoutMs: DEADLINE_MS });
  const talker = await me.page.evaluate(() => [...window.confab.client.participants.values()].find((p) => p.name === 'crowd0')?.id);

  // Video arrives for the tiles on the page (the bots' payload is VP8-shaped, not decodable:
  // packets are what to count), and the talking bot is heard on a slot.
  const state = await waitFor(
    "video for the page's tiles and crowd0's voice",
    () =>
      me.page.evaluate(async (talker) => {
        const { client } = window.confab;
        const onPage = [...document.querySelectorAll('#grid .tile[data-source="camera"]')].filter((t) => !t.hidden).length;
        const voice = client.receiversOf(talker).find((r) => r.kind === 'audio');
        let heard = 0;
        if (voice) (await voice.receiver.getStats()).forEach((s) => s.type === 'inbound-rtp' && (heard = s.packetsReceived));
        return { onPage, heard };
      }, talker),
    (s) => s.heard > 0,
    { timeoutMs: DEADLINE_MS, intervalMs: 500 },
  );
  const video = await waitFor(
    'video packets on several m-lines',
    async () => (await inboundStats(me)).filter((s) => s.kind === 'video' && s.packetsReceived > 0).length,
    (n) => n >= 3,
    { timeoutMs: DEADLINE_MS, intervalMs: 500 },
  );
  const sdp = await me.page.evaluate(() => {
    // Less the candidates, which the server (ICE-lite) never reads: Chromium repeats every one
    // it has gathered in every bundled m-section, ~1 KB per m-section once gathering is done,
    // so with them the size says how far gathering had got when the description was read.
    const lines = window.confab.client.pc.localDescription.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate') && l !== 'a=end-of-candidates');
    return { bytes: lines.join('\r\n').length, video: lines.filter((l) => l.startsWith('m=video')).length, audio: lines.filter((l) => l.startsWith('m=audio')).length };
  });
  // At most a page of video m-lines (a page holds 25 tiles at 1280×800, ours among them) and
  // the audio slots: 32 m-lines and ~130 KB rather than the 62 and ~250 KB that one per track
  // would take (Chromium writes ~4 KB per m-line).
  assert.ok(video <= state.onPage, `video on ${video} m-lines for ${state.onPage} tiles on the page`);
  assert.ok(sdp.video <= state.onPage && sdp.video < CROWD, JSON.stringify(sdp));
  assert.ok(sdp.audio <= 8, JSON.stringify(sdp));
  assert.ok(sdp.bytes < 150_000, JSON.stringify(sdp));
});
