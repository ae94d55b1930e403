/**
 * Whether an error with this code may succeed when tried again.
 * @param {string} code
 */
export function isRetryable(code: string): boolean;
/**
 * The error an error reply carries (`{ok: false, error: {code, message}}`), or a
 * `bad_reply` for a reply of any other shape.
 * @param {unknown} reply
 * @returns {ReplayError}
 */
export function replyError(reply: unknown): ReplayError;
/** Codes the library reports itself, beside the spec's. */
export const CLIENT_CODES: Readonly<{
    /** The guard saw an offset above `last + 1` (a gap), repaired by resubscribing. */
    gap: "gap";
    /** The request got no reply within `requestTimeoutMs`; the connection is renewed. */
    timeout: "timeout";
    /** The connection ended before the reply arrived. */
    disconnected: "disconnected";
    /** `getToken()` threw or returned something that is not a string. */
    token: "token_failed";
    /** A connection attempt failed without a CONNECT_ERROR (a network error). */
    connect: "connect_failed";
    /** The application's `onMessages` threw; the batch is delivered again. */
    handler: "handler_failed";
    /** The position store's `get` (the subscription ends) or `set` threw. */
    positions: "positions_failed";
    /** The client was closed. */
    closed: "closed";
    /** A reply or event that does not have the shape the spec gives it. */
    badReply: "bad_reply";
}>;
/** An error with a wire (or library) `code`; what the `error` events carry. */
export class ReplayError extends Error {
    /**
     * @param {string} code
     * @param {string} [message]
     */
    constructor(code: string, message?: string);
    /** @type {string} */
    code: string;
    /** @type {boolean} */
    retryable: boolean;
    /** @returns {{code: string, message: string, retryable: boolean}} */
    toJSON(): {
        code: string;
        message: string;
        retryable: boolean;
    };
}
