// Entry point. A link with a room and a name (or a join token, which carries the name) joins at
// once; anything else shows the join form. Link parameters:
//   room, name, role=audience|presenter|host, token=JWT, mode=webinar|meeting,
//   password, screen=1 (share the screen right after joining: a presentation laptop).

import { Banner } from './banner.js';
import { showJoinForm } from './joinform.js';
import { startMeeting } from './meeting.js';
import { rememberedPassword } from './password.js';

const ROLES = new Set(['host', 'presenter', 'audience']);
const MODES = new Set(['meeting', 'webinar']);

const params = new URLSearchParams(location.search);
const get = (k) => params.get(k)?.trim() || undefined;
const room = get('room');
const name = get('name');
const token = get('token');
const banner = new Banner(document.getElementById('banner'));

let client = null;
if (room && (name || token)) {
  client = startMeeting(banner, {
    room,
    name,
    token,
    role: ROLES.has(get('role')) ? get('role') : undefined,
    mode: MODES.has(get('mode')) ? get('mode') : undefined,
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
