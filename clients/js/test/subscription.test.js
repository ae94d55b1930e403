import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../src/client.js";
import { MemoryPositions } from "../src/positions.js";
import { fakeClient, messages, until } from "./fake-socket.js";

const ok = (channel, epoch, from, head, extra = {}) => ({ ok: true, channel, epoch, from, head, ...extra });
const err = (code) => ({ ok: false, error: { code, message: code } });

/** A server that confirms every subscribe at the requested offset (or 1). */
function echoServer(epoch = "e1") {
  return {
    reply(event, p) {
      if (event === "replay:subscribe") return ok(p.channel, epoch, typeof p.from === "number" ? p.from : 1, 100);
      if (event === "replay:ack") return { ok: true, epoch, cursor: p.offset };
      return { ok: true };
    },
  };
}

function record(sub) {
  const log = [];
  for (const name of ["subscribed", "messages", "unsubscribed", "error"]) sub.on(name, (d) => log.push([name, d]));
  return log;
}

test("getToken is awaited before every connection attempt", async () => {
  const { holder, options } = fakeClient(echoServer());
  let n = 0;
  const client = connect("http://x", async () => `token-${++n}`, options);
  await until(() => holder.socket.connected);
  holder.socket.drop();
  await until(() => holder.socket.connected && holder.socket.tokens.length === 2);
  assert.deepEqual(holder.socket.tokens, ["token-1", "token-2"]);
  client.close();
});

test("a refused connect is reported and retried with a new token", async () => {
  const server = { ...echoServer(), refuse: "unauthorized" };
  const { holder, options } = fakeClient(server);
  let n = 0;
  const client = connect("http://x", () => `t${++n}`, options);
  const errors = [];
  client.on("error", (e) => errors.push(e.code));
  await until(() => errors.length >= 3);
  server.refuse = null;
  await until(() => holder.socket.connected);
  assert.ok(errors.every((c) => c === "unauthorized"));
  assert.ok(holder.socket.tokens.length >= 4 && new Set(holder.socket.tokens).size === holder.socket.tokens.length);
  client.close();
});

test("after a disconnect the subscription resumes from last + 1 with its epoch", async () => {
  const { holder, options } = fakeClient(echoServer());
  const positions = new MemoryPositions();
  const client = connect("http://x", () => "t", { ...options, positions });
  const got = [];
  const sub = client.subscribe("c", { onMessages: (ms) => got.push(...ms.map((m) => m.offset)) });
  const log = record(sub);
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent[0].payload, { channel: "c", from: "beginning" });
  holder.socket.push("replay:messages", messages("e1", "c", 1, 2, 3));
  await until(() => got.length === 3);
  holder.socket.drop();
  assert.equal(sub.state, "subscribing");
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent.at(-1).payload, { channel: "c", from: 4, epoch: "e1" });
  assert.equal(log.filter(([n]) => n === "subscribed").at(-1)[1].recovered, true);
  holder.socket.push("replay:messages", messages("e1", "c", 3, 4)); // 3 again: dropped
  await until(() => got.length === 4);
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(sub.stats.duplicates, 1);
  assert.deepEqual(positions.get("c"), { epoch: "e1", offset: 4 });
  client.close();
  assert.deepEqual(log.at(-1), ["unsubscribed", { reason: "closed" }]);
});

test("the stored position is where a new subscription starts", async () => {
  const { holder, options } = fakeClient(echoServer());
  const positions = new MemoryPositions();
  positions.set("c", { epoch: "e1", offset: 41 });
  const client = connect("http://x", () => "t", { ...options, positions });
  const sub = client.subscribe("c", {});
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent[0].payload, { channel: "c", from: 42, epoch: "e1" });
  client.close();
});

test("with ack on and no position, from is omitted: the server cursor decides", async () => {
  const { holder, options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", options);
  const sub = client.subscribe("c", { ack: { maxDelayMs: 5, maxMessages: 100 } });
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent[0].payload, { channel: "c" });
  holder.socket.push("replay:messages", messages("e1", "c", 1, 2));
  holder.socket.push("replay:messages", messages("e1", "c", 3));
  await until(() => holder.socket.sent.some((s) => s.event === "replay:ack" && s.payload.offset === 3));
  const acks = holder.socket.sent.filter((s) => s.event === "replay:ack");
  assert.deepEqual(acks.at(-1).payload, { channel: "c", offset: 3, epoch: "e1" });
  assert.ok(acks.length <= 2);
  client.close();
});

test("a gap is reported and repaired by unsubscribing and subscribing from last + 1", async () => {
  const { holder, options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", options);
  const got = [];
  const sub = client.subscribe("c", { onMessages: (ms) => got.push(...ms.map((m) => m.offset)) });
  const log = record(sub);
  await until(() => sub.state === "subscribed");
  holder.socket.push("replay:messages", messages("e1", "c", 1, 2));
  holder.socket.push("replay:messages", messages("e1", "c", 5, 6));
  await until(() => sub.state === "subscribed" && holder.socket.sent.length >= 3);
  assert.deepEqual(log.find(([n]) => n === "error")[1].code, "gap");
  assert.deepEqual(holder.socket.sent.slice(1).map((s) => [s.event, s.payload]), [
    ["replay:unsubscribe", { channel: "c" }],
    ["replay:subscribe", { channel: "c", from: 3, epoch: "e1" }],
  ]);
  holder.socket.push("replay:messages", messages("e1", "c", 3, 4, 5));
  await until(() => got.length === 5);
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  assert.equal(sub.stats.gaps, 1);
  client.close();
});

/** A server whose first subscribe fails with `code`, then confirms at `from` 1 or 7. */
function refusingOnce(code, epoch = "e2") {
  let refused = false;
  return {
    reply(event, p) {
      if (event !== "replay:subscribe") return { ok: true };
      if (!refused) {
        refused = true;
        return err(code);
      }
      if (p.allow_truncation) return ok(p.channel, epoch, 7, 9, { truncated: { requested: p.from, first_available: 7 } });
      return ok(p.channel, epoch, p.from === "latest" ? 10 : 1, 9);
    },
  };
}

for (const [code, policy, request, flags] of [
  ["epoch_mismatch", "restart", { from: "beginning" }, { epochChanged: true, truncated: false }],
  ["epoch_mismatch", "continue", { from: "beginning" }, { epochChanged: true, truncated: false }],
  ["history_truncated", "restart", { from: "beginning" }, { epochChanged: false, truncated: true }],
  ["history_truncated", "continue", { from: 4, epoch: "e1", allow_truncation: true }, { epochChanged: false, truncated: true }],
  ["offset_out_of_range", "restart", { from: "beginning" }, { epochChanged: false, truncated: false }],
  ["offset_out_of_range", "continue", { from: "latest" }, { epochChanged: false, truncated: false }],
]) {
  test(`${code} with ${policy}: told, then subscribed as the policy says`, async () => {
    const { holder, options } = fakeClient(refusingOnce(code));
    const client = connect("http://x", () => "t", options);
    const sub = client.subscribe("c", { from: { epoch: "e1", offset: 3 }, onUnresumable: policy });
    const log = record(sub);
    await until(() => sub.state === "subscribed");
    assert.deepEqual(holder.socket.sent.map((s) => s.payload), [
      { channel: "c", from: 4, epoch: "e1" },
      { channel: "c", ...request },
    ]);
    assert.deepEqual(log.map(([n]) => n), ["error", "subscribed"]);
    assert.equal(log[0][1].code, code);
    const { epochChanged, truncated } = log[1][1];
    assert.deepEqual({ epochChanged, truncated }, flags);
    client.close();
  });
}

test("fail (the default) ends the subscription: error, then unsubscribed", async () => {
  for (const code of ["epoch_mismatch", "history_truncated", "offset_out_of_range", "forbidden"]) {
    const { holder, options } = fakeClient(refusingOnce(code));
    const client = connect("http://x", () => "t", options);
    const sub = client.subscribe("c", { from: { epoch: "e1", offset: 3 } });
    const log = record(sub);
    await until(() => sub.state === "unsubscribed");
    assert.deepEqual(log.map(([n, d]) => [n, d.code ?? d.reason]), [["error", code], ["unsubscribed", code]]);
    assert.equal(holder.socket.sent.length, 1);
    client.close();
  }
});

test("forbidden ends even with restart", async () => {
  const { options } = fakeClient(refusingOnce("forbidden"));
  const client = connect("http://x", () => "t", options);
  const sub = client.subscribe("c", { onUnresumable: "restart" });
  await until(() => sub.state === "unsubscribed");
  client.close();
});

test("server ends: lagging resumes from the position, truncated follows the policy", async () => {
  const { holder, options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", options);
  const got = [];
  const sub = client.subscribe("c", { onMessages: (ms) => got.push(...ms.map((m) => m.offset)), onUnresumable: "continue" });
  const log = record(sub);
  await until(() => sub.state === "subscribed");
  holder.socket.push("replay:messages", messages("e1", "c", 1, 2));
  holder.socket.push("replay:unsubscribed", { channel: "c", reason: "lagging" });
  assert.equal(sub.state, "subscribing");
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent.at(-1).payload, { channel: "c", from: 3, epoch: "e1" });
  holder.socket.push("replay:unsubscribed", { channel: "c", reason: "truncated" });
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent.at(-1).payload, { channel: "c", from: 3, epoch: "e1", allow_truncation: true });
  assert.deepEqual(log.filter(([n]) => n === "unsubscribed").map(([, d]) => d.reason), ["lagging", "truncated"]);
  assert.equal(log.at(-1)[1].truncated, true);
  holder.socket.push("replay:unsubscribed", { channel: "c", reason: "revoked" });
  assert.equal(sub.state, "unsubscribed");
  client.close();
});

test("a batch of another epoch is dropped; onMessages failing redelivers from the position", async () => {
  const { holder, options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", { ...options });
  let fail = true;
  const got = [];
  const sub = client.subscribe("c", {
    onMessages: (ms) => {
      if (ms[0].offset === 2 && fail) {
        fail = false;
        throw new Error("boom");
      }
      got.push(...ms.map((m) => m.offset));
    },
  });
  await until(() => sub.state === "subscribed");
  holder.socket.push("replay:messages", messages("other", "c", 1));
  holder.socket.push("replay:messages", messages("e1", "c", 1));
  holder.socket.push("replay:messages", messages("e1", "c", 2));
  holder.socket.push("replay:messages", messages("e1", "c", 3));
  await until(() => holder.socket.sent.filter((s) => s.event === "replay:subscribe").length === 2 && sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent.at(-1).payload, { channel: "c", from: 2, epoch: "e1" });
  holder.socket.push("replay:messages", messages("e1", "c", 2, 3));
  await until(() => got.length === 3);
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(sub.stats.foreign, 1);
  client.close();
});

test("a reply that never comes renews the connection", async () => {
  let answer = false;
  const server = { reply: (event, p) => (answer ? ok(p.channel, "e", 1, 0) : undefined) };
  const { holder, options } = fakeClient(server);
  const client = connect("http://x", () => "t", { ...options, requestTimeoutMs: 30 });
  const sub = client.subscribe("c", {});
  await until(() => client.stats.disconnects === 1);
  answer = true;
  await until(() => sub.state === "subscribed");
  assert.ok(holder.socket.sent.length >= 2);
  client.close();
});

test("unsubscribe sends replay:unsubscribe and ends with reason client", async () => {
  const { holder, options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", options);
  const sub = client.subscribe("c", {});
  const log = record(sub);
  await until(() => sub.state === "subscribed");
  await sub.unsubscribe();
  assert.deepEqual(holder.socket.sent.at(-1), { event: "replay:unsubscribe", payload: { channel: "c" } });
  assert.deepEqual(log.at(-1), ["unsubscribed", { reason: "client" }]);
  assert.equal(client.subscription("c"), undefined);
  client.subscribe("c", {}); // the channel can be subscribed again
  client.close();
});

test("history follows last offset + 1 with the reply's epoch until head", async () => {
  const requests = [];
  const server = {
    reply(event, p) {
      requests.push(p);
      const from = p.from === "beginning" ? 3 : p.from;
      const to = Math.min(from + 1, 6);
      const ms = [];
      for (let o = from; o <= to; o++) ms.push({ offset: o, id: `m${o}`, ts: 0, data: o });
      return { ok: true, channel: p.channel, epoch: "e9", first: 3, head: 6, messages: ms };
    },
  };
  const { options } = fakeClient(server);
  const client = connect("http://x", () => "t", options);
  const pages = [];
  for await (const page of client.history("c", { limit: 2 })) pages.push(page.messages.map((m) => m.offset));
  assert.deepEqual(pages, [[3, 4], [5, 6]]);
  assert.deepEqual(requests, [{ channel: "c", from: "beginning", limit: 2 }, { channel: "c", from: 5, epoch: "e9", limit: 2 }]);
  client.close();
});

test("a history page lost to a disconnect is asked again after the reconnect", async () => {
  let calls = 0;
  const server = {
    reply(event, p) {
      calls += 1;
      if (calls === 1) {
        queueMicrotask(() => holder.socket.drop());
        return undefined; // the reply is lost with the connection
      }
      return { ok: true, channel: p.channel, epoch: "e", first: 1, head: 1, messages: [{ offset: 1, id: "a", ts: 0, data: 1 }] };
    },
  };
  const { holder, options } = fakeClient(server);
  const client = connect("http://x", () => "t", options);
  const pages = [];
  for await (const page of client.history("c")) pages.push(page.messages.map((m) => m.offset));
  assert.deepEqual(pages, [[1]]);
  assert.equal(calls, 2);
  assert.equal(client.stats.connects, 2);
  client.close();
});

test("a refused history page throws the server's code", async () => {
  const { options } = fakeClient({ reply: () => err("forbidden") });
  const client = connect("http://x", () => "t", options);
  await assert.rejects(async () => {
    for await (const _ of client.history("c")) assert.fail("no page");
  }, (e) => e.code === "forbidden");
  client.close();
});

test("a position store whose get throws ends the subscription, told", async () => {
  const { holder, options } = fakeClient(echoServer());
  const positions = { get: () => { throw new Error("disk"); }, set: () => {} };
  const client = connect("http://x", () => "t", { ...options, positions });
  const sub = client.subscribe("c", {});
  const log = record(sub);
  await until(() => sub.state === "unsubscribed");
  assert.deepEqual(log.map(([n, d]) => [n, d.code ?? d.reason]), [["error", "positions_failed"], ["unsubscribed", "positions_failed"]]);
  await until(() => holder.socket?.connected);
  assert.equal(holder.socket.sent.length, 0);
  client.close();
});

/** A server whose only answer to a subscribe is `already_subscribed`. */
function autoServer() {
  return { reply: (event) => (event === "replay:subscribe" ? err("already_subscribed") : { ok: true }) };
}

test("an auto-subscription that starts at the position stands for the subscribe", async () => {
  const { holder, options } = fakeClient(autoServer());
  const positions = new MemoryPositions();
  positions.set("c", { epoch: "e1", offset: 4 });
  const client = connect("http://x", () => "t", { ...options, positions });
  const sub = client.subscribe("c", {});
  const log = record(sub);
  client.on("connect", () => holder.socket.push("replay:subscribed", { channel: "c", epoch: "e1", from: 5, head: 9 }));
  await until(() => sub.state === "subscribed");
  assert.equal(log[0][0], "subscribed");
  assert.equal(log[0][1].recovered, true);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(log.map(([n]) => n), ["subscribed"]); // the already_subscribed reply is not news
  client.close();
});

test("an auto-subscription that starts elsewhere is replaced by the repair", async () => {
  let subscribes = 0;
  const server = {
    reply(event, p) {
      if (event !== "replay:subscribe") return { ok: true };
      subscribes += 1;
      return subscribes === 1 ? err("already_subscribed") : ok(p.channel, "e1", p.from, 9);
    },
  };
  const { holder, options } = fakeClient(server);
  const positions = new MemoryPositions();
  positions.set("c", { epoch: "e1", offset: 4 });
  const client = connect("http://x", () => "t", { ...options, positions });
  const sub = client.subscribe("c", {});
  const log = record(sub);
  client.on("connect", () => holder.socket.push("replay:subscribed", { channel: "c", epoch: "e1", from: 10, head: 9 }));
  await until(() => sub.state === "subscribed");
  assert.deepEqual(holder.socket.sent.map((s) => [s.event, s.payload]), [
    ["replay:subscribe", { channel: "c", from: 5, epoch: "e1" }],
    ["replay:unsubscribe", { channel: "c" }],
    ["replay:subscribe", { channel: "c", from: 5, epoch: "e1" }],
  ]);
  assert.deepEqual(log.map(([n, d]) => [n, d.code ?? d.from]), [["error", "already_subscribed"], ["subscribed", 5]]);
  client.close();
});

test("programmer errors throw at once", () => {
  const { options } = fakeClient(echoServer());
  const client = connect("http://x", () => "t", options);
  assert.throws(() => client.subscribe("c", { from: { offset: 1 } }), TypeError);
  client.subscribe("c", {});
  assert.throws(() => client.subscribe("c", {}), TypeError);
  client.close();
  assert.throws(() => client.subscribe("d", {}), (e) => e.code === "closed");
});

test("messages that arrive with the subscribe reply, before it is handled, are delivered", async () => {
  // The server sends a subscription's first batch right behind its reply (SUB-13); both often
  // come in one read, so socket.io-client hands us the batch before the awaiting code runs.
  const server = {
    ...echoServer(),
    afterReply(event, payload, socket) {
      if (event === "replay:subscribe") socket.push("replay:messages", messages("e1", "c", 1, 2, 3));
    },
  };
  const { options } = fakeClient(server);
  const client = connect("http://x", () => "t", options);
  const got = [];
  const sub = client.subscribe("c", { from: "beginning", onMessages: (ms) => got.push(...ms.map((m) => m.offset)) });
  await until(() => got.length === 3);
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(sub.stats.duplicates, 0);
  client.close();
});
