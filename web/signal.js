// The signalling channel: one WebSocket, the join that opens it, JSON frames in and out, and
// the pairing of each offer with its answer. No DOM and no room state; the protocol itself is
// written down in src/protocol.rs.
//
// Events: message (every server message but `answer`, parsed), closed ({fatalSeen}).

import { Emitter } from './emitter.js';

// Mirrors ErrorCode::is_fatal on the server: after these the server closes the socket.
const FATAL = new Set([
  'invalid_room',
  'invalid_name',
  'room_full',
  'unauthorized',
  'closed',
  'timed_out',
  'shutting_down',
  'internal',
  'removed',
  'refused',
  'wrong_password',
  'no_such_room',
]);

// Errors that only ever answer an offer. Others (bad_message, rate_limited) may just as well
// answer a chat line sent meanwhile: the protocol does not say which message an error is about,
// so those are left to the answer timeout rather than risk pairing the next answer with the
// wrong offer.
const OFFER_ERRORS = new Set(['sdp_rejected', 'forbidden']);

const ANSWER_TIMEOUT_MS = 15_000;

/** @param {string} code */
export function isFatal(code) {
  return FATAL.has(code);
}

/**
 * @typedef {{type: 'join', room: string, name: string, role?: string, key?: string, token?: string,
 *   mode?: string, password?: string}} JoinMsg
 * @typedef {Error & {code?: string, fromServer?: boolean}} SignalError
 * @typedef {{resolve: (sdp: string) => void, reject: (err: SignalError) => void}} PendingAnswer
 */

export class Signal extends Emitter {
  /** @type {WebSocket | null} */
  #ws = null;
  #url;
  #join;
  /** @type {PendingAnswer | null} */
  #pendingAnswer = null;
  #fatalSeen = false;
  #closed = false;

  /**
   * @param {string} url the server's /ws address
   * @param {JoinMsg} join sent as soon as the socket opens
   */
  constructor(url, join) {
    super();
    this.#url = url;
    this.#join = join;
  }

  connect() {
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    ws.addEventListener('open', () => this.send(this.#join));
    ws.addEventListener('message', (ev) => this.#onFrame(ev.data));
    ws.addEventListener('close', () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#failPending('session ended');
      this.emit('closed', { fatalSeen: this.#fatalSeen });
    });
  }

  /** @param {{type: string} & Record<string, unknown>} msg */
  send(msg) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  /**
   * Sends an offer and resolves to the answer's SDP; rejects on an error that answers offers
   * (marked `fromServer`: it was shown when it arrived) or after a timeout. The caller sends
   * the next offer only once this one settled, as the protocol requires.
   * @param {{type: 'offer', sdp: string} & Record<string, unknown>} msg
   * @returns {Promise<string>}
   */
  offer(msg) {
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pendingAnswer = null;
        reject(new Error('the server did not answer in time'));
      }, ANSWER_TIMEOUT_MS);
      this.#pendingAnswer = {
        resolve: (sdp) => {
          clearTimeout(timer);
          resolve(sdp);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
    this.send(msg);
    return answer;
  }

  // Ends the session from our side; no `closed` event follows.
  close() {
    this.#closed = true;
    this.#failPending('session ended');
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
  }

  /** @param {string} reason */
  #failPending(reason) {
    this.#pendingAnswer?.reject(Object.assign(new Error(reason), { fromServer: true }));
    this.#pendingAnswer = null;
  }

  /** @param {unknown} data */
  #onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(String(data));
    } catch {
      console.warn('confab: ignoring a frame that is not JSON', data);
      return;
    }
    if (typeof msg?.type !== 'string') {
      console.warn('confab: ignoring a message without a type', msg);
      return;
    }
    if (msg.type === 'answer') {
      const pending = this.#pendingAnswer;
      this.#pendingAnswer = null;
      if (pending) pending.resolve(msg.sdp);
      else console.warn('confab: ignoring an answer to an offer we gave up on');
      return;
    }
    if (msg.type === 'error') {
      const fatal = isFatal(msg.code);
      if (fatal) this.#fatalSeen = true;
      if (!fatal && OFFER_ERRORS.has(msg.code) && this.#pendingAnswer) {
        const pending = this.#pendingAnswer;
        this.#pendingAnswer = null;
        pending.reject(Object.assign(new Error(msg.message), { code: msg.code, fromServer: true }));
      }
    }
    this.emit('message', msg);
  }
}
