// Tells the server how large each remote video is drawn, so it sends the simulcast layer that
// fits and nothing for videos nobody can see (another page, a hidden tab).

// Layouts settle in a burst of resizes (window drag, panel opening); one report per burst.
const DEBOUNCE_MS = 300;

export class SizeReporter {
  #measure;
  #shown;
  #send;
  #timer = null;

  // measure(): Map trackId → height in device pixels (0: not visible). shown(): Set of the
  // track ids whose tiles are on the page. send(sizes, shown): passes both on. A hidden tab
  // reports every size as 0 but keeps what is on its page, so coming back needs no
  // renegotiation.
  constructor({ measure, shown, send }) {
    this.#measure = measure;
    this.#shown = shown;
    this.#send = send;
    document.addEventListener('visibilitychange', () => this.schedule());
  }

  schedule() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#report(), DEBOUNCE_MS);
  }

  #report() {
    const sizes = this.#measure();
    const shown = this.#shown();
    if (document.visibilityState === 'hidden') {
      for (const id of sizes.keys()) sizes.set(id, 0);
    }
    this.#send(sizes, shown);
  }
}
