// Whether this tab has been through the pre-join screen for a room: then its link (and a reload) joins at once.

const readyName = (room) => `confab.ready.${room}`;

/** @param {string} room */
export function markReady(room) {
  sessionStorage.setItem(readyName(room), '1');
}

/** @param {string} room */
export function isReady(room) {
  return sessionStorage.getItem(readyName(room)) === '1';
}
