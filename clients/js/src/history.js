// History as an async iterator over pages (replay:history, HIS-4, HIS-8): each next page
// starts at the last returned offset + 1 with the reply's epoch, until `head`.

import { replyError } from "./errors.js";

/**
 * @typedef {object} HistoryPage
 * @property {string} epoch
 * @property {number | null} first
 * @property {number} head
 * @property {Array<{offset: number, id: string, ts: number, data: unknown}>} messages
 */

/**
 * @typedef {object} HistoryOptions
 * @property {"beginning" | import("./positions.js").Position} [from] "beginning" (default),
 *   or a position: the pages start at `offset + 1` of its epoch, as for subscribe
 * @property {number} [limit] messages per page (the server caps it)
 */

/**
 * The pages of one channel's history.
 * @param {(event: string, payload: object) => Promise<any>} request sends one client event
 *   and resolves with its reply
 * @param {string} channel
 * @param {HistoryOptions} [options]
 * @returns {AsyncGenerator<HistoryPage, void, undefined>}
 */
export async function* readHistory(request, channel, { from = "beginning", limit } = {}) {
  /** @type {Record<string, unknown>} */
  let payload = { channel, from: "beginning" };
  if (from !== "beginning") payload = { channel, from: from.offset + 1, epoch: from.epoch };
  if (limit !== undefined) payload.limit = limit;
  for (;;) {
    const reply = await request("replay:history", payload);
    if (!reply?.ok) throw replyError(reply);
    const { epoch, first, head, messages } = reply;
    yield { epoch, first, head, messages };
    const last = messages.at(-1)?.offset;
    if (last === undefined || last >= head) return;
    payload = { ...payload, from: last + 1, epoch };
  }
}
