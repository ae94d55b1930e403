/**
 * The policy's name for one error or `replay:unsubscribed` reason.
 * @param {Policy | undefined} policy default "fail"
 * @param {{code: string, message?: string}} error
 * @returns {PolicyName}
 */
export function policyFor(policy: Policy | undefined, error: {
    code: string;
    message?: string;
}): PolicyName;
/**
 * Decide what follows an error reply to `replay:subscribe` or a `replay:unsubscribed` event.
 * @param {Policy | undefined} policy
 * @param {{code: string, message?: string}} error `code` is the error code or the reason
 * @returns {Decision}
 */
export function decide(policy: Policy | undefined, error: {
    code: string;
    message?: string;
}): Decision;
export type PolicyName = "fail" | "restart" | "continue";
export type Policy = PolicyName | ((error: {
    code: string;
    message?: string;
}) => PolicyName);
/**
 * What the subscription does next:
 * - `fail`: ends (`unsubscribed`), because the policy said so;
 * - `end`: ends whatever the policy (the server refuses the channel);
 * - `resume`: subscribes again from its own position after a backoff (nothing was skipped);
 * - `resubscribe`: subscribes again with `request` (from the policy).
 */
export type Decision = {
    kind: "fail";
} | {
    kind: "end";
} | {
    kind: "resume";
} | {
    kind: "resubscribe";
    request: {
        from: "beginning" | "latest";
    } | {
        allowTruncation: true;
    };
    flags: {
        epochChanged: boolean;
        truncated: boolean;
    };
};
