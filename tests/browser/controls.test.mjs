// Meeting controls as people have them: chat, the lobby of a locked room, a password, a host
// muting and removing someone, ending the meeting for all, and a join link with a token.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { useWorld } from './harness.mjs';
import { serverBinary } from './server.mjs';
import { waitFor, myId, inState, viewState, errorBanner, openPerson, joined } from './browser.mjs';

const UI_DEADLINE_MS = 10_000;
const SECRET = 'browser-test-secret';

const world = useWorld();
const { people } = world;
const room = `controls-${process.pid}`;

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

async function say(person, text) {
  await person.page.fill('#chat textarea', text);
  await person.page.press('#chat textarea', 'Enter');
}

world.scenario('a chat message from one person appears for the others', async () => {
  const host = await world.open('Hana', `room=${room}&name=Hana&role=host`);
  const ivo = await world.open('Ivo', `room=${room}&name=Ivo`);
  await host.page.click('#chat-toggle');
  await say(host, 'Hello, everyone');
  await ui(ivo, 'the unread count', () => document.querySelector('#chat-toggle .unread').textContent, null, (t) => t === '1');
  await ivo.page.click('#chat-toggle');
  await ui(ivo, 'the message', () => [...document.querySelectorAll('#chat .chat-entry')].map((e) => [e.querySelector('.who').textContent, e.querySelector('.text').textContent]), null, (m) => m.length === 1 && m[0][0] === 'Hana' && m[0][1] === 'Hello, everyone');

  // A newcomer gets the history.
  const jo = await world.open('Jo', `room=${room}&name=Jo`);
  await jo.page.click('#chat-toggle');
  await ui(jo, 'the history', () => document.querySelector('#chat .chat-entry .text')?.textContent, null, (t) => t === 'Hello, everyone');
});

world.scenario('posting too fast is refused next to the message box, not in a banner', async () => {
  const ivo = people.get('Ivo');
  // All at once, so the server's allowance cannot refill between them.
  await ivo.page.evaluate(() => {
    const form = document.querySelector('#chat form');
    for (let i = 0; i < 8; i++) {
      form.elements.text.value = `flood ${i}`;
      form.requestSubmit();
    }
  });
  const error = await ui(ivo, 'the inline error', () => {
    const el = document.querySelector('#chat .talk-error');
    return el.hidden ? '' : el.textContent;
  }, null);
  assert.match(error, /fast/i);
  const banner = await errorBanner(ivo);
  assert.equal(banner.visible, false, `no banner, but it says: ${banner.text}`);
  await world.close('Jo');
});

world.scenario('a host mutes someone, who sees it and unmutes', async () => {
  const host = people.get('Hana');
  const ivo = people.get('Ivo');
  const ivoId = await myId(ivo);
  await host.page.click('#people-toggle');
  await host.page.click(`#people [data-participant="${ivoId}"] .more`);
  await host.page.click(`#people [data-participant="${ivoId}"] [data-action="mute-microphone"]`);

  await ui(ivo, 'their microphone shown muted', () => document.getElementById('mic').getAttribute('aria-pressed'), null, (p) => p === 'true');
  assert.equal(await ivo.page.evaluate(() => window.confab.client.localTrack('microphone').enabled), false);
  assert.match(await ivo.page.textContent('#toast'), /host/i);
  await ui(host, 'Ivo muted', (id) => Boolean(document.querySelector(`#people [data-participant="${id}"] .muted`)), ivoId);

  await ivo.page.click('#mic');
  await ui(host, 'Ivo unmuted', (id) => !document.querySelector(`#people [data-participant="${id}"] .muted`), ivoId);
  assert.equal(await ivo.page.evaluate(() => window.confab.client.localTrack('microphone').enabled), true);
});

world.scenario('in a locked room a newcomer waits until a host lets them in', async () => {
  const host = people.get('Hana');
  const ivo = people.get('Ivo');
  await host.page.click('#lock');
  await ui(ivo, 'the room shown locked', () => !document.getElementById('locked').hidden, null);

  const kit = await world.open('Kit', `room=${room}&name=Kit`, { expect: null });
  await inState(kit, 'waiting');
  assert.ok(await kit.page.isVisible('#waiting-view'), 'a waiting screen');
  await ui(host, 'Kit in the lobby', () => [...document.querySelectorAll('#roster .lobby [data-waiting] .name')].map((e) => e.textContent), null, (n) => n.includes('Kit'));
  await host.page.click('#roster .lobby [data-waiting] [data-action="admit"]');
  await inState(kit, 'joined');
  assert.ok(await kit.page.isVisible('#meeting-view'));
  await ui(ivo, 'Kit in the room', () => [...document.querySelectorAll('#people [data-participant] .name')].map((e) => e.textContent), null, (n) => n.includes('Kit'));
  await host.page.click('#lock');
});

world.scenario('a removed person is told so and is gone for the others', async () => {
  const host = people.get('Hana');
  const ivo = people.get('Ivo');
  const kit = people.get('Kit');
  const kitId = await myId(kit);
  await host.page.click(`#people [data-participant="${kitId}"] .more`);
  await host.page.click(`#people [data-participant="${kitId}"] [data-action="remove"]`);
  const banner = await waitFor('Kit to be told', () => errorBanner(kit), (b) => b.visible, { timeoutMs: UI_DEADLINE_MS });
  assert.match(banner.text, /removed/i);
  assert.equal(await viewState(kit), 'error');
  await ui(ivo, 'Kit gone', (id) => document.querySelectorAll(`[data-participant="${id}"]`).length, kitId, (n) => n === 0);
  await world.close('Kit');
});

world.scenario('a room password is asked for, and a wrong one asked again', async () => {
  const locked = `${room}-pw`;
  await world.open('Lee', `room=${locked}&name=Lee&role=host&password=opensesame`);
  const mo = await world.open('Mo', `room=${locked}&name=Mo`, { expect: null });
  await inState(mo, 'password');
  await mo.page.fill('#password-view input[name=password]', 'guess');
  await mo.page.click('#password-view button[type=submit]');
  await inState(mo, 'password');
  assert.match(await mo.page.textContent('#password-view .password-note'), /not the right one/);
  await mo.page.fill('#password-view input[name=password]', 'opensesame');
  await mo.page.click('#password-view button[type=submit]');
  await inState(mo, 'joined');
  assert.ok(!new URL(mo.page.url()).searchParams.has('password'), 'the password stays out of the address');
  await world.close('Mo');
  await world.close('Lee');
});

world.scenario('a host ends the meeting for everyone', async () => {
  const host = people.get('Hana');
  const ivo = people.get('Ivo');
  await host.page.click('#leave');
  await host.page.click('#end-all');
  const banner = await waitFor('Ivo to be told', () => errorBanner(ivo), (b) => b.visible, { timeoutMs: UI_DEADLINE_MS });
  // The host's reason, not "The room ended unexpectedly." (what Ivo was told when his own
  // message found the room gone) nor "Cannot reach the server" (a reset lost the reason).
  assert.match(banner.text, /the host ended the meeting/i);
  assert.equal(await viewState(ivo), 'error');
  await world.close('Ivo');
  await world.close('Hana');
});

world.scenario('a join link with a token needs no name', async () => {
  const { startServer } = await import('./server.mjs');
  const secured = await startServer({ extraArgs: ['--auth-secret', SECRET] });
  try {
    const out = execFileSync(serverBinary(), ['token', '--room', 'tokens', '--name', 'Nia Token', '--role', 'host', '--secret', SECRET], {
      encoding: 'utf8',
    });
    const token = out.split('\n')[0].trim();
    const nia = await openPerson(world.browser, `${secured.url}/?room=tokens&token=${token}`, 'Nia');
    people.set('Nia', nia);
    await joined(nia);
    assert.deepEqual(await nia.page.evaluate(() => [window.confab.client.me.name, window.confab.client.me.role]), ['Nia Token', 'host']);
    assert.ok(await nia.page.isVisible('#lock'), 'a host gets the host controls');
    await world.close('Nia');
  } finally {
    await secured.stop();
  }
});
