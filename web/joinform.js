// The pre-join screen: the room (typed, or fixed by the link), the name, a camera preview,
// camera/microphone/speaker pickers with a level bar, and camera and microphone toggles to join
// muted. Choices are remembered in this browser (prefs.js). Joining navigates to the room's
// link with the choices kept in this tab, so a reload rejoins at once (app.js).

import { captureCameraAndMicrophone, stopStream } from './media.js';
import { rememberPassword } from './password.js';
import { rememberSession } from './invite.js';
import { loadPrefs, savePrefs } from './prefs.js';
import { DevicePicker } from './devicepicker.js';
import { icon } from './icons.js';
import { markReady } from './ready.js';

const NAME_KEY = 'confab.name';

// params: the page's URLSearchParams; everything not on the form (a token, say) is carried into
// the meeting link. A link that names a room fixes it: only the rest is asked.
export function showJoinForm(view, params) {
  const form = view.querySelector('form');
  const preview = view.querySelector('video');
  const note = view.querySelector('.preview-note');
  const fixedRoom = params.get('room');
  // A join token names its holder; asking again would only be overruled.
  const token = params.get('token');
  form.querySelector('.name-field').hidden = Boolean(token);
  form.name.required = !token;
  form.room.value = fixedRoom ?? '';
  form.querySelector('.room-field').hidden = Boolean(fixedRoom);
  view.querySelector('#new-meeting').hidden = Boolean(fixedRoom);
  const heading = view.querySelector('.join-room');
  heading.hidden = !fixedRoom;
  heading.textContent = fixedRoom ? `Ready to join ${fixedRoom}?` : '';
  form.name.value = params.get('name') ?? localStorage.getItem(NAME_KEY) ?? '';
  const role = params.get('role');
  if ([...form.role.options].some((o) => o.value === role)) form.role.value = role;
  form.webinar.checked = params.get('mode') === 'webinar';
  // A password in the link is kept for this room, not shown in the address after joining.
  form.password.value = params.get('password') ?? '';
  if (params.get('role') || params.get('mode')) form.querySelector('.options').open = true;
  view.hidden = false;
  (form.room.value && !token ? form.name : form.room).focus();
  if (fixedRoom) showRecording(view.querySelector('.recording-note'), fixedRoom);

  const prefs = loadPrefs();
  const off = { microphone: Boolean(prefs.micOff), camera: Boolean(prefs.camOff) };
  const micButton = view.querySelector('#pre-mic');
  const camButton = view.querySelector('#pre-cam');
  const picker = new DevicePicker(view.querySelector('.devices'), {
    onChange: (kind, deviceId) => {
      savePrefs({ [kind]: deviceId });
      if (kind !== 'speaker') restartPreview();
    },
  });
  picker.refresh(prefs);

  let stream = null;
  let leaving = false;
  let asked = 0; // a newer request wins over an older one still waiting for the camera
  const paintToggles = () => {
    paint(micButton, off.microphone, 'mic', 'micOff');
    paint(camButton, off.camera, 'cam', 'camOff');
    preview.hidden = off.camera;
    if (stream) for (const t of stream.getTracks()) t.enabled = !(t.kind === 'audio' ? off.microphone : off.camera);
    if (stream?.getVideoTracks().length) note.textContent = off.camera ? 'Your camera is off' : '';
  };
  const startPreview = () => {
    if (stream || leaving) return;
    note.textContent = '';
    const ticket = ++asked;
    captureCameraAndMicrophone({ camera: picker.value('camera') ?? prefs.camera, microphone: picker.value('microphone') ?? prefs.microphone }).then(
      (s) => {
        // The user may have submitted, or chosen to only watch, before the camera answered.
        if (leaving || ticket !== asked || form.role.value === 'audience') return stopStream(s);
        stream = s;
        preview.srcObject = s;
        note.textContent = s.getVideoTracks().length ? '' : 'No camera found';
        picker.listen(s.getAudioTracks()[0] ?? null);
        // Device names are readable now that the user allowed them.
        picker.refresh({ camera: s.getVideoTracks()[0]?.getSettings().deviceId, microphone: s.getAudioTracks()[0]?.getSettings().deviceId });
        paintToggles();
      },
      (err) => {
        if (ticket !== asked) return;
        note.textContent = err.name === 'NotAllowedError' ? 'Camera access was refused' : 'Camera unavailable';
      },
    );
  };
  const stopPreview = (text = 'Watching only: no camera or microphone') => {
    asked++;
    picker.listen(null);
    stopStream(stream);
    stream = null;
    preview.srcObject = null;
    note.textContent = text;
  };
  const restartPreview = () => {
    stopPreview('');
    syncPreview();
  };
  // The audience never sends, so it is never asked for the camera, not even for a preview.
  const syncPreview = () => {
    const watching = form.role.value === 'audience';
    view.querySelector('.preview-toggles').hidden = watching;
    picker.show({ camera: !watching, microphone: !watching });
    return watching ? stopPreview() : startPreview();
  };
  form.role.addEventListener('change', syncPreview);
  for (const [button, source] of [
    [micButton, 'microphone'],
    [camButton, 'camera'],
  ]) {
    button.addEventListener('click', () => {
      off[source] = !off[source];
      savePrefs(source === 'microphone' ? { micOff: off.microphone } : { camOff: off.camera });
      paintToggles();
    });
  }
  paintToggles();
  syncPreview();

  const leave = () => {
    leaving = true;
    picker.close();
    stopStream(stream);
    savePrefs({ camera: picker.value('camera'), microphone: picker.value('microphone'), speaker: picker.value('speaker') });
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = form.room.value.trim();
    const name = form.name.value.trim();
    if (!room || (!name && !token)) return;
    if (name) localStorage.setItem(NAME_KEY, name);
    leave();
    // Navigating (instead of joining in place) to the invite link, with the rest kept in this
    // tab, rejoins on reload yet never puts a name, role or token in the address bar.
    rememberSession(room, {
      name: token ? undefined : name,
      token: token ?? undefined,
      role: form.role.value || undefined,
      mode: form.webinar.checked ? 'webinar' : undefined,
    });
    markReady(room);
    if (form.password.value) rememberPassword(room, form.password.value);
    const next = new URLSearchParams({ room });
    // A presentation laptop's link shares the screen once in.
    if (params.get('screen') === '1') next.set('screen', '1');
    location.assign(`${location.pathname}?${next}`);
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
    leave();
    rememberSession(form.room.value, { name });
    markReady(form.room.value);
    location.assign(form['host-link'].value);
  });
}

// A toggle keeps its name; aria-pressed says whether it is on (here: muted or off).
function paint(button, isOff, on, offIcon) {
  button.setAttribute('aria-pressed', String(isOff));
  button.innerHTML = icon(isOff ? offIcon : on);
}

// The recording notice: a room that records says so before anyone joins. A server without
// the status endpoint (404) or an unreachable one shows nothing.
async function showRecording(el, room) {
  const res = await fetch(`api/rooms/${encodeURIComponent(room)}/status`, { cache: 'no-store' }).catch(() => null);
  const body = res?.ok ? await res.json().catch(() => null) : null;
  el.hidden = body?.recording !== true;
}
