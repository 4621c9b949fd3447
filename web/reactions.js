// Reactions: a picker in the control bar, and each reaction floating over its sender's tile
// for a few seconds (or, for someone without a tile, in a corner of the stage with their name).

import { REACTIONS } from './tools.js';

const SHOWN_MS = 4_000;
const MAX_FLOATING = 30; // on screen at once; older ones go first

/**
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 * @param {HTMLElement} bar where the reactions button goes
 */
export function attachReactions(view, client, bar) {
  const group = document.createElement('div');
  group.className = 'reactions-group';
  group.innerHTML =
    '<button id="react" type="button" class="round" aria-expanded="false" aria-haspopup="true" aria-label="Send a reaction" title="Send a reaction">' +
    '<span aria-hidden="true">☺</span></button><div class="menu reaction-picker" role="menu" hidden></div>';
  const button = /** @type {HTMLButtonElement} */ (group.querySelector('#react'));
  const picker = /** @type {HTMLElement} */ (group.querySelector('.reaction-picker'));
  for (const emoji of REACTIONS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'menuitem');
    b.dataset.emoji = emoji;
    b.setAttribute('aria-label', `React ${emoji}`);
    b.textContent = emoji;
    b.addEventListener('click', () => client.tools.react(emoji));
    picker.append(b);
  }
  const open = (/** @type {boolean} */ on) => {
    picker.hidden = !on;
    button.setAttribute('aria-expanded', String(on));
  };
  button.addEventListener('click', () => open(picker.hidden));
  picker.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      open(false);
      button.focus();
    }
  });
  document.addEventListener('click', (ev) => {
    if (!picker.hidden && !(/** @type {Element} */ (ev.target).closest('.reactions-group'))) open(false);
  });
  bar.append(group);

  const corner = document.createElement('div');
  corner.className = 'reaction-corner';
  corner.setAttribute('aria-live', 'polite');
  view.querySelector('.stage')?.append(corner);

  client.tools.on('reaction', ({ participant, emoji }) => {
    const tile = view.querySelector(`#grid .tile[data-participant="${participant}"][data-source="camera"]`);
    const el = document.createElement('span');
    el.className = 'reaction';
    el.dataset.participant = String(participant);
    if (tile && !(/** @type {HTMLElement} */ (tile).hidden)) {
      el.textContent = emoji;
      el.setAttribute('role', 'img');
      el.setAttribute('aria-label', `${nameOf(client, participant)} reacted ${emoji}`);
      tile.append(el);
    } else {
      el.textContent = `${emoji} ${nameOf(client, participant)}`;
      corner.append(el);
      while (corner.childElementCount > MAX_FLOATING) corner.firstElementChild?.remove();
    }
    setTimeout(() => el.remove(), SHOWN_MS);
  });
}

/**
 * @param {import('./client.js').ConfabClient} client
 * @param {number} id
 */
export function nameOf(client, id) {
  if (id === client.me?.id) return 'You';
  return client.participants.get(id)?.name ?? 'Someone';
}
