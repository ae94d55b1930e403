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
    constructor({ maxDelayMs, maxMessages }: AckOptions, io: AckIo);
    maxDelayMs: number;
    maxMessages: number;
    _io: AckIo;
    _setTimer: (fn: () => void, ms: number) => any;
    _clearTimer: (timer: any) => void;
    /** @type {Position | null} finished, not yet sent */
    pending: Position | null;
    /** @type {Position | null} the last one the server confirmed */
    acked: Position | null;
    _count: number;
    _inFlight: boolean;
    _timer: any;
    _stopped: boolean;
    /** The application finished `count` messages, up to `position`. */
    finished(position: Position, count?: number): void;
    /** Send what is pending now (after a reconnect, before closing). */
    flush(): void;
    /** Drop everything; nothing more is sent. */
    stop(): void;
    _schedule(): void;
}
export type Position = import("./positions.js").Position;
export type AckOptions = {
    /**
     * longest wait before a finished offset is acknowledged (200)
     */
    maxDelayMs?: number | undefined;
    /**
     * finished messages that trigger an ack at once (100)
     */
    maxMessages?: number | undefined;
};
export type AckIo = {
    /**
     * sends one `replay:ack`; rejects
     * with a ReplayError when it failed
     */
    send: (position: Position) => Promise<unknown>;
    onError: (error: any) => void;
    setTimer?: ((fn: () => void, ms: number) => any) | undefined;
    clearTimer?: ((timer: any) => void) | undefined;
};
