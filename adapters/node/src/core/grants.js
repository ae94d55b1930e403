/**
 * Grant matching (spec §9.1): an exact name, a prefix followed by one `*`, or `*` alone.
 * Never a regular expression (§13).
 */

/**
 * @typedef {'subscribe'|'publish'|'history'} Action
 * @typedef {{channels: string, actions: Action[]}} Grant
 */

/**
 * @param {string} pattern a grant's `channels`
 * @param {string} channel
 * @returns {boolean}
 */
export function patternMatches(pattern, channel) {
  if (pattern.endsWith('*')) return channel.startsWith(pattern.slice(0, -1)); // ACC-2, ACC-3
  return pattern === channel; // ACC-1, CHN-2: exact, no folding
}

/**
 * ACC-4: allowed iff one grant both matches the channel and lists the action.
 * @param {Grant[]} grants
 * @param {string} channel
 * @param {Action} action
 */
export function allows(grants, channel, action) {
  return grants.some((g) => g.actions.includes(action) && patternMatches(g.channels, channel));
}
