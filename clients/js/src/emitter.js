// Leaf module: a small event emitter that works the same in browsers and Node.js (Node's
// `events` is not in browsers; EventTarget would wrap every payload in an Event).

/** @template {Record<string, any>} Events */
export class Emitter {
  constructor() {
    /** @type {Map<keyof Events, Set<(data: any) => void>>} */
    this._handlers = new Map();
  }

  /**
   * Call `handler` with each `name` event's data.
   * @template {keyof Events} K
   * @param {K} name
   * @param {(data: Events[K]) => void} handler
   * @returns {this}
   */
  on(name, handler) {
    let set = this._handlers.get(name);
    if (!set) this._handlers.set(name, (set = new Set()));
    set.add(handler);
    return this;
  }

  /**
   * Stop calling `handler`.
   * @template {keyof Events} K
   * @param {K} name
   * @param {(data: Events[K]) => void} handler
   * @returns {this}
   */
  off(name, handler) {
    this._handlers.get(name)?.delete(handler);
    return this;
  }

  /**
   * Call every handler of `name`; a handler that throws does not stop the others.
   * @template {keyof Events} K
   * @param {K} name
   * @param {Events[K]} data
   */
  emit(name, data) {
    for (const handler of [...(this._handlers.get(name) ?? [])]) {
      try {
        handler(data);
      } catch (err) {
        // An application bug in a listener must not break the library's bookkeeping.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
