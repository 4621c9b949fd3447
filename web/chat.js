// The chat panel: the room's messages, oldest first, and a box to write one.

export class ChatPanel {
  #log;
  #form;
  #error;

  // onSend(text): returns why it cannot be sent, or null once it is on its way.
  constructor(root, { onSend }) {
    this.#log = root.querySelector('.chat-log');
    this.#form = root.querySelector('form');
    this.#error = root.querySelector('.talk-error');
    const input = this.#form.elements.text;
    this.#form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const problem = onSend(input.value);
      // A refusal from the server stays up until one of ours gets through (see add()).
      if (problem) this.showError(problem);
      else input.value = '';
    });
    // Enter sends, Shift+Enter breaks the line, as in every chat people know.
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.#form.requestSubmit();
      }
    });
  }

  setEntries(entries, myId) {
    this.#log.replaceChildren(...entries.map((e) => entryElement(e, myId)));
    this.#scrollToEnd();
  }

  add(entry, myId) {
    if (entry.from === myId) this.showError(null);
    // Only follow new messages if the reader was already at the bottom, not reading history.
    const atEnd = this.#log.scrollTop + this.#log.clientHeight >= this.#log.scrollHeight - 8;
    this.#log.append(entryElement(entry, myId));
    if (atEnd || entry.from === myId) this.#scrollToEnd();
  }

  showError(message) {
    this.#error.textContent = message ?? '';
    this.#error.hidden = !message;
  }

  #scrollToEnd() {
    this.#log.scrollTop = this.#log.scrollHeight;
  }
}

function entryElement(entry, myId) {
  const li = document.createElement('li');
  li.className = 'chat-entry';
  li.dataset.from = String(entry.from);
  li.dataset.entry = String(entry.id);
  if (entry.from === myId) li.dataset.mine = 'true';
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = entry.from === myId ? 'You' : entry.name;
  const text = document.createElement('p');
  text.className = 'text';
  text.textContent = entry.text;
  li.append(who, text);
  return li;
}
