// The view buttons in the meeting's top bar: speaker or gallery view, full screen, sounds for
// notices, and the list of keyboard shortcuts. Each a <button> with a stable name; the toggles
// say their state with aria-pressed.

import { icon } from './icons.js';

/**
 * @param {HTMLElement} bar where the buttons go (the top bar's end)
 * @param {import('./grid.js').Grid} grid
 * @param {import('./notify.js').Sounds} sounds
 * @param {() => void} openShortcuts
 */
export function attachViewTools(bar, grid, sounds, openShortcuts) {
  const make = (id, iconName, label) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = id;
    b.className = 'view-tool';
    b.innerHTML = icon(iconName);
    b.setAttribute('aria-label', label);
    b.title = label;
    return b;
  };
  const layout = make('layout-toggle', 'speaker', 'Speaker view');
  const fullscreen = make('fullscreen-toggle', 'fullscreen', 'Full screen');
  const bell = make('sounds-toggle', 'bell', 'Notification sounds');
  const keys = make('shortcuts-button', 'keyboard', 'Keyboard shortcuts');

  const paint = () => {
    layout.setAttribute('aria-pressed', String(grid.view === 'speaker'));
    layout.innerHTML = icon(grid.view === 'speaker' ? 'gallery' : 'speaker');
    layout.title = grid.view === 'speaker' ? 'Speaker view (on): switch to gallery' : 'Speaker view (off): switch from gallery';
    fullscreen.setAttribute('aria-pressed', String(document.fullscreenElement === document.documentElement));
    bell.setAttribute('aria-pressed', String(sounds.enabled));
  };
  layout.addEventListener('click', () => {
    grid.toggleView();
    paint();
  });
  fullscreen.addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  document.addEventListener('fullscreenchange', paint);
  bell.addEventListener('click', () => {
    sounds.setEnabled(!sounds.enabled);
    paint();
  });
  keys.addEventListener('click', openShortcuts);
  // Full screen is missing on iPhones: no button that cannot work.
  fullscreen.hidden = !document.documentElement.requestFullscreen;
  bar.prepend(layout, fullscreen, bell, keys);
  paint();
  return { paint };
}
