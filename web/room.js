// The room as the server describes it: who is here and in which role, their tracks, chat,
// questions, hands, the lobby, the active speaker, and the commands that change them. Kept up to
// date from the signalling messages; no DOM and no media (engine.js owns those).
//
// Events: waiting, participants, tracks (participant id), chat (entry), questions, hands,
// lobby, locked (bool), settings (room_settings), speaker, pinned, forwarded, plus two for the engine: role ({before,
// after}) when my role changed, forced_mute (source) when a host muted my track, and
// subscriptions when the set of remote tracks changed.

import { Emitter } from './emitter.js';

/**
 * @typedef {'host' | 'presenter' | 'audience'} Role
 * @typedef {'microphone' | 'camera' | 'screen' | 'screen_audio'} Source
 * @typedef {{id: number, name: string, role: Role}} ParticipantInfo
 * @typedef {{id: number, participant: number, kind: 'audio' | 'video', source: Source,
 *   muted: boolean}} TrackInfo
 * @typedef {{id: number, from: number, name: string, text: string}} ChatEntry
 * @typedef {{id: number, from: number, name: string, text: string, votes: number,
 *   answered: boolean}} Question
 * @typedef {{rid: string, scale_down_by: number, max_bitrate: number, max_framerate: number}}
 *   Encoding
 * @typedef {{camera: Encoding[], screen: Encoding[], chat_max_chars: number,
 *   question_max_chars: number, max_audio_slots: number}} Limits
 * @typedef {{mode: string, locked: boolean, has_password: boolean, host_key?: string,
 *   presenter_key?: string, join_muted_above?: number | null}} RoomSettings
 */

// Errors a chat line or question earns, shown next to what was typed rather than in the
// banner: posting too fast, and for questions a board that is full. Texts are checked here
// before sending, so a bad_message after a chat line is about something else.
const TALK_ERRORS = { chat: new Set(['rate_limited']), question: new Set(['rate_limited', 'bad_message']) };
const TALK_ERROR_WINDOW_MS = 5_000;

export class Room extends Emitter {
  /** @type {string | null} */
  name = null;
  /** @type {ParticipantInfo | null} */
  me = null;
  mode = 'meeting';
  locked = false;
  /** @type {Map<number, ParticipantInfo>} everyone but me */
  participants = new Map();
  /** @type {Map<number, TrackInfo>} remote tracks only */
  tracks = new Map();
  /** @type {ChatEntry[]} oldest first */
  chat = [];
  /** @type {Question[]} in the server's order */
  questions = [];
  /** @type {Set<number>} question ids I upvoted; the server does not tell */
  votes = new Set();
  /** @type {number[]} participant ids, in the order they raised them */
  hands = [];
  /** @type {ParticipantInfo[]} waiting for a host */
  lobby = [];
  /** @type {RoomSettings | null} the room's lasting settings; hosts also get the link keys */
  settings = null;
  /** @type {number | null} */
  activeSpeaker = null;
  /** @type {Set<number> | null} track ids whose video the server sends; null = all */
  forwarded = null;
  /** @type {number | null} */
  pinned = null;
  /** @type {Limits | null} the server's numbers, from `joined` */
  limits = null;

  #send;
  /** @type {{kind: 'chat' | 'question', at: number} | null} what an error may be about */
  #lastTalk = null;

  /** @param {(msg: {type: string} & Record<string, unknown>) => void} send */
  constructor(send) {
    super();
    this.#send = send;
  }

  get isHost() {
    return this.me?.role === 'host';
  }

  get onStage() {
    return Boolean(this.me) && this.me.role !== 'audience';
  }

  // Whether the host's join-muted setting applies to me: others already in reach its threshold.
  get joinsMuted() {
    const above = this.settings?.join_muted_above;
    return typeof above === 'number' && this.participants.size >= above;
  }

  /**
   * Applies one server message; ones about media are the engine's and pass by.
   * @param {any} msg
   */
  apply(msg) {
    const handler = this.#handlers[msg.type];
    if (handler) handler(msg);
  }

  /** @param {string} type a server message's type */
  handles(type) {
    return type in this.#handlers;
  }

  // source → muted, for each track `participantId` publishes.
  /** @param {number} participantId */
  mutedOf(participantId) {
    /** @type {Record<string, boolean>} */
    const state = {};
    for (const t of this.tracks.values()) {
      if (t.participant === participantId) state[t.source] = t.muted;
    }
    return state;
  }

  /** @param {boolean} raised */
  raiseHand(raised) {
    this.#send({ type: 'raise_hand', raised });
  }

  // Returns why the text cannot be sent, or null once it is on its way.
  /** @param {string} text */
  sendChat(text) {
    return this.#talk('chat', text, this.limits?.chat_max_chars ?? 0);
  }

  /** @param {string} text */
  ask(text) {
    return this.#talk('ask', text, this.limits?.question_max_chars ?? 0);
  }

  /**
   * @param {number} question
   * @param {boolean} up
   */
  vote(question, up) {
    if (up) this.votes.add(question);
    else this.votes.delete(question);
    this.#send({ type: 'vote', question, up });
    this.emit('questions');
  }

  /** @param {number} question */
  markAnswered(question) {
    this.#send({ type: 'mark_answered', question });
  }

  /**
   * @param {number} participant
   * @param {Role} role
   */
  setRole(participant, role) {
    this.#send({ type: 'set_role', participant, role });
  }

  /**
   * Host: set (a string) or remove (null or empty) the room's password.
   * @param {string | null} password
   */
  setPassword(password) {
    this.#send({ type: 'set_password', password: password || null });
  }

  /**
   * @param {number} participant
   * @param {Source} source
   */
  muteParticipant(participant, source) {
    this.#send({ type: 'mute_participant', participant, source });
  }

  /** @param {number} participant */
  removeParticipant(participant) {
    this.#send({ type: 'remove_participant', participant });
  }

  /** @param {boolean} locked */
  lockRoom(locked) {
    this.#send({ type: 'lock_room', locked });
  }

  /**
   * @param {number} participant
   * @param {boolean} admit
   */
  admit(participant, admit) {
    this.#send({ type: 'admit', participant, admit });
  }

  endMeeting() {
    this.#send({ type: 'end_meeting' });
  }

  /** @param {number | null} participant */
  pin(participant) {
    this.pinned = participant;
    this.#send({ type: 'pin', participant });
    this.emit('pinned');
  }

  /**
   * Whether an error from the server is about the chat line or question just sent: those are
   * shown next to the text box, not in the banner.
   * @param {string} code
   * @returns {'chat' | 'question' | null}
   */
  talkErrorKind(code) {
    const talk = this.#lastTalk;
    if (!talk || !TALK_ERRORS[talk.kind].has(code) || Date.now() - talk.at >= TALK_ERROR_WINDOW_MS) return null;
    return talk.kind;
  }

  /**
   * @param {'chat' | 'ask'} type
   * @param {string} text
   * @param {number} max characters, from the server's limits
   */
  #talk(type, text, max) {
    const clean = text.trim();
    if (!clean) return 'Write something first';
    if ([...clean].length > max) return `That is longer than ${max} characters`;
    this.#lastTalk = { kind: type === 'ask' ? 'question' : 'chat', at: Date.now() };
    this.#send({ type, text: clean });
    return null;
  }

  /** @type {Record<string, (msg: any) => void>} */
  #handlers = {
    waiting: ({ host_present }) => this.emit('waiting', { hostPresent: host_present !== false }),
    room_settings: (settings) => {
      this.settings = settings;
      this.emit('settings', settings);
    },
    joined: ({ room, you, participants, tracks, mode, locked, chat, questions, hands, limits }) => {
      this.name = room;
      this.me = you;
      this.mode = mode ?? 'meeting';
      this.locked = Boolean(locked);
      this.chat = chat ?? [];
      this.questions = questions ?? [];
      this.hands = hands ?? [];
      this.limits = limits;
      for (const p of participants) {
        if (p.id !== you.id) this.participants.set(p.id, p);
      }
      for (const t of tracks) {
        if (t.participant !== you.id) this.tracks.set(t.id, t);
      }
    },
    participant_updated: ({ participant }) => {
      if (participant.id === this.me?.id) {
        const before = this.me.role;
        this.me = participant;
        if (before !== participant.role) this.emit('role', { before, after: participant.role });
      } else if (this.participants.has(participant.id)) {
        this.participants.set(participant.id, participant);
      }
      this.emit('participants');
    },
    participant_joined: ({ participant }) => {
      if (participant.id === this.me?.id) return;
      this.participants.set(participant.id, participant);
      this.emit('participants');
    },
    participant_left: ({ id }) => {
      this.participants.delete(id);
      for (const [trackId, t] of this.tracks) {
        if (t.participant === id) this.tracks.delete(trackId);
      }
      if (this.activeSpeaker === id) this.activeSpeaker = null;
      if (this.pinned === id) this.pin(null);
      this.emit('participants');
      this.emit('subscriptions');
    },
    track_published: ({ track }) => {
      // Our own tracks are ours to know; the model holds the others'.
      if (track.participant === this.me?.id) return;
      this.tracks.set(track.id, track);
      this.emit('tracks', track.participant);
      this.emit('subscriptions');
    },
    track_unpublished: ({ id }) => {
      const track = this.tracks.get(id);
      if (!track) return;
      this.tracks.delete(id);
      this.emit('tracks', track.participant);
      this.emit('subscriptions');
    },
    track_muted: ({ id, participant, source, muted, forced }) => {
      if (participant !== undefined && participant === this.me?.id) {
        if (muted && forced) this.emit('forced_mute', source);
        return;
      }
      const track = this.tracks.get(id);
      if (!track) return;
      track.muted = muted;
      this.emit('tracks', track.participant);
    },
    hands: ({ queue }) => {
      this.hands = queue;
      this.emit('hands');
    },
    // Changes since the last list (coalesced by the server): drop those lowered or raised
    // again, then queue the raised at the end.
    hands_changed: ({ lowered = [], raised = [] }) => {
      const out = new Set([...lowered, ...raised]);
      this.hands = [...this.hands.filter((id) => !out.has(id)), ...raised];
      this.emit('hands');
    },
    chat: ({ entry }) => {
      this.chat.push(entry);
      this.emit('chat', entry);
    },
    // One question asked or changed: replaced by id (or added), the board kept in the server's
    // order (open first, most votes, oldest first); a vote no longer resends the whole board.
    question: ({ question }) => {
      const rest = this.questions.filter((q) => q.id !== question.id);
      rest.push(question);
      rest.sort((x, y) => Number(x.answered) - Number(y.answered) || y.votes - x.votes || x.id - y.id);
      this.questions = rest;
      this.emit('questions');
    },
    room_locked: ({ locked }) => {
      this.locked = locked;
      this.emit('locked', locked);
    },
    lobby: ({ waiting }) => {
      this.lobby = waiting;
      this.emit('lobby');
    },
    lobby_changed: ({ left = [], waiting = [] }) => {
      const out = new Set([...left, ...waiting.map((w) => w.id)]);
      this.lobby = [...this.lobby.filter((w) => !out.has(w.id)), ...waiting];
      this.emit('lobby');
    },
    active_speaker: ({ participant }) => {
      this.activeSpeaker = participant;
      this.emit('speaker');
    },
    forwarded: ({ tracks }) => {
      this.forwarded = new Set(tracks);
      this.emit('forwarded');
    },
  };
}
