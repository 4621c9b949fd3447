// How loud a microphone is, from a WebAudio AnalyserNode, for the level bars and the "You are muted" hint.

// A clone is measured, so a muted (disabled) microphone still shows that someone speaks.
// One AudioContext per page: browsers cap how many may be open.
/** @type {AudioContext | null} */
let context = null;

export class LevelMeter {
  #track;
  #source;
  #analyser;
  #samples;

  /** @param {MediaStreamTrack} track */
  constructor(track) {
    if (!context) {
      context = new AudioContext();
      // Built before the user clicked anything, the context may start suspended; the first
      // click or key press lets it run.
      const resume = () => context.resume().catch(() => {});
      addEventListener('pointerdown', resume, { once: true, capture: true });
      addEventListener('keydown', resume, { once: true, capture: true });
    }
    if (context.state === 'suspended') context.resume().catch(() => {});
    this.#track = track.clone();
    this.#track.enabled = true;
    this.#source = context.createMediaStreamSource(new MediaStream([this.#track]));
    this.#analyser = context.createAnalyser();
    this.#analyser.fftSize = 512;
    this.#samples = new Float32Array(this.#analyser.fftSize);
    this.#source.connect(this.#analyser);
  }

  // 0 (silence) … 1 (loud): the RMS of the last few milliseconds, scaled so speech reaches
  // about half way.
  get level() {
    this.#analyser.getFloatTimeDomainData(this.#samples);
    let sum = 0;
    for (const s of this.#samples) sum += s * s;
    return Math.min(1, Math.sqrt(sum / this.#samples.length) * 4);
  }

  stop() {
    this.#source.disconnect();
    this.#track.stop();
  }
}

// Paints `track`'s level into `bar` (an element with a child span whose width shows it) until
// the returned function is called.
/**
 * @param {HTMLElement} bar
 * @param {MediaStreamTrack | null} track
 */
export function showLevel(bar, track) {
  const fill = /** @type {HTMLElement} */ (bar.firstElementChild);
  if (!track) {
    fill.style.width = '0';
    return () => {};
  }
  const meter = new LevelMeter(track);
  let running = true;
  const paint = () => {
    if (!running) return;
    const level = meter.level;
    fill.style.width = `${Math.round(level * 100)}%`;
    bar.setAttribute('aria-valuenow', String(Math.round(level * 100)));
    setTimeout(paint, 100);
  };
  paint();
  return () => {
    running = false;
    meter.stop();
    fill.style.width = '0';
  };
}
