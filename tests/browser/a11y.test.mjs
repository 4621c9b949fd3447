// Accessibility: axe-core (from npm, injected into the page) scans the pre-join screen, a
// meeting, a webinar host's view and an audience member's view, at a desktop and a phone size,
// and finds no serious or critical WCAG 2.1 A/AA violation. Phone checks: 44 px targets and no
// screen-share button where the browser cannot share. CONFAB_SHOTS=dir keeps screenshots.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { useWorld } from './harness.mjs';
import { waitFor, inState } from './browser.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 };
const SHOTS = process.env.CONFAB_SHOTS;

const world = useWorld();
const room = `a11y-${process.pid}`;

// Serious and critical violations, each as "rule: target (summary)".
async function violations(person) {
  await person.page.addScriptTag({ path: AXE });
  const found = await person.page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    // A scan that checked nothing would pass as well: make sure it looked.
    if (result.passes.length < 8) return [`axe checked only ${result.passes.length} rules`];
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} (${n.failureSummary.split('\n').slice(0, 2).join(' ')})`));
  });
  return found;
}

async function shot(person, name) {
  if (SHOTS) await person.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

// Media on screen moves; axe must not judge a half-painted page.
const settle = (person) => person.page.waitForTimeout(500);

world.scenario('the pre-join screen has no serious accessibility problem', async () => {
  for (const [label, options] of [
    ['Ada', {}],
    ['Ada-phone', PHONE],
  ]) {
    const ada = await world.open(label, `room=${room}&prejoin=1`, { expect: null, ...options });
    await inState(ada, 'form');
    await waitFor('the preview', () => ada.page.evaluate(() => document.querySelector('#join-view video').srcObject !== null), Boolean);
    await settle(ada);
    await shot(ada, `prejoin-${label.endsWith('phone') ? '390x844' : '1280x800'}`);
    assert.deepEqual(await violations(ada), []);
    await world.close(label);
  }
});

world.scenario('a webinar host view and an audience view have no serious accessibility problem', async () => {
  const host = await world.open('Host', `room=${room}&name=Host&mode=webinar`);
  await inState(host, 'joined');
  const viewer = await world.open('Viewer', `room=${room}&name=Viewer`, PHONE);
  await waitFor('Viewer in the audience', () => viewer.page.evaluate(() => window.confab.client.onStage), (s) => s === false);
  await settle(host);
  await settle(viewer);
  await shot(host, 'webinar-host-1280x800');
  await shot(viewer, 'webinar-audience-390x844');
  assert.deepEqual(await violations(host), [], 'host');
  assert.deepEqual(await violations(viewer), [], 'audience');
  // The host's leave menu, open, is scanned too.
  await host.page.click('#leave');
  assert.deepEqual(await violations(host), [], 'host with the leave menu open');
  await host.page.keyboard.press('Escape');
  await world.close('Viewer');
  await world.close('Host');
});

world.scenario('a meeting on a phone has 44 px targets, no screen share it cannot do, and no serious problem', async () => {
  const meet = `${room}-meet`;
  const ben = await world.open('Ben', `room=${meet}&name=Ben`);
  // A phone browser: no getDisplayMedia.
  const cy = await world.open('Cy', `room=${meet}&name=Cy`, {
    ...PHONE,
    init: () => {
      delete MediaDevices.prototype.getDisplayMedia;
    },
  });
  await waitFor('Cy sees Ben', () => cy.page.evaluate(() => document.querySelectorAll('#grid .tile').length), (n) => n >= 2);
  await settle(cy);
  await shot(cy, 'meeting-390x844');
  await shot(ben, 'meeting-1280x800');
  assert.equal(await cy.page.isVisible('#screen'), false, 'no screen-share button on a phone');
  assert.equal(await ben.page.isVisible('#screen'), true, 'a desktop can share');
  const small = await cy.page.evaluate(() =>
    [...document.querySelectorAll('.controls button')]
      .filter((b) => b.checkVisibility())
      .map((b) => [b.id, b.getBoundingClientRect()])
      .filter(([, r]) => r.width < 44 || r.height < 44)
      .map(([id, r]) => `${id} ${r.width}×${r.height}`),
  );
  assert.deepEqual(small, [], 'every control at least 44 px');
  assert.deepEqual(await violations(cy), [], 'phone');
  assert.deepEqual(await violations(ben), [], 'desktop');

  await ben.page.click('#devices');
  await settle(ben);
  await shot(ben, 'devices-1280x800');
  assert.deepEqual(await violations(ben), [], 'the devices dialog');
  await ben.page.keyboard.press('Escape');
  await cy.page.click('#devices');
  await settle(cy);
  await shot(cy, 'devices-390x844');
  await cy.page.keyboard.press('Escape');

  // The host's actions on a person fold back with Escape, the focus on the button again.
  const cyId = await cy.page.evaluate(() => window.confab.client.me.id);
  await ben.page.click(`#people [data-participant="${cyId}"] .more`);
  assert.ok(await ben.page.isVisible(`#people [data-participant="${cyId}"] [data-action="remove"]`));
  await ben.page.keyboard.press('Escape');
  assert.equal(await ben.page.isVisible(`#people [data-participant="${cyId}"] [data-action="remove"]`), false);
  assert.equal(await ben.page.evaluate(() => document.activeElement.dataset.action), 'more');

  // Ben joined first, so Ben is host and is asked whether to end it for everyone.
  await ben.page.click('#leave');
  await ben.page.click('#leave-only');
  await inState(ben, 'left');
  await shot(ben, 'left-1280x800');
  // An end screen, reached by a refused room name.
  const bad = await world.open('Dee', `room=bad%20room&name=Dee`, { expect: null, ...PHONE });
  await inState(bad, 'error');
  await bad.page.waitForSelector('#end-view h1');
  assert.equal(await bad.page.textContent('#end-view h1'), 'This room name does not work');
  await shot(bad, 'end-390x844');
  assert.deepEqual(await violations(bad), [], 'the end screen');
});
