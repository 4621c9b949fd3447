// A webinar as people have it: a host on stage, an audience that watches and sends nothing,
// a raised hand brought on stage and sent back, and questions with votes.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, myId, inboundStats, outboundStats, packetsSent, decodesVideoFrom, tileIds, receivedSources } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const UI_DEADLINE_MS = 10_000;

const world = useWorld();
const { people } = world;
const room = `webinar-${process.pid}`;
const AUDIENCE = ['Amy', 'Bo', 'Cal'];

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

world.scenario('the audience watch and hear the presenter, and send nothing', async () => {
  const host = await world.open('Host', `room=${room}&name=Host&role=host&mode=webinar`);
  // No role asked: in a webinar that makes them audience.
  for (const label of AUDIENCE) await world.open(label, `room=${room}&name=${label}`);
  const hostId = await myId(host);

  await Promise.all(
    AUDIENCE.map((label) =>
      waitFor(
        `${label} to decode the presenter's video and receive their audio`,
        () => inboundStats(people.get(label)),
        (s) => s.some((x) => x.kind === 'video' && x.framesDecoded > 0) && s.some((x) => x.kind === 'audio' && x.packetsReceived > 0),
        { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
      ),
    ),
  );

  for (const label of AUDIENCE) {
    const p = people.get(label);
    assert.equal(await p.page.evaluate(() => window.confab.client.me.role), 'audience');
    assert.deepEqual(
      (await outboundStats(p)).filter((s) => s.packetsSent > 0),
      [],
      `${label} must send no media`,
    );
    assert.equal(await p.page.evaluate(() => window.__mediaRequests), 0, `${label} must never be asked for camera or microphone`);
    assert.deepEqual(await tileIds(p), [hostId], `${label} sees only the stage`);
  }
  assert.equal(
    (await inboundStats(host)).filter((s) => s.kind === 'video').length,
    0,
    'the presenter receives no video: the audience has none',
  );
  assert.deepEqual(await tileIds(host), [hostId], 'no empty tiles for the audience');
  await ui(host, 'the audience count', () => document.getElementById('mode').textContent, null, (t) => /3 watching/.test(t));
  await ui(host, 'the audience listed', () => document.querySelectorAll('#people .audience-list [data-participant]').length, null, (n) => n === 3);
});

world.scenario('a raised hand is brought on stage and sent back to the audience', async () => {
  const host = people.get('Host');
  const amy = people.get('Amy');
  const bo = people.get('Bo');
  const amyId = await myId(amy);

  await amy.page.click('#hand');
  await ui(host, "Amy's raised hand", (id) => Boolean(document.querySelector(`#roster .hands [data-hand="${id}"]`)), amyId);
  await host.page.click(`#roster .hands [data-hand="${amyId}"] [data-action="promote"]`);
  // Promotion is an invitation: Amy accepts, and arrives with camera and microphone off.
  await amy.page.click('#ask .yes');
  await ui(amy, 'to be on stage', () => window.confab.client.me.role, null, (r) => r === 'presenter');
  await amy.page.click('#cam');
  await amy.page.click('#mic');
  await ui(host, 'the hand lowered by the promotion', () => document.querySelector('#roster .hands').hidden, null);
  // A new inbound video whose frames grow: Amy's camera reaches the rest of the audience.
  await Promise.all([decodesVideoFrom(bo, amyId, MEDIA_DEADLINE_MS), decodesVideoFrom(host, amyId, MEDIA_DEADLINE_MS)]);
  await ui(bo, "Amy's tile", (id) => Boolean(document.querySelector(`#grid .tile[data-participant="${id}"]`)), amyId);
  assert.ok((await packetsSent(amy, 'video')) > 0, 'Amy sends video once on stage');

  await host.page.click(`#people [data-participant="${amyId}"] .more`);
  await host.page.click(`#people [data-participant="${amyId}"] [data-action="demote"]`);

  await ui(amy, 'to be back in the audience', () => window.confab.client.me.role, null, (r) => r === 'audience');
  await waitFor("Bo to stop receiving Amy's media", () => receivedSources(bo, amyId), (s) => s.length === 0, { timeoutMs: UI_DEADLINE_MS });
  await ui(bo, "Amy's tile gone", (id) => !document.querySelector(`#grid .tile[data-participant="${id}"]`), amyId);
  // Sending has stopped when the counters stand still between two looks a second apart.
  let before = -1;
  await waitFor(
    'Amy to stop sending',
    async () => {
      const now = await packetsSent(amy, 'video');
      const still = now === before;
      before = now;
      return still;
    },
    Boolean,
    { timeoutMs: UI_DEADLINE_MS, intervalMs: 1000 },
  );
  assert.equal(
    await amy.page.evaluate(() => window.confab.client.pc.getTransceivers().filter((t) => /send/.test(t.direction)).length),
    0,
    'after demotion the offer is receive-only',
  );
  assert.equal(await amy.page.evaluate(() => window.confab.client.localStream), null, 'camera released');
});

world.scenario('questions are asked, upvoted and answered', async () => {
  const host = people.get('Host');
  const bo = people.get('Bo');
  const cal = people.get('Cal');
  await bo.page.click('#qna-toggle');
  await bo.page.fill('#qna textarea', 'Will the slides be shared?');
  await bo.page.click('#qna button[type=submit]');

  await cal.page.click('#qna-toggle');
  await ui(cal, 'the question', () => document.querySelector('#qna .questions li .text')?.textContent, null, (t) => t === 'Will the slides be shared?');
  await cal.page.click('#qna .questions li .vote');
  await host.page.click('#qna-toggle');
  await ui(host, 'one vote', () => document.querySelector('#qna .questions li .votes')?.textContent, null, (t) => t === '1');
  assert.equal(await cal.page.getAttribute('#qna .questions li .vote', 'aria-pressed'), 'true', 'Cal sees their own vote');
  await host.page.click('#qna .questions li [data-action="answered"]');
  await ui(bo, 'the question answered', () => document.querySelector('#qna .questions li')?.dataset.answered, null, (a) => a === 'true');
});
