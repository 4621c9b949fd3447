// The Q&A panel: ask a question, upvote others', and for hosts mark them answered. The list
// comes whole from the server, already in order; only our own votes are remembered here.

import { icon } from './icons.js';

export class QnaPanel {
  #list;
  #error;
  #mine = 0;

  // handlers: {onAsk(text) → problem or null, onVote(id, up), onAnswered(id)}
  constructor(root, { onAsk, onVote, onAnswered }) {
    this.#list = root.querySelector('.questions');
    this.#error = root.querySelector('.talk-error');
    const form = root.querySelector('form');
    const input = form.elements.text;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const problem = onAsk(input.value);
      if (problem) this.showError(problem);
      else input.value = '';
    });
    this.#list.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-action]');
      if (!button) return;
      const id = Number(button.closest('[data-question]').dataset.question);
      if (button.dataset.action === 'vote') onVote(id, button.getAttribute('aria-pressed') !== 'true');
      if (button.dataset.action === 'answered') onAnswered(id);
    });
  }

  // questions: [Question]; votes: Set of ids I upvoted; host: may mark answered.
  render(questions, { votes, host, myId }) {
    // A new question of ours in the list means the last refusal no longer applies.
    const mine = questions.filter((q) => q.from === myId).length;
    if (mine > this.#mine) this.showError(null);
    this.#mine = mine;
    const items = questions.map((q) => {
      const li = document.createElement('li');
      li.dataset.question = String(q.id);
      if (q.answered) li.dataset.answered = 'true';
      const vote = document.createElement('button');
      vote.type = 'button';
      vote.className = 'vote';
      vote.dataset.action = 'vote';
      vote.setAttribute('aria-pressed', String(votes.has(q.id)));
      vote.setAttribute('aria-label', votes.has(q.id) ? 'Take back your vote' : 'Vote for this question');
      vote.disabled = q.answered;
      vote.innerHTML = `${icon('up')}<span class="votes">${q.votes}</span>`;
      const body = document.createElement('div');
      body.className = 'question-body';
      const text = document.createElement('p');
      text.className = 'text';
      text.textContent = q.text;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = q.from === myId ? 'You' : q.name;
      body.append(text, who);
      if (q.answered) body.append(Object.assign(document.createElement('span'), { className: 'answered', textContent: 'Answered' }));
      li.append(vote, body);
      if (host && !q.answered) {
        const done = document.createElement('button');
        done.type = 'button';
        done.className = 'small';
        done.dataset.action = 'answered';
        done.textContent = 'Mark answered';
        li.append(done);
      }
      return li;
    });
    this.#list.replaceChildren(...items);
  }

  showError(message) {
    this.#error.textContent = message ?? '';
    this.#error.hidden = !message;
  }
}
