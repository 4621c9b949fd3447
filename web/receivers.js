// The pool of receive-only transceivers: one per subscribed remote track, recycled when tracks
// go away so the SDP does not grow an m-line for every track that ever existed.

export class ReceiverPool {
  #pc;
  #slots = [];

  constructor(pc) {
    this.#pc = pc;
  }

  // Brings the transceivers in line with `wanted` (Map trackId → {kind, participant, source}) and
  // returns the ids of participants whose set of receiving tracks changed. Must only run while
  // no offer is in flight, so the directions set here are exactly what the next offer carries.
  sync(wanted) {
    const touched = new Set();
    // An m-line the answer rejected is stopped for good and can never receive again.
    this.#slots = this.#slots.filter((slot) => {
      if (slot.transceiver.currentDirection !== 'stopped') return true;
      touched.add(slot.participant);
      return false;
    });
    for (const slot of this.#slots) {
      if (slot.trackId !== null && !wanted.has(slot.trackId)) {
        touched.add(slot.participant);
        slot.transceiver.direction = 'inactive';
        slot.trackId = null;
        slot.participant = null;
        slot.source = null;
      }
    }
    for (const [trackId, track] of wanted) {
      if (this.#slots.some((s) => s.trackId === trackId)) continue;
      let slot = this.#slots.find((s) => s.trackId === null && s.kind === track.kind);
      if (slot) {
        slot.transceiver.direction = 'recvonly';
      } else {
        slot = {
          kind: track.kind,
          transceiver: this.#pc.addTransceiver(track.kind, { direction: 'recvonly' }),
          trackId: null,
          participant: null,
          source: null,
        };
        this.#slots.push(slot);
      }
      slot.trackId = trackId;
      slot.participant = track.participant;
      slot.source = track.source;
      touched.add(track.participant);
    }
    return touched;
  }

  get size() {
    return this.#slots.length;
  }

  // mid → trackId for every transceiver that currently receives; read after
  // setLocalDescription, when new transceivers have been given their mids.
  subscribeMap() {
    const map = {};
    for (const slot of this.#slots) {
      const mid = slot.transceiver.mid;
      if (slot.trackId !== null && mid !== null) map[mid] = slot.trackId;
    }
    return map;
  }

  // Changes whenever the next offer would differ from the last one in what it receives.
  signature() {
    return this.#slots.map((s) => `${s.transceiver.mid}:${s.transceiver.direction}:${s.trackId}`).join(',');
  }

  // What `participant` is being sent to us, one entry per receiving transceiver.
  of(participant) {
    return this.#slots
      .filter((s) => s.participant === participant)
      .map((s) => ({ kind: s.kind, source: s.source, trackId: s.trackId, receiver: s.transceiver.receiver }));
  }
}
