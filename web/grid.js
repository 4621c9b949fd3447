// The stage: which tiles exist, where each goes, and which page of them is in view.
//
// Layouts. Gallery: equal 16:9 tiles, as large as fits, as many to a page as stay readable
// (25, 49 on a large screen, fewer on a phone). Speaker: one tile large (the spotlit, the
// pinned, a shared screen, else whoever last spoke) and the others in a strip beside it; the
// gallery switches to it too while someone shares or is pinned. One-to-one (two people, no
// screen): the other person fills the stage and my own picture sits small in a corner, and can
// be hidden. Tiles are placed absolutely from computed rectangles rather than left to CSS, so
// that the sizes reported to the server are exactly the sizes shown.

import { Tile } from './tile.js';
import { icon } from './icons.js';

const ASPECT = 16 / 9;
const GAP = 12;
// Narrower than this, a face is no longer worth the decoding: the page holds fewer tiles.
const MIN_TILE_WIDTH = 160;
const MAX_PER_PAGE = 25;
const MAX_PER_PAGE_LARGE = 49;
// A stage at least this large (a 1080p monitor) takes pages of 49.
const LARGE_SCREEN = { width: 1400, height: 800 };
// Below this width the others go in a small gallery under the large tile, not in a strip beside it.
const SIDE_STRIP_MIN_WIDTH = 700;
const VIEW_KEY = 'confab:layout';
export const VIEWS = /** @type {const} */ (['gallery', 'speaker']);

const key = (participant, source) => `${participant}:${source}`;

export class Grid {
  #tiles = new Map(); // "participant:source" → Tile
  #order = []; // keys, in the order the meeting lists people
  #area;
  #pager;
  #empty;
  #selfToggle;
  #tileOptions;
  #onTile;
  #onLayout;
  #page = 0;
  #lastSpeaker = null; // the last remote speaker: speaker view keeps them up while I talk
  pinned = null; // my own pin (local)
  spotlit = null; // a host's pin for everyone (set through spotlight())
  speaker = null;
  /** @type {'gallery' | 'speaker'} */
  view = 'gallery';
  selfViewHidden = false;

  // onPin(participant): a tile's pin was clicked. onLayout(): tiles moved, resized or hid.
  // onStopPresenting(): "Stop presenting" on my own screen's card. onTile(tile): a tile was
  // created, for whoever adds their own buttons to it (tile.actions).
  constructor(container, { onPin, onLayout, onStopPresenting = null, onTile = null }) {
    this.el = container;
    this.#tileOptions = { onPin, onStopPresenting };
    this.#onTile = onTile;
    this.#onLayout = onLayout;
    const saved = localStorage.getItem(VIEW_KEY);
    if (saved === 'gallery' || saved === 'speaker') this.view = saved;
    this.#area = document.createElement('div');
    this.#area.className = 'tiles';
    this.#empty = document.createElement('p');
    this.#empty.className = 'empty';
    this.#empty.textContent = 'Nobody is on stage yet';
    this.#selfToggle = document.createElement('button');
    this.#selfToggle.type = 'button';
    this.#selfToggle.className = 'self-view-toggle pill';
    // A stable name; pressed while my picture shows.
    this.#selfToggle.textContent = 'Self view';
    this.#selfToggle.title = 'Show or hide your own picture';
    this.#selfToggle.setAttribute('aria-pressed', 'true');
    this.#selfToggle.addEventListener('click', () => {
      this.selfViewHidden = !this.selfViewHidden;
      this.layout();
    });
    this.#pager = document.createElement('nav');
    this.#pager.className = 'pager';
    this.#pager.setAttribute('aria-label', 'Pages of videos');
    this.#pager.innerHTML =
      `<button type="button" class="prev" aria-label="Previous page">${icon('prev')}</button>` +
      '<span class="page-label"></span>' +
      `<button type="button" class="next" aria-label="Next page">${icon('next')}</button>`;
    this.#pager.querySelector('.prev').addEventListener('click', () => this.showPage(this.#page - 1));
    this.#pager.querySelector('.next').addEventListener('click', () => this.showPage(this.#page + 1));
    this.#area.append(this.#selfToggle);
    container.replaceChildren(this.#area, this.#empty, this.#pager);
    new ResizeObserver(() => this.layout()).observe(this.#area);
    // A tile in full screen is drawn larger: the server should send the layer that fits.
    document.addEventListener('fullscreenchange', () => this.#onLayout?.());
  }

  get page() {
    return this.#page;
  }

  tile(participant, source = 'camera') {
    return this.#tiles.get(key(participant, source));
  }

  tiles() {
    return [...this.#tiles.values()];
  }

  /** @param {'gallery' | 'speaker'} view */
  setView(view) {
    this.view = view;
    localStorage.setItem(VIEW_KEY, view);
    this.layout();
  }

  toggleView() {
    this.setView(this.view === 'gallery' ? 'speaker' : 'gallery');
  }

  // A host's "pin for everyone": shown large for everyone over their own pins; null ends it.
  /** @param {number | null} participant */
  spotlight(participant) {
    this.spotlit = participant;
    for (const tile of this.#tiles.values()) tile.setSpotlit(tile.participant === participant);
    this.layout();
  }

  // entries: [{participant, source, name, local}], the tiles that should exist, in the order
  // people are listed. Creates the missing ones and drops the rest.
  sync(entries) {
    const wanted = new Set();
    for (const e of entries) {
      const k = key(e.participant, e.source);
      wanted.add(k);
      const tile = this.#tiles.get(k);
      if (tile) {
        if (tile.name !== e.name) tile.setName(e.name);
        continue;
      }
      const created = new Tile(e.participant, { source: e.source, name: e.name, local: e.local, ...this.#tileOptions });
      this.#tiles.set(k, created);
      this.#area.append(created.el);
      created.setSpotlit(e.participant === this.spotlit);
      this.#onTile?.(created);
    }
    for (const [k, tile] of this.#tiles) {
      if (wanted.has(k)) continue;
      tile.el.remove();
      this.#tiles.delete(k);
    }
    this.#order = entries.map((e) => key(e.participant, e.source));
    this.layout();
  }

  setFocus({ pinned, speaker }) {
    this.pinned = pinned;
    this.speaker = speaker;
    const speakerTile = speaker === null ? null : this.#tiles.get(key(speaker, 'camera'));
    if (speakerTile && !speakerTile.local) this.#lastSpeaker = speaker;
    for (const tile of this.#tiles.values()) {
      tile.setPinned(tile.participant === pinned);
      tile.setSpeaking(tile.participant === speaker && tile.source === 'camera');
    }
    this.el.dataset.activeSpeaker = speaker ?? '';
    this.layout();
  }

  /** @param {number[]} raised the participants whose hands are up */
  setHands(raised) {
    for (const tile of this.#tiles.values()) tile.setHand(raised.includes(tile.participant));
  }

  showPage(page) {
    this.#page = page;
    this.layout();
  }

  // track id → rendered height, for every remote video we have a tile for.
  videoSizes() {
    const sizes = new Map();
    for (const tile of this.#tiles.values()) {
      if (tile.trackId !== null) sizes.set(tile.trackId, tile.renderedHeight());
    }
    return sizes;
  }

  // Track ids of the remote videos whose tiles are on the current page (camera muted or not).
  shownVideos() {
    const shown = new Set();
    for (const tile of this.#tiles.values()) {
      if (tile.trackId !== null && tile.onPage()) shown.add(tile.trackId);
    }
    return shown;
  }

  // The tile shown large: the spotlit or pinned person's screen or camera, else the newest
  // screen someone else shares (my own is a "You are presenting" card, never a mirror), else
  // in speaker view whoever last spoke.
  #focusKey() {
    for (const who of [this.spotlit, this.pinned]) {
      if (who === null) continue;
      for (const source of ['screen', 'camera']) {
        const k = key(who, source);
        const t = this.#tiles.get(k);
        if (t && !(t.local && source === 'screen')) return k;
      }
    }
    const screens = this.#order.filter((k) => {
      const t = this.#tiles.get(k);
      return t?.source === 'screen' && !t.local;
    });
    if (screens.length) return screens.at(-1);
    if (this.view !== 'speaker') return null;
    const cameras = this.#order.filter((k) => this.#tiles.get(k)?.source === 'camera' && !this.#tiles.get(k).local);
    const last = this.#lastSpeaker === null ? null : key(this.#lastSpeaker, 'camera');
    if (last && cameras.includes(last)) return last;
    return cameras[0] ?? null;
  }

  // Everyone but the focused tile, most wanted first: the sharer's own face next to their
  // screen, then whoever speaks, then the pinned, then the rest as listed.
  #ranked(focus) {
    const owner = focus ? this.#tiles.get(focus).participant : null;
    const rank = (k) => {
      const t = this.#tiles.get(k);
      if (t.participant === owner) return 0;
      if (t.participant === this.speaker && t.source === 'camera') return 1;
      if (t.participant === this.pinned || t.participant === this.spotlit) return 2;
      return 3;
    };
    const rest = this.#order.filter((k) => k !== focus && this.#tiles.has(k));
    return rest.map((k, i) => ({ k, r: rank(k), i })).sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.k);
  }

  // The two tiles of a one-to-one call, or null: me and one other, cameras only, nobody pinned.
  #oneToOne() {
    if (this.#tiles.size !== 2 || this.spotlit !== null || this.pinned !== null) return null;
    const tiles = [...this.#tiles.entries()];
    const self = tiles.find(([, t]) => t.local);
    const other = tiles.find(([, t]) => !t.local);
    if (!self || !other || self[1].source !== 'camera' || other[1].source !== 'camera') return null;
    return { self: self[0], other: other[0] };
  }

  layout() {
    const { width, height } = this.#area.getBoundingClientRect();
    this.#empty.hidden = this.#tiles.size > 0;
    if (!width || !height) return;
    const pair = this.#oneToOne();
    const focus = pair ? null : this.#focusKey();
    let placed;
    let shape;
    if (pair) {
      placed = this.#oneToOneLayout(pair, width, height);
      shape = 'one-to-one';
    } else if (focus) {
      placed = this.#focusLayout(focus, width, height);
      shape = 'focus';
    } else {
      placed = this.#galleryLayout(width, height);
      shape = 'gallery';
    }
    for (const [k, tile] of this.#tiles) tile.place(placed.rects.get(k) ?? null);
    this.el.dataset.layout = shape;
    this.el.dataset.view = this.view;
    this.#selfToggle.hidden = !pair;
    this.#selfToggle.setAttribute('aria-pressed', String(!this.selfViewHidden));
    this.#pager.hidden = placed.pages <= 1;
    this.#pager.querySelector('.page-label').textContent = `${this.#page + 1} / ${placed.pages}`;
    const button = (/** @type {string} */ sel) => /** @type {HTMLButtonElement} */ (this.#pager.querySelector(sel));
    button('.prev').disabled = this.#page === 0;
    button('.next').disabled = this.#page >= placed.pages - 1;
    this.#onLayout?.();
  }

  #paginate(list, perPage) {
    const pages = Math.max(1, Math.ceil(list.length / perPage));
    this.#page = Math.min(Math.max(this.#page, 0), pages - 1);
    return { visible: list.slice(this.#page * perPage, (this.#page + 1) * perPage), pages };
  }

  #galleryLayout(width, height) {
    // One page keeps people where they were; only when some are out of view does the speaker
    // get pulled onto the page being watched.
    const all = this.#order.filter((k) => this.#tiles.has(k));
    const perPage = tilesPerPage(width, height);
    const list = all.length > perPage ? this.#ranked(null) : all;
    const { visible, pages } = this.#paginate(list, perPage);
    const rects = new Map();
    placeGallery(visible, { x: 0, y: 0, w: width, h: height }, rects);
    return { rects, pages };
  }

  #oneToOneLayout({ self, other }, width, height) {
    const rects = new Map();
    // Upright (a phone), the other person fills more of the screen, cropped at the sides.
    const aspect = height > width ? 3 / 4 : ASPECT;
    rects.set(other, { ...fit({ x: 0, y: 0, w: Math.floor(width), h: Math.floor(height) }, aspect), big: true });
    if (!this.selfViewHidden) {
      const w = Math.round(Math.min(280, Math.max(112, width * 0.22)));
      const h = Math.round(w / ASPECT);
      // Above the toggle, in the bottom right corner.
      rects.set(self, { x: Math.floor(width - w - GAP), y: Math.floor(height - h - GAP - 44), w, h, pip: true });
    }
    return { rects, pages: 1 };
  }

  #focusLayout(focus, width, height) {
    const others = this.#ranked(focus);
    const rects = new Map();
    if (others.length === 0) {
      const whole = { x: 0, y: 0, w: Math.floor(width), h: Math.floor(height) };
      rects.set(focus, { ...(this.#tiles.get(focus).source === 'camera' ? fit(whole) : whole), big: true });
      return { rects, pages: 1 };
    }
    if (width < SIDE_STRIP_MIN_WIDTH) {
      // Narrow or upright: the large tile on top, the others in a small gallery under it.
      const mainH = Math.floor(Math.min(width / ASPECT, height * 0.6));
      rects.set(focus, { x: 0, y: 0, w: Math.floor(width), h: mainH, big: true });
      const rest = { x: 0, y: mainH + GAP, w: width, h: Math.max(0, height - mainH - GAP) };
      const { visible, pages } = this.#paginate(others, tilesPerPage(rest.w, rest.h));
      placeGallery(visible, rest, rects, false);
      return { rects, pages };
    }
    const stripW = Math.round(Math.min(320, Math.max(160, width * 0.2)));
    const thumb = { w: stripW, h: Math.round(stripW / ASPECT) };
    const cap = Math.max(1, Math.floor((height + GAP) / (thumb.h + GAP)));
    const main = { x: 0, y: 0, w: Math.floor(width - stripW - GAP), h: Math.floor(height) };
    rects.set(focus, { ...(this.#tiles.get(focus).source === 'camera' ? fit(main) : main), big: true });
    const { visible, pages } = this.#paginate(others, cap);
    visible.forEach((k, i) => rects.set(k, { x: main.w + GAP, y: i * (thumb.h + GAP), ...thumb }));
    return { rects, pages };
  }
}

// Places `keys` as equal 16:9 tiles, as large as fit, centred in `area`, into `rects`; a lone
// one counts as large when `loneIsLarge`.
function placeGallery(keys, area, rects, loneIsLarge = true) {
  const n = Math.max(keys.length, 1);
  const best = galleryShape(n, area.w, area.h);
  const w = Math.floor(best.w);
  const h = Math.floor(w / ASPECT);
  const rows = Math.ceil(n / best.cols);
  const top = area.y + (area.h - (rows * h + (rows - 1) * GAP)) / 2;
  keys.forEach((k, i) => {
    const row = Math.floor(i / best.cols);
    // The last row, if short, is centred like the others.
    const inRow = Math.min(best.cols, keys.length - row * best.cols);
    const left = area.x + (area.w - (inRow * w + (inRow - 1) * GAP)) / 2;
    const col = i % best.cols;
    rects.set(k, { x: Math.round(left + col * (w + GAP)), y: Math.round(top + row * (h + GAP)), w, h, big: loneIsLarge && keys.length === 1 });
  });
}

// The column count that draws n tiles largest in width × height, and their width.
function galleryShape(n, width, height) {
  let best = { cols: 1, w: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const byWidth = (width - GAP * (cols - 1)) / cols;
    const byHeight = ((height - GAP * (rows - 1)) / rows) * ASPECT;
    const w = Math.min(byWidth, byHeight);
    if (w > best.w) best = { cols, w };
  }
  return best;
}

// How many tiles a gallery page holds: as many as stay at least MIN_TILE_WIDTH wide, up to 25
// (49 on a large screen), and always one.
export function tilesPerPage(width, height) {
  const cap = width >= LARGE_SCREEN.width && height >= LARGE_SCREEN.height ? MAX_PER_PAGE_LARGE : MAX_PER_PAGE;
  let most = 1;
  for (let n = 2; n <= cap; n++) if (galleryShape(n, width, height).w >= MIN_TILE_WIDTH) most = n;
  return most;
}

// The largest 16:9 rectangle centred in `r`: a face cropped to a letterbox loses its chin.
function fit(r, aspect = ASPECT) {
  const w = Math.floor(Math.min(r.w, r.h * aspect));
  const h = Math.floor(w / aspect);
  return { x: r.x + Math.round((r.w - w) / 2), y: r.y + Math.round((r.h - h) / 2), w, h };
}
