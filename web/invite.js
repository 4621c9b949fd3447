// Links and keys (rooms): a host or presenter key arrives in a link's #key=, is kept in this
// browser for its room (so a reload or a lost connection brings the host back as host), and
// never stays in the address bar, which shows the invite link once joined.

const keyName = (room) => `confab.key.${room}`;
const sessionName = (room) => `confab.session.${room}`;

// The key for `room`: from the link's fragment (then removed from the address), else kept.
export function takeKey(room) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromLink) localStorage.setItem(keyName(room), fromLink);
  return localStorage.getItem(keyName(room)) ?? undefined;
}

export function keepKey(room, key) {
  if (key) localStorage.setItem(keyName(room), key);
}

// What this tab joined `room` with, so that a reload of the invite link rejoins at once.
export function rememberSession(room, session) {
  sessionStorage.setItem(sessionName(room), JSON.stringify(session));
}

export function rememberedSession(room) {
  try {
    return JSON.parse(sessionStorage.getItem(sessionName(room)) ?? 'null');
  } catch {
    return null;
  }
}

export function inviteLink(room) {
  return `${location.origin}${location.pathname}?room=${encodeURIComponent(room)}`;
}

// The address bar shows only the invite link: no name, role, key or password.
export function showInviteLink(room) {
  history.replaceState(null, '', inviteLink(room));
}

function linkWithKey(room, key) {
  return `${inviteLink(room)}#key=${key}`;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.dataset.copied = text;
    const label = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => (button.textContent = label), 1500);
  } catch {
    // Without clipboard access the link is shown to copy by hand.
    window.prompt('Copy this link', text);
  }
}

// The meeting's room tools: copy the invite (and, for hosts, host and presenter) links, an
// invitation when alone, the password badge and the host's password form.
export function attachRoomTools(view, client, room) {
  const $ = (sel) => view.querySelector(sel);
  const invite = $('#copy-invite');
  const alone = $('#alone');
  const badge = $('#has-password');
  const pwButton = $('#password-button');
  const pwForm = $('#password-form');
  invite.hidden = false;
  invite.addEventListener('click', () => copy(inviteLink(room), invite));
  alone.querySelector('button').addEventListener('click', () => copy(inviteLink(room), alone.querySelector('button')));
  $('#copy-host-link').addEventListener('click', (ev) => copy(linkWithKey(room, client.settings?.host_key), ev.currentTarget));
  $('#copy-presenter-link').addEventListener('click', (ev) =>
    copy(linkWithKey(room, client.settings?.presenter_key), ev.currentTarget),
  );
  pwButton.addEventListener('click', () => {
    pwForm.hidden = !pwForm.hidden;
    if (!pwForm.hidden) pwForm.password.focus();
  });
  pwForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    client.setPassword(pwForm.password.value);
    pwForm.password.value = '';
    pwForm.hidden = true;
  });
  pwForm.querySelector('.remove').addEventListener('click', () => {
    client.setPassword(null);
    pwForm.hidden = true;
  });

  const render = () => {
    const s = client.settings;
    const host = client.isHost;
    badge.hidden = !s?.has_password;
    pwButton.hidden = !host;
    if (!host) pwForm.hidden = true;
    $('#copy-host-link').hidden = !(host && s?.host_key);
    $('#copy-presenter-link').hidden = !(host && s?.presenter_key && s.mode === 'webinar');
    alone.hidden = !client.me || client.participants.size > 0;
  };
  client.on('settings', (s) => {
    // A host (or co-host) keeps the host key: a reload brings them back as host.
    if (s.host_key) keepKey(room, s.host_key);
    render();
  });
  for (const event of ['joined', 'participants']) client.on(event, render);
}
