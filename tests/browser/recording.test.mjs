// Recording from the web client: a host records a two-person meeting, the guest shares the
// screen half-way; everyone sees the Recording badge; the host downloads the file from the
// recordings page; ffmpeg decodes it cleanly, its video switches to the screen's size when the
// share starts, and its audio is not silence.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useWorld } from './harness.mjs';
import { waitFor, myId, decodesVideoFrom } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
// The fake microphone beeps; mixed voices must be well above digital silence (-91 dB).
const MIN_MEAN_VOLUME_DB = -50;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-rec-browser-'));
const world = useWorld({ serverArgs: ['--recordings-dir', dir] });
const room = `rec-${process.pid}`;

// Cameras at 640×360, so that the screen (the page's size) is told apart in the file.
function smallCamera() {
  const md = navigator.mediaDevices;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => original(c?.video ? { ...c, video: { width: { exact: 640 }, height: { exact: 360 } } } : c);
}

const badgeShown = (person) => person.page.evaluate(() => !document.getElementById('recording-badge')?.hidden);

function probeFrames(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'frame=pts_time,width,height', '-of', 'csv=p=0', file]);
  return String(out)
    .trim()
    .split('\n')
    .map((l) => l.split(',').map(Number))
    .map(([t, w, h]) => ({ t, w, h }));
}

world.scenario('a host records; the video follows the screen share and the audio is heard', async () => {
  const host = await world.open('Host', `room=${room}&name=Host`, { init: smallCamera });
  const guest = await world.open('Guest', `room=${room}&name=Guest`, { init: smallCamera });
  const [hostId, guestId] = [await myId(host), await myId(guest)];
  await Promise.all([decodesVideoFrom(host, guestId, MEDIA_DEADLINE_MS), decodesVideoFrom(guest, hostId, MEDIA_DEADLINE_MS)]);

  assert.equal(await guest.page.isVisible('#record-button'), false, 'only hosts may record');
  host.page.once('dialog', (d) => d.accept());
  await host.page.click('#record-button');
  await waitFor('both to see the Recording badge', async () => (await badgeShown(host)) && (await badgeShown(guest)));
  const started = Date.now();
  await new Promise((r) => setTimeout(r, 5000));

  // Frames before the click can only be the camera; the host decoding the screen comes later,
  // by over a second when the machine is loaded, so that moment cannot bound the camera's part.
  const clickAt = (Date.now() - started) / 1000;
  await guest.page.click('#screen');
  await decodesVideoFrom(host, guestId, MEDIA_DEADLINE_MS, 'screen');
  const screen = await guest.page.evaluate(() => {
    const t = window.confab.client.localTrack('screen');
    const s = t.getSettings();
    return { w: s.width, h: s.height };
  });
  const shareAt = (Date.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 6000));
  await host.page.click('#record-button');
  await waitFor('the badge to go', async () => !(await badgeShown(guest)));

  // The recordings page: a finished recording with a download link that needs no key.
  await host.page.click('#recordings-button');
  const href = await waitFor(
    'a finished recording on the page',
    async () => {
      await host.page.click('#recordings-refresh');
      return host.page.evaluate(() => {
        const row = document.querySelector('#recordings-page tbody tr');
        return row && !/recording|unfinished/.test(row.textContent) ? row.querySelector('a').getAttribute('href') : null;
      });
    },
    Boolean,
    { timeoutMs: 15_000, intervalMs: 1000 },
  );
  const res = await fetch(`${world.server.url}${href}`);
  assert.equal(res.status, 200);
  const file = path.join(dir, 'downloaded.webm');
  fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));

  // ffmpeg re-stamps decoded video on a 1/frame-rate grid by default, and a loaded browser's
  // irregularly spaced frames can round onto one tick, which its null muxer reports as "non
  // monotonically increasing dts": a note about its own output. Keeping the file's millisecond
  // time base avoids that, so any message at all fails the test; the file's own video
  // timestamps are checked strictly increasing just below.
  const decoded = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-enc_time_base', '-1', '-f', 'null', '-'], { encoding: 'utf8' });
  assert.equal(decoded.status, 0);
  assert.equal(decoded.stderr, '', 'decodes without errors');
  const pts = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts', '-of', 'csv=p=0', file], { encoding: 'utf8' })
    .stdout.split('\n').filter(Boolean).map(Number);
  assert.ok(pts.length > 30 && pts.every((t, i) => i === 0 || t > pts[i - 1]), 'video timestamps in the file strictly increase');
  const frames = probeFrames(file);
  const before = frames.filter((f) => f.t < clickAt - 1);
  const after = frames.filter((f) => f.t > shareAt + 3);
  assert.ok(before.length > 0 && after.length > 0, `frames around the share (clicked at ${clickAt}s, decoded at ${shareAt}s)`);
  assert.ok(before.every((f) => f.w <= 640), `camera before the share: ${JSON.stringify(before.slice(-1))}`);
  const last = after[after.length - 1];
  assert.deepEqual({ w: last.w, h: last.h }, screen, 'the screen is on stage once shared');

  const vol = spawnSync('ffmpeg', ['-hide_banner', '-i', file, '-vn', '-af', 'volumedetect', '-f', 'null', '-'], { encoding: 'utf8' });
  const mean = Number(/mean_volume: (-?[\d.]+) dB/.exec(vol.stderr)?.[1]);
  console.log(`recording: camera ${before[0].w}x${before[0].h}, screen ${screen.w}x${screen.h}, mean volume ${mean} dB`);
  assert.ok(mean > MIN_MEAN_VOLUME_DB, `audio mean volume ${mean} dB > ${MIN_MEAN_VOLUME_DB} dB`);
});
