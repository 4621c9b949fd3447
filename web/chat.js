// The chat panel: the room's messages, oldest first, and a box to write one. Nothing anyone
// writes is ever parsed as HTML: text goes in as text, and only http(s) addresses become links,
// which open in a new tab without telling it where they came from.

// An address: up to the first space or character that cannot be part of one in running text.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// Punctuation that ends a sentence rather than an address ("see https://x.org/a.").
const TRAILING = /[.,;:!?)\]}]+$/;
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

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
    // The server stamps nothing: a live message is stamped when it arrives.
    entry = { at: Date.now(), ...entry };
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
  const head = document.createElement('div');
  head.className = 'chat-head';
  head.append(who);
  if (typeof entry.at === 'number') {
    const at = new Date(entry.at);
    const time = document.createElement('time');
    time.className = 'at';
    time.dateTime = at.toISOString();
    time.textContent = TIME.format(at);
    head.append(time);
  }
  const text = document.createElement('p');
  text.className = 'text';
  text.append(...linkified(entry.text));
  li.append(head, text);
  return li;
}

// The text as nodes: text nodes, and <a> for each http(s) address in it.
export function linkified(text) {
  const nodes = [];
  let from = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const address = match[0].replace(TRAILING, '');
    const href = safeHref(address);
    if (!href) continue;
    if (match.index > from) nodes.push(document.createTextNode(text.slice(from, match.index)));
    const a = document.createElement('a');
    a.href = href;
    a.textContent = address;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    nodes.push(a);
    from = match.index + address.length;
  }
  if (from < text.length) nodes.push(document.createTextNode(text.slice(from)));
  return nodes;
}

function safeHref(address) {
  try {
    const url = new URL(address);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}
