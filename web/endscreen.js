// The screens a meeting ends on (ended, removed, not let in, full, server unreachable, …), each with only the actions that can help.

const BACK = { label: 'Back to start', run: () => location.assign(location.pathname) };

/**
 * What to say and offer after the fatal error `code`.
 * @param {string} code
 * @param {{retry: () => void, changeRoom: () => void, changeName: () => void}} ways
 * @returns {{title: string, actions: {label: string, run: () => void}[]}}
 */
function screenFor(code, { retry, changeRoom, changeName }) {
  const again = (label) => ({ label, run: retry });
  switch (code) {
    case 'closed':
      return { title: 'The meeting has ended', actions: [BACK] };
    case 'timed_out':
      return { title: 'You were disconnected', actions: [again('Rejoin'), BACK] };
    case 'removed':
      return { title: 'You were removed from the meeting', actions: [BACK] };
    case 'refused':
      return { title: 'You were not let in', actions: [BACK] };
    case 'room_full':
      return { title: 'This meeting is full', actions: [BACK] };
    case 'unreachable':
      return { title: 'Cannot reach the server', actions: [again('Try again'), BACK] };
    case 'shutting_down':
      return { title: 'The server is restarting', actions: [again('Try again'), BACK] };
    case 'invalid_room':
      return { title: 'This room name does not work', actions: [{ label: 'Choose another room', run: changeRoom }] };
    case 'invalid_name':
      return { title: 'This name does not work', actions: [{ label: 'Change name', run: changeName }] };
    case 'unauthorized':
      return { title: 'This link does not let you in', actions: [BACK] };
    case 'no_such_room':
      return { title: 'There is no such meeting', actions: [BACK] };
    default:
      return { title: 'The meeting stopped', actions: [again('Try again'), BACK] };
  }
}

// Replaces whatever was on screen (the meeting, the lobby) with the end screen for `code`.
/**
 * @param {string} code
 * @param {string} message
 * @param {{retry: () => void, changeRoom: () => void, changeName: () => void}} ways
 */
export function showEnd(code, message, ways) {
  for (const id of ['meeting-view', 'waiting-view', 'password-view', 'left-view']) {
    /** @type {HTMLElement} */ (document.getElementById(id)).hidden = true;
  }
  document.getElementById('banner').hidden = true;
  const view = document.getElementById('end-view');
  const { title, actions } = screenFor(code, ways);
  view.dataset.code = code;
  view.querySelector('h1').textContent = title;
  view.querySelector('.end-message').textContent = message;
  const row = view.querySelector('.actions');
  row.replaceChildren(
    ...actions.map(({ label, run }, i) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = i === 0 ? 'primary' : 'secondary-button';
      button.textContent = label;
      button.addEventListener('click', run);
      return button;
    }),
  );
  view.hidden = false;
  /** @type {HTMLElement | null} */ (row.querySelector('button'))?.focus();
}

// Shown under the message while the page looks for the server by itself.
/** @param {string} text */
export function endStatus(text) {
  const el = document.querySelector('#end-view .end-status');
  if (el) el.textContent = text;
}
