// Polls: the host's form to start one (choices or a 1–5 mood scale, named or anonymous), and
// the poll card everyone sees: vote (and change one's mind), the counts live, the host closes.

import { POLL_LIMITS } from './tools.js';
import { nameOf } from './reactions.js';

const MOOD_LABELS = ['1 · bad', '2', '3', '4', '5 · great'];

/**
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 * @returns {{openForm: () => void}}
 */
export function attachPolls(view, client) {
  const tools = client.tools;
  const form = document.createElement('form');
  form.id = 'poll-form';
  form.className = 'tool-card';
  form.hidden = true;
  form.setAttribute('aria-label', 'Start a poll');
  form.innerHTML = `
    <h2>Start a poll</h2>
    <label>Question <input name="question" required maxlength="${POLL_LIMITS.questionChars}" /></label>
    <label>Kind
      <select name="kind"><option value="choice">Choices</option><option value="mood">Mood, 1 to 5</option></select>
    </label>
    <label class="choices">Choices, one per line (2 to ${POLL_LIMITS.maxChoices})
      <textarea name="choices" rows="4"></textarea>
    </label>
    <label class="check"><input type="checkbox" name="anonymous" /> Anonymous (hosts do not see who chose what)</label>
    <p class="talk-error" role="alert" hidden></p>
    <div class="actions">
      <button type="submit" class="primary-small">Start</button>
      <button type="button" class="pill cancel">Cancel</button>
    </div>`;
  const f = /** @type {any} */ (form);
  const error = /** @type {HTMLElement} */ (form.querySelector('.talk-error'));
  const choicesLabel = /** @type {HTMLElement} */ (form.querySelector('.choices'));
  f.kind.addEventListener('change', () => (choicesLabel.hidden = f.kind.value === 'mood'));
  form.querySelector('.cancel')?.addEventListener('click', () => (form.hidden = true));
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') form.hidden = true;
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const why = tools.createPoll({
      question: f.question.value,
      kind: f.kind.value,
      choices: f.choices.value.split('\n'),
      anonymous: f.anonymous.checked,
    });
    error.textContent = why ?? '';
    error.hidden = !why;
    if (!why) {
      form.reset();
      choicesLabel.hidden = false;
      form.hidden = true;
    }
  });

  const card = document.createElement('section');
  card.id = 'poll';
  card.className = 'tool-card';
  card.hidden = true;
  card.setAttribute('aria-label', 'Poll');
  card.setAttribute('aria-live', 'polite');
  const stage = view.querySelector('.stage');
  stage?.append(form, card);

  function render() {
    const poll = tools.poll;
    card.hidden = !poll || Boolean(card.dataset.dismissed === String(poll.id));
    if (!poll) return;
    const total = poll.counts.reduce((a, b) => a + b, 0);
    card.dataset.open = String(poll.open);
    card.replaceChildren();
    const head = document.createElement('h2');
    head.textContent = poll.open ? 'Poll' : 'Poll closed';
    const q = document.createElement('p');
    q.className = 'question';
    q.textContent = poll.question;
    const list = document.createElement('ol');
    list.className = 'choices';
    poll.choices.forEach((choice, i) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'choice';
      b.dataset.choice = String(i);
      b.disabled = !poll.open;
      b.setAttribute('aria-pressed', String(tools.myVote === i));
      const share = total ? Math.round((100 * poll.counts[i]) / total) : 0;
      b.style.setProperty('--share', `${share}%`);
      const label = document.createElement('span');
      label.className = 'poll-label';
      label.textContent = poll.kind === 'mood' ? MOOD_LABELS[i] : choice;
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = `${poll.counts[i]} · ${share}%`;
      b.append(label, count);
      b.addEventListener('click', () => tools.vote(i));
      li.append(b);
      if (client.isHost && tools.voters.length) {
        const who = tools.voters.filter(([, c]) => c === i).map(([p]) => nameOf(client, p));
        if (who.length) {
          const names = document.createElement('p');
          names.className = 'voters';
          names.textContent = who.join(', ');
          li.append(names);
        }
      }
      list.append(li);
    });
    const foot = document.createElement('p');
    foot.className = 'total';
    foot.textContent = `${total} ${total === 1 ? 'vote' : 'votes'}${poll.anonymous ? ' · anonymous' : ''}`;
    const actions = document.createElement('div');
    actions.className = 'actions';
    if (client.isHost && poll.open) {
      const close = document.createElement('button');
      close.type = 'button';
      close.className = 'pill close-poll';
      close.textContent = 'Close the poll';
      close.addEventListener('click', () => tools.closePoll());
      actions.append(close);
    }
    const hide = document.createElement('button');
    hide.type = 'button';
    hide.className = 'pill hide-poll';
    hide.textContent = 'Hide';
    hide.addEventListener('click', () => {
      card.dataset.dismissed = String(poll.id);
      card.hidden = true;
    });
    actions.append(hide);
    card.append(head, q, list, foot, actions);
  }
  tools.on('poll', render);
  client.on('participants', () => tools.voters.length && render());

  return {
    openForm() {
      form.hidden = false;
      f.question.focus();
    },
  };
}
