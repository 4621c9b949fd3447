// Entry point. Every link shows the pre-join screen (joinform.js) first; a tab that went through
// it for this room (a reload, a reconnect) joins at once, and so does a link with a room, a name
// (or a join token, which carries the name) and prejoin=0 (kiosks, presentation laptops). Link
// parameters:
//   room, name, role=audience (asking for more grants nothing), token=JWT, mode=webinar|meeting
//   (used only when a host opens the room), password, screen=1 (share the screen right after
//   joining: a presentation laptop), prejoin=0 (skip the pre-join screen; also accepted as
//   #prejoin=0); #key=… (a host or presenter link's key, see invite.js).

import { Banner } from './banner.js';
import { showJoinForm } from './joinform.js';
import { startMeeting } from './meeting.js';
import { rememberedPassword } from './password.js';
import { rememberSession, rememberedSession, takeKey } from './invite.js';
import { isReady } from './ready.js';
import { loadPrefs } from './prefs.js';

const ROLES = new Set(['host', 'presenter', 'audience']);
const MODES = new Set(['meeting', 'webinar']);

const params = new URLSearchParams(location.search);
const get = (k) => params.get(k)?.trim() || undefined;
const room = get('room');
// A key is kept for its room and taken out of the address bar at once.
const key = room ? takeKey(room) : undefined;
const skipPrejoin = get('prejoin') === '0' || new URLSearchParams(location.hash.slice(1)).get('prejoin') === '0';
const ready = room ? isReady(room) : false;
if (location.hash) history.replaceState(null, '', `${location.pathname}${location.search}`);
const session = room ? rememberedSession(room) : null;
const name = get('name') ?? session?.name;
const token = get('token') ?? session?.token;
const role = ROLES.has(get('role')) ? get('role') : session?.role;
const mode = MODES.has(get('mode')) ? get('mode') : session?.mode;
const banner = new Banner(document.getElementById('banner'));

let client = null;
if (room && (name || token) && (ready || skipPrejoin)) {
  rememberSession(room, { name, token, role, mode });
  const prefs = loadPrefs();
  client = startMeeting(banner, {
    room,
    name,
    token,
    key,
    role,
    mode,
    password: rememberedPassword(room) ?? get('password'),
    shareScreen: get('screen') === '1',
    // What the pre-join screen chose; a skipped one joins with both on, as a kiosk expects.
    startMuted: ready ? { microphone: Boolean(prefs.micOff), camera: Boolean(prefs.camOff) } : undefined,
  });
} else {
  document.body.dataset.state = 'form';
  showJoinForm(document.getElementById('join-view'), params);
}

// A stable handle for the end-to-end tests and for poking at a live call from the console.
/** @type {any} */ (window).confab = {
  client,
  state: {
    get view() {
      return document.body.dataset.state;
    },
    get me() {
      return client?.me ?? null;
    },
    get participants() {
      return client ? [...client.participants.values()] : [];
    },
  },
};
