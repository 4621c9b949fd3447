// What this browser remembers between meetings: the chosen camera, microphone and speaker, and whether to join muted.

const KEY = 'confab.devices';

/**
 * @typedef {{camera?: string, microphone?: string, speaker?: string,
 *   micOff?: boolean, camOff?: boolean}} Prefs
 */

/** @returns {Prefs} */
export function loadPrefs() {
  try {
    const prefs = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    return prefs && typeof prefs === 'object' ? prefs : {};
  } catch {
    return {};
  }
}

/** @param {Prefs} change */
export function savePrefs(change) {
  localStorage.setItem(KEY, JSON.stringify({ ...loadPrefs(), ...change }));
}
