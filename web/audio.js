// Everyone's sound: one <audio> element per received audio track, kept apart from the tiles
// because a voice must be heard whether or not its tile is on the page being watched.

export class AudioOut {
  #container;
  #onBlocked;
  #elements = new Map(); // track id → <audio>

  // onBlocked: the browser refuses to play sound until the user clicks something.
  constructor(container, { onBlocked }) {
    this.#container = container;
    this.#onBlocked = onBlocked;
  }

  // tracks: [{trackId, track}], every remote audio track we receive.
  sync(tracks) {
    const wanted = new Set();
    for (const { trackId, track } of tracks) {
      wanted.add(trackId);
      let el = this.#elements.get(trackId);
      if (el?.srcObject?.getAudioTracks()[0] === track) continue;
      if (!el) {
        el = document.createElement('audio');
        el.autoplay = true;
        el.dataset.track = String(trackId);
        this.#elements.set(trackId, el);
        this.#container.append(el);
      }
      el.srcObject = new MediaStream([track]);
      this.#play(el);
    }
    for (const [trackId, el] of this.#elements) {
      if (wanted.has(trackId)) continue;
      el.srcObject = null;
      el.remove();
      this.#elements.delete(trackId);
    }
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
