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
export function isPosition(value: unknown): value is Position;
/** The default store: positions live as long as the page or process. */
export class MemoryPositions {
    /** @type {Map<string, Position>} */
    _positions: Map<string, Position>;
    /** @param {string} channel @returns {Position | null} */
    get(channel: string): Position | null;
    /** @param {string} channel @param {Position} position */
    set(channel: string, position: Position): void;
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
    constructor(prefix?: string, storage?: Pick<Storage, "getItem" | "setItem">);
    prefix: string;
    _storage: Pick<Storage, "getItem" | "setItem">;
    /** @param {string} channel @returns {Position | null} */
    get(channel: string): Position | null;
    /** @param {string} channel @param {Position} position */
    set(channel: string, position: Position): void;
}
export type Position = {
    epoch: string;
    offset: number;
};
export type PositionStore = {
    get: (channel: string) => Position | null | undefined | Promise<Position | null | undefined>;
    set: (channel: string, position: Position) => void | Promise<void>;
};
