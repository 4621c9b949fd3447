// Notices during a meeting: who joined or left (a burst of arrivals makes one notice, not a
// flood), raised hands for hosts, chat previews while the chat is closed, a count of new
// questions on the Q&A button, unread counts in the tab title, and optional sounds (off unless
// chosen; tones made with WebAudio, no sound files).

// How long a notice stays, and how long arrivals keep joining the same notice.
const SHOW_MS = 6_000;
const HAND_SHOW_MS = 10_000;
const COALESCE_MS = 4_000;
const MAX_SHOWN = 4;
const PREVIEW_CHARS = 80;
// Above this many people, comings and goings are news only to hosts (a big webinar's audience
// would otherwise watch a stream of names).
const BIG_ROOM = 50;
const SOUNDS_KEY = 'confab:sounds';

// A stack of notices, read out by screen readers as they come.
export class Notices {
  #root;

  constructor() {
    this.#root = document.createElement('div');
    this.#root.className = 'notices';
    this.#root.setAttribute('role', 'log');
    this.#root.setAttribute('aria-live', 'polite');
    this.#root.setAttribute('aria-label', 'Notifications');
    document.body.append(this.#root);
  }

  // Shows `text` (never HTML) with an optional action button; returns a handle whose text can
  // be changed while it shows. kind: a name for styling and tests.
  /** @param {string} text @param {{kind?: string, action?: {label: string, run: () => void}, ms?: number}} [opts] */
  show(text, { kind = 'info', action, ms = SHOW_MS } = {}) {
    const el = document.createElement('div');
    el.className = 'notice';
    el.dataset.kind = kind;
    const body = document.createElement('span');
    body.className = 'notice-text';
    body.textContent = text;
    el.append(body);
    if (action) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'notice-action';
      button.textContent = action.label;
      button.addEventListener('click', () => {
        action.run();
        el.remove();
      });
      el.append(button);
    }
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'notice-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => el.remove());
    el.append(close);
    this.#root.append(el);
    while (this.#root.children.length > MAX_SHOWN) this.#root.firstElementChild.remove();
    let timer = setTimeout(() => el.remove(), ms);
    return {
      el,
      /** @param {string} t */
      update: (t) => {
        body.textContent = t;
        if (!el.isConnected) this.#root.append(el);
        clearTimeout(timer);
        timer = setTimeout(() => el.remove(), ms);
      },
    };
  }
}

// Short tones for what happened, if the person asked for them.
export class Sounds {
  /** @type {AudioContext | null} */
  #ctx = null;
  enabled = localStorage.getItem(SOUNDS_KEY) === 'on';

  // Called from a click: browsers let audio start only after one.
  /** @param {boolean} on */
  setEnabled(on) {
    this.enabled = on;
    localStorage.setItem(SOUNDS_KEY, on ? 'on' : 'off');
    if (on) this.play('chat');
  }

  /** @param {'join' | 'leave' | 'chat' | 'hand'} kind */
  play(kind) {
    if (!this.enabled) return;
    const notes = { join: [523, 784], leave: [784, 523], chat: [988], hand: [698, 698] }[kind];
    try {
      this.#ctx ??= new AudioContext();
      const ctx = this.#ctx;
      if (ctx.state === 'suspended') ctx.resume().catch(() => {});
      notes.forEach((freq, i) => {
        const start = ctx.currentTime + i * 0.16;
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.15, start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.14);
        osc.connect(gain).connect(ctx.destination);
        osc.start(start);
        osc.stop(start + 0.15);
      });
    } catch (err) {
      console.warn('confab: cannot play a notification sound', err);
    }
  }
}

// "Ana joined", "Ana and Bo joined", "Ana and 7 others joined".
/** @param {string[]} names @param {string} verb */
export function coalesced(names, verb) {
  if (names.length === 1) return `${names[0]} ${verb}`;
  if (names.length === 2) return `${names[0]} and ${names[1]} ${verb}`;
  return `${names[0]} and ${names.length - 1} others ${verb}`;
}

/**
 * Wires the notices to a meeting. panel: the side panel (open, show(name)). Returns
 * {notices, sounds, panelChanged()}: call panelChanged() whenever the side panel opens or closes.
 * @param {import('./client.js').ConfabClient} client
 * @param {{open: string | null, show: (name: string | null) => void}} panel
 */
export function attachNotices(client, panel) {
  const notices = new Notices();
  const sounds = new Sounds();
  const baseTitle = document.title;
  let known = null; // participant id → name, once joined
  let hands = [];
  let seenQuestions = null;
  let unreadChat = 0;
  let newQuestions = 0;
  const bursts = { joined: null, left: null }; // {names, handle, until}
  const qnaButton = document.getElementById('qna-toggle');
  const qnaBadge = document.createElement('span');
  qnaBadge.className = 'unread';
  qnaBadge.hidden = true;

  const reading = (name) => panel.open === name && document.visibilityState === 'visible';

  function paint() {
    const total = unreadChat + newQuestions;
    document.title = total ? `(${total > 99 ? '99+' : total}) ${baseTitle}` : baseTitle;
    // The button's icon is drawn after this is wired, replacing what it held.
    if (qnaButton && !qnaBadge.isConnected) qnaButton.append(qnaBadge);
    qnaBadge.hidden = newQuestions === 0;
    qnaBadge.textContent = String(newQuestions);
    qnaButton?.setAttribute('aria-label', newQuestions ? `Questions, ${newQuestions} new` : 'Questions');
  }

  function panelChanged() {
    if (reading('chat')) unreadChat = 0;
    if (reading('qna')) newQuestions = 0;
    paint();
  }

  /** @param {'joined' | 'left'} verb @param {string} name */
  function arrival(verb, name) {
    if (client.participants.size + 1 > BIG_ROOM && !client.isHost) return;
    const now = Date.now();
    const burst = bursts[verb];
    if (burst && burst.until > now && burst.handle.el.isConnected) {
      burst.names.push(name);
      burst.until = now + COALESCE_MS;
      burst.handle.update(coalesced(burst.names, verb));
      return;
    }
    const handle = notices.show(coalesced([name], verb), { kind: verb });
    bursts[verb] = { names: [name], handle, until: now + COALESCE_MS };
    sounds.play(verb === 'joined' ? 'join' : 'leave');
  }

  client.on('joined', () => {
    known = new Map([...client.participants.values()].map((p) => [p.id, p.name]));
    hands = [...client.hands];
    seenQuestions = new Set(client.questions.map((q) => q.id));
  });
  client.on('participants', () => {
    if (!known) return;
    const now = new Map([...client.participants.values()].map((p) => [p.id, p.name]));
    for (const [id, name] of now) if (!known.has(id)) arrival('joined', name);
    for (const [id, name] of known) if (!now.has(id)) arrival('left', name);
    known = now;
  });
  client.on('hands', () => {
    const raised = client.hands.filter((id) => !hands.includes(id) && id !== client.me?.id);
    hands = [...client.hands];
    if (!client.isHost || raised.length === 0) return;
    const names = raised.map((id) => client.participants.get(id)?.name ?? 'Someone');
    notices.show(coalesced(names, names.length === 1 ? 'raised a hand' : 'raised hands'), {
      kind: 'hand',
      ms: HAND_SHOW_MS,
      action: { label: 'Show', run: () => panel.show('people') },
    });
    sounds.play('hand');
  });
  client.on('chat', (entry) => {
    if (entry.from === client.me?.id || reading('chat')) return;
    unreadChat += 1;
    paint();
    if (panel.open === 'chat') return; // open but the tab is hidden: the title says it
    const text = entry.text.length > PREVIEW_CHARS ? `${entry.text.slice(0, PREVIEW_CHARS)}…` : entry.text;
    notices.show(`${entry.name}: ${text}`, { kind: 'chat', action: { label: 'Reply', run: () => panel.show('chat') } });
    sounds.play('chat');
  });
  client.on('questions', () => {
    if (!seenQuestions) return;
    for (const q of client.questions) {
      if (seenQuestions.has(q.id)) continue;
      seenQuestions.add(q.id);
      if (q.from !== client.me?.id && !reading('qna')) newQuestions += 1;
    }
    paint();
  });
  document.addEventListener('visibilitychange', panelChanged);

  return { notices, sounds, panelChanged };
}
