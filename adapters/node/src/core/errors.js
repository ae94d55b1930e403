/**
 * One error hierarchy for every replay/1 error code (spec §4.1's table). Handlers throw these;
 * the IO shell turns them into an error reply or an HTTP error response.
 */

/** @type {Readonly<Record<string, number>>} error code -> HTTP status (spec §4.1) */
export const HTTP_STATUS = Object.freeze({
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  already_subscribed: 409,
  not_subscribed: 409,
  epoch_mismatch: 409,
  history_truncated: 410,
  offset_out_of_range: 416,
  payload_too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
});

export class ReplayError extends Error {
  /**
   * @param {string} code one of the spec's error codes
   * @param {string} message for humans only (API-4)
   * @param {Record<string, unknown>} [details] machine-readable extras
   */
  constructor(code, message, details) {
    super(message);
    this.name = 'ReplayError';
    this.code = code;
    this.details = details;
  }

  get status() {
    return HTTP_STATUS[this.code] ?? 500;
  }

  /** @returns {{code: string, message: string, details?: Record<string, unknown>}} */
  toJSON() {
    const body = { code: this.code, message: this.message };
    if (this.details) body.details = this.details;
    return body;
  }
}

const define = (code, name) => {
  const cls = class extends ReplayError {
    constructor(message = code.replace(/_/g, ' '), details) {
      super(code, message, details);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
};

export const BadRequest = define('bad_request', 'BadRequest');
export const Unauthorized = define('unauthorized', 'Unauthorized');
export const Forbidden = define('forbidden', 'Forbidden');
export const NotFound = define('not_found', 'NotFound');
export const AlreadySubscribed = define('already_subscribed', 'AlreadySubscribed');
export const NotSubscribed = define('not_subscribed', 'NotSubscribed');
export const EpochMismatch = define('epoch_mismatch', 'EpochMismatch');
export const HistoryTruncated = define('history_truncated', 'HistoryTruncated');
export const OffsetOutOfRange = define('offset_out_of_range', 'OffsetOutOfRange');
export const PayloadTooLarge = define('payload_too_large', 'PayloadTooLarge');
export const RateLimited = define('rate_limited', 'RateLimited');
export const Unavailable = define('unavailable', 'Unavailable');
export const Internal = define('internal', 'Internal');

/**
 * Any thrown value as a ReplayError: our own pass through, anything else is `internal`
 * (ROB-6), or `unavailable` when it is marked as a store outage.
 * @param {unknown} err
 * @returns {ReplayError}
 */
export function asReplayError(err) {
  if (err instanceof ReplayError) return err;
  if (err && typeof err === 'object' && /** @type {any} */ (err).storeUnavailable) {
    return new Unavailable('the store cannot be reached');
  }
  return new Internal('unexpected server failure');
}
