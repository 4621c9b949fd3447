// Wires reactions, polls, host tools and hosts' requests into the meeting screen: one call
// from meeting.js. The buttons join the control bar's middle group.

import { attachReactions } from './reactions.js';
import { attachPolls } from './polls.js';
import { attachHostMenu } from './hostmenu.js';
import { attachAsks } from './asks.js';

/**
 * @param {HTMLElement} view the meeting view
 * @param {import('./client.js').ConfabClient} client
 * @param {{toast: (text: string) => void}} opts
 */
export function attachExtras(view, client, { toast }) {
  const bar = /** @type {HTMLElement} */ (view.querySelector('.controls .control-group:nth-child(2)'));
  attachReactions(view, client, bar);
  const polls = attachPolls(view, client);
  attachHostMenu(view, client, { bar, openPollForm: polls.openForm, confirm: (t) => window.confirm(t) });
  attachAsks(view, client, toast);
}
