// What this browser sends: one sending transceiver per source (microphone, camera, screen), the
// camera as three simulcast layers, and the layers switched on and off as the server asks.
// How each source is encoded is the server's word, handed in from `joined`.

/** @typedef {import('./room.js').Encoding} Encoding */

// A layer switch the browser refuses (mid-negotiation) is tried again this often, spaced out.
const LAYER_ATTEMPTS = 5;
const LAYER_RETRY_MS = 200;

export const KIND_OF = { microphone: 'audio', camera: 'video', screen: 'video', screen_audio: 'audio' };

// Transceivers are added in this order so the mids of the usual sources are stable and low.
const ORDER = ['microphone', 'camera', 'screen', 'screen_audio'];

/**
 * The server's description of one encoding as the browser takes it. The rids (q = quarter,
 * h = half, f = full size) are part of the protocol; a lone encoding has none.
 * @param {Encoding} e
 * @returns {RTCRtpEncodingParameters}
 */
function toParameters(e) {
  /** @type {RTCRtpEncodingParameters} */
  const p = { scaleResolutionDownBy: e.scale_down_by, maxBitrate: e.max_bitrate, maxFramerate: e.max_framerate };
  if (e.rid) p.rid = e.rid;
  return p;
}

export class Publisher {
  #pc;
  #simulcast;
  /** @type {RTCRtpEncodingParameters[]} */
  #camera;
  /** @type {RTCRtpEncodingParameters[]} */
  #screen;
  #senders = new Map(); // source → RTCRtpTransceiver, sending now
  // source → a transceiver left idle by a demotion or a stopped share, reused when that source
  // comes back so the SDP does not grow. Kept per source because a camera's three simulcast
  // encodings cannot be turned into a screen's one, or back.
  #retired = new Map();
  #wantedLayers = new Map(); // source → Set of rids the server last asked for
  #applying = new Map(); // source → the promise of the layer switches queued for it
  // Sources muted by their owner: every layer off, so a muted microphone sends no packets at
  // all (a disabled track alone still sends silence) and a stopped camera no black frames.
  #paused = new Set();

  /**
   * @param {RTCPeerConnection} pc
   * @param {{simulcast: boolean, camera: Encoding[], screen: Encoding[]}} opts the encodings
   *   are the server's (`joined.limits`): it budgets what it asks us to send.
   */
  constructor(pc, { simulcast, camera, screen }) {
    this.#pc = pc;
    this.#simulcast = simulcast;
    this.#camera = camera.map(toParameters);
    this.#screen = screen.map(toParameters);
  }

  get size() {
    return this.#senders.size + this.#retired.size;
  }

  has(source) {
    return Boolean(this.#senders.get(source)?.sender.track);
  }

  track(source) {
    return this.#senders.get(source)?.sender.track ?? null;
  }

  sources() {
    return [...this.#senders.keys()];
  }

  async publish(source, track, stream) {
    const spare = this.#retired.get(source);
    if (spare) {
      this.#retired.delete(source);
      spare.direction = 'sendonly';
      await spare.sender.replaceTrack(track);
      spare.sender.setStreams(stream);
      this.#senders.set(source, spare);
      // A paused layer from the previous publication must not stay paused for the new one;
      // the server says afresh what the new track needs.
      this.#wantedLayers.delete(source);
      const error = await this.#setActive(spare.sender, () => !this.#paused.has(source));
      if (error) console.warn('confab: could not resume the layers of a reused sender', error);
      return;
    }
    /** @type {RTCRtpTransceiverInit} */
    const init = { direction: 'sendonly', streams: [stream] };
    if (source === 'camera' && this.#simulcast) init.sendEncodings = this.#camera.map((e) => ({ ...e }));
    // Text on a shared screen must stay legible: one high-bitrate layer that keeps its
    // resolution and gives up frame rate instead when bandwidth runs short.
    if (source === 'screen') init.sendEncodings = this.#screen.map((e) => ({ ...e }));
    if (this.#paused.has(source)) {
      init.sendEncodings = (init.sendEncodings ?? [{}]).map((e) => ({ ...e, active: false }));
    }
    const transceiver = this.#pc.addTransceiver(track, init);
    this.#senders.set(source, transceiver);
    if (source === 'screen') {
      const params = transceiver.sender.getParameters();
      params.degradationPreference = 'maintain-resolution';
      await transceiver.sender.setParameters(params).catch((err) => {
        console.warn('confab: could not prefer resolution for the screen share', err);
      });
    }
  }

  // A live device switch: the same sender (no renegotiation) carries the new track.
  async replace(source, track) {
    const transceiver = this.#senders.get(source);
    if (!transceiver) return null;
    const old = transceiver.sender.track;
    await transceiver.sender.replaceTrack(track);
    return old;
  }

  // Muting by the owner: `paused` turns every layer of `source` off; unpausing restores the
  // layers the server last asked for (all of them if it never said). Before the source is
  // published this only records the wish, applied when it is.
  setPaused(source, paused) {
    if (paused) this.#paused.add(source);
    else this.#paused.delete(source);
    const previous = this.#applying.get(source) ?? Promise.resolve();
    const next = previous.then(() => this.#applyLayers(source));
    this.#applying.set(source, next);
    return next;
  }

  // Stops sending `source`; the next offer says so and the server unpublishes it.
  unpublish(source) {
    const transceiver = this.#senders.get(source);
    if (!transceiver) return null;
    this.#senders.delete(source);
    const track = transceiver.sender.track;
    transceiver.direction = 'inactive';
    transceiver.sender.replaceTrack(null).catch(() => {});
    this.#retired.set(source, transceiver);
    return track;
  }

  unpublishAll() {
    return this.sources()
      .map((s) => this.unpublish(s))
      .filter(Boolean);
  }

  // mid → source for each m-line that sends; read after setLocalDescription gave new ones mids.
  publishMap() {
    const map = {};
    for (const source of ORDER) {
      const t = this.#senders.get(source);
      if (t?.mid != null && t.sender.track) map[t.mid] = source;
    }
    return map;
  }

  // Changes whenever the next offer would differ from the last one in what it sends.
  signature() {
    return [...this.#senders, ...this.#retired].map(([source, t]) => `${source}:${t.mid}:${t.direction}`).join(',');
  }

  // The server says which layers (by rid) anyone receives; encoding the rest wastes the
  // sender's CPU and uplink. `[]` pauses the track; `[""]` names the one layer of a track
  // without simulcast. Requests for one source are applied in order, and the latest one wins:
  // a burst of changes (everyone minimising at once) must end in the last state asked for.
  setLayers(source, rids) {
    this.#wantedLayers.set(source, new Set(rids));
    const previous = this.#applying.get(source) ?? Promise.resolve();
    const next = previous.then(() => this.#applyLayers(source));
    this.#applying.set(source, next);
    return next;
  }

  async #applyLayers(source) {
    for (let attempt = 1; attempt <= LAYER_ATTEMPTS; attempt++) {
      const transceiver = this.#senders.get(source);
      const wanted = this.#wantedLayers.get(source);
      if (!transceiver) return;
      const paused = this.#paused.has(source);
      if (!wanted && !paused && !transceiver.sender.getParameters().encodings?.some((e) => !e.active)) return;
      const error = await this.#setActive(
        transceiver.sender,
        (encoding) => !paused && (!wanted || wanted.has(encoding.rid ?? '')),
      );
      if (!error) return;
      if (attempt === LAYER_ATTEMPTS) {
        console.warn('confab: could not switch simulcast layers', error);
        return;
      }
      await new Promise((r) => setTimeout(r, LAYER_RETRY_MS * attempt));
    }
  }

  // The rid of each sending layer of `source`, for deciding which track a layer list is about.
  rids(source) {
    const transceiver = this.#senders.get(source);
    if (!transceiver) return [];
    return transceiver.sender.getParameters().encodings.map((e) => e.rid ?? '');
  }

  // Sets each encoding's `active`; resolves to null once the sender reports exactly that, or
  // to the error that stopped it.
  async #setActive(sender, isActive) {
    const params = sender.getParameters();
    if (!params.encodings?.length) return null;
    let changed = false;
    for (const encoding of params.encodings) {
      const active = isActive(encoding);
      if (encoding.active !== active) {
        encoding.active = active;
        changed = true;
      }
    }
    if (!changed) return null;
    try {
      await sender.setParameters(params);
    } catch (err) {
      // Chrome drops the transaction getParameters() opened when a negotiation finishes
      // meanwhile; the caller tries again with a fresh read.
      return err;
    }
    const now = sender.getParameters().encodings ?? [];
    return now.every((e) => e.active === isActive(e)) ? null : new Error('the sender kept other layers');
  }
}
