// A one-to-one call from behind firewalls: with no UDP, the browsers reach the server's
// ICE-TCP candidate on the media port number; where only the web port is open, they reach
// the one on the HTTP port, which the server tells apart from web traffic by its first byte.

import assert from 'node:assert/strict';
import { useWorld } from './harness.mjs';
import { waitFor, inboundStats } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;

const world = useWorld();
const room = `checkin-${process.pid}`;

// The transport protocol of the candidate pair the page's connection uses, as the page sees it.
const selectedProtocol = (person) =>
  person.page.evaluate(async () => {
    const stats = await window.confab.client.pc.getStats();
    let pairId = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    const remote = stats.get(pair.remoteCandidateId);
    return { local: stats.get(pair.localCandidateId)?.protocol, remote: remote?.protocol, remotePort: remote?.port };
  });

// Both people decode the other's video and receive their audio.
const seeAndHearEachOther = (pair) =>
  Promise.all(
    pair.map((p) =>
      waitFor(
        `${p.label} to decode the other's video and receive their audio`,
        () => inboundStats(p),
        (stats) => stats.some((s) => s.kind === 'video' && s.framesDecoded > 0) && stats.some((s) => s.kind === 'audio' && s.packetsReceived > 0),
        { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
      ),
    ),
  );

world.scenario('with UDP blocked, two people see and hear each other over TCP', async () => {
  const pair = [];
  for (const label of ['Dee', 'Eli']) pair.push(await world.open(label, `room=${room}&name=${label}`, { udp: false }));

  await seeAndHearEachOther(pair);
  for (const p of pair) {
    const { local, remote } = await selectedProtocol(p);
    assert.deepEqual({ local, remote }, { local: 'tcp', remote: 'tcp' }, `${p.label} should be connected over TCP`);
  }
  // The server agrees: connections carry both (Chrome may open one per local candidate), and
  // not one datagram reached the UDP port.
  const connections = await world.server.metric('confab_ice_tcp_connections');
  assert.ok(connections >= 2, `${connections} ICE-TCP connections`);
  assert.equal(await world.server.metric('confab_udp_in_datagrams_total'), 0);
});

world.scenario('where UDP gets through, the call uses UDP, and its SRTP is AES-GCM', async () => {
  const open = `room=${room}-open`;
  const pair = [await world.open('Fay', `${open}&name=Fay`), await world.open('Gus', `${open}&name=Gus`)];
  for (const p of pair) {
    const { local, remote } = await waitFor(`${p.label} to connect`, () => selectedProtocol(p), Boolean, { timeoutMs: MEDIA_DEADLINE_MS });
    assert.deepEqual({ local, remote }, { local: 'udp', remote: 'udp' }, `${p.label} should prefer UDP`);
    // AEAD-GCM costs a quarter of AES-CM + HMAC-SHA1 per packet on the server's send path.
    // The transport's stats name the cipher only once DTLS is up, which may trail the
    // selected pair on a loaded machine.
    const srtp = await waitFor(`${p.label}'s SRTP cipher`, () => p.page.evaluate(async () => {
      const stats = await window.confab.client.pc.getStats();
      let cipher = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.srtpCipher) cipher = s.srtpCipher;
      });
      return cipher;
    }), Boolean, { timeoutMs: MEDIA_DEADLINE_MS });
    assert.match(String(srtp), /AEAD_AES_(128|256)_GCM/, `${p.label} negotiated SRTP ${srtp}`);
  }
});

world.scenario('with only the web port open, the call runs over TCP on the HTTP port', async () => {
  const web = `room=${room}-web`;
  // The earlier calls hang up first, so that any UDP the server counts from now on is this one's.
  for (const label of ['Dee', 'Eli', 'Fay', 'Gus']) await world.close(label);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const udpBefore = await world.server.metric('confab_udp_in_datagrams_total');
  const pair = [];
  for (const label of ['Hal', 'Ida']) pair.push(await world.open(label, `${web}&name=${label}`, { webOnly: true }));
  await seeAndHearEachOther(pair);
  const webPort = Number(new URL(world.server.url).port);
  for (const p of pair) {
    assert.deepEqual(await selectedProtocol(p), { local: 'tcp', remote: 'tcp', remotePort: webPort }, `${p.label} should use the web port`);
  }
  assert.ok((await world.server.metric('confab_ice_tcp_connections')) >= 2);
  // Not one datagram of this call reached the UDP port.
  assert.equal(await world.server.metric('confab_udp_in_datagrams_total'), udpBefore);
  // The page and the signalling on the same port still work: the page is loaded and joined.
  assert.equal(await pair[0].page.evaluate(() => document.body.dataset.state), 'joined');
});
