// The join form: pick a room and a name while checking yourself in a camera preview.

import { captureCameraAndMicrophone, stopStream } from './media.js';

const NAME_KEY = 'confab.name';

// params: the page's URLSearchParams; everything but room and name is carried into the meeting
// link, so role and token survive the form.
export function showJoinForm(view, params) {
  const form = view.querySelector('form');
  const preview = view.querySelector('video');
  const note = view.querySelector('.preview-note');
  form.room.value = params.get('room') ?? '';
  form.name.value = params.get('name') ?? localStorage.getItem(NAME_KEY) ?? '';
  view.hidden = false;
  (form.room.value ? form.name : form.room).focus();

  let stream = null;
  let leaving = false;
  captureCameraAndMicrophone().then(
    (s) => {
      // The user may have submitted before the camera answered.
      if (leaving) return stopStream(s);
      stream = s;
      preview.srcObject = s;
      note.textContent = s.getVideoTracks().length ? '' : 'No camera found';
    },
    (err) => {
      note.textContent = err.name === 'NotAllowedError' ? 'Camera access was refused' : 'Camera unavailable';
    },
  );

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = form.room.value.trim();
    const name = form.name.value.trim();
    if (!room || !name) return;
    localStorage.setItem(NAME_KEY, name);
    leaving = true;
    stopStream(stream);
    // Navigating (instead of joining in place) makes the address a link that rejoins on reload.
    const next = new URLSearchParams(params);
    next.set('room', room);
    next.set('name', name);
    location.assign(`${location.pathname}?${next}`);
  });
}
