// The old send path (`--send-path str0m`, no longer the default) in real browsers: a Firefox
// user and a Chromium user meet, each decodes the other's camera and receives its audio, and a
// Chromium audience member decodes the stage, its audio and video in sync. Kept so the
// fallback path stays covered.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { myId, decodesVideoFrom, seesAndHears, playoutSkews, undetectableSkew } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const SYNC_WINDOW_MS = 6000;

const world = useWorld({ serverArgs: ['--send-path', 'str0m'], firefox: true });
const room = `str0m-${process.pid}`;

world.scenario('on the str0m path a Firefox user and a Chromium user see and hear each other', async () => {
  const fox = await world.open('Fox', `room=${room}&name=Fox`, { firefox: true });
  const chro = await world.open('Chro', `room=${room}&name=Chro`);
  await Promise.all([seesAndHears(fox, 1, MEDIA_DEADLINE_MS), seesAndHears(chro, 1, MEDIA_DEADLINE_MS)]);
  await Promise.all([decodesVideoFrom(chro, await myId(fox), MEDIA_DEADLINE_MS), decodesVideoFrom(fox, await myId(chro), MEDIA_DEADLINE_MS)]);
  await Promise.all([world.close('Fox'), world.close('Chro')]);
});

world.scenario('on the str0m path a webinar audience decodes the stage', async () => {
  const webinar = `${room}-webinar`;
  const host = await world.open('Host', `room=${webinar}&name=Host&role=host&mode=webinar`);
  const viewer = await world.open('Vic', `room=${webinar}&name=Vic`);
  await seesAndHears(viewer, 1, MEDIA_DEADLINE_MS);
  await decodesVideoFrom(viewer, await myId(host), MEDIA_DEADLINE_MS);
  // The host's microphone and camera are one stream toward Vic, so Chromium lip-syncs them.
  const { median, samples } = await playoutSkews(viewer, SYNC_WINDOW_MS);
  console.log(`# A/V playout-timestamp skew: median ${median} ms over ${samples} samples`);
  assert.ok(samples >= SYNC_WINDOW_MS / 1000, `no sync group: ${samples} samples with both playout timestamps`);
  assert.ok(undetectableSkew(median), `audio and video play ${median} ms apart`);
});
