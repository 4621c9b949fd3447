// Recording in the web client: the "Recording" indicator everyone sees, start/stop announced,
// the host's record button and recordings page (signed download links from the server), and
// the consent notice a pre-join screen shows before anyone enters a room that records.
//
// For a pre-join screen: `await roomRecording(room)` → boolean (GET /api/rooms/{room}/status,
// public, says nothing else about the room), and `recordingNotice(recording)` → an element to
// show (or null), e.g. `const n = recordingNotice(await roomRecording(room)); if (n) form.prepend(n);`

const STYLE_HREF = 'recording.css';

/**
 * Whether a room records now (false when the server cannot tell).
 * @param {string} room
 * @returns {Promise<boolean>}
 */
export async function roomRecording(room) {
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(room)}/status`, { cache: 'no-store' });
    if (!res.ok) return false;
    const body = await res.json();
    return body?.recording === true;
  } catch {
    return false;
  }
}

/**
 * The consent notice for people about to join a room that records; null when it does not.
 * @param {boolean} recording
 * @returns {HTMLElement | null}
 */
export function recordingNotice(recording) {
  loadStyle();
  if (!recording) return null;
  const el = document.createElement('p');
  el.className = 'rec-notice';
  el.setAttribute('role', 'note');
  el.textContent =
    'This meeting is being recorded. By joining, your voice, camera and screen share may be part of the recording.';
  return el;
}

/**
 * Wires recording into the meeting screen.
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 */
export function attachRecording(view, client) {
  loadStyle();
  const badge = document.createElement('span');
  badge.className = 'badge rec-badge';
  badge.id = 'recording-badge';
  badge.textContent = 'Recording';
  badge.title = 'This meeting is being recorded';
  badge.hidden = true;
  view.querySelector('#has-password')?.after(badge);

  const tools = view.querySelector('.topbar-end');
  const button = pill('record-button', 'Record');
  const listButton = pill('recordings-button', 'Recordings');
  tools?.prepend(button, listButton);
  const page = recordingsPage(view, () => client.listRecordings());

  let recording = false;
  const isHost = () => client.me?.role === 'host';
  const update = () => {
    badge.hidden = !recording;
    button.hidden = listButton.hidden = !isHost();
    button.textContent = recording ? 'Stop recording' : 'Record';
    button.setAttribute('aria-pressed', String(recording));
  };

  button.addEventListener('click', () => {
    if (!recording && !confirm('Start recording? Everyone in the meeting will be told.')) return;
    button.disabled = true;
    client.record(!recording);
  });
  listButton.addEventListener('click', () => page.open());

  client.on('joined', (/** @type {{recording: boolean}} */ j) => {
    recording = j.recording;
    update();
  });
  client.on('participants', update);
  client.on('recording', (/** @type {{on: boolean, by?: string, error?: string}} */ m) => {
    const was = recording;
    recording = m.on;
    button.disabled = false;
    update();
    if (m.error) toast(`Recording: ${m.error}`);
    else if (m.on && !was) toast(m.by ? `${m.by} started recording this meeting` : 'This meeting is now being recorded');
    else if (!m.on && was) toast(m.by ? `${m.by} stopped the recording` : 'The recording stopped');
    if (!m.on && was) page.refreshIfOpen();
  });
  client.on('recordings', (/** @type {{recordings: Recording[]}} */ m) => page.show(m.recordings));
  update();
}

/**
 * @typedef {{id: string, room: string, started: string, duration_ms: number | null,
 *   bytes: number, url: string, recording?: boolean}} Recording
 */

/** @param {HTMLElement} view @param {() => void} ask */
function recordingsPage(view, ask) {
  const dialog = document.createElement('dialog');
  dialog.className = 'rec-page';
  dialog.id = 'recordings-page';
  dialog.innerHTML = `<h2>Recordings of this room</h2>
    <p class="rec-hint">Download links work for an hour; only hosts see this list.</p>
    <table><thead><tr><th>Started</th><th>Length</th><th>Size</th><th></th></tr></thead><tbody></tbody></table>
    <p class="rec-empty" hidden>No recordings yet.</p>
    <form method="dialog"><button type="button" class="pill" id="recordings-refresh">Refresh</button>
    <button class="pill">Close</button></form>`;
  view.append(dialog);
  const body = /** @type {HTMLElement} */ (dialog.querySelector('tbody'));
  const empty = /** @type {HTMLElement} */ (dialog.querySelector('.rec-empty'));
  dialog.querySelector('#recordings-refresh')?.addEventListener('click', ask);
  return {
    open() {
      ask();
      if (!dialog.open) dialog.showModal();
    },
    refreshIfOpen() {
      if (dialog.open) ask();
    },
    /** @param {Recording[]} list */
    show(list) {
      body.replaceChildren(...list.map(row));
      empty.hidden = list.length > 0;
    },
  };
}

/** @param {Recording} r */
function row(r) {
  const tr = document.createElement('tr');
  const cell = (/** @type {string} */ text) => {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
    return td;
  };
  cell(new Date(r.started).toLocaleString());
  cell(r.recording ? 'recording…' : r.duration_ms == null ? 'unfinished' : duration(r.duration_ms));
  cell(size(r.bytes));
  const a = document.createElement('a');
  a.href = r.url;
  a.download = `${r.id}.webm`;
  a.textContent = 'Download';
  cell('').append(a);
  return tr;
}

/** @param {number} ms */
function duration(ms) {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** @param {number} bytes */
function size(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

// The page's status toast (#toast), for announcements everyone must notice.
/** @param {string} text */
function toast(text) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 6000);
}

/** @param {string} id @param {string} text */
function pill(id, text) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'pill';
  b.id = id;
  b.textContent = text;
  b.hidden = true;
  return b;
}

function loadStyle() {
  if (document.querySelector(`link[href="${STYLE_HREF}"]`)) return;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = STYLE_HREF;
  document.head.append(link);
}
