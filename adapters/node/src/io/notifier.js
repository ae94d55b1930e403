/**
 * Wakes the subscriptions of a channel when it is appended to, on this node or (through the
 * store's notifications) another. A version per channel closes the race between a read that
 * found nothing new and the wait that follows it.
 */
export class Notifier {
  constructor() {
    /** @type {Map<string, {version: number, waiters: Set<() => void>}>} */
    this.channels = new Map();
  }

  /** @param {string} channel */
  entry(channel) {
    let e = this.channels.get(channel);
    if (!e) this.channels.set(channel, (e = { version: 0, waiters: new Set() }));
    return e;
  }

  /** @param {string} channel */
  version(channel) {
    return this.entry(channel).version;
  }

  /** @param {string} channel */
  notify(channel) {
    const e = this.channels.get(channel);
    if (!e) return;
    e.version++;
    const waiters = [...e.waiters];
    e.waiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * Resolves on the first notification after `version` was read, or after `timeoutMs`, or
   * when `signal` aborts.
   * @param {string} channel
   * @param {number} version
   * @param {number} timeoutMs
   * @param {AbortSignal} signal
   */
  wait(channel, version, timeoutMs, signal) {
    const e = this.entry(channel);
    if (e.version !== version || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        e.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      e.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
