// Headless Chromium with fake camera and microphone, one browser context per simulated person.

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
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
    ],
  });
}

// A person: their own context (cookies, permissions, fake devices), one page, and what the
// page logged, kept to explain a failure.
export async function openPerson(browser, url, label) {
  const context = await browser.newContext({
    permissions: ['camera', 'microphone'],
    viewport: { width: 1280, height: 800 },
  });
  const page = await context.newPage();
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
  await page.goto(url);
  return { label, context, page, logs };
}

// Polls `probe` until `accept` holds of its result; throws with the last result at the deadline.
export async function waitFor(what, probe, accept = Boolean, { timeoutMs = 10_000, intervalMs = 250 } = {}) {
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
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last saw ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const joined = (person, timeoutMs = 15_000) =>
  waitFor(
    `${person.label} to join`,
    () => person.page.evaluate(() => document.body.dataset.state),
    (s) => s === 'joined',
    { timeoutMs },
  );

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

// framesDecoded by ssrc on the video receiver that carries `participantId`, or null if none.
export const videoFramesFrom = (person, participantId) =>
  person.page.evaluate(async (id) => {
    const r = window.confab.client.receiversOf(id).find((x) => x.kind === 'video');
    if (!r) return null;
    const frames = {};
    (await r.receiver.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') frames[s.ssrc] = s.framesDecoded ?? 0;
    });
    return frames;
  }, participantId);

// Resolves once `person` decodes new video frames from `participantId` (a receiver that is
// being reused may still report an earlier sender's totals, so growth is what counts).
export async function decodesVideoFrom(person, participantId, timeoutMs) {
  let previous = {};
  return waitFor(
    `${person.label} to decode video from participant ${participantId}`,
    async () => {
      const now = await videoFramesFrom(person, participantId);
      const grew = now && Object.entries(now).some(([ssrc, n]) => n > 0 && n > (previous[ssrc] ?? Infinity));
      previous = now ?? {};
      return { grew, now };
    },
    (r) => r.grew,
    { timeoutMs, intervalMs: 500 },
  );
}

export const tileIds = (person) =>
  person.page.evaluate(() => [...document.querySelectorAll('#grid [data-participant]')].map((e) => Number(e.dataset.participant)));

export const rosterNames = (person) =>
  person.page.evaluate(() => [...document.querySelectorAll('#people [data-participant] .name')].map((e) => e.textContent));

export const errorBanner = (person) =>
  person.page.evaluate(() => {
    const el = document.getElementById('error');
    const visible = Boolean(el?.checkVisibility() && el.textContent.trim());
    return { visible, text: el?.textContent ?? '' };
  });
