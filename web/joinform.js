// The join form: pick a room and a name while checking yourself in a camera preview.

import { captureCameraAndMicrophone, stopStream } from './media.js';
import { rememberPassword } from './password.js';
import { rememberSession } from './invite.js';

const NAME_KEY = 'confab.name';

// params: the page's URLSearchParams; everything not on the form (a token, say) is carried into
// the meeting link.
export function showJoinForm(view, params) {
  const form = view.querySelector('form');
  const preview = view.querySelector('video');
  const note = view.querySelector('.preview-note');
  // A join token names its holder; asking again would only be overruled.
  const token = params.get('token');
  form.querySelector('.name-field').hidden = Boolean(token);
  form.name.required = !token;
  form.room.value = params.get('room') ?? '';
  form.name.value = params.get('name') ?? localStorage.getItem(NAME_KEY) ?? '';
  const role = params.get('role');
  if ([...form.role.options].some((o) => o.value === role)) form.role.value = role;
  form.webinar.checked = params.get('mode') === 'webinar';
  if (params.get('role') || params.get('mode')) form.querySelector('.options').open = true;
  view.hidden = false;
  (form.room.value && !token ? form.name : form.room).focus();

  let stream = null;
  let leaving = false;
  const startPreview = () => {
    if (stream || leaving) return;
    note.textContent = '';
    captureCameraAndMicrophone().then(
      (s) => {
        // The user may have submitted, or chosen to only watch, before the camera answered.
        if (leaving || form.role.value === 'audience') return stopStream(s);
        stream = s;
        preview.srcObject = s;
        note.textContent = s.getVideoTracks().length ? '' : 'No camera found';
      },
      (err) => {
        note.textContent = err.name === 'NotAllowedError' ? 'Camera access was refused' : 'Camera unavailable';
      },
    );
  };
  const stopPreview = () => {
    stopStream(stream);
    stream = null;
    preview.srcObject = null;
    note.textContent = 'Watching only: no camera or microphone';
  };
  // The audience never sends, so it is never asked for the camera, not even for a preview.
  const syncPreview = () => (form.role.value === 'audience' ? stopPreview() : startPreview());
  form.role.addEventListener('change', syncPreview);
  syncPreview();

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = form.room.value.trim();
    const name = form.name.value.trim();
    if (!room || (!name && !token)) return;
    if (name) localStorage.setItem(NAME_KEY, name);
    leaving = true;
    stopStream(stream);
    // Navigating (instead of joining in place) to the invite link, with the rest kept in this
    // tab, rejoins on reload yet never puts a name, role or token in the address bar.
    rememberSession(room, {
      name: token ? undefined : name,
      token: token ?? undefined,
      role: form.role.value || undefined,
      mode: form.webinar.checked ? 'webinar' : undefined,
    });
    if (form.password.value) rememberPassword(room, form.password.value);
    location.assign(`${location.pathname}?room=${encodeURIComponent(room)}`);
  });

  // New meeting: the server makes a room with an unguessable name and gives its links.
  const links = view.querySelector('#new-links');
  view.querySelector('#new-meeting').addEventListener('click', async () => {
    const res = await fetch('new-meeting', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ mode: form.webinar.checked ? 'webinar' : 'meeting' }),
    }).catch(() => null);
    const body = await res?.json().catch(() => null);
    if (!res?.ok || !body?.host_link) {
      note.textContent = body?.error?.message ?? 'Could not create a meeting';
      return;
    }
    form['host-link'].value = body.host_link;
    form['invite-link'].value = body.invite_link;
    form['presenter-link'].value = body.presenter_link ?? '';
    links.querySelector('.presenter-row').hidden = !body.presenter_link;
    form.room.value = body.room;
    links.hidden = false;
  });
  view.querySelector('#start-meeting').addEventListener('click', () => {
    const name = form.name.value.trim();
    if (!name) return form.name.focus();
    localStorage.setItem(NAME_KEY, name);
    leaving = true;
    stopStream(stream);
    rememberSession(form.room.value, { name });
    location.assign(form['host-link'].value);
  });
}
