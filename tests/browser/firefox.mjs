// Debian's firefox-esr driven by puppeteer-core over WebDriver BiDi: one window per person, with
// fake camera and microphone, for the same probes browser.mjs runs on Chromium pages.

import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { withoutPrejoin } from './browser.mjs';

const FIREFOX = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';

// Firefox gathers 127.0.0.1 candidates only for an origin with a stored camera/microphone
// permission, and WebDriver BiDi's setPermission refuses camera: a default-permissions file,
// read at start-up, grants them to the test server's origin.
function permissionsFile(origin) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-ff-'));
  const file = path.join(dir, 'permissions.txt');
  const lines = ['camera', 'microphone', 'screen'].map((p) => `origin\t${p}\t1\t${origin}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return { dir, url: `file://${file}` };
}

// `origin`: the server the pages will open. `headless: false` needs a DISPLAY (Xvfb): headless
// Firefox has no screen to share, while under Xvfb getDisplayMedia captures the virtual display.
export async function launchFirefox(origin, { display = null } = {}) {
  const perms = permissionsFile(origin);
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: !display,
    env: display ? { ...process.env, DISPLAY: display } : process.env,
    protocol: 'webDriverBiDi',
    extraPrefsFirefox: {
      'permissions.manager.defaultsUrl': perms.url,
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      // getDisplayMedia without the picker: the whole (virtual) screen.
      'media.getdisplaymedia.screensharing.enabled': true,
      'media.navigator.video.use_remb': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      // Timers and rendering of a window without focus are not throttled.
      'dom.min_background_timeout_value': 4,
      'browser.tabs.remote.autostart': true,
    },
  });
  const close = browser.close.bind(browser);
  browser.close = async () => {
    await close();
    fs.rmSync(perms.dir, { recursive: true, force: true });
  };
  return browser;
}

// A person in Firefox: a window of their own (a background tab counts as hidden, and the client
// stops receiving the video it does not show), with the shape browser.mjs's probes expect.
export async function openFirefoxPerson(browser, url, label) {
  url = withoutPrejoin(url);
  const page = await browser.newPage({ type: 'window' });
  page.setDefaultTimeout(10_000);
  const logs = [];
  const keep = (line) => {
    logs.push(`[${label}] ${line}`);
    if (logs.length > 200) logs.shift();
  };
  page.on('console', (m) => keep(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => keep(`pageerror: ${e.message}`));
  // WebDriver BiDi shows no WebSocket frames: the page logs its own, as browser.mjs keeps
  // Chromium's, so a failure says what the server told this person.
  await page.evaluateOnNewDocument(() => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => console.debug(`ws< ${String(e.data).slice(0, 160)}`));
        this.addEventListener('close', () => console.debug('ws closed'));
      }
      send(data) {
        console.debug(`ws> ${String(data).slice(0, 160)}`);
        super.send(data);
      }
    };
  });
  await page.goto(url);
  return { label, page, logs, context: { close: () => page.close() } };
}

// A virtual X display for a Firefox that must show windows (screen sharing captures it).
// Xvfb picks a free display number and writes it to the pipe given by -displayfd.
export function startXvfb({ timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const xvfb = spawn('Xvfb', ['-displayfd', '1', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const timer = setTimeout(() => {
      xvfb.kill('SIGKILL');
      reject(new Error(`Xvfb gave no display within ${timeoutMs} ms`));
    }, timeoutMs);
    xvfb.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb did not start (apt-get install xvfb): ${err.message}`));
    });
    let out = '';
    xvfb.stdout.setEncoding('utf8');
    xvfb.stdout.on('data', (chunk) => {
      out += chunk;
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      resolve({ display: `:${out.trim()}`, stop: () => xvfb.kill('SIGTERM') });
    });
  });
}
