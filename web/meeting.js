// The meeting screen: wires the client's events to the stage, the side panel and the controls.

import { ConfabClient } from './client.js';
import { Grid } from './grid.js';
import { AudioOut } from './audio.js';
import { Roster } from './roster.js';
import { ChatPanel } from './chat.js';
import { QnaPanel } from './qna.js';
import { SidePanel } from './sidepanel.js';
import { Controls } from './controls.js';
import { SizeReporter } from './sizes.js';
import { askForPassword } from './password.js';
import { attachRoomTools, showInviteLink } from './invite.js';
import { icon } from './icons.js';
import { markReady } from './ready.js';
import { attachDevices } from './devicemenu.js';
import { showEnd, endStatus } from './endscreen.js';
import { attachNotices } from './notify.js';
import { watchQuality } from './quality.js';
import { attachShortcuts } from './shortcuts.js';
import { attachViewTools } from './viewtools.js';
import { attachExtras } from './extras.js';
import { attachRecording } from './recording.js';

// Refusals of something the client itself got wrong: the user can do nothing about them, so
// they go to the console for whoever debugs the client, not into a banner.
const QUIET_ERRORS = new Set(['bad_message', 'too_large', 'not_joined']);

// After losing the server, how often to look for it again and for how long.
const RECONNECT_EVERY_MS = 2_000;
const RECONNECT_FOR_MS = 120_000;

const NOTICES = {
  promoted: 'You are on stage: your camera and microphone are off until you turn them on',
  joined_muted: ({ above }) => `You joined muted: the meeting has ${above} or more people`,
  demoted: 'A host moved you to the audience: you are watching only',
  muted_by_host: ({ source }) => `A host turned off your ${source === 'camera' ? 'camera' : 'microphone'}; you can turn it back on`,
};

// opts: {room, name?, role?, token?, mode?, password?, shareScreen?, startMuted?}
export function startMeeting(banner, opts) {
  const view = document.getElementById('meeting-view');
  const $ = (sel) => view.querySelector(sel);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  // Back from a reconnect: the microphone and camera stay as the person left them, and a muted
  // microphone sends nothing meanwhile.
  const mutedKey = `confab:muted:${opts.room}`;
  const restoreMuted = JSON.parse(sessionStorage.getItem(mutedKey) ?? 'null');
  sessionStorage.removeItem(mutedKey);
  const client = new ConfabClient({ url, ...opts, startMuted: restoreMuted ?? opts.startMuted });
  const soundButton = $('#sound');
  const sizes = new SizeReporter({
    measure: () => grid.videoSizes(),
    shown: () => grid.shownVideos(),
    send: (s, shown) => client.reportVideoSizes(s, shown),
  });
  const grid = new Grid($('#grid'), {
    onPin: (id) => client.pin(client.pinned === id ? null : id),
    onLayout: () => sizes.schedule(),
    onStopPresenting: () => client.stopScreenShare(),
  });
  const audio = new AudioOut($('#audio'), { onBlocked: () => (soundButton.hidden = false) });
  const roster = new Roster($('#roster'), { onAction: moderate });
  const chat = new ChatPanel($('#chat'), { onSend: (text) => client.sendChat(text) });
  const qna = new QnaPanel($('#qna'), {
    onAsk: (text) => client.ask(text),
    onVote: (id, up) => client.vote(id, up),
    onAnswered: (id) => client.markAnswered(id),
  });
  let notify = null;
  const panel = new SidePanel(
    $('#panel'),
    { people: $('#people-toggle'), chat: $('#chat-toggle'), qna: $('#qna-toggle') },
    {
      onChange: () => {
        grid.layout();
        notify?.panelChanged();
      },
    },
  );
  const controls = new Controls(view, client, { onProblem: (m) => banner.show(m) });
  // Device choice during the call, the "You are muted" hint, a device unplugged.
  attachDevices(view, client, { audio, toast: (text) => toast(text) });
  const rejoin = { label: 'Rejoin', run: () => location.reload() };
  // Declared before anything can call toast(): a `let` after the `return` below never leaves
  // its temporal dead zone, and every toast threw.
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let toastTimer;
  // A fatal error ends on a screen of its own, never a banner over the stale meeting.
  const ways = { retry: () => location.reload(), changeRoom: () => backToForm('room'), changeName: () => backToForm('name') };

  view.hidden = false;
  $('#room-name').textContent = opts.room;
  // Invite/host links, the alone prompt, the password badge and form.
  attachRoomTools(view, client, opts.room);
  attachRecording(view, client);
  document.title = `${opts.room} · confab`;
  // Notices, connection quality, view buttons and keyboard shortcuts (notify.js and friends).
  notify = attachNotices(client, panel);
  watchQuality(client, grid, { onPoor: (text) => notify.notices.show(text, { kind: 'connection' }) });
  const shortcuts = attachShortcuts();
  attachViewTools($('.topbar-end'), grid, notify.sounds, shortcuts.open);
  setState('connecting');
  setupStaticButtons();
  attachExtras(view, client, { toast });

  function refresh() {
    if (!client.me) return;
    const me = { ...client.me, you: true, muted: localMuted() };
    const others = [...client.participants.values()].map((p) => ({ ...p, you: false, muted: client.mutedOf(p.id) }));
    const people = [me, ...others];
    syncStage(people);
    audio.sync(
      others.flatMap((p) =>
        Object.entries(client.remoteMedia(p.id))
          .filter(([source]) => source === 'microphone' || source === 'screen_audio')
          .map(([, m]) => m),
      ),
    );
    roster.render({ people, hands: client.hands, lobby: client.lobby, host: client.isHost });
    const audience = people.filter((p) => p.role === 'audience').length;
    const mode = $('#mode');
    mode.hidden = client.mode !== 'webinar';
    mode.textContent = `Webinar · ${audience} watching`;
    $('#locked').hidden = !client.locked;
    $('#qna-toggle').hidden = client.mode !== 'webinar';
    controls.update();
  }

  // Only the stage gets tiles: the audience sends nothing, so theirs would be empty boxes;
  // they are counted and listed in the people panel instead.
  function syncStage(people) {
    const entries = [];
    for (const p of people) {
      if (p.role === 'audience') continue;
      entries.push({ participant: p.id, source: 'camera', name: p.name, local: p.you });
      const sharing = p.you ? client.sharing : p.muted.screen !== undefined;
      if (sharing) entries.push({ participant: p.id, source: 'screen', name: p.name, local: p.you });
    }
    grid.sync(entries);
    // participant/source → the track it publishes, received or not: one pass over the tracks
    // rather than one per tile in a room of hundreds.
    const published = new Map([...client.tracks.values()].map((t) => [`${t.participant}/${t.source}`, t.id]));
    for (const p of people) {
      const remote = p.you ? null : client.remoteMedia(p.id);
      for (const source of /** @type {const} */ (['camera', 'screen'])) {
        const tile = grid.tile(p.id, source);
        if (!tile) continue;
        if (p.you) {
          tile.setVideo(client.localTrack(source));
        } else {
          const media = remote[source];
          // A tile off the page has no receiver, but its size (0) still names the track.
          tile.setVideo(media?.track ?? null, media?.trackId ?? published.get(`${p.id}/${source}`) ?? null);
          tile.setForwarded(!media || client.forwarded === null || client.forwarded.has(media.trackId));
        }
        tile.setMuted(p.muted);
      }
    }
    grid.setFocus({ pinned: client.pinned, speaker: client.activeSpeaker });
    grid.setHands(client.hands);
  }

  function localMuted() {
    const state = {};
    for (const source of /** @type {const} */ (['microphone', 'camera'])) {
      state[source] = client.canPublish(source) ? client.muted[source] : undefined;
    }
    if (client.sharing) state.screen = false;
    return state;
  }

  function moderate(action, id) {
    switch (action) {
      case 'promote':
        return client.tools.inviteToStage(id);
      case 'demote':
        return client.setRole(id, 'audience');
      case 'mute-microphone':
        return client.muteParticipant(id, 'microphone');
      case 'mute-camera':
        return client.muteParticipant(id, 'camera');
      case 'remove':
        return client.removeParticipant(id);
      case 'admit':
        return client.admit(id, true);
      case 'refuse':
        return client.admit(id, false);
    }
  }

  client.on('waiting', (/** @type {{hostPresent?: boolean}} */ { hostPresent } = {}) => {
    // Say so when no host is there to let anyone in.
    document.querySelector('#waiting-view p').textContent = hostPresent
      ? 'The room is locked. A host has been told you are here and will let you in shortly.'
      : 'The room is locked and no host is here yet. You will be let in when a host arrives.';
    setState('waiting');
    view.hidden = true;
    document.getElementById('waiting-view').hidden = false;
  });
  client.on('joined', () => {
    showInviteLink(opts.room);
    // This tab is in: a reload or a reconnect rejoins without the pre-join screen.
    markReady(opts.room);
    setState('joined');
    document.getElementById('waiting-view').hidden = true;
    view.hidden = false;
    $('#status').textContent = 'Connecting media…';
    chat.setEntries(client.chat, client.me.id);
    renderQuestions();
    grid.layout();
    if (opts.shareScreen && client.onStage) presentRightAway();
  });
  for (const event of ['participants', 'tracks', 'stream', 'hands', 'lobby', 'locked', 'forwarded', 'speaker', 'pinned']) {
    client.on(event, refresh);
  }
  client.on('local', refresh);
  client.on('lobby', () => {
    if (client.isHost && client.lobby.length) {
      toast(`${client.lobby.map((w) => w.name).join(', ')} ${client.lobby.length === 1 ? 'is' : 'are'} waiting to join`);
    }
  });
  client.on('chat', (entry) => {
    chat.add(entry, client.me.id);
    if (entry.from !== client.me.id) panel.chatArrived();
  });
  client.on('questions', renderQuestions);
  client.on('talk_error', ({ kind, message }) => (kind === 'question' ? qna : chat).showError(message));
  client.on('notice', (notice) => {
    const text = NOTICES[notice.code];
    if (text) toast(typeof text === 'function' ? text(notice) : text);
  });
  client.on('connection', (state) => {
    const text = { connected: '', connecting: 'Connecting media…', disconnected: 'Media interrupted…' };
    $('#status').textContent = text[state] ?? '';
    if (state === 'failed') banner.show('Lost the media connection to the server', rejoin);
  });
  client.on('error', ({ code, message, fatal }) => {
    if (code === 'wrong_password') {
      setState('password');
      view.hidden = true;
      document.getElementById('waiting-view').hidden = true;
      askForPassword(document.getElementById('password-view'), opts.room, { tried: Boolean(opts.password) });
      return;
    }
    if (code === 'shutting_down') {
      // A restart or an upgrade: the same meeting is there again in a moment.
      showEnd(code, 'The server is restarting; rejoining when it is back', ways);
      setState('error');
      reconnectWhenBack();
      return;
    }
    if (!fatal && QUIET_ERRORS.has(code)) {
      console.warn(`confab: the server refused a message (${code}): ${message}`);
      return;
    }
    if (!fatal) return banner.show(message);
    showEnd(code, message, ways);
    setState('error');
  });
  client.on('closed', (reason) => {
    if (reason === 'left') {
      view.hidden = true;
      document.getElementById('waiting-view').hidden = true;
      document.getElementById('left-view').hidden = false;
      setState('left');
    } else {
      view.dataset.ended = 'true';
      if (!['error', 'password'].includes(document.body.dataset.state)) setState('ended');
      if (reason === 'disconnected') reconnectWhenBack();
    }
  });

  // The server went away without a word (restart, crash, network): come back by ourselves
  // once it answers again, as the same person with the same microphone and camera state.
  function reconnectWhenBack() {
    $('#status').textContent = 'Reconnecting…';
    endStatus('Trying again by itself…');
    const giveUpAt = Date.now() + RECONNECT_FOR_MS;
    const attempt = async () => {
      const back = await fetch('/healthz', { cache: 'no-store' }).then(
        (r) => r.ok,
        () => false,
      );
      if (back) {
        sessionStorage.setItem(mutedKey, JSON.stringify(client.muted));
        location.reload();
      } else if (Date.now() < giveUpAt) {
        setTimeout(attempt, RECONNECT_EVERY_MS);
      } else {
        $('#status').textContent = '';
        endStatus('');
      }
    };
    setTimeout(attempt, RECONNECT_EVERY_MS);
  }

  // Leaving a page closes the socket, so the others see us go at once rather than on a timeout.
  addEventListener('pagehide', () => client.close());

  client.connect();
  return client;

  function renderQuestions() {
    qna.render(client.questions, { votes: client.votes, host: client.isHost, myId: client.me?.id });
  }

  // For a presentation laptop: share as soon as we are in. Browsers that insist on a click
  // before showing the screen picker get one big button to click.
  async function presentRightAway() {
    opts.shareScreen = false;
    try {
      await client.startScreenShare();
    } catch (err) {
      const prompt = $('#share-prompt');
      prompt.innerHTML = `${icon('screen')}<span>Start presenting</span>`;
      prompt.hidden = false;
      prompt.addEventListener('click', () => {
        prompt.hidden = true;
        controls.toggleScreen();
      }, { once: true });
      console.warn('confab: sharing needs a click first', err);
    }
    controls.update();
  }

  /** @param {string} text */
  function toast(text) {
    const el = document.getElementById('toast');
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.hidden = true), 5000);
  }

  function setupStaticButtons() {
    $('#people-toggle').innerHTML = icon('people', 'participants');
    $('#chat-toggle').insertAdjacentHTML('afterbegin', icon('chat', 'chat'));
    $('#qna-toggle').innerHTML = icon('qna', 'questions');
    document.getElementById('rejoin').addEventListener('click', () => location.reload());
    document.getElementById('waiting-leave').addEventListener('click', () => client.leave());
    soundButton.innerHTML = `${icon('sound')}<span>Enable sound</span>`;
    soundButton.addEventListener('click', async () => {
      soundButton.hidden = true;
      await audio.playAll();
    });
  }
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
