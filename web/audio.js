// Everyone's sound: one <audio> element per receiving audio slot, kept apart from the tiles
// because a voice must be heard whether or not its tile is on the page being watched. Keyed
// by the receiver's track, so a slot passing to another voice keeps playing without a gap.

export class AudioOut {
  #container;
  #onBlocked;
  #elements = new Map(); // receiver's MediaStreamTrack id → <audio>
  #sink = ''; // the chosen speaker's deviceId ('' is the system default)

  // onBlocked: the browser refuses to play sound until the user clicks something.
  constructor(container, { onBlocked }) {
    this.#container = container;
    this.#onBlocked = onBlocked;
  }

  // tracks: [{trackId, track}], every remote audio track we receive.
  sync(tracks) {
    const wanted = new Set();
    for (const { trackId, track } of tracks) {
      wanted.add(track.id);
      let el = this.#elements.get(track.id);
      if (!el) {
        el = document.createElement('audio');
        el.autoplay = true;
        el.srcObject = new MediaStream([track]);
        this.#elements.set(track.id, el);
        this.#container.append(el);
        if (this.#sink) this.#route(el);
        this.#play(el);
      }
      el.dataset.track = String(trackId);
    }
    for (const [key, el] of this.#elements) {
      if (wanted.has(key)) continue;
      el.srcObject = null;
      el.remove();
      this.#elements.delete(key);
    }
  }

  // Plays every voice on the speaker `deviceId`, where the browser can choose (setSinkId).
  /** @param {string} deviceId */
  setSink(deviceId) {
    this.#sink = deviceId ?? '';
    for (const el of this.#elements.values()) this.#route(el);
  }

  #route(el) {
    if (!('setSinkId' in el)) return;
    /** @type {any} */ (el).setSinkId(this.#sink).catch((err) => console.warn('confab: could not choose the speaker', err));
  }

  playAll() {
    return Promise.all([...this.#elements.values()].map((el) => this.#play(el)));
  }

  #play(el) {
    return el.play().catch((err) => {
      if (err.name === 'NotAllowedError') this.#onBlocked();
    });
  }
}
