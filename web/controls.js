// The control bar: what I send (microphone, camera, screen), my raised hand, and for hosts the
// room lock and ending the meeting for everyone.

import { icon } from './icons.js';
import { canPickSpeaker } from './devicepicker.js';

export class Controls {
  #$;
  #client;
  #onProblem;
  #canShare = true;

  // onProblem(message): something the user asked for failed (no screen to share, say).
  constructor(view, client, { onProblem }) {
    this.#$ = (sel) => view.querySelector(sel);
    this.#client = client;
    this.#onProblem = onProblem;
    const $ = this.#$;
    $('#mic').addEventListener('click', () => client.setMuted('microphone', !client.muted.microphone));
    $('#cam').addEventListener('click', () => client.setMuted('camera', !client.muted.camera));
    $('#screen').addEventListener('click', () => this.toggleScreen());
    $('#hand').innerHTML = icon('hand');
    $('#hand').addEventListener('click', () => client.raiseHand(!this.#handRaised()));
    $('#lock').addEventListener('click', () => client.lockRoom(!client.locked));
    $('#leave').innerHTML = `${icon('leave')}<span>Leave</span>`;
    const menu = $('#leave-menu');
    $('#leave').addEventListener('click', () => {
      // A host might mean either; everyone else can only mean leaving.
      if (!client.isHost) return client.leave();
      menu.hidden = !menu.hidden;
      $('#leave').setAttribute('aria-expanded', String(!menu.hidden));
      if (!menu.hidden) /** @type {HTMLElement} */ (menu.querySelector('button')).focus();
    });
    const closeMenu = (refocus) => {
      menu.hidden = true;
      $('#leave').setAttribute('aria-expanded', 'false');
      if (refocus) $('#leave').focus();
    };
    document.addEventListener('click', (ev) => {
      if (!menu.hidden && !(/** @type {Element} */ (ev.target).closest('.leave-group'))) closeMenu(false);
    });
    // Escape closes the menu and gives the focus back to the button that opened it.
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !menu.hidden) closeMenu(true);
    });
    // Phone browsers cannot share their screen: no button that can only fail.
    this.#canShare = Boolean(navigator.mediaDevices?.getDisplayMedia);
    $('#leave-only').addEventListener('click', () => client.leave());
    $('#end-all').addEventListener('click', () => {
      menu.hidden = true;
      client.endMeeting();
    });
    this.update();
  }

  async toggleScreen() {
    const client = this.#client;
    if (client.sharing) return client.stopScreenShare();
    try {
      await client.startScreenShare();
    } catch (err) {
      // Closing the browser's picker is a choice, not a failure.
      if (err.name === 'NotAllowedError' || err.name === 'AbortError') return;
      this.#onProblem(`Could not share the screen: ${err.message || err.name}`);
    } finally {
      this.update();
    }
  }

  update() {
    const $ = this.#$;
    const client = this.#client;
    // While the first capture runs, the buttons show (and change) the choice it will take.
    const muted = (source) => (client.canPublish(source) || client.capturing ? client.muted[source] : undefined);
    paintToggle($('#mic'), muted('microphone'), 'mic', 'micOff', 'microphone');
    paintToggle($('#cam'), muted('camera'), 'cam', 'camOff', 'camera');
    // The audience sends nothing but may still choose where the sound comes out.
    $('#devices').hidden = !client.me || (!client.onStage && !canPickSpeaker());
    // The audience has nothing to switch on; greyed-out buttons would only suggest otherwise.
    $('#mic').hidden = !client.onStage;
    $('#cam').hidden = !client.onStage;
    const screen = $('#screen');
    screen.hidden = !client.onStage || !this.#canShare;
    screen.setAttribute('aria-pressed', String(client.sharing));
    screen.title = client.sharing ? 'Stop sharing your screen' : 'Share your screen';
    screen.innerHTML = icon(client.sharing ? 'screenOff' : 'screen');
    const hand = $('#hand');
    hand.hidden = !client.me || client.isHost;
    hand.setAttribute('aria-pressed', String(this.#handRaised()));
    hand.title = this.#handRaised() ? 'Lower your hand' : 'Raise your hand';
    const lock = $('#lock');
    lock.hidden = !client.isHost;
    lock.setAttribute('aria-pressed', String(client.locked));
    lock.title = client.locked ? 'Unlock the room' : 'Lock the room: newcomers wait to be let in';
    lock.innerHTML = icon(client.locked ? 'lock' : 'unlock');
    if (!client.isHost) $('#leave-menu').hidden = true;
  }

  #handRaised() {
    return Boolean(this.#client.me) && this.#client.hands.includes(this.#client.me.id);
  }
}

// The button's name (aria-label, in index.html) stays; aria-pressed says whether it is muted.
// The tooltip may say what a click does.
function paintToggle(button, muted, on, off, what) {
  button.disabled = muted === undefined;
  button.setAttribute('aria-pressed', String(muted === true));
  button.title = muted ? `Turn ${what} on` : `Turn ${what} off`;
  button.innerHTML = icon(muted || muted === undefined ? off : on);
}
