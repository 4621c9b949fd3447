// Devices as a person has them: the pre-join screen (pickers, joining muted), a muted
// microphone that sends no packets at all, a live camera switch the others keep decoding, a
// device unplugged mid-call, and the screen a meeting ends on.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, myId, inState, packetsSent, decodesVideoFrom, errorBanner } from './browser.mjs';

const UI_DEADLINE_MS = 10_000;
const FLAT_FOR_MS = 2_000;

const world = useWorld();
const { people } = world;
const room = `devices-${process.pid}`;

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

const shot = (person, name) =>
  process.env.CONFAB_SHOTS ? person.page.screenshot({ path: `${process.env.CONFAB_SHOTS}/${name}.png` }) : null;

const senderTrackId = (person, kind) =>
  person.page.evaluate((kind) => window.confab.client.pc.getSenders().find((s) => s.track?.kind === kind)?.track.id ?? null, kind);

world.scenario('the pre-join screen offers the devices and joins with the microphone muted', async () => {
  const pia = await world.open('Pia', `room=${room}&name=Pia&prejoin=1`, { expect: null });
  await inState(pia, 'form');
  assert.equal(await pia.page.textContent('.join-room'), `Ready to join ${room}?`);
  assert.equal(await pia.page.isVisible('.room-field'), false, 'the link fixes the room');
  // Names show once the camera is allowed (the fake devices have names).
  const cameras = await ui(pia, 'camera names', () => [...document.querySelectorAll('#join-view select[name=camera] option')].map((o) => o.textContent), null, (n) => n.length > 0 && n.every((t) => t && !/^Camera \d/.test(t)));
  assert.ok(cameras.length >= 1);
  await ui(pia, 'microphone names', () => document.querySelectorAll('#join-view select[name=microphone] option').length, null, (n) => n > 0);
  // The level bar moves with the fake microphone's beeps.
  await ui(pia, 'the level bar moving', () => Number(document.querySelector('#join-view .level').getAttribute('aria-valuenow')), null, (n) => n > 0);

  await pia.page.click('#pre-mic');
  assert.equal(await pia.page.getAttribute('#pre-mic', 'aria-pressed'), 'true');
  assert.equal(await pia.page.getAttribute('#pre-mic', 'aria-label'), 'Mute microphone', 'the name stays; the state is aria-pressed');
  await shot(pia, 'prejoin-muted-1280x800');
  // The room is joined before the camera and microphone are captured, which takes seconds on a
  // loaded machine. Hold the meeting page's capture until released, to see that time.
  await pia.page.evaluate(() => sessionStorage.setItem('test:hold-capture', '1'));
  await pia.page.addInitScript(() => {
    if (sessionStorage.getItem('test:hold-capture') !== '1') return;
    sessionStorage.removeItem('test:hold-capture');
    const devices = navigator.mediaDevices;
    const capture = devices.getUserMedia.bind(devices);
    /** @type {() => void} */
    let release = () => {};
    const held = new Promise((resolve) => {
      release = () => resolve(undefined);
      setTimeout(release, 20_000);
    });
    /** @type {any} */ (window).releaseCapture = release;
    devices.getUserMedia = async (constraints) => {
      await held;
      return capture(constraints);
    };
  });
  await pia.page.click('#join-view button[type=submit]');
  await inState(pia, 'joined');
  // While the capture runs, the button already says the choice, and a click changes it.
  await ui(pia, 'the capture under way', () => window.confab.client.capturing, null);
  assert.equal(await pia.page.getAttribute('#mic', 'aria-pressed'), 'true', 'muted from the start');
  assert.equal(await pia.page.isDisabled('#mic'), false);
  await pia.page.click('#mic');
  assert.equal(await pia.page.getAttribute('#mic', 'aria-pressed'), 'false', 'a click while capturing unmutes');
  await pia.page.click('#mic');
  assert.equal(await pia.page.getAttribute('#mic', 'aria-pressed'), 'true');
  assert.equal(await pia.page.evaluate(() => window.confab.client.capturing), true, 'the clicks came before the tracks');
  await pia.page.evaluate(() => /** @type {any} */ (window).releaseCapture());
  await ui(pia, 'the capture done', () => !window.confab.client.capturing && window.confab.client.canPublish('microphone'), null);
  assert.equal(await pia.page.getAttribute('#mic', 'aria-pressed'), 'true');
  assert.equal(await pia.page.evaluate(() => window.confab.client.muted.microphone), true);
  const remembered = await pia.page.evaluate(() => JSON.parse(localStorage.getItem('confab.devices')));
  assert.equal(remembered.micOff, true, 'the choice is remembered in this browser');

  // Joined muted: video flows, yet not one audio packet has left.
  const quin = await world.open('Quin', `room=${room}&name=Quin`);
  const piaId = await myId(pia);
  await decodesVideoFrom(quin, piaId, 15_000);
  const audioBefore = await packetsSent(pia, 'audio');
  const videoBefore = await packetsSent(pia, 'video');
  await new Promise((r) => setTimeout(r, FLAT_FOR_MS));
  assert.equal(audioBefore, 0, 'no audio packet since joining');
  assert.equal(await packetsSent(pia, 'audio'), 0, 'still none');
  assert.ok((await packetsSent(pia, 'video')) > videoBefore, 'the camera is sent meanwhile');
  await ui(quin, 'Pia shown muted', (id) => Boolean(document.querySelector(`#people [data-participant="${id}"] .muted`)), piaId);

  // Unmuting sends at once; muting again stops the packets.
  await pia.page.click('#mic');
  await waitFor('Pia to send audio', () => packetsSent(pia, 'audio'), (n) => n > 0, { timeoutMs: UI_DEADLINE_MS });
  await pia.page.click('#mic');
  await new Promise((r) => setTimeout(r, 500));
  const muted = await packetsSent(pia, 'audio');
  await new Promise((r) => setTimeout(r, FLAT_FOR_MS));
  assert.equal(await packetsSent(pia, 'audio'), muted, 'a muted microphone sends nothing');
});

world.scenario('speaking while muted shows "You are muted"', async () => {
  const pia = people.get('Pia');
  // The fake microphone only beeps now and then, which is not speech. A steady tone, switched
  // in as the microphone, is someone talking into it.
  assert.equal(await pia.page.evaluate(() => document.getElementById('muted-hint').hidden), true);
  await pia.page.evaluate(async () => {
    const ctx = new AudioContext();
    const tone = ctx.createOscillator();
    const out = ctx.createMediaStreamDestination();
    tone.connect(out);
    tone.start();
    await window.confab.client.switchDevice('microphone', out.stream.getAudioTracks()[0]);
  });
  await ui(pia, 'the hint', () => !document.getElementById('muted-hint').hidden, null);
  assert.equal(await pia.page.textContent('#muted-hint'), 'You are muted');
  await shot(pia, 'muted-hint-1280x800');
});

world.scenario('a live camera switch keeps the others decoding', async () => {
  const pia = people.get('Pia');
  const quin = people.get('Quin');
  const piaId = await myId(pia);
  await pia.page.click('#devices');
  assert.ok(await pia.page.isVisible('#devices-dialog'));
  await ui(pia, 'the camera list', () => document.querySelectorAll('#devices-dialog select[name=camera] option').length, null, (n) => n > 0);
  // Chromium's fake capture has one camera: choosing it again captures a new track from it,
  // which goes the same way as choosing another device.
  const before = await senderTrackId(pia, 'video');
  await pia.page.evaluate(() => document.querySelector('#devices-dialog select[name=camera]').dispatchEvent(new Event('change')));
  await waitFor('a new camera track sent', () => senderTrackId(pia, 'video'), (id) => id && id !== before, { timeoutMs: UI_DEADLINE_MS });
  await decodesVideoFrom(quin, piaId, 10_000);
  // The speaker: every voice is routed to the chosen output (setSinkId).
  const speaker = await pia.page.evaluate(() => {
    const select = document.querySelector('#devices-dialog select[name=speaker]');
    select.value = [...select.options].at(-1).value;
    select.dispatchEvent(new Event('change'));
    return select.value;
  });
  await ui(pia, 'voices on the chosen speaker', (id) => [...document.querySelectorAll('#audio audio')].map((a) => a.sinkId), speaker, (ids) => ids.length > 0 && ids.every((i) => i === speaker || (speaker === 'default' && i === '')));
  await pia.page.keyboard.press('Escape');
  await ui(pia, 'the dialog closed', () => !document.getElementById('devices-dialog').open, null);

  // A second "device": a canvas drawing at another size, switched in the same way.
  await pia.page.evaluate(async () => {
    const canvas = Object.assign(document.createElement('canvas'), { width: 640, height: 360 });
    const g = canvas.getContext('2d');
    let n = 0;
    setInterval(() => {
      g.fillStyle = `hsl(${(n += 7) % 360} 80% 50%)`;
      g.fillRect(0, 0, 640, 360);
    }, 50);
    const track = canvas.captureStream(20).getVideoTracks()[0];
    window.__canvasTrack = track.id;
    await window.confab.client.switchDevice('camera', track);
  });
  assert.equal(await senderTrackId(pia, 'video'), await pia.page.evaluate(() => window.__canvasTrack));
  await decodesVideoFrom(quin, piaId, 10_000);
});

world.scenario('an unplugged microphone falls back to another with a notice', async () => {
  const pia = people.get('Pia');
  const before = await senderTrackId(pia, 'audio');
  // What the browser does when the device goes away: the track ends by itself.
  await pia.page.evaluate(() => window.confab.client.localTrack('microphone').dispatchEvent(new Event('ended')));
  await ui(pia, 'the notice', () => document.getElementById('toast').textContent, null, (t) => /microphone was disconnected/.test(t));
  const after = await senderTrackId(pia, 'audio');
  assert.ok(after && after !== before, 'another microphone track is sent');
  assert.equal(await pia.page.evaluate(() => window.confab.client.muted.microphone), true, 'still muted');
});

world.scenario('a meeting ended by the host ends on its own screen, without Rejoin', async () => {
  // The first in an open-mode room is its host.
  const host = people.get('Pia');
  const quin = people.get('Quin');
  await host.page.click('#leave');
  await host.page.keyboard.press('Escape');
  assert.equal(await host.page.isVisible('#leave-menu'), false, 'Escape closes the menu');
  assert.equal(await host.page.evaluate(() => document.activeElement.id), 'leave', 'the focus goes back to the button');
  await host.page.click('#leave');
  await host.page.click('#end-all');
  for (const person of [host, quin]) {
    await ui(person, 'the end screen', () => document.querySelector('#end-view:not([hidden]) h1')?.textContent, null, (t) => t === 'The meeting has ended');
    assert.equal(await person.page.isVisible('#meeting-view'), false, 'no stale meeting behind it');
    const actions = await person.page.evaluate(() => [...document.querySelectorAll('#end-view .actions button')].map((b) => b.textContent));
    assert.deepEqual(actions, ['Back to start']);
    assert.match((await errorBanner(person)).text, /ended/i);
    await shot(person, `ended-${person.label}-1280x800`);
  }
});
