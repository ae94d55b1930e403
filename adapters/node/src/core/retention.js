/**
 * Retention as one rule (spec §4.7): a channel keeps a floor, the lowest offset not removed,
 * that only ever rises (RET-4, RET-8). Each limit proposes a floor; the channel takes the
 * highest. Pure: the store supplies the timestamps it holds.
 */

/**
 * @typedef {{max_messages: number|null, max_age_s: number|null}} RetentionSettings
 */

/** RET-9: a channel nobody configured keeps everything. */
export const NO_RETENTION = Object.freeze({ max_messages: null, max_age_s: null });

/**
 * The new floor after applying `settings` at `now`.
 * @param {{floor: number, head: number}} channel floor is at most head + 1
 * @param {RetentionSettings} settings
 * @param {number} now ms
 * @param {(offset: number) => number|undefined} tsAt the `ts` of a stored message
 * @returns {number}
 */
export function nextFloor(channel, settings, now, tsAt) {
  let floor = channel.floor;
  if (settings.max_messages !== null) floor = Math.max(floor, channel.head - settings.max_messages + 1); // RET-12
  if (settings.max_age_s !== null) {
    // RET-3/RET-7: a message more than A seconds old is gone; ts never decreases (MSG-5), so
    // the expired messages are a prefix.
    const cutoff = now - settings.max_age_s * 1000;
    while (floor <= channel.head) {
      const ts = tsAt(floor);
      if (ts === undefined || ts >= cutoff) break;
      floor++;
    }
  }
  return Math.min(floor, channel.head + 1);
}

/** OFF-4: `first` is the floor while something is retained, else null. */
export function firstOf({ floor, head }) {
  return floor <= head ? floor : null;
}

/**
 * RET-1: an update keeps omitted members.
 * @param {RetentionSettings} current
 * @param {Partial<RetentionSettings>} update
 * @returns {RetentionSettings}
 */
export function mergeRetention(current, update) {
  return {
    max_messages: 'max_messages' in update ? update.max_messages ?? null : current.max_messages,
    max_age_s: 'max_age_s' in update ? update.max_age_s ?? null : current.max_age_s,
  };
}
