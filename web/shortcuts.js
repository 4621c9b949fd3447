// Keyboard shortcuts, and the "?" dialog that lists them. They press the same buttons a click
// would, so they do exactly what the buttons do; none fires while typing in a field.

// key → what it does, the button it presses (by id), and its line in the list.
const KEYS = [
  { key: 'm', button: 'mic', says: 'Turn the microphone on or off' },
  { key: 'v', button: 'cam', says: 'Turn the camera on or off' },
  { key: 'h', button: 'hand', says: 'Raise or lower your hand' },
  { key: 'l', button: 'layout-toggle', says: 'Switch between gallery and speaker view' },
  { key: 'f', button: 'fullscreen-toggle', says: 'Full screen on or off' },
  { key: 'c', button: 'chat-toggle', says: 'Open or close the chat' },
  { key: 'p', button: 'people-toggle', says: 'Open or close the list of people' },
  { key: '?', button: 'shortcuts-button', says: 'Show this list' },
];

function typing(target) {
  const el = /** @type {HTMLElement} */ (target);
  return Boolean(el?.closest?.('input, textarea, select, [contenteditable=""], [contenteditable="true"]'));
}

// Builds the dialog (once) and listens for the keys. Returns the dialog's opener.
export function attachShortcuts() {
  const dialog = document.createElement('dialog');
  dialog.className = 'shortcuts-dialog';
  dialog.setAttribute('aria-labelledby', 'shortcuts-title');
  const title = document.createElement('h2');
  title.id = 'shortcuts-title';
  title.textContent = 'Keyboard shortcuts';
  const list = document.createElement('dl');
  for (const { key, says } of KEYS) {
    const dt = document.createElement('dt');
    const kbd = document.createElement('kbd');
    kbd.textContent = key.toUpperCase();
    dt.append(kbd);
    const dd = document.createElement('dd');
    dd.textContent = says;
    list.append(dt, dd);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'primary-small';
  close.textContent = 'Close';
  close.addEventListener('click', () => dialog.close());
  dialog.append(title, list, close);
  document.body.append(dialog);
  const open = () => {
    if (!dialog.open) dialog.showModal();
  };

  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing || ev.repeat) return;
    if (typing(ev.target) || dialog.open) return;
    if (document.body.dataset.state !== 'joined') return;
    const entry = KEYS.find((k) => k.key === ev.key.toLowerCase());
    if (!entry) return;
    if (entry.key === '?') {
      ev.preventDefault();
      open();
      return;
    }
    const button = /** @type {HTMLButtonElement | null} */ (document.getElementById(entry.button));
    if (!button || button.hidden || button.disabled) return;
    ev.preventDefault();
    button.click();
  });
  return { open, dialog };
}
