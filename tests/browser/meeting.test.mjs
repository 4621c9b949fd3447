// A meeting as people have it: three browsers in one room, someone leaving, someone reloading,
// and the errors a person must be able to read. Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { useWorld } from './harness.mjs';
import {
  openPerson,
  waitFor,
  joined,
  myId,
  inboundStats,
  decodesVideoFrom,
  videoFramesFrom,
  tileIds,
  rosterNames,
  errorBanner,
} from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const LEAVE_DEADLINE_MS = 10_000;

const world = useWorld();
const { people } = world;
const scenario = world.scenario;
const room = `standup-${process.pid}`;

const join = (label) => world.open(label, `room=${room}&name=${label}`);

const receivesEveryone = (others) => (stats) =>
  stats.filter((s) => s.kind === 'video' && s.framesDecoded > 0).length >= others &&
  stats.filter((s) => s.kind === 'audio' && s.packetsReceived > 0).length >= others;

scenario('three people in a room see and hear each other', async () => {
  const trio = [];
  for (const label of ['Ana', 'Ben', 'Cy']) trio.push(await join(label));

  await Promise.all(
    trio.map((p) =>
      waitFor(`${p.label} to decode video and receive audio from both others`, () => inboundStats(p), receivesEveryone(2), {
        timeoutMs: MEDIA_DEADLINE_MS,
        intervalMs: 500,
      }),
    ),
  );

  for (const p of trio) {
    assert.equal((await tileIds(p)).length, 3, `${p.label} should show three tiles`);
    assert.deepEqual((await rosterNames(p)).sort(), ['Ana', 'Ben', 'Cy'], `${p.label}'s participant list`);
  }
});

scenario('muting the microphone shows on the others’ screens', async () => {
  const ana = people.get('Ana');
  const anaId = await myId(ana);
  await ana.page.click('#mic');
  for (const label of ['Ben', 'Cy']) {
    await waitFor(
      `${label} to see Ana muted`,
      () =>
        people.get(label).page.evaluate(
          (id) => Boolean(document.querySelector(`#people [data-participant="${id}"] .muted`)),
          anaId,
        ),
      Boolean,
      { timeoutMs: 5_000 },
    );
  }
  await ana.page.click('#mic');
});

scenario('closing a page removes that person for the others', async () => {
  const cy = people.get('Cy');
  const cyId = await myId(cy);
  await cy.context.close();
  people.delete('Cy');

  await Promise.all(
    ['Ana', 'Ben'].map((label) =>
      waitFor(
        `${label} to drop Cy's tile and list entry`,
        () =>
          people.get(label).page.evaluate(
            (id) => document.querySelectorAll(`[data-participant="${id}"]`).length,
            cyId,
          ),
        (n) => n === 0,
        { timeoutMs: LEAVE_DEADLINE_MS },
      ),
    ),
  );
  for (const label of ['Ana', 'Ben']) {
    assert.deepEqual((await rosterNames(people.get(label))).sort(), ['Ana', 'Ben']);
  }
});

scenario('a reloaded page rejoins and is seen again', async () => {
  const ana = people.get('Ana');
  const ben = people.get('Ben');
  const oldBenId = await myId(ben);
  const anaId = await myId(ana);

  await ben.page.reload();
  await joined(ben);
  const benId = await myId(ben);
  assert.notEqual(benId, oldBenId, 'a rejoin is a new participant');

  await waitFor(
    "Ana to show Ben's new tile instead of the old one",
    () => tileIds(ana),
    (ids) => ids.includes(benId) && !ids.includes(oldBenId),
    { timeoutMs: LEAVE_DEADLINE_MS },
  );
  await Promise.all([
    decodesVideoFrom(ana, benId, MEDIA_DEADLINE_MS),
    decodesVideoFrom(ben, anaId, MEDIA_DEADLINE_MS),
  ]);
});

scenario('the join form leads into the room', async () => {
  const dee = await openPerson(world.browser, `${world.server.url}/`, 'Dee');
  people.set('Dee', dee);
  await dee.page.fill('input[name=room]', room);
  await dee.page.fill('input[name=name]', 'Dee');
  await dee.page.click('button[type=submit]');
  await joined(dee);
  const url = new URL(dee.page.url());
  // The address bar is the invite link: the room, never the name (a reload rejoins from the
  // tab's own storage).
  assert.equal(url.searchParams.get('room'), room);
  assert.deepEqual([...url.searchParams.keys()], ['room']);
  const deeId = await myId(dee);
  await decodesVideoFrom(people.get('Ana'), deeId, MEDIA_DEADLINE_MS);
});

scenario('the leave button ends the meeting for that person only', async () => {
  const dee = people.get('Dee');
  const deeId = await myId(dee);
  await dee.page.click('#leave');
  assert.equal(await dee.page.evaluate(() => document.body.dataset.state), 'left');
  await waitFor(
    "Ana to drop Dee's tile",
    () => tileIds(people.get('Ana')),
    (ids) => !ids.includes(deeId) && ids.length === 2,
    { timeoutMs: LEAVE_DEADLINE_MS },
  );
  await dee.context.close();
  people.delete('Dee');
});

scenario('an invalid room name shows an error', async () => {
  const eve = await openPerson(world.browser, `${world.server.url}/?room=bad%20room&name=Eve`, 'Eve');
  people.set('Eve', eve);
  const banner = await waitFor('the error banner', () => errorBanner(eve), (b) => b.visible, { timeoutMs: 10_000 });
  assert.match(banner.text, /room/i);
  assert.notEqual(await eve.page.evaluate(() => document.body.dataset.state), 'joined');
  await eve.context.close();
  people.delete('Eve');
});

// `label` joins on a server of its own; `takeDown(person, server)` ends that server and checks
// what the page says; the server then restarts on the same ports, and `back(person)` checks the
// page once it has rejoined without a click.
async function restartAround(label, takeDown, back) {
  const first = await startServer();
  let second = null;
  try {
    const person = await openPerson(world.browser, `${first.url}/?room=${room}&name=${label}`, label);
    people.set(label, person);
    await joined(person);
    await takeDown(person, first);
    second = await startServer({ ports: { tcp: first.tcpPort, udp: first.udpPort } });
    await joined(person, 20_000);
    await back(person);
    await person.context.close();
    people.delete(label);
  } finally {
    await first.stop();
    await second?.stop();
  }
}

scenario('a server that goes away is reported, and the page comes back by itself when it returns', async () => {
  await restartAround(
    'Zoe',
    async (zoe, server) => {
      await zoe.page.click('#mic');
      // Killed, not stopped: a graceful stop says it is restarting (the next scenario).
      await server.kill();
      const banner = await waitFor('the error banner', () => errorBanner(zoe), (b) => b.visible, { timeoutMs: 10_000 });
      assert.equal(banner.text, 'Cannot reach the server');
    },
    async (zoe) => {
      // Back in, muted as Zoe left it.
      const state = await waitFor(
        'Zoe back in, still muted',
        () => zoe.page.evaluate(() => ({ id: window.confab.client.me?.id, muted: window.confab.client.muted.microphone })),
        (s) => s.id !== undefined && s.muted === true,
        { timeoutMs: 10_000 },
      );
      assert.equal(state.muted, true);
    },
  );
});

scenario('a server restarted gracefully (an upgrade) takes the page back by itself', async () => {
  await restartAround(
    'Kim',
    async (kim, server) => {
      await server.stop();
      const banner = await waitFor('the restart banner', () => errorBanner(kim), (b) => b.visible, { timeoutMs: 10_000 });
      assert.match(banner.text, /restarting/);
    },
    (kim) =>
      waitFor('Kim in again', () => kim.page.evaluate(() => window.confab.client.me?.id), (id) => id !== undefined, {
        timeoutMs: 10_000,
      }),
  );
});

scenario('an ICE restart (a network change) keeps the call going', async () => {
  const pair = [];
  for (const label of ['Ida', 'Jon']) pair.push(await world.open(label, `room=${room}-ice&name=${label}`));
  const [ida, jon] = pair;
  const idaId = await myId(ida);
  await decodesVideoFrom(jon, idaId, MEDIA_DEADLINE_MS);
  const ufrag = () => ida.page.evaluate(() => window.confab.client.pc.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1]);
  const before = await ufrag();
  await ida.page.evaluate(() => window.confab.client.restartIce());
  await waitFor('new ICE credentials, connected again', async () => ({
    ufrag: await ufrag(),
    state: await ida.page.evaluate(() => window.confab.client.pc.connectionState),
  }), (s) => s.ufrag && s.ufrag !== before && s.state === 'connected', { timeoutMs: MEDIA_DEADLINE_MS });
  // Media keeps flowing over the new path.
  const frames = async (who, from) => Object.values((await videoFramesFrom(who, from)) ?? {}).reduce((a, b) => a + b, 0);
  const then = await frames(jon, idaId);
  await waitFor("Jon's decoding of Ida to go on", () => frames(jon, idaId), (n) => n > then + 10, { timeoutMs: MEDIA_DEADLINE_MS });
  // And the other way: what the server sends Ida follows her to the pair she nominated under
  // the new credentials (integration test `meeting::after_a_network_change_*` moves a bot to
  // a new port; here the browser may keep its old one).
  const jonId = await myId(jon);
  const seen = await frames(ida, jonId);
  await waitFor("Ida's decoding of Jon to go on", () => frames(ida, jonId), (n) => n > seen + 10, { timeoutMs: MEDIA_DEADLINE_MS });
});
