/**
 * One subscription's delivery loop (§7.1, §10): read from the store at the next offset,
 * send what continues the stream, wait for the socket to drain and for the head to move.
 * History and live messages come through the same read, so the handoff has no seam (HND-1).
 */
import { allows } from '../core/grants.js';
import { batches, contiguousFrom } from '../core/batching.js';

/** How long an idle subscription waits before it reads again without a notification. */
const IDLE_READ_MS = 1000;
/** FLW-2: packets queued in the engine's write buffer before a subscription waits. */
const QUEUE_BOUND = 4;
/**
 * DLV-3: after a live wake-up, wait this long so that messages published close together
 * leave in one event: a socket.io client pays per event, not per message.
 */
const LIVE_LINGER_MS = 15;
/** LIF-5: failed store reads in a row before the subscription ends `unavailable`. */
const MAX_READ_FAILURES = 10;

export class Subscription {
  /**
   * @param {{channel: string, epoch: string, from: number, socketState: import('./socket.js').SocketState,
   *   store: import('../stores/types.js').Store, notifier: import('./notifier.js').Notifier,
   *   maxBatch: number, clock: () => number}} options
   */
  constructor({ channel, epoch, from, socketState, store, notifier, maxBatch, clock }) {
    this.channel = channel;
    this.epoch = epoch;
    this.next = from;
    this.socketState = socketState;
    this.store = store;
    this.notifier = notifier;
    this.maxBatch = maxBatch;
    this.clock = clock;
    this.abort = new AbortController();
    this.ended = false;
  }

  get socket() {
    return this.socketState.socket;
  }

  start() {
    this.loop().catch(() => this.end('internal')); // LIF-6
  }

  /**
   * End the subscription; with a reason, tell the client (LIF-1). Idempotent: one ending.
   * @param {string} [reason]
   */
  end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.socketState.forget(this);
    if (reason) this.socket.emit('replay:unsubscribed', { channel: this.channel, reason });
  }

  async loop() {
    let failures = 0;
    while (!this.ended) {
      await this.drained();
      if (this.ended) return;
      const version = this.notifier.version(this.channel);
      let read;
      try {
        read = await this.store.read(this.channel, this.next, this.maxBatch, this.clock());
        failures = 0;
      } catch (err) {
        if (++failures >= MAX_READ_FAILURES) return this.end('unavailable'); // LIF-5, never skip
        await sleep(200, this.abort.signal);
        continue;
      }
      if (this.ended) return;
      if (read.epoch !== this.epoch) return this.end('epoch_changed'); // SIG-3
      if (this.next < (read.first ?? read.head + 1)) return this.end('truncated'); // SIG-2
      const messages = contiguousFrom(read.messages, this.next);
      if (messages.length === 0) {
        await this.notifier.wait(this.channel, version, IDLE_READ_MS, this.abort.signal); // LIF-2
        await sleep(LIVE_LINGER_MS, this.abort.signal);
        continue;
      }
      // ACC-5: grants as they are when the event is produced.
      if (!allows(this.socketState.session.grants, this.channel, 'subscribe')) return this.end('revoked');
      for (const batch of batches(messages, this.maxBatch)) {
        this.socket.emit('replay:messages', { channel: this.channel, epoch: this.epoch, messages: batch });
        this.next += batch.length;
      }
    }
  }

  /** FLW-2: wait while the socket's write buffer holds more than the bound. */
  async drained() {
    const conn = this.socket.conn;
    while (!this.ended && conn.writeBuffer.length > QUEUE_BOUND && conn.readyState === 'open') {
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          conn.off('drain', done);
          conn.off('close', done);
          this.abort.signal.removeEventListener('abort', done);
          resolve(undefined);
        };
        const timer = setTimeout(done, IDLE_READ_MS);
        conn.on('drain', done);
        conn.on('close', done);
        this.abort.signal.addEventListener('abort', done, { once: true });
      });
    }
  }
}

/** @param {number} ms @param {AbortSignal} signal */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done); // one listener per sleep would pile up
      resolve(undefined);
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
