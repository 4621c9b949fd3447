// Layouts and notices as people have them: a one-to-one call with the other person large and a
// small, hideable self-view; "You are presenting" for the sharer while the viewer decodes the
// screen; safe chat links with a preview notice; a raised hand told to the host; speaker view
// following whoever talks; and a gallery of bots paging at 25 on a laptop, fewer on a phone.
// Screenshots go to $CONFAB_SHOTS (a directory) when it is set.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { useWorld } from './harness.mjs';
import { serverBinary } from './server.mjs';
import { waitFor, myId, decodesVideoFrom, receivedSources, inboundStats } from './browser.mjs';

const MEDIA_DEADLINE_MS = 30_000;
const UI_DEADLINE_MS = 10_000;
const PHONE = { width: 390, height: 844 };
const CROWD = 26;

// Bandwidth estimation is off, as in allhands.test.mjs: these scenarios are about layout, and
// on a loaded machine the gallery's estimate decides how many tiles get video. Measured at
// load ~9 (server debug log, `confab::media::layers=debug`): the 8 audio slots carry the bots'
// Opus-sized packets (~60 kbit/s each, no DTX) and take the first 512 kbit/s, and the lean
// estimator, reading the starved machine's delay jitter as queueing, held Lap near what it
// delivered (0.4-0.5 Mbit/s) for 19 s, so Lap got 1 video until then and 10 only after 26 s of
// a 30 s wait.
const world = useWorld({ serverArgs: ['--bandwidth-estimation', 'false'] });
const { people } = world;
const room = `layout-${process.pid}`;
let crowd = null;
after(() => crowd?.kill('SIGKILL'));

const ui = (person, what, fn, arg, accept = Boolean) =>
  waitFor(`${person.label}: ${what}`, () => person.page.evaluate(fn, arg), accept, { timeoutMs: UI_DEADLINE_MS });

async function shot(person, name) {
  const dir = process.env.CONFAB_SHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await person.page.screenshot({ path: path.join(dir, `${name}.png`) });
}

// The same view at laptop and phone size (the window is put back afterwards).
async function shots(person, name) {
  if (!process.env.CONFAB_SHOTS) return;
  const before = person.page.viewportSize();
  for (const size of [{ width: 1280, height: 800 }, PHONE]) {
    await person.page.setViewportSize(size);
    await waitFor('the stage to fit the window', () => person.page.evaluate(() => document.getElementById('grid').getBoundingClientRect().width), (w) => w <= size.width);
    // The grid lays out on the next frame after a resize.
    await person.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await shot(person, `${name}-${size.width}x${size.height}`);
    // A phone's side panel covers the stage: the stage alone too.
    const panel = await person.page.$('.controls [id$="-toggle"][aria-pressed="true"]');
    if (size === PHONE && panel) {
      await panel.click();
      await shot(person, `${name}-${size.width}x${size.height}-stage`);
      await panel.click();
    }
  }
  await person.page.setViewportSize(before);
}

// A machine without camera or microphone is told so in a banner over the top bar: read, closed.
// The banner comes when the capture fails, which may be after the page shows the room, so the
// click waits for it.
async function dismissBanner(person) {
  await person.page.click('#banner .banner-close');
  await person.page.waitForSelector('#banner', { state: 'hidden' });
}

// Where a tile is and how it shows, or null when it has none on the page.
const tile = (person, participant, source = 'camera') =>
  person.page.evaluate(
    ([id, source]) => {
      const el = document.querySelector(`#grid .tile[data-participant="${id}"][data-source="${source}"]`);
      if (!el || el.hidden) return null;
      const r = el.getBoundingClientRect();
      return { w: Math.round(r.width), h: Math.round(r.height), size: el.dataset.size, layout: document.getElementById('grid').dataset.layout };
    },
    [participant, source],
  );

world.scenario('one-to-one: the other person fills the stage, my own picture is small and can be hidden', async () => {
  const ana = await world.open('Ana', `room=${room}&name=Ana&role=host`);
  const ben = await world.open('Ben', `room=${room}&name=Ben`);
  const [anaId, benId] = await Promise.all([myId(ana), myId(ben)]);
  await decodesVideoFrom(ana, benId, MEDIA_DEADLINE_MS);
  const other = await waitFor('Ben large on Ana’s stage', () => tile(ana, benId), (t) => t?.layout === 'one-to-one' && t.size === 'large');
  const self = await tile(ana, anaId);
  assert.equal(self?.size, 'pip', 'my own picture is a small one in the corner');
  assert.ok(other.w > 3 * self.w, `Ben ${JSON.stringify(other)} dwarfs me ${JSON.stringify(self)}`);
  await shots(ana, 'one-to-one');

  // How well Ben's video arrives, from getStats, on his tile. The first reading can come
  // before Chromium reports a frame rate (seen once, right after the first frames decoded).
  const quality = await ui(ana, 'a connection indicator on Ben’s tile, frame rate included', (id) => {
    const q = document.querySelector(`#grid .tile[data-participant="${id}"] .quality`);
    return q?.checkVisibility() ? { level: q.dataset.level, label: q.getAttribute('aria-label') } : null;
  }, benId, (q) => q && /frames\/s$/.test(q.label));
  assert.match(quality.label, /^Connection (good|fair|poor): \d+% loss, \d+ ms round trip, \d+ frames\/s$/);

  // A tile in full screen, and the server told of its new size.
  const sent = () => ana.page.evaluate(() => window.__sizes ?? null);
  await ana.page.evaluate(() => {
    const ws = window.confab.client;
    const original = ws.reportVideoSizes.bind(ws);
    ws.reportVideoSizes = (sizes, shown) => {
      window.__sizes = Object.fromEntries(sizes);
      original(sizes, shown);
    };
  });
  await ana.page.click(`#grid .tile[data-participant="${benId}"] .fullscreen`);
  const full = await ui(ana, 'Ben’s tile in full screen', (id) => {
    const el = document.fullscreenElement;
    return el?.dataset.participant === String(id) ? { h: el.getBoundingClientRect().height, window: innerHeight } : null;
  }, benId);
  assert.equal(full.h, full.window);
  await waitFor('the full-screen size reported', sent, (s) => s && Object.values(s).includes(full.h));
  await ana.page.evaluate(() => document.exitFullscreen());

  await ana.page.click('#grid .self-view-toggle');
  await waitFor('my picture hidden', () => tile(ana, anaId), (t) => t === null, { timeoutMs: UI_DEADLINE_MS });
  assert.equal(await ana.page.getAttribute('#grid .self-view-toggle', 'aria-pressed'), 'false');
  await ana.page.click('#grid .self-view-toggle');
  await waitFor('my picture back', () => tile(ana, anaId), (t) => t?.size === 'pip', { timeoutMs: UI_DEADLINE_MS });
  // The server sends the large layer for the large tile: decoding goes on after the change.
  await decodesVideoFrom(ana, benId, MEDIA_DEADLINE_MS);
});

world.scenario('the sharer sees “You are presenting” while the viewer decodes the screen', async () => {
  const ana = people.get('Ana');
  const ben = people.get('Ben');
  const anaId = await myId(ana);
  await ana.page.click('#screen');
  await decodesVideoFrom(ben, anaId, MEDIA_DEADLINE_MS, 'screen');
  await waitFor('the screen large for Ben', () => tile(ben, anaId, 'screen'), (t) => t?.size === 'large', { timeoutMs: UI_DEADLINE_MS });
  const mine = await ui(ana, 'the presenting card', () => {
    const el = document.querySelector('#grid .tile[data-local][data-source="screen"]');
    const card = el?.querySelector('.presenting');
    return card?.checkVisibility() ? { text: card.textContent, video: el.querySelector('video').srcObject !== null, size: el.dataset.size } : null;
  });
  assert.match(mine.text, /You are presenting/);
  assert.equal(mine.video, false, 'no picture of my own screen (no mirror tunnel)');
  assert.notEqual(mine.size, 'large', 'the card does not take the stage');
  await shots(ana, 'presenting');
  await shots(ben, 'viewing-screen');

  await ana.page.click('#grid .stop-presenting');
  await waitFor("Ben to lose Ana's screen", () => receivedSources(ben, anaId), (s) => !s.includes('screen'), { timeoutMs: UI_DEADLINE_MS });
});

world.scenario('chat: links are links, markup is text, a closed chat shows a preview and counts in the title', async () => {
  const ana = people.get('Ana');
  const ben = people.get('Ben');
  const hostile = 'read https://example.org/a?b=1. <img src=x onerror="window.__owned=1"> javascript:alert(1)';
  await ben.page.click('#chat-toggle');
  await ben.page.fill('#chat textarea', hostile);
  await ben.page.press('#chat textarea', 'Enter');

  // Ana's chat is closed: a notice with the preview, and the count in the tab title.
  const notice = await ui(ana, 'the chat notice', () => document.querySelector('.notices .notice[data-kind="chat"] .notice-text')?.textContent);
  assert.equal(notice, `Ben: ${hostile.length > 80 ? `${hostile.slice(0, 80)}…` : hostile}`);
  assert.match(await ana.page.title(), /^\(1\) /);
  await shots(ana, 'chat-notice');
  await ana.page.click('.notices .notice[data-kind="chat"] .notice-action');
  const entry = await ui(ana, 'the message in the chat', () => {
    const el = document.querySelector('#chat .chat-entry:last-child');
    if (!el?.checkVisibility()) return null;
    const links = [...el.querySelectorAll('a')].map((a) => ({ href: a.href, text: a.textContent, rel: a.rel, target: a.target }));
    return { text: el.querySelector('.text').textContent, links, imgs: el.querySelectorAll('img').length, time: el.querySelector('time')?.textContent ?? '' };
  });
  assert.equal(entry.text, hostile, 'the message reads exactly as written');
  assert.deepEqual(entry.links, [{ href: 'https://example.org/a?b=1', text: 'https://example.org/a?b=1', rel: 'noopener noreferrer', target: '_blank' }]);
  assert.equal(entry.imgs, 0, 'no element from the message');
  assert.match(entry.time, /\d/, 'a time stamp');
  assert.equal(await ana.page.evaluate(() => window.__owned), undefined);
  await waitFor('the title count cleared', () => ana.page.title(), (t) => !t.startsWith('('), { timeoutMs: UI_DEADLINE_MS });
  await shots(ana, 'chat');
  await ben.page.click('#chat-toggle');
});

world.scenario('shortcuts: "?" lists them, and keys typed in the chat box are text, not commands', async () => {
  const ben = people.get('Ben');
  const mic = () => ben.page.getAttribute('#mic', 'aria-pressed');
  const before = await mic();
  await ben.page.click('#chat-toggle');
  await ben.page.click('#chat textarea');
  await ben.page.keyboard.type('mvh?');
  assert.equal(await ben.page.inputValue('#chat textarea'), 'mvh?');
  assert.equal(await mic(), before, 'typing m in the chat box left the microphone alone');
  assert.equal(await ben.page.evaluate(() => document.querySelector('.shortcuts-dialog').open), false);
  await ben.page.fill('#chat textarea', '');
  await ben.page.click('#chat-toggle');
  await ben.page.keyboard.press('?');
  const list = await ui(ben, 'the shortcuts list', () => {
    const d = document.querySelector('.shortcuts-dialog');
    return d.open ? [...d.querySelectorAll('dt')].map((e) => e.textContent) : null;
  });
  assert.deepEqual(list.slice(0, 3), ['M', 'V', 'H']);
  await shots(ben, 'shortcuts');
  await ben.page.keyboard.press('Escape');
  await ui(ben, 'the list closed', () => !document.querySelector('.shortcuts-dialog').open);
});

world.scenario('a raised hand shows on the tile and in a notice for the host', async () => {
  const ana = people.get('Ana');
  const ben = people.get('Ben');
  const benId = await myId(ben);
  await ben.page.keyboard.press('h');
  const notice = await ui(ana, 'the hand notice', () => document.querySelector('.notices .notice[data-kind="hand"] .notice-text')?.textContent);
  assert.equal(notice, 'Ben raised a hand');
  await ui(ana, 'a hand on Ben’s tile', (id) => document.querySelector(`#grid .tile[data-participant="${id}"] .hand-up`)?.checkVisibility(), benId);
  await waitFor('H to press the hand button', () => ben.page.getAttribute('#hand', 'aria-pressed'), (p) => p === 'true', { timeoutMs: UI_DEADLINE_MS });
  await ben.page.keyboard.press('h');
  await ui(ana, 'the hand gone from the tile', (id) => !document.querySelector(`#grid .tile[data-participant="${id}"] .hand-up`)?.checkVisibility(), benId);
});

world.scenario('speaker view shows whoever talks, and follows when someone else does', async () => {
  const ana = people.get('Ana');
  const ben = people.get('Ben');
  const [anaId, benId] = await Promise.all([myId(ana), myId(ben)]);
  const cy = await world.open('Cy', `room=${room}&name=Cy`, { devices: false });
  await dismissBanner(cy);
  await cy.page.click('#layout-toggle');
  assert.equal(await cy.page.getAttribute('#layout-toggle', 'aria-pressed'), 'true');
  const large = () =>
    cy.page.evaluate(() => {
      const el = document.querySelector('#grid .tile[data-size="large"]');
      return el ? { id: Number(el.dataset.participant), layout: document.getElementById('grid').dataset.layout } : null;
    });
  // Only Ben's microphone on: Ben is the speaker, large.
  await ana.page.keyboard.press('m');
  await waitFor('Ben large in speaker view', large, (l) => l?.id === benId && l.layout === 'focus', { timeoutMs: MEDIA_DEADLINE_MS });
  await decodesVideoFrom(cy, benId, MEDIA_DEADLINE_MS);
  await shots(cy, 'speaker');
  // Now only Ana's.
  await ben.page.keyboard.press('m');
  await ana.page.keyboard.press('m');
  await waitFor('Ana large in speaker view', large, (l) => l?.id === anaId, { timeoutMs: MEDIA_DEADLINE_MS });
  await decodesVideoFrom(cy, anaId, MEDIA_DEADLINE_MS);
  await cy.page.click('#layout-toggle');
  await ben.page.keyboard.press('m');
});

world.scenario('in a webinar, a new question counts on the Q&A button and in the title until read', async () => {
  const webinar = `${room}-webinar`;
  const wen = await world.open('Wen', `room=${webinar}&name=Wen&role=host&mode=webinar`, { devices: false });
  await dismissBanner(wen);
  const aud = await world.open('Aud', `room=${webinar}&name=Aud`);
  await aud.page.click('#qna-toggle');
  await aud.page.fill('#qna textarea', 'Will the slides be shared?');
  await aud.page.click('#qna button[type=submit]');
  const badge = await ui(wen, 'a count on the Q&A button', () => {
    const b = document.querySelector('#qna-toggle .unread');
    return b?.checkVisibility() ? { count: b.textContent, label: document.getElementById('qna-toggle').getAttribute('aria-label'), title: document.title } : null;
  });
  assert.deepEqual(badge, { count: '1', label: 'Questions, 1 new', title: `(1) ${webinar} · confab` });
  await shots(wen, 'qna-badge');
  await wen.page.click('#qna-toggle');
  await ui(wen, 'the count gone once read', () => !document.querySelector('#qna-toggle .unread').checkVisibility() && !document.title.startsWith('('));
  await Promise.all([world.close('Wen'), world.close('Aud')]);
});

world.scenario(`a gallery of ${CROWD} bots and a few people pages at 25 on a laptop and fewer on a phone`, async () => {
  const bin = path.join(path.dirname(serverBinary()), 'confab-load');
  const url = `${world.server.url.replace('http', 'ws')}/ws`;
  const args = ['--url', url, '--quiet', '--duration', '90', 'crowd', '--room', room, '--size', String(CROWD), '--talking', '0'];
  const lap = await world.open('Lap', `room=${room}&name=Lap`, { devices: false });
  await dismissBanner(lap);
  const phone = await world.open('Pho', `room=${room}&name=Pho`, { devices: false, viewport: PHONE });
  await dismissBanner(phone);
  // The people panel opens by default on a laptop; closed, the stage is as wide as the window.
  await lap.page.click('#people-toggle');
  // After the viewers, so that they see the crowd arrive.
  crowd = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const grid = (person) =>
    person.page.evaluate(() => {
      const tiles = [...document.querySelectorAll('#grid .tile')];
      return {
        people: window.confab.client.participants.size + 1,
        bots: [...window.confab.client.participants.values()].filter((p) => p.name.startsWith('crowd')).length,
        tiles: tiles.length,
        shown: tiles.filter((t) => !t.hidden).length,
        page: document.querySelector('#grid .page-label').textContent,
        pager: !document.querySelector('#grid .pager').hidden,
      };
    });
  const laptop = await waitFor(
    'Lap: 25 tiles on page 1 of 2',
    () => grid(lap),
    (g) => g.bots === CROWD && g.tiles === g.people && g.shown === 25 && g.page === '1 / 2',
    { timeoutMs: MEDIA_DEADLINE_MS },
  );
  const total = laptop.tiles;
  assert.ok(laptop.pager);
  // The bots' arrival is one notice, not 26.
  const joinedNotice = await ui(lap, 'one notice for the arrivals', () =>
    [...document.querySelectorAll('.notices .notice[data-kind="joined"] .notice-text')].map((e) => e.textContent),
  );
  assert.ok(joinedNotice.some((t) => /^\S+ and \d+ others joined$/.test(t)), JSON.stringify(joinedNotice));
  const onPhone = await waitFor('Pho: a page of fewer tiles', () => grid(phone), (g) => g.tiles === total && g.pager, { timeoutMs: UI_DEADLINE_MS });
  assert.ok(onPhone.shown >= 4 && onPhone.shown < 25, JSON.stringify(onPhone));
  assert.equal(onPhone.page, `1 / ${Math.ceil(total / onPhone.shown)}`);
  // Pages by stage size: a laptop's, a 1080p monitor's, a phone's.
  const perPage = await lap.page.evaluate(async () => {
    const { tilesPerPage } = await import('/grid.js');
    return [tilesPerPage(1256, 650), tilesPerPage(1880, 950), tilesPerPage(366, 650)];
  });
  assert.deepEqual(perPage, [25, 49, 12]);
  await shot(lap, 'gallery-1280x800');
  await shot(phone, 'gallery-390x844');
  // Video arrives for what the page shows, no more: a page of m-lines, not one per person.
  const video = await waitFor(
    'Lap receives video for the page',
    async () => (await inboundStats(lap)).filter((s) => s.kind === 'video' && s.packetsReceived > 0).length,
    (n) => n >= 10,
    { timeoutMs: MEDIA_DEADLINE_MS, intervalMs: 500 },
  );
  assert.ok(video <= 25, `video on ${video} m-lines for 25 tiles`);
  // The page now decodes up to 25 videos on a CI machine's two cores: Playwright's scroll
  // into view waits for the renderer's next frame, which once took longer than the default
  // 10 s (the button was visible, enabled and stable). A real click, given the media's time.
  await lap.page.click('#grid .pager .next', { timeout: MEDIA_DEADLINE_MS });
  await waitFor('Lap: page 2', () => grid(lap), (g) => g.page === '2 / 2' && g.shown === total - 25, { timeoutMs: UI_DEADLINE_MS });
});
