// The people panel: who waits in the lobby, whose hand is up (in the order they raised it),
// who is on stage and who watches, and for hosts the buttons that act on each of them.

import { icon } from './icons.js';

export class Roster {
  #root;
  #onAction;
  #expanded = null; // whose host actions are unfolded; survives the re-render of every change
  #last = null;

  // onAction(action, participantId): promote, demote, mute-microphone, mute-camera, remove,
  // admit, refuse.
  constructor(root, { onAction }) {
    this.#root = root;
    this.#onAction = onAction;
    root.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-action]');
      if (!button) return;
      const id = Number(button.dataset.id);
      if (button.dataset.action === 'more') {
        this.#expanded = this.#expanded === id ? null : id;
        this.render(this.#last);
        // The list is rebuilt: the focus goes to the new button, not to the page.
        this.#focusMore(id);
        return;
      }
      this.#expanded = null;
      this.#onAction(button.dataset.action, id);
    });
    // Escape folds the open actions back and leaves the focus on their "more" button.
    root.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Escape' || this.#expanded === null) return;
      const id = this.#expanded;
      this.#expanded = null;
      this.render(this.#last);
      this.#focusMore(id);
    });
  }

  /** @param {number} id */
  #focusMore(id) {
    /** @type {HTMLElement | null} */ (this.#root.querySelector(`button[data-action="more"][data-id="${id}"]`))?.focus();
  }

  // state: {people: [{id, name, role, you, muted}], hands: [id], lobby: [{id, name}], host: bool}.
  // Rebuilt whole on every change, which is simpler than patching and cheap at these sizes.
  render(state) {
    this.#last = state;
    const { people, hands, lobby, host } = state;
    const byId = new Map(people.map((p) => [p.id, p]));
    const stage = people.filter((p) => p.role !== 'audience');
    const audience = people.filter((p) => p.role === 'audience');
    const $ = (sel) => this.#root.querySelector(sel);

    $('#people-count').textContent = String(people.length);

    const lobbySection = $('.lobby');
    lobbySection.hidden = !host || lobby.length === 0;
    lobbySection.querySelector('ul').replaceChildren(
      ...lobby.map((w) => {
        const li = row(w.name);
        li.dataset.waiting = String(w.id);
        li.append(actionButton('admit', w.id, 'Admit', 'primary-small'), actionButton('refuse', w.id, 'Deny'));
        return li;
      }),
    );

    const raised = hands.map((id) => byId.get(id)).filter(Boolean);
    const handSection = $('.hands');
    handSection.hidden = raised.length === 0;
    handSection.querySelector('ol').replaceChildren(
      ...raised.map((p) => {
        const li = row(p.name, p.you);
        li.dataset.hand = String(p.id);
        if (host && p.role === 'audience') li.append(actionButton('promote', p.id, 'Bring to stage', 'primary-small'));
        return li;
      }),
    );

    $('.stage-list').replaceChildren(...stage.map((p) => this.#person(p, host, hands)));
    $('.audience-list').replaceChildren(...audience.map((p) => this.#person(p, host, hands)));
    // In a meeting where everyone is on stage the headings would only add noise.
    const split = audience.length > 0;
    $('.stage-head').hidden = !split;
    $('.audience-head').hidden = !split;
    $('.audience-head .count').textContent = String(audience.length);
  }

  #person(p, host, hands) {
    const li = row(p.name, p.you);
    li.dataset.participant = String(p.id);
    if (p.role === 'host') li.querySelector('.name').after(badge('host'));
    if (hands.includes(p.id)) li.append(Object.assign(document.createElement('span'), { className: 'hand-up', innerHTML: icon('hand', 'hand raised') }));
    if (p.role !== 'audience') {
      const state = document.createElement('span');
      state.className = 'media-state';
      state.innerHTML =
        mediaIcon(p.muted.microphone, 'mic', 'micOff', 'microphone') + mediaIcon(p.muted.camera, 'cam', 'camOff', 'camera');
      if (p.muted.screen !== undefined) state.insertAdjacentHTML('afterbegin', `<span class="sharing">${icon('screen', 'sharing a screen')}</span>`);
      li.append(state);
    }
    if (!host || p.you) return li;
    const more = actionButton('more', p.id, '', 'more');
    more.innerHTML = icon('more', `Actions for ${p.name}`);
    more.setAttribute('aria-expanded', String(this.#expanded === p.id));
    li.append(more);
    if (this.#expanded !== p.id) return li;
    const actions = document.createElement('div');
    actions.className = 'person-actions';
    if (p.role === 'audience') {
      actions.append(actionButton('promote', p.id, 'Bring to stage'));
    } else {
      if (p.muted.microphone === false) actions.append(actionButton('mute-microphone', p.id, 'Mute'));
      if (p.muted.camera === false) actions.append(actionButton('mute-camera', p.id, 'Stop video'));
      actions.append(actionButton('demote', p.id, 'Move to audience'));
    }
    actions.append(actionButton('remove', p.id, 'Remove', 'danger-small'));
    li.append(actions);
    return li;
  }
}

function row(name, you = false) {
  const li = document.createElement('li');
  const span = document.createElement('span');
  span.className = 'name';
  span.textContent = name;
  li.append(span);
  if (you) li.append(badge('you', 'you'));
  return li;
}

function badge(text, cls = 'role') {
  const span = document.createElement('span');
  span.className = cls;
  span.textContent = text;
  return span;
}

function actionButton(action, id, label, cls = 'small') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.dataset.action = action;
  b.dataset.id = String(id);
  b.textContent = label;
  return b;
}

function mediaIcon(muted, on, off, what) {
  if (muted === undefined) return `<span class="absent">${icon(off, `no ${what}`)}</span>`;
  return muted ? `<span class="muted">${icon(off, `${what} muted`)}</span>` : `<span>${icon(on, `${what} on`)}</span>`;
}
