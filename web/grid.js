// The tile grid: which tiles exist, and how large they can be so all of them fit the screen.

import { Tile } from './tile.js';

const ASPECT = 16 / 9;
const GAP = 12;

export class Grid {
  #tiles = new Map(); // participant id → Tile

  constructor(container, { onAudioBlocked }) {
    this.el = container;
    this.onAudioBlocked = onAudioBlocked;
    new ResizeObserver(() => this.layout()).observe(container);
  }

  get(id) {
    return this.#tiles.get(id);
  }

  ensure(id, { name, local = false }) {
    let tile = this.#tiles.get(id);
    if (tile) {
      tile.setName(name);
      return tile;
    }
    tile = new Tile(id, { name, local, onAudioBlocked: this.onAudioBlocked });
    this.#tiles.set(id, tile);
    // The local tile stays first, where people expect to find themselves.
    if (local) this.el.prepend(tile.el);
    else this.el.append(tile.el);
    this.layout();
    return tile;
  }

  // Drops every tile whose participant is not in `ids`.
  retain(ids) {
    for (const [id, tile] of this.#tiles) {
      if (ids.has(id)) continue;
      tile.el.remove();
      this.#tiles.delete(id);
    }
    this.layout();
  }

  playAllAudio() {
    return Promise.all([...this.#tiles.values()].map((t) => t.playAudio()));
  }

  // Picks the column count that gives the largest 16:9 tiles, rather than letting CSS wrap,
  // so that six people on a laptop screen do not end up in one long scrolling column.
  layout() {
    const n = Math.max(this.#tiles.size, 1);
    const { width, height } = this.el.getBoundingClientRect();
    if (!width || !height) return;
    let best = { cols: 1, tileWidth: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const byWidth = (width - GAP * (cols - 1)) / cols;
      const byHeight = ((height - GAP * (rows - 1)) / rows) * ASPECT;
      const tileWidth = Math.min(byWidth, byHeight);
      if (tileWidth > best.tileWidth) best = { cols, tileWidth };
    }
    this.el.style.setProperty('--cols', best.cols);
    this.el.style.setProperty('--tile-width', `${Math.floor(best.tileWidth)}px`);
  }
}
