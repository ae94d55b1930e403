// Pure: what to do when the server says a subscription cannot go on as it was (the table in
// clients/README.md, "When the server says the position cannot be resumed").

/** @typedef {"fail" | "restart" | "continue"} PolicyName */
/** @typedef {PolicyName | ((error: {code: string, message?: string}) => PolicyName)} Policy */

/**
 * What the subscription does next:
 * - `fail`: ends (`unsubscribed`), because the policy said so;
 * - `end`: ends whatever the policy (the server refuses the channel);
 * - `resume`: subscribes again from its own position after a backoff (nothing was skipped);
 * - `resubscribe`: subscribes again with `request` (from the policy).
 * @typedef {{kind: "fail"} | {kind: "end"} | {kind: "resume"} |
 *   {kind: "resubscribe", request: {from: "beginning" | "latest"} | {allowTruncation: true},
 *    flags: {epochChanged: boolean, truncated: boolean}}} Decision
 */

/** Reasons and error codes that change the epoch under the subscription (SUB-4, SIG-3). */
const EPOCH = new Set(["epoch_mismatch", "epoch_changed"]);
/** Retention removed the next offset (SUB-6, SIG-2). */
const TRUNCATION = new Set(["history_truncated", "truncated"]);
/** The store's position is ahead of the server (SUB-5). */
const AHEAD = new Set(["offset_out_of_range"]);
/** The server refuses the channel; no policy helps (forbidden, revoked, bad_request…). */
const FATAL = new Set(["forbidden", "revoked", "bad_request", "not_found"]);

/**
 * The policy's name for one error or `replay:unsubscribed` reason.
 * @param {Policy | undefined} policy default "fail"
 * @param {{code: string, message?: string}} error
 * @returns {PolicyName}
 */
export function policyFor(policy, error) {
  const name = typeof policy === "function" ? policy(error) : (policy ?? "fail");
  if (name !== "fail" && name !== "restart" && name !== "continue") {
    throw new TypeError(`onUnresumable must give "fail", "restart" or "continue", not ${name}`);
  }
  return name;
}

/**
 * Decide what follows an error reply to `replay:subscribe` or a `replay:unsubscribed` event.
 * @param {Policy | undefined} policy
 * @param {{code: string, message?: string}} error `code` is the error code or the reason
 * @returns {Decision}
 */
export function decide(policy, error) {
  const { code } = error;
  const unresumable = EPOCH.has(code) || TRUNCATION.has(code) || AHEAD.has(code);
  if (!unresumable) return FATAL.has(code) ? { kind: "end" } : { kind: "resume" };
  const name = policyFor(policy, error);
  if (name === "fail") return { kind: "fail" };
  const epochChanged = EPOCH.has(code);
  if (epochChanged || name === "restart") {
    return {
      kind: "resubscribe",
      request: { from: "beginning" },
      flags: { epochChanged, truncated: TRUNCATION.has(code) },
    };
  }
  if (TRUNCATION.has(code)) {
    return {
      kind: "resubscribe",
      request: { allowTruncation: true },
      flags: { epochChanged: false, truncated: true },
    };
  }
  return { kind: "resubscribe", request: { from: "latest" }, flags: { epochChanged: false, truncated: false } };
}
