// The receive-only transceivers. Video: one per video we show, recycled as tiles come and go,
// so the SDP does not grow an m-line for every camera in a 300-person room. Audio: a few
// slots the server fills with the voices most recently heard (`audio_slots`), so a large room
// costs a handful of audio m-lines while a small meeting still gets one per microphone.

// Slots beyond this many remote microphones go to the most recent voices; 8 keeps every voice
// of a ten-person meeting on its own slot, which is where overlapping talk is common.
export const AUDIO_SLOTS = 8;

export class ReceiverPool {
  #pc;
  #slots = []; // video: {kind, transceiver, trackId, participant, source}, chosen here
  #audio = []; // {transceiver, trackId, participant, source}: the server chooses

  constructor(pc) {
    this.#pc = pc;
  }

  // Brings the video transceivers in line with `wanted` (Map trackId → {kind, participant,
  // source}) and returns the ids of participants whose set of receiving tracks changed. Must
  // only run while no offer is in flight, so the directions set here are exactly what the next
  // offer carries.
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

  // Adds audio slots until there are `count` (they are never taken away: an idle slot costs
  // one small m-line, and a room that shrank may grow again).
  ensureAudioSlots(count) {
    while (this.#audio.length < count) {
      const transceiver = this.#pc.addTransceiver('audio', { direction: 'recvonly' });
      this.#audio.push({ transceiver, trackId: null, participant: null, source: null });
    }
  }

  // The server's word on what each audio slot carries (mid → trackId); `trackInfo(id)` gives a
  // track's {participant, source}. Returns the participants whose audio changed.
  assignAudio(slots, trackInfo) {
    const touched = new Set();
    for (const slot of this.#audio) {
      const trackId = slots[slot.transceiver.mid] ?? null;
      if (trackId === slot.trackId) continue;
      touched.add(slot.participant);
      const info = trackId === null ? null : trackInfo(trackId);
      slot.trackId = info ? trackId : null;
      slot.participant = info?.participant ?? null;
      slot.source = info?.source ?? null;
      touched.add(slot.participant);
    }
    touched.delete(null);
    return touched;
  }

  get size() {
    return this.#slots.length + this.#audio.length;
  }

  // mid → trackId for every video transceiver that currently receives; read after
  // setLocalDescription, when new transceivers have been given their mids.
  subscribeMap() {
    const map = {};
    for (const slot of this.#slots) {
      const mid = slot.transceiver.mid;
      if (slot.trackId !== null && mid !== null) map[mid] = slot.trackId;
    }
    return map;
  }

  // The mids of the audio slots, for the offer.
  audioSlotMids() {
    return this.#audio.map((s) => s.transceiver.mid).filter((mid) => mid !== null);
  }

  // Changes whenever the next offer would differ from the last one in what it receives.
  signature() {
    const video = this.#slots.map((s) => `${s.transceiver.mid}:${s.transceiver.direction}:${s.trackId}`);
    const audio = this.#audio.map((s) => `a${s.transceiver.mid}`);
    return [...video, ...audio].join(',');
  }

  // What `participant` is being sent to us, one entry per receiving transceiver.
  of(participant) {
    return [...this.#slots, ...this.#audio.map((s) => ({ ...s, kind: 'audio' }))]
      .filter((s) => s.participant === participant && s.trackId !== null)
      .map((s) => ({ kind: s.kind, source: s.source, trackId: s.trackId, receiver: s.transceiver.receiver }));
  }
}
