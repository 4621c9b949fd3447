// The meeting screen: wires the client's events to the grid, the participant list and the controls.

import { ConfabClient } from './client.js';
import { Grid } from './grid.js';
import { renderRoster } from './roster.js';
import { icon } from './icons.js';

export function startMeeting(view, banner, { room, name, role, token }) {
  const $ = (sel) => view.querySelector(sel);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const client = new ConfabClient({ url, room, name, role, token });
  const soundButton = $('#sound');
  const grid = new Grid($('#grid'), { onAudioBlocked: () => (soundButton.hidden = false) });
  const streams = new Map(); // participant id → latest MediaStream, kept until their tile exists
  const rejoin = { label: 'Rejoin', run: () => location.reload() };
  // The way out of a fatal error: rejoining cannot fix what the user typed.
  const remedy = {
    invalid_room: { label: 'Choose another room', run: () => backToForm('room') },
    invalid_name: { label: 'Change name', run: () => backToForm('name') },
    unauthorized: null,
    removed: null,
    refused: null,
    wrong_password: null,
  };

  view.hidden = false;
  $('#room-name').textContent = room;
  document.title = `${room} · confab`;
  setState('connecting');
  setupControls();

  function localMuted() {
    return {
      microphone: client.canPublish('microphone') ? client.muted.microphone : undefined,
      camera: client.canPublish('camera') ? client.muted.camera : undefined,
    };
  }

  function refresh() {
    if (!client.me) return;
    const me = { ...client.me, you: true, muted: localMuted() };
    const others = [...client.participants.values()].map((p) => ({ ...p, you: false, muted: client.mutedOf(p.id) }));
    for (const p of [me, ...others]) {
      const tile = grid.ensure(p.id, { name: p.name, local: p.you });
      tile.setMuted(p.muted);
      if (streams.has(p.id)) tile.setStream(streams.get(p.id));
    }
    const present = new Set([me.id, ...others.map((p) => p.id)]);
    grid.retain(present);
    for (const id of streams.keys()) if (!present.has(id)) streams.delete(id);
    renderRoster($('#people'), $('#people-count'), [me, ...others]);
    updateButtons();
  }

  client.on('waiting', () => {
    setState('waiting');
    $('#status').textContent = 'The room is locked: waiting for a host to let you in…';
  });
  client.on('joined', () => {
    setState('joined');
    $('#status').textContent = 'Connecting media…';
  });
  client.on('participants', refresh);
  client.on('tracks', refresh);
  client.on('local', (stream) => {
    // null after a demotion to the audience: the tile falls back to initials.
    streams.set(client.me.id, stream ?? new MediaStream());
    refresh();
  });
  client.on('stream', ({ participant, stream }) => {
    streams.set(participant, stream);
    refresh();
  });
  client.on('connection', (state) => {
    const text = { connected: '', connecting: 'Connecting media…', disconnected: 'Media interrupted…' };
    $('#status').textContent = text[state] ?? '';
    if (state === 'failed') banner.show('Lost the media connection to the server', rejoin);
  });
  client.on('error', ({ code, message, fatal }) => {
    banner.show(message, fatal ? (code in remedy ? remedy[code] : rejoin) : null);
    if (fatal) setState('error');
  });
  client.on('closed', (reason) => {
    if (reason === 'left') {
      view.hidden = true;
      document.getElementById('left-view').hidden = false;
      setState('left');
    } else {
      view.dataset.ended = 'true';
      if (document.body.dataset.state !== 'error') setState('ended');
    }
  });

  // Leaving a page closes the socket, so the others see us go at once rather than on a timeout.
  addEventListener('pagehide', () => client.close());

  client.connect();
  return client;

  function setupControls() {
    const mic = $('#mic');
    const cam = $('#cam');
    mic.addEventListener('click', () => client.setMuted('microphone', !client.muted.microphone));
    cam.addEventListener('click', () => client.setMuted('camera', !client.muted.camera));
    $('#leave').innerHTML = `${icon('leave')}<span>Leave</span>`;
    $('#leave').addEventListener('click', () => client.leave());
    const roster = $('#roster');
    const toggle = $('#people-toggle');
    const showRoster = (show) => {
      roster.hidden = !show;
      toggle.setAttribute('aria-pressed', String(show));
      grid.layout();
    };
    toggle.innerHTML = icon('people', 'participants');
    toggle.addEventListener('click', () => showRoster(roster.hidden));
    // On a phone the list would cover the videos, so there it starts closed.
    showRoster(!matchMedia('(max-width: 760px)').matches);
    document.getElementById('rejoin').addEventListener('click', () => location.reload());
    soundButton.innerHTML = `${icon('sound')}<span>Enable sound</span>`;
    soundButton.addEventListener('click', async () => {
      soundButton.hidden = true;
      await grid.playAllAudio();
    });
    updateButtons();
  }

  function updateButtons() {
    const muted = localMuted();
    paintToggle($('#mic'), muted.microphone, 'mic', 'micOff', 'microphone');
    paintToggle($('#cam'), muted.camera, 'cam', 'camOff', 'camera');
  }
}

function paintToggle(button, muted, on, off, what) {
  button.disabled = muted === undefined;
  button.setAttribute('aria-pressed', String(muted === true));
  button.title = muted ? `Turn ${what} on` : `Turn ${what} off`;
  button.innerHTML = icon(muted || muted === undefined ? off : on, button.title);
}

// Reopens the join form with everything but the refused field filled in.
function backToForm(refused) {
  const params = new URLSearchParams(location.search);
  params.delete(refused);
  location.assign(`${location.pathname}?${params}`);
}

function setState(state) {
  document.body.dataset.state = state;
}
