/** @typedef {import("./positions.js").Position} Position */
/** @typedef {import("./positions.js").PositionStore} PositionStore */
/** @typedef {import("./policy.js").Policy} Policy */
/** @typedef {import("./backoff.js").BackoffOptions} BackoffOptions */
/** @typedef {{offset: number, id: string, ts: number, data: any}} Message */
/** @typedef {"subscribing" | "subscribed" | "unsubscribed"} SubscriptionState */
/**
 * @typedef {object} MessagesContext
 * @property {string} channel
 * @property {string} epoch
 * @property {Subscription} subscription
 */
/**
 * @typedef {object} SubscribeOptions
 * @property {"beginning" | "latest" | Position} [from] where to start; a position means "the
 *   application finished `offset`, start at `offset + 1`". Default: the position store's
 *   entry, else "beginning" (with `ack`, the server cursor: `from` omitted, SUB-9).
 * @property {(messages: Message[], context: MessagesContext) => unknown} [onMessages]
 *   awaited; the position advances once it returns
 * @property {Policy} [onUnresumable] "fail" (default), "restart" or "continue"
 * @property {boolean | import("./acks.js").AckOptions} [ack] acknowledge finished offsets
 *   to the server cursor (replay:ack), batched
 */
/**
 * @typedef {object} SubscribedEvent
 * @property {string} epoch
 * @property {number} from
 * @property {number} head
 * @property {boolean} recovered it resumed exactly from the requested position
 * @property {boolean} truncated the policy continued past removed messages
 * @property {{requested: number, first_available: number} | null} truncation the reply's
 *   `truncated` member (SUB-11), when the server gave one
 * @property {boolean} epochChanged the policy restarted in a new epoch
 */
/**
 * @typedef {object} SubscriptionEvents
 * @property {SubscribedEvent} subscribed
 * @property {{epoch: string, messages: Message[]}} messages
 * @property {{reason: string, message?: string}} unsubscribed
 * @property {{code: string, message: string, retryable: boolean}} error
 */
/**
 * What a subscription needs from its client: the transport, kept out of this module.
 * @typedef {object} SubscriptionHost
 * @property {() => boolean} connected
 * @property {(event: string, payload: object) => Promise<any>} request
 * @property {(event: string, payload: object) => void} send an event without waiting
 * @property {PositionStore} positions
 * @property {BackoffOptions} backoff
 * @property {(subscription: Subscription) => void} forget
 */
/** @extends {Emitter<SubscriptionEvents>} */
export class Subscription extends Emitter<SubscriptionEvents> {
    /**
     * Made by `client.subscribe`; not meant to be constructed by the application.
     * @param {SubscriptionHost} host
     * @param {string} channel
     * @param {SubscribeOptions} options
     */
    constructor(host: SubscriptionHost, channel: string, options: SubscribeOptions);
    channel: string;
    /** @type {SubscriptionState} */
    state: SubscriptionState;
    /** What the guard and the queue counted. */
    stats: {
        delivered: number;
        batches: number;
        duplicates: number;
        gaps: number;
        foreign: number;
        subscribes: number;
    };
    /** @type {Position | null} the last message the application finished */
    position: Position | null;
    _host: SubscriptionHost;
    _onMessages: ((messages: Message[], context: MessagesContext) => unknown) | undefined;
    _policy: import("./policy.js").Policy | undefined;
    _backoff: Backoff;
    /** @type {string | null} epoch and last offset handed to the queue (the guard's view) */
    _epoch: string | null;
    _last: number;
    _gen: number;
    _awaiting: boolean;
    /**
     * Batches that came while the subscribe's reply was awaited. The server sends a
     * subscription's messages right behind its reply (SUB-13), often in the same read, so
     * they reach us before the awaiting code runs; they are judged once the reply is.
     * @type {{epoch: string, messages: Message[]}[]}
     */
    _early: {
        epoch: string;
        messages: Message[];
    }[];
    /** @type {Record<string, unknown> | null} the next subscribe's request, once */
    _override: Record<string, unknown> | null;
    _flags: {
        epochChanged: boolean;
        truncated: boolean;
    };
    /** Bumped when queued batches must not reach the application (a rewind). */
    _rewinds: number;
    /** @type {Promise<void>} */
    _queue: Promise<void>;
    /** @type {any} */
    _retryTimer: any;
    /** @type {AckBatcher | null} */
    _acks: AckBatcher | null;
    /** @type {Record<string, unknown>} the first subscribe's `from` (and `epoch`) */
    _initial: Record<string, unknown>;
    _loaded: Promise<void>;
    /**
     * Stop reading: sends `replay:unsubscribe` when connected; the state is "unsubscribed".
     * @returns {Promise<void>}
     */
    unsubscribe(): Promise<void>;
    /** A connection is up: subscribe from the position. @internal */
    _connected(): void;
    /** The connection ended: every reply and batch of it is void. @internal */
    _disconnected(): void;
    /** @param {{epoch: string, messages: Message[]}} event @internal */
    _messages(event: {
        epoch: string;
        messages: Message[];
    }): void;
    /**
     * The server subscribed this socket itself (an auto-subscription of the session, §8). It
     * stands for our own subscribe when it starts where that one would: at the guard's next
     * offset, or, reading through the server cursor, wherever the cursor says. Otherwise it is
     * ignored: our subscribe fails `already_subscribed` and the repair replaces it.
     * @internal
     */
    _serverSubscribed(event: any): Promise<void>;
    /** The server ended the subscription (replay:unsubscribed, §7.3). @internal */
    _serverUnsubscribed(event: {
        reason: string;
        message?: string;
    }): void;
    /** The client closed. @internal */
    _close(): void;
    _subscribe(): Promise<void>;
    /** Where a resume starts: after the last offset handed to the queue, in its epoch. */
    _resumeRequest(): Record<string, unknown>;
    /**
     * @param {{epoch: string, from: number, head: number, truncated?: {requested: number, first_available: number}}} info
     * @param {Record<string, unknown>} request what was asked
     */
    _confirm(info: {
        epoch: string;
        from: number;
        head: number;
        truncated?: {
            requested: number;
            first_available: number;
        };
    }, request: Record<string, unknown>): void;
    /**
     * An error reply or a server end: the policy decides what follows.
     * @param {{code: string, message?: string}} error
     * @param {boolean} announce whether `unsubscribed` is still to be emitted if it ends
     */
    _follow(error: {
        code: string;
        message?: string;
    }, announce: boolean): void;
    /** Unsubscribe on the server and subscribe again from the position (gap, rewind). */
    _repair(): void;
    /** @param {() => void} fn */
    _retry(fn: () => void): void;
    _clearRetry(): void;
    /** @param {string} epoch @param {Message[]} messages @param {number} rewinds */
    _deliver(epoch: string, messages: Message[], rewinds: number): Promise<void>;
    /** The application failed a batch: drop what is queued and read again after its position. */
    _rewind(): void;
    /** @param {SubscribeOptions["from"]} from @param {boolean} ack */
    _load(from: SubscribeOptions["from"], ack: boolean): Promise<void>;
    /** @param {Position} position */
    _sendAck(position: Position): Promise<any>;
    /** @param {ReplayError | {code: string, message?: string}} error */
    _report(error: ReplayError | {
        code: string;
        message?: string;
    }): void;
    /** @param {string} reason @param {string} [message] */
    _end(reason: string, message?: string, announce?: boolean): void;
}
export type Position = import("./positions.js").Position;
export type PositionStore = import("./positions.js").PositionStore;
export type Policy = import("./policy.js").Policy;
export type BackoffOptions = import("./backoff.js").BackoffOptions;
export type Message = {
    offset: number;
    id: string;
    ts: number;
    data: any;
};
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";
export type MessagesContext = {
    channel: string;
    epoch: string;
    subscription: Subscription;
};
export type SubscribeOptions = {
    /**
     * where to start; a position means "the
     * application finished `offset`, start at `offset + 1`". Default: the position store's
     * entry, else "beginning" (with `ack`, the server cursor: `from` omitted, SUB-9).
     */
    from?: import("./positions.js").Position | "beginning" | "latest" | undefined;
    /**
     * awaited; the position advances once it returns
     */
    onMessages?: ((messages: Message[], context: MessagesContext) => unknown) | undefined;
    /**
     * "fail" (default), "restart" or "continue"
     */
    onUnresumable?: import("./policy.js").Policy | undefined;
    /**
     * acknowledge finished offsets
     * to the server cursor (replay:ack), batched
     */
    ack?: boolean | import("./acks.js").AckOptions | undefined;
};
export type SubscribedEvent = {
    epoch: string;
    from: number;
    head: number;
    /**
     * it resumed exactly from the requested position
     */
    recovered: boolean;
    /**
     * the policy continued past removed messages
     */
    truncated: boolean;
    /**
     * the reply's
     * `truncated` member (SUB-11), when the server gave one
     */
    truncation: {
        requested: number;
        first_available: number;
    } | null;
    /**
     * the policy restarted in a new epoch
     */
    epochChanged: boolean;
};
export type SubscriptionEvents = {
    subscribed: SubscribedEvent;
    messages: {
        epoch: string;
        messages: Message[];
    };
    unsubscribed: {
        reason: string;
        message?: string;
    };
    error: {
        code: string;
        message: string;
        retryable: boolean;
    };
};
/**
 * What a subscription needs from its client: the transport, kept out of this module.
 */
export type SubscriptionHost = {
    connected: () => boolean;
    request: (event: string, payload: object) => Promise<any>;
    /**
     * an event without waiting
     */
    send: (event: string, payload: object) => void;
    positions: PositionStore;
    backoff: BackoffOptions;
    forget: (subscription: Subscription) => void;
};
import { Emitter } from "./emitter.js";
import { Backoff } from "./backoff.js";
import { AckBatcher } from "./acks.js";
import { ReplayError } from "./errors.js";
