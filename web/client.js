// One session in a room, as the UI sees it: wires the signalling channel (signal.js), the room
// model (room.js) and the media engine (engine.js) together, routes each server message to its
// owner, and offers the UI one object to read and to command. Knows nothing about the page.
//
// Events: waiting, joined, participants, tracks, local, stream, error, connection, closed,
// chat, questions, hands, lobby, locked, settings, speaker, pinned, forwarded, talk_error, notice,
// recording, recordings (see recording.js).

import { Emitter } from './emitter.js';
import { Signal, isFatal } from './signal.js';
import { Room } from './room.js';
import { Engine } from './engine.js';
import { Tools } from './tools.js';
import { captureCameraAndMicrophone, captureScreen } from './media.js';

export const UNREACHABLE = 'Cannot reach the server';

// What the UI hears from the model and from the engine, passed on unchanged.
const ROOM_EVENTS = [
  'waiting',
  'participants',
  'tracks',
  'chat',
  'questions',
  'hands',
  'lobby',
  'locked',
  'settings',
  'speaker',
  'pinned',
  'forwarded',
];
const ENGINE_EVENTS = ['local', 'stream', 'connection', 'error', 'notice'];

/**
 * @typedef {import('./room.js').Source} Source
 * @typedef {import('./room.js').Role} Role
 * @typedef {{url: string, room: string, name?: string, role?: string, key?: string, token?: string,
 *   mode?: string, password?: string, simulcast?: boolean,
 *   startMuted?: {microphone?: boolean, camera?: boolean},
 *   getMedia?: () => Promise<MediaStream>, getScreen?: () => Promise<MediaStream>}} ClientOptions
 */

export class ConfabClient extends Emitter {
  #signal;
  #room;
  #engine;
  #ended = false;
  /** Host tools, stage invitations, reactions and polls (tools.js has their events). */
  tools;

  /** @param {ClientOptions} opts */
  constructor(opts) {
    super();
    const { url, room, name, role, key, token, mode, password } = opts;
    // The server requires a name even when the token's name wins over it.
    /** @type {import('./signal.js').JoinMsg} */
    const join = { type: 'join', room, name: name ?? '' };
    if (role) join.role = role;
    if (key) join.key = key; // a host or presenter key from a link
    if (token) join.token = token;
    if (mode) join.mode = mode;
    if (password) join.password = password;
    this.#signal = new Signal(url, join);
    this.#room = new Room((msg) => this.#signal.send(msg));
    this.tools = new Tools((msg) => this.#signal.send(msg));
    this.#engine = new Engine(this.#signal, this.#room, {
      simulcast: opts.simulcast ?? true,
      getMedia: opts.getMedia ?? captureCameraAndMicrophone,
      getScreen: opts.getScreen ?? captureScreen,
      startMuted: opts.startMuted,
    });
    for (const event of ROOM_EVENTS) this.#room.on(event, (payload) => this.emit(event, payload));
    for (const event of ENGINE_EVENTS) this.#engine.on(event, (payload) => this.emit(event, payload));
    // My mute state shows in the people list.
    this.#engine.on('muted', () => this.emit('participants'));
    this.#signal.on('message', (msg) => this.#onMessage(msg));
    this.#signal.on('closed', ({ fatalSeen }) => {
      if (this.#ended) return;
      // A fatal error already told the user why; a bare close means the server went away.
      if (!fatalSeen) this.emit('error', { code: 'unreachable', message: UNREACHABLE, fatal: true });
      this.#teardown('disconnected');
    });
  }

  connect() {
    this.#signal.connect();
  }

  // The model, read by the UI.
  get me() {
    return this.#room.me;
  }
  get room() {
    return this.#room.name;
  }
  get mode() {
    return this.#room.mode;
  }
  get locked() {
    return this.#room.locked;
  }
  get settings() {
    return this.#room.settings;
  }
  get participants() {
    return this.#room.participants;
  }
  get tracks() {
    return this.#room.tracks;
  }
  get chat() {
    return this.#room.chat;
  }
  get questions() {
    return this.#room.questions;
  }
  get votes() {
    return this.#room.votes;
  }
  get hands() {
    return this.#room.hands;
  }
  get lobby() {
    return this.#room.lobby;
  }
  get activeSpeaker() {
    return this.#room.activeSpeaker;
  }
  get forwarded() {
    return this.#room.forwarded;
  }
  get pinned() {
    return this.#room.pinned;
  }
  get limits() {
    return this.#room.limits;
  }
  get isHost() {
    return this.#room.isHost;
  }
  get onStage() {
    return this.#room.onStage;
  }
  get ended() {
    return this.#ended;
  }

  // The media, read by the UI and the tests.
  get pc() {
    return this.#engine.pc;
  }
  get localStream() {
    return this.#engine.localStream;
  }
  get screenStream() {
    return this.#engine.screenStream;
  }
  get muted() {
    return this.#engine.muted;
  }
  // The camera and microphone are being captured; `muted` says what they will be.
  get capturing() {
    return this.#engine.capturing;
  }
  get sharing() {
    return this.#engine.sharing;
  }

  /** @param {number} participantId */
  mutedOf(participantId) {
    return this.#room.mutedOf(participantId);
  }

  /** @param {number} participantId */
  receiversOf(participantId) {
    return this.#engine.receiversOf(participantId);
  }

  // source → {trackId, track} for what we receive from `participantId`.
  /** @param {number} participantId */
  remoteMedia(participantId) {
    /** @type {Record<string, {trackId: number, track: MediaStreamTrack}>} */
    const media = {};
    for (const r of this.receiversOf(participantId)) media[r.source] = { trackId: r.trackId, track: r.receiver.track };
    return media;
  }

  /** @param {Source} source */
  canPublish(source) {
    return this.#engine.canPublish(source);
  }

  /** @param {Source} source */
  localTrack(source) {
    return this.#engine.localTrack(source);
  }

  // Commands about media.
  /**
   * @param {'microphone' | 'camera'} source
   * @param {boolean} muted
   */
  setMuted(source, muted) {
    this.#engine.setMuted(source, muted);
  }
  /**
   * A live device switch (camera or microphone): resolves to whether `track` is now sent.
   * @param {'microphone' | 'camera'} source
   * @param {MediaStreamTrack} track
   */
  switchDevice(source, track) {
    return this.#engine.switchDevice(source, track);
  }
  startScreenShare() {
    return this.#engine.startScreenShare();
  }
  stopScreenShare() {
    this.#engine.stopScreenShare();
  }
  restartIce() {
    this.#engine.restartIce();
  }
  /**
   * @param {Map<number, number>} sizes
   * @param {Set<number> | null} shown
   */
  reportVideoSizes(sizes, shown = null) {
    this.#engine.reportVideoSizes(sizes, shown);
  }

  // Commands about the room.
  /** @param {boolean} raised */
  raiseHand(raised) {
    this.#room.raiseHand(raised);
  }
  /** @param {string} text */
  sendChat(text) {
    return this.#room.sendChat(text);
  }
  /** @param {string} text */
  ask(text) {
    return this.#room.ask(text);
  }
  /**
   * @param {number} question
   * @param {boolean} up
   */
  vote(question, up) {
    this.#room.vote(question, up);
  }
  /** @param {number} question */
  markAnswered(question) {
    this.#room.markAnswered(question);
  }
  /**
   * @param {number} participant
   * @param {Role} role
   */
  setRole(participant, role) {
    this.#room.setRole(participant, role);
  }
  /** @param {string | null} password */
  setPassword(password) {
    this.#room.setPassword(password);
  }
  /**
   * @param {number} participant
   * @param {Source} source
   */
  muteParticipant(participant, source) {
    this.#room.muteParticipant(participant, source);
  }
  /** @param {number} participant */
  removeParticipant(participant) {
    this.#room.removeParticipant(participant);
  }
  /** @param {boolean} locked */
  lockRoom(locked) {
    this.#room.lockRoom(locked);
  }
  /**
   * @param {number} participant
   * @param {boolean} admit
   */
  admit(participant, admit) {
    this.#room.admit(participant, admit);
  }
  endMeeting() {
    this.#room.endMeeting();
  }
  /** @param {number | null} participant */
  pin(participant) {
    this.#room.pin(participant);
  }

  leave() {
    if (this.#ended) return;
    this.#signal.send({ type: 'leave' });
    this.#teardown('left');
  }

  // Hosts: start or stop recording the room; list its recordings (answered by 'recordings').
  /** @param {boolean} on */
  record(on) {
    this.#signal.send({ type: 'record', on });
  }

  listRecordings() {
    this.#signal.send({ type: 'list_recordings' });
  }

  // Ends the session without saying goodbye; the server notices the closed socket.
  close() {
    if (!this.#ended) this.#teardown('closed');
  }

  /** @param {any} msg */
  #onMessage(msg) {
    if (msg.type === 'joined') return this.#onJoined(msg);
    if (msg.type === 'error') return this.#onError(msg);
    if (msg.type === 'recording' || msg.type === 'recordings') return this.emit(msg.type, msg);
    this.#room.apply(msg);
    if (this.#engine.apply(msg) || this.#room.handles(msg.type) || this.tools.apply(msg)) return;
    console.warn('confab: ignoring unknown message', msg.type);
  }

  /** @param {any} msg */
  #onJoined(msg) {
    this.#room.apply(msg);
    if (!msg.limits) {
      this.emit('error', { code: 'internal', message: 'The server did not say how to send media', fatal: true });
      this.#teardown('error');
      return;
    }
    this.#engine.open(msg.limits);
    this.emit('joined', { room: msg.room, you: msg.you, recording: msg.recording === true });
    this.emit('participants');
    this.#engine.start();
  }

  /** @param {{code: string, message: string}} msg */
  #onError({ code, message }) {
    const fatal = isFatal(code);
    const talk = fatal ? null : this.#room.talkErrorKind(code);
    if (talk) {
      this.emit('talk_error', { kind: talk, code, message });
      return;
    }
    this.emit('error', { code, message, fatal });
    if (fatal) this.#teardown('error');
  }

  /** @param {string} reason */
  #teardown(reason) {
    this.#ended = true;
    this.#signal.close();
    this.#engine.close();
    this.emit('closed', reason);
  }
}
