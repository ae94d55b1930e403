// The stock peer broadcasts an HTTP publish to its room only, and answers bad requests typed.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, postJson, publisher } from "../lib/targets.mjs";

const PEER = fileURLToPath(new URL("../peer.mjs", import.meta.url));

async function startPeer(...args) {
  const child = spawn(process.execPath, [PEER, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = await once(child.stdout, "data");
  return { child, url: line.toString().trim().split(" ").at(-1) };
}

test("a publish reaches the room's sockets and no other", async (t) => {
  const { child, url } = await startPeer();
  t.after(() => child.kill());
  const inRoom = await connect(url, { query: { room: "a" } });
  const elsewhere = await connect(url, { query: { room: "b" } });
  t.after(() => { inRoom.close(); elsewhere.close(); });
  let strays = 0;
  elsewhere.on("message", () => { strays += 1; });
  const received = once(inRoom, "message");
  const target = { name: "stock", kind: "stock", url };
  assert.deepEqual(await publisher(target, "a")({ n: 1 }), { ok: true });
  assert.deepEqual(await received, [{ n: 1 }]);
  assert.equal(strays, 0);
});

test("a body that is not JSON is a 400 bad_request, another route a 404", async (t) => {
  const { child, url } = await startPeer();
  t.after(() => child.kill());
  const notJson = await fetch(`${url}/publish/a`, { method: "POST", body: "{" });
  assert.equal(notJson.status, 400);
  assert.deepEqual(await notJson.json(), { error: "bad_request" });
  const { status } = await postJson(`${url}/elsewhere`, {});
  assert.equal(status, 404);
});

test("with --recovery a dropped socket gets the packets it missed", async (t) => {
  const { child, url } = await startPeer("--recovery");
  t.after(() => child.kill());
  const socket = await connect(url, { query: { room: "r" } });
  t.after(() => socket.close());
  const publish = publisher({ name: "stock", kind: "stock", url }, "r");
  const first = once(socket, "message");
  await publish(0);
  await first;
  const gone = once(socket, "disconnect");
  socket.io.engine.close();
  await gone;
  await new Promise((resolve) => setTimeout(resolve, 100));
  await publish(1);
  await publish(2);
  const missed = [];
  socket.on("message", (n) => missed.push(n));
  socket.connect();
  await once(socket, "connect");
  while (missed.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(socket.recovered, true);
  assert.deepEqual(missed, [1, 2]);
});
