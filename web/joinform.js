// The join form: pick a room and a name while checking yourself in a camera preview.

import { captureCameraAndMicrophone, stopStream } from './media.js';
import { rememberPassword } from './password.js';

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
    // Navigating (instead of joining in place) makes the address a link that rejoins on reload.
    const next = new URLSearchParams(params);
    next.set('room', room);
    if (name && !token) next.set('name', name);
    setOrDelete(next, 'role', form.role.value);
    setOrDelete(next, 'mode', form.webinar.checked ? 'webinar' : '');
    if (form.password.value) rememberPassword(room, form.password.value);
    next.delete('password');
    location.assign(`${location.pathname}?${next}`);
  });
}

function setOrDelete(params, key, value) {
  if (value) params.set(key, value);
  else params.delete(key);
}
