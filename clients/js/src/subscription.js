// A subscription: the application's wish to read one channel, kept across connections.
//
// Theory of operation
// -------------------
// The server's subscription belongs to one socket (CON-4) and ends with it (CON-5); this one
// outlives sockets. It remembers where the application is, `{epoch, last}`, and after every
// disconnect asks the next connection for `replay:subscribe {from: last + 1, epoch}` (RES-1).
// Every batch passes the guard (guard.js) before the application sees it; accepted batches
// queue for `onMessages`, one at a time, and the position store advances only after it
// returned. When the server says the position cannot be resumed, the policy (policy.js)
// decides, and the application is told first.
//
// Each `replay:subscribe` sent gets a new generation number; a reply, event or batch of an
// older generation (of a socket that is gone, or of a subscription being repaired) is
// ignored, so only the current server subscription can move the state.
//
//   state        | what happens                                    | next state    | events
//   -------------|-------------------------------------------------|---------------|------------------
//   subscribing  | ok reply or replay:subscribed                   | subscribed    | subscribed
//   subscribing  | error reply the policy can resume past          | subscribing   | error
//   subscribing  | error reply: policy "fail", or forbidden…       | unsubscribed  | error, unsubscribed
//   subscribing  | the connection ends / a request times out       | subscribing   | (client: disconnect)
//   subscribed   | replay:messages that pass the guard             | subscribed    | messages
//   subscribed   | a gap                                           | subscribing   | error {gap}
//   subscribed   | onMessages throws                               | subscribing   | error {handler_failed}
//   subscribed   | replay:unsubscribed lagging/unavailable/internal| subscribing   | unsubscribed
//   subscribed   | replay:unsubscribed truncated/epoch_changed     | subscribing or unsubscribed (policy) | unsubscribed
//   subscribed   | replay:unsubscribed revoked, or an error code   | unsubscribed  | unsubscribed
//   subscribed   | the connection ends                             | subscribing   | (client: disconnect)
//   any          | unsubscribe() / client.close()                  | unsubscribed  | unsubscribed {client|closed}

import { AckBatcher } from "./acks.js";
import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CLIENT_CODES, ReplayError, replyError } from "./errors.js";
import { judgeBatch } from "./guard.js";
import { decide } from "./policy.js";
import { isPosition } from "./positions.js";

/** @typedef {import("./positions.js").Position} Position */
/** @typedef {import("./positions.js").PositionStore} PositionStore */
/** @typedef {import("./policy.js").Policy} Policy */
/** @typedef {import("./backoff.js").BackoffOptions} BackoffOptions */
/** @typedef {{offset: number, id: string, ts: number, data: any}} Message */
/** @typedef {"subscribing" | "subscribed" | "unsubscribed"} SubscriptionState */

/**
 * @typedef {object} MessagesContext
 * @property {string} channel
 * @property {string} epoch
 * @property {Subscription} subscription
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {"beginning" | "latest" | Position} [from] where to start; a position means "the
 *   application finished `offset`, start at `offset + 1`". Default: the position store's
 *   entry, else "beginning" (with `ack`, the server cursor: `from` omitted, SUB-9).
 * @property {(messages: Message[], context: MessagesContext) => unknown} [onMessages]
 *   awaited; the position advances once it returns
 * @property {Policy} [onUnresumable] "fail" (default), "restart" or "continue"
 * @property {boolean | import("./acks.js").AckOptions} [ack] acknowledge finished offsets
 *   to the server cursor (replay:ack), batched
 */

/**
 * @typedef {object} SubscribedEvent
 * @property {string} epoch
 * @property {number} from
 * @property {number} head
 * @property {boolean} recovered it resumed exactly from the requested position
 * @property {boolean} truncated the policy continued past removed messages
 * @property {{requested: number, first_available: number} | null} truncation the reply's
 *   `truncated` member (SUB-11), when the server gave one
 * @property {boolean} epochChanged the policy restarted in a new epoch
 */

/**
 * @typedef {object} SubscriptionEvents
 * @property {SubscribedEvent} subscribed
 * @property {{epoch: string, messages: Message[]}} messages
 * @property {{reason: string, message?: string}} unsubscribed
 * @property {{code: string, message: string, retryable: boolean}} error
 */

/**
 * What a subscription needs from its client: the transport, kept out of this module.
 * @typedef {object} SubscriptionHost
 * @property {() => boolean} connected
 * @property {(event: string, payload: object) => Promise<any>} request
 * @property {(event: string, payload: object) => void} send an event without waiting
 * @property {PositionStore} positions
 * @property {BackoffOptions} backoff
 * @property {(subscription: Subscription) => void} forget
 */

/** @extends {Emitter<SubscriptionEvents>} */
export class Subscription extends Emitter {
  /**
   * Made by `client.subscribe`; not meant to be constructed by the application.
   * @param {SubscriptionHost} host
   * @param {string} channel
   * @param {SubscribeOptions} options
   */
  constructor(host, channel, options) {
    super();
    const { from } = options;
    if (from !== undefined && from !== "beginning" && from !== "latest" && !isPosition(from)) {
      throw new TypeError("from must be 'beginning', 'latest' or {epoch, offset}");
    }
    this.channel = channel;
    /** @type {SubscriptionState} */
    this.state = "subscribing";
    /** What the guard and the queue counted. */
    this.stats = { delivered: 0, batches: 0, duplicates: 0, gaps: 0, foreign: 0, subscribes: 0 };
    /** @type {Position | null} the last message the application finished */
    this.position = null;
    this._host = host;
    this._onMessages = options.onMessages;
    this._policy = options.onUnresumable;
    this._backoff = new Backoff(host.backoff);
    /** @type {string | null} epoch and last offset handed to the queue (the guard's view) */
    this._epoch = null;
    this._last = 0;
    this._gen = 0;
    this._awaiting = false;
    /**
     * Batches that came while the subscribe's reply was awaited. The server sends a
     * subscription's messages right behind its reply (SUB-13), often in the same read, so
     * they reach us before the awaiting code runs; they are judged once the reply is.
     * @type {{epoch: string, messages: Message[]}[]}
     */
    this._early = [];
    /** @type {Record<string, unknown> | null} the next subscribe's request, once */
    this._override = null;
    this._flags = { epochChanged: false, truncated: false };
    /** Bumped when queued batches must not reach the application (a rewind). */
    this._rewinds = 0;
    /** @type {Promise<void>} */
    this._queue = Promise.resolve();
    /** @type {any} */
    this._retryTimer = null;
    const ack = options.ack;
    /** @type {AckBatcher | null} */
    this._acks = ack
      ? new AckBatcher(ack === true ? {} : ack, {
          send: (p) => this._sendAck(p),
          onError: (e) => this._report(e),
        })
      : null;
    /** @type {Record<string, unknown>} the first subscribe's `from` (and `epoch`) */
    this._initial = {};
    this._loaded = this._load(options.from, Boolean(ack));
  }

  /**
   * Stop reading: sends `replay:unsubscribe` when connected; the state is "unsubscribed".
   * @returns {Promise<void>}
   */
  async unsubscribe() {
    if (this.state === "unsubscribed") return;
    const wasLive = this._host.connected() && (this.state === "subscribed" || this._awaiting);
    this._end("client");
    if (wasLive) {
      await this._host.request("replay:unsubscribe", { channel: this.channel }).catch(() => {});
    }
  }

  // -- from the client --------------------------------------------------------------------

  /** A connection is up: subscribe from the position. @internal */
  _connected() {
    this._clearRetry();
    void this._subscribe();
  }

  /** The connection ended: every reply and batch of it is void. @internal */
  _disconnected() {
    this._gen += 1;
    this._awaiting = false;
    this._early = [];
    if (this.state === "subscribed") this.state = "subscribing";
  }

  /** @param {{epoch: string, messages: Message[]}} event @internal */
  _messages(event) {
    if (this.state === "subscribing" && this._awaiting) {
      this._early.push(event);
      return;
    }
    if (this.state !== "subscribed" || this._epoch === null) return;
    const verdict = judgeBatch({ epoch: this._epoch, last: this._last }, event);
    this.stats.duplicates += verdict.duplicates;
    if (verdict.foreign) {
      this.stats.foreign += 1;
      return;
    }
    if (verdict.gap) {
      this.stats.gaps += 1;
      const { expected, received } = verdict.gap;
      this._report(new ReplayError(CLIENT_CODES.gap, `expected offset ${expected}, got ${received}`));
      this._repair();
      return;
    }
    if (verdict.fresh.length === 0) return;
    const messages = /** @type {Message[]} */ (verdict.fresh);
    this._last = messages[messages.length - 1].offset;
    const epoch = this._epoch;
    const rewinds = this._rewinds;
    this._queue = this._queue.then(() => this._deliver(epoch, messages, rewinds));
  }

  /**
   * The server subscribed this socket itself (an auto-subscription of the session, §8). It
   * stands for our own subscribe when it starts where that one would: at the guard's next
   * offset, or, reading through the server cursor, wherever the cursor says. Otherwise it is
   * ignored: our subscribe fails `already_subscribed` and the repair replaces it.
   * @internal
   */
  async _serverSubscribed(/** @type {any} */ event) {
    await this._loaded; // it may come before the stored position was read
    if (this.state !== "subscribing" || this._override !== null) return;
    const request = this._resumeRequest();
    const fits =
      typeof request.from === "number"
        ? event.epoch === request.epoch && event.from === request.from
        : this._acks !== null && !("from" in request);
    if (!fits) return;
    this._gen += 1; // our own subscribe's reply (already_subscribed) is not news
    this._awaiting = false;
    this._confirm(event, request);
  }

  /** The server ended the subscription (replay:unsubscribed, §7.3). @internal */
  _serverUnsubscribed(/** @type {{reason: string, message?: string}} */ event) {
    if (this.state === "unsubscribed") return;
    this._gen += 1;
    this._awaiting = false;
    this.state = "subscribing";
    const told = event.message === undefined ? { reason: event.reason } : { reason: event.reason, message: event.message };
    this.emit("unsubscribed", told);
    this._follow({ code: event.reason, message: event.message }, false);
  }

  /** The client closed. @internal */
  _close() {
    this._end("closed");
  }

  // -- the subscribe round trip -----------------------------------------------------------

  async _subscribe() {
    await this._loaded;
    if (this.state !== "subscribing" || this._awaiting || !this._host.connected()) return;
    const gen = ++this._gen;
    this._awaiting = true;
    this._early = [];
    const request = this._override ?? this._resumeRequest();
    const payload = { channel: this.channel, ...request };
    this.stats.subscribes += 1;
    let reply;
    try {
      reply = await this._host.request("replay:subscribe", payload);
    } catch (error) {
      // Disconnected or timed out: the client reconnects and `_connected` tries again.
      if (gen === this._gen) this._awaiting = false;
      return;
    }
    if (gen !== this._gen) return; // a newer subscribe, a disconnect or the end came first
    this._awaiting = false;
    if (reply?.ok === true && typeof reply.epoch === "string" && Number.isSafeInteger(reply.from)) {
      this._confirm(reply, payload);
    } else {
      const error = replyError(reply);
      this._report(error);
      if (error.code === "already_subscribed") this._retry(() => this._repair());
      else this._follow(error, true);
    }
  }

  /** Where a resume starts: after the last offset handed to the queue, in its epoch. */
  _resumeRequest() {
    if (this._epoch === null) return this._initial;
    return { from: this._last + 1, epoch: this._epoch };
  }

  /**
   * @param {{epoch: string, from: number, head: number, truncated?: {requested: number, first_available: number}}} info
   * @param {Record<string, unknown>} request what was asked
   */
  _confirm(info, request) {
    const recovered =
      typeof request.from === "number" && request.from === info.from && request.epoch === info.epoch && !info.truncated;
    const { epochChanged, truncated } = this._flags;
    this._flags = { epochChanged: false, truncated: false };
    this._override = null;
    this._epoch = info.epoch;
    this._last = info.from - 1;
    this.state = "subscribed";
    this._backoff.reset();
    this.emit("subscribed", {
      epoch: info.epoch,
      from: info.from,
      head: info.head,
      recovered,
      truncated: truncated || Boolean(info.truncated),
      truncation: info.truncated ?? null,
      epochChanged,
    });
    this._acks?.flush();
    const early = this._early;
    this._early = [];
    for (const event of early) this._messages(event); // the guard judges them as any batch
  }

  /**
   * An error reply or a server end: the policy decides what follows.
   * @param {{code: string, message?: string}} error
   * @param {boolean} announce whether `unsubscribed` is still to be emitted if it ends
   */
  _follow(error, announce) {
    const decision = decide(this._policy, error);
    if (decision.kind === "fail" || decision.kind === "end") {
      this._end(error.code, error.message, announce);
    } else if (decision.kind === "resume") {
      this._retry(() => this._subscribe());
    } else {
      this._flags = decision.flags;
      const { request } = decision;
      if ("allowTruncation" in request) {
        this._override = { ...this._resumeRequest(), allow_truncation: true };
      } else {
        this._override = { from: request.from };
      }
      if (decision.flags.epochChanged) this._epoch = null;
      void this._subscribe();
    }
  }

  /** Unsubscribe on the server and subscribe again from the position (gap, rewind). */
  _repair() {
    this._gen += 1;
    this._awaiting = false;
    this.state = "subscribing";
    if (this._host.connected()) this._host.send("replay:unsubscribe", { channel: this.channel });
    // replay:unsubscribe and the next replay:subscribe are processed in order (EVT-2).
    void this._subscribe();
  }

  /** @param {() => void} fn */
  _retry(fn) {
    this._clearRetry();
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      fn();
    }, this._backoff.next());
  }

  _clearRetry() {
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }

  // -- delivery ---------------------------------------------------------------------------

  /** @param {string} epoch @param {Message[]} messages @param {number} rewinds */
  async _deliver(epoch, messages, rewinds) {
    if (rewinds !== this._rewinds || this.state === "unsubscribed") return;
    this.emit("messages", { epoch, messages });
    try {
      await this._onMessages?.(messages, { channel: this.channel, epoch, subscription: this });
    } catch (err) {
      this._report(new ReplayError(CLIENT_CODES.handler, `onMessages threw: ${err}`));
      this._rewind();
      return;
    }
    this.stats.delivered += messages.length;
    this.stats.batches += 1;
    const position = { epoch, offset: messages[messages.length - 1].offset };
    this.position = position;
    try {
      await this._host.positions.set(this.channel, position);
    } catch (err) {
      this._report(new ReplayError(CLIENT_CODES.positions, `positions.set threw: ${err}`));
    }
    this._acks?.finished(position, messages.length);
  }

  /** The application failed a batch: drop what is queued and read again after its position. */
  _rewind() {
    this._rewinds += 1;
    if (this.position !== null) {
      this._epoch = this.position.epoch;
      this._last = this.position.offset;
    } else {
      this._epoch = null; // back to the first request
    }
    this._gen += 1;
    this._awaiting = false;
    this.state = "subscribing";
    if (this._host.connected()) this._host.send("replay:unsubscribe", { channel: this.channel });
    this._retry(() => this._subscribe());
  }

  // -- helpers ----------------------------------------------------------------------------

  /** @param {SubscribeOptions["from"]} from @param {boolean} ack */
  async _load(from, ack) {
    await null; // after the constructor: the application's listeners are on by then
    if (from === "beginning" || from === "latest") {
      this._initial = { from };
      return;
    }
    if (from !== undefined) {
      this._initial = { from: from.offset + 1, epoch: from.epoch };
      return;
    }
    let stored = null;
    try {
      stored = await this._host.positions.get(this.channel);
    } catch (err) {
      // Without its position it cannot start where the application stopped: it ends, told.
      const error = new ReplayError(CLIENT_CODES.positions, `positions.get threw: ${err}`);
      this._report(error);
      this._end(error.code, error.message);
      return;
    }
    if (isPosition(stored)) {
      this.position = { epoch: stored.epoch, offset: stored.offset };
      this._initial = { from: stored.offset + 1, epoch: stored.epoch };
    } else {
      this._initial = ack ? {} : { from: "beginning" };
    }
  }

  /** @param {Position} position */
  async _sendAck(position) {
    const reply = await this._host.request("replay:ack", {
      channel: this.channel,
      offset: position.offset,
      epoch: position.epoch,
    });
    if (reply?.ok !== true) throw replyError(reply);
    return reply;
  }

  /** @param {ReplayError | {code: string, message?: string}} error */
  _report(error) {
    const code = error.code;
    const message = error.message ?? "";
    const retryable = error instanceof ReplayError ? error.retryable : new ReplayError(code).retryable;
    this.emit("error", { code, message, retryable });
  }

  /** @param {string} reason @param {string} [message] */
  _end(reason, message, announce = true) {
    if (this.state === "unsubscribed") return;
    this.state = "unsubscribed";
    this._gen += 1;
    this._awaiting = false;
    this._clearRetry();
    this._acks?.flush();
    this._acks?.stop();
    this._host.forget(this);
    if (announce) this.emit("unsubscribed", message === undefined ? { reason } : { reason, message });
  }
}
