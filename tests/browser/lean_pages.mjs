// What the lean send path's loopback tests (lean, lean_meeting) read from a page's getStats(),
// and the wait they share: decoding over media confab sealed itself.

import assert from 'node:assert/strict';
import { waitFor } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

// Inbound RTP; the sender reports behind it (remote-outbound-rtp); what the page sends and our
// receiver reports on it (outbound-rtp, remote-inbound-rtp); the transport's SRTP ciphers.
export const leanStats = (person) =>
  person.page.evaluate(async () => {
    const out = { inbound: [], reports: [], outbound: [], remote: [], ciphers: [] };
    const pc = window.confab?.client?.pc;
    if (!pc) return out;
    // Counters Chromium does not report yet read as 0.
    const pick = (s, keys) => Object.fromEntries(keys.map((k) => [k, s[k] ?? 0]));
    (await pc.getStats()).forEach((s) => {
      const id = { kind: s.kind, ssrc: s.ssrc };
      if (s.type === 'transport' && s.srtpCipher) out.ciphers.push(s.srtpCipher);
      if (s.type === 'inbound-rtp') out.inbound.push({ ...id, ...pick(s, ['framesDecoded', 'packetsReceived', 'packetsLost']) });
      if (s.type === 'remote-outbound-rtp') out.reports.push({ ...id, ...pick(s, ['reportsSent']) });
      if (s.type === 'outbound-rtp') out.outbound.push({ ...id, ...pick(s, ['packetsSent']) });
      if (s.type === 'remote-inbound-rtp') {
        const measurements = s.roundTripTimeMeasurements ?? 0;
        out.remote.push({ ...id, ...pick(s, ['packetsLost', 'fractionLost', 'jitter']), roundTripTime: s.roundTripTime, measurements });
      }
    });
    return out;
  });

// Waits until `person` decodes video and receives audio (and `first.until` holds), then until
// its decoded frames grow by 30 more (and `later.until` holds); asserts the media was confab's
// own SRTP and lost nothing. Returns the later stats.
export async function decodesOverLean(person, label, { first = {}, later = {} } = {}) {
  const [firstUntil, laterUntil] = [first.until ?? (() => true), later.until ?? (() => true)];
  const start = await waitFor(
    `${label} to decode video and receive audio${first.what ?? ''}`,
    () => leanStats(person),
    (s) =>
      s.inbound.some((x) => x.kind === 'video' && x.framesDecoded > 10) &&
      s.inbound.some((x) => x.kind === 'audio' && x.packetsReceived > 20) &&
      firstUntil(s),
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  const video = (s) => s.inbound.find((x) => x.kind === 'video' && x.framesDecoded > 0);
  // Decoding keeps going: frames grow over the next seconds.
  const end = await waitFor(
    `${label}'s decoded frames to grow${later.what ?? ''}`,
    () => leanStats(person),
    (s) => video(s) && video(s).framesDecoded > video(start).framesDecoded + 30 && laterUntil(s),
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  // The fast path seals only AEAD-GCM (anything else would fall back to str0m sending):
  // this cipher is what proves the frames above were sealed by confab's own code.
  assert.ok(end.ciphers.length > 0 && end.ciphers.every((c) => /GCM/.test(c)), `${label} SRTP cipher: ${end.ciphers}`);
  for (const s of end.inbound.filter((x) => x.packetsReceived > 0)) {
    // Loopback loses nothing: anything missing would be packets Chromium could not open.
    assert.ok(s.packetsLost <= 2, `${label} ${s.kind}: ${s.packetsLost} lost of ${s.packetsReceived}`);
  }
  return end;
}
