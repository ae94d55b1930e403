/**
 * Cutting a subscription's messages into `replay:messages` events (DLV-1, DLV-2): consecutive
 * offsets from the subscription's next one, at most `max_batch` per event.
 */

/**
 * @typedef {{offset: number, id: string, ts: number, data: unknown}} Message
 */

/**
 * The messages a subscription may deliver next: those that continue its stream at `next`
 * without a gap. A read that does not start at `next` delivers nothing (SIG-1: the caller
 * ends the subscription instead).
 * @param {Message[]} messages as read from the store, ascending
 * @param {number} next the subscription's next offset
 * @returns {Message[]}
 */
export function contiguousFrom(messages, next) {
  const out = [];
  for (const m of messages) {
    if (m.offset !== next + out.length) break;
    out.push(m);
  }
  return out;
}

/**
 * @param {Message[]} messages consecutive
 * @param {number} maxBatch
 * @returns {Message[][]}
 */
export function batches(messages, maxBatch) {
  const out = [];
  for (let i = 0; i < messages.length; i += maxBatch) out.push(messages.slice(i, i + maxBatch));
  return out;
}
