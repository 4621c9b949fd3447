// Devices during the call: the device dialog (switch camera, microphone, speaker live), the "You are muted" hint, and falling back when a device is unplugged.

import { DevicePicker } from './devicepicker.js';
import { captureDevice } from './media.js';
import { loadPrefs, savePrefs } from './prefs.js';
import { LevelMeter } from './meter.js';
import { icon } from './icons.js';

// Speech, not breath or a fan: this level held for this many checks shows the hint.
const SPEAKING_LEVEL = 0.12;
const SPEAKING_CHECKS = 3;
const CHECK_EVERY_MS = 200;
const HINT_FOR_MS = 4_000;

const NAMES = { microphone: 'microphone', camera: 'camera' };

/**
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 * @param {{audio: import('./audio.js').AudioOut, toast: (text: string) => void}} parts
 */
export function attachDevices(view, client, { audio, toast }) {
  const button = /** @type {HTMLButtonElement} */ (view.querySelector('#devices'));
  const dialog = /** @type {HTMLDialogElement} */ (view.querySelector('#devices-dialog'));
  const note = dialog.querySelector('.devices-note');
  button.innerHTML = icon('settings');
  const prefs = loadPrefs();
  if (prefs.speaker) audio.setSink(prefs.speaker);

  const picker = new DevicePicker(dialog.querySelector('.devices'), {
    onChange: async (kind, deviceId) => {
      note.textContent = '';
      if (kind === 'speaker') {
        savePrefs({ speaker: deviceId });
        audio.setSink(deviceId);
        return;
      }
      try {
        const track = await captureDevice(kind, deviceId);
        if (await client.switchDevice(kind, track)) savePrefs({ [kind]: deviceId });
      } catch (err) {
        note.textContent = `Could not switch the ${NAMES[kind]}: ${err.message || err.name}`;
      }
    },
  });
  const current = () => ({
    camera: client.localTrack('camera')?.getSettings().deviceId,
    microphone: client.localTrack('microphone')?.getSettings().deviceId,
    speaker: loadPrefs().speaker,
  });
  button.addEventListener('click', () => {
    note.textContent = '';
    picker.refresh(current());
    picker.show({ camera: client.canPublish('camera'), microphone: client.canPublish('microphone') });
    picker.listen(client.localTrack('microphone'));
    dialog.showModal();
  });
  // Escape and "Done" both close the dialog; the browser gives the focus back to the button.
  dialog.addEventListener('close', () => picker.listen(null));
  // A device switched in the dialog or after an unplug: the bar follows the new microphone.
  client.on('local', () => {
    if (dialog.open) picker.listen(client.localTrack('microphone'));
  });

  // A device unplugged mid-call ends its track: take another of the same kind and say so.
  const watched = new WeakSet();
  const watch = () => {
    for (const source of /** @type {const} */ (['microphone', 'camera'])) {
      const track = client.localTrack(source);
      if (!track || watched.has(track)) continue;
      watched.add(track);
      track.addEventListener('ended', () => fallBack(source, track));
    }
  };
  const fallBack = async (source, lost) => {
    if (client.ended || client.localTrack(source) !== lost) return;
    try {
      const track = await captureDevice(source, undefined);
      if (await client.switchDevice(source, track)) {
        toast(`Your ${NAMES[source]} was disconnected; now using ${track.label || 'another one'}`);
      }
    } catch {
      toast(`Your ${NAMES[source]} was disconnected and no other was found`);
    }
    picker.refresh(current());
  };
  client.on('local', watch);

  // "You are muted": a muted microphone is still listened to (a clone, never sent), and
  // speaking into it shows the hint near the button.
  const hint = /** @type {HTMLElement} */ (view.querySelector('#muted-hint'));
  /** @type {LevelMeter | null} */
  let meter = null;
  /** @type {MediaStreamTrack | null} */
  let meterTrack = null;
  let loud = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let hideTimer;
  const check = () => {
    const track = client.localTrack('microphone');
    const listen = Boolean(track) && client.muted.microphone && !client.ended;
    if (!listen || track !== meterTrack) {
      meter?.stop();
      meter = null;
      meterTrack = null;
      loud = 0;
    }
    if (listen && !meter) {
      meter = new LevelMeter(track);
      meterTrack = track;
    }
    if (!listen) hint.hidden = true;
    if (meter) {
      loud = meter.level > SPEAKING_LEVEL ? loud + 1 : 0;
      if (loud >= SPEAKING_CHECKS) {
        hint.hidden = false;
        clearTimeout(hideTimer);
        hideTimer = setTimeout(() => (hint.hidden = true), HINT_FOR_MS);
      }
    }
    if (!client.ended) setTimeout(check, CHECK_EVERY_MS);
    else meter?.stop();
  };
  check();
}
