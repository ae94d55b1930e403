import { test } from "node:test";
import assert from "node:assert/strict";
import { decide, policyFor } from "../src/policy.js";

const kind = (policy, code) => decide(policy, { code });

test("fail (the default) ends on every unresumable code", () => {
  for (const code of ["epoch_mismatch", "epoch_changed", "history_truncated", "truncated", "offset_out_of_range"]) {
    assert.deepEqual(kind(undefined, code), { kind: "fail" }, code);
    assert.deepEqual(kind("fail", code), { kind: "fail" }, code);
  }
});

test("restart subscribes from the beginning and flags what happened", () => {
  assert.deepEqual(kind("restart", "epoch_mismatch"), {
    kind: "resubscribe", request: { from: "beginning" }, flags: { epochChanged: true, truncated: false },
  });
  assert.deepEqual(kind("restart", "history_truncated"), {
    kind: "resubscribe", request: { from: "beginning" }, flags: { epochChanged: false, truncated: true },
  });
  assert.deepEqual(kind("restart", "offset_out_of_range").request, { from: "beginning" });
});

test("continue: a new epoch restarts, truncation allows truncation, ahead goes latest", () => {
  assert.deepEqual(kind("continue", "epoch_changed").request, { from: "beginning" });
  assert.equal(kind("continue", "epoch_changed").flags.epochChanged, true);
  assert.deepEqual(kind("continue", "truncated"), {
    kind: "resubscribe", request: { allowTruncation: true }, flags: { epochChanged: false, truncated: true },
  });
  assert.deepEqual(kind("continue", "offset_out_of_range").request, { from: "latest" });
});

test("forbidden, revoked and bad_request end whatever the policy", () => {
  for (const policy of ["fail", "restart", "continue", () => "restart"]) {
    for (const code of ["forbidden", "revoked", "bad_request"]) {
      assert.deepEqual(kind(policy, code), { kind: "end" });
    }
  }
});

test("ends that lose nothing are resumed, not handed to the policy", () => {
  const never = () => assert.fail("the policy must not be asked");
  for (const code of ["lagging", "unavailable", "internal", "rate_limited", "unauthorized"]) {
    assert.deepEqual(kind(never, code), { kind: "resume" });
  }
});

test("a function policy gets the error and names the policy", () => {
  const seen = [];
  const policy = (error) => (seen.push(error.code), error.code === "truncated" ? "continue" : "fail");
  assert.equal(kind(policy, "truncated").kind, "resubscribe");
  assert.equal(kind(policy, "epoch_changed").kind, "fail");
  assert.deepEqual(seen, ["truncated", "epoch_changed"]);
  assert.throws(() => policyFor(() => "skip", { code: "truncated" }), TypeError);
  assert.throws(() => policyFor("skip", { code: "truncated" }), TypeError);
});
