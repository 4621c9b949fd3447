// One participant's tile: their video (or initials when there is none), their sound, their name.

import { icon } from './icons.js';

export class Tile {
  #video;
  #audio = null;
  #stream = null;
  #videoTrack = null;
  #cameraMuted = false;
  #refresh = () => this.#showVideoOrAvatar();

  // onAudioBlocked: called when the browser refuses to start this tile's sound without a click.
  constructor(id, { name, local = false, onAudioBlocked = () => {} }) {
    this.onAudioBlocked = onAudioBlocked;
    this.el = document.createElement('figure');
    this.el.className = 'tile';
    this.el.dataset.participant = String(id);
    if (local) this.el.dataset.local = 'true';

    this.#video = document.createElement('video');
    // Sound goes through the <audio> element, so the video may always autoplay muted.
    this.#video.muted = true;
    this.#video.autoplay = true;
    this.#video.playsInline = true;
    this.el.append(this.#video);

    if (!local) {
      this.#audio = document.createElement('audio');
      this.#audio.autoplay = true;
      this.el.append(this.#audio);
    }

    this.avatar = document.createElement('div');
    this.avatar.className = 'avatar';
    this.el.append(this.avatar);

    const caption = document.createElement('figcaption');
    caption.className = 'label';
    caption.innerHTML =
      `<span class="mic-off" hidden>${icon('micOff', 'microphone muted')}</span>` +
      '<span class="name"></span>' +
      (local ? '<span class="you">you</span>' : '');
    this.el.append(caption);
    this.setName(name);
    this.#showVideoOrAvatar();
  }

  setName(name) {
    this.el.querySelector('.name').textContent = name;
    this.avatar.textContent = initials(name);
  }

  setStream(stream) {
    if (stream === this.#stream) return;
    this.#stream = stream;
    // Elements are only re-pointed when their own tracks changed, so an unrelated change
    // (say, their microphone going away) does not make the picture flicker.
    const videoTrack = stream.getVideoTracks()[0] ?? null;
    if (videoTrack !== this.#videoTrack) {
      this.#videoTrack?.removeEventListener('mute', this.#refresh);
      this.#videoTrack?.removeEventListener('unmute', this.#refresh);
      this.#videoTrack = videoTrack;
      // A received track stays muted until packets arrive; until then the initials look better than black.
      videoTrack?.addEventListener('mute', this.#refresh);
      videoTrack?.addEventListener('unmute', this.#refresh);
      this.#video.srcObject = videoTrack ? new MediaStream([videoTrack]) : null;
      if (videoTrack) this.#video.play().catch(() => {});
    }
    if (this.#audio) {
      const audioTracks = stream.getAudioTracks();
      const playing = this.#audio.srcObject?.getAudioTracks() ?? [];
      if (audioTracks.length !== playing.length || audioTracks.some((t, i) => t !== playing[i])) {
        this.#audio.srcObject = audioTracks.length ? new MediaStream(audioTracks) : null;
        this.playAudio();
      }
    }
    this.#showVideoOrAvatar();
  }

  playAudio() {
    if (!this.#audio?.srcObject) return Promise.resolve();
    return this.#audio.play().catch((err) => {
      if (err.name === 'NotAllowedError') this.onAudioBlocked();
    });
  }

  // muted: {microphone, camera}, each true/false when published, undefined when not.
  setMuted({ microphone, camera }) {
    this.el.querySelector('.mic-off').hidden = microphone !== true;
    this.#cameraMuted = camera === true;
    this.#showVideoOrAvatar();
  }

  #showVideoOrAvatar() {
    const live = this.#videoTrack && this.#videoTrack.readyState === 'live' && !this.#videoTrack.muted;
    this.el.dataset.video = live && !this.#cameraMuted ? 'on' : 'off';
  }
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((w) => [...w][0].toUpperCase())
    .join('');
}
