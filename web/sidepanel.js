// The side panel: people, chat or questions, one at a time, each opened by its button in the
// control bar; chat counts what arrived while it was closed.

const NARROW = '(max-width: 760px)';

export class SidePanel {
  #panel;
  #buttons; // panel name → toggle button
  #sections; // panel name → section
  #onChange;
  #unread = 0;
  open = null;

  // onChange(): the panel opened or closed, so the stage changed size.
  constructor(panel, buttons, { onChange }) {
    this.#panel = panel;
    this.#buttons = buttons;
    this.#onChange = onChange;
    this.#sections = new Map([...panel.querySelectorAll('[data-panel]')].map((s) => [s.dataset.panel, s]));
    for (const [name, button] of Object.entries(buttons)) {
      button.addEventListener('click', () => this.show(this.open === name ? null : name));
    }
    // On a phone a panel would cover the videos, so there it starts closed.
    this.show(matchMedia(NARROW).matches ? null : 'people');
  }

  show(name) {
    this.open = name;
    this.#panel.hidden = name === null;
    for (const [n, section] of this.#sections) section.hidden = n !== name;
    for (const [n, button] of Object.entries(this.#buttons)) button.setAttribute('aria-pressed', String(n === name));
    if (name === 'chat') this.#setUnread(0);
    this.#onChange();
  }

  chatArrived() {
    if (this.open !== 'chat') this.#setUnread(this.#unread + 1);
  }

  #setUnread(n) {
    this.#unread = n;
    const badge = this.#buttons.chat.querySelector('.unread');
    badge.hidden = n === 0;
    badge.textContent = n > 99 ? '99+' : String(n);
  }
}
