// Screen sharing as people have it: a presentation laptop that shares on joining, viewers who
// see the screen large beside the sharer's face, two people sharing at once, and stopping by
// button and by the browser's own stop.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, myId, decodesVideoFrom, receivedSources } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const UI_DEADLINE_MS = 10_000;

const world = useWorld();
const { people } = world;
const room = `share-${process.pid}`;

// The rectangle of a tile on `person`'s stage, or null when it has none.
const tileBox = (person, participant, source) =>
  person.page.evaluate(
    ([id, source]) => {
      const el = document.querySelector(`#grid .tile[data-participant="${id}"][data-source="${source}"]`);
      if (!el || el.hidden) return null;
      const r = el.getBoundingClientRect();
      return { w: r.width, h: r.height, size: el.dataset.size };
    },
    [participant, source],
  );

const screenSender = (person) =>
  person.page.evaluate(() => {
    const sender = window.confab.client.pc.getSenders().find((s) => s.track?.contentHint === 'detail');
    if (!sender) return null;
    const p = sender.getParameters();
    return { degradation: p.degradationPreference, encodings: p.encodings.length, maxBitrate: p.encodings[0].maxBitrate };
  });

world.scenario('a viewer sees the shared screen large beside the sharer’s camera', async () => {
  const viewer = await world.open('Vic', `room=${room}&name=Vic`);
  // The presentation laptop: shares as soon as it is in.
  const laptop = await world.open('Laptop', `room=${room}&name=Laptop&screen=1`);
  const laptopId = await myId(laptop);

  await waitFor("Vic to receive Laptop's camera and screen", () => receivedSources(viewer, laptopId), (s) => s.includes('camera') && s.includes('screen'), {
    timeoutMs: UI_DEADLINE_MS,
  });
  await Promise.all([
    decodesVideoFrom(viewer, laptopId, MEDIA_DEADLINE_MS, 'camera'),
    decodesVideoFrom(viewer, laptopId, MEDIA_DEADLINE_MS, 'screen'),
  ]);
  const screen = await waitFor('the screen tile to be large', () => tileBox(viewer, laptopId, 'screen'), (b) => b?.size === 'large');
  const camera = await tileBox(viewer, laptopId, 'camera');
  assert.ok(camera, "the sharer's camera stays in view beside the screen");
  assert.ok(screen.w * screen.h > 4 * camera.w * camera.h, `screen ${JSON.stringify(screen)} dwarfs camera ${JSON.stringify(camera)}`);

  const sender = await screenSender(laptop);
  assert.deepEqual(sender, { degradation: 'maintain-resolution', encodings: 1, maxBitrate: 2_500_000 }, 'the screen keeps its resolution');

  // The camera is encoded as the server said in `joined` (what it budgets), not from a copy.
  const layers = await laptop.page.evaluate(() => {
    const client = window.confab.client;
    const sender = client.pc.getSenders().find((s) => s.track && s.track === client.localTrack('camera'));
    return {
      told: client.limits.camera.map((e) => [e.rid, e.scale_down_by, e.max_bitrate]),
      sent: sender.getParameters().encodings.map((e) => [e.rid, e.scaleResolutionDownBy, e.maxBitrate]),
    };
  });
  assert.deepEqual(layers.told, [['q', 4, 150_000], ['h', 2, 500_000], ['f', 1, 1_500_000]], 'the server names three layers');
  assert.deepEqual(layers.sent, layers.told, 'the camera sends the layers the server named');
});

world.scenario('two people share at once, and each stop removes only theirs', async () => {
  const viewer = people.get('Vic');
  const laptop = people.get('Laptop');
  const vicId = await myId(viewer);
  const laptopId = await myId(laptop);

  await viewer.page.click('#screen');
  await decodesVideoFrom(laptop, vicId, MEDIA_DEADLINE_MS, 'screen');
  assert.ok(await tileBox(viewer, laptopId, 'screen'), "Vic still sees Laptop's screen while sharing");

  await viewer.page.click('#screen');
  await waitFor("Laptop to lose Vic's screen", () => receivedSources(laptop, vicId), (s) => !s.includes('screen') && s.includes('camera'), {
    timeoutMs: UI_DEADLINE_MS,
  });
  await waitFor("Vic's screen tile to go", () => tileBox(laptop, vicId, 'screen'), (b) => b === null, { timeoutMs: UI_DEADLINE_MS });
});

world.scenario('stopping from the browser’s own sharing bar removes the screen everywhere', async () => {
  const viewer = people.get('Vic');
  const laptop = people.get('Laptop');
  const laptopId = await myId(laptop);
  // What Chrome's "Stop sharing" does: the captured track ends without our asking.
  await laptop.page.evaluate(() => {
    const track = window.confab.client.screenStream.getVideoTracks()[0];
    track.stop();
    track.dispatchEvent(new Event('ended'));
  });
  await waitFor("Vic to lose Laptop's screen", () => receivedSources(viewer, laptopId), (s) => !s.includes('screen') && s.includes('camera'), {
    timeoutMs: UI_DEADLINE_MS,
  });
  await waitFor('the screen tile to go', () => tileBox(viewer, laptopId, 'screen'), (b) => b === null, { timeoutMs: UI_DEADLINE_MS });
  const camera = await tileBox(viewer, laptopId, 'camera');
  assert.ok(camera && camera.size !== undefined, 'back to the gallery');
  assert.equal(await laptop.page.getAttribute('#screen', 'aria-pressed'), 'false');
});
