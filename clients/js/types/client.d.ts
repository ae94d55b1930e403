/**
 * Connect to a replay/1 server. `getToken()` is awaited before every connection attempt, the
 * first and each reconnect (SES-4 rotates tokens on re-registration).
 * @param {string} url
 * @param {() => string | Promise<string>} getToken
 * @param {ConnectOptions} [options]
 * @returns {Client}
 */
export function connect(url: string, getToken: () => string | Promise<string>, options?: ConnectOptions): Client;
/** @extends {Emitter<ClientEvents>} */
export class Client extends Emitter<ClientEvents> {
    /**
     * Use `connect()`.
     * @param {string} url
     * @param {() => string | Promise<string>} getToken
     * @param {ConnectOptions} [options]
     */
    constructor(url: string, getToken: () => string | Promise<string>, options?: ConnectOptions);
    /** @type {ClientState} */
    state: ClientState;
    /** Connections that came up and that ended (forced or not), refused connects, and
     * `getToken` calls. */
    stats: {
        connects: number;
        disconnects: number;
        refused: number;
        tokenCalls: number;
    };
    positions: import("./positions.js").PositionStore;
    _getToken: () => string | Promise<string>;
    _backoffOptions: {
        minDelay: number | undefined;
        maxDelay: number | undefined;
        jitter: number | undefined;
    };
    _backoff: Backoff;
    _stableMs: number;
    _requestTimeoutMs: number;
    /** @type {Map<string, Subscription>} */
    _subscriptions: Map<string, Subscription>;
    /** @type {Map<number, {reject: (e: Error) => void, timer: any}>} */
    _pending: Map<number, {
        reject: (e: Error) => void;
        timer: any;
    }>;
    _requests: number;
    _token: string;
    _upSince: number;
    /** @type {any} */
    _reconnectTimer: any;
    /** @type {Array<{resolve: () => void, reject: (e: Error) => void}>} */
    _waiting: Array<{
        resolve: () => void;
        reject: (e: Error) => void;
    }>;
    _socket: import("socket.io-client").Socket<import("@socket.io/component-emitter").DefaultEventsMap, import("@socket.io/component-emitter").DefaultEventsMap>;
    /**
     * Read one channel; returns at once (server replies arrive as the subscription's events).
     * @param {string} channel
     * @param {SubscribeOptions} [options]
     * @returns {Subscription}
     */
    subscribe(channel: string, options?: SubscribeOptions): Subscription;
    /**
     * The channel's retained history, page by page (replay:history, HIS-8); waits for a
     * connection, and asks again for a page lost to a disconnect. Throws a ReplayError with the
     * server's code when a page is refused, or `closed`.
     * @param {string} channel
     * @param {HistoryOptions} [options]
     * @returns {AsyncGenerator<HistoryPage, void, undefined>}
     */
    history(channel: string, options?: HistoryOptions): AsyncGenerator<HistoryPage, void, undefined>;
    /** End everything: no reconnect, every subscription ends with reason "closed". */
    close(): void;
    /** The live subscription of `channel`, if any. @param {string} channel */
    subscription(channel: string): Subscription | undefined;
    /** Start the first connection attempt. @internal */
    _open(): void;
    _attempt(): Promise<void>;
    _scheduleReconnect(): void;
    _listen(): void;
    /** @returns {import("./subscription.js").SubscriptionHost} */
    _host(): import("./subscription.js").SubscriptionHost;
    /**
     * Send one client event and resolve with its reply. Never queued while disconnected
     * (socket.io-client would send it on the next connection, where it means something else).
     * @param {string} event
     * @param {object} payload
     * @returns {Promise<any>}
     */
    _request(event: string, payload: object): Promise<any>;
    _renew(): void;
    /** @param {Error} error */
    _failPending(error: Error): void;
    /** @returns {boolean} */
    _isClosed(): boolean;
    /** @returns {Promise<void>} */
    _whenConnected(): Promise<void>;
    /** @param {ReplayError} error */
    _report(error: ReplayError): void;
    /** @param {string} event @param {unknown} data */
    _protocolError(event: string, data: unknown): void;
}
export type PositionStore = import("./positions.js").PositionStore;
export type SubscribeOptions = import("./subscription.js").SubscribeOptions;
export type HistoryOptions = import("./history.js").HistoryOptions;
export type HistoryPage = import("./history.js").HistoryPage;
export type ClientState = "connecting" | "connected" | "closed";
export type ConnectOptions = {
    /**
     * where positions are kept (default: in memory)
     */
    positions?: import("./positions.js").PositionStore | undefined;
    /**
     * first reconnect delay, ms (250)
     */
    minDelay?: number | undefined;
    /**
     * largest reconnect delay before jitter, ms (10000)
     */
    maxDelay?: number | undefined;
    /**
     * each delay is multiplied by a factor in [1 - jitter, 1 + jitter] (0.5)
     */
    jitter?: number | undefined;
    /**
     * a connection up this long resets the backoff (5000)
     */
    stableMs?: number | undefined;
    /**
     * a reply later than this renews the connection (10000)
     */
    requestTimeoutMs?: number | undefined;
    /**
     * more options for socket.io-client's `io()`
     * (e.g. `transports`, `path`); reconnection and auth are the library's
     */
    socket?: Record<string, unknown> | undefined;
    /**
     * the `io` function (tests pass a fake)
     */
    io?: typeof io | undefined;
};
export type ClientEvents = {
    /**
     * a connection is up (the first or a reconnect)
     */
    connect: {
        attempt: number;
    };
    /**
     * it ended; a reconnect follows unless closed
     */
    disconnect: {
        reason: string;
    };
    /**
     * a refused connect
     * (CONNECT_ERROR: `unauthorized`, `unavailable`, `internal`), `connect_failed` (a
     * network error), `token_failed`
     */
    error: {
        code: string;
        message: string;
        retryable: boolean;
    };
    close: {};
};
import { Emitter } from "./emitter.js";
import { Backoff } from "./backoff.js";
import { Subscription } from "./subscription.js";
import { ReplayError } from "./errors.js";
import { io } from "socket.io-client";
