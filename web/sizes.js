// Tells the server how large each remote video is drawn, so it sends the simulcast layer that
// fits and nothing for videos nobody can see (another page, a hidden tab).

// Layouts settle in a burst of resizes (window drag, panel opening); one report per burst.
const DEBOUNCE_MS = 300;

export class SizeReporter {
  #measure;
  #send;
  #timer = null;

  // measure(): Map trackId → height in device pixels. send(sizes): passes it on.
  constructor({ measure, send }) {
    this.#measure = measure;
    this.#send = send;
    document.addEventListener('visibilitychange', () => this.schedule());
  }

  schedule() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#report(), DEBOUNCE_MS);
  }

  #report() {
    const sizes = this.#measure();
    if (document.visibilityState === 'hidden') {
      for (const id of sizes.keys()) sizes.set(id, 0);
    }
    this.#send(sizes);
  }
}
