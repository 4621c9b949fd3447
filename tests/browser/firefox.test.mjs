// Firefox users as people have them: Debian's firefox-esr meeting Chromium, publishing three
// simulcast layers to a small and a large viewer, sharing its screen, promoted from the
// audience to the stage, and next to a Chromium that sends H.264, a codec this Firefox lacks.
//
// Bandwidth estimation is off for the same reason as in allhands.test.mjs: on a loaded 2-core
// machine a large viewer's estimate can fall below the full layer, and the scenario would fail
// on the machine's load rather than on the behaviour under test.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, myId, inboundStats, outboundStats, decodesVideoFrom, seesAndHears, receivedSources, cameraFrom } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const UI_DEADLINE_MS = 10_000;

const world = useWorld({ serverArgs: ['--bandwidth-estimation', 'false'], firefox: true });
const { people } = world;
const room = `firefox-${process.pid}`;
const BIG = { width: 1600, height: 1000 };
const SMALL = { width: 400, height: 300 };

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

// `/metrics`' count of packets dropped for `reason` (0 when none yet).
const dropped = async (reason) => (await world.server.metric(`confab_rtp_dropped_packets_total{reason="${reason}"}`)) || 0;

world.scenario('a Firefox user and a Chromium user meet: each sees and hears the other', async () => {
  const fox = await world.open('Fox', `room=${room}&name=Fox`, { firefox: true });
  const big = await world.open('Big', `room=${room}&name=Big`, { viewport: BIG });
  await Promise.all([seesAndHears(fox, 1, MEDIA_DEADLINE_MS), seesAndHears(big, 1, MEDIA_DEADLINE_MS)]);
  await decodesVideoFrom(big, await myId(fox), MEDIA_DEADLINE_MS);
});

world.scenario('Firefox sends simulcast layers; a small and a large viewer each get theirs', async () => {
  const [fox, big] = ['Fox', 'Big'].map((l) => people.get(l));
  const foxId = await myId(fox);
  const small = await world.open('Small', `room=${room}&name=Small`, { viewport: SMALL });

  // Three layers offered; the server pauses the middle one when no viewer wants it, so what
  // must flow is the lowest (for Small) and the full one (for Big).
  const rids = await fox.page.evaluate(() =>
    window.confab.client.pc
      .getSenders()
      .find((s) => s.track?.kind === 'video')
      ?.getParameters()
      .encodings.map((e) => e.rid),
  );
  assert.deepEqual(rids, ['q', 'h', 'f']);
  const widths = await waitFor(
    'Fox to send q, and f wider than q',
    async () => Object.fromEntries((await outboundStats(fox)).filter((s) => s.kind === 'video' && s.bytesSent > 0).map((s) => [s.rid, s.frameWidth])),
    (w) => w.q > 0 && w.f > w.q,
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 1000 },
  );
  const [seenSmall, seenBig] = await Promise.all([
    waitFor("Small to decode Fox's lowest layer", () => cameraFrom(small, foxId), (v) => v?.frames > 0 && v.width === widths.q, {
      timeoutMs: MEDIA_DEADLINE_MS,
      intervalMs: 1000,
    }),
    waitFor("Big to decode one of Fox's upper layers", () => cameraFrom(big, foxId), (v) => v?.frames > 0 && v.width > widths.q, {
      timeoutMs: MEDIA_DEADLINE_MS,
      intervalMs: 1000,
    }),
  ]);
  assert.ok(seenSmall.width < seenBig.width, `small ${JSON.stringify(seenSmall)} < big ${JSON.stringify(seenBig)}; sent ${JSON.stringify(widths)}`);
  await world.close('Small');
});

world.scenario('a screen shared from Firefox reaches the others', async () => {
  const [fox, big] = ['Fox', 'Big'].map((l) => people.get(l));
  const foxId = await myId(fox);
  await fox.page.click('#screen');
  await waitFor("Big to receive Fox's screen", () => receivedSources(big, foxId), (s) => s.includes('screen'), { timeoutMs: UI_DEADLINE_MS });
  await decodesVideoFrom(big, foxId, MEDIA_DEADLINE_MS, 'screen');
  await fox.page.click('#screen');
  await waitFor("Big to lose Fox's screen", () => receivedSources(big, foxId), (s) => !s.includes('screen') && s.includes('camera'), {
    timeoutMs: UI_DEADLINE_MS,
  });
});

// Chromium made to offer H.264 alone on the m-lines it sends from (what setCodecPreferences does
// in a page that wants hardware H.264).
function onlyH264() {
  const original = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    const h264 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => /video\/(h264|rtx)/i.test(c.mimeType));
    for (const t of this.getTransceivers()) {
      if (t.sender.track?.kind === 'video' && /send/.test(t.direction)) t.setCodecPreferences(h264);
    }
    return original.apply(this, args);
  };
}

world.scenario('H.264 from Chromium reaches who negotiated it; Firefox without H.264 is sent none of it', async () => {
  const [fox, big] = ['Fox', 'Big'].map((l) => people.get(l));
  const before = await dropped('no_matching_codec');
  const h264 = await world.open('H264', `room=${room}&name=H264`, { init: onlyH264 });
  const h264Id = await myId(h264);
  // The first offer may still be on its way when the join is done.
  const offered = await waitFor(
    'H264 to offer its camera',
    () => h264.page.evaluate(() => window.confab.client.pc?.localDescription?.sdp ?? ''),
    (sdp) => /m=video/.test(sdp),
    { timeoutMs: MEDIA_DEADLINE_MS },
  );
  assert.ok(/a=rtpmap:\d+ H264\/90000/.test(offered) && !/a=rtpmap:\d+ VP8\/90000/.test(offered.split('m=video')[1]), 'the camera line offers H.264 only');

  await decodesVideoFrom(big, h264Id, MEDIA_DEADLINE_MS);
  await waitFor('mismatched packets dropped and counted', () => dropped('no_matching_codec'), (n) => n > before + 50, {
    timeoutMs: MEDIA_DEADLINE_MS,
    intervalMs: 1000,
  });
  const atFox = await cameraFrom(fox, h264Id);
  assert.ok(atFox === null || atFox.packets === 0, `Fox receives no H.264: ${JSON.stringify(atFox)}`);
  // Fox still sees the VP8 camera, and H264 decodes Fox (the answer leads with VP8).
  await decodesVideoFrom(fox, await myId(big), MEDIA_DEADLINE_MS);
  await decodesVideoFrom(h264, await myId(fox), MEDIA_DEADLINE_MS);
  await world.close('H264');
});

world.scenario('a Firefox audience member brought on stage is seen and heard', async () => {
  const stage = `${room}-webinar`;
  const host = await world.open('Host', `room=${stage}&name=Host&role=host&mode=webinar`);
  const aud = await world.open('Aud', `room=${stage}&name=Aud`, { firefox: true });
  const audId = await myId(aud);
  assert.equal(await aud.page.evaluate(() => window.confab.client.me.role), 'audience');
  await decodesVideoFrom(aud, await myId(host), MEDIA_DEADLINE_MS);

  await aud.page.click('#hand');
  await ui(host, "Aud's raised hand", (id) => Boolean(document.querySelector(`#roster .hands [data-hand="${id}"]`)), audId);
  await host.page.click(`#roster .hands [data-hand="${audId}"] [data-action="promote"]`);
  // Promotion is an invitation: Aud accepts, and arrives with camera and microphone off.
  await aud.page.click('#ask .yes');
  await ui(aud, 'to be on stage', () => window.confab.client.me.role, null, (r) => r === 'presenter');
  await aud.page.click('#cam');
  await aud.page.click('#mic');
  await waitFor(
    "Aud's camera and microphone published",
    () => host.page.evaluate((id) => [...window.confab.client.tracks.values()].filter((t) => t.participant === id).map((t) => t.source).sort(), audId),
    (s) => s.includes('camera') && s.includes('microphone'),
    { timeoutMs: UI_DEADLINE_MS },
  );
  await decodesVideoFrom(host, audId, MEDIA_DEADLINE_MS);
  // Only Aud sends sound to Host: audio packets arriving are Aud's microphone.
  await waitFor('Host to receive audio', () => inboundStats(host), (s) => s.some((x) => x.kind === 'audio' && x.packetsReceived > 0), {
    timeoutMs: MEDIA_DEADLINE_MS,
    intervalMs: 500,
  });
});
