// Rooms as people meet them: New meeting gives a host link and an invite link; the invite link
// makes a guest, never a host; the address bar never holds a role, a key or a name; a host who
// reloads is host again; the host sets a password during the meeting.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, inState, joined, openPerson } from './browser.mjs';

const UI_DEADLINE_MS = 10_000;

const world = useWorld();
let invite = null;

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

const role = (person) => person.page.evaluate(() => window.confab.client.me?.role);

// The address bar holds the invite link and nothing else.
function assertInviteOnly(url) {
  const u = new URL(url);
  assert.deepEqual([...u.searchParams.keys()], ['room'], `address bar: ${url}`);
  assert.equal(u.hash, '', `address bar: ${url}`);
}

// Opens `url` (a whole link, as pasted) for `label`, fills the name if the form asks for one.
async function openLink(label, url, name) {
  const person = await openPerson(world.browser, url, label);
  world.people.set(label, person);
  const state = await waitFor(`${label}: the page's first state`, () => person.page.evaluate(() => document.body.dataset.state), (s) => s && s !== 'loading');
  if (state === 'form') {
    await person.page.fill('#join-view input[name=name]', name);
    await person.page.click('#join-view button[type=submit]');
  }
  await joined(person);
  return person;
}

world.scenario('New meeting gives a host link and an invite link, and the host joins as host', async () => {
  const host = await world.open('Hana', '', { expect: null });
  await inState(host, 'form');
  await host.page.fill('#join-view input[name=name]', 'Hana');
  await host.page.click('#new-meeting');
  await ui(host, 'the new links', () => !document.getElementById('new-links').hidden);
  const links = await host.page.evaluate(() => ({
    host: document.querySelector('input[name=host-link]').value,
    invite: document.querySelector('input[name=invite-link]').value,
  }));
  assert.match(links.host, /\?room=[a-z0-9-]+#key=[0-9a-f]{32}$/);
  assert.match(links.invite, /\?room=[a-z0-9-]+$/);
  assert.ok(links.host.startsWith(links.invite), `${links.host} vs ${links.invite}`);
  invite = links.invite;
  await host.page.click('#start-meeting');
  await joined(host);
  assert.equal(await role(host), 'host');
  assertInviteOnly(host.page.url());
  assert.equal(new URL(host.page.url()).toString(), invite);
});

world.scenario('a page opened from the invite link joins as a guest; no role or key in the address', async () => {
  const gus = await openLink('Gus', invite, 'Gus');
  assert.equal(await role(gus), 'presenter');
  assertInviteOnly(gus.page.url());
  // Editing the link grants nothing.
  const mal = await openLink('Mal', `${invite}&name=Mal&role=host`, 'Mal');
  assert.equal(await role(mal), 'presenter');
  assertInviteOnly(mal.page.url());
  await world.close('Mal');
});

world.scenario('a host who reloads is host again', async () => {
  const host = world.people.get('Hana');
  await host.page.reload();
  await joined(host);
  assert.equal(await role(host), 'host');
  assertInviteOnly(host.page.url());
});

world.scenario('the host sets a password during the meeting; newcomers are asked for it', async () => {
  const host = world.people.get('Hana');
  const gus = world.people.get('Gus');
  await ui(host, 'the password button', () => !document.getElementById('password-button').hidden);
  assert.equal(await gus.page.evaluate(() => document.getElementById('password-button').hidden), true, 'guests cannot');
  await host.page.click('#password-button');
  await host.page.fill('#password-form input[name=password]', 'opensesame');
  await host.page.click('#password-form button[type=submit]');
  await ui(gus, 'the password badge', () => !document.getElementById('has-password').hidden);
  const late = await openPerson(world.browser, invite, 'Lou');
  world.people.set('Lou', late);
  await inState(late, 'form');
  await late.page.fill('#join-view input[name=name]', 'Lou');
  await late.page.click('#join-view button[type=submit]');
  await inState(late, 'password');
  await late.page.fill('#password-view input[name=password]', 'opensesame');
  await late.page.click('#password-view button[type=submit]');
  await joined(late);
  assertInviteOnly(late.page.url());
});
