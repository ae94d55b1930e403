/**
 * @typedef {object} BackoffOptions
 * @property {number} [minDelay] first delay in ms (default 250)
 * @property {number} [maxDelay] largest delay before jitter, in ms (default 10000)
 * @property {number} [jitter] 0..1 (default 0.5)
 * @property {() => number} [random] a source of [0, 1) numbers (default Math.random)
 */
export class Backoff {
    /** @param {BackoffOptions} [options] */
    constructor({ minDelay, maxDelay, jitter, random }?: BackoffOptions);
    minDelay: number;
    maxDelay: number;
    jitter: number;
    _random: () => number;
    /** Delays handed out since the last reset. */
    attempts: number;
    /** The next delay in ms. */
    next(): number;
    /** Start again from `minDelay` (after a connection that stayed up). */
    reset(): void;
}
export type BackoffOptions = {
    /**
     * first delay in ms (default 250)
     */
    minDelay?: number | undefined;
    /**
     * largest delay before jitter, in ms (default 10000)
     */
    maxDelay?: number | undefined;
    /**
     * 0..1 (default 0.5)
     */
    jitter?: number | undefined;
    /**
     * a source of [0, 1) numbers (default Math.random)
     */
    random?: (() => number) | undefined;
};
