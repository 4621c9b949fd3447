// The confab signalling client: one WebSocket, one RTCPeerConnection, and the offer/answer
// queue between them. Knows nothing about the page; the UI listens to its events.
//
// Events: waiting, joined, participants, tracks, local, stream, error, connection, closed.

import { Emitter } from './emitter.js';
import { ReceiverPool } from './receivers.js';
import { captureCameraAndMicrophone, stopStream } from './media.js';

// Mirrors ErrorCode::is_fatal on the server: after these the server closes the socket.
const FATAL = new Set([
  'invalid_room',
  'invalid_name',
  'room_full',
  'unauthorized',
  'closed',
  'internal',
  'removed',
  'refused',
  'wrong_password',
]);

// Errors that can be the server's reply to our offer instead of an answer.
const OFFER_ERRORS = new Set(['sdp_rejected', 'bad_message', 'too_large', 'rate_limited', 'forbidden']);

const ANSWER_TIMEOUT_MS = 15_000;
const RATE_LIMIT_BACKOFF_MS = 1_000;
const MAX_RETRIES = 5;

// Publish order is fixed so the microphone and camera always get the first two mids.
const PUBLISHED_SOURCES = [
  ['microphone', 'audio'],
  ['camera', 'video'],
];

export const UNREACHABLE = 'Cannot reach the server';

export class ConfabClient extends Emitter {
  pc = null;
  me = null;
  room = null;
  participants = new Map(); // id → {id, name, role}, everyone but me
  tracks = new Map(); // id → TrackInfo, remote tracks only
  localStream = null;
  muted = { microphone: false, camera: false };

  #opts;
  #ws = null;
  #receivers = null;
  #senders = new Map(); // source → RTCRtpTransceiver
  #retired = new Map(); // kind → a sending transceiver left idle by a demotion, reused on promotion
  #ready = false; // local media settled; offers may be made
  #dirty = false;
  #negotiating = false;
  #pendingAnswer = null;
  #ended = false;
  #fatalSeen = false;
  #lastNegotiated = null; // what the last accepted offer asked for; equal means no offer needed
  #lastPublished = '{}';

  // opts: {url, room, name, role?, token?, getMedia?}
  constructor(opts) {
    super();
    this.#opts = { getMedia: captureCameraAndMicrophone, ...opts };
  }

  get ended() {
    return this.#ended;
  }

  connect() {
    const ws = new WebSocket(this.#opts.url);
    this.#ws = ws;
    ws.addEventListener('open', () => {
      const { room, name, role, token } = this.#opts;
      const join = { type: 'join', room, name };
      if (role) join.role = role;
      if (token) join.token = token;
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

  setMuted(source, muted) {
    const track = this.#senders.get(source)?.sender.track;
    if (!track) return;
    track.enabled = !muted;
    this.muted[source] = muted;
    this.#send({ type: 'mute', source, muted });
    this.emit('participants');
  }

  canPublish(source) {
    return Boolean(this.#senders.get(source)?.sender.track);
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

  // What we receive from `participantId`: [{kind, trackId, receiver}].
  receiversOf(participantId) {
    return this.#receivers?.of(participantId) ?? [];
  }

  // {microphone, camera} → true/false when published, undefined when not.
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
    waiting: () => this.emit('waiting'),
    joined: (msg) => this.#onJoined(msg),
    participant_updated: ({ participant }) => {
      if (participant.id === this.me?.id) {
        const before = this.me.role;
        this.me = participant;
        this.#onRoleChanged(before, participant.role);
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
      this.emit('participants');
      this.renegotiate();
    },
    track_published: ({ track }) => {
      if (track.participant === this.me?.id) return;
      this.tracks.set(track.id, track);
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
    track_muted: ({ id, muted }) => {
      const track = this.tracks.get(id);
      if (!track) return;
      track.muted = muted;
      this.emit('tracks', track.participant);
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
        // Backing off after a rate limit is routine; the user need not hear about it.
        if (code === 'rate_limited') return;
      }
      this.emit('error', { code, message, fatal });
      if (fatal) this.#teardown('error');
    },
  };

  async #onJoined({ room, you, participants, tracks }) {
    this.room = room;
    this.me = you;
    for (const p of participants) {
      if (p.id !== you.id) this.participants.set(p.id, p);
    }
    for (const t of tracks) {
      if (t.participant !== you.id) this.tracks.set(t.id, t);
    }
    this.pc = new RTCPeerConnection();
    this.pc.addEventListener('connectionstatechange', () => this.emit('connection', this.pc.connectionState));
    this.#receivers = new ReceiverPool(this.pc);
    this.emit('joined', { room, you });
    this.emit('participants');

    if (you.role !== 'audience') await this.#startPublishing();
    if (this.#ended) return;
    this.#ready = true;
    this.renegotiate();
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
    if (this.#ended) {
      stopStream(stream);
      return;
    }
    this.localStream = stream;
    this.muted = { microphone: false, camera: false };
    for (const [source, kind] of PUBLISHED_SOURCES) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      if (!track) continue;
      const spare = this.#retired.get(kind);
      if (spare) {
        this.#retired.delete(kind);
        spare.direction = 'sendonly';
        await spare.sender.replaceTrack(track);
        spare.sender.setStreams(stream);
        this.#senders.set(source, spare);
      } else {
        this.#senders.set(source, this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }));
      }
    }
    this.emit('local', stream);
  }

  // The server has already unpublished our tracks; the next offer must not send anything.
  #stopPublishing() {
    for (const transceiver of this.#senders.values()) {
      transceiver.direction = 'inactive';
      transceiver.sender.replaceTrack(null).catch(() => {});
      this.#retired.set(transceiver.receiver.track.kind, transceiver);
    }
    this.#senders.clear();
    stopStream(this.localStream);
    this.localStream = null;
    this.emit('local', null);
  }

  async #onRoleChanged(before, after) {
    const could = before !== 'audience';
    const can = after !== 'audience';
    if (!this.#ready || could === can) return;
    if (can) await this.#startPublishing();
    else this.#stopPublishing();
    this.renegotiate();
  }

  // Changes whenever the next offer would differ from the last accepted one.
  #signature() {
    const sending = [...this.#senders, ...this.#retired].map(([key, t]) => `${key}:${t.mid}:${t.direction}`);
    return `${sending.join(',')}|${this.#receivers.signature()}`;
  }

  // Asks for a new offer/answer round; coalesces with any round already queued.
  renegotiate() {
    this.#dirty = true;
    if (this.#ready && !this.#negotiating && !this.#ended) this.#negotiate();
  }

  async #negotiate() {
    this.#negotiating = true;
    let retries = 0;
    try {
      while (this.#dirty && !this.#ended) {
        this.#dirty = false;
        try {
          await this.#offerOnce();
          retries = 0;
        } catch (err) {
          if (this.#ended) break;
          await this.#rollback();
          if (err.code === 'rate_limited' && retries++ < MAX_RETRIES) {
            this.#dirty = true;
            await sleep(RATE_LIMIT_BACKOFF_MS);
          } else if (!err.fromServer) {
            // Server errors were shown when they arrived; local failures have no other voice.
            this.emit('error', { code: 'negotiation', message: `Could not set up media: ${err.message}`, fatal: false });
          }
        }
      }
    } finally {
      this.#negotiating = false;
    }
  }

  async #offerOnce() {
    const touched = this.#receivers.sync(this.#wantedTracks());
    for (const participant of touched) this.#emitStream(participant);
    if (this.#senders.size === 0 && this.#retired.size === 0 && this.#receivers.size === 0) return;
    if (this.#signature() === this.#lastNegotiated) return;

    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    const publish = {};
    for (const [source, transceiver] of this.#senders) {
      if (transceiver.mid !== null && transceiver.sender.track) publish[transceiver.mid] = source;
    }
    const answer = this.#awaitAnswer();
    this.#send({ type: 'offer', sdp: this.pc.localDescription.sdp, publish, subscribe: this.#receivers.subscribeMap() });
    const sdp = await answer;
    if (this.#ended) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    const published = JSON.stringify(publish);
    if (published !== this.#lastPublished) {
      // The server creates newly published tracks unmuted; a mute clicked before had no track to apply to.
      for (const [source, muted] of Object.entries(this.muted)) {
        if (muted && this.#senders.has(source)) this.#send({ type: 'mute', source, muted });
      }
      this.#lastPublished = published;
    }
    this.#lastNegotiated = this.#signature();
  }

  #wantedTracks() {
    // Everything the others publish is subscribed; the grid shows everyone.
    return new Map([...this.tracks].map(([id, t]) => [id, { kind: t.kind, participant: t.participant }]));
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
    const tracks = this.#receivers.of(participant).map((r) => r.receiver.track);
    this.emit('stream', { participant, stream: new MediaStream(tracks) });
  }

  #teardown(reason) {
    this.#ended = true;
    this.#pendingAnswer?.reject(Object.assign(new Error('session ended'), { fromServer: true }));
    this.#pendingAnswer = null;
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
    this.pc?.close();
    stopStream(this.localStream);
    this.emit('closed', reason);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
