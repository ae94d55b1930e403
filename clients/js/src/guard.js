// Pure: the client-side guard. Within one epoch the application never sees an offset twice or
// out of order, whatever the network or a faulty server does.

/**
 * @typedef {object} GuardVerdict
 * @property {Array<{offset: number}>} fresh messages to hand to the application, in order
 * @property {number} duplicates messages at or below the last offset, dropped
 * @property {{expected: number, received: number} | null} gap the first offset above
 *   `last + 1`; when set, `fresh` is empty: the whole batch is dropped and repaired
 * @property {boolean} foreign the batch is of another epoch than the subscription's; dropped
 */

/**
 * Judge one `replay:messages` batch against the last offset handed to the application.
 * @param {{epoch: string, last: number}} seen the subscription's epoch and last offset
 * @param {{epoch: string, messages: Array<{offset: number}>}} batch
 * @returns {GuardVerdict}
 */
export function judgeBatch(seen, batch) {
  if (batch.epoch !== seen.epoch) {
    return { fresh: [], duplicates: 0, gap: null, foreign: true };
  }
  const fresh = [];
  let duplicates = 0;
  let last = seen.last;
  for (const message of batch.messages) {
    if (message.offset <= last) {
      duplicates += 1;
    } else if (message.offset === last + 1) {
      fresh.push(message);
      last = message.offset;
    } else {
      return { fresh: [], duplicates, gap: { expected: last + 1, received: message.offset }, foreign: false };
    }
  }
  return { fresh, duplicates, gap: null, foreign: false };
}
