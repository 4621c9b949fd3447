// Host tools as people have them: a stage invitation the attendee accepts, arriving with camera
// and microphone off (nothing sent until they turn one on); a host's mute that stops their
// audio at the receiver, and a request to unmute the person answers; a reaction over a tile;
// a poll whose results the host sees live.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { useWorld } from './harness.mjs';
import { waitFor, myId, inboundStats, packetsSent } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const UI_DEADLINE_MS = 10_000;
// A host's mute stops the audio at the receiver within this: the server drops the track's
// packets from the moment it handles the mute, and what was already on its way arrives in
// milliseconds; the rest is room for the 1.5 s looks on a loaded machine.
const MUTE_STOP_MS = 5_000;
// Screenshots for a human to look at, when asked for (CONFAB_SHOTS=dir).
const SHOTS = process.env.CONFAB_SHOTS;
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

const world = useWorld();
const { people } = world;
const room = `tools-${process.pid}`;

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

// Audio packets `person` has received in all, across its audio slots.
const audioIn = async (person) =>
  (await inboundStats(person)).filter((s) => s.kind === 'audio').reduce((n, s) => n + s.packetsReceived, 0);

// Resolves once `probe` stands still between two looks `ms` apart (or grows, with `grow`).
// Every comparison spans a full `ms`: two looks in a row can read the same report (Chromium
// caches one for 50 ms) and would call a stream that still flows "still".
async function settles(what, probe, { grow = false, ms = 1500, timeoutMs = MEDIA_DEADLINE_MS } = {}) {
  const deadline = Date.now() + timeoutMs;
  let before = await probe();
  for (;;) {
    await new Promise((r) => setTimeout(r, ms));
    const now = await probe();
    if (grow ? now > before : now === before) return { now };
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last saw ${before} then ${now}`);
    before = now;
  }
}

async function shot(person, name) {
  if (!SHOTS) return;
  await person.page.screenshot({ path: `${SHOTS}/${name}-1280.png` });
  const size = person.page.viewportSize();
  await person.page.setViewportSize({ width: 390, height: 844 });
  await person.page.waitForTimeout(300);
  await person.page.screenshot({ path: `${SHOTS}/${name}-390.png` });
  await person.page.setViewportSize(size);
}

world.scenario('an accepted stage invitation starts with camera and microphone off; only what is turned on is sent', async () => {
  const host = await world.open('Host', `room=${room}&name=Host&role=host&mode=webinar`);
  const amy = await world.open('Amy', `room=${room}&name=Amy`);
  const amyId = await myId(amy);
  await ui(amy, 'to be in the audience', () => window.confab.client.me.role, null, (r) => r === 'audience');

  await amy.page.click('#hand');
  await ui(host, "Amy's raised hand", (id) => Boolean(document.querySelector(`#roster .hands [data-hand="${id}"]`)), amyId);
  await host.page.click(`#roster .hands [data-hand="${amyId}"] [data-action="promote"]`);
  await ui(amy, 'the invitation', () => document.querySelector('#ask:not([hidden]) #ask-text')?.textContent ?? '', null, (t) =>
    t.includes('invites you on stage'),
  );
  // The invitation alone changes nothing.
  assert.equal(await amy.page.evaluate(() => window.confab.client.me.role), 'audience');
  await shot(amy, 'stage-invitation');
  const capturesBefore = await amy.page.evaluate(() => window.__mediaRequests);
  await amy.page.click('#ask .yes');
  await ui(amy, 'to be on stage', () => window.confab.client.me.role, null, (r) => r === 'presenter');
  await ui(host, 'Amy accepted', () => document.getElementById('toast')?.textContent ?? '', null, (t) => t.includes('Amy joined the stage'));
  // On stage with both off: the buttons show off, nothing is captured, nothing is sent.
  await ui(amy, 'mic and camera shown off', () => ['#mic', '#cam'].map((s) => document.querySelector(s).getAttribute('aria-pressed')), null, (p) =>
    p.every((x) => x === 'true'),
  );
  await amy.page.waitForTimeout(1500);
  assert.equal(await amy.page.evaluate(() => window.__mediaRequests), capturesBefore, 'no capture before a device is turned on');
  assert.equal((await packetsSent(amy, 'audio')) + (await packetsSent(amy, 'video')), 0, 'nothing sent while both are off');
  await shot(amy, 'on-stage-devices-off');

  // The microphone turned on: audio flows to the host; the camera stays off and unsent.
  await amy.page.click('#mic');
  await settles('Host to receive Amy\'s audio', () => audioIn(host), { grow: true, ms: 1000 });
  assert.ok((await packetsSent(amy, 'audio')) > 0, 'Amy sends audio');
  assert.equal(await packetsSent(amy, 'video'), 0, 'the camera is still not sent');
  await ui(host, "Amy's tile", (id) => Boolean(document.querySelector(`#grid .tile[data-participant="${id}"]`)), amyId);
});

world.scenario("a host's mute stops the audio at the receiver; asking to unmute leaves it to the person", async () => {
  const host = people.get('Host');
  const amy = people.get('Amy');
  const amyId = await myId(amy);
  await host.page.click(`#grid .tile[data-participant="${amyId}"] .host-menu-button`);
  await shot(host, 'tile-host-menu');
  await host.page.click(`#grid .tile[data-participant="${amyId}"] .host-menu [data-action="mute-microphone"]`);
  await ui(amy, 'to be told of the mute', () => window.confab.client.muted.microphone, null);
  // Forwarding stopped: the host's inbound audio stands still, soon after the mute, and stays so.
  const stopped = await settles('Host to stop receiving Amy\'s audio', () => audioIn(host), { timeoutMs: MUTE_STOP_MS });
  await host.page.waitForTimeout(1000);
  assert.equal(await audioIn(host), stopped.now, 'no audio after the mute');

  // Asking does not unmute: the request waits for Amy.
  await host.page.click(`#grid .tile[data-participant="${amyId}"] .host-menu-button`);
  await host.page.click(`#grid .tile[data-participant="${amyId}"] .host-menu [data-action="ask-microphone"]`);
  await ui(amy, 'the request', () => document.querySelector('#ask:not([hidden])')?.dataset.kind, null, (k) => k === 'unmute');
  await amy.page.waitForTimeout(1000);
  assert.equal(await audioIn(host), stopped.now, 'a request alone turns nothing on');
  await shot(amy, 'unmute-request');
  await amy.page.click('#ask .yes');
  await settles('Host to hear Amy again', () => audioIn(host), { grow: true, ms: 1000 });
});

world.scenario('a reaction shows over its sender\'s tile; a poll\'s results reach the host live', async () => {
  const host = people.get('Host');
  const amy = people.get('Amy');
  const amyId = await myId(amy);
  await amy.page.click('#react');
  await amy.page.click('.reaction-picker [data-emoji="👏"]');
  await ui(host, "Amy's applause on her tile", (id) => document.querySelector(`#grid .tile[data-participant="${id}"] .reaction`)?.textContent, amyId, (t) => t === '👏');

  await host.page.click('#host-tools');
  await host.page.click('.host-tools-menu [data-action="poll"]');
  await host.page.fill('#poll-form [name="question"]', 'Pizza or salad?');
  await host.page.fill('#poll-form [name="choices"]', 'Pizza\nSalad');
  await shot(host, 'poll-form');
  await host.page.click('#poll-form button[type=submit]');
  await ui(amy, 'the poll', () => document.querySelector('#poll:not([hidden]) .question')?.textContent, null, (t) => t === 'Pizza or salad?');
  await amy.page.click('#poll .choice[data-choice="1"]');
  await ui(host, 'the vote counted, with the voter', () => [...document.querySelectorAll('#poll .choices li')].map((li) => li.textContent), null, (rows) =>
    rows.length === 2 && rows[0].includes('0 · 0%') && rows[1].includes('1 · 100%') && rows[1].includes('Amy'),
  );
  await shot(host, 'poll-results');
  await host.page.click('#poll .close-poll');
  await ui(amy, 'the poll closed', () => document.querySelector('#poll h2')?.textContent, null, (t) => t === 'Poll closed');
  assert.ok(await amy.page.evaluate(() => [...document.querySelectorAll('#poll .choice')].every((b) => b.disabled)), 'no voting after close');
  await shot(amy, 'poll-closed');
});
