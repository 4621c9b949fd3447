// The participant list: everyone in the room, you first, with what they have muted.

import { icon } from './icons.js';

// entries: [{id, name, role, you, muted: {microphone, camera}}]; rebuilt whole on every change,
// which is simpler than patching and cheap at meeting sizes.
export function renderRoster(list, countEl, entries) {
  const items = entries.map((p) => {
    const li = document.createElement('li');
    li.dataset.participant = String(p.id);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = p.name;
    li.append(name);
    if (p.you) li.insertAdjacentHTML('beforeend', '<span class="you">you</span>');
    if (p.role === 'host') li.insertAdjacentHTML('beforeend', '<span class="role">host</span>');
    const state = document.createElement('span');
    state.className = 'media-state';
    state.innerHTML = mediaIcon(p.muted.microphone, 'mic', 'micOff', 'microphone') + mediaIcon(p.muted.camera, 'cam', 'camOff', 'camera');
    li.append(state);
    return li;
  });
  list.replaceChildren(...items);
  countEl.textContent = String(entries.length);
}

function mediaIcon(muted, on, off, what) {
  if (muted === undefined) return `<span class="absent">${icon(off, `no ${what}`)}</span>`;
  return muted ? `<span class="muted">${icon(off, `${what} muted`)}</span>` : `<span>${icon(on, `${what} on`)}</span>`;
}
