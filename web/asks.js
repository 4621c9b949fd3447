// What hosts ask of a participant, who decides: an invitation to the stage (accepted, they
// arrive with camera and microphone off) and a request to unmute. Also follows the host's
// spotlight (a pin for everyone) and tells hosts how an invitation was answered.

import { nameOf } from './reactions.js';

/**
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 * @param {(text: string) => void} toast
 */
export function attachAsks(view, client, toast) {
  const tools = client.tools;
  const card = document.createElement('section');
  card.id = 'ask';
  card.className = 'tool-card ask-card';
  card.setAttribute('role', 'alertdialog');
  card.setAttribute('aria-labelledby', 'ask-text');
  card.hidden = true;
  card.innerHTML = `<p id="ask-text"></p><div class="actions">
    <button type="button" class="primary-small yes"></button>
    <button type="button" class="pill no"></button></div>`;
  view.querySelector('.stage')?.append(card);
  const text = /** @type {HTMLElement} */ (card.querySelector('#ask-text'));
  const yes = /** @type {HTMLButtonElement} */ (card.querySelector('.yes'));
  const no = /** @type {HTMLButtonElement} */ (card.querySelector('.no'));
  /** @type {((ok: boolean) => void) | null} */
  let answer = null;

  /**
   * @param {string} kind
   * @param {string} question
   * @param {[string, string]} labels
   * @param {(ok: boolean) => void} onAnswer
   */
  function ask(kind, question, [accept, decline], onAnswer) {
    // A newer ask replaces an unanswered one; an unanswered invitation counts as declined.
    answer?.(false);
    card.dataset.kind = kind;
    text.textContent = question;
    yes.textContent = accept;
    no.textContent = decline;
    answer = onAnswer;
    card.hidden = false;
    yes.focus();
  }
  const done = (/** @type {boolean} */ ok) => {
    const run = answer;
    answer = null;
    card.hidden = true;
    run?.(ok);
  };
  yes.addEventListener('click', () => done(true));
  no.addEventListener('click', () => done(false));
  card.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') done(false);
  });

  tools.on('stage_invite', ({ from }) =>
    ask(
      'stage',
      `${nameOf(client, from)} invites you on stage. Your camera and microphone stay off until you turn them on.`,
      ['Join the stage', 'Not now'],
      (ok) => tools.answerInvitation(ok),
    ),
  );
  tools.on('unmute_request', ({ source, from }) =>
    ask(
      'unmute',
      `${nameOf(client, from)} asks you to turn on your ${source === 'camera' ? 'camera' : 'microphone'}.`,
      [source === 'camera' ? 'Start video' : 'Unmute', 'Stay off'],
      (ok) => ok && client.setMuted(source, false),
    ),
  );
  tools.on('stage_answered', ({ participant, accept }) =>
    toast(`${nameOf(client, participant)} ${accept ? 'joined the stage' : 'declined to join the stage'}`),
  );

  // The spotlight is a pin for everyone: follow it, and let go when it ends.
  /** @type {number | null} */
  let followed = null;
  tools.on('spotlight', (id) => {
    if (id !== null && id !== client.me?.id) {
      followed = id;
      client.pin(id);
      toast(`A host pinned ${nameOf(client, id)} for everyone`);
    } else if (followed !== null && client.pinned === followed) {
      followed = null;
      client.pin(null);
    }
  });
  // On stage by other means (a host's direct promotion): the invitation has nothing left to ask.
  client.on('participants', () => {
    if (client.me?.role !== 'audience' && card.dataset.kind === 'stage' && !card.hidden) {
      answer = null;
      card.hidden = true;
    }
  });
}
