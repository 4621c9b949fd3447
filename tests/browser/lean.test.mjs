// The lean send path (`--send-path lean`) toward a webinar audience: Chromium opens what
// confab rewrote and sealed itself (SRTP) and reads its sender reports (SRTCP).

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

const world = useWorld({ serverArgs: ['--send-path', 'lean'] });
const { people } = world;
const room = `lean-${process.pid}`;
const AUDIENCE = ['Amy', 'Bo'];

// Inbound RTP and the sender reports behind it (remote-outbound-rtp), per kind.
const mediaStats = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab?.client?.pc;
    if (!pc) return { inbound: [], reports: [], ciphers: [] };
    const inbound = [];
    const reports = [];
    const ciphers = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport' && s.srtpCipher) ciphers.push(s.srtpCipher);
      if (s.type === 'inbound-rtp') {
        inbound.push({
          kind: s.kind,
          ssrc: s.ssrc,
          framesDecoded: s.framesDecoded ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
        });
      }
      if (s.type === 'remote-outbound-rtp') reports.push({ kind: s.kind, ssrc: s.ssrc, reportsSent: s.reportsSent ?? 0 });
    });
    return { inbound, reports, ciphers };
  });

world.scenario('the audience decodes the presenter over the lean path, sender reports included', async () => {
  await world.open('Host', `room=${room}&name=Host&role=host&mode=webinar`);
  for (const label of AUDIENCE) await world.open(label, `room=${room}&name=${label}`);

  for (const label of AUDIENCE) {
    const p = people.get(label);
    const first = await waitFor(
      `${label} to decode video, receive audio and read sender reports of both`,
      () => mediaStats(p),
      (s) =>
        s.inbound.some((x) => x.kind === 'video' && x.framesDecoded > 10) &&
        s.inbound.some((x) => x.kind === 'audio' && x.packetsReceived > 20) &&
        ['audio', 'video'].every((k) => s.reports.some((r) => r.kind === k && r.reportsSent > 0)),
      { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
    );
    const video = (s) => s.inbound.find((x) => x.kind === 'video' && x.framesDecoded > 0);
    // Decoding keeps going: frames grow over the next seconds.
    const later = await waitFor(
      `${label}'s decoded frames to grow`,
      () => mediaStats(p),
      (s) => video(s) && video(s).framesDecoded > video(first).framesDecoded + 30,
      { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
    );
    // The fast path seals only AEAD-GCM (anything else would fall back to str0m sending):
    // this cipher is what proves the frames above were sealed by confab's own code.
    assert.ok(later.ciphers.length > 0 && later.ciphers.every((c) => /GCM/.test(c)), `${label} SRTP cipher: ${later.ciphers}`);
    for (const s of later.inbound.filter((x) => x.packetsReceived > 0)) {
      // Loopback loses nothing: anything missing would be packets Chromium could not open.
      assert.ok(s.packetsLost <= 2, `${label} ${s.kind}: ${s.packetsLost} lost of ${s.packetsReceived}`);
    }
  }
  // Chromium's SRTCP (receiver reports, transport-cc, NACKs, the host's sender reports) is
  // opened by the lean path itself, once; str0m no longer sees it. None may fail to open.
  const opened = await world.server.metric('confab_lean_srtcp_opened_total');
  const refused = await world.server.metric('confab_lean_srtcp_refused_total');
  assert.ok(opened > 20, `lean path opened ${opened} SRTCP compounds`);
  assert.equal(refused, 0, `${refused} SRTCP compounds failed to open`);
});
