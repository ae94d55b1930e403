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
export function readHistory(request: (event: string, payload: object) => Promise<any>, channel: string, { from, limit }?: HistoryOptions): AsyncGenerator<HistoryPage, void, undefined>;
export type HistoryPage = {
    epoch: string;
    first: number | null;
    head: number;
    messages: Array<{
        offset: number;
        id: string;
        ts: number;
        data: unknown;
    }>;
};
export type HistoryOptions = {
    /**
     * "beginning" (default),
     * or a position: the pages start at `offset + 1` of its epoch, as for subscribe
     */
    from?: import("./positions.js").Position | "beginning" | undefined;
    /**
     * messages per page (the server caps it)
     */
    limit?: number | undefined;
};
