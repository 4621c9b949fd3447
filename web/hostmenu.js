// Host tools: a menu on each tile (mute, ask to unmute, stop video, pin for everyone, move to
// the audience, make co-host, remove) and the control bar's host menu (start a poll, mute
// everyone, the join-muted setting). Nothing here turns anyone's microphone or camera on:
// hosts can only ask.

/** @typedef {import('./client.js').ConfabClient} ConfabClient */

/**
 * @param {HTMLElement} view the meeting view
 * @param {ConfabClient} client
 * @param {{bar: HTMLElement, openPollForm: () => void, confirm: (text: string) => boolean}} opts
 */
export function attachHostMenu(view, client, { bar, openPollForm, confirm }) {
  const grid = /** @type {HTMLElement} */ (view.querySelector('#grid'));
  const tools = client.tools;

  // The tile menus, added to each remote camera tile while we are a host.
  const decorate = () => {
    for (const tile of grid.querySelectorAll('.tile[data-source="camera"]:not([data-local])')) {
      let button = /** @type {HTMLButtonElement | null} */ (tile.querySelector(':scope > .host-menu-button'));
      if (!client.isHost) {
        button?.remove();
        tile.querySelector(':scope > .host-menu')?.remove();
        continue;
      }
      if (button) continue;
      const id = Number(/** @type {HTMLElement} */ (tile).dataset.participant);
      button = document.createElement('button');
      button.type = 'button';
      button.className = 'host-menu-button';
      button.setAttribute('aria-haspopup', 'true');
      button.setAttribute('aria-expanded', 'false');
      button.setAttribute('aria-label', `Host actions for ${client.participants.get(id)?.name ?? 'this person'}`);
      button.textContent = '⋮';
      button.addEventListener('click', () => toggleTileMenu(/** @type {HTMLElement} */ (tile), id));
      tile.append(button);
    }
  };
  // Tiles sit in the grid's own containers and come and go with its layout.
  new MutationObserver(decorate).observe(grid, { childList: true, subtree: true });
  for (const event of ['participants', 'settings', 'joined']) client.on(event, decorate);

  /**
   * @param {HTMLElement} tile
   * @param {number} id
   */
  function toggleTileMenu(tile, id) {
    const open = tile.querySelector(':scope > .host-menu');
    const button = tile.querySelector(':scope > .host-menu-button');
    closeMenus();
    if (open) return;
    const p = client.participants.get(id);
    if (!p) return;
    const muted = client.mutedOf(id);
    /** @type {Array<[string, string, () => void]>} */
    const items = [];
    if (muted.microphone === false) items.push(['mute-microphone', 'Mute', () => client.muteParticipant(id, 'microphone')]);
    else items.push(['ask-microphone', 'Ask to unmute', () => tools.askUnmute(id, 'microphone')]);
    if (muted.camera === false) items.push(['mute-camera', 'Stop video', () => client.muteParticipant(id, 'camera')]);
    else items.push(['ask-camera', 'Ask to start video', () => tools.askUnmute(id, 'camera')]);
    if (tools.spotlight === id) items.push(['spotlight-off', 'Remove the spotlight', () => tools.setSpotlight(null)]);
    else items.push(['spotlight', 'Pin for everyone', () => tools.setSpotlight(id)]);
    if (p.role !== 'host') items.push(['cohost', 'Make co-host', () => client.setRole(id, 'host')]);
    items.push(['demote', 'Move to the audience', () => client.setRole(id, 'audience')]);
    items.push([
      'remove',
      'Remove from the meeting',
      () => confirm(`Remove ${p.name}? They cannot come back to this meeting.`) && client.removeParticipant(id),
    ]);
    const menu = document.createElement('div');
    menu.className = 'menu host-menu';
    menu.setAttribute('role', 'menu');
    menu.setAttribute('aria-label', `Host actions for ${p.name}`);
    for (const [action, label, run] of items) {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('role', 'menuitem');
      b.dataset.action = action;
      b.textContent = label;
      if (action === 'remove') b.className = 'danger-text';
      b.addEventListener('click', () => {
        closeMenus();
        run();
      });
      menu.append(b);
    }
    menu.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        closeMenus();
        /** @type {HTMLElement | null} */ (button)?.focus();
      }
    });
    tile.append(menu);
    button?.setAttribute('aria-expanded', 'true');
    /** @type {HTMLElement | null} */ (menu.querySelector('button'))?.focus();
  }

  function closeMenus() {
    for (const m of view.querySelectorAll('.host-menu')) m.remove();
    for (const b of view.querySelectorAll('.host-menu-button')) b.setAttribute('aria-expanded', 'false');
  }
  document.addEventListener('click', (ev) => {
    const target = /** @type {Element} */ (ev.target);
    if (!target.closest('.host-menu, .host-menu-button')) closeMenus();
  });

  // The control bar's host menu.
  const group = document.createElement('div');
  group.className = 'host-tools-group';
  group.hidden = true;
  group.innerHTML = `
    <button id="host-tools" type="button" class="round" aria-haspopup="true" aria-expanded="false"
      aria-label="Host tools" title="Host tools"><span aria-hidden="true">★</span></button>
    <div class="menu host-tools-menu" role="menu" hidden>
      <button type="button" role="menuitem" data-action="poll">Start a poll</button>
      <button type="button" role="menuitem" data-action="mute-all">Mute everyone else</button>
      <form class="join-muted">
        <label>Join muted from <input name="above" type="number" min="0" max="10000" inputmode="numeric"
          aria-describedby="join-muted-hint" /> people</label>
        <button type="submit" class="pill">Save</button>
        <p id="join-muted-hint" class="hint">Newcomers start with their microphone off once this many are in. Empty: never.</p>
      </form>
    </div>`;
  const toggle = /** @type {HTMLButtonElement} */ (group.querySelector('#host-tools'));
  const menu = /** @type {HTMLElement} */ (group.querySelector('.host-tools-menu'));
  const setting = /** @type {HTMLFormElement} */ (group.querySelector('.join-muted'));
  const above = /** @type {HTMLInputElement} */ (setting.querySelector('input'));
  const show = (/** @type {boolean} */ on) => {
    menu.hidden = !on;
    toggle.setAttribute('aria-expanded', String(on));
    if (on) above.value = String(client.settings?.join_muted_above ?? '');
  };
  toggle.addEventListener('click', () => show(menu.hidden));
  menu.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      show(false);
      toggle.focus();
    }
  });
  group.querySelector('[data-action="poll"]')?.addEventListener('click', () => {
    show(false);
    openPollForm();
  });
  group.querySelector('[data-action="mute-all"]')?.addEventListener('click', () => {
    show(false);
    tools.muteAll();
  });
  setting.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = above.value.trim() === '' ? null : Math.max(0, Math.min(10_000, Math.round(Number(above.value))));
    tools.setJoinMuted(Number.isFinite(n) ? n : null);
    show(false);
  });
  document.addEventListener('click', (ev) => {
    if (!menu.hidden && !(/** @type {Element} */ (ev.target).closest('.host-tools-group'))) show(false);
  });
  bar.append(group);
  const sync = () => {
    group.hidden = !client.isHost;
    if (!client.isHost) show(false);
  };
  for (const event of ['participants', 'settings', 'joined']) client.on(event, sync);
}
