// Pure: reconnect and retry delays. Exponential from `minDelay`, doubling up to `maxDelay`,
// each multiplied by a random factor in [1 - jitter, 1 + jitter] so that many clients cut at
// once do not come back at once.

/**
 * @typedef {object} BackoffOptions
 * @property {number} [minDelay] first delay in ms (default 250)
 * @property {number} [maxDelay] largest delay before jitter, in ms (default 10000)
 * @property {number} [jitter] 0..1 (default 0.5)
 * @property {() => number} [random] a source of [0, 1) numbers (default Math.random)
 */

export class Backoff {
  /** @param {BackoffOptions} [options] */
  constructor({ minDelay = 250, maxDelay = 10_000, jitter = 0.5, random = Math.random } = {}) {
    if (!(minDelay >= 0) || !(maxDelay >= minDelay)) {
      throw new RangeError("backoff needs 0 <= minDelay <= maxDelay");
    }
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError("backoff jitter must be in [0, 1]");
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.jitter = jitter;
    this._random = random;
    /** Delays handed out since the last reset. */
    this.attempts = 0;
  }

  /** The next delay in ms. */
  next() {
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this.attempts, 52));
    this.attempts += 1;
    const factor = 1 - this.jitter + 2 * this.jitter * this._random();
    return Math.round(base * factor);
  }

  /** Start again from `minDelay` (after a connection that stayed up). */
  reset() {
    this.attempts = 0;
  }
}
