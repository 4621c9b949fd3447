// Two nodes of a cluster on one Redis (issue 15): two Chromium pages join one room through
// different nodes, and each decodes the other (getStats). Run with `node --test` in this folder.

import assert from 'node:assert/strict';
import { test, before, after } from 'node:test';
import { startServers } from './server.mjs';
import { startRedis } from './redis.mjs';
import { launchBrowser, openPerson, joined, waitFor, inboundStats } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

let redis;
let nodes = [];
let browser;
const people = [];

before(async () => {
  redis = await startRedis();
  nodes = await startServers(
    ['n1', 'n2'].map((id) => ({ extraArgs: ['--redis-url', redis.url, '--node-id', id, '--cluster-secret', 'browser-test-cluster-secret'] })),
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  redis?.stop();
});

test('two pages joining one room through two nodes decode each other', async () => {
  const room = `cluster-${process.pid}`;
  try {
    for (const [i, label] of ['Ana', 'Ben'].entries()) {
      const person = await openPerson(browser, `${nodes[i].url}/?room=${room}&name=${label}`, label);
      people.push(person);
      await joined(person);
    }
    await Promise.all(
      people.map((p) =>
        waitFor(
          `${p.label} to decode video and receive audio from the other`,
          () => inboundStats(p),
          (stats) =>
            stats.some((s) => s.kind === 'video' && s.framesDecoded > 0) &&
            stats.some((s) => s.kind === 'audio' && s.packetsReceived > 0),
          { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
        ),
      ),
    );
    // One node serves the room; the other relays its page's signalling there.
    const relayed = await Promise.all(nodes.map((n) => n.metric('confab_cluster_relayed_out')));
    const participants = await Promise.all(nodes.map((n) => n.metric('confab_participants')));
    assert.deepEqual([...relayed].sort(), [0, 1], `relayed sessions per node: ${relayed}`);
    assert.deepEqual([...participants].sort(), [0, 2], `participants per node: ${participants}`);
  } catch (err) {
    const logs = people.flatMap((p) => p.logs.slice(-30)).join('\n');
    err.message += `\n--- page logs ---\n${logs}\n--- nodes ---\n${nodes.map((n) => n.log().slice(-3000)).join('\n---\n')}`;
    throw err;
  }
});
