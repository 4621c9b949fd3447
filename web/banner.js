// The error banner across the top of the page.

export class Banner {
  #root;
  #text;
  #action;
  #run = null;

  constructor(root) {
    this.#root = root;
    this.#text = root.querySelector('#error');
    this.#action = root.querySelector('.banner-action');
    this.#action.addEventListener('click', () => this.#run?.());
    root.querySelector('.banner-close').addEventListener('click', () => this.hide());
  }

  // action: optional {label, run} offering the way out, e.g. rejoining.
  show(message, action = null) {
    this.#text.textContent = message;
    this.#run = action?.run ?? null;
    this.#action.hidden = !action;
    if (action) this.#action.textContent = action.label;
    this.#root.hidden = false;
  }

  hide() {
    this.#root.hidden = true;
  }
}
