// The old send path (`--send-path str0m`, no longer the default) in real browsers: a Firefox
// user and a Chromium user meet, each decodes the other's camera and receives its audio, and a
// Chromium audience member decodes the stage. Kept so the fallback path stays covered.

import { useWorld } from './harness.mjs';
import { waitFor, myId, inboundStats, decodesVideoFrom } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

const world = useWorld({ serverArgs: ['--send-path', 'str0m'], firefox: true });
const room = `str0m-${process.pid}`;

const seesAndHears = (person, others) =>
  waitFor(
    `${person.label} to decode video and receive audio from ${others} others`,
    () => inboundStats(person),
    (s) => s.filter((x) => x.kind === 'video' && x.framesDecoded > 0).length >= others && s.some((x) => x.kind === 'audio' && x.packetsReceived > 0),
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );

world.scenario('on the str0m path a Firefox user and a Chromium user see and hear each other', async () => {
  const fox = await world.open('Fox', `room=${room}&name=Fox`, { firefox: true });
  const chro = await world.open('Chro', `room=${room}&name=Chro`);
  await Promise.all([seesAndHears(fox, 1), seesAndHears(chro, 1)]);
  await Promise.all([decodesVideoFrom(chro, await myId(fox), MEDIA_DEADLINE_MS), decodesVideoFrom(fox, await myId(chro), MEDIA_DEADLINE_MS)]);
  await Promise.all([world.close('Fox'), world.close('Chro')]);
});

world.scenario('on the str0m path a webinar audience decodes the stage', async () => {
  const webinar = `${room}-webinar`;
  const host = await world.open('Host', `room=${webinar}&name=Host&role=host&mode=webinar`);
  const viewer = await world.open('Vic', `room=${webinar}&name=Vic`);
  await seesAndHears(viewer, 1);
  await decodesVideoFrom(viewer, await myId(host), MEDIA_DEADLINE_MS);
});
