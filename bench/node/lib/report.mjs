// What every load generator shares: reading its targets, summarising numbers, printing one
// JSON line per result (the Python orchestrator's interface).

/**
 * @param {number} value
 * @param {number} digits
 */
export function round(value, digits) {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * The q-quantile (0..1) of sorted numbers, nearest rank; null when empty.
 * @param {ArrayLike<number>} sorted
 * @param {number} q
 */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/**
 * Read the targets, JSON in --targets, given by the Python orchestrator.
 * @param {string} text
 * @returns {import("./targets.mjs").Target[]}
 */
export function parseTargets(text) {
  const targets = JSON.parse(text);
  if (!Array.isArray(targets) || targets.length === 0) throw new Error("--targets: a JSON list");
  return targets;
}

/** Print one result as a JSON line, the orchestrator's interface. @param {object} record */
export function emit(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}
