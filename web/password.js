// The room password: asked for when the server refuses the one given (or its absence), kept
// for this tab only (sessionStorage) so reloading or rejoining does not ask again, and kept
// out of the address bar and history.

const key = (room) => `confab.password.${room}`;

export function rememberedPassword(room) {
  return sessionStorage.getItem(key(room)) ?? undefined;
}

export function rememberPassword(room, password) {
  sessionStorage.setItem(key(room), password);
}

// tried: whether a password was sent, which makes this "wrong" rather than "missing".
export function askForPassword(view, room, { tried }) {
  const form = view.querySelector('form');
  view.querySelector('.password-note').textContent = tried
    ? 'That password is not the right one. Try again.'
    : `Ask the host of “${room}” for it.`;
  view.hidden = false;
  form.password.focus();
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    rememberPassword(room, form.password.value);
    const params = new URLSearchParams(location.search);
    params.delete('password');
    location.replace(`${location.pathname}?${params}`);
  });
}
