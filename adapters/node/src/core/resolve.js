/**
 * Where a subscription starts and where a history read starts: the algorithm of spec §6.1,
 * and the state checks of HIS-11. Pure: the caller reads the channel state and the cursor.
 */
import { EpochMismatch, HistoryTruncated, OffsetOutOfRange } from './errors.js';

/**
 * @typedef {{epoch: string, first: number|null, head: number}} ChannelState
 * @typedef {{epoch: string, offset: number}} Cursor
 * @typedef {{from?: number|'beginning'|'latest', epoch?: string, allow_truncation?: boolean}} StartRequest
 * @typedef {{from: number, truncated?: {requested: number, first_available: number}}} Start
 */

/** The first offset that can be delivered. @param {ChannelState} state */
export function lowestRetained(state) {
  return state.first ?? state.head + 1;
}

/**
 * Resolve a subscribe's `from` (SUB-4 to SUB-11). The request's shape (SUB-16) is checked
 * before: an integer `from` here always carries `epoch`.
 * @param {StartRequest} request
 * @param {ChannelState} state
 * @param {Cursor|null} cursor the session's cursor for the channel, if any (null without cursors)
 * @returns {Start}
 */
export function resolveStart(request, state, cursor) {
  const lowest = lowestRetained(state);
  let n;
  if (request.from === undefined) {
    if (!cursor || cursor.epoch !== state.epoch) return { from: state.head + 1 }; // SUB-9, ACK-7
    n = cursor.offset + 1;
  } else if (request.from === 'beginning') {
    return { from: lowest }; // SUB-7
  } else if (request.from === 'latest') {
    return { from: state.head + 1 }; // SUB-8
  } else {
    if (request.epoch !== state.epoch) throw epochMismatch(request.epoch, state.epoch); // SUB-4
    n = request.from;
  }
  if (n > state.head + 1) throw outOfRange(n, state.head); // SUB-5
  if (n < lowest) {
    if (request.allow_truncation) return { from: lowest, truncated: { requested: n, first_available: lowest } }; // SUB-11
    throw truncated(n, lowest); // SUB-6
  }
  return { from: n };
}

/**
 * Resolve a history read's `from` (HIS-4, HIS-6, HIS-7, HIS-10), in HIS-11's order.
 * @param {{from?: number|'beginning', epoch?: string}} request
 * @param {ChannelState} state
 * @returns {number}
 */
export function resolveHistoryStart(request, state) {
  const lowest = lowestRetained(state);
  if (request.from === undefined || request.from === 'beginning') return lowest;
  if (request.epoch !== state.epoch) throw epochMismatch(request.epoch, state.epoch);
  if (request.from > state.head + 1) throw outOfRange(request.from, state.head);
  if (request.from < lowest) throw truncated(request.from, lowest);
  return request.from;
}

/**
 * ACK-2, ACK-3 in ACK-10's order (the grant is checked before).
 * @param {{offset: number, epoch: string}} request
 * @param {ChannelState} state
 */
export function checkAck(request, state) {
  if (request.epoch !== state.epoch) throw epochMismatch(request.epoch, state.epoch);
  if (request.offset > state.head) {
    throw new OffsetOutOfRange(`offset ${request.offset} is above head ${state.head}`, { head: state.head });
  }
}

/** @param {string|undefined} given @param {string} current */
function epochMismatch(given, current) {
  return new EpochMismatch(`epoch ${JSON.stringify(given)} is not the current epoch`, { current_epoch: current });
}

/** @param {number} n @param {number} head */
function outOfRange(n, head) {
  return new OffsetOutOfRange(`from ${n} is above head + 1 (${head + 1})`, { head });
}

/** @param {number} n @param {number} first */
function truncated(n, first) {
  return new HistoryTruncated(`from ${n} is no longer retained; the first retained offset is ${first}`, { first });
}
