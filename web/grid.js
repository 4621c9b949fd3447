// The stage: which tiles exist, where each goes, and which page of them is in view.
//
// Two layouts. Gallery: equal 16:9 tiles, as large as fits, at most MAX_PER_PAGE to a page.
// Focus (someone shares a screen, or is pinned): that one large, the others in a strip beside
// it. Tiles are placed absolutely from computed rectangles rather than left to CSS, so that
// the sizes reported to the server are exactly the sizes shown.

import { Tile } from './tile.js';
import { icon } from './icons.js';

const ASPECT = 16 / 9;
const GAP = 12;
// Beyond nine, faces get too small to read and the decoding cost grows for nothing.
const MAX_PER_PAGE = 9;
// Below this width the strip goes under the focused tile instead of beside it.
const SIDE_STRIP_MIN_WIDTH = 700;

const key = (participant, source) => `${participant}:${source}`;

export class Grid {
  #tiles = new Map(); // "participant:source" → Tile
  #order = []; // keys, in the order the meeting lists people
  #area;
  #pager;
  #empty;
  #onPin;
  #onLayout;
  #page = 0;
  pinned = null;
  speaker = null;

  // onPin(participant): a tile's pin was clicked. onLayout(): tiles moved, resized or hid.
  constructor(container, { onPin, onLayout }) {
    this.el = container;
    this.#onPin = onPin;
    this.#onLayout = onLayout;
    this.#area = document.createElement('div');
    this.#area.className = 'tiles';
    this.#empty = document.createElement('p');
    this.#empty.className = 'empty';
    this.#empty.textContent = 'Nobody is on stage yet';
    this.#pager = document.createElement('nav');
    this.#pager.className = 'pager';
    this.#pager.setAttribute('aria-label', 'Pages of videos');
    this.#pager.innerHTML =
      `<button type="button" class="prev" aria-label="Previous page">${icon('prev')}</button>` +
      '<span class="page-label"></span>' +
      `<button type="button" class="next" aria-label="Next page">${icon('next')}</button>`;
    this.#pager.querySelector('.prev').addEventListener('click', () => this.showPage(this.#page - 1));
    this.#pager.querySelector('.next').addEventListener('click', () => this.showPage(this.#page + 1));
    container.replaceChildren(this.#area, this.#empty, this.#pager);
    new ResizeObserver(() => this.layout()).observe(this.#area);
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
      const created = new Tile(e.participant, { source: e.source, name: e.name, local: e.local, onPin: this.#onPin });
      this.#tiles.set(k, created);
      this.#area.append(created.el);
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
    for (const tile of this.#tiles.values()) {
      tile.setPinned(tile.participant === pinned);
      tile.setSpeaking(tile.participant === speaker && tile.source === 'camera');
    }
    this.el.dataset.activeSpeaker = speaker ?? '';
    this.layout();
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

  // The tile shown large: a pinned person's screen or camera, else the newest screen share.
  #focusKey() {
    if (this.pinned !== null) {
      for (const source of ['screen', 'camera']) {
        const k = key(this.pinned, source);
        if (this.#tiles.has(k)) return k;
      }
    }
    const screens = this.#order.filter((k) => this.#tiles.get(k)?.source === 'screen');
    return screens.at(-1) ?? null;
  }

  // Everyone but the focused tile, most wanted first: the sharer's own face next to their
  // screen, then whoever speaks, then the pinned, then the rest as listed.
  #ranked(focus) {
    const owner = focus ? this.#tiles.get(focus).participant : null;
    const rank = (k) => {
      const t = this.#tiles.get(k);
      if (t.participant === owner) return 0;
      if (t.participant === this.speaker && t.source === 'camera') return 1;
      if (t.participant === this.pinned) return 2;
      return 3;
    };
    const rest = this.#order.filter((k) => k !== focus && this.#tiles.has(k));
    return rest.map((k, i) => ({ k, r: rank(k), i })).sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.k);
  }

  layout() {
    const { width, height } = this.#area.getBoundingClientRect();
    this.#empty.hidden = this.#tiles.size > 0;
    if (!width || !height) return;
    const focus = this.#focusKey();
    const placed = focus ? this.#focusLayout(focus, width, height) : this.#galleryLayout(width, height);
    for (const [k, tile] of this.#tiles) tile.place(placed.rects.get(k) ?? null);
    this.el.dataset.layout = focus ? 'focus' : 'gallery';
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
    const list = all.length > MAX_PER_PAGE ? this.#ranked(null) : all;
    const { visible, pages } = this.#paginate(list, MAX_PER_PAGE);
    const rects = new Map();
    const n = Math.max(visible.length, 1);
    let best = { cols: 1, w: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const byWidth = (width - GAP * (cols - 1)) / cols;
      const byHeight = ((height - GAP * (rows - 1)) / rows) * ASPECT;
      const w = Math.min(byWidth, byHeight);
      if (w > best.w) best = { cols, w };
    }
    const w = Math.floor(best.w);
    const h = Math.floor(w / ASPECT);
    const rows = Math.ceil(n / best.cols);
    const top = (height - (rows * h + (rows - 1) * GAP)) / 2;
    visible.forEach((k, i) => {
      const row = Math.floor(i / best.cols);
      // The last row, if short, is centred like the others.
      const inRow = Math.min(best.cols, visible.length - row * best.cols);
      const left = (width - (inRow * w + (inRow - 1) * GAP)) / 2;
      const col = i % best.cols;
      rects.set(k, { x: Math.round(left + col * (w + GAP)), y: Math.round(top + row * (h + GAP)), w, h, big: visible.length === 1 });
    });
    return { rects, pages };
  }

  #focusLayout(focus, width, height) {
    const others = this.#ranked(focus);
    const rects = new Map();
    if (others.length === 0) {
      const whole = { x: 0, y: 0, w: Math.floor(width), h: Math.floor(height) };
      rects.set(focus, { ...(this.#tiles.get(focus).source === 'camera' ? fit(whole) : whole), big: true });
      return { rects, pages: 1 };
    }
    const side = width >= SIDE_STRIP_MIN_WIDTH;
    let main;
    let cap;
    let thumb;
    if (side) {
      const stripW = Math.round(Math.min(320, Math.max(160, width * 0.2)));
      thumb = { w: stripW, h: Math.round(stripW / ASPECT) };
      cap = Math.max(1, Math.floor((height + GAP) / (thumb.h + GAP)));
      main = { x: 0, y: 0, w: Math.floor(width - stripW - GAP), h: Math.floor(height) };
    } else {
      const stripH = Math.round(Math.min(120, Math.max(56, height * 0.2)));
      thumb = { w: Math.round(stripH * ASPECT), h: stripH };
      cap = Math.max(1, Math.floor((width + GAP) / (thumb.w + GAP)));
      main = { x: 0, y: 0, w: Math.floor(width), h: Math.floor(height - stripH - GAP) };
    }
    rects.set(focus, { ...(this.#tiles.get(focus).source === 'camera' ? fit(main) : main), big: true });
    const { visible, pages } = this.#paginate(others, cap);
    visible.forEach((k, i) => {
      const at = i * ((side ? thumb.h : thumb.w) + GAP);
      rects.set(k, side ? { x: main.w + GAP, y: at, ...thumb } : { x: at, y: main.h + GAP, ...thumb });
    });
    return { rects, pages };
  }
}

// The largest 16:9 rectangle centred in `r`: a face cropped to a letterbox loses its chin.
function fit(r) {
  const w = Math.floor(Math.min(r.w, r.h * ASPECT));
  const h = Math.floor(w / ASPECT);
  return { x: r.x + Math.round((r.w - w) / 2), y: r.y + Math.round((r.h - h) / 2), w, h };
}
