// The lean send path (`--send-path lean`) toward a webinar audience: Chromium opens what
// confab rewrote and sealed itself (SRTP) and reads its sender reports (SRTCP).

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { decodesOverLean } from './lean_pages.mjs';

const world = useWorld({ serverArgs: ['--send-path', 'lean'] });
const { people } = world;
const room = `lean-${process.pid}`;
const AUDIENCE = ['Amy', 'Bo'];

world.scenario('the audience decodes the presenter over the lean path, sender reports included', async () => {
  await world.open('Host', `room=${room}&name=Host&role=host&mode=webinar`);
  for (const label of AUDIENCE) await world.open(label, `room=${room}&name=${label}`);

  for (const label of AUDIENCE) {
    await decodesOverLean(people.get(label), label, {
      first: {
        what: ', and to read sender reports of both',
        until: (s) => ['audio', 'video'].every((k) => s.reports.some((r) => r.kind === k && r.reportsSent > 0)),
      },
    });
  }
  // Chromium's SRTCP (receiver reports, transport-cc, NACKs, the host's sender reports) is
  // opened by the lean path itself, once; str0m no longer sees it. None may fail to open.
  const opened = await world.server.metric('confab_lean_srtcp_opened_total');
  const refused = await world.server.metric('confab_lean_srtcp_refused_total');
  assert.ok(opened > 20, `lean path opened ${opened} SRTCP compounds`);
  assert.equal(refused, 0, `${refused} SRTCP compounds failed to open`);
});
