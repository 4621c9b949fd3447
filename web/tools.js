// Host tools, stage invitations, reactions and polls as the server describes them, and the
// commands that drive them (protocol: src/protocol/host.rs, src/protocol/polls.rs). No DOM.
//
// Events: reaction ({participant, emoji}), spotlight (participant id or null), unmute_request
// ({source, from}), stage_invite ({from}), stage_answered ({participant, accept}), poll (the
// poll changed: created, counts, closed).

import { Emitter } from './emitter.js';

/** The reactions the server accepts, in the order the picker shows them. */
export const REACTIONS = ['👍', '👏', '❤️', '😂', '😮', '🎉'];

/** Bounds the server enforces on polls (src/protocol/polls.rs). */
export const POLL_LIMITS = { questionChars: 300, choiceChars: 100, maxChoices: 10 };

/**
 * @typedef {{id: number, question: string, kind: 'choice' | 'mood', choices: string[],
 *   anonymous: boolean, open: boolean, counts: number[]}} Poll
 */

export class Tools extends Emitter {
  /** @type {Poll | null} */
  poll = null;
  /** @type {number | null} my choice in the current poll (the server does not echo it) */
  myVote = null;
  /** @type {Array<[number, number]>} hosts of a named poll: (participant, choice) */
  voters = [];
  /** @type {number | null} pinned for everyone by a host */
  spotlight = null;
  /** @type {{from: number} | null} a stage invitation waiting for my answer */
  invitation = null;

  #send;

  /** @param {(msg: {type: string} & Record<string, unknown>) => void} send */
  constructor(send) {
    super();
    this.#send = send;
  }

  /**
   * Applies one server message; returns whether it was one of these.
   * @param {any} msg
   */
  apply(msg) {
    const handler = this.#handlers[msg.type];
    if (!handler) return false;
    handler(msg);
    return true;
  }

  /** @param {string} emoji */
  react(emoji) {
    this.#send({ type: 'react', emoji });
  }

  /** @param {number | null} participant */
  setSpotlight(participant) {
    this.#send({ type: 'spotlight', participant });
  }

  /**
   * @param {number} participant
   * @param {'microphone' | 'camera'} source
   */
  askUnmute(participant, source) {
    this.#send({ type: 'ask_unmute', participant, source });
  }

  muteAll() {
    this.#send({ type: 'mute_all' });
  }

  /** @param {number} participant */
  inviteToStage(participant) {
    this.#send({ type: 'invite_to_stage', participant });
  }

  /** @param {boolean} accept */
  answerInvitation(accept) {
    this.invitation = null;
    this.#send({ type: 'stage_answer', accept });
  }

  /** @param {number | null} above */
  setJoinMuted(above) {
    this.#send({ type: 'set_join_muted', above });
  }

  /**
   * Returns why the poll cannot be sent, or null once it is on its way.
   * @param {{question: string, kind: 'choice' | 'mood', choices: string[], anonymous: boolean}} p
   */
  createPoll({ question, kind, choices, anonymous }) {
    const q = question.trim();
    if (!q) return 'Write a question first';
    if ([...q].length > POLL_LIMITS.questionChars) return `The question is longer than ${POLL_LIMITS.questionChars} characters`;
    const list = kind === 'choice' ? choices.map((c) => c.trim()).filter(Boolean) : [];
    if (kind === 'choice') {
      if (list.length < 2 || list.length > POLL_LIMITS.maxChoices) return `Give 2 to ${POLL_LIMITS.maxChoices} choices`;
      if (list.some((c) => [...c].length > POLL_LIMITS.choiceChars)) return `A choice is longer than ${POLL_LIMITS.choiceChars} characters`;
    }
    this.#send({ type: 'create_poll', question: q, kind, choices: list, anonymous });
    return null;
  }

  /** @param {number} choice */
  vote(choice) {
    if (!this.poll?.open) return;
    this.myVote = choice;
    this.#send({ type: 'poll_vote', poll: this.poll.id, choice });
    this.emit('poll');
  }

  closePoll() {
    this.#send({ type: 'close_poll' });
  }

  /** @type {Record<string, (msg: any) => void>} */
  #handlers = {
    reaction: ({ participant, emoji }) => this.emit('reaction', { participant, emoji }),
    spotlight: ({ participant }) => {
      this.spotlight = participant ?? null;
      this.emit('spotlight', this.spotlight);
    },
    unmute_request: ({ source, from }) => this.emit('unmute_request', { source, from }),
    stage_invite: ({ from }) => {
      this.invitation = { from };
      this.emit('stage_invite', { from });
    },
    stage_answered: ({ participant, accept }) => this.emit('stage_answered', { participant, accept }),
    poll: (poll) => {
      const { type: _type, ...rest } = poll;
      if (this.poll?.id !== rest.id) {
        this.myVote = null;
        this.voters = [];
      }
      this.poll = rest;
      this.emit('poll');
    },
    poll_results: ({ id, counts, voters }) => {
      if (!this.poll || this.poll.id !== id) return;
      this.poll = { ...this.poll, counts };
      if (voters) this.voters = voters;
      this.emit('poll');
    },
  };
}
