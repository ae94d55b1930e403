// Leaf module: the one error root of the library. Every error carries a `code`: one of the
// spec's error codes (spec/protocol.md §4.1) or one of the library's own below.

/** Codes the library reports itself, beside the spec's. */
export const CLIENT_CODES = Object.freeze({
  /** The guard saw an offset above `last + 1` (a gap), repaired by resubscribing. */
  gap: "gap",
  /** The request got no reply within `requestTimeoutMs`; the connection is renewed. */
  timeout: "timeout",
  /** The connection ended before the reply arrived. */
  disconnected: "disconnected",
  /** `getToken()` threw or returned something that is not a string. */
  token: "token_failed",
  /** A connection attempt failed without a CONNECT_ERROR (a network error). */
  connect: "connect_failed",
  /** The application's `onMessages` threw; the batch is delivered again. */
  handler: "handler_failed",
  /** The position store's `get` (the subscription ends) or `set` threw. */
  positions: "positions_failed",
  /** The client was closed. */
  closed: "closed",
  /** A reply or event that does not have the shape the spec gives it. */
  badReply: "bad_reply",
});

/** Codes of a passing condition of the server or the network: trying again later may
 * succeed (spec §4.1 and EVT-11; the library's own `timeout`, `disconnected`, `connect_failed`). */
const RETRYABLE = new Set(["unavailable", "internal", "rate_limited", "timeout", "disconnected", "connect_failed"]);

/**
 * Whether an error with this code may succeed when tried again.
 * @param {string} code
 */
export function isRetryable(code) {
  return RETRYABLE.has(code);
}

/** An error with a wire (or library) `code`; what the `error` events carry. */
export class ReplayError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   */
  constructor(code, message) {
    super(message || code);
    this.name = "ReplayError";
    /** @type {string} */
    this.code = code;
    /** @type {boolean} */
    this.retryable = isRetryable(code);
  }

  /** @returns {{code: string, message: string, retryable: boolean}} */
  toJSON() {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/**
 * The error an error reply carries (`{ok: false, error: {code, message}}`), or a
 * `bad_reply` for a reply of any other shape.
 * @param {unknown} reply
 * @returns {ReplayError}
 */
export function replyError(reply) {
  const error = /** @type {any} */ (reply)?.error;
  if (error && typeof error.code === "string") {
    return new ReplayError(error.code, typeof error.message === "string" ? error.message : "");
  }
  return new ReplayError(CLIENT_CODES.badReply, `unexpected reply: ${safeJson(reply)}`);
}

/** @param {unknown} value */
function safeJson(value) {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}
