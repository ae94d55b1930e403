// Position stores: `{epoch, offset}` per channel, the last message the application finished
// with. Any object with `get(channel)` and `set(channel, position)` (sync or async) will do.

/** @typedef {{epoch: string, offset: number}} Position */

/**
 * @typedef {object} PositionStore
 * @property {(channel: string) => Position | null | undefined | Promise<Position | null | undefined>} get
 * @property {(channel: string, position: Position) => void | Promise<void>} set
 */

/**
 * Whether `value` is a position: a non-empty string epoch and an integer offset ≥ 0.
 * @param {unknown} value
 * @returns {value is Position}
 */
export function isPosition(value) {
  const p = /** @type {any} */ (value);
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.epoch === "string" &&
    p.epoch.length > 0 &&
    Number.isSafeInteger(p.offset) &&
    p.offset >= 0
  );
}

/** The default store: positions live as long as the page or process. */
export class MemoryPositions {
  constructor() {
    /** @type {Map<string, Position>} */
    this._positions = new Map();
  }

  /** @param {string} channel @returns {Position | null} */
  get(channel) {
    return this._positions.get(channel) ?? null;
  }

  /** @param {string} channel @param {Position} position */
  set(channel, position) {
    this._positions.set(channel, { epoch: position.epoch, offset: position.offset });
  }
}

/**
 * Browser store: one localStorage key per channel, `prefix + channel`, holding JSON. A value
 * that is not a position (edited by hand, written by another version) reads as none.
 */
export class LocalStoragePositions {
  /**
   * @param {string} [prefix]
   * @param {Pick<Storage, "getItem" | "setItem">} [storage] default `globalThis.localStorage`
   */
  constructor(prefix = "replay:", storage = globalThis.localStorage) {
    if (!storage) throw new TypeError("LocalStoragePositions needs localStorage");
    this.prefix = prefix;
    this._storage = storage;
  }

  /** @param {string} channel @returns {Position | null} */
  get(channel) {
    const text = this._storage.getItem(this.prefix + channel);
    if (text === null) return null;
    try {
      const value = JSON.parse(text);
      return isPosition(value) ? { epoch: value.epoch, offset: value.offset } : null;
    } catch {
      return null;
    }
  }

  /** @param {string} channel @param {Position} position */
  set(channel, position) {
    const { epoch, offset } = position;
    this._storage.setItem(this.prefix + channel, JSON.stringify({ epoch, offset }));
  }
}
