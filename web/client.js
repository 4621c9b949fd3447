// The confab signalling client: one WebSocket, one RTCPeerConnection, the offer/answer queue
// between them, and the room as the server describes it (people, tracks, chat, questions,
// hands, lobby). Knows nothing about the page; the UI listens to its events and calls its
// commands. The protocol itself is written down in src/protocol.rs.
//
// Events: waiting, joined, participants, tracks, local, stream, error, connection, closed,
// chat, questions, hands, lobby, locked, speaker, pinned, forwarded, talk_error, notice.

import { Emitter } from './emitter.js';
import { ReceiverPool, AUDIO_SLOTS } from './receivers.js';
import { Publisher, KIND_OF } from './publisher.js';
import { captureCameraAndMicrophone, captureScreen, stopStream } from './media.js';

// Mirrors ErrorCode::is_fatal on the server: after these the server closes the socket.
const FATAL = new Set([
  'invalid_room',
  'invalid_name',
  'room_full',
  'unauthorized',
  'closed',
  'shutting_down',
  'internal',
  'removed',
  'refused',
  'wrong_password',
  'no_such_room',
]);

// Errors that only ever answer an offer. Others (bad_message, rate_limited) may just as well
// answer a chat line sent meanwhile: the protocol does not say which message an error is about,
// so those are left to the answer timeout rather than risk pairing the next answer with the
// wrong offer.
const OFFER_ERRORS = new Set(['sdp_rejected', 'forbidden']);

// Errors a chat line or question earns, shown next to what was typed rather than in the
// banner: posting too fast, and for questions a board that is full. Texts are checked here
// before sending, so a bad_message after a chat line is about something else.
const TALK_ERRORS = { chat: new Set(['rate_limited']), question: new Set(['rate_limited', 'bad_message']) };
const TALK_ERROR_WINDOW_MS = 5_000;

// Mirrors the server's limits (conference::talk) so the user learns before sending.
export const CHAT_MAX_CHARS = 2000;
export const QUESTION_MAX_CHARS = 500;

const ANSWER_TIMEOUT_MS = 15_000;
const ICE_DISCONNECT_GRACE_MS = 2_000;
const ICE_RESTART_SPACING_MS = 5_000;

export const UNREACHABLE = 'Cannot reach the server';

export class ConfabClient extends Emitter {
  pc = null;
  me = null;
  room = null;
  mode = 'meeting';
  locked = false;
  participants = new Map(); // id → {id, name, role}, everyone but me
  tracks = new Map(); // id → TrackInfo, remote tracks only
  chat = []; // ChatEntry, oldest first
  questions = []; // Question, in the server's order
  votes = new Set(); // question ids I upvoted; the server does not tell
  hands = []; // participant ids, in the order they raised them
  lobby = []; // {id, name, role} waiting for a host
  settings = null; // {mode, locked, has_password, host_key?, presenter_key?} (rooms change)
  activeSpeaker = null;
  forwarded = null; // Set of track ids whose video the server sends; null = all
  pinned = null;
  localStream = null; // camera and microphone
  screenStream = null;
  muted = { microphone: false, camera: false };

  #opts;
  #ws = null;
  #receivers = null;
  #publisher = null;
  #ownTracks = new Map(); // my track id → source, as far as the server has named them
  #roleWork = Promise.resolve();
  #ready = false; // first media settled; offers may be made
  #dirty = false;
  #negotiating = false;
  #pendingAnswer = null;
  #ended = false;
  #fatalSeen = false;
  #lastNegotiated = null; // what the last accepted offer asked for; equal means no offer needed
  #lastPublished = '{}';
  #lastSizes = '';
  #shownVideo = new Set(); // remote video track ids with a tile on screen: the ones we receive
  #audioSlots = {}; // mid → trackId, as the server last said
  #lastTalk = null; // {kind, at}: the chat line or question an error may be about
  #iceTimer = null;
  #iceRestartPending = false; // an offer must go out even if nothing else changed
  #lastIceRestart = 0;

  // opts: {url, room, name, role?, key?, token?, mode?, password?, simulcast?, getMedia?, getScreen?}
  constructor(opts) {
    super();
    this.#opts = { getMedia: captureCameraAndMicrophone, getScreen: captureScreen, simulcast: true, ...opts };
  }

  get ended() {
    return this.#ended;
  }

  get isHost() {
    return this.me?.role === 'host';
  }

  get onStage() {
    return Boolean(this.me) && this.me.role !== 'audience';
  }

  get sharing() {
    return Boolean(this.#publisher?.has('screen'));
  }

  connect() {
    const ws = new WebSocket(this.#opts.url);
    this.#ws = ws;
    ws.addEventListener('open', () => {
      const { room, name, role, key, token, mode, password } = this.#opts;
      // The server requires a name even when the token's name wins over it.
      const join = { type: 'join', room, name: name ?? '' };
      if (role) join.role = role;
      if (key) join.key = key; // rooms change: host/presenter key from a link
      if (token) join.token = token;
      if (mode) join.mode = mode;
      if (password) join.password = password;
      this.#send(join);
    });
    ws.addEventListener('message', (ev) => this.#onMessage(ev.data));
    ws.addEventListener('close', () => {
      if (this.#ended) return;
      // A fatal error already told the user why; a bare close means the server went away.
      if (!this.#fatalSeen) this.emit('error', { code: 'unreachable', message: UNREACHABLE, fatal: true });
      this.#teardown('disconnected');
    });
  }

  // New ICE credentials and candidates on the next offer: how a browser recovers its media
  // path after a network change (Wi-Fi to cable, a NAT that forgot us) without rejoining.
  restartIce() {
    if (!this.pc || this.#ended) return;
    this.#lastIceRestart = Date.now();
    this.pc.restartIce();
    this.#iceRestartPending = true;
    this.renegotiate();
  }

  #onConnectionState() {
    const state = this.pc.connectionState;
    this.emit('connection', state);
    clearTimeout(this.#iceTimer);
    // A short 'disconnected' often heals by itself; 'failed' never does. Restarts are spaced
    // out so a dead network does not turn into an offer storm.
    const wait = state === 'failed' ? 0 : state === 'disconnected' ? ICE_DISCONNECT_GRACE_MS : null;
    if (wait === null) return;
    const spacing = Math.max(0, this.#lastIceRestart + ICE_RESTART_SPACING_MS - Date.now());
    this.#iceTimer = setTimeout(() => {
      if (['disconnected', 'failed'].includes(this.pc?.connectionState)) this.restartIce();
    }, Math.max(wait, spacing));
  }

  setMuted(source, muted) {
    const track = this.#publisher?.track(source);
    if (!track) return;
    track.enabled = !muted;
    this.muted[source] = muted;
    this.#send({ type: 'mute', source, muted });
    this.emit('participants');
  }

  canPublish(source) {
    return Boolean(this.#publisher?.has(source));
  }

  localTrack(source) {
    return this.#publisher?.track(source) ?? null;
  }

  // Throws when the screen cannot be captured (refused, unsupported, no user gesture).
  async startScreenShare() {
    if (!this.onStage || this.sharing || this.#ended) return;
    const stream = await this.#opts.getScreen();
    const track = stream.getVideoTracks()[0];
    if (!track || this.#ended || !this.onStage || this.sharing) {
      stopStream(stream);
      return;
    }
    // Tells the encoder this is text and lines, not faces: sharpness over smoothness.
    track.contentHint = 'detail';
    // The browser's own "Stop sharing" bar ends the track without asking us.
    track.addEventListener('ended', () => {
      if (this.screenStream === stream) this.stopScreenShare();
    });
    this.screenStream = stream;
    await this.#publisher.publish('screen', track, stream);
    this.emit('local');
    this.renegotiate();
  }

  stopScreenShare() {
    if (!this.#publisher) return;
    const track = this.#publisher.unpublish('screen');
    stopStream(this.screenStream);
    this.screenStream = null;
    if (!track) return;
    this.emit('local');
    this.renegotiate();
  }

  raiseHand(raised) {
    this.#send({ type: 'raise_hand', raised });
  }

  // Returns why the text cannot be sent, or null once it is on its way.
  sendChat(text) {
    return this.#talk('chat', text, CHAT_MAX_CHARS);
  }

  ask(text) {
    return this.#talk('ask', text, QUESTION_MAX_CHARS);
  }

  vote(question, up) {
    if (up) this.votes.add(question);
    else this.votes.delete(question);
    this.#send({ type: 'vote', question, up });
    this.emit('questions');
  }

  markAnswered(question) {
    this.#send({ type: 'mark_answered', question });
  }

  // Host: set (a string) or remove (null) the room's password (rooms change).
  setPassword(password) {
    this.#send({ type: 'set_password', password: password || null });
  }

  setRole(participant, role) {
    this.#send({ type: 'set_role', participant, role });
  }

  muteParticipant(participant, source) {
    this.#send({ type: 'mute_participant', participant, source });
  }

  removeParticipant(participant) {
    this.#send({ type: 'remove_participant', participant });
  }

  lockRoom(locked) {
    this.#send({ type: 'lock_room', locked });
  }

  admit(participant, admit) {
    this.#send({ type: 'admit', participant, admit });
  }

  endMeeting() {
    this.#send({ type: 'end_meeting' });
  }

  pin(participant) {
    this.pinned = participant;
    this.#send({ type: 'pin', participant });
    this.emit('pinned');
  }

  // sizes: Map trackId → rendered height in device pixels (0: not visible). Sent only when
  // something changed, so callers may report as often as their layout changes.
  // `shown`: the track ids whose tiles are on the page (even in a hidden tab); only those are
  // received, so the SDP stays small in a room of hundreds.
  reportVideoSizes(sizes, shown = null) {
    if (!this.me || this.#ended) return;
    if (shown) {
      const now = new Set([...shown].filter((id) => this.tracks.get(id)?.kind === 'video'));
      const changed = now.size !== this.#shownVideo.size || [...now].some((id) => !this.#shownVideo.has(id));
      this.#shownVideo = now;
      if (changed) this.renegotiate();
    }
    const known = {};
    for (const [id, height] of sizes) {
      if (this.tracks.get(id)?.kind === 'video') known[id] = Math.max(0, Math.round(height));
    }
    const key = JSON.stringify(known);
    if (key === this.#lastSizes) return;
    this.#lastSizes = key;
    this.#send({ type: 'video_sizes', sizes: known });
  }

  leave() {
    if (this.#ended) return;
    this.#send({ type: 'leave' });
    this.#teardown('left');
  }

  // Ends the session without saying goodbye; the server notices the closed socket.
  close() {
    if (!this.#ended) this.#teardown('closed');
  }

  // What we receive from `participantId`: [{kind, source, trackId, receiver}].
  receiversOf(participantId) {
    return this.#receivers?.of(participantId) ?? [];
  }

  // source → {trackId, track} for what we receive from `participantId`.
  remoteMedia(participantId) {
    const media = {};
    for (const r of this.receiversOf(participantId)) media[r.source] = { trackId: r.trackId, track: r.receiver.track };
    return media;
  }

  // source → muted, for each track `participantId` publishes.
  mutedOf(participantId) {
    const state = {};
    for (const t of this.tracks.values()) {
      if (t.participant === participantId) state[t.source] = t.muted;
    }
    return state;
  }

  #send(msg) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  #talk(type, text, max) {
    const clean = text.trim();
    if (!clean) return 'Write something first';
    if ([...clean].length > max) return `That is longer than ${max} characters`;
    this.#lastTalk = { kind: type === 'ask' ? 'question' : 'chat', at: Date.now() };
    this.#send({ type, text: clean });
    return null;
  }

  #onMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('confab: ignoring a frame that is not JSON', data);
      return;
    }
    const handler = this.#handlers[msg.type];
    if (handler) handler(msg);
    else console.warn('confab: ignoring unknown message', msg.type);
  }

  #handlers = {
    waiting: ({ host_present }) => this.emit('waiting', { hostPresent: host_present !== false }),
    // rooms change: the room's lasting settings (hosts also get the keys for the links).
    room_settings: (settings) => {
      this.settings = settings;
      this.emit('settings', settings);
    },
    joined: (msg) => this.#onJoined(msg),
    participant_updated: ({ participant }) => {
      if (participant.id === this.me?.id) {
        const before = this.me.role;
        this.me = participant;
        if (before !== participant.role) this.#onRoleChanged(before, participant.role);
      } else if (this.participants.has(participant.id)) {
        this.participants.set(participant.id, participant);
      }
      this.emit('participants');
    },
    participant_joined: ({ participant }) => {
      if (participant.id === this.me?.id) return;
      this.participants.set(participant.id, participant);
      this.emit('participants');
    },
    participant_left: ({ id }) => {
      this.participants.delete(id);
      for (const [trackId, t] of this.tracks) {
        if (t.participant === id) this.tracks.delete(trackId);
      }
      if (this.activeSpeaker === id) this.activeSpeaker = null;
      if (this.pinned === id) this.pin(null);
      this.emit('participants');
      this.renegotiate();
    },
    track_published: ({ track }) => {
      if (track.participant === this.me?.id) {
        this.#ownTracks.set(track.id, track.source);
        return;
      }
      this.tracks.set(track.id, track);
      // A slot may already carry it: the server can name a track before we heard of it.
      this.#applyAudioSlots();
      this.emit('tracks', track.participant);
      this.renegotiate();
    },
    track_unpublished: ({ id }) => {
      const track = this.tracks.get(id);
      if (!track) return;
      this.tracks.delete(id);
      this.emit('tracks', track.participant);
      this.renegotiate();
    },
    track_muted: ({ id, participant, source, muted, forced }) => {
      if (participant !== undefined && participant === this.me?.id) {
        this.#ownTracks.set(id, source);
        if (muted && forced) this.#mutedByHost(source);
        return;
      }
      const track = this.tracks.get(id);
      if (!track) return;
      track.muted = muted;
      this.emit('tracks', track.participant);
    },
    hands: ({ queue }) => {
      this.hands = queue;
      this.emit('hands');
    },
    chat: ({ entry }) => {
      this.chat.push(entry);
      this.emit('chat', entry);
    },
    questions: ({ list }) => {
      this.questions = list;
      this.emit('questions');
    },
    room_locked: ({ locked }) => {
      this.locked = locked;
      this.emit('locked', locked);
    },
    lobby: ({ waiting }) => {
      this.lobby = waiting;
      this.emit('lobby');
    },
    active_speaker: ({ participant }) => {
      this.activeSpeaker = participant;
      this.emit('speaker');
    },
    forwarded: ({ tracks }) => {
      this.forwarded = new Set(tracks);
      this.emit('forwarded');
    },
    publish_layers: ({ source, active }) => this.#setLayers(source, active),
    audio_slots: ({ slots }) => {
      this.#audioSlots = slots ?? {};
      this.#applyAudioSlots();
    },
    answer: ({ sdp }) => {
      const pending = this.#pendingAnswer;
      this.#pendingAnswer = null;
      if (pending) pending.resolve(sdp);
      else console.warn('confab: ignoring an answer to an offer we gave up on');
    },
    error: ({ code, message }) => {
      const fatal = FATAL.has(code);
      if (fatal) this.#fatalSeen = true;
      if (!fatal && OFFER_ERRORS.has(code) && this.#pendingAnswer) {
        const pending = this.#pendingAnswer;
        this.#pendingAnswer = null;
        pending.reject(Object.assign(new Error(message), { code, fromServer: true }));
      }
      const talk = this.#lastTalk;
      if (!fatal && talk && TALK_ERRORS[talk.kind].has(code) && Date.now() - talk.at < TALK_ERROR_WINDOW_MS) {
        this.emit('talk_error', { kind: talk.kind, code, message });
        return;
      }
      this.emit('error', { code, message, fatal });
      if (fatal) this.#teardown('error');
    },
  };

  async #onJoined({ room, you, participants, tracks, mode, locked, chat, questions, hands }) {
    this.room = room;
    this.me = you;
    this.mode = mode ?? 'meeting';
    this.locked = Boolean(locked);
    this.chat = chat ?? [];
    this.questions = questions ?? [];
    this.hands = hands ?? [];
    for (const p of participants) {
      if (p.id !== you.id) this.participants.set(p.id, p);
    }
    for (const t of tracks) {
      if (t.participant !== you.id) this.tracks.set(t.id, t);
    }
    this.pc = new RTCPeerConnection();
    this.pc.addEventListener('connectionstatechange', () => this.#onConnectionState());
    this.#receivers = new ReceiverPool(this.pc);
    this.#publisher = new Publisher(this.pc, { simulcast: this.#opts.simulcast });
    this.emit('joined', { room, you });
    this.emit('participants');

    await this.#syncPublishing();
    if (this.#ended) return;
    this.#ready = true;
    this.renegotiate();
  }

  #onRoleChanged(before, after) {
    const could = before !== 'audience';
    const can = after !== 'audience';
    if (could === can) return;
    this.emit('notice', { code: can ? 'promoted' : 'demoted' });
    if (!can) {
      // The server has already unpublished our tracks; the next offer must not send anything.
      this.#stopPublishing();
      this.renegotiate();
      return;
    }
    this.#syncPublishing().then(() => this.renegotiate());
  }

  // Brings what we send in line with our role. Serialised, because capturing takes a while
  // and the role may change again meanwhile.
  #syncPublishing() {
    this.#roleWork = this.#roleWork
      .then(async () => {
        if (this.#ended) return;
        if (!this.onStage) return this.#stopPublishing();
        if (!this.localStream) await this.#startPublishing();
      })
      // One failed capture must not stall every later role change.
      .catch((err) => console.error('confab: could not change what we send', err));
    return this.#roleWork;
  }

  async #startPublishing() {
    let stream;
    try {
      stream = await this.#opts.getMedia();
    } catch (err) {
      this.emit('error', {
        code: 'no_media',
        message: `Camera and microphone are unavailable (${err.message || err.name}); you can still watch and listen`,
        fatal: false,
      });
      return;
    }
    if (this.#ended || !this.onStage) {
      stopStream(stream);
      return;
    }
    this.localStream = stream;
    this.muted = { microphone: false, camera: false };
    for (const source of ['microphone', 'camera']) {
      const track = stream.getTracks().find((t) => t.kind === KIND_OF[source]);
      if (track) await this.#publisher.publish(source, track, stream);
    }
    this.emit('local');
  }

  #stopPublishing() {
    if (!this.#publisher) return;
    for (const track of this.#publisher.unpublishAll()) track.stop();
    stopStream(this.localStream);
    stopStream(this.screenStream);
    this.localStream = null;
    this.screenStream = null;
    this.emit('local');
  }

  #mutedByHost(source) {
    const track = this.#publisher?.track(source);
    if (!track) return;
    // Keep what we send in line with what the others are told, so unmuting is one click.
    track.enabled = false;
    this.muted[source] = true;
    this.emit('notice', { code: 'muted_by_host', source });
    this.emit('participants');
  }

  // Points the audio slots at the voices the server last named for them.
  #applyAudioSlots() {
    if (!this.#receivers) return;
    const touched = this.#receivers.assignAudio(this.#audioSlots, (id) => this.tracks.get(id));
    for (const participant of touched) this.#emitStream(participant);
  }

  // The server names which of our sources it means; our own track ids are never announced to us.
  #setLayers(source, active) {
    if (!this.#publisher || KIND_OF[source] !== 'video') return;
    this.#publisher.setLayers(source, active);
  }

  // Changes whenever the next offer would differ from the last accepted one.
  #signature() {
    return `${this.#publisher.signature()}|${this.#receivers.signature()}`;
  }

  // Asks for a new offer/answer round; coalesces with any round already queued.
  renegotiate() {
    this.#dirty = true;
    if (this.#ready && !this.#negotiating && !this.#ended) this.#negotiate();
  }

  async #negotiate() {
    this.#negotiating = true;
    try {
      while (this.#dirty && !this.#ended) {
        this.#dirty = false;
        try {
          await this.#offerOnce();
        } catch (err) {
          if (this.#ended) break;
          await this.#rollback();
          // Server errors were shown when they arrived; local failures have no other voice.
          if (!err.fromServer) {
            this.emit('error', { code: 'negotiation', message: `Could not set up media: ${err.message}`, fatal: false });
          }
        }
      }
    } finally {
      this.#negotiating = false;
    }
  }

  async #offerOnce() {
    // A demotion may overtake a capture in progress; nothing of ours may go out as audience.
    if (!this.onStage && this.#publisher.sources().length) this.#stopPublishing();
    const microphones = [...this.tracks.values()].filter((t) => t.kind === 'audio').length;
    this.#receivers.ensureAudioSlots(Math.min(AUDIO_SLOTS, microphones));
    const touched = this.#receivers.sync(this.#wantedTracks());
    for (const participant of touched) this.#emitStream(participant);
    if (this.#publisher.size === 0 && this.#receivers.size === 0) return;
    if (this.#signature() === this.#lastNegotiated && !this.#iceRestartPending) return;

    const restarting = this.#iceRestartPending;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    // Taken now that every transceiver in the offer has its mid: one added while we wait for
    // the answer has none yet, so the signature will differ and it gets its own round.
    const signature = this.#signature();
    const publish = this.#publisher.publishMap();
    const answer = this.#awaitAnswer();
    this.#send({
      type: 'offer',
      sdp: this.pc.localDescription.sdp,
      publish,
      subscribe: this.#receivers.subscribeMap(),
      audio_slots: this.#receivers.audioSlotMids(),
    });
    const sdp = await answer;
    if (this.#ended) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    if (restarting) this.#iceRestartPending = false;
    const published = JSON.stringify(publish);
    if (published !== this.#lastPublished) {
      // The server creates newly published tracks unmuted; a mute clicked before had no track to apply to.
      for (const [source, muted] of Object.entries(this.muted)) {
        if (muted && this.#publisher.has(source)) this.#send({ type: 'mute', source, muted });
      }
      this.#lastPublished = published;
    }
    this.#lastNegotiated = signature;
  }

  #wantedTracks() {
    // Video for the tiles on screen (the server then decides from the sizes we report what
    // it forwards, and at which layer); audio comes on the server-filled slots.
    return new Map(
      [...this.tracks]
        .filter(([id, t]) => t.kind === 'video' && this.#shownVideo.has(id))
        .map(([id, t]) => [id, { kind: t.kind, participant: t.participant, source: t.source }]),
    );
  }

  #awaitAnswer() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pendingAnswer = null;
        reject(new Error('the server did not answer in time'));
      }, ANSWER_TIMEOUT_MS);
      this.#pendingAnswer = {
        resolve: (sdp) => {
          clearTimeout(timer);
          resolve(sdp);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  async #rollback() {
    if (this.pc?.signalingState !== 'have-local-offer') return;
    try {
      await this.pc.setLocalDescription({ type: 'rollback' });
    } catch (err) {
      console.warn('confab: rollback failed', err);
    }
  }

  #emitStream(participant) {
    if (participant === null || participant === undefined) return;
    this.emit('stream', participant);
  }

  #teardown(reason) {
    this.#ended = true;
    clearTimeout(this.#iceTimer);
    this.#pendingAnswer?.reject(Object.assign(new Error('session ended'), { fromServer: true }));
    this.#pendingAnswer = null;
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
    this.pc?.close();
    stopStream(this.localStream);
    stopStream(this.screenStream);
    this.emit('closed', reason);
  }
}
