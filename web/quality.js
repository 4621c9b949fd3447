// Connection quality from getStats: a level per tile (how well each video arrives: packet loss,
// round trip, frame rate) and a notice when my own connection is poor. One getStats() for the
// whole connection every two seconds, however many tiles there are.

const EVERY_MS = 2_000;
// Loss over an interval, as a fraction, from which a video is fair or poor.
const LOSS_FAIR = 0.02;
const LOSS_POOR = 0.08;
// Round trip in seconds.
const RTT_FAIR = 0.25;
const RTT_POOR = 0.5;
// A video arriving at fewer frames a second than this looks choppy.
const FPS_FAIR = 12;
const FPS_POOR = 5;
// Poor this many intervals in a row before saying so, and quiet this long after saying it.
const POOR_INTERVALS = 3;
const NOTICE_QUIET_MS = 60_000;

/** @typedef {'good' | 'fair' | 'poor'} Level */

// The worse of what loss, round trip and frame rate say; fps null when not measured.
/** @param {{loss: number, rtt: number | null, fps: number | null}} m @returns {Level} */
export function levelOf({ loss, rtt, fps }) {
  const rank = (/** @type {Level} */ l) => ['good', 'fair', 'poor'].indexOf(l);
  /** @type {Level[]} */
  const said = [loss >= LOSS_POOR ? 'poor' : loss >= LOSS_FAIR ? 'fair' : 'good'];
  if (rtt !== null) said.push(rtt >= RTT_POOR ? 'poor' : rtt >= RTT_FAIR ? 'fair' : 'good');
  if (fps !== null) said.push(fps < FPS_POOR ? 'poor' : fps < FPS_FAIR ? 'fair' : 'good');
  return said.reduce((a, b) => (rank(b) > rank(a) ? b : a));
}

function describe({ loss, rtt, fps }) {
  const parts = [`${Math.round(loss * 100)}% loss`];
  if (rtt !== null) parts.push(`${Math.round(rtt * 1000)} ms round trip`);
  if (fps !== null) parts.push(`${Math.round(fps)} frames/s`);
  return parts.join(', ');
}

/**
 * Polls the client's connection and paints the grid's tiles. onPoor(text): my own connection
 * has been poor for a while.
 * @param {import('./client.js').ConfabClient} client
 * @param {import('./grid.js').Grid} grid
 * @param {{onPoor: (text: string) => void}} opts
 */
export function watchQuality(client, grid, { onPoor }) {
  const before = new Map(); // stats id → {lost, received} at the last poll
  let poorFor = 0;
  let quietUntil = 0;

  async function poll() {
    const pc = client.pc;
    if (client.ended) return;
    setTimeout(poll, EVERY_MS);
    if (!pc || document.visibilityState === 'hidden') return;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    }
    // Remote track id → whose video it is.
    const owners = new Map();
    for (const p of client.participants.values()) {
      for (const r of client.receiversOf(p.id)) {
        if (r.kind === 'video' && r.receiver.track) owners.set(r.receiver.track.id, { participant: p.id, source: r.source });
      }
    }
    const seen = new Set();
    let rtt = null;
    /** @type {Map<string, {loss: number, fps: number | null}>} "participant:source" → measure */
    const inbound = new Map();
    // What I send, as the server reports it back.
    /** @type {{loss: number, rtt: number | null} | null} */
    let mine = null;
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') rtt = s.currentRoundTripTime;
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        const owner = owners.get(s.trackIdentifier);
        if (!owner) return;
        seen.add(s.id);
        const loss = intervalLoss(before, s.id, s.packetsLost ?? 0, s.packetsReceived ?? 0);
        inbound.set(`${owner.participant}:${owner.source}`, { loss, fps: s.framesPerSecond ?? null });
      }
      if (s.type === 'remote-inbound-rtp' && typeof s.fractionLost === 'number') {
        const loss = Math.max(mine?.loss ?? 0, s.fractionLost);
        mine = { loss, rtt: s.roundTripTime ?? mine?.rtt ?? null };
      }
    });
    for (const id of before.keys()) if (!seen.has(id)) before.delete(id);
    for (const tile of grid.tiles()) {
      if (tile.local) {
        const m = { loss: mine?.loss ?? 0, rtt: mine?.rtt ?? rtt, fps: null };
        tile.setQuality(mine || rtt !== null ? levelOf(m) : null, describe(m));
        continue;
      }
      const got = inbound.get(`${tile.participant}:${tile.source}`);
      // A paused or unsubscribed video says nothing about the connection.
      if (!got || !tile.onPage()) {
        tile.setQuality(null);
        continue;
      }
      // A still screen is sent at a frame or two a second: only a camera's rate says anything.
      const fps = tile.source === 'camera' ? got.fps ?? 0 : 0;
      const m = { loss: got.loss, rtt, fps: fps > 0 ? fps : null };
      tile.setQuality(levelOf(m), describe(m));
    }
    const own = { loss: mine?.loss ?? 0, rtt: mine?.rtt ?? rtt, fps: null };
    poorFor = levelOf(own) === 'poor' ? poorFor + 1 : 0;
    if (poorFor >= POOR_INTERVALS && Date.now() > quietUntil) {
      quietUntil = Date.now() + NOTICE_QUIET_MS;
      onPoor(`Your connection is unstable (${describe(own)}). Turning your camera off may help.`);
    }
  }
  setTimeout(poll, EVERY_MS);
}

// The fraction of packets lost since the last poll of this stream.
function intervalLoss(before, id, lost, received) {
  const last = before.get(id) ?? { lost: 0, received: 0 };
  before.set(id, { lost, received });
  const dl = lost - last.lost;
  const dr = received - last.received;
  return dl > 0 && dl + dr > 0 ? dl / (dl + dr) : 0;
}
