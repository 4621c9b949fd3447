// Camera, microphone and speaker pickers with a microphone level bar, used on the pre-join screen and in the call's device dialog.

import { showLevel } from './meter.js';

const KINDS = /** @type {const} */ ([
  ['camera', 'videoinput', 'Camera'],
  ['microphone', 'audioinput', 'Microphone'],
  ['speaker', 'audiooutput', 'Speaker'],
]);

// Speakers can be chosen only where audio elements can be routed (not Firefox ESR, not Safari).
export const canPickSpeaker = () => 'setSinkId' in HTMLMediaElement.prototype;

export class DevicePicker {
  #root;
  /** @type {Record<string, HTMLSelectElement>} */
  #selects = {};
  #bar;
  #stopLevel = () => {};
  #onDeviceChange = () => this.refresh();

  /**
   * @param {HTMLElement} root an empty container the pickers are built in
   * @param {{onChange: (kind: 'camera' | 'microphone' | 'speaker', deviceId: string) => void}} handlers
   */
  constructor(root, { onChange }) {
    this.#root = root;
    root.classList.add('device-picker');
    for (const [kind, , title] of KINDS) {
      const label = document.createElement('label');
      label.className = `device-${kind}`;
      label.append(title);
      const select = document.createElement('select');
      select.name = kind;
      select.addEventListener('change', () => onChange(kind, select.value));
      label.append(select);
      root.append(label);
      this.#selects[kind] = select;
      if (kind === 'microphone') {
        this.#bar = document.createElement('div');
        this.#bar.className = 'level';
        this.#bar.setAttribute('role', 'meter');
        this.#bar.setAttribute('aria-label', 'Microphone level');
        this.#bar.setAttribute('aria-valuemin', '0');
        this.#bar.setAttribute('aria-valuemax', '100');
        this.#bar.setAttribute('aria-valuenow', '0');
        this.#bar.append(document.createElement('span'));
        root.append(this.#bar);
      }
    }
    this.#selects.speaker.parentElement.hidden = !canPickSpeaker();
    navigator.mediaDevices?.addEventListener('devicechange', this.#onDeviceChange);
  }

  // Fills the lists (names show only once the user allowed the camera or microphone) and
  // selects `current`: kind → deviceId.
  /** @param {{camera?: string, microphone?: string, speaker?: string}} [current] */
  async refresh(current) {
    const devices = (await navigator.mediaDevices?.enumerateDevices().catch(() => [])) ?? [];
    for (const [kind, deviceKind, title] of KINDS) {
      const select = this.#selects[kind];
      const chosen = current?.[kind] ?? select.value;
      const found = devices.filter((d) => d.kind === deviceKind);
      select.replaceChildren(
        ...found.map((d, i) => {
          const option = document.createElement('option');
          option.value = d.deviceId;
          option.textContent = d.label || `${title} ${i + 1}`;
          return option;
        }),
      );
      if (!found.length) select.append(new Option(`No ${title.toLowerCase()} found`, ''));
      if (found.some((d) => d.deviceId === chosen)) select.value = chosen;
      select.disabled = !found.length;
    }
  }

  /** @param {'camera' | 'microphone' | 'speaker'} kind */
  value(kind) {
    return this.#selects[kind].value || undefined;
  }

  // Which microphone the level bar listens to (null: none).
  /** @param {MediaStreamTrack | null} track */
  listen(track) {
    this.#stopLevel();
    this.#stopLevel = showLevel(this.#bar, track);
  }

  /** @param {{camera?: boolean, microphone?: boolean}} shown */
  show({ camera = true, microphone = true }) {
    this.#selects.camera.parentElement.hidden = !camera;
    this.#selects.microphone.parentElement.hidden = !microphone;
    this.#bar.hidden = !microphone;
  }

  close() {
    this.#stopLevel();
    navigator.mediaDevices?.removeEventListener('devicechange', this.#onDeviceChange);
  }
}
