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
export function judgeBatch(seen: {
    epoch: string;
    last: number;
}, batch: {
    epoch: string;
    messages: Array<{
        offset: number;
    }>;
}): GuardVerdict;
export type GuardVerdict = {
    /**
     * messages to hand to the application, in order
     */
    fresh: Array<{
        offset: number;
    }>;
    /**
     * messages at or below the last offset, dropped
     */
    duplicates: number;
    /**
     * the first offset above
     * `last + 1`; when set, `fresh` is empty: the whole batch is dropped and repaired
     */
    gap: {
        expected: number;
        received: number;
    } | null;
    /**
     * the batch is of another epoch than the subscription's; dropped
     */
    foreign: boolean;
};
