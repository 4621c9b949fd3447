// Headless Chromium with fake camera and microphone, one browser context per simulated person.

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// `executablePath`: another Chromium (e.g. a wrapper that runs it in a network namespace);
// `args`: more command-line switches.
export function launchBrowser({ executablePath = CHROMIUM, args = [] } = {}) {
  return chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--auto-select-desktop-capture-source=Entire screen',
      ...args,
    ],
  });
}

// A firewall, seen from the page: the server's answer loses the candidates the network would
// not let through. 'no-udp' drops its UDP candidates; 'web-only' keeps only TCP candidates on
// the page's own (web) port.
function firewall(mode) {
  const original = RTCPeerConnection.prototype.setRemoteDescription;
  const webPort = location.port || (location.protocol === 'https:' ? '443' : '80');
  const blocked = (line) => {
    const m = /^a=candidate:\S+ \d+ (\S+) \d+ \S+ (\d+) /i.exec(line);
    if (!m) return false;
    const [, protocol, port] = m;
    if (mode === 'no-udp') return protocol.toLowerCase() === 'udp';
    return protocol.toLowerCase() !== 'tcp' || port !== webPort;
  };
  RTCPeerConnection.prototype.setRemoteDescription = function (description) {
    if (description?.sdp) {
      const sdp = description.sdp
        .split('\r\n')
        .filter((line) => !blocked(line))
        .join('\r\n');
      description = { type: description.type, sdp };
    }
    return original.call(this, description);
  };
}

// A person: their own context (cookies, permissions, fake devices), one page, and what the
// page logged, kept to explain a failure. The page counts its camera/microphone requests in
// `window.__mediaRequests`, so a test can tell that the audience was never asked.
// options: viewport, deviceScaleFactor, devices: false for a machine without camera or
// microphone (a cheap extra person on stage: a tile, but nothing to encode), udp: false for a
// network that blocks UDP, webOnly: true for one that lets only the web port through, init: a
// function run in the page before its own scripts (e.g. to change what it offers).
export async function openPerson(
  browser,
  url,
  label,
  { viewport = { width: 1280, height: 800 }, deviceScaleFactor = 1, devices = true, udp = true, webOnly = false, init = null } = {},
) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], viewport, deviceScaleFactor });
  if (init) await context.addInitScript(init);
  if (webOnly) await context.addInitScript(firewall, 'web-only');
  else if (!udp) await context.addInitScript(firewall, 'no-udp');
  await context.addInitScript((devices) => {
    window.__mediaRequests = 0;
    const md = navigator.mediaDevices;
    if (!md?.getUserMedia) return;
    const original = md.getUserMedia.bind(md);
    md.getUserMedia = (constraints) => {
      window.__mediaRequests += 1;
      if (!devices) return Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
      return original(constraints);
    };
  }, devices);
  const page = await context.newPage();
  // Playwright's own waits (clicks, fills) get the same bound as ours, not its 30 s default.
  page.setDefaultTimeout(10_000);
  const logs = [];
  const keep = (line) => {
    logs.push(`[${label}] ${line}`);
    if (logs.length > 200) logs.shift();
  };
  page.on('console', (m) => keep(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => keep(`pageerror: ${e.message}`));
  page.on('websocket', (ws) => {
    ws.on('framereceived', (f) => keep(`ws< ${String(f.payload).slice(0, 160)}`));
    ws.on('framesent', (f) => keep(`ws> ${String(f.payload).slice(0, 160)}`));
    ws.on('close', () => keep('ws closed'));
  });
  await page.goto(withoutPrejoin(url));
  return { label, context, page, logs };
}

// A link that names a room shows the pre-join screen first; scenarios about the meeting skip
// it (prejoin=0, the kiosk setting) unless they say prejoin=1 to test that screen itself.
export function withoutPrejoin(url) {
  const u = new URL(url);
  if (u.searchParams.has('room') && !u.searchParams.has('prejoin')) u.searchParams.set('prejoin', '0');
  return u.toString();
}

// Polls `probe` until `accept` holds of its result; throws with the last result at the deadline.
// explain: called once on timeout, for what the failure should also say (where a connection
// stood, say), which would cost too much to gather on every probe.
export async function waitFor(what, probe, accept = Boolean, { timeoutMs = 10_000, intervalMs = 250, explain = undefined } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (err) {
      last = `threw: ${err.message}`;
    }
    if (Date.now() > deadline) {
      let more = '';
      if (explain) more = `; ${JSON.stringify(await explain().catch((err) => `(could not say more: ${err.message})`))}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last saw ${JSON.stringify(last)}${more}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const viewState = (person) => person.page.evaluate(() => document.body.dataset.state);

export const inState = (person, state, timeoutMs = 15_000) =>
  waitFor(`${person.label} to be ${state}`, () => viewState(person), (s) => s === state, { timeoutMs });

export const joined = (person, timeoutMs = 15_000) => inState(person, 'joined', timeoutMs);

export const myId = (person) => person.page.evaluate(() => window.confab.client.me.id);

// Inbound RTP of the person's peer connection: [{kind, ssrc, framesDecoded, packetsReceived}].
export const inboundStats = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab?.client?.pc;
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out.push({ kind: s.kind, ssrc: s.ssrc, framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0 });
    });
    return out;
  });

// Whether `person` decodes video from `others` others and receives some audio.
export const seesAndHears = (person, others, timeoutMs) =>
  waitFor(
    `${person.label} to decode video and receive audio from ${others} others`,
    () => inboundStats(person),
    (s) => s.filter((x) => x.kind === 'video' && x.framesDecoded > 0).length >= others && s.some((x) => x.kind === 'audio' && x.packetsReceived > 0),
    { timeoutMs, intervalMs: 500 },
  );

// Chromium lip-syncs an audio and a video track only when the SDP puts them in one stream
// (msid); both then report estimatedPlayoutTimestamp, the sender's NTP time of what plays now.
// One sample of audio's minus video's (ms) for the busiest inbound audio and video, or null
// while either is missing (no sync group).
export const playoutSkew = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab?.client?.pc;
    if (!pc) return null;
    const busiest = {};
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if ((busiest[s.kind]?.packetsReceived ?? -1) < (s.packetsReceived ?? 0)) busiest[s.kind] = s;
    });
    const [a, v] = [busiest.audio?.estimatedPlayoutTimestamp, busiest.video?.estimatedPlayoutTimestamp];
    return a && v ? a - v : null;
  });

// Whether a playoutSkew (audio's minus video's, so negative when audio plays behind) is one no
// one can detect: ITU-R BT.1359 puts the detectability thresholds at audio 125 ms behind video
// and 45 ms ahead of it. Headless Chromium measures -9 to -48 ms on a quiet 2-core machine,
// -38 to -71 ms beside a busy loop, and once -108 ms in CI: its own audio and video playout
// under load, the same whether our sender reports pair RTP time with arrival or capture.
export const undetectableSkew = (ms) => ms > -125 && ms < 45;

// playoutSkew sampled every 300 ms for `windowMs` once it is first reported (within
// `firstMs`: the sync needs two sender reports of each stream, and str0m sends audio's every
// 5 s): the samples' median and how many there were (0 when there was no sync group).
export async function playoutSkews(person, windowMs, firstMs = 15_000) {
  const skews = [];
  const first = await waitFor('a playout-timestamp skew', () => playoutSkew(person), (s) => s !== null, { timeoutMs: firstMs, intervalMs: 300 }).catch(
    () => null,
  );
  if (first === null) return { median: NaN, samples: 0 };
  for (const end = Date.now() + windowMs; Date.now() < end; ) {
    const skew = await playoutSkew(person);
    if (skew !== null) skews.push(skew);
    await new Promise((r) => setTimeout(r, 300));
  }
  skews.sort((x, y) => x - y);
  return { median: skews.length ? skews[skews.length >> 1] : NaN, samples: skews.length };
}

// Outbound RTP of the person's peer connection: [{kind, rid, packetsSent, bytesSent, frameWidth}].
export const outboundStats = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab?.client?.pc;
    if (!pc) return [];
    const out = [];
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'outbound-rtp') return;
      out.push({
        kind: s.kind,
        rid: s.rid ?? '',
        packetsSent: s.packetsSent ?? 0,
        bytesSent: s.bytesSent ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        // Why the encoder sends less than asked (cpu, bandwidth), for a failure to explain.
        limitation: s.qualityLimitationReason ?? '',
      });
    });
    return out;
  });

// Total packets sent on every outbound stream of `kind` (audio or video).
export const packetsSent = async (person, kind) =>
  (await outboundStats(person)).filter((s) => s.kind === kind).reduce((n, s) => n + s.packetsSent, 0);

// framesDecoded by ssrc on the video receiver that carries `participantId`, or null if none.
export const videoFramesFrom = (person, participantId, source = 'camera') =>
  person.page.evaluate(
    async ([id, source]) => {
      const r = window.confab.client.receiversOf(id).find((x) => x.kind === 'video' && x.source === source);
      if (!r) return null;
      const frames = {};
      (await r.receiver.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') frames[s.ssrc] = s.framesDecoded ?? 0;
      });
      return frames;
    },
    [participantId, source],
  );

// Resolves once `person` decodes new video frames of `source` from `participantId` (a receiver
// that is being reused may still report an earlier sender's totals, so growth is what counts).
// A timeout says where the page's connection stood, so a failure tells a path that never came
// up from media that never came.
export async function decodesVideoFrom(person, participantId, timeoutMs, source = 'camera') {
  let previous = {};
  return waitFor(
    `${person.label} to decode ${source} video from participant ${participantId}`,
    async () => {
      const now = await videoFramesFrom(person, participantId, source);
      const grew = now && Object.entries(now).some(([ssrc, n]) => n > 0 && n > (previous[ssrc] ?? Infinity));
      previous = now ?? {};
      return { grew, now };
    },
    (r) => r.grew,
    { timeoutMs, intervalMs: 500, explain: async () => ({ pc: await connectionOf(person) }) },
  );
}

// Where `person`'s peer connection stands: its states, the bytes its transport has moved, and
// what arrived on each m-line that has received anything.
export const connectionOf = (person) =>
  person.page.evaluate(async () => {
    const pc = window.confab.client?.pc;
    if (!pc) return null;
    const out = { connection: pc.connectionState, ice: pc.iceConnectionState, signaling: pc.signalingState, transport: null, inbound: [] };
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'transport') out.transport = { dtls: s.dtlsState, sent: s.bytesSent, received: s.bytesReceived };
      if (s.type === 'inbound-rtp') out.inbound.push(`${s.mid ?? '?'}:${s.kind}:${s.packetsReceived}/${s.framesDecoded ?? '-'}`);
    });
    out.mids = pc.getTransceivers().map((t) => `${t.mid}:${t.currentDirection}`).join(' ');
    return out;
  });

// The camera video `person` receives from `participant`, as its decoder sees it.
export const cameraFrom = (person, participant) =>
  person.page.evaluate(async (id) => {
    const r = window.confab.client.receiversOf(id).find((x) => x.kind === 'video' && x.source === 'camera');
    if (!r) return null;
    let out = null;
    (await r.receiver.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out = { width: s.frameWidth ?? 0, height: s.frameHeight ?? 0, frames: s.framesDecoded ?? 0, packets: s.packetsReceived ?? 0 };
      }
    });
    return out;
  }, participant);

// The sources `person` receives from `participantId`, e.g. ['camera', 'microphone'].
export const receivedSources = (person, participantId) =>
  person.page.evaluate((id) => window.confab.client.receiversOf(id).map((r) => r.source).sort(), participantId);

// Participants with a camera tile on the stage (shown or on another page).
export const tileIds = (person) =>
  person.page.evaluate(() =>
    [...document.querySelectorAll('#grid .tile[data-source="camera"]')].map((e) => Number(e.dataset.participant)),
  );

// Everyone in the people panel, on stage and in the audience.
export const rosterNames = (person) =>
  person.page.evaluate(() => [...document.querySelectorAll('#people [data-participant] .name')].map((e) => e.textContent));

// What the person is told went wrong: the end screen's message once the meeting is over for
// them, else the banner's.
export const errorBanner = (person) =>
  person.page.evaluate(() => {
    const end = document.querySelector('#end-view:not([hidden]) .end-message');
    const el = end ?? document.getElementById('error');
    const visible = Boolean(el?.checkVisibility() && el.textContent.trim());
    return { visible, text: el?.textContent ?? '' };
  });
