// The media engine: the RTCPeerConnection and everything that goes through it. It decides what
// we publish (camera and microphone while on stage, the screen on request), keeps the
// receivers in line with the tiles on screen, and runs the offer/answer rounds and ICE
// restarts. No DOM; the room model (room.js) says who and what is there, signal.js carries the
// SDP.
//
// Events: local (what I send changed), stream (participant id: what we receive from them
// changed), muted (my mute state changed), connection (state), error ({code, message, fatal:
// false}), notice ({code, source?}).

import { Emitter } from './emitter.js';
import { ReceiverPool, AUDIO_SLOTS } from './receivers.js';
import { Publisher, KIND_OF } from './publisher.js';
import { stopStream } from './media.js';

const ICE_DISCONNECT_GRACE_MS = 2_000;
const ICE_RESTART_SPACING_MS = 5_000;
// A camera turned on late is captured as media.js captures it at join.
const LATE_VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24, max: 30 } };

/**
 * @typedef {import('./signal.js').Signal} Signal
 * @typedef {import('./room.js').Room} Room
 * @typedef {import('./room.js').Source} Source
 * @typedef {import('./room.js').Limits} Limits
 * @typedef {{simulcast: boolean, getMedia: () => Promise<MediaStream>,
 *   getScreen: () => Promise<MediaStream>, startMuted?: {microphone?: boolean, camera?: boolean}}} EngineOptions
 */

export class Engine extends Emitter {
  /** @type {RTCPeerConnection | null} */
  pc = null;
  /** @type {MediaStream | null} camera and microphone */
  localStream = null;
  /** @type {MediaStream | null} */
  screenStream = null;
  muted = { microphone: false, camera: false };

  #signal;
  #room;
  #opts;
  /** @type {ReceiverPool | null} */
  #receivers = null;
  /** @type {Publisher | null} */
  #publisher = null;
  /** @type {Promise<void>} */
  #roleWork = Promise.resolve();
  #ready = false; // first media settled; offers may be made
  #dirty = false;
  #negotiating = false;
  #ended = false;
  #capturing = false; // the camera and microphone are being captured for the first time
  /** @type {string | null} what the last accepted offer asked for; equal means no offer needed */
  #lastNegotiated = null;
  #lastPublished = '{}';
  #lastSizes = '';
  /** @type {Set<number>} remote video track ids with a tile on screen: the ones we receive */
  #shownVideo = new Set();
  /** @type {Record<string, number>} mid → trackId, as the server last said */
  #audioSlots = {};
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #iceTimer = undefined;
  #iceRestartPending = false; // an offer must go out even if nothing else changed
  /** @type {Set<'microphone' | 'camera'>} on stage by invitation, not captured until turned on */
  #notCaptured = new Set();
  #lastIceRestart = 0;

  /**
   * @param {Signal} signal
   * @param {Room} room
   * @param {EngineOptions} opts
   */
  constructor(signal, room, opts) {
    super();
    this.#signal = signal;
    this.#room = room;
    this.#opts = opts;
    room.on('role', ({ before, after }) => this.#onRoleChanged(before, after));
    room.on('forced_mute', (source) => this.#mutedByHost(source));
    room.on('subscriptions', () => {
      // A slot may already carry a new track: the server can name one before we heard of it.
      this.#applyAudioSlots();
      this.renegotiate();
    });
  }

  get sharing() {
    return Boolean(this.#publisher?.has('screen'));
  }

  /**
   * The media messages; returns whether this one was one of them.
   * @param {any} msg
   */
  apply(msg) {
    if (msg.type === 'publish_layers') this.#setLayers(msg.source, msg.active);
    else if (msg.type === 'audio_slots') {
      this.#audioSlots = msg.slots ?? {};
      this.#applyAudioSlots();
    } else return false;
    return true;
  }

  // Creates the peer connection once the room is joined; `limits` says how to encode.
  /** @param {Limits} limits */
  open(limits) {
    this.pc = new RTCPeerConnection();
    this.pc.addEventListener('connectionstatechange', () => this.#onConnectionState());
    this.#receivers = new ReceiverPool(this.pc);
    this.#publisher = new Publisher(this.pc, {
      simulcast: this.#opts.simulcast,
      camera: limits.camera,
      screen: limits.screen,
    });
  }

  // Captures what our role lets us send, then makes the first offer.
  async start() {
    await this.#syncPublishing();
    if (this.#ended) return;
    if (this.#room.joinsMuted && this.canPublish('microphone') && !this.muted.microphone) {
      // The room is large: start muted, as the host set (the first offer carries the mute).
      this.setMuted('microphone', true);
      this.emit('notice', { code: 'joined_muted', above: this.#room.settings?.join_muted_above });
    }
    this.#ready = true;
    this.renegotiate();
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

  /**
   * @param {'microphone' | 'camera'} source
   * @param {boolean} muted
   */
  setMuted(source, muted) {
    if (!muted && this.#notCaptured.has(source)) {
      this.#captureLate(source);
      return;
    }
    const track = this.#publisher?.track(source);
    if (!track) {
      // Still capturing: the track takes this state when it comes (the first offer carries it).
      if (this.#capturing) {
        this.muted[source] = muted;
        this.emit('muted');
      }
      return;
    }
    track.enabled = !muted;
    this.muted[source] = muted;
    this.#publisher.setPaused(source, muted);
    this.#signal.send({ type: 'mute', source, muted });
    this.emit('muted');
  }

  // A live device switch: `track` replaces what `source` sends, keeping its mute state; the
  // old track is stopped. Resolves to false when nothing of `source` is being sent.
  /**
   * @param {'microphone' | 'camera'} source
   * @param {MediaStreamTrack} track
   */
  async switchDevice(source, track) {
    if (!this.#publisher?.has(source) || this.#ended) {
      track.stop();
      return false;
    }
    track.enabled = !this.muted[source];
    const old = await this.#publisher.replace(source, track);
    if (this.localStream) {
      if (old) this.localStream.removeTrack(old);
      this.localStream.addTrack(track);
    }
    old?.stop();
    this.emit('local');
    return true;
  }

  // While the camera and microphone are captured, `muted` is the choice their tracks will take.
  get capturing() {
    return this.#capturing;
  }

  /** @param {Source} source */
  canPublish(source) {
    return Boolean(this.#publisher?.has(source)) || this.#notCaptured.has(/** @type {any} */ (source));
  }

  /** @param {Source} source */
  localTrack(source) {
    return this.#publisher?.track(source) ?? null;
  }

  // Throws when the screen cannot be captured (refused, unsupported, no user gesture).
  async startScreenShare() {
    if (!this.#room.onStage || this.sharing || this.#ended) return;
    const stream = await this.#opts.getScreen();
    const track = stream.getVideoTracks()[0];
    if (!track || this.#ended || !this.#room.onStage || this.sharing) {
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

  /**
   * sizes: trackId → rendered height in device pixels (0: not visible). Sent only when
   * something changed, so callers may report as often as their layout changes. `shown`: the
   * track ids whose tiles are on the page (even in a hidden tab); only those are received, so
   * the SDP stays small in a room of hundreds.
   * @param {Map<number, number>} sizes
   * @param {Set<number> | null} shown
   */
  reportVideoSizes(sizes, shown = null) {
    const tracks = this.#room.tracks;
    if (!this.#room.me || this.#ended) return;
    if (shown) {
      const now = new Set([...shown].filter((id) => tracks.get(id)?.kind === 'video'));
      const changed = now.size !== this.#shownVideo.size || [...now].some((id) => !this.#shownVideo.has(id));
      this.#shownVideo = now;
      if (changed) this.renegotiate();
    }
    /** @type {Record<number, number>} */
    const known = {};
    for (const [id, height] of sizes) {
      if (tracks.get(id)?.kind === 'video') known[id] = Math.max(0, Math.round(height));
    }
    const key = JSON.stringify(known);
    if (key === this.#lastSizes) return;
    this.#lastSizes = key;
    this.#signal.send({ type: 'video_sizes', sizes: known });
  }

  // What we receive from `participantId`: [{kind, source, trackId, receiver}].
  /** @param {number} participantId */
  receiversOf(participantId) {
    return this.#receivers?.of(participantId) ?? [];
  }

  // Stops all media for good.
  close() {
    this.#ended = true;
    clearTimeout(this.#iceTimer);
    this.pc?.close();
    stopStream(this.localStream);
    stopStream(this.screenStream);
  }

  /**
   * @param {string} before
   * @param {string} after
   */
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
    // On stage by a host's invitation: nothing is captured or sent until the person turns the
    // camera or the microphone on.
    this.#roleWork = this.#roleWork.then(() => {
      if (this.#ended || !this.#room.onStage || this.localStream) return;
      this.#notCaptured = new Set(['microphone', 'camera']);
      this.muted = { microphone: true, camera: true };
      this.emit('local');
      this.emit('muted');
    });
  }

  /**
   * Captures one source turned on for the first time after an invitation, and publishes it.
   * @param {'microphone' | 'camera'} source
   */
  async #captureLate(source) {
    this.#notCaptured.delete(source);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(source === 'microphone' ? { audio: true } : { video: LATE_VIDEO });
    } catch (err) {
      this.#notCaptured.add(source);
      this.emit('error', { code: 'no_media', message: `The ${source} is unavailable (${err.message || err.name})`, fatal: false });
      return;
    }
    const track = stream.getTracks()[0];
    if (!track || this.#ended || !this.#room.onStage) {
      stopStream(stream);
      return;
    }
    this.localStream ??= new MediaStream();
    this.localStream.addTrack(track);
    this.muted[source] = false;
    await this.#publisher.publish(source, track, this.localStream);
    this.emit('local');
    this.emit('muted');
    this.renegotiate();
  }

  // Brings what we send in line with our role. Serialised, because capturing takes a while
  // and the role may change again meanwhile.
  #syncPublishing() {
    this.#roleWork = this.#roleWork
      .then(async () => {
        if (this.#ended) return;
        if (!this.#room.onStage) return this.#stopPublishing();
        if (!this.localStream) await this.#startPublishing();
      })
      // One failed capture must not stall every later role change.
      .catch((err) => console.error('confab: could not change what we send', err));
    return this.#roleWork;
  }

  async #startPublishing() {
    // Joining muted sends nothing from the first packet on; the choice counts once. It is the
    // state from the moment the capture starts, so the buttons say it (and take a click) while
    // the camera warms up.
    const start = this.#opts.startMuted ?? {};
    this.#opts.startMuted = undefined;
    this.muted = { microphone: Boolean(start.microphone), camera: Boolean(start.camera) };
    this.#capturing = true;
    this.emit('muted');
    let stream;
    try {
      stream = await this.#opts.getMedia();
    } catch (err) {
      this.#capturing = false;
      this.emit('muted');
      this.emit('error', {
        code: 'no_media',
        message: `Camera and microphone are unavailable (${err.message || err.name}); you can still watch and listen`,
        fatal: false,
      });
      return;
    }
    if (this.#ended || !this.#room.onStage) {
      this.#capturing = false;
      stopStream(stream);
      this.emit('muted');
      return;
    }
    this.localStream = stream;
    // Still capturing until both tracks are published: a reused sender's publish waits on
    // replaceTrack, and a click on the source not yet published must still be taken.
    try {
      for (const source of /** @type {const} */ (['microphone', 'camera'])) {
        const track = stream.getTracks().find((t) => t.kind === KIND_OF[source]);
        if (!track) continue;
        track.enabled = !this.muted[source];
        this.#publisher.setPaused(source, this.muted[source]);
        await this.#publisher.publish(source, track, stream);
      }
    } finally {
      this.#capturing = false;
    }
    this.emit('muted');
    this.emit('local');
  }

  #stopPublishing() {
    this.#notCaptured.clear();
    if (!this.#publisher) return;
    for (const track of this.#publisher.unpublishAll()) track.stop();
    stopStream(this.localStream);
    stopStream(this.screenStream);
    this.localStream = null;
    this.screenStream = null;
    this.emit('local');
  }

  /** @param {'microphone' | 'camera'} source */
  #mutedByHost(source) {
    const track = this.#publisher?.track(source);
    if (!track) return;
    // Keep what we send in line with what the others are told, so unmuting is one click.
    track.enabled = false;
    this.muted[source] = true;
    this.#publisher.setPaused(source, true);
    this.emit('notice', { code: 'muted_by_host', source });
    this.emit('muted');
  }

  // Points the audio slots at the voices the server last named for them.
  #applyAudioSlots() {
    if (!this.#receivers) return;
    const touched = this.#receivers.assignAudio(this.#audioSlots, (id) => this.#room.tracks.get(id));
    for (const participant of touched) this.#emitStream(participant);
  }

  // The server names which of our sources it means; our own track ids are never announced to us.
  /**
   * @param {Source} source
   * @param {string[]} active
   */
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
    if (!this.#room.onStage && this.#publisher.sources().length) this.#stopPublishing();
    const tracks = [...this.#room.tracks.values()];
    const microphones = tracks.filter((t) => t.kind === 'audio').length;
    const slots = Math.min(AUDIO_SLOTS, this.#room.limits?.max_audio_slots ?? 0, microphones);
    this.#receivers.ensureAudioSlots(slots);
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
    const sdp = await this.#signal.offer({
      type: 'offer',
      sdp: this.pc.localDescription.sdp,
      publish,
      subscribe: this.#receivers.subscribeMap(),
      audio_slots: this.#receivers.audioSlotMids(),
    });
    if (this.#ended) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    if (restarting) this.#iceRestartPending = false;
    const published = JSON.stringify(publish);
    if (published !== this.#lastPublished) {
      // The server creates newly published tracks unmuted; a mute clicked before had no track to apply to.
      for (const [source, muted] of Object.entries(this.muted)) {
        if (muted && this.#publisher.has(source)) this.#signal.send({ type: 'mute', source, muted });
      }
      this.#lastPublished = published;
    }
    this.#lastNegotiated = signature;
  }

  #wantedTracks() {
    // Video for the tiles on screen (the server then decides from the sizes we report what
    // it forwards, and at which layer); audio comes on the server-filled slots.
    return new Map(
      [...this.#room.tracks]
        .filter(([id, t]) => t.kind === 'video' && this.#shownVideo.has(id))
        .map(([id, t]) => [id, { kind: t.kind, participant: t.participant, source: t.source }]),
    );
  }

  async #rollback() {
    if (this.pc?.signalingState !== 'have-local-offer') return;
    try {
      await this.pc.setLocalDescription({ type: 'rollback' });
    } catch (err) {
      console.warn('confab: rollback failed', err);
    }
  }

  /** @param {number | null | undefined} participant */
  #emitStream(participant) {
    if (participant === null || participant === undefined) return;
    this.emit('stream', participant);
  }
}
