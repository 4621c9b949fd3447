// One video on the stage: a participant's camera (or their initials when there is no picture)
// or their shared screen, with their name, what they have muted, a raised hand and how well
// their video arrives. Sound plays elsewhere (audio.js): a tile may be on another page of the
// grid and must still be heard. My own screen shows a "You are presenting" card instead of
// itself: a picture of the screen on that screen is a mirror tunnel.

import { icon } from './icons.js';

export class Tile {
  #video;
  #track = null;
  #cameraMuted = false;
  #forwarded = true;
  #refresh = () => this.#showVideoOrAvatar();
  trackId = null; // the remote track shown, for reporting its size; null for our own

  // source: 'camera' or 'screen'. onPin: called with the participant when the pin is clicked.
  // onStopPresenting: the button on my own screen's card.
  constructor(participant, { source, name, local = false, onPin = null, onStopPresenting = null }) {
    this.participant = participant;
    this.source = source;
    this.local = local;
    this.el = document.createElement('figure');
    this.el.className = 'tile';
    this.el.dataset.participant = String(participant);
    this.el.dataset.source = source;
    if (local) this.el.dataset.local = 'true';
    this.presenting = local && source === 'screen';

    this.#video = document.createElement('video');
    this.#video.muted = true;
    this.#video.autoplay = true;
    this.#video.playsInline = true;
    this.el.append(this.#video);

    this.avatar = document.createElement('div');
    this.avatar.className = 'avatar';
    this.el.append(this.avatar);

    if (this.presenting) {
      const card = document.createElement('div');
      card.className = 'presenting';
      card.innerHTML = `${icon('screen')}<p>You are presenting to everyone</p>`;
      const stop = document.createElement('button');
      stop.type = 'button';
      stop.className = 'stop-presenting';
      stop.textContent = 'Stop presenting';
      stop.addEventListener('click', () => onStopPresenting?.());
      card.append(stop);
      this.el.append(card);
    }

    const caption = document.createElement('figcaption');
    caption.className = 'label';
    caption.innerHTML =
      `<span class="hand-up" hidden>${icon('hand', 'hand raised')}</span>` +
      `<span class="mic-off" hidden>${icon('micOff', 'microphone muted')}</span>` +
      (source === 'screen' ? `<span class="screen-mark">${icon('screen', 'screen')}</span>` : '') +
      '<span class="name"></span>' +
      (local ? '<span class="you">you</span>' : '');
    this.el.append(caption);

    this.quality = document.createElement('span');
    this.quality.className = 'quality';
    this.quality.setAttribute('role', 'img');
    this.quality.hidden = true;
    this.quality.innerHTML = '<i></i><i></i><i></i>';
    this.el.append(this.quality);

    // The buttons over a tile, shown on hover or focus; others add theirs here (a host menu).
    this.actions = document.createElement('div');
    this.actions.className = 'tile-actions';
    this.el.append(this.actions);
    if (onPin && !local) {
      this.pinButton = tileButton('pin', () => onPin(participant));
      this.pinButton.setAttribute('aria-pressed', 'false');
      this.actions.append(this.pinButton);
    }
    if (!this.presenting && this.el.requestFullscreen) {
      this.fullscreenButton = tileButton('fullscreen', () => this.toggleFullscreen());
      this.actions.append(this.fullscreenButton);
    }
    this.setName(name);
    this.#showVideoOrAvatar();
  }

  setName(name) {
    this.name = name;
    const label = this.source === 'screen' ? `${name}’s screen` : name;
    this.el.querySelector('.name').textContent = label;
    this.avatar.textContent = initials(name);
    const what = this.source === 'screen' ? `${name}’s screen` : name;
    this.pinButton?.setAttribute('aria-label', `Pin ${what}`);
    this.pinButton?.setAttribute('title', `Keep ${what} large (only for you)`);
    this.fullscreenButton?.setAttribute('aria-label', `Full screen: ${what}`);
    this.fullscreenButton?.setAttribute('title', `Show ${what} full screen`);
  }

  toggleFullscreen() {
    if (document.fullscreenElement === this.el) document.exitFullscreen().catch(() => {});
    else this.el.requestFullscreen().catch(() => {});
  }

  setHand(raised) {
    /** @type {HTMLElement} */ (this.el.querySelector('.hand-up')).hidden = !raised || this.source !== 'camera';
    if (raised) this.el.dataset.hand = 'true';
    else delete this.el.dataset.hand;
  }

  // level: 'good' | 'fair' | 'poor', or null when unknown; detail: what was measured.
  setQuality(level, detail = '') {
    this.quality.hidden = level === null;
    if (level === null) return;
    this.quality.dataset.level = level;
    const text = `Connection ${level}${detail ? `: ${detail}` : ''}`;
    this.quality.setAttribute('aria-label', text);
    this.quality.title = text;
  }

  setSpotlit(spotlit) {
    if (spotlit) this.el.dataset.spotlit = 'true';
    else delete this.el.dataset.spotlit;
  }

  setVideo(track, trackId = null) {
    this.trackId = trackId;
    if (this.presenting) track = null;
    if (track === this.#track) return;
    this.#track?.removeEventListener('mute', this.#refresh);
    this.#track?.removeEventListener('unmute', this.#refresh);
    this.#track = track;
    // A received track stays muted until packets arrive; until then the initials look better than black.
    track?.addEventListener('mute', this.#refresh);
    track?.addEventListener('unmute', this.#refresh);
    this.#video.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.#video.play().catch(() => {});
    this.#showVideoOrAvatar();
  }

  // muted: source → true/false when published, undefined when not.
  setMuted({ microphone, camera }) {
    /** @type {HTMLElement} */ (this.el.querySelector('.mic-off')).hidden = this.source !== 'camera' || microphone !== true;
    this.#cameraMuted = this.source === 'camera' && camera === true;
    this.#showVideoOrAvatar();
  }

  // Whether the server sends us this video now (last-N may leave it out).
  setForwarded(forwarded) {
    this.#forwarded = forwarded;
    this.#showVideoOrAvatar();
  }

  setSpeaking(speaking) {
    if (speaking) this.el.dataset.speaking = 'true';
    else delete this.el.dataset.speaking;
  }

  setPinned(pinned) {
    this.pinButton?.setAttribute('aria-pressed', String(pinned));
  }

  // Where the layout puts it; null hides it (another page of the grid).
  place(rect) {
    this.el.hidden = !rect;
    if (!rect) return;
    Object.assign(this.el.style, {
      left: `${rect.x}px`,
      top: `${rect.y}px`,
      width: `${rect.w}px`,
      height: `${rect.h}px`,
    });
    this.el.dataset.size = rect.pip ? 'pip' : rect.big ? 'large' : 'small';
  }

  // Whether the tile is on the current page of the grid (its video is received).
  onPage() {
    return !this.el.hidden;
  }

  // Height of the picture on screen in device pixels, 0 when nothing of it is seen: what the
  // server needs to pick a simulcast layer.
  renderedHeight() {
    if (!this.onPage() || this.#cameraMuted) return 0;
    return Math.round(this.el.getBoundingClientRect().height * devicePixelRatio);
  }

  #showVideoOrAvatar() {
    const live = this.#track && this.#track.readyState === 'live' && !this.#track.muted;
    const on = live && !this.#cameraMuted && this.#forwarded;
    this.el.dataset.video = on ? 'on' : 'off';
    if (!this.local) this.el.dataset.forwarded = String(this.#forwarded);
  }
}

function tileButton(kind, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = kind;
  button.innerHTML = icon(kind);
  button.addEventListener('click', onClick);
  return button;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((w) => [...w][0].toUpperCase())
    .join('');
}
