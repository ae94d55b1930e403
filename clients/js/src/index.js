// socketio-replay-client: the client half of replay/1 over socket.io-client.
//
// Layers, bottom up (no module imports one above it):
//   errors, emitter                         leaf types
//   backoff, guard, policy, positions, acks pure logic (acks is sans-IO: send and timers given)
//   history, subscription                   protocol state, given a transport
//   client                                  the socket.io-client shell and entry point
export { connect, Client } from "./client.js";
export { Subscription } from "./subscription.js";
export { MemoryPositions, LocalStoragePositions, isPosition } from "./positions.js";
export { Backoff } from "./backoff.js";
export { judgeBatch } from "./guard.js";
export { decide, policyFor } from "./policy.js";
export { AckBatcher } from "./acks.js";
export { ReplayError, CLIENT_CODES, isRetryable } from "./errors.js";

/** @typedef {import("./client.js").ConnectOptions} ConnectOptions */
/** @typedef {import("./client.js").ClientEvents} ClientEvents */
/** @typedef {import("./client.js").ClientState} ClientState */
/** @typedef {import("./subscription.js").SubscribeOptions} SubscribeOptions */
/** @typedef {import("./subscription.js").SubscribedEvent} SubscribedEvent */
/** @typedef {import("./subscription.js").SubscriptionEvents} SubscriptionEvents */
/** @typedef {import("./subscription.js").SubscriptionState} SubscriptionState */
/** @typedef {import("./subscription.js").Message} Message */
/** @typedef {import("./subscription.js").MessagesContext} MessagesContext */
/** @typedef {import("./positions.js").Position} Position */
/** @typedef {import("./positions.js").PositionStore} PositionStore */
/** @typedef {import("./policy.js").Policy} Policy */
/** @typedef {import("./policy.js").PolicyName} PolicyName */
/** @typedef {import("./history.js").HistoryPage} HistoryPage */
/** @typedef {import("./history.js").HistoryOptions} HistoryOptions */
