// A minimal event emitter, so the session modules (signal, room, engine, client) stay free of
// the DOM (EventTarget would tie listeners to Event objects and make them awkward to drive
// outside a page).
export class Emitter {
  #handlers = new Map();

  on(name, fn) {
    if (!this.#handlers.has(name)) this.#handlers.set(name, new Set());
    this.#handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    this.#handlers.get(name)?.delete(fn);
  }

  emit(name, payload) {
    for (const fn of [...(this.#handlers.get(name) ?? [])]) {
      // One broken listener must not stop the others or the protocol handling that emitted.
      try {
        fn(payload);
      } catch (err) {
        console.error(`confab: "${name}" listener failed`, err);
      }
    }
  }
}
