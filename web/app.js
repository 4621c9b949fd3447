// Entry point. A link with a room and a name (or a join token, which carries the name) joins at
// once, as does a reload of a room this tab joined; anything else shows the join form. Link
// parameters:
//   room, name, role=audience (asking for more grants nothing), token=JWT, mode=webinar|meeting
//   (used only when a host opens the room), password, screen=1 (share the screen right after
//   joining: a presentation laptop); #key=… (a host or presenter link's key, see invite.js).

import { Banner } from './banner.js';
import { showJoinForm } from './joinform.js';
import { startMeeting } from './meeting.js';
import { rememberedPassword } from './password.js';
import { rememberSession, rememberedSession, takeKey } from './invite.js';

const ROLES = new Set(['host', 'presenter', 'audience']);
const MODES = new Set(['meeting', 'webinar']);

const params = new URLSearchParams(location.search);
const get = (k) => params.get(k)?.trim() || undefined;
const room = get('room');
// A key is kept for its room and taken out of the address bar at once.
const key = room ? takeKey(room) : undefined;
if (location.hash) history.replaceState(null, '', `${location.pathname}${location.search}`);
const session = room ? rememberedSession(room) : null;
const name = get('name') ?? session?.name;
const token = get('token') ?? session?.token;
const role = ROLES.has(get('role')) ? get('role') : session?.role;
const mode = MODES.has(get('mode')) ? get('mode') : session?.mode;
const banner = new Banner(document.getElementById('banner'));

let client = null;
if (room && (name || token)) {
  rememberSession(room, { name, token, role, mode });
  client = startMeeting(banner, {
    room,
    name,
    token,
    key,
    role,
    mode,
    password: rememberedPassword(room) ?? get('password'),
    shareScreen: get('screen') === '1',
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
