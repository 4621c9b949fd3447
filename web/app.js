// Entry point: a link with a room and a name joins at once; anything else shows the join form.

import { Banner } from './banner.js';
import { showJoinForm } from './joinform.js';
import { startMeeting } from './meeting.js';

const params = new URLSearchParams(location.search);
const room = params.get('room')?.trim();
const name = params.get('name')?.trim();
const banner = new Banner(document.getElementById('banner'));

let client = null;
if (room && name) {
  client = startMeeting(document.getElementById('meeting-view'), banner, {
    room,
    name,
    role: params.get('role') || undefined,
    token: params.get('token') || undefined,
  });
} else {
  document.body.dataset.state = 'form';
  showJoinForm(document.getElementById('join-view'), params);
}

// A stable handle for the end-to-end tests and for poking at a live call from the console.
window.confab = {
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
