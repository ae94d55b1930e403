// The client: one Socket.IO connection to one server for one session, renewed after every
// disconnect the application did not ask for. It owns the socket, the reconnect loop and the
// request bookkeeping; subscriptions (subscription.js) keep their own state and are told when
// a connection comes and goes.

import { io } from "socket.io-client";
import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CLIENT_CODES, ReplayError } from "./errors.js";
import { readHistory } from "./history.js";
import { MemoryPositions } from "./positions.js";
import { Subscription } from "./subscription.js";

/** @typedef {import("./positions.js").PositionStore} PositionStore */
/** @typedef {import("./subscription.js").SubscribeOptions} SubscribeOptions */
/** @typedef {import("./history.js").HistoryOptions} HistoryOptions */
/** @typedef {import("./history.js").HistoryPage} HistoryPage */
/** @typedef {"connecting" | "connected" | "closed"} ClientState */

/**
 * @typedef {object} ConnectOptions
 * @property {PositionStore} [positions] where positions are kept (default: in memory)
 * @property {number} [minDelay] first reconnect delay, ms (250)
 * @property {number} [maxDelay] largest reconnect delay before jitter, ms (10000)
 * @property {number} [jitter] each delay is multiplied by a factor in [1 - jitter, 1 + jitter] (0.5)
 * @property {number} [stableMs] a connection up this long resets the backoff (5000)
 * @property {number} [requestTimeoutMs] a reply later than this renews the connection (10000)
 * @property {Record<string, unknown>} [socket] more options for socket.io-client's `io()`
 *   (e.g. `transports`, `path`); reconnection and auth are the library's
 * @property {typeof io} [io] the `io` function (tests pass a fake)
 */

/**
 * @typedef {object} ClientEvents
 * @property {{attempt: number}} connect a connection is up (the first or a reconnect)
 * @property {{reason: string}} disconnect it ended; a reconnect follows unless closed
 * @property {{code: string, message: string, retryable: boolean}} error a refused connect
 *   (CONNECT_ERROR: `unauthorized`, `unavailable`, `internal`), `connect_failed` (a
 *   network error), `token_failed`
 * @property {{}} close
 */

const SERVER_REFUSALS = new Set(["unauthorized", "unavailable", "internal"]);

/** @extends {Emitter<ClientEvents>} */
export class Client extends Emitter {
  /**
   * Use `connect()`.
   * @param {string} url
   * @param {() => string | Promise<string>} getToken
   * @param {ConnectOptions} [options]
   */
  constructor(url, getToken, options = {}) {
    super();
    if (typeof getToken !== "function") throw new TypeError("getToken must be a function");
    const { positions = new MemoryPositions(), stableMs = 5000, requestTimeoutMs = 10_000 } = options;
    /** @type {ClientState} */
    this.state = "connecting";
    /** Connections that came up and that ended (forced or not), refused connects, and
     * `getToken` calls. */
    this.stats = { connects: 0, disconnects: 0, refused: 0, tokenCalls: 0 };
    this.positions = positions;
    this._getToken = getToken;
    this._backoffOptions = { minDelay: options.minDelay, maxDelay: options.maxDelay, jitter: options.jitter };
    this._backoff = new Backoff(this._backoffOptions);
    this._stableMs = stableMs;
    this._requestTimeoutMs = requestTimeoutMs;
    /** @type {Map<string, Subscription>} */
    this._subscriptions = new Map();
    /** @type {Map<number, {reject: (e: Error) => void, timer: any}>} */
    this._pending = new Map();
    this._requests = 0;
    this._token = "";
    this._upSince = 0;
    /** @type {any} */
    this._reconnectTimer = null;
    /** @type {Array<{resolve: () => void, reject: (e: Error) => void}>} */
    this._waiting = [];
    const ioFn = options.io ?? io;
    this._socket = ioFn(url, {
      ...options.socket,
      autoConnect: false,
      reconnection: false, // the library reconnects, so that every attempt gets a fresh token
      auth: (/** @type {(auth: object) => void} */ cb) => cb({ token: this._token }),
    });
    this._listen();
  }

  /**
   * Read one channel; returns at once (server replies arrive as the subscription's events).
   * @param {string} channel
   * @param {SubscribeOptions} [options]
   * @returns {Subscription}
   */
  subscribe(channel, options = {}) {
    if (this.state === "closed") throw new ReplayError(CLIENT_CODES.closed, "the client is closed");
    if (typeof channel !== "string" || channel.length === 0) throw new TypeError("channel must be a non-empty string");
    if (this._subscriptions.has(channel)) throw new TypeError(`already subscribed to ${channel}`);
    const subscription = new Subscription(this._host(), channel, options);
    this._subscriptions.set(channel, subscription);
    if (this._socket.connected) subscription._connected();
    return subscription;
  }

  /**
   * The channel's retained history, page by page (replay:history, HIS-8); waits for a
   * connection, and asks again for a page lost to a disconnect. Throws a ReplayError with the
   * server's code when a page is refused, or `closed`.
   * @param {string} channel
   * @param {HistoryOptions} [options]
   * @returns {AsyncGenerator<HistoryPage, void, undefined>}
   */
  history(channel, options) {
    return readHistory(async (event, payload) => {
      // A page read is idempotent: one lost to a disconnect is asked again once reconnected.
      for (;;) {
        await this._whenConnected();
        try {
          return await this._request(event, payload);
        } catch (error) {
          const code = /** @type {ReplayError} */ (error).code;
          if (code !== CLIENT_CODES.disconnected && code !== CLIENT_CODES.timeout) throw error;
        }
      }
    }, channel, options);
  }

  /** End everything: no reconnect, every subscription ends with reason "closed". */
  close() {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this._reconnectTimer !== null) clearTimeout(this._reconnectTimer);
    for (const subscription of [...this._subscriptions.values()]) subscription._close();
    this._failPending(new ReplayError(CLIENT_CODES.closed, "the client is closed"));
    for (const waiter of this._waiting.splice(0)) waiter.reject(new ReplayError(CLIENT_CODES.closed));
    this._socket.disconnect();
    this.emit("close", {});
  }

  /** The live subscription of `channel`, if any. @param {string} channel */
  subscription(channel) {
    return this._subscriptions.get(channel);
  }

  // -- connection ---------------------------------------------------------------------------

  /** Start the first connection attempt. @internal */
  _open() {
    void this._attempt();
  }

  async _attempt() {
    this._reconnectTimer = null;
    if (this.state === "closed") return;
    try {
      this.stats.tokenCalls += 1;
      const token = await this._getToken();
      if (typeof token !== "string") throw new TypeError(`getToken returned ${typeof token}`);
      this._token = token;
    } catch (err) {
      this._report(new ReplayError(CLIENT_CODES.token, `getToken failed: ${err}`));
      this._scheduleReconnect();
      return;
    }
    // close() may have run while getToken was awaited.
    if (!this._isClosed()) this._socket.connect();
  }

  _scheduleReconnect() {
    if (this.state === "closed" || this._reconnectTimer !== null) return;
    this.state = "connecting";
    this._reconnectTimer = setTimeout(() => void this._attempt(), this._backoff.next());
  }

  _listen() {
    const socket = this._socket;
    socket.on("connect", () => {
      if (this.state === "closed") return;
      this.state = "connected";
      this.stats.connects += 1;
      this._upSince = Date.now();
      this.emit("connect", { attempt: this.stats.connects });
      for (const waiter of this._waiting.splice(0)) waiter.resolve();
      for (const subscription of this._subscriptions.values()) subscription._connected();
    });
    socket.on("disconnect", (/** @type {string} */ reason) => {
      this.stats.disconnects += 1;
      if (Date.now() - this._upSince >= this._stableMs) this._backoff.reset();
      this._failPending(new ReplayError(CLIENT_CODES.disconnected, `disconnected: ${reason}`));
      for (const subscription of this._subscriptions.values()) subscription._disconnected();
      if (this.state === "closed") return;
      this.emit("disconnect", { reason });
      this._scheduleReconnect();
    });
    socket.on("connect_error", (/** @type {Error} */ err) => {
      if (this.state === "closed") return;
      const code = SERVER_REFUSALS.has(err.message) ? err.message : CLIENT_CODES.connect;
      if (code !== CLIENT_CODES.connect) this.stats.refused += 1;
      this._report(new ReplayError(code, `connect failed: ${err.message}`));
      this._scheduleReconnect();
    });
    socket.on("replay:messages", (/** @type {any} */ event) => {
      if (!isMessagesEvent(event)) return this._protocolError("replay:messages", event);
      this._subscriptions.get(event.channel)?._messages(event);
    });
    socket.on("replay:subscribed", (/** @type {any} */ event) => {
      if (typeof event?.channel !== "string" || typeof event.epoch !== "string" || !Number.isSafeInteger(event.from)) {
        return this._protocolError("replay:subscribed", event);
      }
      void this._subscriptions.get(event.channel)?._serverSubscribed(event);
    });
    socket.on("replay:unsubscribed", (/** @type {any} */ event) => {
      if (typeof event?.channel !== "string" || typeof event.reason !== "string") {
        return this._protocolError("replay:unsubscribed", event);
      }
      this._subscriptions.get(event.channel)?._serverUnsubscribed(event);
    });
  }

  // -- requests ------------------------------------------------------------------------------

  /** @returns {import("./subscription.js").SubscriptionHost} */
  _host() {
    return {
      connected: () => this._socket.connected,
      request: (event, payload) => this._request(event, payload),
      send: (event, payload) => {
        if (this._socket.connected) this._socket.emit(event, payload);
      },
      positions: this.positions,
      backoff: this._backoffOptions,
      forget: (subscription) => {
        if (this._subscriptions.get(subscription.channel) === subscription) {
          this._subscriptions.delete(subscription.channel);
        }
      },
    };
  }

  /**
   * Send one client event and resolve with its reply. Never queued while disconnected
   * (socket.io-client would send it on the next connection, where it means something else).
   * @param {string} event
   * @param {object} payload
   * @returns {Promise<any>}
   */
  _request(event, payload) {
    return new Promise((resolve, reject) => {
      if (!this._socket.connected) {
        reject(new ReplayError(CLIENT_CODES.disconnected, `not connected: ${event} not sent`));
        return;
      }
      const id = ++this._requests;
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ReplayError(CLIENT_CODES.timeout, `no reply to ${event} in ${this._requestTimeoutMs} ms`));
        // A connection that does not answer is renewed: its subscriptions are in doubt.
        this._renew();
      }, this._requestTimeoutMs);
      this._pending.set(id, { reject, timer });
      this._socket.emit(event, payload, (/** @type {unknown} */ reply) => {
        if (!this._pending.delete(id)) return;
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  _renew() {
    if (this.state === "closed" || !this._socket.connected) return;
    this._socket.disconnect(); // "io client disconnect": the disconnect handler reconnects
  }

  /** @param {Error} error */
  _failPending(error) {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this._pending.clear();
  }

  /** @returns {boolean} */
  _isClosed() {
    return this.state === "closed";
  }

  /** @returns {Promise<void>} */
  _whenConnected() {
    if (this.state === "closed") return Promise.reject(new ReplayError(CLIENT_CODES.closed));
    if (this._socket.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this._waiting.push({ resolve, reject }));
  }

  /** @param {ReplayError} error */
  _report(error) {
    this.emit("error", error.toJSON());
  }

  /** @param {string} event @param {unknown} data */
  _protocolError(event, data) {
    this._report(new ReplayError(CLIENT_CODES.badReply, `${event} of an unexpected shape: ${JSON.stringify(data)?.slice(0, 200)}`));
  }
}

/**
 * Connect to a replay/1 server. `getToken()` is awaited before every connection attempt, the
 * first and each reconnect (SES-4 rotates tokens on re-registration).
 * @param {string} url
 * @param {() => string | Promise<string>} getToken
 * @param {ConnectOptions} [options]
 * @returns {Client}
 */
export function connect(url, getToken, options) {
  const client = new Client(url, getToken, options);
  client._open();
  return client;
}

/** @param {any} event */
function isMessagesEvent(event) {
  return (
    typeof event?.channel === "string" &&
    typeof event.epoch === "string" &&
    Array.isArray(event.messages) &&
    event.messages.every((/** @type {any} */ m) => typeof m === "object" && m !== null && Number.isSafeInteger(m.offset))
  );
}
