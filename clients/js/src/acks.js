// Server cursors, batched: after the application finished a batch, acknowledge the last
// finished offset with `replay:ack {channel, offset, epoch}` (ACK-4), at most one ack in flight
// per channel, at most every `maxDelayMs` or `maxMessages` messages. Sans-IO: `send` and the
// timers are given, so tests drive it without a socket or a clock.

/** @typedef {import("./positions.js").Position} Position */

/**
 * @typedef {object} AckOptions
 * @property {number} [maxDelayMs] longest wait before a finished offset is acknowledged (200)
 * @property {number} [maxMessages] finished messages that trigger an ack at once (100)
 */

/**
 * @typedef {object} AckIo
 * @property {(position: Position) => Promise<unknown>} send sends one `replay:ack`; rejects
 *   with a ReplayError when it failed
 * @property {(error: any) => void} onError
 * @property {(fn: () => void, ms: number) => any} [setTimer]
 * @property {(timer: any) => void} [clearTimer]
 */

export class AckBatcher {
  /** @param {AckOptions} options @param {AckIo} io */
  constructor({ maxDelayMs = 200, maxMessages = 100 }, io) {
    this.maxDelayMs = maxDelayMs;
    this.maxMessages = maxMessages;
    this._io = io;
    this._setTimer = io.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this._clearTimer = io.clearTimer ?? ((t) => clearTimeout(t));
    /** @type {Position | null} finished, not yet sent */
    this.pending = null;
    /** @type {Position | null} the last one the server confirmed */
    this.acked = null;
    this._count = 0;
    this._inFlight = false;
    this._timer = null;
    this._stopped = false;
  }

  /** The application finished `count` messages, up to `position`. */
  finished(/** @type {Position} */ position, count = 1) {
    if (this._stopped) return;
    this.pending = { epoch: position.epoch, offset: position.offset };
    this._count += count;
    this._schedule();
  }

  /** Send what is pending now (after a reconnect, before closing). */
  flush() {
    if (this._timer !== null) {
      this._clearTimer(this._timer);
      this._timer = null;
    }
    if (this._stopped || this._inFlight || this.pending === null) return;
    const sending = this.pending;
    this.pending = null;
    this._count = 0;
    this._inFlight = true;
    this._io.send(sending).then(
      () => {
        this.acked = sending;
      },
      (error) => {
        // Keep the offset for the next flush unless a newer one replaced it, or the epoch is
        // gone (an ack of an old epoch can never succeed, ACK-2).
        if (this.pending === null && error?.code !== "epoch_mismatch") this.pending = sending;
        if (!this._stopped) this._io.onError(error); // after stop() nobody is listening
      },
    ).finally(() => {
      this._inFlight = false;
      // A failed send is retried by the next finished() or flush(), not by a timer: while
      // disconnected every attempt would fail at once.
      if (this.pending !== null && this.acked === sending) this._schedule();
    });
  }

  /** Drop everything; nothing more is sent. */
  stop() {
    this._stopped = true;
    if (this._timer !== null) this._clearTimer(this._timer);
    this._timer = null;
    this.pending = null;
  }

  _schedule() {
    if (this._count >= this.maxMessages) {
      this.flush();
    } else if (this._timer === null && !this._inFlight) {
      this._timer = this._setTimer(() => {
        this._timer = null;
        this.flush();
      }, this.maxDelayMs);
    }
  }
}
