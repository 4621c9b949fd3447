// A Chromium viewer served by an edge node (issue 15): a webinar's presenter page on the
// origin, `--max-audience-per-node 1` so that, after a first viewer on the origin, the next
// viewer page goes to the other node, which receives the stage over the node-to-node relay;
// that viewer decodes its video and audio (getStats), and the nodes' /metrics show the edge
// session and the relay. Then the host brings that viewer on stage: it publishes from the
// edge, and the host and the other viewer, both on the origin, decode its camera.

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';
import { startServers } from './server.mjs';
import { startRedis } from './redis.mjs';
import { launchBrowser, openPerson, joined, waitFor, inboundStats, myId, tileIds, decodesVideoFrom, packetsSent } from './browser.mjs';

const MEDIA_DEADLINE_MS = 25_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let redis;
let nodes = [];
let browser;
const people = [];

before(async () => {
  redis = await startRedis();
  const cluster = ['--redis-url', redis.url, '--cluster-secret', 'browser-test-cluster-secret', '--max-audience-per-node', '1'];
  nodes = await startServers(['n1', 'n2'].map((id) => ({ extraArgs: [...cluster, '--node-id', id] })));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  redis?.stop();
});

// Sums of the inbound counters that grow while media flows.
const received = async (person) => {
  const s = await inboundStats(person);
  const sum = (kind, key) => s.filter((x) => x.kind === kind).reduce((n, x) => n + x[key], 0);
  return { frames: sum('video', 'framesDecoded'), audio: sum('audio', 'packetsReceived') };
};

test('a viewer page on an edge node decodes the presenter on the origin, and publishes from there once on stage', async () => {
  const room = `edge-${process.pid}`;
  try {
    const host = await openPerson(browser, `${nodes[0].url}/?room=${room}&name=Host&role=host&mode=webinar`, 'Host');
    people.push(host);
    await joined(host);
    // The first viewer takes the origin's one audience seat (its count reaches Redis as it
    // changes).
    const first = await openPerson(browser, `${nodes[0].url}/?room=${room}&name=Amy`, 'Amy');
    people.push(first);
    await joined(first);
    await sleep(500);
    const edges = () => Promise.all(nodes.map((n) => n.metric('confab_cluster_edge_sessions')));
    assert.deepEqual(await edges(), [0, 0], 'the first viewer is on the origin');
    const viewer = await openPerson(browser, `${nodes[0].url}/?room=${room}&name=Vic`, 'Vic');
    people.push(viewer);
    await joined(viewer);
    assert.equal(await viewer.page.evaluate(() => window.confab.client.me.role), 'audience');

    // Its media is served by the node that is not the room's: an edge session there, a relay
    // link on the origin. (Which node is the origin is placement's choice.)
    const sessions = await waitFor('an edge session', edges, (e) => e.includes(1));
    const edge = nodes[sessions.indexOf(1)];
    const origin = nodes[1 - sessions.indexOf(1)];
    assert.deepEqual([...sessions].sort(), [0, 1]);
    assert.equal(await origin.metric('confab_relay_links'), 1);

    const start = await waitFor(
      "the viewer to decode the presenter's video and receive their audio",
      () => received(viewer),
      (r) => r.frames > 0 && r.audio > 0,
      { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
    );
    // Still flowing two seconds later: frames and audio packets grow.
    await sleep(2000);
    const later = await received(viewer);
    assert.ok(later.frames > start.frames && later.audio > start.audio, `${JSON.stringify(start)} → ${JSON.stringify(later)}`);
    assert.deepEqual(await tileIds(viewer), [await myId(host)], 'the viewer sees the stage');

    const sent = await origin.metric('confab_relay_sent_packets_total');
    const got = await edge.metric('confab_relay_received_packets_total');
    assert.ok(sent > 0 && got > 0, `relay sent ${sent}, received ${got}`);
    assert.equal(await edge.metric('confab_relay_sent_packets_total'), 0, 'the edge sends nothing back');
    // A reason never counted is absent from /metrics (NaN here): none refused either way.
    for (const reason of ['malformed', 'forged', 'replayed']) {
      const refused = await edge.metric(`confab_relay_dropped_total{reason="${reason}"}`);
      assert.ok(Number.isNaN(refused) || refused === 0, `${refused} refused as ${reason}`);
    }

    // On stage from the edge: hand, promotion, accepted; the camera goes up to the origin.
    const vicId = await myId(viewer);
    await viewer.page.click('#hand');
    await waitFor("Vic's raised hand at the host", () =>
      host.page.evaluate((id) => Boolean(document.querySelector(`#roster .hands [data-hand="${id}"]`)), vicId),
    );
    await host.page.click(`#roster .hands [data-hand="${vicId}"] [data-action="promote"]`);
    await viewer.page.click('#ask .yes');
    await waitFor('Vic on stage', () => viewer.page.evaluate(() => window.confab.client.me.role), (r) => r === 'presenter');
    await viewer.page.click('#cam');
    await Promise.all([decodesVideoFrom(host, vicId, MEDIA_DEADLINE_MS), decodesVideoFrom(first, vicId, MEDIA_DEADLINE_MS)]);
    assert.ok((await packetsSent(viewer, 'video')) > 0, 'Vic sends video from the edge');
    const up = await edge.metric('confab_relay_sent_packets_total');
    const upIn = await origin.metric('confab_relay_received_packets_total');
    assert.ok(up > 0 && upIn > 0, `uplink: the edge sent ${up}, the origin received ${upIn}`);
    // The origin refused no uplink datagram for a bad reason (absent: NaN).
    for (const reason of ['malformed', 'unknown_link', 'forged', 'replayed', 'unknown_codec']) {
      const refused = await origin.metric(`confab_relay_uplink_dropped_total{reason="${reason}"}`);
      assert.ok(Number.isNaN(refused) || refused === 0, `uplink: ${refused} refused as ${reason}`);
    }
  } catch (err) {
    const metrics = await Promise.all(
      nodes.map(async (n) =>
        (await n.metricsText())
          .split('\n')
          .filter((l) => /^confab_(relay|cluster_edge|rtp|dropped)/.test(l))
          .join('\n'),
      ),
    );
    err.message += `\n--- metrics ---\n${metrics.join('\n---\n')}`;
    const logs = people.flatMap((p) => p.logs.slice(-30)).join('\n');
    err.message += `\n--- page logs ---\n${logs}\n--- nodes ---\n${nodes.map((n) => n.log().slice(-3000)).join('\n---\n')}`;
    throw err;
  }
});
